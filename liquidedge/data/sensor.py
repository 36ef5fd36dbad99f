"""Irregularly sampled sensor streams -> windows of the last T readings for the ``sensor`` task.

A sensor has no trades to group into bars: every reading matters, and so does the real time since
the previous one (a dropped sample is a longer dt, not a missing row). A window is the last
``steps`` readings; each step carries the standardised value, its change since the previous
reading and ``log dt``. The target is the standardised reading ``horizon`` readings after the
window (``target="next"``), or its change from the window's last reading (``target="change"``:
the same forecast with persistence as its zero, much easier to learn), strictly in the future
(never among the features); ``NaN`` with ``target_valid`` False where the stream ends first.

Rules, as in the bar path (``liquidedge.data.bars``): duplicate stamps are legal and nothing is
dropped; dt is floored at the clock resolution ``min_dt_s`` so it is always > 0 (the count of
floored steps is reported by ``reading_dt``; ``clock_tick_s`` measures a coarse recorder clock,
the right floor when stamps repeat). A window never starts at the stream's first reading, whose
dt is unknown. A ``received`` mask models lost readings: windows skip them, targets do not. The
standardisation (centre, scale) is fitted on the first ``fit_fraction`` of the (received)
readings only, the part a time-ordered training split sees, so no statistic of held-out data
reaches the inputs. The result is a ``liquidedge.data.Dataset`` with ``target_value`` set,
which ``split``, ``train_model(task="sensor")`` and evaluation take as is. numpy only (the CSV
loader imports pandas inside ``load_events``).
"""
from __future__ import annotations

import importlib.util
import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np

from liquidedge.data.bars import DEFAULT_MIN_DT_S
from liquidedge.data.pipeline import Dataset
from liquidedge.data.ticks import ColumnMap, Events, check_arrays, load_events
from liquidedge.data.timeutil import NS_PER_S
from liquidedge.data.windows import WindowSpec, emitting_bars
from liquidedge.errors import ConfigError, DataValidationError, LiquidEdgeError

SENSOR_FEATURES = {
    "value": lambda z, dt: z,                       # standardised reading
    "diff": lambda z, dt: z - _previous(z),         # change since the previous reading
    "log_dt": lambda z, dt: np.log(dt),             # elapsed seconds since the previous reading
    "slope": lambda z, dt: (z - _previous(z)) / dt,  # change per second
}
SENSOR_FEATURE_NAMES: tuple[str, ...] = ("value", "diff", "log_dt")
SENSOR_TARGETS = ("next", "change")


def _previous(z: np.ndarray) -> np.ndarray:
    prev = np.empty_like(z)
    prev[1:] = z[:-1]
    prev[:1] = z[:1]   # reading 0 never enters a window (its dt is unknown)
    return prev


@dataclass(frozen=True)
class SensorSpec:
    """Every choice between readings and model inputs, recorded in the model file.

    ``steps`` readings per window; a window every ``every`` readings (or a duration such as
    ``"1s"``, same rule as ``liquidedge.data.windows``); the target is the reading ``horizon``
    readings after the window's last one, as a value (``target="next"``) or as the change from
    the last reading (``"change"``). ``center``/``scale`` standardise values (``None``: fitted on
    the first ``fit_fraction`` of the readings by ``build_sensor_dataset``).
    """
    steps: int = 32
    every: int | str = 4
    horizon: int = 1
    min_dt_s: float = DEFAULT_MIN_DT_S
    features: tuple[str, ...] = SENSOR_FEATURE_NAMES
    target: str = "next"
    center: float | None = None
    scale: float | None = None
    fit_fraction: float = 0.6

    def __post_init__(self):
        object.__setattr__(self, "features", tuple(self.features))
        self.window_spec()   # validates steps and every
        h = self.horizon
        if isinstance(h, bool) or not isinstance(h, (int, np.integer)) or h < 1:
            raise ConfigError(f"horizon: expected readings >= 1, got {h!r}")
        dt = self.min_dt_s
        if isinstance(dt, bool) or not isinstance(dt, (int, float)) or not (math.isfinite(dt) and dt > 0):
            raise ConfigError(f"min_dt_s: expected seconds > 0 (the clock resolution), got {dt!r}")
        unknown = [n for n in self.features if n not in SENSOR_FEATURES]
        if unknown or not self.features:
            raise ConfigError(f"features {list(self.features)}: expected names from {list(SENSOR_FEATURES)}")
        if self.target not in SENSOR_TARGETS:
            raise ConfigError(f"target {self.target!r}: expected one of {SENSOR_TARGETS}")
        if (self.center is None) != (self.scale is None):
            raise ConfigError("give both center and scale, or neither (then they are fitted)")
        if self.center is not None and not (math.isfinite(self.center) and math.isfinite(self.scale)
                                            and self.scale > 0):
            raise ConfigError(f"center/scale: expected finite numbers with scale > 0, got "
                              f"{self.center!r}/{self.scale!r}")
        if not 0.0 < self.fit_fraction <= 1.0:
            raise ConfigError(f"fit_fraction: expected a fraction in (0, 1], got {self.fit_fraction!r}")

    def window_spec(self) -> WindowSpec:
        return WindowSpec(self.steps, None, self.steps, None, None, self.every, self.steps)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["features"] = list(self.features)
        return {"kind": "sensor", **d}

    @classmethod
    def from_dict(cls, d: dict) -> "SensorSpec":
        d = dict(d)
        if d.pop("kind", "sensor") != "sensor":
            raise ConfigError(f"not a sensor spec: kind {d.get('kind')!r}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"SensorSpec: unknown keys {unknown}; expected some of {sorted(known)}")
        return cls(**d)


def reading_dt(time_ns: np.ndarray, min_dt_s: float = DEFAULT_MIN_DT_S) -> tuple[np.ndarray, int]:
    """Seconds since the previous reading, floored at ``min_dt_s``, and how many were floored.

    Entry 0 is NaN (nothing before it). Duplicate stamps give the floor, never 0.
    """
    t = np.asarray(time_ns, np.int64)
    dt = np.full(len(t), np.nan)
    raw = np.diff(t) / NS_PER_S
    dt[1:] = np.maximum(raw, min_dt_s)
    return dt, int(np.sum(raw < min_dt_s))


def clock_tick_s(time_ns) -> float:
    """The recorder's clock tick in seconds: the median step between consecutive distinct stamps.

    A recorder that stamps readings with a clock coarser than its sampling repeats stamps (the
    PPG sample: ~100 Hz readings, a 64 Hz clock). Within a tick the real spacing is unknown, so
    the tick is the honest ``min_dt_s``: a 1 ms floor would turn every repeated stamp into a
    near-zero dt the LTC all but skips, and the next reading into a double step.
    """
    t = np.asarray(time_ns, np.int64)
    steps = np.diff(t)
    steps = steps[steps > 0]
    if steps.size == 0:
        raise DataValidationError("fewer than two distinct stamps: no clock tick to measure",
                                  field="time_ns", expected="stamps that advance")
    return float(np.median(steps)) / NS_PER_S


def _check_stream(time_ns, values) -> tuple[np.ndarray, np.ndarray]:
    try:
        t = np.asarray(time_ns, np.int64)
        v = np.asarray(values, np.float64)
    except (TypeError, ValueError) as exc:
        raise DataValidationError(f"cannot read the stream as numbers: {exc}", field="values") from None
    if t.ndim != 1 or v.shape != t.shape:
        raise DataValidationError(f"time_ns {t.shape} and values {v.shape} differ",
                                  field="values", expected="two 1-D arrays of equal length")
    findings = check_arrays(t, v, np.ones(len(t)), fields=("time_ns", "value", "size", "side"),
                            require_positive_price=False)
    if findings:
        raise findings[0].to_error(None)
    return t, v


def fit_standardisation(values: np.ndarray, fit_fraction: float) -> tuple[float, float]:
    """(mean, std) of the first ``fit_fraction`` of the readings."""
    v = np.asarray(values, np.float64)
    head = v[:max(2, int(round(fit_fraction * len(v))))]
    center, scale = float(np.mean(head)), float(np.std(head))
    if not scale > 1e-12:
        raise DataValidationError("the readings used to fit the standardisation are constant",
                                  field="values", expected="a stream that varies (or give center/scale)")
    return center, scale


def build_sensor_dataset(time_ns, values, spec: SensorSpec | None = None, *,
                         received=None) -> Dataset:
    """Readings (stamps in epoch ns, values) -> windows, features and next-reading targets.

    ``received`` (optional bool mask over the readings) marks the readings that arrived; the
    others (dropped beats, lost packets) never enter a window, so each window holds received
    readings only, with the real dt across every gap, while the target is still the reading
    ``horizon`` after the window's last one in the *full* stream, received or not: what a
    receiver must estimate to fill the gap. ``every`` then counts received readings and
    ``end_bar`` indexes the full stream.

    Returns a ``Dataset`` whose ``spec`` is ``spec`` with the fitted ``center``/``scale`` (fitted
    on received readings) filled in; its market fields (``target_logvol``, ``target_dir``,
    ``baseline_logvol``) are NaN. Raises ``DataValidationError`` for non-finite values, unsorted
    stamps, a malformed ``received`` mask or too few readings.
    """
    spec = spec or SensorSpec()
    t_all, v_all = _check_stream(time_ns, values)
    kept = _received_index(received, len(t_all))
    t, v = t_all[kept], v_all[kept]
    n, steps, h = len(t), spec.steps, int(spec.horizon)
    if n < steps + 1:
        raise DataValidationError(f"{n} received readings cannot fill one window", field="values",
                                  expected=f"at least steps + 1 = {steps + 1} readings")
    if spec.center is None:
        center, scale = fit_standardisation(v, spec.fit_fraction)
        spec = replace(spec, center=center, scale=scale)
    z_all = (v_all - spec.center) / spec.scale
    z = z_all[kept]
    dt, _ = reading_dt(t, spec.min_dt_s)
    dt[0] = spec.min_dt_s            # placeholder, never inside a window
    per_reading = np.stack([SENSOR_FEATURES[name](z, dt) for name in spec.features], axis=1)
    ends = emitting_bars(t, 0, None, spec.window_spec())
    ends = ends[ends >= steps]       # a window's first reading needs a previous one
    idx = ends[:, None] - steps + 1 + np.arange(steps)[None, :]
    nw = len(ends)
    last = kept[ends]                # the windows' last readings, as full-stream indices
    valid = last + h <= len(t_all) - 1
    target = np.full(nw, np.nan)
    target[valid] = z_all[last[valid] + h] - (z_all[last[valid]] if spec.target == "change" else 0.0)
    nan = np.full(nw, np.nan, np.float32)
    return Dataset(x=per_reading[idx].astype(np.float32), dt_s=dt[idx].astype(np.float32),
                   mask=np.ones((nw, steps), bool), end_ns=t[ends], end_bar=last.astype(np.int64),
                   target_logvol=nan, target_dir=nan.copy(), target_valid=valid, baseline_logvol=nan.copy(),
                   spec=spec, feature_names=tuple(spec.features), target_value=target.astype(np.float32))


def _received_index(received, n: int) -> np.ndarray:
    if received is None:
        return np.arange(n)
    r = np.asarray(received)
    if r.dtype != bool or r.shape != (n,):
        raise DataValidationError(f"received has dtype {r.dtype} and shape {r.shape}", field="received",
                                  expected=f"a boolean mask of {n} readings")
    return np.flatnonzero(r)


def persistence_forecast(dataset: Dataset) -> np.ndarray:
    """The naive forecast every sensor model must beat, in the units of ``target_value``: the
    window's last (standardised) value, or no change."""
    if getattr(dataset.spec, "target", None) == "change":
        return np.zeros(len(dataset))
    if "value" not in dataset.feature_names:
        raise ConfigError("persistence_forecast needs the 'value' feature in the dataset")
    return dataset.x[:, -1, dataset.feature_names.index("value")].astype(np.float64)


def with_constant_dt(dataset: Dataset, dt_s: float | None = None) -> Dataset:
    """The same windows with the timing erased: every valid step gets ``dt_s`` (default: the
    median valid dt) and the ``log_dt``/``slope`` features are recomputed from it. The
    "dt ignored" ablation: a model fed this cannot tell a dropped sample from a regular one."""
    m = np.asarray(dataset.mask, bool)
    const = float(np.median(dataset.dt_s[m])) if dt_s is None else float(dt_s)
    if not (math.isfinite(const) and const > 0):
        raise ConfigError(f"dt_s: expected seconds > 0, got {const!r}")
    x = dataset.x.copy()
    names = tuple(dataset.feature_names)
    if "log_dt" in names:
        x[..., names.index("log_dt")] = np.where(m, np.log(const), 0.0)
    if "slope" in names:
        if "diff" not in names:
            raise ConfigError("with_constant_dt: recomputing 'slope' needs the 'diff' feature")
        x[..., names.index("slope")] = np.where(m, x[..., names.index("diff")] / const, 0.0)
    dt = np.where(m, const, 0.0).astype(np.float32)
    return replace(dataset, x=x, dt_s=dt)


def simulate_dropouts(n: int, fraction: float, *, max_run: int = 8, seed: int = 0) -> np.ndarray:
    """A boolean keep-mask over ``n`` readings with ``round(fraction * (n - 2))`` of them dropped in
    separate runs of 1..``max_run`` consecutive readings (dropped beats, radio loss) at seeded
    random places. The first and last readings are always kept, and runs never touch, so no gap
    is longer than ``max_run`` readings."""
    if not 0.0 <= fraction < 1.0:
        raise ConfigError(f"fraction: expected a fraction in [0, 1), got {fraction!r}")
    if isinstance(max_run, bool) or not isinstance(max_run, (int, np.integer)) or max_run < 1:
        raise ConfigError(f"max_run: expected readings >= 1, got {max_run!r}")
    if n < 2:
        raise ConfigError(f"n: expected at least 2 readings, got {n}")
    rng = np.random.default_rng(seed)
    goal = int(round(fraction * (n - 2)))
    lengths: list[int] = []
    total = 0
    while total < goal:
        lengths.append(min(int(rng.integers(1, max_run + 1)), goal - total))
        total += lengths[-1]
    kept = n - goal
    if kept < len(lengths) + 1:
        raise ConfigError(f"dropping {fraction:.0%} in runs of at most {max_run} leaves too few readings "
                          "to separate the runs; lower fraction or raise max_run")
    cuts = np.sort(rng.choice(np.arange(1, kept), size=len(lengths), replace=False))
    kept_parts = np.diff(np.concatenate(([0], cuts, [kept])))        # each >= 1
    sizes = np.empty(2 * len(lengths) + 1, np.int64)
    sizes[0::2] = kept_parts
    sizes[1::2] = lengths
    values = np.zeros(len(sizes), bool)
    values[0::2] = True
    return np.repeat(values, sizes)


# ----------------------------------------------------------------------------- the shipped sample
class SensorSampleMissingError(LiquidEdgeError, FileNotFoundError):
    """The sample PPG file (shipped by heartpy) is not installed."""


_PPG_RELATIVE = Path("data") / "data3.csv"


def ppg_sample_path() -> Path:
    """Path of heartpy's ``data3.csv``: a real PPG recording (~68k readings, ~11 min) whose
    stamps repeat (a ~15.6 ms clock) and skip. Located without importing heartpy (its loader
    needs pkg_resources; it is installed with ``--no-deps`` only for this file)."""
    spec = importlib.util.find_spec("heartpy")
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = Path(root) / _PPG_RELATIVE
        if path.is_file():
            return path
    raise SensorSampleMissingError("the PPG sample (heartpy/data/data3.csv) is not installed; "
                                   "install it with: pip install --no-deps heartpy==1.2.7")


PPG_COLUMNS = ColumnMap("datetime", "hr", size=None)   # 'hr' holds the raw PPG value


def load_ppg_sample() -> Events:
    """The PPG sample as ``Events`` (``price`` holds the PPG reading; naive stamps read as UTC)."""
    return load_events(ppg_sample_path(), PPG_COLUMNS, require_positive_price=False)
