"""Durations ("90min", "3d") and points in time as integer nanoseconds, with the standard library only.

Windows, time bars and emission intervals are all given by people in config files and on the
command line, so they are parsed in one place with one grammar and one error type; the edge side
(numpy only, no pandas) needs this too, hence no pandas here.
"""
from __future__ import annotations

import datetime as _dt
import math
import re

import numpy as np

from liquidedge.errors import ConfigError

NS_PER_S = 1_000_000_000

_UNITS_NS = {
    "ns": 1, "us": 1_000, "ms": 1_000_000,
    "s": NS_PER_S, "sec": NS_PER_S,
    "m": 60 * NS_PER_S, "min": 60 * NS_PER_S,
    "h": 3_600 * NS_PER_S, "hr": 3_600 * NS_PER_S,
    "d": 86_400 * NS_PER_S, "w": 7 * 86_400 * NS_PER_S,
}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([a-z]+)")
_WHOLE = re.compile(r"^\s*(?:(?:\d+(?:\.\d*)?|\.\d+)\s*[a-z]+\s*)+$")


def parse_duration_ns(value: str | float | int, *, what: str = "duration") -> int:
    """A positive duration in integer nanoseconds.

    Accepts a string of number+unit parts (``45s``, ``90min``, ``2h``, ``3d``, ``1h30min``; units
    ns, us, ms, s, m/min, h, d, w) or a plain number of seconds. Anything else, zero, negative or
    non-finite is a ``ConfigError`` naming ``what``.
    """
    if isinstance(value, bool):
        raise ConfigError(f"{what}: expected a duration like '90min' or seconds, got {value!r}")
    if isinstance(value, (int, float, np.integer, np.floating)):
        seconds = float(value)
        if not math.isfinite(seconds) or seconds <= 0:
            raise ConfigError(f"{what}: expected a positive number of seconds, got {value!r}")
        ns = int(round(seconds * NS_PER_S))
    elif isinstance(value, str):
        text = value.strip().lower()
        if not _WHOLE.match(text):
            raise ConfigError(f"{what}: cannot parse {value!r}; expected e.g. '45s', '90min', '2h', '3d'")
        ns = 0
        for number, unit in _PART.findall(text):
            if unit not in _UNITS_NS:
                raise ConfigError(f"{what}: unknown unit {unit!r} in {value!r}; "
                                  f"expected one of {', '.join(sorted(_UNITS_NS))}")
            ns += int(round(float(number) * _UNITS_NS[unit]))
    else:
        raise ConfigError(f"{what}: expected a duration string or seconds, got {type(value).__name__}")
    if ns <= 0:
        raise ConfigError(f"{what}: must be longer than 0 ns, got {value!r}")
    return ns


def parse_time_ns(value, *, tz: str = "UTC", what: str = "time") -> int:
    """A point in time as UTC epoch nanoseconds.

    Accepts an integer (already epoch ns), ``numpy.datetime64`` (UTC), ``datetime`` or an ISO-8601
    string; naive datetimes/strings are read in ``tz``.
    """
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, np.datetime64):
        if np.isnat(value):
            raise ConfigError(f"{what}: NaT is not a time")
        return int(value.astype("datetime64[ns]").astype(np.int64))
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            value = _dt.datetime.fromisoformat(text)
        except ValueError:
            raise ConfigError(f"{what}: cannot parse {value!r}; expected ISO-8601 "
                              "like '2013-09-03T09:30' or epoch nanoseconds") from None
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_zone(tz))
        epoch = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
        delta = value - epoch
        return (delta.days * 86_400 + delta.seconds) * NS_PER_S + delta.microseconds * 1_000
    raise ConfigError(f"{what}: expected epoch ns, datetime or ISO string, got {type(value).__name__}")


def _zone(tz: str) -> _dt.tzinfo:
    if tz.upper() == "UTC":
        return _dt.timezone.utc
    try:
        from zoneinfo import ZoneInfo
        return ZoneInfo(tz)
    except Exception as exc:  # ZoneInfoNotFoundError, ValueError on odd keys
        raise ConfigError(f"unknown time zone {tz!r}: {exc}") from None


def format_ns(ns: int, tz: str = "UTC") -> str:
    """An epoch-ns instant as an ISO string in ``tz`` (millisecond precision), for reports."""
    seconds, rest = divmod(int(ns), NS_PER_S)
    when = _dt.datetime.fromtimestamp(seconds, tz=_dt.timezone.utc).astimezone(_zone(tz))
    return when.replace(microsecond=rest // 1_000).isoformat(timespec="milliseconds")


def format_seconds(seconds: float) -> str:
    """A duration in seconds in a readable unit (``6.5h``, ``23.4s``, ``12ms``)."""
    s = float(seconds)
    for unit, size in (("d", 86_400.0), ("h", 3_600.0), ("min", 60.0), ("s", 1.0)):
        if abs(s) >= size:
            return f"{s / size:.3g}{unit}"
    return f"{s * 1_000:.3g}ms"
