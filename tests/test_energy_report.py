"""The energy table (estimated and measured rows), its chart, and `liquidedge energy` / `deploy` CLIs."""
import json
import shutil
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from liquidedge.cli.app import app
from liquidedge.energy.rapl import RaplMeter
from liquidedge.energy.report import energy_row, energy_table, plot_energy, targets_in
from liquidedge.errors import ConfigError, EnergyMeterError
from liquidedge.exporters.onnx import export_onnx
from liquidedge.ir import random_model, save_model
from liquidedge.targets.numpy_ref import ReferenceRunner

sys.path.insert(0, str(Path(__file__).parent))
from test_energy_harness import FIX as RAPL_FIX, SimulatedPackage  # noqa: E402

STEPS = 32


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("energy") / "model"
    m = random_model(hidden=16, seed=4)
    save_model(m, d)
    export_onnx(m.perception, d / "exports" / "perception.onnx", STEPS, m.content_hash())
    export_onnx(m.perception, d / "exports" / "perception_int8.onnx", STEPS, m.content_hash(), int8="dynamic")
    return d


def test_table_rows_for_every_target_in_a_model_directory(model_dir, tmp_path):
    targets = targets_in(model_dir)
    assert [t[0] for t in targets] == ["numpy", "onnxruntime", "onnxruntime"]
    rows = energy_table(targets, device="rpi5")
    assert [r.method for r in rows] == ["estimated"] * 3
    assert all(r.latency_ms > 0 and r.device == "rpi5" and r.low_uj <= r.uj <= r.high_uj for r in rows)
    by = {(r.target, r.dtype): r for r in rows}
    assert by["onnxruntime", "int8-dynamic"].uj < by["onnxruntime", "fp32"].uj
    assert by["numpy", "fp32"].uj == pytest.approx(by["onnxruntime", "fp32"].uj)  # same maths, same counts
    png = plot_energy(rows, tmp_path / "energy.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_an_artefact_away_from_its_model_needs_the_model(model_dir, tmp_path):
    lone = tmp_path / "lone"
    lone.mkdir()
    for f in ("perception.onnx", "perception.onnx.manifest.json"):
        shutil.copy(model_dir / "exports" / f, lone / f)
    with pytest.raises(ConfigError, match="pass model="):
        energy_row("onnx", lone / "perception.onnx")
    row = energy_row("onnx", lone / "perception.onnx", model=model_dir)
    assert row.method == "estimated" and row.dtype == "fp32"


class ChargingRunner:
    """A real runner whose every inference also charges the simulated CPU package (a fixture:
    the 'hardware' is the simulated counter, the inference is real)."""

    def __init__(self, runner, sim, charge_uj):
        self.runner, self.sim, self.charge_uj = runner, sim, charge_uj
        self.manifest, self.graph = runner.manifest, runner.graph

    def encode(self, x, dt, mask=None):
        out = self.runner.encode(x, dt, mask)
        time.sleep(0.002)  # as slow as a small board: leaves the GIL to the meter threads
        self.sim.charge(self.charge_uj)
        return out


def test_measured_row_uses_the_meter_and_reports_the_spread(tmp_path):
    root = tmp_path / "rapl"
    shutil.copytree(RAPL_FIX, root, symlinks=True)
    g = random_model(hidden=8, seed=1).perception
    with SimulatedPackage(root, idle_w=0.3, max_uj=10**9) as sim:
        runner = ChargingRunner(ReferenceRunner(g, 8), sim, 1500)
        row = energy_row("numpy", runner, "fp32", "x86-host", measure=True, meter=RaplMeter(root),
                         window_s=0.5, idle_s=0.2, trials=3, allow_short_window=True)
    assert row.method == "measured" and row.source == "rapl:package-0"
    assert row.uj == pytest.approx(1500, rel=0.15)
    assert row.low_uj <= row.uj <= row.high_uj
    assert any("short window" in n for n in row.notes)
    assert row.detail["estimate_uj"] < row.uj  # the analytic figure is a lower bound


def test_measure_without_a_meter_is_explained(model_dir):
    with pytest.raises(EnergyMeterError, match="no supported power sensor"):
        energy_table(targets_in(model_dir)[:1], device="rpi4", measure=True)


def test_lava_row_uses_the_loihi_model_with_the_simulators_counts(tmp_path):
    from liquidedge.exporters.lava import export_lava

    m = random_model(hidden=8, n_features=3, feedback=0, seed=2)
    path = export_lava(m, tmp_path / "lava", steps=8)
    row = energy_row("loihi", path)
    assert row.runtime == "lava" and row.method == "estimated" and row.device == "loihi2"
    assert row.latency_on == "loihi model" and row.uj > 0
    assert row.detail["counts"]["synaptic_ops"] > 0
    assert any("Loihi 2" in n or "Loihi-1" in n for n in row.notes)


def test_energy_cli_prints_the_table_and_writes_png_and_json(model_dir, tmp_path):
    res = CliRunner(env={"COLUMNS": "160"}).invoke(app, ["energy", str(model_dir), "--device", "jetson-orin-nano",
                                   "--png", str(tmp_path / "e.png"), "--json", str(tmp_path / "e.json")])
    assert res.exit_code == 0, res.output
    assert "µJ/inf" in res.output and "int8-dynamic" in res.output and "onnxruntime" in res.output
    assert (tmp_path / "e.png").is_file()
    rows = json.loads((tmp_path / "e.json").read_text())
    assert len(rows) == 3 and {r["device"] for r in rows} == {"jetson-orin-nano"}
    bad = CliRunner(env={"COLUMNS": "160"}).invoke(app, ["energy", str(model_dir), "--device", "rpi4", "--measure",
                                   "--png", str(tmp_path / "x.png")])
    assert bad.exit_code == 2 and "no supported power sensor" in bad.output


def test_deploy_cli_build_verify_and_dry_run_push(model_dir, tmp_path):
    cli = CliRunner(env={"COLUMNS": "160"})
    out = tmp_path / "jetson.tar.gz"
    res = cli.invoke(app, ["deploy", "build", str(model_dir), "--device", "jetson-orin-nano", "-o", str(out),
                           "--artefact", str(model_dir / "exports" / "perception.onnx")])
    assert res.exit_code == 0, res.output
    assert "manifest sha256" in res.output and out.is_file()
    res = cli.invoke(app, ["deploy", "verify", str(out)])
    assert res.exit_code == 0, res.output
    assert "OK" in res.output and "onnxruntime" in res.output
    res = cli.invoke(app, ["deploy", "push", str(out), "--ssh", "nvidia@jetson.local:edge", "--dry-run"])
    assert res.exit_code == 0, res.output
    assert res.output.count("ssh ") >= 2 and "scp " in res.output
    res = cli.invoke(app, ["deploy", "verify", str(tmp_path / "missing.tar.gz")])
    assert res.exit_code == 2 and "no such bundle" in res.output
    res = cli.invoke(app, ["deploy", "profiles"])
    assert res.exit_code == 0 and "rpi5" in res.output and "jetson-agx-orin" in res.output
