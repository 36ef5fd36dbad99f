"""Bars: group events into time, tick, volume or dollar bars (López de Prado, AFML ch. 2).

Information-driven bars (volume, dollar) sample the market more evenly in information than clock
bars, and each bar keeps the real elapsed time ``dt_s`` since the previous bar, which is what the
LTC integrates over. One implementation serves batch and streaming: ``build_bars`` is a
``StreamingBarBuilder`` fed one chunk, so streaming and batch bars are identical by construction
(and tested to be). Per chunk the work is vectorised (cumsum + searchsorted); the only Python loop
walks bar boundaries (one step per *bar*, not per event).

Rules:
* volume/dollar bars close on the first event whose cumulative size (price*size) since the bar
  opened reaches the threshold; that event is included whole (trades are never split), the next
  bar starts from zero. Volume is conserved; every event is in exactly one bar.
* time bars are aligned to the epoch (``t // interval``); empty intervals produce no bar (a halt
  is skipped) but the next bar's ``dt_s`` spans the halt. A time bar closes when an event of a
  later interval arrives.
* ``start_ns``/``end_ns`` are the stamps of a bar's first/last event. ``dt_s`` = this bar's end
  minus the previous bar's end (first bar: end - start), floored at ``min_dt_s`` (the clock
  resolution) so it is always > 0 even for bars ending on duplicate stamps; ``n_floored`` counts
  the floored bars.
* sums use running cumulative totals (``volume = C[last] - C[first-1]``), which makes the result
  independent of chunking; ``vwap`` is ``close`` for a bar of zero volume.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

from liquidedge.data.ticks import Events, validate_events
from liquidedge.data.timeutil import NS_PER_S, parse_duration_ns
from liquidedge.errors import ConfigError, DataValidationError

BAR_KINDS = ("time", "tick", "volume", "dollar")
DEFAULT_MIN_DT_S = 1e-3

_ARRAYS = {"start_ns": np.int64, "end_ns": np.int64, "dt_s": np.float64, "open": np.float64,
           "high": np.float64, "low": np.float64, "close": np.float64, "volume": np.float64,
           "count": np.int64, "vwap": np.float64, "first_event": np.int64, "last_event": np.int64}


@dataclass
class Bars:
    """Bars as parallel arrays (one entry per bar) plus how they were made.

    ``first_event``/``last_event`` are inclusive indices into the source events;
    ``partial_last`` is True when the last bar had not closed (end of data, see ``build_bars``).
    """
    start_ns: np.ndarray
    end_ns: np.ndarray
    dt_s: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    count: np.ndarray
    vwap: np.ndarray
    first_event: np.ndarray
    last_event: np.ndarray
    kind: str = "volume"
    threshold: float = 0.0
    min_dt_s: float = DEFAULT_MIN_DT_S
    n_floored: int = 0
    partial_last: bool = False
    tz: str = "UTC"

    def __post_init__(self):
        n = None
        for name, dtype in _ARRAYS.items():
            arr = np.ascontiguousarray(getattr(self, name), dtype=dtype)
            if arr.ndim != 1 or (n is not None and len(arr) != n):
                raise DataValidationError(f"bars array has shape {arr.shape}", field=name,
                                          expected=f"1-D with {n} entries like start_ns")
            n = len(arr)
            setattr(self, name, arr)

    def __len__(self) -> int:
        return len(self.end_ns)

    def columns(self) -> dict[str, np.ndarray]:
        """The per-bar arrays by name."""
        return {name: getattr(self, name) for name in _ARRAYS}

    def meta(self) -> dict:
        """The non-array settings (kind, threshold, min_dt_s, n_floored, partial_last, tz)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _ARRAYS}

    def slice(self, start: int | None = None, stop: int | None = None) -> "Bars":
        """Bars ``start:stop``; ``n_floored`` is recounted, ``partial_last`` kept only if the end is kept."""
        sl = slice(start, stop)
        cols = {k: v[sl] for k, v in self.columns().items()}
        meta = self.meta()
        meta["partial_last"] = self.partial_last and sl.indices(len(self))[1] == len(self)
        meta["n_floored"] = int(np.count_nonzero(cols["dt_s"] <= self.min_dt_s))
        return Bars(**cols, **meta)

    @staticmethod
    def concat(parts: list["Bars"], *, template: "Bars | None" = None) -> "Bars":
        """Join consecutive bar batches (e.g. streamed chunks)."""
        parts = [p for p in parts if p is not None]
        if not parts:
            if template is None:
                raise ConfigError("Bars.concat needs at least one part or a template")
            return template.slice(0, 0)
        cols = {k: np.concatenate([p.columns()[k] for p in parts]) for k in _ARRAYS}
        meta = parts[-1].meta()
        meta["n_floored"] = sum(p.n_floored for p in parts)
        nonempty = [p for p in parts if len(p)]
        meta["partial_last"] = bool(nonempty) and nonempty[-1].partial_last
        return Bars(**cols, **meta)

    def to_frame(self):
        """A pandas DataFrame (imported here only: the edge side never calls this)."""
        import pandas as pd
        return pd.DataFrame(self.columns())


def _check_threshold(kind: str, threshold) -> tuple[float, int]:
    """(threshold as float, integer parameter for time (ns) / tick (count) bars)."""
    if kind not in BAR_KINDS:
        raise ConfigError(f"bar kind {kind!r}: expected one of {BAR_KINDS}")
    if kind == "time":
        ns = parse_duration_ns(threshold, what="time bar interval")
        return ns / NS_PER_S, ns
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.integer, np.floating)):
        raise ConfigError(f"{kind} bar threshold: expected a number, got {threshold!r}")
    value = float(threshold)
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{kind} bar threshold: expected a finite number > 0, got {threshold!r}")
    if kind == "tick":
        if value != int(value):
            raise ConfigError(f"tick bar threshold: expected a whole number of events, got {threshold!r}")
        return value, int(value)
    return value, 0


class StreamingBarBuilder:
    """Turn a stream of event chunks into closed bars, O(1) state, O(chunk) work per chunk.

    ``update(time_ns, price, size)`` returns the bars closed by this chunk (possibly none);
    ``flush()`` closes and returns the open bar (marked ``partial_last``). Chunks may be any size,
    down to single events; the output does not depend on how the stream was chunked.
    """

    def __init__(self, kind: str = "volume", threshold: float | str = 500, *,
                 min_dt_s: float = DEFAULT_MIN_DT_S, tz: str = "UTC", validate: bool = True):
        self.kind = kind
        self.threshold, self._param = _check_threshold(kind, threshold)
        if not (isinstance(min_dt_s, (int, float)) and math.isfinite(min_dt_s) and min_dt_s > 0):
            raise ConfigError(f"min_dt_s: expected seconds > 0 (the clock resolution), got {min_dt_s!r}")
        self.min_dt_s = float(min_dt_s)
        self.tz = tz
        self.validate = validate
        self.n_events = 0          # events seen so far (global index of the next one)
        self.n_bars = 0            # bars emitted so far
        self._cum_v = 0.0          # running sum of sizes over all events seen
        self._cum_pv = 0.0         # running sum of price*size
        self._last_ns: int | None = None
        self._prev_end: int | None = None  # end_ns of the last emitted bar
        self._open: dict | None = None     # aggregate of the bar being built

    # -- public -------------------------------------------------------------------------------
    def update(self, time_ns, price, size=None) -> Bars:
        """Feed events (arrays or scalars, in time order); return the bars they closed."""
        t = np.atleast_1d(np.asarray(time_ns, dtype=np.int64))
        p = np.atleast_1d(np.asarray(price, dtype=np.float64))
        v = np.ones_like(p) if size is None else np.atleast_1d(np.asarray(size, dtype=np.float64))
        m = len(t)
        if m == 0:
            return self._emit(None)
        if self.validate:
            validate_events(Events(t, p, v), row_offset=self.n_events, after_ns=self._last_ns)
        elif len(p) != m or len(v) != m:
            raise DataValidationError("time_ns, price and size differ in length", field="size")
        cv = np.cumsum(np.concatenate(([self._cum_v], v)))          # cv[i] = total before event i
        cpv = np.cumsum(np.concatenate(([self._cum_pv], p * v)))
        pre = None
        if self.kind == "time" and self._open is not None and t[0] // self._param != self._open["key"]:
            pre = self._open  # a later interval began: the open bar is complete
            self._open = None
        ends = self._bar_ends(t, cv, cpv)
        starts = np.concatenate(([0], ends + 1))
        starts = starts[starts < m]
        last = np.concatenate((ends, [m - 1]))[: len(starts)]
        g = self.n_events
        seg = {"start_ns": t[starts], "open": p[starts], "high": np.maximum.reduceat(p, starts),
               "low": np.minimum.reduceat(p, starts), "first_event": g + starts,
               "cv0": cv[starts], "cpv0": cpv[starts], "end_ns": t[last], "close": p[last],
               "last_event": g + last, "cv1": cv[last + 1], "cpv1": cpv[last + 1]}
        cont = self._open  # the bar left open by the previous chunk, continued by segment 0
        if cont is not None:
            for name in ("start_ns", "open", "first_event", "cv0", "cpv0"):
                seg[name][0] = cont[name]
            seg["high"][0] = max(cont["high"], seg["high"][0])
            seg["low"][0] = min(cont["low"], seg["low"][0])
        n_closed = len(ends)
        self._open = None
        if n_closed < len(starts):  # the last segment stays open
            k = len(starts) - 1
            self._open = {name: arr[k].item() for name, arr in seg.items()}
            self._open["key"] = (cont["key"] if k == 0 and cont is not None
                                 else self._key(t, cv, cpv, int(starts[k])))
        closed = {name: arr[:n_closed] for name, arr in seg.items()}
        if pre is not None:
            closed = {name: np.concatenate(([pre[name]], arr)) for name, arr in closed.items()}
        self.n_events += m
        self._cum_v, self._cum_pv = float(cv[-1]), float(cpv[-1])
        self._last_ns = int(t[-1])
        return self._emit(closed)

    def flush(self) -> Bars:
        """Close the open bar, if any, and return it marked ``partial_last`` (end of data)."""
        agg, self._open = self._open, None
        out = self._emit(None if agg is None else {k: np.asarray([v]) for k, v in agg.items()})
        out.partial_last = len(out) > 0
        return out

    @property
    def open_bar_events(self) -> int:
        """How many events sit in the bar being built (not yet emitted)."""
        return 0 if self._open is None else self.n_events - self._open["first_event"]

    # -- internals ----------------------------------------------------------------------------
    def _key(self, t, cv, cpv, s):
        """What decides when the bar starting at local event ``s`` closes."""
        if self.kind == "time":
            return int(t[s] // self._param)
        if self.kind == "volume":
            return float(cv[s] + self.threshold)
        if self.kind == "dollar":
            return float(cpv[s] + self.threshold)
        return None

    def _bar_ends(self, t, cv, cpv) -> np.ndarray:
        """Local indices of the events that close a bar in this chunk, ascending."""
        m = len(t)
        if self.kind == "tick":
            k = self._param
            first = (k - 1 - self.n_events) % k
            return np.arange(first, m, k, dtype=np.int64)
        if self.kind == "time":
            key = t // self._param
            return np.flatnonzero(key[1:] != key[:-1]).astype(np.int64)
        c = cv if self.kind == "volume" else cpv
        after = c[1:]                                              # total after event i
        target_open = self._open["key"] if self._open is not None else None
        nxt = np.searchsorted(after, c[:-1] + self.threshold, side="left").tolist()
        ends = []
        s = 0
        if target_open is not None:
            j = int(np.searchsorted(after, target_open, side="left"))
            if j >= m:
                return np.empty(0, np.int64)
            ends.append(j)
            s = j + 1
        while s < m:  # one step per bar
            j = nxt[s]
            if j >= m:
                break
            ends.append(j)
            s = j + 1
        return np.asarray(ends, dtype=np.int64)

    def _emit(self, seg: dict | None) -> Bars:
        """Closed-bar aggregates (arrays by name) -> ``Bars`` with dt, volume, count, vwap."""
        if seg is None:
            seg = {name: np.empty(0) for name in ("start_ns", "end_ns", "open", "high", "low", "close",
                                                  "first_event", "last_event", "cv0", "cv1",
                                                  "cpv0", "cpv1")}
        n = len(seg["end_ns"])
        volume = np.asarray(seg["cv1"], np.float64) - seg["cv0"]
        pv = np.asarray(seg["cpv1"], np.float64) - seg["cpv0"]
        close = np.asarray(seg["close"], np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            vwap = np.where(volume > 0, pv / np.where(volume > 0, volume, 1.0), close)
        ends = np.asarray(seg["end_ns"], np.int64)
        floored = 0
        dt = np.empty(n)
        if n:
            prev = np.empty(n, np.int64)
            prev[0] = seg["start_ns"][0] if self._prev_end is None else self._prev_end
            prev[1:] = ends[:-1]
            raw = (ends - prev) / NS_PER_S
            dt = np.maximum(raw, self.min_dt_s)
            floored = int(np.count_nonzero(raw < self.min_dt_s))
            self._prev_end = int(ends[-1])
        self.n_bars += n
        first = np.asarray(seg["first_event"], np.int64)
        last = np.asarray(seg["last_event"], np.int64)
        return Bars(start_ns=seg["start_ns"], end_ns=ends, dt_s=dt, open=seg["open"], high=seg["high"],
                    low=seg["low"], close=close, volume=volume, count=last - first + 1, vwap=vwap,
                    first_event=first, last_event=last, kind=self.kind, threshold=self.threshold,
                    min_dt_s=self.min_dt_s, n_floored=floored, partial_last=False, tz=self.tz)


def build_bars(events: Events, kind: str = "volume", threshold: float | str = 500, *,
               min_dt_s: float = DEFAULT_MIN_DT_S, partial: str = "keep") -> Bars:
    """Group ``events`` into bars of ``kind`` ("time", "tick", "volume", "dollar").

    ``threshold``: interval for time bars (``"5min"`` or seconds), events per bar for tick bars,
    size per bar for volume bars, price*size per bar for dollar bars. ``partial="keep"`` keeps
    the unfinished last bar (``bars.partial_last``) so every event is in a bar; ``"drop"`` leaves
    it out, which is what a live stream would have emitted so far. A time bar is never known to be
    complete until a later event arrives, so its last bar always counts as partial.
    """
    if partial not in ("keep", "drop"):
        raise ConfigError(f"partial {partial!r}: expected 'keep' or 'drop'")
    builder = StreamingBarBuilder(kind, threshold, min_dt_s=min_dt_s, tz=events.tz, validate=False)
    validate_events(events)  # names events.source in any error
    closed = builder.update(events.time_ns, events.price, events.size)
    if partial == "drop":
        return closed
    return Bars.concat([closed, builder.flush()])


def write_bars(bars: Bars, path) -> None:
    """Write bars to Parquet (or CSV by suffix), settings stored as Parquet metadata."""
    import json
    from pathlib import Path

    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    if path.suffix.lower() == ".csv":
        bars.to_frame().to_csv(path, index=False)
        return
    table = pa.table(bars.columns())
    meta = dict(table.schema.metadata or {})
    meta[b"liquidedge.bars"] = json.dumps(bars.meta()).encode()
    pq.write_table(table.replace_schema_metadata(meta), path)


def read_bars(path) -> Bars:
    """Read bars written by ``write_bars`` (Parquet)."""
    import json

    import pyarrow.parquet as pq

    table = pq.read_table(path)
    raw = (table.schema.metadata or {}).get(b"liquidedge.bars")
    if raw is None:
        raise DataValidationError("not a liquidedge bars file (no metadata)", file=str(path))
    cols = {name: table.column(name).to_numpy() for name in _ARRAYS}
    return Bars(**cols, **json.loads(raw))
