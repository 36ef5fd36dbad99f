"""The fixed_pt LTC arithmetic (numpy only): tables, bounds, formats and the whole-network mirror."""
import numpy as np
import pytest

from liquidedge import reference as ref
from liquidedge.errors import ConfigError, InputShapeError
from liquidedge.ir import random_model
from liquidedge.lava_procs import fixed_point as fxp


def _cos(a, b):
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_sigmoid_table_error_is_within_its_bound():
    table = fxp.sigmoid_table()
    z = np.linspace(-20, 20, 200_001)
    z_q = np.round(z * 2 ** fxp.Q_Z).astype(np.int64)
    f = fxp.sigmoid_q(z_q, table) / 2 ** fxp.Q_F
    err = np.abs(f - ref.sigmoid(z_q / 2 ** fxp.Q_Z))
    # Interpolation h^2/8 * max|sigmoid''| (h = 1/8), saturation beyond 16, Q16 rounding.
    bound = max((1 / 8) ** 2 / 8 * 0.0963, ref.sigmoid(-16.0)) + 2 ** -fxp.Q_F
    assert err.max() <= bound
    assert np.all(np.diff(f) >= 0)  # monotone, like the sigmoid


def test_reciprocal_table_relative_error_and_exact_one():
    q_d = 20
    table = fxp.reciprocal_table()
    den = np.unique(np.round(np.geomspace(1, 2 ** 23 - 1, 100_000)).astype(np.int64))
    r, k = fxp.reciprocal_q(den, q_d, table)
    approx = r * 2.0 ** (-fxp.Q_R - k.astype(float))
    exact = 2.0 ** q_d / den
    rel = np.abs(approx - exact) / exact
    # Linear interpolation of 1/m on 64 segments: h^2/8 * max|2/m^3| = 6.1e-5, plus truncation.
    assert rel.max() < 6.2e-5 + 2.0 ** -q_d * 2
    r1, k1 = fxp.reciprocal_q(np.array([1 << q_d]), q_d, table)
    assert r1[0] == 1 << fxp.Q_R and k1[0] == 0


def test_masked_step_leaves_state_bit_exact_and_huge_dt_stays_in_box():
    g = random_model(seed=3).perception
    fmt, arr = fxp.quantise_graph(g)
    sig, rec = arr["sigmoid_lut"].astype(np.int64), arr["recip_lut"].astype(np.int64)
    rng = np.random.default_rng(0)
    h = rng.integers(-2 ** 20, 2 ** 20, size=(5, g.hidden))
    z = rng.integers(-2 ** 15, 2 ** 15, size=(5, g.hidden))
    _, p, q = fxp.step_controls(np.ones(1), np.zeros(1), 1)            # a padding step
    p_q, q_q = fxp.quantise_controls(p, q)
    same = fxp.ltc_step_q(h, z, p_q, q_q, arr["a_q"], arr["inv_tau_q"], fmt.q_d, sig, rec)
    np.testing.assert_array_equal(same, h)
    _, p, q = fxp.step_controls(np.array([1e9]), np.ones(1), 1)        # q underflows to 0
    p_q, q_q = fxp.quantise_controls(p, q)
    out = fxp.ltc_step_q(h, z, p_q, q_q, arr["a_q"], arr["inv_tau_q"], fmt.q_d, sig, rec)
    a = arr["a_q"].astype(np.int64)
    assert np.all(out >= np.minimum(0, a) - 1) and np.all(out <= np.maximum(0, a) + 1)
    # The d -> infinity limit of the fused step is f A / (1/tau + f).
    f = ref.sigmoid(z / 2 ** fxp.Q_Z)
    limit = f * g.a / (1 / g.tau + f)
    np.testing.assert_allclose(out / 2 ** fmt.q_h, limit, atol=2e-3)


def test_weight_quantisation_is_8_bit_with_half_step_error():
    w = np.random.default_rng(1).normal(0, 0.7, (9, 13))
    mant, exp = fxp.quantise_weights(w)
    assert np.abs(mant).max() <= 127 and np.abs(mant).max() >= 64  # uses the range
    assert np.abs(w - mant * 2.0 ** exp).max() <= 2.0 ** (exp - 1) + 1e-12
    zero, e0 = fxp.quantise_weights(np.zeros((2, 2)))
    assert not zero.any() and e0 == 0
    # A second 8-bit synapse for the residual makes the weights 16-bit precise.
    mant2 = fxp.quantise_residual(w, mant, exp)
    assert np.abs(mant2).max() <= 127
    w16 = fxp.effective_weights({"w_mant": mant, "w_mant2": mant2}, "w", exp)
    assert np.abs(w - w16).max() <= 2.0 ** (exp - 9) + 1e-15


def test_formats_rule_out_accumulator_overflow():
    g = random_model(seed=5, hidden=48).perception
    fmt, arr = fxp.quantise_graph(g, x_range=64.0)
    col_in = np.abs(2 * arr["w_in_mant"].astype(np.int64)).sum(axis=0).max()
    col_rec = np.abs(2 * arr["w_rec_mant"].astype(np.int64)).sum(axis=0).max()
    assert col_in * round(64.0 * 2 ** fmt.q_x) <= fxp.ACC_MAX
    h_max = np.abs(arr["a_q"]).max() + 1
    assert col_rec * (h_max >> (fmt.q_h - fmt.q_s)) <= fxp.ACC_MAX
    assert np.abs(arr["a_q"]).max() * 2 < 2 ** 23  # q h + p f A stays 24-bit


@pytest.mark.parametrize("unfolds,readout,synapses", [(1, None, 1), (2, 5, 1), (1, None, 2)])
def test_mirror_matches_reference_on_random_windows(unfolds, readout, synapses):
    g = random_model(seed=unfolds, unfolds=unfolds, readout=readout).perception
    fmt, arr = fxp.quantise_graph(g, weight_synapses=synapses)
    rng = np.random.default_rng(unfolds)
    x = rng.normal(size=(64, 32, g.n_inputs))
    dt = rng.exponential(1.0, (64, 32)) * 10.0 ** rng.uniform(-2, 3, (64, 1))
    mask = (rng.uniform(size=(64, 32)) > 0.15).astype(float)
    want = ref.perception_forward(g, x, dt, mask)
    got = fxp.FixedPointMirror(fmt, arr, unfolds).encode(x, dt, mask)
    assert _cos(want, got).min() > 0.999
    assert np.abs(want - got).max() < (0.05 if synapses == 1 else 2e-3)


def test_fixed_point_refuses_what_it_cannot_represent():
    with pytest.raises(ConfigError, match="fused"):
        fxp.quantise_graph(random_model(solver="rk4").perception)
    with pytest.raises(ConfigError, match="weight_synapses"):
        fxp.quantise_graph(random_model().perception, weight_synapses=3)
    with pytest.raises(ConfigError, match="x_range"):
        fxp.quantise_graph(random_model().perception, x_range=float("inf"))
    fmt, _ = fxp.quantise_graph(random_model().perception, x_range=8.0)
    with pytest.raises(InputShapeError, match="exceeds the fixed_pt input range"):
        fxp.encode_inputs(np.array([[[0.0, 9.0]]]), fmt)
    with pytest.raises(Exception, match="incompatible|malformed"):
        fxp.FixedFormats.from_dict({**fmt.to_dict(), "q_z": 11})


@pytest.mark.parametrize("synapses", [1, 2])
@pytest.mark.parametrize("d", [1e-3, 0.3, 1.0, 7.0, 1e4])
def test_one_step_error_is_within_the_documented_bound(d, synapses):
    g = random_model(seed=11, hidden=24).perception
    fmt, arr = fxp.quantise_graph(g, x_range=8.0, weight_synapses=synapses)
    rng = np.random.default_rng(int(d * 1000) % 997)
    n = 2000
    x = rng.uniform(-8, 8, (n, g.n_inputs))
    a_q = arr["a_q"].astype(np.int64)
    h_q = np.round(rng.uniform(0, 1, (n, g.hidden)) * a_q).astype(np.int64)  # inside the box
    _, p, q = fxp.step_controls(np.full(n, d), np.ones(n), 1)
    p_q, q_q = fxp.quantise_controls(p, q)
    s_x, s_h = fxp.encode_inputs(x, fmt), fxp.state_payload(h_q, fmt)
    z = (fxp.dense_q(s_x, arr["w_in_mant"], fmt.exp_in)
         + fxp.dense_q(s_h, arr["w_rec_mant"], fmt.exp_rec) + arr["bias_q"])
    if synapses == 2:
        z += (fxp.dense_q(s_x, arr["w_in_mant2"], fmt.exp_in - fxp.RESIDUAL_SHIFT)
              + fxp.dense_q(s_h, arr["w_rec_mant2"], fmt.exp_rec - fxp.RESIDUAL_SHIFT))
    fixed = fxp.ltc_step_q(h_q, z, p_q[:, None], q_q[:, None], a_q, arr["inv_tau_q"], fmt.q_d,
                           arr["sigmoid_lut"].astype(np.int64), arr["recip_lut"].astype(np.int64))
    h = h_q / 2.0 ** fmt.q_h
    a = a_q / 2.0 ** fmt.q_h
    inv_tau = arr["inv_tau_q"] / 2.0 ** fmt.q_d
    f = ref.sigmoid(x @ fxp.effective_weights(arr, "w_in", fmt.w_in_exp)
                    + h @ fxp.effective_weights(arr, "w_rec", fmt.w_rec_exp) + g.bias)
    exact = (h + d * f * a) / (1 + d * (inv_tau + f))
    err = np.abs(fixed / 2.0 ** fmt.q_h - exact).max()
    bound = fxp.one_step_error_bound(fmt, arr, d)
    assert err <= bound
    assert bound < 1e-2  # and the bound itself is not vacuous
