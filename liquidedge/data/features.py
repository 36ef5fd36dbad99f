"""Per-step features of a window and their normalisation (stats frozen into the model file).

Features are scale-free logs so one model can read any instrument: the network sees returns,
ranges and activity, never raw prices. Masked (padding) steps are 0 everywhere. ``Normaliser``
learns mean/std from valid steps only and the LTC's time unit ``dt_unit`` (seconds), so
``scaled_dt = dt_s / dt_unit`` is O(1) for a typical step.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from liquidedge.data.windows import WindowBatch
from liquidedge.errors import ConfigError, DataValidationError, InputShapeError


def _log_return(w: WindowBatch) -> np.ndarray:
    prev = np.empty_like(w.close)
    prev[:, 1:] = w.close[:, :-1]
    prev[:, 0] = w.open[:, 0]
    first = w.mask.copy()
    first[:, 1:] &= ~w.mask[:, :-1]          # first valid step of each window: vs its own open
    prev = np.where(first, w.open, prev)
    return np.log(w.close / prev)


FEATURES = {
    "log_return": _log_return,                                     # close vs previous close
    "log_range": lambda w: np.log(w.high / w.low),                 # intra-step range
    "log_volume": lambda w: np.log1p(w.volume),
    "log_dt": lambda w: np.log(w.dt_s),                            # elapsed seconds per step
    "vwap_dev": lambda w: np.log(w.close / w.vwap),                # where the close sits vs vwap
    "log_count": lambda w: np.log1p(w.count.astype(np.float64)),   # trades per step
}
FEATURE_NAMES: tuple[str, ...] = tuple(FEATURES)


def compute_features(windows: WindowBatch, names=FEATURE_NAMES) -> np.ndarray:
    """Raw features ``x [N, T, F]`` float32, in the order of ``names``; 0 on masked steps.

    Raises ``DataValidationError`` if a valid step has a non-positive price (logs undefined) or
    a feature is not finite there.
    """
    unknown = [n for n in names if n not in FEATURES]
    if unknown:
        raise ConfigError(f"unknown feature(s) {unknown}; expected names from {list(FEATURES)}")
    m = windows.mask
    for name in ("open", "high", "low", "close", "vwap"):
        bad = m & ~(getattr(windows, name) > 0)
        if bad.any():
            n, t = map(int, np.argwhere(bad)[0])
            raise DataValidationError(f"non-positive {name} in window {n} step {t}", field=name,
                                      expected="prices > 0 (features are log ratios)")
    N, T = m.shape
    x = np.zeros((N, T, len(names)), dtype=np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        for k, name in enumerate(names):
            col = FEATURES[name](windows)
            bad = m & ~np.isfinite(col)
            if bad.any():
                n, t = map(int, np.argwhere(bad)[0])
                raise DataValidationError(f"feature {name} is not finite in window {n} step {t}",
                                          field=name, expected="finite values on valid steps")
            x[..., k] = np.where(m, col, 0.0)
    return x


@dataclass
class Normaliser:
    """Standardise features per channel with statistics of valid steps: ``(x - mean) / std``.

    A channel whose std is below ``std_floor`` (constant) gets std 1, so it maps to ~0 instead of
    dividing by zero. ``dt_unit`` is the LTC's time unit in seconds (median valid ``dt_s`` of the
    fitted data unless given).
    """
    feature_names: tuple[str, ...] = FEATURE_NAMES
    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    dt_unit: float = 1.0
    n_steps: int = 0
    std_floor: float = 1e-8
    _fitted: bool = field(default=False, repr=False)

    def fit(self, x: np.ndarray, mask: np.ndarray, dt_s: np.ndarray | None = None,
            dt_unit: float | None = None) -> "Normaliser":
        """Learn mean/std from ``x[mask]`` and the time unit from ``dt_s[mask]``."""
        x, mask = self._check(x, mask)
        valid = x[mask].astype(np.float64)
        if valid.shape[0] == 0:
            raise DataValidationError("no valid steps to fit the normaliser on", field="mask",
                                      expected="at least one True in mask")
        self.mean = valid.mean(axis=0)
        std = valid.std(axis=0)
        self.std = np.where(std < self.std_floor, 1.0, std)
        self.n_steps = int(valid.shape[0])
        if dt_unit is not None:
            self.dt_unit = float(dt_unit)
        elif dt_s is not None:
            self.dt_unit = float(np.median(np.asarray(dt_s)[mask]))
        if not (np.isfinite(self.dt_unit) and self.dt_unit > 0):
            raise DataValidationError(f"dt_unit {self.dt_unit!r} is not a positive time", field="dt_s",
                                      expected="valid steps with dt_s > 0")
        self._fitted = True
        return self

    def apply(self, x: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Standardised float32 copy of ``x``; masked steps stay 0."""
        if not self._fitted:
            raise ConfigError("Normaliser.apply before fit (or from_dict)")
        x, mask = self._check(x, mask)
        out = (x - self.mean.astype(np.float32)) / self.std.astype(np.float32)
        out[~mask] = 0.0
        return out.astype(np.float32, copy=False)

    def scale_dt(self, dt_s: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """``dt_s / dt_unit`` as float32; 0 on masked steps."""
        out = np.asarray(dt_s, dtype=np.float64) / self.dt_unit
        if mask is not None:
            out = np.where(mask, out, 0.0)
        return out.astype(np.float32)

    def to_dict(self) -> dict:
        """Plain JSON-able stats for ``model.json``."""
        if not self._fitted:
            raise ConfigError("Normaliser.to_dict before fit")
        return {"feature_names": list(self.feature_names), "mean": [float(v) for v in self.mean],
                "std": [float(v) for v in self.std], "dt_unit": float(self.dt_unit),
                "n_steps": self.n_steps, "std_floor": self.std_floor}

    @classmethod
    def from_dict(cls, d: dict) -> "Normaliser":
        """Rebuild from ``to_dict`` output, checking names, lengths and values."""
        try:
            names = tuple(d["feature_names"])
            mean = np.asarray(d["mean"], dtype=np.float64)
            std = np.asarray(d["std"], dtype=np.float64)
            dt_unit = float(d["dt_unit"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"normaliser stats malformed: {exc!r}") from None
        if mean.shape != (len(names),) or std.shape != (len(names),):
            raise ConfigError(f"normaliser stats: {len(names)} features but mean {mean.shape}, std {std.shape}")
        if not (np.all(np.isfinite(mean)) and np.all(std > 0) and np.isfinite(dt_unit) and dt_unit > 0):
            raise ConfigError("normaliser stats: mean must be finite, std and dt_unit > 0")
        out = cls(names, mean, std, dt_unit, int(d.get("n_steps", 0)), float(d.get("std_floor", 1e-8)))
        out._fitted = True
        return out

    def _check(self, x, mask):
        x = np.asarray(x, dtype=np.float32)
        mask = np.asarray(mask, dtype=bool)
        if x.ndim != 3 or x.shape[:2] != mask.shape or x.shape[2] != len(self.feature_names):
            raise InputShapeError(f"x {x.shape} / mask {mask.shape} do not fit "
                                  f"{len(self.feature_names)} features: expected x [N, T, F], mask [N, T]")
        return x, mask
