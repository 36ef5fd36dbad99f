"""Real E-mini data, held-out later part: on the month of dollar bars (20 sessions) the trained
model forecasts log realised volatility better than EWMA persistence, and switching its memory
off (same weights) makes it worse. A real training run (about 20 s), scored by the reference."""
from __future__ import annotations

import pytest

from liquidedge.data import DOLLAR_BAR_SPEC, DataSpec, build_dataset, load_default_bars, split
from liquidedge.model.evaluate import evaluate_events, evaluate_model
from liquidedge.model.train import TrainConfig, train_model


@pytest.fixture(scope="module")
def bars():
    return load_default_bars()


@pytest.fixture(scope="module")
def trained(bars):
    return train_model(bars, TrainConfig(data_spec=dict(DOLLAR_BAR_SPEC), progress=False, seed=0))


def test_memory_on_beats_ewma_and_beats_the_same_weights_with_memory_off(bars, trained):
    model, report = trained
    test = split(build_dataset(bars, DataSpec(**DOLLAR_BAR_SPEC)), TrainConfig().split)[2]
    on = evaluate_model(model, test)
    off = evaluate_model(model, test, memory_on=False)
    assert on["n_windows"] > 190 and 0.2 < on["update_rate"] < 0.8
    assert on["mse_logvol"] < 0.9 * on["mse_logvol_ewma"], on
    assert on["mse_logvol"] < off["mse_logvol"], (on, off)
    assert report.metrics["test"]["mse_logvol"] == pytest.approx(on["mse_logvol"])


def test_evaluate_events_rebuilds_the_same_test_part_from_bars(bars, trained):
    model, _ = trained
    result = evaluate_events(model, bars, "test")
    assert result["memory_on"]["mse_logvol"] == pytest.approx(trained[1].metrics["test"]["mse_logvol"])
    assert result["memory_off"]["mse_logvol"] > result["memory_on"]["mse_logvol"]
