"""Surprise-threshold calibration: the threshold comes from a target update rate, measured on
the stream it will gate (whose scores themselves depend on the threshold)."""
import numpy as np
import pytest

from liquidedge import reference as ref
from liquidedge.calibration.threshold import calibrate_model, calibrate_threshold, threshold_for_rate
from liquidedge.errors import ConfigError, InputShapeError
from liquidedge.ir import random_model


def test_threshold_for_rate_is_the_matching_quantile():
    scores = np.arange(1, 101, dtype=float)
    for rate in (0.1, 0.25, 0.5, 0.9):
        t = threshold_for_rate(scores, rate)
        assert np.mean(scores > t) == pytest.approx(rate)
    assert np.mean(scores > threshold_for_rate(scores, 1.0)) == 1.0
    assert np.mean(scores > threshold_for_rate(scores, 0.0)) == 0.0
    with pytest.raises(InputShapeError):
        threshold_for_rate([1.0, np.nan], 0.5)
    with pytest.raises(ConfigError):
        threshold_for_rate([1.0, 2.0], 1.5)


def test_calibration_follows_scores_that_depend_on_the_threshold():
    """A toy stream where skipping updates raises later scores (as a real memory does): one
    quantile of the threshold-0 scores would miss the target; the iteration hits it."""
    rng = np.random.default_rng(0)
    base = rng.exponential(1.0, 2000)

    def run(threshold):
        scores, backlog = np.empty_like(base), 0.0
        for i, b in enumerate(base):
            scores[i] = b + 0.5 * backlog
            backlog = 0.0 if scores[i] > threshold else backlog + 0.2
        return scores

    naive = threshold_for_rate(run(0.0), 0.3)
    naive_rate = float(np.mean(run(naive) > naive))
    cal = calibrate_threshold(run, 0.3, tolerance=0.01)
    assert abs(naive_rate - 0.3) > 0.02          # the one-shot quantile really is off
    assert abs(cal.achieved_rate - 0.3) <= 0.01
    assert np.mean(run(cal.threshold) > cal.threshold) == pytest.approx(cal.achieved_rate)
    assert cal.bypass_threshold >= cal.threshold
    assert cal.achieved_bypass_rate <= 0.02


@pytest.mark.parametrize("rate", [0.2, 0.6])
def test_calibrated_model_updates_at_the_target_rate(rate):
    model = random_model(n_features=4, hidden=8, mem_dim=6, seed=1)
    rng = np.random.default_rng(1)
    feat = rng.normal(size=(80, 12, 4))
    feat[40:] *= 3.0   # a regime change half-way
    dt = rng.uniform(0.2, 2.0, (80, 12))
    mask = np.ones((80, 12))
    calibrated, cal = calibrate_model(model, feat, dt, mask, rate, bypass_quantile=0.95, tolerance=0.03)
    out = ref.run_stream(calibrated, feat, dt, mask, dtype=np.float32)
    assert abs(out["updated"].mean() - rate) <= 0.03
    assert calibrated.memory.threshold == cal.threshold > 0
    assert calibrated.memory.bypass_threshold == cal.bypass_threshold >= cal.threshold
    assert calibrated.calibration["surprise_threshold"]["target_rate"] == rate
    assert model.memory.threshold == 0.0   # the input model is left alone


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError):
        calibrate_threshold(lambda t: np.ones(3), -0.1)
    with pytest.raises(ConfigError):
        calibrate_threshold(lambda t: np.ones(3), 0.5, bypass_quantile=2.0)
    with pytest.raises(ConfigError):
        calibrate_threshold(lambda t: np.ones(3), 0.5, max_runs=0)
