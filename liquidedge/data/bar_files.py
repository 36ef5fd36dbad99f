"""Bars someone else already built: OHLCV files (one row per bar) read into validated ``Bars``.

Vendors and archives often ship bars, not trades; a month of bars is a longer history than a
day of trades in the same file size. A row is one closed bar stamped at its close (the time of
its last trade, as mlfinpy and most vendors stamp bars). What a file cannot say is replaced by
the nearest thing it does say, and each choice is documented rather than guessed silently:

* ``start_ns`` of bar k is the close of bar k-1 (the first trade's stamp is not in the file), so
  ``dt_s`` = close-to-close time, floored at ``min_dt_s`` like ``build_bars``. The first row has
  no predecessor and therefore no elapsed time: it is dropped (``Bars`` counts from row 2).
* ``vwap`` = dollar value / volume when the file has a dollar column, else the typical price
  (high + low + close) / 3; ``count`` = 0 when the file has no trade-count column.
* ``first_event``/``last_event`` are the bar's data-row index in the file (there are no events).

Anything else wrong (unparsable stamp, non-finite or non-positive number, a high below the
open/close or a low above them, a vwap outside [low, high], unsorted stamps) raises
``DataValidationError`` naming the file, row and field.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from liquidedge.data.bars import BAR_KINDS, DEFAULT_MIN_DT_S, Bars, _check_threshold
from liquidedge.data.ticks import (Finding, _numeric, check_epoch_unit, lookup_preset, parse_stamp_column,
                                   read_frame, row_note)
from liquidedge.data.timeutil import NS_PER_S
from liquidedge.errors import ConfigError, DataValidationError


@dataclass(frozen=True)
class BarColumnMap:
    """Which columns of an OHLCV file hold what; ``dollar``/``count`` may be ``None`` (absent).

    ``tz`` is the zone of naive stamps (``None``: UTC); ``epoch_unit`` the unit of integer stamps.
    """
    timestamp: str = "timestamp"
    open: str = "open"
    high: str = "high"
    low: str = "low"
    close: str = "close"
    volume: str = "volume"
    dollar: str | None = None
    count: str | None = None
    tz: str | None = None
    epoch_unit: str = "ns"

    def __post_init__(self):
        check_epoch_unit(self.epoch_unit)

    @classmethod
    def preset(cls, name: str) -> "BarColumnMap":
        return lookup_preset(BAR_PRESETS, name, "bar column preset")

    def roles(self) -> dict[str, str]:
        """Role -> column name, for the columns this map uses."""
        names = ("timestamp", "open", "high", "low", "close", "volume", "dollar", "count")
        return {r: getattr(self, r) for r in names if getattr(self, r) is not None}


BAR_PRESETS: dict[str, BarColumnMap] = {
    "default": BarColumnMap(),
    # mlfinpy's bar samples (e.g. dollar_bar_sample.csv): naive stamps in CME time, like its ticks
    "mlfinpy": BarColumnMap("date_time", volume="cum_vol", dollar="cum_dollar", count="cum_ticks",
                            tz="America/Chicago"),
}


def load_bar_file(path: str | Path, columns: BarColumnMap | str = "default", *, kind: str = "dollar",
                  threshold: float | str = 0.0, min_dt_s: float = DEFAULT_MIN_DT_S) -> Bars:
    """Read an OHLCV bar file (CSV/TSV/Parquet) into validated ``Bars`` (see the module notes).

    ``kind``/``threshold`` say how the file's bars were made (recorded in ``Bars`` and checked
    against a ``DataSpec`` later; a duration such as ``"5min"`` for time bars, kept in seconds);
    ``threshold`` 0 means "unknown" and is allowed for any kind.
    """
    if kind not in BAR_KINDS:
        raise ConfigError(f"kind {kind!r}: expected one of {BAR_KINDS}")
    threshold = _check_threshold(kind, threshold)[0] if threshold else 0.0
    cmap = BarColumnMap.preset(columns) if isinstance(columns, str) else columns
    if not isinstance(cmap, BarColumnMap):
        raise ConfigError(f"columns: expected a BarColumnMap or preset name, got {type(columns).__name__}")
    df, name, line_offset = read_frame(path)
    header = list(df.columns)
    for role, col in cmap.roles().items():
        if col not in header:
            raise DataValidationError(f"missing column {col!r} (the {role} column)", file=name, field=col,
                                      expected=f"one of the header columns {header}")
    if len(df) < 2:
        raise DataValidationError(f"{len(df)} data rows", file=name,
                                  expected="at least 2 bars (the first only marks the start of the second)")

    rownote = row_note(line_offset)
    findings: list[Finding] = []
    time_ns, _, tz = parse_stamp_column(df, cmap, name, findings, rownote)
    cols = {role: _numeric(df[col], col, findings, rownote)
            for role, col in cmap.roles().items() if role != "timestamp"}
    if findings:
        raise findings[0].to_error(name)
    _check_values(cols, cmap, time_ns, name, rownote)

    o, h, lo, c, v = (cols[r] for r in ("open", "high", "low", "close", "volume"))
    vwap = cols["dollar"] / np.where(v > 0, v, 1.0) if "dollar" in cols else (h + lo + c) / 3.0
    vwap = np.where(v > 0, vwap, c)
    if "dollar" in cols:
        off = (v > 0) & ((vwap < lo * (1 - 1e-9)) | (vwap > h * (1 + 1e-9)))
        if off.any():
            i = int(np.flatnonzero(off)[0])
            raise DataValidationError(
                f"dollar / volume = {vwap[i]:.6g} lies outside [low, high] = [{lo[i]:.6g}, {h[i]:.6g}]{rownote(i)}",
                file=name, row=i + 1, field=cmap.dollar,
                expected="the sum of price * size over the bar's trades (no contract multiplier)")
    count = cols.get("count", np.zeros(len(c)))
    dt_s = np.maximum(np.diff(time_ns) / NS_PER_S, min_dt_s)
    rows = np.arange(1, len(c))
    return Bars(start_ns=time_ns[:-1], end_ns=time_ns[1:], dt_s=dt_s, open=o[1:], high=h[1:], low=lo[1:],
                close=c[1:], volume=v[1:], count=np.round(count[1:]).astype(np.int64), vwap=vwap[1:],
                first_event=rows, last_event=rows, kind=kind, threshold=threshold, min_dt_s=min_dt_s,
                n_floored=int(np.count_nonzero(dt_s <= min_dt_s)), partial_last=False, tz=tz)


def _check_values(cols: dict[str, np.ndarray], cmap: BarColumnMap, time_ns: np.ndarray, name: str,
                  rownote) -> None:
    """The first violated rule, as a ``DataValidationError`` naming row and field."""
    o, h, lo, c = cols["open"], cols["high"], cols["low"], cols["close"]
    checks = [(role, ~np.isfinite(cols[role]), "not a finite number", "a finite number")
              for role in cols]
    checks += [(role, ~(cols[role] > 0), "price must be > 0", "prices > 0")
               for role in ("open", "high", "low", "close")]
    checks += [(role, ~(cols[role] >= 0), "must be >= 0", "a non-negative amount")
               for role in ("volume", "dollar", "count") if role in cols]
    checks += [("high", h < np.maximum(np.maximum(o, c), lo), "high is below the open, low or close",
                "high >= max(open, low, close)"),
               ("low", lo > np.minimum(o, c), "low is above the open or close", "low <= min(open, close)")]
    for role, bad, message, expected in checks:
        bad = np.asarray(bad, bool)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            col = getattr(cmap, role)
            raise DataValidationError(f"{message}: {cols[role][i]!r}{rownote(i)}", file=name, row=i + 1,
                                      field=col, expected=expected)
    back = np.diff(time_ns) < 0
    if back.any():
        i = int(np.flatnonzero(back)[0]) + 1
        raise DataValidationError(f"timestamp goes back in time{rownote(i)}", file=name, row=i + 1,
                                  field=cmap.timestamp, expected="bars in time order (non-decreasing close stamps)")
