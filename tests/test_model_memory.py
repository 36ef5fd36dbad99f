"""The torch Titans memory: equal to the numpy reference step by step, streaming == chunked(1),
closed-form surprise == autograd, the behaviours Titans promises, and stability on hostile input."""
import numpy as np
import pytest
import torch

from liquidedge import reference as ref
from liquidedge.errors import ConfigError, InputShapeError
from liquidedge.model.memory import MemoryState, TitansMemory


def _memory(depth=2, bias="l2", **kw):
    mem = TitansMemory(12, 8, depth, 2, attentional_bias=bias, huber_delta=0.2, seed=depth, **kw)
    with torch.no_grad():
        mem.b_lr.fill_(2.0)   # learn fast enough that the state really moves
    return mem


def _splitting_threshold(g, e):
    """A threshold that gates about half the steps and that no score comes within 1e-4 of (so
    float32 and float64 make the same decisions)."""
    for q in (0.5, 0.45, 0.55, 0.4, 0.6, 0.35, 0.65):
        scores = []
        state = ref.init_memory_state(g, e.shape[0])
        for t in range(e.shape[1]):
            res = ref.memory_step(g, state, e[:, t])
            state = res.state
            scores.append(res.score)
        thr = float(np.quantile(scores, q))
        g.threshold = thr
        state, margin = ref.init_memory_state(g, e.shape[0]), np.inf
        for t in range(e.shape[1]):
            res = ref.memory_step(g, state, e[:, t])
            state = res.state
            margin = min(margin, float(np.min(np.abs(res.score - thr))))
        g.threshold = 0.0
        if margin > 1e-4:
            return thr
    raise AssertionError("no threshold with a safe margin")


@pytest.mark.parametrize("depth", [1, 2])
@pytest.mark.parametrize("bias", ["l2", "huber", "lp"])
@pytest.mark.parametrize("threshold", [0.0, "median"])
def test_step_sequence_matches_reference(depth, bias, threshold):
    mem = _memory(depth, bias)
    rng = np.random.default_rng(depth)
    e = rng.normal(0, 2, (3, 40, 12)).astype(np.float32)
    if threshold == "median":
        mem.threshold = _splitting_threshold(mem.to_graph(), e)
    g = mem.to_graph()
    state, rstate = mem.init_state(3), ref.init_memory_state(g, 3)
    updated = []
    for t in range(40):
        out = mem.step(state, e[:, t])
        want = ref.memory_step(g, rstate, e[:, t])
        state, rstate = out.state, want.state
        np.testing.assert_allclose(out.retrieved.detach().numpy(), want.retrieved, atol=1e-5, rtol=0)
        np.testing.assert_allclose(out.score.detach().numpy(), want.score, atol=1e-5, rtol=1e-5)
        np.testing.assert_array_equal(out.updated.numpy(), want.updated)
        updated.append(want.updated)
    for a, b in zip(state.weights + state.momentum, rstate.weights + rstate.momentum):
        np.testing.assert_allclose(a.detach().numpy(), b, atol=1e-5, rtol=0)
    if threshold == "median":
        assert 0 < np.mean(updated) < 1


def test_memory_off_neither_learns_nor_answers():
    mem = _memory()
    state = mem.init_state(2)
    out = mem.step(state, torch.randn(2, 12), enabled=False)
    assert torch.all(out.retrieved == 0) and not out.updated.any()
    for a, b in zip(out.state.weights, state.weights):
        assert torch.equal(a, b)


@pytest.mark.parametrize("depth", [1, 2])
@pytest.mark.parametrize("bias", ["l2", "huber", "lp"])
def test_closed_form_surprise_equals_autograd(depth, bias):
    mem = _memory(depth, bias)
    rng = np.random.default_rng(7)
    weights = [torch.tensor(w.detach().numpy() + rng.normal(0, 0.3, w.shape), dtype=torch.float32)[None]
               .repeat(2, *([1] * w.ndim)).requires_grad_(True) for w in mem.theta0]
    p = mem.inputs(torch.as_tensor(rng.normal(size=(2, 12)), dtype=torch.float32))
    loss, grads = mem.loss_and_grad(weights, p["k"][:, None], p["v"][:, None])
    auto = torch.autograd.grad(loss.sum(), weights)
    for g, a in zip(grads, auto):
        torch.testing.assert_close(g[:, 0], a, atol=1e-5, rtol=1e-4)


def test_outer_loop_gradient_through_the_inner_update_is_exact():
    """The inner updates are differentiable: the gradient of the retrieval after a few steps
    w.r.t. the key projection and the learning-rate gate passes a float64 gradcheck."""
    mem = _memory(2, "huber").double()
    e = torch.randn(2, 12, dtype=torch.float64)

    def retrieval_after_steps(w_k, b_lr):
        saved = dict(mem._parameters)
        mem._parameters["w_k"], mem._parameters["b_lr"] = w_k, b_lr   # functional swap
        try:
            state = mem.init_state(2)
            for _ in range(3):
                state = mem.step(state, e).state
            return mem.step(state, e).retrieved
        finally:
            mem._parameters.update(saved)

    inputs = (mem.w_k.detach().clone().requires_grad_(True), mem.b_lr.detach().clone().requires_grad_(True))
    assert torch.autograd.gradcheck(retrieval_after_steps, inputs, eps=1e-6, atol=1e-5)


def test_streaming_equals_chunked_with_chunk_one_and_chunks_use_chunk_start_weights():
    mem = _memory(2, "l2")
    e = torch.as_tensor(np.random.default_rng(3).normal(size=(2, 20, 12)), dtype=torch.float32)
    state = mem.init_state(2)
    stream = []
    for t in range(20):
        out = mem.step(state, e[:, t])
        state = out.state
        stream.append(out)
    scan = mem.scan(mem.init_state(2), e, chunk=1)
    torch.testing.assert_close(scan.retrieved, torch.stack([o.retrieved for o in stream], 1), atol=1e-6, rtol=0)
    torch.testing.assert_close(scan.score, torch.stack([o.score for o in stream], 1), atol=1e-6, rtol=0)
    for a, b in zip(scan.state.weights + scan.state.momentum, state.weights + state.momentum):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    # chunk = 5: every score inside a chunk is the surprise at the chunk-start weights
    chunked = mem.scan(mem.init_state(2), e, chunk=5)
    fresh = torch.stack([mem.step(mem.init_state(2), e[:, t]).score for t in range(5)], 1)
    torch.testing.assert_close(chunked.score[:, :5], fresh, atol=1e-6, rtol=0)
    assert not torch.allclose(chunked.score[:, 1:5], scan.score[:, 1:5])
    # ... and it carries nothing but weights and momentum of the fixed layer shapes
    assert set(vars(chunked.state)) == {"weights", "momentum"}
    assert [tuple(w.shape) for w in chunked.state.weights] == [(2, 8, 16), (2, 16, 8)]


def test_state_does_not_grow_with_the_stream():
    mem = _memory(1)
    state = mem.init_state(1)
    shapes = [tuple(w.shape) for w in state.weights + state.momentum]
    for _ in range(200):
        state = mem.step(state, torch.randn(1, 12)).state.detach()
    assert [tuple(w.shape) for w in state.weights + state.momentum] == shapes
    assert isinstance(state, MemoryState) and set(vars(state)) == {"weights", "momentum"}


def test_storing_moves_retrieval_toward_value_and_surprise_of_repeats_falls():
    mem = TitansMemory(12, 8, 2, 2, gates="constant", init_lr=0.9, init_alpha=1e-4, seed=1)
    with torch.no_grad():
        mem.w_q.copy_(mem.w_k)   # query with the key: read back what was stored
    e = torch.randn(1, 12)
    p = mem.inputs(e)
    state = mem.init_state(1)
    before = torch.linalg.norm(mem.apply_memory(state.weights, p["k"]) - p["v"])
    scores = []
    for _ in range(25):
        out = mem.step(state, e)
        state = out.state
        scores.append(float(out.score))
    after = torch.linalg.norm(out.retrieved - p["v"])
    assert after < 0.3 * before
    assert scores[-1] < 0.3 * scores[0]


def test_alpha_one_forgets_everything():
    mem = TitansMemory(12, 8, 2, 2, gates="constant", seed=2)
    with torch.no_grad():
        mem.b_alpha.fill_(60.0)    # alpha = 1
        mem.b_eta.fill_(-60.0)     # no momentum
        mem.b_lr.fill_(-60.0)      # no new learning
    out = mem.step(mem.init_state(2), torch.randn(2, 12))
    assert all(float(w.abs().max()) < 1e-12 for w in out.state.weights)


def test_below_threshold_steps_change_nothing():
    mem = _memory(threshold=1e9)
    state = mem.init_state(3)
    out = mem.step(state, torch.randn(3, 12))
    assert not out.updated.any()
    for a, b in zip(out.state.weights + out.state.momentum, state.weights + state.momentum):
        assert torch.equal(a, b)


def test_bounded_and_finite_on_hostile_streams():
    """The short version of the 1,000,000-step benchmark: max learning rate, max momentum."""
    mem = TitansMemory(12, 8, 2, 2, gates="constant", init_lr=0.999, init_eta=0.999, init_alpha=1e-3,
                       lr_max=1.0, eta_max=0.99, seed=4)
    rng = np.random.default_rng(0)
    n = 1500
    one = rng.normal(size=12)
    two = rng.normal(size=(2, 12))
    streams = np.stack([
        rng.normal(size=(n, 12)) * 10.0 ** rng.uniform(-30, 30, (n, 1)),   # huge and tiny norms
        np.repeat(one[None], n, 0),                                         # one input repeated
        two[np.arange(n) % 2],                                              # two alternating
        rng.normal(size=(n, 12)),                                           # noise
    ])
    with torch.no_grad():
        res = mem.scan(mem.init_state(4), torch.as_tensor(streams, dtype=torch.float32), chunk=50)
    assert torch.isfinite(res.retrieved).all() and torch.isfinite(res.score).all()
    # |theta'| <= (1 - alpha)|theta| + |S'| with |S'| <= eta_max |S| + lr_max * grad_clip, so the
    # weights stay below |theta0| + lr_max*clip / (alpha * (1 - eta_max))-ish; far below that here
    bound = max(float(w.abs().max()) for w in mem.theta0) + 1.0 / (1e-3 * 0.01)
    for w in res.state.weights:
        assert torch.isfinite(w).all() and float(w.abs().max()) < bound


def test_graph_round_trip_and_bad_inputs():
    mem = _memory(1, "lp")
    back = TitansMemory.from_graph(mem.to_graph())
    for k, v in mem.to_graph().arrays().items():
        np.testing.assert_array_equal(back.to_graph().arrays()[k], v)
    assert back.to_graph().settings() == mem.to_graph().settings()
    with pytest.raises(InputShapeError):
        mem.step(mem.init_state(1), torch.full((1, 12), float("nan")))
    with pytest.raises(InputShapeError):
        mem.step(mem.init_state(1), torch.zeros(1, 5))
    with pytest.raises(InputShapeError):
        mem.step(mem.init_state(2), torch.zeros(3, 12))
    with pytest.raises(ConfigError):
        TitansMemory(12, 8, depth=3)
    with pytest.raises(ConfigError):
        TitansMemory(12, 8, attentional_bias="cosine")
    with pytest.raises(ConfigError):
        mem.scan(mem.init_state(1), torch.zeros(1, 4, 12), chunk=0)
