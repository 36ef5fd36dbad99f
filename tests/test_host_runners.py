"""Host memory runners (torch, ONNX Runtime) against the numpy reference, step by step."""
import os
import subprocess
import sys

import numpy as np
import pytest

from liquidedge import reference as ref
from liquidedge.errors import InputShapeError, ModelFileError
from liquidedge.ir import load_model, random_model
from liquidedge.targets.host import StreamMemory, load_host_runner

BACKENDS = ["torch", "onnxruntime"]
TOL = 1e-4


def _models():
    """random models, plus a trained one when LIQUIDEDGE_TEST_MODEL_DIR names a model directory."""
    out = [("random", random_model(seed=0))]
    extra = os.environ.get("LIQUIDEDGE_TEST_MODEL_DIR")
    if extra:
        out.append(("trained", load_model(extra)))
    return out


def structured_stream(dim, n, streams=1, seed=0):
    """Embeddings drawn around a few prototypes: the memory can learn them, so surprise varies."""
    rng = np.random.default_rng(seed)
    protos = rng.normal(size=(8, dim))
    return protos[rng.integers(0, 8, (n, streams))] + 0.3 * rng.normal(size=(n, streams, dim))


def reference_run(model, stream):
    """float64 oracle: per-step retrieved, prediction, score, updated and the final state."""
    g = model.memory
    state = ref.init_memory_state(g, stream.shape[1])
    out = {"retrieved": [], "prediction": [], "score": [], "updated": []}
    for e in stream:
        r = ref.memory_step(g, state, e)
        state = r.state
        out["retrieved"].append(r.retrieved)
        out["prediction"].append(ref.decoder_forward(model.decoder, e, r.retrieved))
        out["score"].append(r.score)
        out["updated"].append(r.updated)
    return {k: np.asarray(v) for k, v in out.items()}, state


def with_split_threshold(model, stream):
    """Set memory.threshold so that some steps update and some do not, far from any score
    (so float32 rounding cannot flip an update decision and fork the trajectories)."""
    model.memory.threshold = 0.0
    scores = reference_run(model, stream)[0]["score"]
    for q in (0.5, 0.45, 0.55, 0.4, 0.6, 0.35, 0.65, 0.3, 0.7):
        model.memory.threshold = float(np.quantile(scores, q))
        run, _ = reference_run(model, stream)
        frac = run["updated"].mean()
        margin = np.abs(run["score"] - model.memory.threshold).min() / model.memory.threshold
        if 0.1 < frac < 0.9 and margin > 1e-4:  # float32 scores stay within ~1e-6 relative
            return run
    pytest.fail("no threshold splits this stream with a safe margin")


def run_runner(runner, stream, dtype=np.float32):
    state = runner.init_state(stream.shape[1])
    out = {"retrieved": [], "prediction": [], "score": [], "updated": []}
    for e in stream:
        state, o = runner.step(state, e.astype(dtype))
        for k in out:
            out[k].append(getattr(o, k))
    return {k: np.asarray(v) for k, v in out.items()}, runner.to_numpy(state)


def assert_matches(got, want, got_state, want_state):
    np.testing.assert_array_equal(got["updated"], want["updated"])
    for k in ("retrieved", "prediction", "score"):
        np.testing.assert_allclose(got[k], want[k], atol=TOL, rtol=0, err_msg=k)
    for a, b in zip(got_state.weights + got_state.momentum, want_state.weights + want_state.momentum):
        np.testing.assert_allclose(a, b, atol=TOL, rtol=0)


def assert_backend_matches_reference(model, stream, backend, expected=None):
    """Run ``backend``'s host runner over ``stream`` and compare with the float64 oracle's run
    (``expected``: that run, when the caller already has it)."""
    want, want_state = expected or reference_run(model, stream)
    got, got_state = run_runner(load_host_runner(model, backend), stream)
    assert_matches(got, want, got_state, want_state)


@pytest.fixture(scope="module", params=_models(), ids=lambda p: p[0])
def long_case(request):
    model = request.param[1]
    stream = structured_stream(model.memory.embedding_dim, 1000, streams=1)
    with_split_threshold(model, stream)
    want, want_state = reference_run(model, stream)
    return model, stream, want, want_state


@pytest.mark.parametrize("backend", BACKENDS)
def test_1000_step_stream_matches_reference(long_case, backend):
    model, stream, want, want_state = long_case
    assert 0 < want["updated"].sum() < len(stream)  # both branches of the update are exercised
    assert_backend_matches_reference(model, stream, backend, (want, want_state))


@pytest.mark.parametrize("backend", BACKENDS)
def test_batch_of_streams_matches_reference(backend):
    model = random_model(seed=5)
    stream = structured_stream(model.memory.embedding_dim, 1000, streams=4, seed=1)
    with_split_threshold(model, stream)
    assert_backend_matches_reference(model, stream, backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("depth,bias,residual", [(1, "l2", True), (2, "huber", False), (2, "lp", True),
                                                 (1, "lp", False)])
def test_memory_variants_match_reference(backend, depth, bias, residual):
    model = random_model(depth=depth, seed=7)
    model.memory.attentional_bias = bias
    model.memory.residual = residual
    model.memory.huber_delta = 0.05
    model.memory.bypass_threshold = 1.0
    stream = structured_stream(model.memory.embedding_dim, 60, streams=3, seed=2)
    with_split_threshold(model, stream)
    assert_backend_matches_reference(model, stream, backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_bypass_flag_matches_reference(backend):
    model = random_model(seed=3)
    stream = structured_stream(model.memory.embedding_dim, 50, streams=2, seed=3)
    model.memory.threshold = 0.0
    scores = reference_run(model, stream)[0]["score"]
    model.memory.bypass_threshold = float(np.quantile(scores, 0.5))
    runner = load_host_runner(model, backend)
    state = runner.init_state(2)
    ref_state = ref.init_memory_state(model.memory, 2)
    for e in stream:
        state, o = runner.step(state, e)
        r = ref.memory_step(model.memory, ref_state, e)
        ref_state = r.state
        np.testing.assert_array_equal(o.bypass, r.bypass)


@pytest.mark.parametrize("backend", BACKENDS + ["numpy"])
def test_learn_mask_answers_without_learning(backend):
    model = random_model(seed=4)
    stream = structured_stream(model.memory.embedding_dim, 20, streams=2, seed=4)
    runner = load_host_runner(model, backend)
    state = runner.init_state(2)
    for e in stream[:10]:
        state, _ = runner.step(state, e)
    before = runner.to_numpy(state)
    frozen = ref.MemoryState([w.astype(np.float64) for w in before.weights],
                             [s.astype(np.float64) for s in before.momentum])
    e = stream[10]
    state, out = runner.step(state, e, learn=np.array([False, True]))
    after = runner.to_numpy(state)
    for a, b in zip(after.weights + after.momentum, before.weights + before.momentum):
        np.testing.assert_array_equal(a[0], b[0])          # stream 0: untouched
    assert not out.updated[0] and not out.bypass[0]
    # its answer is the memory's current retrieval (what a never-updating memory returns)
    g = model.memory
    p = ref.memory_inputs(g, e.astype(np.float64))
    want = ref.memory_apply(g, frozen.weights, p["q"])[0]
    np.testing.assert_allclose(out.retrieved[0], want, atol=TOL)
    want_pred = ref.decoder_forward(model.decoder, e[:1].astype(np.float64), want[None])[0]
    np.testing.assert_allclose(out.prediction[0], want_pred, atol=TOL)


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_embeddings_are_refused(backend):
    model = random_model(seed=0)
    runner = load_host_runner(model, backend)
    state = runner.init_state(1)
    bad = np.zeros((1, model.memory.embedding_dim))
    bad[0, 3] = np.nan
    with pytest.raises(InputShapeError, match="NaN or inf"):
        runner.step(state, bad)
    with pytest.raises(InputShapeError, match="expected \\[batch, 32\\]"):
        runner.step(state, np.zeros((1, 31)))
    with pytest.raises(InputShapeError, match="learn"):
        runner.step(state, np.zeros((1, 32)), learn=np.ones(2, bool))


def test_torch_closed_form_gradient_equals_autograd():
    import torch

    from liquidedge.targets.host_torch import _Step

    model = random_model(seed=8)
    step = _Step(model, torch.float64)
    g = model.memory
    rng = np.random.default_rng(0)
    weights = [torch.tensor(np.repeat(w[None], 3, 0) + rng.normal(0, 0.1, (3, *w.shape)), requires_grad=True)
               for w in g.theta0]
    k = torch.nn.functional.normalize(torch.tensor(rng.normal(size=(3, 1, g.dim))), dim=-1)
    v = torch.tensor(rng.normal(size=(3, 1, g.dim)))
    closed = step.grads([w.detach() for w in weights], k, v)
    out = torch.bmm(torch.nn.functional.silu(torch.bmm(k, weights[0])), weights[1]) + k
    loss = 0.5 * ((out - v) ** 2).sum()
    auto = torch.autograd.grad(loss, weights)
    for c, a in zip(closed, auto):
        torch.testing.assert_close(c, a, rtol=1e-10, atol=1e-12)


def test_stream_memory_keeps_streams_apart():
    model = random_model(seed=9)
    stream = structured_stream(model.memory.embedding_dim, 30, streams=3, seed=9)
    mem = StreamMemory(load_host_runner(model, "onnxruntime"), capacity=1)  # forces growth
    for t in range(30):
        order = [0, 1, 2] if t % 2 else [2, 0]          # streams arrive in varying groups
        mem.step([f"s{i}" for i in order], stream[t, order])
    for i in range(3):
        steps = [t for t in range(30) if t % 2 or i != 1]
        _, want = reference_run(model, stream[steps, i:i + 1])
        got = mem.state_of(f"s{i}")
        for a, b in zip(got.weights + got.momentum, want.weights + want.momentum):
            np.testing.assert_allclose(a, b, atol=TOL)
    with pytest.raises(InputShapeError, match="once per batch"):
        mem.step(["s0", "s0"], stream[0, :2])
    ids, state = mem.export()
    other = StreamMemory(load_host_runner(model, "torch"))
    other.restore(ids, state)
    for sid in ids:
        for a, b in zip(other.state_of(sid).weights, mem.state_of(sid).weights):
            np.testing.assert_array_equal(a, b)


def test_exported_step_runs_from_its_file_and_refuses_tampering(tmp_path):
    from liquidedge.exporters.memory import export_memory
    from liquidedge.targets.base import read_manifest
    from liquidedge.targets.host_onnx import OnnxHostRunner

    model = random_model(seed=10)
    path = export_memory(model, tmp_path / "memory.onnx")
    manifest = read_manifest(path)
    assert manifest.target == "host-memory-onnx" and manifest.model_hash == model.content_hash()
    stream = structured_stream(model.memory.embedding_dim, 40, streams=2, seed=10)
    want, want_state = reference_run(model, stream)
    got, got_state = run_runner(OnnxHostRunner(model, artefact=path), stream)
    assert_matches(got, want, got_state, want_state)
    with pytest.raises(ModelFileError, match="not this model"):
        OnnxHostRunner(random_model(seed=11), artefact=path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="sha256"):
        OnnxHostRunner(model, artefact=path)


def test_float64_runners_match_reference_tightly():
    model = random_model(seed=12)
    stream = structured_stream(model.memory.embedding_dim, 100, streams=2, seed=12)
    with_split_threshold(model, stream)
    want, want_state = reference_run(model, stream)
    for backend in BACKENDS:
        got, got_state = run_runner(load_host_runner(model, backend, dtype="float64"), stream, np.float64)
        np.testing.assert_array_equal(got["updated"], want["updated"])
        np.testing.assert_allclose(got["prediction"], want["prediction"], atol=1e-10)
        np.testing.assert_allclose(got_state.weights[0], want_state.weights[0], atol=1e-10)


def test_onnx_host_runner_does_not_import_torch():
    code = ("import sys; from liquidedge.ir import random_model; "
            "from liquidedge.targets.host import load_host_runner; "
            "r = load_host_runner(random_model(), 'onnxruntime'); import numpy as np; "
            "r.step(r.init_state(1), np.ones((1, 32))); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
