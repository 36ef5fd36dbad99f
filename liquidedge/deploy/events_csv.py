"""Read a trades CSV on the device with numpy and the standard library only.

``liquidedge.data.load_events`` parses with pandas, which a Raspberry Pi bundle does not carry.
This reader covers what an edge device is fed: epoch integers (ns/us/ms/s) or ISO-8601 stamps,
naive ones read in the column map's time zone. It is exactly as strict as the workstation
loader: a stamp it cannot parse, a local time that a DST change makes ambiguous or impossible,
or a bad price/size is reported with file, row and field, never dropped or guessed.
"""
from __future__ import annotations

import csv
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from liquidedge.data.ticks import ColumnMap, Events, resolve_columns, validate_events
from liquidedge.errors import DataValidationError

_EPOCH_FACTOR = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
_INT = re.compile(r"^[-+]?\d+$")
_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")
_HAS_OFFSET = re.compile(r"(?:[zZ]|[+-]\d\d(?::?\d\d)?)$")
_NS_PER_HOUR = 3_600_000_000_000


def _numbers(values: list[str], name: str, file: str) -> np.ndarray:
    try:
        return np.array(values, dtype=np.float64)
    except ValueError:
        for i, v in enumerate(values):
            try:
                float(v)
            except ValueError:
                raise DataValidationError(f"cannot parse number {v!r}", file=file, row=i + 1, field=name,
                                          expected="a number") from None
        raise


def _epoch_ns(values: list[str], unit: str, name: str, file: str) -> np.ndarray:
    factor = _EPOCH_FACTOR[unit]
    if all(_INT.match(v) for v in values):
        return np.array([int(v) for v in values], dtype=np.int64) * factor
    return np.round(_numbers(values, name, file) * factor).astype(np.int64)


def _aware_ns(values: list[str], name: str, file: str) -> np.ndarray:
    out = np.empty(len(values), np.int64)
    for i, v in enumerate(values):
        try:
            d = datetime.fromisoformat(v.strip().replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            d = None
        if d is None or d.tzinfo is None:
            raise DataValidationError(f"cannot parse timestamp {v!r} (stamps with and without a UTC "
                                      f"offset are mixed, or the form is not ISO-8601)", file=file,
                                      row=i + 1, field=name, expected="ISO-8601 date-times")
        delta = d.astimezone(timezone.utc).replace(tzinfo=None) - datetime(1970, 1, 1)
        out[i] = (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
    return out


def _naive_ns(values: list[str], tz: str | None, name: str, file: str) -> np.ndarray:
    try:
        local = np.array(values, dtype="datetime64[ns]").astype(np.int64)
    except ValueError:
        for i, v in enumerate(values):
            try:
                np.datetime64(v, "ns")
            except ValueError:
                raise DataValidationError(f"cannot parse timestamp {v!r}", file=file, row=i + 1, field=name,
                                          expected="ISO-8601 date-times (YYYY-MM-DD hh:mm:ss[.fff]) "
                                                   "or epoch integers") from None
        raise
    if tz in (None, "UTC"):
        return local
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(tz)
    hours = local // _NS_PER_HOUR
    out = np.empty_like(local)
    for h in np.unique(hours):
        start = datetime(1970, 1, 1) + timedelta(hours=int(h))
        sel = hours == h
        # offsets at the start and end of this local hour, for both readings of a repeated time
        probe = [start.replace(tzinfo=zone, fold=f).utcoffset() for f in (0, 1)]
        probe += [(start + timedelta(minutes=59, seconds=59)).replace(tzinfo=zone, fold=f).utcoffset()
                  for f in (0, 1)]
        if len(set(probe)) != 1:
            i = int(np.flatnonzero(sel)[0])
            raise DataValidationError(f"local time {values[i]!r} in {tz} falls in a daylight-saving "
                                      f"change (ambiguous or non-existent)", file=file, row=i + 1,
                                      field=name, expected="stamps with a UTC offset across DST changes")
        out[sel] = local[sel] - int(probe[0].total_seconds()) * 1_000_000_000
    return out


def read_events_csv(path: str | Path, columns: ColumnMap | str | None = None) -> Events:
    """Load and validate trades from a CSV file (numpy + stdlib; see module docstring)."""
    path = Path(path)
    name = str(path)
    if not path.is_file():
        raise DataValidationError("file not found", file=name)
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            raise DataValidationError("empty input: no header and no rows", file=name) from None
        rows = list(reader)
    if not rows:
        raise DataValidationError("empty input: header but no data rows", file=name)
    cmap = resolve_columns(columns, header, name)
    idx = {c: header.index(c) for c in header}
    width = len(header)
    for i, r in enumerate(rows):
        if len(r) != width:
            raise DataValidationError(f"has {len(r)} fields, the header {width}", file=name, row=i + 1)
    col = lambda c: [r[idx[c]] for r in rows]  # noqa: E731
    stamps = col(cmap.timestamp)
    if all(_INT.match(v) or _FLOAT.match(v) for v in stamps):
        time_ns = _epoch_ns(stamps, cmap.epoch_unit, cmap.timestamp, name)
        tz = cmap.tz or "UTC"
    elif any(_HAS_OFFSET.search(v.strip()) for v in stamps):
        time_ns, tz = _aware_ns(stamps, cmap.timestamp, name), "UTC"
    else:
        time_ns, tz = _naive_ns(stamps, cmap.tz, cmap.timestamp, name), cmap.tz or "UTC"
    price = _numbers(col(cmap.price), cmap.price, name)
    size = np.ones(len(rows)) if cmap.size is None else _numbers(col(cmap.size), cmap.size, name)
    events = Events(time_ns, price, size, None, tz, name)
    return validate_events(events)


def read_events(path: str | Path, columns: ColumnMap | str | None = None) -> Events:
    """Events from a ``.csv`` (this module) or a ``.npz`` with time_ns/price/size arrays."""
    path = Path(path)
    if path.suffix.lower() == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                events = Events(z["time_ns"], z["price"], z["size"] if "size" in z else np.ones(len(z["price"])),
                                None, "UTC", str(path))
        except (KeyError, ValueError, OSError) as exc:
            raise DataValidationError(f"not an events .npz (time_ns, price[, size]): {exc}", file=str(path)) from None
        return validate_events(events)
    return read_events_csv(path, columns)
