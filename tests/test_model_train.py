"""Training: it learns, it never looks ahead, its modes do what they say, and what it writes is a
model the reference runs, with the calibrated threshold and the training record inside."""
import json

import numpy as np
import pytest

from liquidedge import reference as ref
from liquidedge.data import DataSpec, build_dataset, generate_market, split
from liquidedge.errors import ConfigError
from liquidedge.ir import load_model, save_model
from liquidedge.model.evaluate import evaluate_model
from liquidedge.model.train import TrainConfig, build_hybrid, train_model

SPEC = dict(bar_kind="volume", bar_threshold=100.0, span=None, last=16, steps=16, every=1, horizon=4,
            ewma_halflife=8.0)
TINY = dict(hidden=8, mem_dim=4, decoder_hidden=8, streams=4, seq_windows=8, epochs=3, patience=3,
            learning_rate=1e-2, progress=False, threads=1, data_spec=SPEC)


@pytest.fixture(scope="module")
def market():
    return build_dataset(generate_market(20_000, seed=1).events, DataSpec(**SPEC))


@pytest.fixture(scope="module")
def trained(market):
    return train_model(market, TrainConfig(**TINY))


def test_training_learns_and_writes_a_model_the_reference_runs(market, trained, tmp_path):
    model, report = trained
    save_model(model, tmp_path / "m")
    back = load_model(tmp_path / "m")
    assert back.content_hash() == model.content_hash()
    test = split(market, TrainConfig(**TINY).split)[2]
    out = ref.run_stream(back, test.x[:20], test.dt_s[:20], test.mask[:20])
    assert np.all(np.isfinite(out["prediction"]))
    # better than the same network before training, on held-out windows
    untrained = build_hybrid(TrainConfig(**TINY), market.x.shape[-1], np.array([float(np.nanmean(
        market.target_logvol)), 0.0], np.float32))
    before = untrained.to_ir(model.norm_mean, model.norm_std, model.dt_unit,
                             data_spec=market.spec.to_dict(), training={"task": "market"})
    assert evaluate_model(back, test)["mse_logvol"] < evaluate_model(before, test)["mse_logvol"]
    # the calibrated thresholds and the training record travel with the model
    assert 0 < back.memory.threshold <= back.memory.bypass_threshold
    assert back.calibration["surprise_threshold"]["target_rate"] == 0.5
    assert back.training["config"]["hidden"] == 8 and "test" in back.training["metrics"]
    assert back.data_spec["last"] == 16
    assert report.n_windows["train"] > report.n_windows["validation"] > 0
    assert [h["epoch"] for h in report.history] == list(range(1, report.epochs_run + 1))


def test_the_test_part_never_influences_training(market, trained):
    """Scramble everything after the validation split: the trained weights do not move."""
    n = len(market)
    later = np.arange(n) >= int(round(0.8 * n))
    x = market.x.copy()
    x[later] = x[later][::-1]
    tl = market.target_logvol.copy()
    tl[later] += 5.0
    changed = market.take(np.arange(n))
    changed.x, changed.target_logvol = x, tl
    model, _ = train_model(changed, TrainConfig(**TINY))
    want = trained[0]
    for k, v in want.perception.arrays().items():
        np.testing.assert_array_equal(model.perception.arrays()[k], v)
    np.testing.assert_array_equal(model.decoder.w2, want.decoder.w2)


def test_decoupled_mode_trains_the_memory_side_on_a_frozen_encoder(market):
    cfg = TrainConfig(**{**TINY, "mode": "decoupled", "pretrain_epochs": 0, "epochs": 2, "feedback": False})
    model, report = train_model(market, cfg)
    fresh = build_hybrid(cfg, market.x.shape[-1], np.zeros(2, np.float32))
    for k, v in fresh.encoder.to_graph().arrays().items():   # the encoder never moved
        np.testing.assert_array_equal(model.perception.arrays()[k], v)
    phase = [h for h in report.history if h["phase"] == "train memory"]
    assert len(phase) == 2 and phase[0]["train_loss"] != phase[1]["train_loss"]   # the memory side did


def test_time_budget_and_memory_off_ablation(market):
    model, report = train_model(market, TrainConfig(**{**TINY, "time_budget_s": 0.0, "memory": False}))
    assert report.stopped == "time_budget" and report.epochs_run == 1
    assert model.training["memory_on"] is False and report.calibration == {}
    assert "memory_off_mse_logvol" not in report.metrics["test"]


def test_config_round_trips_through_json_and_refuses_nonsense(tmp_path):
    cfg = TrainConfig(hidden=12, wiring={"kind": "ncp", "inter": 6, "command": 4, "motor": 2,
                                         "sensory_fanout": 2, "inter_fanout": 2, "recurrent_command": 3,
                                         "motor_fanin": 2, "seed": 1})
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(cfg.to_dict()))
    assert TrainConfig.from_json(path) == cfg
    for bad in ({"hiden": 3}, {"mode": "sideways"}, {"gradient": "guess"}, {"split": [0.5, 0.6]},
                {"streams": 0}, {"target_update_rate": 2.0}, {"task": "weather"}, {"wiring": {"kind": "x"}}):
        with pytest.raises(ConfigError):
            TrainConfig.from_dict(bad)
    path.write_text("{not json")
    with pytest.raises(ConfigError):
        TrainConfig.from_json(path)
    with pytest.raises(ConfigError):
        train_model("not data", TrainConfig())


def test_sensor_task_trains_on_an_irregular_stream_and_beats_persistence_of_a_smooth_signal():
    from liquidedge.data.sensor import SensorSpec, build_sensor_dataset
    from liquidedge.model.evaluate import evaluate_model as score

    rng = np.random.default_rng(0)
    t = np.cumsum(rng.uniform(0.05, 0.4, 1500))                  # irregular sampling, seconds
    values = np.sin(2 * np.pi * t / 7.0) + 0.02 * rng.normal(size=t.size)
    ds = build_sensor_dataset((t * 1e9).astype(np.int64), values, SensorSpec(steps=16, every=2, horizon=4))
    cfg = TrainConfig(**{**TINY, "task": "sensor", "data_spec": None, "epochs": 4, "feedback": False})
    model, report = train_model(ds, cfg)
    assert model.decoder.outputs == ("next_value",) and model.training["task"] == "sensor"
    test = split(ds, cfg.split)[2]
    m = score(model, test)
    assert m["mse_next_value"] < m["mse_next_value_persistence"]
    with pytest.raises(ConfigError):
        train_model(build_dataset(generate_market(5_000, seed=3).events, DataSpec(**SPEC)), cfg)
