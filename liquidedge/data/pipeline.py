"""Events -> model-ready arrays in one call, described by one serialisable ``DataSpec``.

Training, the demo and the edge loop must cut data the same way, so every choice (bars, window,
steps, features, horizon) lives in a ``DataSpec`` that is saved into the model file and rebuilt
from it. ``split`` is time-ordered with purging so no training target sees validation data.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

from liquidedge.data.bars import DEFAULT_MIN_DT_S, Bars, build_bars
from liquidedge.data.features import FEATURE_NAMES, compute_features
from liquidedge.data.targets import DEFAULT_VOL_FLOOR, ewma_logvol_forecast, future_targets
from liquidedge.data.ticks import Events
from liquidedge.data.windows import WindowBatch, WindowSpec, windows_from_spec
from liquidedge.errors import ConfigError


@dataclass(frozen=True)
class DataSpec:
    """Every choice between events and model inputs. Defaults suit the E-mini sample file.

    Defaults: volume bars of 500 contracts (~3,600 bars from the 500k-trade file), windows of the
    last 4 h resampled to 64 steps (93% of them hold >= 64 bars), one window every 2 bars,
    targets over the next 16 bars, clock resolution 1 ms.
    """
    bar_kind: str = "volume"
    bar_threshold: float | str = 500.0
    min_dt_s: float = DEFAULT_MIN_DT_S
    span: str | float | None = "4h"
    last: int | None = None
    steps: int = 64
    every: int | str = 2
    min_bars: int = 8
    horizon: int = 16
    features: tuple[str, ...] = FEATURE_NAMES
    vol_floor: float = DEFAULT_VOL_FLOOR
    ewma_halflife: float = 32.0

    def __post_init__(self):
        object.__setattr__(self, "features", tuple(self.features))
        self.window_spec()  # validates the window settings
        from liquidedge.data.bars import _check_threshold
        _check_threshold(self.bar_kind, self.bar_threshold)
        if isinstance(self.horizon, bool) or not isinstance(self.horizon, int) or self.horizon < 1:
            raise ConfigError(f"horizon: expected bars >= 1, got {self.horizon!r}")

    def window_spec(self) -> WindowSpec:
        return WindowSpec(self.steps, self.span, self.last, None, None, self.every, self.min_bars)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["features"] = list(self.features)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "DataSpec":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"DataSpec: unknown keys {unknown}; expected some of {sorted(known)}")
        return cls(**d)


@dataclass
class Dataset:
    """Model-ready arrays, one row per window, in time order.

    ``x [N,T,F]`` float32 raw (un-normalised) features, ``dt_s [N,T]`` seconds per step (0 on
    padding), ``mask [N,T]``, ``end_ns``/``end_bar [N]`` the window's last bar, targets
    ``target_logvol``/``target_dir [N]`` (NaN where ``target_valid`` is False) and the EWMA
    ``baseline_logvol [N]``. ``target_value [N]`` is set only for sensor streams
    (``liquidedge.data.sensor``): the reading after the window; ``None`` for market data.
    """
    x: np.ndarray
    dt_s: np.ndarray
    mask: np.ndarray
    end_ns: np.ndarray
    end_bar: np.ndarray
    target_logvol: np.ndarray
    target_dir: np.ndarray
    target_valid: np.ndarray
    baseline_logvol: np.ndarray
    spec: DataSpec
    feature_names: tuple[str, ...] = FEATURE_NAMES
    target_value: np.ndarray | None = None

    _ARRAYS = ("x", "dt_s", "mask", "end_ns", "end_bar", "target_logvol", "target_dir",
               "target_valid", "baseline_logvol")

    def __len__(self) -> int:
        return len(self.end_ns)

    def take(self, index) -> "Dataset":
        """Rows selected by an index array, slice or boolean mask."""
        value = None if self.target_value is None else self.target_value[index]
        return Dataset(**{k: getattr(self, k)[index] for k in self._ARRAYS},
                       spec=self.spec, feature_names=self.feature_names, target_value=value)


def build_bars_for(events: Events, spec: DataSpec) -> Bars:
    """The bars ``spec`` asks for (closed bars only: the unfinished last one is dropped)."""
    return build_bars(events, spec.bar_kind, spec.bar_threshold, min_dt_s=spec.min_dt_s, partial="drop")


def dataset_from_windows(bars: Bars, windows: WindowBatch, spec: DataSpec) -> Dataset:
    """Features and targets for windows already cut from ``bars`` (used by streaming callers)."""
    x = compute_features(windows, spec.features)
    logvol, direction, valid = future_targets(bars, windows.end_bar, spec.horizon, vol_floor=spec.vol_floor)
    base = ewma_logvol_forecast(bars, windows.end_bar, spec.horizon, halflife=spec.ewma_halflife,
                                vol_floor=spec.vol_floor)
    return Dataset(x=x, dt_s=windows.dt_s.astype(np.float32), mask=windows.mask,
                   end_ns=windows.end_ns, end_bar=windows.end_bar,
                   target_logvol=logvol.astype(np.float32), target_dir=direction.astype(np.float32),
                   target_valid=valid, baseline_logvol=base.astype(np.float32),
                   spec=spec, feature_names=tuple(spec.features))


def build_dataset(events: Events | Bars, spec: DataSpec | None = None) -> Dataset:
    """events -> bars -> windows -> raw features + targets + baseline, all as ``spec`` says.

    ``events`` may also be ``Bars`` read from a bar file (``load_bar_file``): then the bar step is
    skipped, and the spec's ``bar_kind`` (and ``bar_threshold``, when the file states one) must
    describe those bars, so a model never silently runs on bars unlike its training bars.
    """
    spec = spec or DataSpec()
    bars = check_bars_match(events, spec) if isinstance(events, Bars) else build_bars_for(events, spec)
    windows = windows_from_spec(bars, spec.window_spec())
    return dataset_from_windows(bars, windows, spec)


def check_bars_match(bars: Bars, spec: DataSpec) -> Bars:
    """``bars`` if ``spec`` describes them; else a ``ConfigError`` saying what differs."""
    if bars.kind != spec.bar_kind:
        raise ConfigError(f"the bars are {bars.kind} bars but the data spec asks for {spec.bar_kind} bars")
    if bars.threshold and spec.bar_kind != "time" and not np.isclose(bars.threshold, float(spec.bar_threshold)):
        raise ConfigError(f"the bars were made with threshold {bars.threshold:g} but the data spec says "
                          f"{spec.bar_threshold}")
    return bars


def split(dataset: Dataset, fractions=(0.6, 0.2, 0.2), *, purge: bool = True) -> tuple[Dataset, ...]:
    """Split by time into consecutive parts (train earlier than validation earlier than test).

    With ``purge`` a window is left out of a part when its target horizon reaches past the
    last bar of the next part's first window (its label would overlap what the next part
    predicts); nothing is shuffled.
    """
    fr = np.asarray(fractions, dtype=np.float64)
    if fr.ndim != 1 or fr.size < 1 or np.any(fr < 0) or not np.isclose(fr.sum(), 1.0):
        raise ConfigError(f"fractions {fractions!r}: expected non-negative numbers summing to 1")
    if np.any(np.diff(dataset.end_ns) < 0):
        raise ConfigError("dataset is not in time order; split needs windows sorted by end_ns")
    n = len(dataset)
    cuts = np.round(np.cumsum(fr) * n).astype(int)
    cuts[-1] = n
    bounds = np.concatenate(([0], cuts))
    parts = []
    h = dataset.spec.horizon
    for k in range(len(fr)):
        idx = np.arange(bounds[k], bounds[k + 1])
        if purge and k + 1 < len(fr) and bounds[k + 1] < n:
            next_first_bar = dataset.end_bar[bounds[k + 1]]
            idx = idx[dataset.end_bar[idx] + h <= next_first_bar]
        parts.append(dataset.take(idx))
    return tuple(parts)
