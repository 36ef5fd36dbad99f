"""The two examples really run (small budgets) and report what they measured, consistently."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from liquidedge.data import SensorSpec, build_sensor_dataset, load_ppg_sample, persistence_forecast
from liquidedge.data import simulate_dropouts, split
from liquidedge.errors import ConfigError

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _example(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def sensor_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sensor")
    args = ["--out", str(out), "--limit", "20000", "--train-budget", "8", "--epochs", "8", "--no-progress"]
    return _example("irregular_sensor").main(args), out


def test_irregular_sensor_writes_its_plot_and_summary(sensor_run):
    result, out = sensor_run
    assert Path(result["plot"]).stat().st_size > 20_000
    summary = json.loads((out / "summary.json").read_text())
    assert summary["metrics"].keys() == result["metrics"].keys() == {
        "persistence", "true_dt", "true_dt_fed_constant", "dt_blind"}
    assert result["readings"] == 20_000
    assert result["received"] == 20_000 - round(0.3 * 19_998)
    assert 0.015 <= result["clock_tick_s"] <= 0.0165 and result["repeated_stamps"] > 0.3
    for row in result["metrics"].values():
        assert np.isfinite(row["mse"]) and row["mse"] > 0
        assert sum(g["n"] for g in row["by_gap"].values()) == row["n"]   # every window in one gap group
    for key in ("true_dt", "dt_blind"):
        assert result["training"][key]["epochs"] >= 1


def test_irregular_sensor_scores_match_an_independent_rebuild(sensor_run):
    result, _ = sensor_run
    ev = load_ppg_sample().slice(0, 20_000)
    received = simulate_dropouts(len(ev), 0.3, max_run=12, seed=0)
    spec = SensorSpec.from_dict(result["spec"])
    data = build_sensor_dataset(ev.time_ns, ev.price, spec, received=received)
    test = split(data)[-1]
    ok = test.target_valid
    persistence = np.mean((persistence_forecast(test)[ok] - test.target_value[ok]) ** 2)
    assert result["metrics"]["persistence"]["mse"] == pytest.approx(persistence, rel=1e-6)
    assert result["windows"] == {"all": len(data), "test": len(test)}
    # the dt-aware model reads dt: feeding it a constant dt changes what it predicts
    assert result["metrics"]["true_dt_fed_constant"]["mse"] != result["metrics"]["true_dt"]["mse"]


def test_trading_ticks_flags_surprise_peaks_inside_the_data(tmp_path):
    ex = _example("trading_ticks")
    result = ex.main(["--out", str(tmp_path), "--limit", "150000", "--every", "4", "--train-budget", "8",
                      "--warmup", "8", "--flag-quantile", "0.9", "--no-progress"])
    assert Path(result["plot"]).stat().st_size > 20_000
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["flags"] == result["flags"] and result["trades"] == 150_000
    assert result["thresholds"]["flag"] > 0 and np.isfinite(result["thresholds"]["update"])
    assert result["flags"], "a 90% quantile threshold leaves some surprise peaks above it"
    for flag in result["flags"]:
        assert result["first_ns"] <= flag["end_ns"] <= result["last_ns"]
        assert flag["score"] > result["thresholds"]["flag"]
        assert flag["held_out"] == (flag["end_ns"] >= result["held_out_from_ns"])
    times = [f["end_ns"] for f in result["flags"]]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert 0.0 <= result["update_rate"] <= 1.0 and result["windows"] > 100


def test_trading_ticks_from_to_selects_the_range_and_refuses_empty_ones(emini_events):
    ex = _example("trading_ticks")
    part = ex.select_trades(emini_events, "2013-09-02T08:30", "2013-09-02T09:30")
    assert len(part) > 0
    tz_offset_ns = 5 * 3600 * 10**9                       # CDT is UTC-5 in September
    lo = np.datetime64("2013-09-02T08:30").astype("datetime64[ns]").astype(np.int64) + tz_offset_ns
    assert lo <= part.time_ns[0] and part.time_ns[-1] <= lo + 3600 * 10**9
    with pytest.raises(ConfigError, match="no trades"):
        ex.select_trades(emini_events, "2013-09-05T00:00", "2013-09-06T00:00")
    with pytest.raises(ConfigError):
        ex.select_trades(emini_events, "yesterday", None)
    with pytest.raises(ConfigError, match="too few"):
        ex.flag_threshold(np.ones(10), calibrate_until=5, warmup=4, quantile=0.9)
    peaks = ex.flag_regime_changes(np.array([5.0, 0, 0, 0, 3, 0, 0, 0, 4, 0]), 1.0, warmup=2)
    assert list(peaks) == [4, 8]                          # the warm-up peak at 0 is not a flag


@pytest.mark.slow
def test_full_sensor_example_the_true_dt_wins_after_gaps(tmp_path):
    """The full example (about 1.5-2 min): on held-out windows that follow a gap of >= 3 clock
    ticks, the LTC fed the true dt beats the one trained and run with a constant dt (seeds 0-2
    measured 2-8x lower MSE there), and beats it overall."""
    result = _example("irregular_sensor").main(["--out", str(tmp_path), "--no-progress"])
    rows = result["metrics"]
    assert result["blind_over_true_mse"] > 1.0
    for group in ("3-5 ticks", ">= 6 ticks"):
        assert rows["dt_blind"]["by_gap"][group]["mse"] > rows["true_dt"]["by_gap"][group]["mse"]
    assert rows["true_dt"]["mse"] < rows["persistence"]["mse"]
