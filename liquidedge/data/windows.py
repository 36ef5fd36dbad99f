"""Rolling windows over bars, resampled to a fixed number of steps T with a dt vector and a mask.

The LTC reads a fixed-shape input [T, F] plus the elapsed time of every step, so a window of any
number of bars is brought to T steps without losing the path's shape:

* more than T bars: consecutive bars are merged into T near-equal groups (group g holds bars
  ``a + g*L//T .. a + (g+1)*L//T - 1``): open of the first, close of the last, max high, min low,
  summed volume/count/dt, volume-weighted vwap (``close`` when the group's volume is 0);
* T bars or fewer: one step per bar, left-padded; padding steps have every field 0, ``dt_s`` 0 and
  ``mask`` False, and the model treats them as no-ops.

A window ending at bar j uses bars ``a..j`` only (never a later one); ``end_ns`` is bar j's end.
Windows are "the last ``span``" (bars ending in ``(end_j - span, end_j]``), "the last ``last``
bars", or one explicit ``start..end`` range. ``every`` emits a window every k bars (at bars j with
``(j + 1) % k == 0``) or, given a duration, at the first bar ending in each new epoch-aligned
interval. The batch form (``make_windows``) and the streaming form (``StreamingWindower``) share
the same resampling code and emission rule, so they produce identical windows.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from liquidedge.data.bars import DEFAULT_MIN_DT_S, Bars, StreamingBarBuilder
from liquidedge.data.timeutil import parse_duration_ns, parse_time_ns
from liquidedge.errors import ConfigError

_STEP_FIELDS = ("open", "high", "low", "close", "volume", "count", "vwap", "dt_s")
_BAR_FIELDS = ("open", "high", "low", "close", "volume", "count", "vwap", "dt_s", "end_ns")


@dataclass
class WindowBatch:
    """N windows of T steps. Per-step arrays are [N, T]; ``mask`` marks real (non-padding) steps.

    ``end_ns``/``end_bar``: stamp and index of each window's last bar (the window sees nothing
    later); ``start_bar``: its first bar; ``n_bars``: bars it covers before resampling.
    """
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    count: np.ndarray
    vwap: np.ndarray
    dt_s: np.ndarray
    mask: np.ndarray
    end_ns: np.ndarray
    end_bar: np.ndarray
    start_bar: np.ndarray
    n_bars: np.ndarray

    def __len__(self) -> int:
        return len(self.end_ns)

    @property
    def steps(self) -> int:
        return self.mask.shape[1]

    def take(self, index) -> "WindowBatch":
        """Windows selected by an index array, slice or boolean mask."""
        return WindowBatch(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @staticmethod
    def concat(parts: list["WindowBatch"], steps: int) -> "WindowBatch":
        """Join batches along N (an empty list gives an empty batch of ``steps`` steps)."""
        if not parts:
            return _empty_batch(steps)
        return WindowBatch(**{f.name: np.concatenate([getattr(p, f.name) for p in parts])
                              for f in fields(WindowBatch)})


def _empty_batch(steps: int) -> WindowBatch:
    z = np.zeros((0, steps))
    zi = np.zeros(0, np.int64)
    return WindowBatch(z, z, z, z, z, np.zeros((0, steps), np.int64), z, z,
                       np.zeros((0, steps), bool), zi, zi, zi, zi)


@dataclass(frozen=True)
class WindowSpec:
    """How windows are cut: ``steps`` T; one of ``span`` (duration) / ``last`` (bars) /
    ``start``+``end`` (times); ``every`` (bars or a duration); ``min_bars`` a window needs."""
    steps: int = 64
    span: str | float | None = None
    last: int | None = None
    start: object = None
    end: object = None
    every: int | str = 1
    min_bars: int = 1

    def __post_init__(self):
        if not _is_int(self.steps) or self.steps < 1:
            raise ConfigError(f"steps: expected an integer >= 1, got {self.steps!r}")
        ranged = self.start is not None or self.end is not None
        if sum([self.span is not None, self.last is not None, ranged]) > 1:
            raise ConfigError("give only one of span, last, or start/end for a window")
        if ranged and (self.start is None or self.end is None):
            raise ConfigError("an explicit window needs both start and end")
        if self.span is not None:
            parse_duration_ns(self.span, what="window span")
        if self.last is not None and (not _is_int(self.last) or self.last < 1):
            raise ConfigError(f"last: expected a number of bars >= 1, got {self.last!r}")
        if isinstance(self.every, str):
            parse_duration_ns(self.every, what="window interval 'every'")
        elif not _is_int(self.every) or self.every < 1:
            raise ConfigError(f"every: expected bars >= 1 or a duration like '15min', got {self.every!r}")
        if not _is_int(self.min_bars) or self.min_bars < 1:
            raise ConfigError(f"min_bars: expected an integer >= 1, got {self.min_bars!r}")

    @property
    def span_ns(self) -> int | None:
        return None if self.span is None else parse_duration_ns(self.span, what="window span")

    @property
    def every_ns(self) -> int | None:
        return parse_duration_ns(self.every, what="every") if isinstance(self.every, str) else None

    @property
    def n_last(self) -> int:
        """Bars per window when counted ('last N'); defaults to ``steps``."""
        return self.last if self.last is not None else self.steps


def _is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


# ------------------------------------------------------------------------------- shared core
def _window_starts(end_ns: np.ndarray, js: np.ndarray, spec: WindowSpec) -> np.ndarray:
    """First bar of the window ending at each bar in ``js`` (indices into ``end_ns``; the
    streaming ring only ever drops bars no future window can reach, so local indices work)."""
    if spec.span is not None:
        return np.searchsorted(end_ns, end_ns[js] - spec.span_ns, side="right")
    return np.maximum(js - spec.n_last + 1, 0)


def emitting_bars(end_ns: np.ndarray, first_global: int, prev_end: int | None, spec: WindowSpec) -> np.ndarray:
    """Local indices of the bars (global index ``first_global + i``) that emit a window.

    The cadence rule, in one place for batch, streaming and the edge loop: every k-th bar
    (global index j with (j+1) % k == 0), or the first bar ending in each new ``every`` interval.
    ``prev_end`` is the end time of the bar before ``end_ns[0]`` (None at the stream start).
    """
    n = len(end_ns)
    if spec.every_ns is None:
        k = spec.every
        return np.flatnonzero((first_global + np.arange(n) + 1) % k == 0)
    key = end_ns // spec.every_ns
    prev = np.empty(n, np.int64)
    prev[1:] = key[:-1]
    if n:
        prev[0] = key[0] - 1 if prev_end is None else prev_end // spec.every_ns
    return np.flatnonzero(key != prev)


def _resample(cols: dict[str, np.ndarray], a: np.ndarray, j: np.ndarray, steps: int) -> dict:
    """Bars ``a[n]..j[n]`` (local indices into ``cols``) -> per-step [N, T] arrays + mask."""
    T = steps
    N = len(a)
    L = (j - a + 1)[:, None]
    g = np.arange(T)[None, :]
    a2 = a[:, None]
    merged = L > T
    pad = T - L
    gs = np.where(merged, a2 + (g * L) // T, a2 + g - pad)
    ge = np.where(merged, a2 + ((g + 1) * L) // T - 1, gs)
    mask = np.broadcast_to(merged | (g >= pad), (N, T)).copy()
    gs = np.where(mask, gs, 0)
    ge = np.where(mask, ge, 0)
    out = {name: cols[name][gs] for name in ("open", "high", "low", "volume", "count", "vwap", "dt_s")}
    out["close"] = cols["close"][ge]
    multi = mask & (ge > gs)
    if multi.any():
        s = gs[multi]
        size = ge[multi] - s + 1
        offsets = np.concatenate(([0], np.cumsum(size)[:-1]))
        flat = np.repeat(s - offsets, size) + np.arange(int(size.sum()))
        vol = np.add.reduceat(cols["volume"][flat], offsets)
        pv = np.add.reduceat(cols["vwap"][flat] * cols["volume"][flat], offsets)
        out["high"][multi] = np.maximum.reduceat(cols["high"][flat], offsets)
        out["low"][multi] = np.minimum.reduceat(cols["low"][flat], offsets)
        out["count"][multi] = np.add.reduceat(cols["count"][flat], offsets)
        out["dt_s"][multi] = np.add.reduceat(cols["dt_s"][flat], offsets)
        out["volume"][multi] = vol
        close = out["close"][multi]
        with np.errstate(invalid="ignore", divide="ignore"):
            out["vwap"][multi] = np.where(vol > 0, pv / np.where(vol > 0, vol, 1.0), close)
    for name in _STEP_FIELDS:
        out[name][~mask] = 0
    out["mask"] = mask
    return out


def _batch_from(cols, a, j, steps, base) -> WindowBatch:
    res = _resample(cols, a, j, steps)
    return WindowBatch(**{k: res[k] for k in _STEP_FIELDS}, mask=res["mask"],
                       end_ns=cols["end_ns"][j].astype(np.int64), end_bar=(j + base).astype(np.int64),
                       start_bar=(a + base).astype(np.int64), n_bars=(j - a + 1).astype(np.int64))


# ------------------------------------------------------------------------------- batch form
def make_windows(bars: Bars, steps: int = 64, span: str | float | None = None, *,
                 last: int | None = None, start=None, end=None, every: int | str = 1,
                 min_bars: int = 1, tz: str | None = None) -> WindowBatch:
    """Cut ``bars`` into windows of ``steps`` steps (see the module docstring for the rules).

    ``span``: "the last D" (``"3d"``, ``"90min"``, seconds); ``last``: the last N bars (default
    ``steps`` when neither is given); ``start``/``end``: one explicit window (times as ISO
    strings, datetimes or epoch ns; naive ones in ``tz``, default the bars' tz). Windows with fewer
    than ``min_bars`` bars are not emitted.
    """
    spec = WindowSpec(steps, span, last, start, end, every, min_bars)
    return windows_from_spec(bars, spec, tz=tz)


def windows_from_spec(bars: Bars, spec: WindowSpec, *, tz: str | None = None) -> WindowBatch:
    """``make_windows`` with a ready ``WindowSpec``."""
    cols = {name: getattr(bars, name) for name in _BAR_FIELDS}
    end_ns = bars.end_ns
    if spec.start is not None:
        zone = tz or bars.tz
        t0 = parse_time_ns(spec.start, tz=zone, what="window start")
        t1 = parse_time_ns(spec.end, tz=zone, what="window end")
        if t1 < t0:
            raise ConfigError(f"window end {spec.end!r} is before its start {spec.start!r}")
        a = int(np.searchsorted(end_ns, t0, side="left"))
        j = int(np.searchsorted(end_ns, t1, side="right")) - 1
        if j < a:
            raise ConfigError(f"no bar ends between {spec.start!r} and {spec.end!r}")
        return _batch_from(cols, np.array([a]), np.array([j]), spec.steps, 0)
    js = emitting_bars(end_ns, 0, None, spec)
    a = _window_starts(end_ns, js, spec)
    keep = (js - a + 1) >= spec.min_bars
    return _batch_from(cols, a[keep], js[keep], spec.steps, 0)


# --------------------------------------------------------------------------- streaming form
class _BarRing:
    """The recent bars a window may still need: append at the tail, drop from the head.

    Backed by growable arrays compacted on reallocation, so appends are O(1) amortised.
    """

    def __init__(self, capacity: int = 1024):
        self.cols = {name: np.empty(capacity, np.int64 if name in ("count", "end_ns") else np.float64)
                     for name in _BAR_FIELDS}
        self.head = 0      # slot of the oldest kept bar
        self.tail = 0      # slot after the newest bar
        self.base = 0      # global bar index of slot 0

    def append(self, bars: Bars) -> None:
        n = len(bars)
        cap = len(self.cols["end_ns"])
        if self.tail + n > cap:
            live = self.tail - self.head
            new_cap = max(cap, 2 * (live + n))
            for name, arr in self.cols.items():
                fresh = np.empty(new_cap, arr.dtype)
                fresh[:live] = arr[self.head:self.tail]
                self.cols[name] = fresh
            self.base += self.head
            self.tail = live
            self.head = 0
        for name in _BAR_FIELDS:
            self.cols[name][self.tail:self.tail + n] = getattr(bars, name)
        self.tail += n

    def drop_before(self, global_index: int) -> None:
        self.head = max(self.head, min(global_index - self.base, self.tail))


class StreamingWindower:
    """Emit windows as bars (or events) arrive, identical to ``make_windows`` on the same data.

    ``push_bars(bars)`` takes closed bars in order; ``push_events(time_ns, price, size)`` builds
    bars first (requires ``bar_kind``/``bar_threshold``). Both return the windows completed by
    the input (a ``WindowBatch``, possibly empty). Only bars a future window can still use are
    kept, so memory is bounded by the window length and work per bar is O(1) amortised plus the
    cost of each emitted window.
    """

    def __init__(self, steps: int = 64, span: str | float | None = None, *, last: int | None = None,
                 every: int | str = 1, min_bars: int = 1, bar_kind: str | None = None,
                 bar_threshold: float | str | None = None, min_dt_s: float = DEFAULT_MIN_DT_S,
                 tz: str = "UTC"):
        self.spec = WindowSpec(steps, span, last, None, None, every, min_bars)
        self.builder = None
        if bar_kind is not None:
            if bar_threshold is None:
                raise ConfigError("bar_threshold is required with bar_kind")
            self.builder = StreamingBarBuilder(bar_kind, bar_threshold, min_dt_s=min_dt_s, tz=tz)
        self._ring = _BarRing()
        self.n_bars = 0
        self._last_end: int | None = None

    def push_events(self, time_ns, price, size=None) -> WindowBatch:
        """Feed events (arrays or scalars); return the windows they completed."""
        if self.builder is None:
            raise ConfigError("push_events needs a bar_kind and bar_threshold; use push_bars otherwise")
        return self.push_bars(self.builder.update(time_ns, price, size))

    def push_bars(self, bars: Bars) -> WindowBatch:
        """Feed closed bars in time order; return the windows they completed."""
        n = len(bars)
        if n == 0:
            return _empty_batch(self.spec.steps)
        ring = self._ring
        first_global = self.n_bars
        ring.append(bars)
        self.n_bars += n
        lo, hi = ring.head, ring.tail
        cols = {name: arr[lo:hi] for name, arr in ring.cols.items()}
        local0 = first_global - (ring.base + lo)        # local index of the first new bar
        js = emitting_bars(bars.end_ns, first_global, self._last_end, self.spec) + local0
        self._last_end = int(bars.end_ns[-1])
        # windows for every new bar decide how far back the next ones can reach
        newest = np.array([hi - lo - 1])
        a_newest = int(_window_starts(cols["end_ns"], newest, self.spec)[0])
        out = _empty_batch(self.spec.steps)
        if js.size:
            a = _window_starts(cols["end_ns"], js, self.spec)
            keep = (js - a + 1) >= self.spec.min_bars
            out = _batch_from(cols, a[keep], js[keep], self.spec.steps, ring.base + lo)
        ring.drop_before(ring.base + lo + a_newest)
        return out

    def flush(self) -> WindowBatch:
        """Close the open bar (end of stream) and return any window it completes."""
        if self.builder is None:
            return _empty_batch(self.spec.steps)
        return self.push_bars(self.builder.flush())
