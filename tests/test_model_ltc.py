"""The torch LTC encoder: equal to the numpy reference, correct per-sample dt, the promised
properties of the dynamics, and adjoint gradients that agree with backprop through the solver."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from liquidedge import reference as ref
from liquidedge.errors import ConfigError, InputShapeError
from liquidedge.model.ltc import LTCEncoder
from liquidedge.wiring import NCPWiring


def _window(rng, b=4, t=24, f=6, pad=True):
    x = rng.normal(0, 1.5, (b, t, f)).astype(np.float32)
    dt = rng.lognormal(0, 1, (b, t)).astype(np.float32)   # irregular, per sample
    mask = np.ones((b, t), np.float32)
    if pad:
        mask[1, :5] = 0      # left padding of a short window
        mask[2, 10] = 0      # a gap in the middle
        dt[1, :5] = 0
        x[1, :5] = 0
    return x, dt, mask


@pytest.mark.parametrize("solver", ["fused", "euler", "rk4"])
@pytest.mark.parametrize("wired", [False, True])
@pytest.mark.parametrize("readout", [None, 5])
def test_matches_reference_on_random_windows(solver, wired, readout):
    wiring = NCPWiring.small(seed=3) if wired else None
    enc = LTCEncoder(6, None if wired else 24, wiring=wiring, solver=solver, unfolds=2, readout=readout, seed=5)
    x, dt, mask = _window(np.random.default_rng(1))
    if solver != "fused":
        dt = np.minimum(dt, 0.5)  # explicit solvers are only stable for small steps
    got = enc(x, dt, mask).detach().numpy()
    want = ref.perception_forward(enc.to_graph(), x, dt, mask)        # float64 oracle
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    states = enc.states(x, dt, mask).detach().numpy()
    np.testing.assert_allclose(states, ref.perception_states(enc.to_graph(), x, dt, mask), atol=1e-5, rtol=0)


def test_matches_reference_on_real_emini_windows(emini):
    ds, norm = emini
    idx = np.arange(0, len(ds), max(1, len(ds) // 16))[:16]
    x = norm.apply(ds.x[idx], ds.mask[idx])
    dt = norm.scale_dt(ds.dt_s[idx], ds.mask[idx])
    mask = ds.mask[idx].astype(np.float32)
    enc = LTCEncoder(x.shape[-1], 32, solver="fused", unfolds=2, seed=0)
    np.testing.assert_allclose(enc(x, dt, mask).detach().numpy(),
                               ref.perception_forward(enc.to_graph(), x, dt, mask), atol=1e-5, rtol=0)


def test_batch_with_per_sample_dt_equals_per_sample_runs():
    enc = LTCEncoder(6, 16, solver="fused", unfolds=3, seed=2)
    x, dt, mask = _window(np.random.default_rng(2), b=5)
    dt[0] *= 100.0   # very different time scales in one batch
    dt[3] *= 0.01
    batch = enc(x, dt, mask).detach().numpy()
    for i in range(5):
        single = enc(x[i:i + 1], dt[i:i + 1], mask[i:i + 1]).detach().numpy()
        np.testing.assert_allclose(batch[i], single[0], atol=1e-6, rtol=0)
    # and the answer really depends on each sample's own dt (no sharing across the batch)
    swapped = enc(x, dt[::-1].copy(), mask[::-1].copy()).detach().numpy()
    assert not np.allclose(swapped[0], batch[0], atol=1e-3)


@settings(max_examples=30, deadline=None)
@given(dt=st.floats(1e-4, 1e4), seed=st.integers(0, 10_000), scale=st.floats(0.0, 0.99))
def test_fused_state_stays_in_the_box_for_any_dt(dt, seed, scale):
    enc = LTCEncoder(5, 12, solver="fused", unfolds=1, seed=seed % 50)
    rng = np.random.default_rng(seed)
    a = enc.a.detach().numpy()
    lo, hi = np.minimum(0, a), np.maximum(0, a)
    h0 = torch.as_tensor((lo + scale * (hi - lo))[None].repeat(3, 0), dtype=torch.float32)
    x = torch.as_tensor(rng.normal(0, 5, (3, 5)), dtype=torch.float32)
    x_proj = x @ enc.in_weight() + enc.bias
    h = h0
    for _ in range(5):
        h = enc.step(h, x_proj, torch.full((3,), dt), torch.ones(3), enc.rec_weight(), 1 / enc.tau())
        hn = h.detach().numpy()
        assert np.all(hn >= lo - 1e-6) and np.all(hn <= hi + 1e-6)


@pytest.mark.parametrize("solver", ["fused", "euler", "rk4"])
def test_masked_steps_and_vanishing_dt_leave_the_state_unchanged(solver):
    enc = LTCEncoder(6, 16, solver=solver, unfolds=2, seed=4)
    x, dt, _ = _window(np.random.default_rng(3), b=2, t=8, pad=False)
    dt = np.minimum(dt, 0.5)
    mask = np.ones((2, 8), np.float32)
    mask[:, 3:5] = 0
    s = enc.states(x, dt, mask).detach().numpy()
    np.testing.assert_array_equal(s[:, 2], s[:, 3])
    np.testing.assert_array_equal(s[:, 2], s[:, 4])
    assert not np.allclose(s[:, 4], s[:, 5])
    tiny = dt.copy()
    tiny[:, 6] = 1e-9
    s2 = enc.states(x, tiny, np.ones((2, 8), np.float32)).detach().numpy()
    np.testing.assert_allclose(s2[:, 6], s2[:, 5], atol=1e-7)


@pytest.mark.parametrize("solver", ["fused", "euler", "rk4"])
def test_one_step_with_many_unfolds_equals_two_half_steps(solver):
    one = LTCEncoder(6, 16, solver=solver, unfolds=64, seed=6)
    two = LTCEncoder.from_graph(one.to_graph())
    two.unfolds = 32
    rng = np.random.default_rng(4)
    x = rng.normal(size=(3, 1, 6)).astype(np.float32)
    h_one = one(x, np.full((3, 1), 0.8, np.float32)).detach().numpy()
    h_two = two(np.repeat(x, 2, axis=1), np.full((3, 2), 0.4, np.float32)).detach().numpy()
    np.testing.assert_allclose(h_one, h_two, atol=1e-5)


def test_sparse_wiring_is_kept_through_training_steps_and_export():
    w = NCPWiring.small(seed=2)
    enc = LTCEncoder(4, wiring=w, seed=1)
    opt = torch.optim.SGD(enc.parameters(), lr=0.5)
    x, dt, mask = _window(np.random.default_rng(5), b=3, t=12, f=4)
    for _ in range(3):
        opt.zero_grad()
        enc(x, dt, mask).pow(2).sum().backward()
        opt.step()
    g = enc.to_graph()
    np.testing.assert_array_equal(g.wiring, w.mask())
    assert np.all(g.w_rec[w.mask() == 0] == 0)
    assert np.all(g.w_in[w.input_mask(4) == 0] == 0)
    assert g.synapse_count() < 4 * 19 + 19 * 19


def test_graph_round_trip_is_exact_enough():
    enc = LTCEncoder(6, 10, solver="rk4", unfolds=3, readout=4, seed=8)
    g = enc.to_graph()
    back = LTCEncoder.from_graph(g).to_graph()
    for k, v in g.arrays().items():
        np.testing.assert_allclose(back.arrays()[k], v, rtol=1e-6, atol=1e-7)
    assert back.settings() == g.settings()


def test_adjoint_gradients_agree_with_backprop_through_the_solver():
    torch.manual_seed(0)
    enc = LTCEncoder(5, 12, solver="rk4", unfolds=8, readout=3, seed=9)
    rng = np.random.default_rng(6)
    x = torch.tensor(rng.normal(size=(3, 12, 5)), dtype=torch.float32, requires_grad=True)
    dt = torch.as_tensor(rng.uniform(0.1, 1.5, (3, 12)), dtype=torch.float32)
    mask = torch.ones(3, 12)
    mask[0, 4] = 0
    target = torch.as_tensor(rng.normal(size=(3, 3)), dtype=torch.float32)

    def grads(method):
        enc.gradient = method
        enc.zero_grad()
        x.grad = None
        loss = ((enc(x, dt, mask) - target) ** 2).sum()
        loss.backward()
        return float(loss), [p.grad.clone() for p in enc.parameters()] + [x.grad.clone()]

    loss_b, g_b = grads("bptt")
    loss_a, g_a = grads("adjoint")
    assert loss_a == pytest.approx(loss_b, rel=1e-5)
    for a, b in zip(g_a, g_b):
        assert torch.linalg.norm(a - b) <= 1e-3 * torch.linalg.norm(b) + 1e-7


@pytest.mark.parametrize("bad", ["nan", "inf_dt", "dt0", "dt_neg_pad", "shape", "features", "mask"])
def test_bad_windows_are_refused(bad):
    enc = LTCEncoder(3, 4)
    x, dt, mask = np.zeros((2, 5, 3)), np.ones((2, 5)), np.ones((2, 5))
    if bad == "nan":
        x[1, 2, 0] = np.nan
    elif bad == "inf_dt":
        dt[0, 1] = np.inf
    elif bad == "dt0":
        dt[0, 3] = 0.0
    elif bad == "dt_neg_pad":
        mask[0, 0], dt[0, 0] = 0, -1.0
    elif bad == "shape":
        x = np.zeros((2, 5))
    elif bad == "features":
        x = np.zeros((2, 5, 4))
    else:
        mask[0, 0] = 0.5
    with pytest.raises(InputShapeError):
        enc(x, dt, mask)


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError):
        LTCEncoder(3, 4, solver="dopri")
    with pytest.raises(ConfigError):
        LTCEncoder(3, 4, unfolds=0)
    with pytest.raises(ConfigError):
        LTCEncoder(3, 4, solver="fused", gradient="adjoint")   # fused is not an ODE solver
    with pytest.raises(ConfigError):
        LTCEncoder(3, 5, wiring=NCPWiring.small())
    with pytest.raises(ConfigError):
        LTCEncoder(3, wiring=np.full((4, 4), 0.5))


@pytest.fixture(scope="module")
def emini():
    from liquidedge.data import Normaliser, SampleDataMissingError, build_dataset, load_default_ticks
    try:
        ds = build_dataset(load_default_ticks())
    except SampleDataMissingError as exc:
        pytest.skip(str(exc))
    return ds, Normaliser(ds.feature_names).fit(ds.x, ds.mask, ds.dt_s)
