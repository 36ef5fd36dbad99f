"""Choose the memory's surprise threshold from a target update rate, not by guessing.

The deployed memory updates its weights only on windows whose surprise score exceeds
``threshold``; ``bypass_threshold`` (a high quantile) marks the rare windows surprising enough to
ask the edge for richer input. A threshold is meaningless in absolute terms (scores scale with
the model), but "update on ~30% of windows" is a budget a user can reason about.

The scores themselves depend on the threshold (a skipped update changes every later score), so
the calibration runs the stream, takes the quantile, runs again with that threshold, and
repeats, bracketing the answer, until the realised rate is within ``tolerance`` of the target.
numpy only: it runs the deployable model through ``liquidedge.reference``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Callable

import numpy as np

from liquidedge.errors import ConfigError, InputShapeError
from liquidedge.ir import LiquidTitanModel


@dataclass
class ThresholdCalibration:
    """How the thresholds were chosen and what they achieve on the calibration windows."""

    threshold: float
    bypass_threshold: float
    target_rate: float
    achieved_rate: float
    bypass_quantile: float
    achieved_bypass_rate: float
    n_windows: int
    runs: int

    def to_dict(self) -> dict[str, Any]:
        return {"method": "target_update_rate", **asdict(self)}


def _check_rate(name: str, value: float) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name}: expected a fraction in [0, 1], got {value}")
    return value


def threshold_for_rate(scores, rate: float) -> float:
    """The threshold at which a fraction ``rate`` of these scores exceeds it (``score > t``)."""
    s = np.asarray(scores, np.float64).ravel()
    if s.size == 0 or not np.all(np.isfinite(s)):
        raise InputShapeError("scores: expected a non-empty array of finite surprise scores")
    rate = _check_rate("rate", rate)
    s = np.sort(s)
    k = int(round(rate * s.size))          # how many scores should pass
    if k >= s.size:
        return 0.0 if s[0] > 0 else float(np.nextafter(s[0], -np.inf))
    return float(s[s.size - k - 1])         # the largest score that must not pass


def calibrate_threshold(run_scores: Callable[[float], np.ndarray], target_rate: float, *,
                        bypass_quantile: float = 0.99, tolerance: float = 0.02,
                        max_runs: int = 8) -> ThresholdCalibration:
    """Find the threshold whose realised update rate is closest to ``target_rate``.

    ``run_scores(threshold)`` runs the stream with that threshold and returns its scores. The
    realised rate is (nearly) monotone in the threshold, so each new guess is the quantile of the
    latest scores, kept inside the bracket of guesses already known to be too low/too high.
    """
    target = _check_rate("target_rate", target_rate)
    q = _check_rate("bypass_quantile", bypass_quantile)
    if max_runs < 1:
        raise ConfigError(f"max_runs: expected >= 1, got {max_runs}")
    scores = np.asarray(run_scores(0.0), np.float64)
    best = (0.0, float(np.mean(scores > 0.0)), scores)
    lo, hi = 0.0, np.inf            # thresholds known to give too many / too few updates
    guess = threshold_for_rate(scores, target)
    runs = 1
    while abs(best[1] - target) > tolerance and runs <= max_runs:
        scores = np.asarray(run_scores(guess), np.float64)
        runs += 1
        rate = float(np.mean(scores > guess))
        if abs(rate - target) < abs(best[1] - target):
            best = (guess, rate, scores)
        if rate > target:
            lo = max(lo, guess)
        else:
            hi = min(hi, guess)
        guess = threshold_for_rate(scores, target)
        if not lo < guess < hi:     # the quantile left the bracket: bisect instead
            guess = 0.5 * (lo + hi) if np.isfinite(hi) else 2.0 * max(lo, float(scores.max()), 1e-12)
    threshold, rate, scores = best
    bypass = max(float(np.quantile(scores, q)), threshold) if q < 1.0 else float("inf")
    return ThresholdCalibration(threshold=float(threshold), bypass_threshold=bypass, target_rate=target,
                                achieved_rate=rate, bypass_quantile=q,
                                achieved_bypass_rate=float(np.mean(scores > bypass)),
                                n_windows=int(scores.size), runs=runs)


def calibrate_model(model: LiquidTitanModel, features, dt_s, mask, target_rate: float, *,
                    bypass_quantile: float = 0.99, tolerance: float = 0.02, max_runs: int = 8,
                    dtype=np.float32) -> tuple[LiquidTitanModel, ThresholdCalibration]:
    """Calibrate a deployable model's thresholds on time-ordered windows of one stream.

    Runs ``reference.run_stream`` (the same maths every target implements) and returns a copy of
    the model with ``memory.threshold``/``bypass_threshold`` set and the calibration recorded.
    """
    from liquidedge import reference

    def run(threshold: float) -> np.ndarray:
        trial = replace(model, memory=replace(model.memory, threshold=threshold))
        return reference.run_stream(trial, features, dt_s, mask, dtype=dtype)["score"]

    cal = calibrate_threshold(run, target_rate, bypass_quantile=bypass_quantile, tolerance=tolerance,
                              max_runs=max_runs)
    memory = replace(model.memory, threshold=cal.threshold, bypass_threshold=cal.bypass_threshold)
    calibration = {**model.calibration, "surprise_threshold": cal.to_dict()}
    return replace(model, memory=memory, calibration=calibration), cal
