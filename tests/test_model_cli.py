"""`liquidedge train | eval | info` end to end on a small event file, and their error paths."""
import json

import pytest
from typer.testing import CliRunner

from liquidedge.cli.app import app
from liquidedge.data import generate_market, save_events
from liquidedge.ir import load_model

CONFIG = dict(hidden=8, mem_dim=4, decoder_hidden=8, streams=4, seq_windows=8, epochs=2, threads=1,
              data_spec=dict(bar_kind="volume", bar_threshold=100.0, span=None, last=16, steps=16, every=1,
                             horizon=4, ewma_halflife=8.0))


@pytest.fixture(scope="module")
def trained_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    events = save_events(generate_market(20_000, seed=2).events, root / "ticks.parquet")
    cfg = root / "cfg.json"
    cfg.write_text(json.dumps(CONFIG))
    result = CliRunner().invoke(app, ["train", str(events), "--config", str(cfg), "-o", str(root / "model"),
                                      "--quiet"])
    assert result.exit_code == 0, result.output
    return root, events, result.output


def test_train_writes_a_loadable_model_and_reports(trained_dir):
    root, _, output = trained_dir
    model = load_model(root / "model")
    assert model.perception.hidden == 8 and model.memory.threshold > 0
    assert "held-out metrics" in output and "surprise threshold" in output


def test_info_and_eval(trained_dir):
    root, events, _ = trained_dir
    info = CliRunner().invoke(app, ["info", str(root / "model"), "--json"])
    assert info.exit_code == 0, info.output
    summary = json.loads(info.output)
    assert summary["perception"]["hidden"] == 8 and summary["training"]["task"] == "market"
    assert summary["content_hash"] == load_model(root / "model").content_hash()
    ev = CliRunner().invoke(app, ["eval", str(root / "model"), str(events), "--json"])
    assert ev.exit_code == 0, ev.output
    result = json.loads(ev.output)
    assert result["part"] == "test"
    on, off = result["memory_on"], result["memory_off"]
    assert on["n_windows"] == off["n_windows"] > 0
    assert on["mse_logvol_ewma"] == off["mse_logvol_ewma"]
    assert on["mse_logvol"] == pytest.approx(
        load_model(root / "model").training["metrics"]["test"]["mse_logvol"], rel=1e-6)
    table = CliRunner().invoke(app, ["eval", str(root / "model"), str(events), "--part", "validation"])
    assert table.exit_code == 0 and "mse_logvol" in table.output


def test_errors_are_reported_not_raised(trained_dir, tmp_path):
    root, events, _ = trained_dir
    bad_cfg = tmp_path / "bad.json"
    bad_cfg.write_text(json.dumps({"hidden_units": 3}))
    r = CliRunner().invoke(app, ["train", str(events), "--config", str(bad_cfg), "-o", str(tmp_path / "m")])
    assert r.exit_code == 2 and "unknown keys" in r.output
    r = CliRunner().invoke(app, ["info", str(tmp_path / "nowhere")])
    assert r.exit_code == 2 and "missing" in r.output
    (tmp_path / "tampered").mkdir()
    for name in ("model.json", "weights.safetensors"):
        (tmp_path / "tampered" / name).write_bytes((root / "model" / name).read_bytes())
    doc = json.loads((tmp_path / "tampered" / "model.json").read_text())
    doc["memory"]["threshold"] = 0.0
    (tmp_path / "tampered" / "model.json").write_text(json.dumps(doc))
    r = CliRunner().invoke(app, ["eval", str(tmp_path / "tampered"), str(events)])
    assert r.exit_code == 2 and "hash mismatch" in r.output
    r = CliRunner().invoke(app, ["eval", str(root / "model"), str(events), "--part", "later"])
    assert r.exit_code == 2 and "part" in r.output


def test_train_and_eval_on_a_bar_file(tmp_path):
    """A vendor OHLCV file: --bars/--bar-threshold read it as Bars; with no data spec in the
    config the windows of the dollar-bar sample are used for the file's kind of bars."""
    import shutil

    from liquidedge.data import default_bars_path

    path = shutil.copy(default_bars_path(), tmp_path / "es_dollar_bars.csv")
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({k: v for k, v in CONFIG.items() if k != "data_spec"}))
    runner = CliRunner()
    args = ["--columns", "mlfinpy", "--bars", "dollar", "--bar-threshold", "70000000"]
    result = runner.invoke(app, ["train", str(path), "--config", str(cfg), "-o", str(tmp_path / "m"), "--quiet",
                                 *args])
    assert result.exit_code == 0, result.output
    model = load_model(tmp_path / "m")
    assert model.data_spec["bar_kind"] == "dollar" and model.data_spec["last"] == 32
    result = runner.invoke(app, ["eval", str(tmp_path / "m"), str(path), "--json", *args])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["memory_on"]["n_windows"] > 150
    missing = runner.invoke(app, ["eval", str(tmp_path / "m"), str(path), "--bars", "dollar"])
    assert missing.exit_code != 0 and "--bar-threshold" in missing.output
