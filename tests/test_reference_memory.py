"""The numpy oracle's memory step: closed-form gradient, update rules and stability."""
import numpy as np
import pytest

from liquidedge import reference as ref
from liquidedge.errors import InputShapeError
from liquidedge.ir import random_model


@pytest.mark.parametrize("depth", [1, 2])
@pytest.mark.parametrize("bias", ["l2", "huber", "lp"])
def test_closed_form_gradient_matches_finite_differences(depth, bias):
    g = random_model(depth=depth, seed=depth).memory
    g.attentional_bias = bias
    g.huber_delta = 0.05
    rng = np.random.default_rng(3)
    state = ref.init_memory_state(g, 2)
    state.weights = [w + rng.normal(0, 0.2, w.shape) for w in state.weights]
    p = ref.memory_inputs(g, rng.normal(size=(2, g.embedding_dim)))
    _, grads = ref.memory_loss_and_grad(g, state.weights, p["k"], p["v"])
    for layer, gw in enumerate(grads):
        for idx in [(0, 1, 2), (1, 3, 0), (1, 0, 5)]:
            eps = 1e-6
            w_plus = [w.copy() for w in state.weights]
            w_minus = [w.copy() for w in state.weights]
            w_plus[layer][idx] += eps
            w_minus[layer][idx] -= eps
            lp, _ = ref.memory_loss_and_grad(g, w_plus, p["k"], p["v"])
            lm, _ = ref.memory_loss_and_grad(g, w_minus, p["k"], p["v"])
            numeric = (lp[idx[0]] - lm[idx[0]]) / (2 * eps)
            assert numeric == pytest.approx(gw[idx], rel=1e-4, abs=1e-7)


def test_storing_moves_retrieval_toward_value_and_surprise_falls():
    g = random_model(seed=1).memory
    g.w_q = g.w_k.copy()  # query with the key: retrieval reads back what was stored
    g.w_alpha[:] = 0
    g.b_alpha = -20.0
    g.b_lr = 2.0
    e = np.random.default_rng(0).normal(size=(1, g.embedding_dim))
    state = ref.init_memory_state(g)
    p = ref.memory_inputs(g, e)
    before = np.linalg.norm(ref.memory_apply(g, state.weights, p["k"]) - p["v"])
    scores = []
    for _ in range(20):
        res = ref.memory_step(g, state, e)
        state = res.state
        scores.append(res.score[0])
    after = np.linalg.norm(res.retrieved - p["v"])
    assert after < 0.5 * before
    assert scores[-1] < 0.5 * scores[0]


def test_alpha_one_forgets_everything_and_threshold_blocks_updates():
    g = random_model(seed=2).memory
    g.w_alpha[:] = 0
    g.b_alpha = 60.0  # alpha = sigmoid(60) == 1 in float64
    g.w_eta[:] = 0
    g.b_eta = -60.0   # no momentum carried
    g.b_lr = -60.0    # no new learning: the forgotten weights stay at zero
    state = ref.init_memory_state(g)
    e = np.ones((1, g.embedding_dim))
    res = ref.memory_step(g, state, e)
    assert all(np.abs(w).max() < 1e-12 for w in res.state.weights)
    g2 = random_model(seed=2).memory
    g2.threshold = 1e9
    s0 = ref.init_memory_state(g2)
    res2 = ref.memory_step(g2, s0, e)
    assert not res2.updated[0]
    for a, b in zip(res2.state.weights + res2.state.momentum, s0.weights + s0.momentum):
        np.testing.assert_array_equal(a, b)


def test_memory_is_bounded_on_adversarial_streams():
    g = random_model(seed=4).memory
    g.b_lr = 5.0
    g.b_eta = 5.0
    rng = np.random.default_rng(0)
    streams = {
        "huge": rng.normal(size=(2000, g.embedding_dim)) * 1e30,
        "repeat": np.repeat(rng.normal(size=(1, g.embedding_dim)), 2000, axis=0),
        "alternate": np.tile(rng.normal(size=(2, g.embedding_dim)), (1000, 1)),
        "noise": rng.normal(size=(2000, g.embedding_dim)),
    }
    for name, es in streams.items():
        state = ref.init_memory_state(g)
        for e in es:
            res = ref.memory_step(g, state, e[None])
            state = res.state
        assert all(np.isfinite(w).all() and np.abs(w).max() < 1e3 for w in state.weights), name


def test_bad_embeddings_are_refused():
    g = random_model().memory
    state = ref.init_memory_state(g)
    with pytest.raises(InputShapeError):
        ref.memory_step(g, state, np.full((1, g.embedding_dim), np.nan))
    with pytest.raises(InputShapeError):
        ref.memory_step(g, state, np.ones((1, g.embedding_dim + 1)))
