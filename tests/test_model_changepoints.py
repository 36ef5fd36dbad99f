"""Grading change detection: peaks, one-to-one matching within a tolerance, the z-score baseline."""
import numpy as np
import pytest

from liquidedge.errors import ConfigError, InputShapeError
from liquidedge.model import changepoints as cp


def test_peaks_are_local_maxima_above_threshold_one_per_burst():
    s = np.array([0, 1, 5, 4, 0, 0, 3, 3, 0, 9, np.nan, 2.0])
    assert cp.detect_peaks(s, 2.5, radius=1).tolist() == [2, 6, 9]
    assert cp.detect_peaks(s, 4.5, radius=1).tolist() == [2, 9]
    assert cp.detect_peaks(s, 2.5, radius=3).tolist() == [2, 9]   # 6 is within 3 of 9


def test_matching_is_one_to_one_within_tolerance():
    # two detections near one change count once; a far detection is a false alarm
    hit_d, hit_c = cp.match_detections([10, 11, 30], [10, 50], tolerance=2)
    assert (hit_d, hit_c) == (1, 1)
    g = cp.grade(np.eye(1, 60, 10)[0] * 5 + np.eye(1, 60, 52)[0] * 5, [10, 50], 1.0, tolerance=2, radius=2)
    assert (g.precision, g.recall, g.f1) == (1.0, 1.0, 1.0)
    g = cp.grade(np.eye(1, 60, 10)[0] * 5 + np.eye(1, 60, 55)[0] * 5, [10, 50], 1.0, tolerance=2)
    assert g.precision == 0.5 and g.recall == 0.5 and g.f1 == pytest.approx(0.5)


def test_best_threshold_finds_the_separating_level():
    rng = np.random.default_rng(0)
    s = rng.uniform(0, 1, 400)
    changes = np.arange(20, 400, 40)
    s[changes] = 3.0
    b = cp.best_threshold(s, changes)
    assert b.f1 == 1.0 and np.delete(s, changes).max() <= b.threshold < 3.0


def test_merge_changes_and_rolling_zscore_spot_a_volatility_jump():
    assert cp.merge_changes([5, 6, 20, 40, 41, 42], 3).tolist() == [5, 20, 40]
    rng = np.random.default_rng(1)
    r = np.concatenate([rng.normal(0, 1e-4, (100, 16)), rng.normal(0, 1e-3, (50, 16))])
    x = r[..., None]
    rv = cp.window_realised_logvol(x, np.ones((150, 16), bool))
    z = cp.rolling_zscore(rv, 20)
    assert np.all(np.isnan(z[:20])) and int(np.nanargmax(z)) == 100
    assert cp.detect_peaks(z, 5.0).tolist() == [100]


def test_bad_inputs():
    with pytest.raises(InputShapeError):
        cp.detect_peaks(np.zeros((2, 2)), 0.0)
    with pytest.raises(ConfigError):
        cp.rolling_zscore(np.zeros(5), 1)
    with pytest.raises(InputShapeError):
        cp.window_realised_logvol(np.zeros((2, 3)), np.ones((2, 3)))
    with pytest.raises(InputShapeError):
        cp.best_threshold(np.full(4, np.nan), [1])
