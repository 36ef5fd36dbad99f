"""The Lava (Loihi-2 simulation) runner against the numpy reference, on real Lava runs.

Each runner builds and compiles its Lava network once (module fixtures) and then serves all the
windows of a module; windows are short (T <= 16) because Lava's Python simulation is slow.
"""
import json

import numpy as np
import pytest

from liquidedge import reference as ref
from liquidedge.errors import ConfigError, InputShapeError, ModelFileError, TargetUnavailableError
from liquidedge.exporters.lava import export_lava
from liquidedge.ir import random_model
from liquidedge.lava_procs import fixed_point as fxp
from liquidedge.targets.base import load_runner
from liquidedge.wiring import NCPWiring

T = 12


def _windows(g, b, seed, masked=True):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(b, T, g.n_inputs))
    dt = rng.exponential(1.0, (b, T)) * 10.0 ** rng.uniform(-2, 2, (b, 1))
    mask = (rng.uniform(size=(b, T)) > 0.2).astype(np.float32) if masked else np.ones((b, T), np.float32)
    return x.astype(np.float32), dt.astype(np.float32), mask


def _cos(a, b):
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def _ncp_model(seed=0):
    w = NCPWiring.small(seed=seed)
    m = random_model(hidden=w.units, wiring=w.mask(), seed=seed)
    m.perception.w_in = m.perception.w_in * w.input_mask(m.perception.n_inputs)
    return m


@pytest.fixture(scope="module")
def float_model():
    return random_model(hidden=16, unfolds=2, readout=5, seed=1)


@pytest.fixture(scope="module")
def float_runner(float_model, tmp_path_factory):
    path = export_lava(float_model, tmp_path_factory.mktemp("float"), steps=T)
    with load_runner(path) as runner:
        yield runner


@pytest.fixture(scope="module")
def fixed_model():
    return random_model(hidden=16, seed=2)


@pytest.fixture(scope="module")
def fixed_runner(fixed_model, tmp_path_factory):
    path = export_lava(fixed_model, tmp_path_factory.mktemp("fixed"), steps=T, precision="fixed_pt",
                       x_range=16.0)
    with load_runner(path) as runner:
        yield runner


def test_floating_pt_equals_reference(float_model, float_runner):
    x, dt, mask = _windows(float_model.perception, 6, seed=0)
    want = ref.perception_forward(float_model.perception, x, dt, mask)
    got = float_runner.encode(x, dt, mask)
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_network_is_built_once_and_state_resets_between_windows(float_model, float_runner):
    runtime = float_runner._player.runtime
    x, dt, mask = _windows(float_model.perception, 3, seed=1)
    mask[2] = 0  # an all-padding window: the state never leaves zero
    first = float_runner.encode(x, dt, mask)
    swapped = float_runner.encode(x[[1, 0, 2]], dt[[1, 0, 2]], mask[[1, 0, 2]])
    np.testing.assert_array_equal(swapped, first[[1, 0, 2]])
    np.testing.assert_allclose(first[2], float_model.perception.b_out, atol=1e-7)
    assert float_runner._player.runtime is runtime  # same compiled network, no rebuild


def test_rk4_and_euler_solvers_match_reference(tmp_path):
    for solver in ("rk4", "euler"):
        m = random_model(hidden=8, solver=solver, seed=4)
        x, dt, mask = _windows(m.perception, 3, seed=2)
        dt = dt * 0.2
        with load_runner(export_lava(m, tmp_path / solver, steps=T)) as runner:
            np.testing.assert_allclose(runner.encode(x, dt, mask),
                                       ref.perception_forward(m.perception, x, dt, mask), atol=1e-4)
            assert runner.describe()["time_steps_per_window"] == 1 + T * (4 if solver == "rk4" else 1)


def test_fixed_pt_is_bit_exact_with_its_numpy_mirror_and_close_to_reference(fixed_model, fixed_runner):
    g = fixed_model.perception
    x, dt, mask = _windows(g, 6, seed=3)
    got = fixed_runner.encode(x, dt, mask)
    fmt, arrays = fxp.quantise_graph(g, x_range=16.0)
    mirror = fxp.FixedPointMirror(fmt, arrays).encode(x, dt, mask)
    np.testing.assert_array_equal(got, mirror.astype(np.float32))
    assert _cos(got, ref.perception_forward(g, x, dt, mask)).min() >= 0.98


def _expected_counts(g, steps, control_payloads, synapses=1):
    """Counts the mapping implies when every input and every state is non-zero (no padding)."""
    updates = steps * g.unfolds
    return {"time_steps": 1 + updates, "neuron_updates": g.hidden * (1 + updates),
            "active_neuron_updates": g.hidden * updates, "spikes_in": g.n_inputs * updates,
            "synops_in": updates * np.count_nonzero(g.w_in) * synapses, "spikes_rec": g.hidden * updates,
            "synops_rec": updates * int(g.wiring.sum()) * synapses,
            "spikes_ctrl": control_payloads * updates, "synops_ctrl": control_payloads * updates * g.hidden}


@pytest.mark.parametrize("precision,payloads,synapses", [("floating_pt", 1, 1), ("fixed_pt", 2, 1),
                                                         ("fixed_pt", 2, 2)])
def test_counts_follow_the_wiring_and_sparse_ncp_costs_fewer_synops(tmp_path, precision, payloads, synapses):
    ncp = _ncp_model()
    dense = random_model(hidden=ncp.perception.hidden, seed=0)
    per_synapse = {}
    for name, m in (("dense", dense), ("ncp", ncp)):
        x, dt, mask = _windows(m.perception, 2, seed=5, masked=False)
        kw = {"weight_synapses": synapses} if precision == "fixed_pt" else {}
        with load_runner(export_lava(m, tmp_path / name, steps=T, precision=precision, **kw)) as runner:
            emb, counts = runner.encode(x, dt, mask, return_counts=True)
        if synapses == 2:  # the residual synapses really run: bit-exact with the mirror
            fmt, arrays = fxp.quantise_graph(m.perception, weight_synapses=2)
            np.testing.assert_array_equal(emb, fxp.FixedPointMirror(fmt, arrays).encode(x, dt, mask)
                                          .astype(np.float32))
        for key, value in _expected_counts(m.perception, T, payloads, synapses).items():
            np.testing.assert_array_equal(counts[key], value, err_msg=f"{name} {key}")
        per_synapse[name] = counts
    assert np.all(per_synapse["ncp"]["synaptic_ops"] < per_synapse["dense"]["synaptic_ops"])
    assert np.all(per_synapse["ncp"]["synops_rec"] * 3 < per_synapse["dense"]["synops_rec"])


def test_bad_inputs_are_refused_before_the_simulation(float_model, float_runner, fixed_runner):
    x, dt, mask = _windows(float_model.perception, 2, seed=6)
    bad = x.copy()
    bad[1, 3, 2] = np.nan
    with pytest.raises(InputShapeError, match="non-finite"):
        float_runner.encode(bad, dt, mask)
    with pytest.raises(InputShapeError, match="window has"):
        float_runner.encode(x[:, :-1], dt[:, :-1], mask[:, :-1])
    bad_dt = dt.copy()
    bad_dt[0, 0], mask[0, 0] = 0.0, 1.0
    with pytest.raises(InputShapeError, match="dt"):
        float_runner.encode(x, bad_dt, mask)
    with pytest.raises(InputShapeError, match="input range"):
        fixed_runner.encode(x * 100, dt, mask)
    # The runner still works after refusing bad input.
    assert np.all(np.isfinite(float_runner.encode(x, dt, mask)))


def test_tampered_or_inconsistent_artefacts_are_refused(tmp_path):
    m = random_model(hidden=8)
    path = export_lava(m, tmp_path / "a", steps=T, precision="fixed_pt")
    graph = path / "graph.safetensors"
    data = bytearray(graph.read_bytes())
    data[-3] ^= 0xFF
    graph.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="sha256"):
        load_runner(path)
    path = export_lava(m, tmp_path / "b", steps=T)
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["details"]["hidden"] = 9
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFileError, match="manifest says"):
        load_runner(path)
    (path / "graph.safetensors").unlink()
    with pytest.raises(ModelFileError, match="missing"):
        load_runner(path)
    with pytest.raises(ConfigError, match="precision"):
        export_lava(m, tmp_path / "c", steps=T, precision="int8")
    with pytest.raises(ConfigError, match="fused"):
        export_lava(random_model(solver="rk4"), tmp_path / "d", steps=T, precision="fixed_pt")


def test_closed_runner_refuses_work(tmp_path):
    m = random_model(hidden=4)
    runner = load_runner(export_lava(m, tmp_path, steps=T))
    runner.close()
    runner.close()
    x, dt, mask = _windows(m.perception, 1, seed=7)
    with pytest.raises(TargetUnavailableError, match="closed"):
        runner.encode(x, dt, mask)
