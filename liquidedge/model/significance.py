"""How sure is "forecaster A beats B"? A moving-block bootstrap of the ratio of their MSEs.

Consecutive windows overlap and their targets share future bars, so errors are autocorrelated and
an i.i.d. bootstrap would be overconfident. Resampling blocks of ``block`` consecutive windows
(at least the target horizon in windows) keeps that dependence (Kuensch 1989). numpy only.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from liquidedge.errors import ConfigError, InputShapeError


@dataclass(frozen=True)
class RatioInterval:
    """MSE(a) / MSE(b) on the sample and its bootstrap percentile interval."""

    ratio: float
    low: float
    high: float
    level: float
    block: int
    resamples: int

    def excludes_one(self) -> bool:
        """True when the interval says a and b differ (either way) at this level."""
        return self.high < 1.0 or self.low > 1.0


def mse_ratio_interval(err_a, err_b, *, block: int, resamples: int = 2000, level: float = 0.95,
                       seed: int = 0) -> RatioInterval:
    """Bootstrap interval of ``mean(err_a**2) / mean(err_b**2)`` over paired, time-ordered errors."""
    a = np.asarray(err_a, np.float64)
    b = np.asarray(err_b, np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise InputShapeError(f"errors: expected two 1-D arrays of one length, got {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise InputShapeError("errors: non-finite values (drop windows without a valid target first)")
    n = a.size
    if isinstance(block, bool) or not isinstance(block, (int, np.integer)) or not 1 <= block <= n:
        raise ConfigError(f"block: expected a whole number in [1, {n}] (the number of errors), got {block!r}")
    if not 0.0 < level < 1.0 or int(resamples) < 100:
        raise ConfigError("level must be in (0, 1) and resamples >= 100")
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n - block + 1, size=(int(resamples), -(-n // block)))
    idx = (starts[..., None] + np.arange(block)).reshape(int(resamples), -1)[:, :n]
    a2, b2 = a * a, b * b
    ratios = a2[idx].mean(axis=1) / np.maximum(b2[idx].mean(axis=1), 1e-300)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(ratios, [tail, 1.0 - tail])
    return RatioInterval(float(a2.mean() / max(b2.mean(), 1e-300)), float(low), float(high), float(level),
                         int(block), int(resamples))
