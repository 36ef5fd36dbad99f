"""The Loihi-2 target on held-out real E-mini windows (the shipped mlfinpy trades), and its CLI.

Until a trained model exists the model is a seeded random LTC whose feature normalisation and
time unit are fitted to the training part of the same data.
"""

import numpy as np
import pytest
from typer.testing import CliRunner

from liquidedge import reference as ref
from liquidedge.data import DataSpec, build_dataset, split
from liquidedge.exporters.lava import export_lava
from liquidedge.ir import random_model_for, save_model
from liquidedge.lava_procs import fixed_point as fxp
from liquidedge.targets.base import load_runner
from liquidedge.targets.lava import decision_agreement, embedding_agreement, simulate_loihi2


@pytest.fixture(scope="module")
def emini(emini_events):
    """(model fitted to the training part, held-out test part as model inputs)."""
    parts = split(build_dataset(emini_events, DataSpec()))
    model = random_model_for(parts[0], hidden=32, seed=0)
    test = parts[-1]
    x, dt, mask = ref.model_inputs(model, test.x, test.dt_s, test.mask)
    return model, x, dt, mask


def test_floating_pt_matches_reference_on_emini_windows(emini, tmp_path):
    model, x, dt, mask = emini
    x, dt, mask = x[:10], dt[:10], mask[:10]
    with load_runner(export_lava(model, tmp_path, steps=x.shape[1])) as runner:
        got = runner.encode(x, dt, mask)
    np.testing.assert_allclose(got, ref.perception_forward(model.perception, x, dt, mask), atol=1e-4)


def test_fixed_pt_agrees_on_emini_windows(emini, tmp_path):
    model, x, dt, mask = emini
    x, dt, mask = x[:10], dt[:10], mask[:10]
    with load_runner(export_lava(model, tmp_path, steps=x.shape[1], precision="fixed_pt")) as runner:
        got = runner.encode(x, dt, mask)
    fmt, arrays = fxp.quantise_graph(model.perception)
    np.testing.assert_array_equal(got, fxp.FixedPointMirror(fmt, arrays).encode(
        x.astype(np.float32), dt.astype(np.float32), mask).astype(np.float32))
    want = ref.perception_forward(model.perception, x, dt, mask)
    assert embedding_agreement(want, got)["cosine_min"] >= 0.98


@pytest.mark.parametrize("synapses", [1, 2])
def test_fixed_pt_on_every_held_out_window(emini, synapses):
    """All held-out windows through the numpy mirror, which the Lava tests show is bit-exact."""
    model, x, dt, mask = emini
    fmt, arrays = fxp.quantise_graph(model.perception, weight_synapses=synapses)
    got = fxp.FixedPointMirror(fmt, arrays).encode(x.astype(np.float32), dt.astype(np.float32), mask)
    want = ref.perception_forward(model.perception, x, dt, mask)
    emb = embedding_agreement(want, got)
    dec = decision_agreement(model, want, got)
    assert x.shape[0] > 300
    assert emb["cosine_min"] >= 0.98
    assert dec["decision_agreement"] >= 0.98
    assert 0.1 < dec["update_rate_reference"] < 0.3  # the threshold really splits the stream
    if synapses == 2:  # 16-bit effective weights leave only the integer arithmetic's error
        assert emb["max_abs"] < 1e-3 and dec["decision_agreement"] == 1.0


def test_cli_simulate_loihi2_reports_agreement_counts_and_energy(emini, tmp_path):
    from liquidedge.cli.app import app

    model, *_ = emini
    save_model(model, tmp_path / "model")
    result = CliRunner().invoke(app, ["simulate", "loihi2", str(tmp_path / "model"), "--fixed-pt",
                                      "--windows", "4"], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    for text in ("cosine", "decision agreement", "synaptic_ops", "uJ", "latency", "Davies"):
        assert text in result.output
    missing = CliRunner().invoke(app, ["simulate", "loihi2", str(tmp_path / "nothing")])
    assert missing.exit_code == 2 and "error" in missing.output


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["floating_pt", "fixed_pt"])
def test_long_emini_run(emini, precision):
    model, x, dt, mask = emini
    report = simulate_loihi2(model, x[:120], dt[:120], mask[:120], precision=precision)
    print({k: report[k] for k in ("max_abs", "cosine_min", "decision_agreement", "windows_per_s")})
    if precision == "floating_pt":
        assert report["max_abs"] <= 1e-4
    assert report["cosine_min"] >= 0.98 and report["decision_agreement"] >= 0.98
