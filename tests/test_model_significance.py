"""The block-bootstrap MSE-ratio interval: centred on the sample ratio, wide when it should be."""
from __future__ import annotations

import numpy as np
import pytest

from liquidedge.errors import ConfigError, InputShapeError
from liquidedge.model.significance import mse_ratio_interval


def _ar1(n, rho, rng):
    e = rng.normal(size=n)
    out = np.empty(n)
    out[0] = e[0]
    for i in range(1, n):
        out[i] = rho * out[i - 1] + np.sqrt(1 - rho * rho) * e[i]
    return out


def test_a_clearly_better_forecaster_has_an_interval_below_one():
    rng = np.random.default_rng(0)
    b = _ar1(600, 0.8, rng)
    iv = mse_ratio_interval(0.5 * b + 0.1 * rng.normal(size=600), b, block=16)
    assert iv.low <= iv.ratio <= iv.high < 1.0 and iv.excludes_one()
    assert iv.ratio == pytest.approx(np.mean((0.5 * b) ** 2 + 0.0) / np.mean(b ** 2), rel=0.2)


def test_equally_good_forecasters_blocks_keep_the_coverage_an_iid_bootstrap_loses():
    """Over 40 pairs of equally good, strongly autocorrelated error series the 95% block
    interval contains 1 at least 80% of the time; the i.i.d. bootstrap (block 1) is overconfident."""
    covered = {1: 0, 20: 0}
    for seed in range(40):
        rng = np.random.default_rng(seed)
        a, b = _ar1(600, 0.8, rng), _ar1(600, 0.8, rng)
        for block in covered:
            covered[block] += not mse_ratio_interval(a, b, block=block, resamples=500).excludes_one()
    assert covered[20] >= 32 and covered[20] >= covered[1] + 8, covered


def test_same_seed_same_interval_and_bad_input_is_refused():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=50), rng.normal(size=50)
    assert mse_ratio_interval(a, b, block=5, seed=3) == mse_ratio_interval(a, b, block=5, seed=3)
    with pytest.raises(ConfigError, match="block"):
        mse_ratio_interval(a, b, block=51)
    with pytest.raises(InputShapeError, match="one length"):
        mse_ratio_interval(a, b[:-1], block=5)
    with pytest.raises(InputShapeError, match="non-finite"):
        mse_ratio_interval(np.r_[a[:-1], np.nan], b, block=5)
