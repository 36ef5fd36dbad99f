"""The numpy oracle's LTC: the properties the maths promises."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from liquidedge import reference as ref
from liquidedge.errors import InputShapeError
from liquidedge.ir import random_model


@settings(max_examples=40, deadline=None)
@given(dt=st.floats(1e-4, 1e4), seed=st.integers(0, 1000))
def test_fused_state_stays_in_box(dt, seed):
    g = random_model(seed=seed).perception
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 3, (2, 8, g.n_inputs))
    states = ref.perception_states(g, x, np.full((2, 8), dt))
    lo, hi = np.minimum(0, g.a), np.maximum(0, g.a)
    assert np.all(states >= lo - 1e-9) and np.all(states <= hi + 1e-9)


def test_masked_and_tiny_dt_steps_leave_state_unchanged():
    g = random_model().perception
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 6, g.n_inputs))
    dt = np.ones((1, 6))
    mask = np.array([[1, 1, 0, 0, 1, 1]])
    s = ref.perception_states(g, x, dt, mask)
    np.testing.assert_array_equal(s[0, 1], s[0, 3])
    dt_small = dt.copy()
    dt_small[0, 2] = 1e-12
    s2 = ref.perception_states(g, x, dt_small)
    np.testing.assert_allclose(s2[0, 1], s2[0, 2], atol=1e-10)


@pytest.mark.parametrize("solver", ["fused", "euler", "rk4"])
def test_one_step_many_unfolds_equals_two_half_steps(solver):
    base = random_model(solver=solver, unfolds=64).perception
    rng = np.random.default_rng(1)
    x1 = rng.normal(size=(3, 1, base.n_inputs))
    h_one = ref.perception_forward(base, x1, np.full((3, 1), 0.5))
    half = random_model(solver=solver, unfolds=32).perception
    h_two = ref.perception_forward(half, np.repeat(x1, 2, axis=1), np.full((3, 2), 0.25))
    np.testing.assert_allclose(h_one, h_two, atol=1e-10)


def test_batch_equals_per_sample_with_different_dt():
    g = random_model().perception
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 10, g.n_inputs))
    dt = rng.uniform(0.01, 5, (4, 10))
    batch = ref.perception_forward(g, x, dt)
    for i in range(4):
        np.testing.assert_allclose(batch[i], ref.perception_forward(g, x[i:i + 1], dt[i:i + 1])[0])


@pytest.mark.parametrize("bad", ["nan", "dt0", "shape", "mask"])
def test_bad_windows_are_refused(bad):
    g = random_model().perception
    x = np.zeros((1, 4, g.n_inputs))
    dt = np.ones((1, 4))
    mask = np.ones((1, 4))
    if bad == "nan":
        x[0, 2, 1] = np.nan
    elif bad == "dt0":
        dt[0, 1] = 0
    elif bad == "shape":
        x = x[..., :-1]
    else:
        mask[0, 0] = 0.5
    with pytest.raises(InputShapeError):
        ref.perception_forward(g, x, dt, mask)
