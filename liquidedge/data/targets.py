"""What a window should predict, from bars strictly after it, and the baseline a model must beat.

Targets for the window ending at bar j use bars ``j+1 .. j+H`` only (returns measured from bar
j's close, which the window already saw), so a target never leaks into its own input. Where
fewer than H complete future bars exist the target is NaN and ``valid`` is False. The EWMA
baseline forecasts the same quantity from bars ``<= j`` only: a model has to beat it to be useful.
"""
from __future__ import annotations

import itertools
import math

import numpy as np

from liquidedge.data.bars import Bars
from liquidedge.errors import ConfigError

DEFAULT_VOL_FLOOR = 1e-6


def bar_log_returns(bars: Bars) -> np.ndarray:
    """Per-bar log return: ``log(close_k / close_{k-1})``; bar 0: ``log(close_0 / open_0)``."""
    prev = np.empty_like(bars.close)
    if len(bars):
        prev[0] = bars.open[0]
        prev[1:] = bars.close[:-1]
    return np.log(bars.close / prev)


def future_targets(bars: Bars, end_bar: np.ndarray, horizon: int = 16, *,
                   vol_floor: float = DEFAULT_VOL_FLOOR) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(logvol, direction, valid)`` for windows ending at ``end_bar``.

    ``logvol = log(max(sqrt(sum_{k=j+1}^{j+H} r_k^2), vol_floor))`` (log realised volatility),
    ``direction = 1.0`` if ``close_{j+H} > close_j`` else ``0.0`` (flat counts as 0); both NaN
    where ``valid`` is False (fewer than H complete future bars; a partial last bar is not used).
    """
    h = _check_horizon(horizon)
    if not (isinstance(vol_floor, (int, float)) and vol_floor > 0):
        raise ConfigError(f"vol_floor: expected a number > 0, got {vol_floor!r}")
    j = np.asarray(end_bar, dtype=np.int64)
    n_complete = len(bars) - (1 if bars.partial_last else 0)
    valid = (j >= 0) & (j + h <= n_complete - 1)
    r2 = np.square(bar_log_returns(bars))
    csum = np.concatenate(([0.0], np.cumsum(r2)))
    jj = np.where(valid, j, 0)
    ss = np.where(valid, csum[np.minimum(jj + h + 1, len(csum) - 1)] - csum[jj + 1], np.nan)
    logvol = np.log(np.maximum(np.sqrt(np.maximum(ss, 0.0)), vol_floor))
    logvol[~valid] = np.nan
    close = bars.close
    direction = np.where(valid, (close[np.minimum(jj + h, len(close) - 1)] > close[jj]).astype(np.float64),
                         np.nan)
    return logvol, direction, valid


def ewma_logvol_forecast(bars: Bars, end_bar: np.ndarray, horizon: int = 16, *,
                         halflife: float = 32.0, vol_floor: float = DEFAULT_VOL_FLOOR) -> np.ndarray:
    """Persistence baseline: ``log(sqrt(H * s2_j))`` with ``s2`` an EWMA of squared bar returns.

    ``s2_k = lam * s2_{k-1} + (1 - lam) * r_k^2`` with ``lam = 0.5 ** (1 / halflife)`` (bars),
    seeded with ``r_0^2``; only bars up to and including ``end_bar`` are used.
    """
    h = _check_horizon(horizon)
    if not (isinstance(halflife, (int, float)) and math.isfinite(halflife) and halflife > 0):
        raise ConfigError(f"halflife: expected bars > 0, got {halflife!r}")
    lam = 0.5 ** (1.0 / halflife)
    r2 = np.square(bar_log_returns(bars)).tolist()
    s2 = np.fromiter(itertools.accumulate(r2, lambda s, x: lam * s + (1.0 - lam) * x), float, len(r2))
    j = np.asarray(end_bar, dtype=np.int64)
    if j.size and (j.min() < 0 or j.max() >= len(bars)):
        raise ConfigError(f"end_bar outside the {len(bars)} bars")
    return np.log(np.maximum(np.sqrt(h * s2[j]), vol_floor)) if j.size else np.zeros(0)


def _check_horizon(horizon) -> int:
    if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
        raise ConfigError(f"horizon: expected a whole number of bars >= 1, got {horizon!r}")
    return int(horizon)
