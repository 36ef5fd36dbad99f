"""NCP wiring: the sparsity pattern is seeded data that respects its layer rules."""
import numpy as np
import pytest

from liquidedge import reference as ref
from liquidedge.errors import ConfigError
from liquidedge.ir import PerceptionGraph, random_model
from liquidedge.wiring import NCPWiring, dense


def _block(m, w, src, dst):
    return m[np.ix_(w.indices(src), w.indices(dst))]


def test_layers_only_connect_forward_and_fanouts_hold():
    w = NCPWiring(inter=10, command=5, motor=2, sensory_fanout=3, inter_fanout=2,
                  recurrent_command=4, motor_fanin=3, seed=7)
    m = w.mask()
    assert m.shape == (17, 17) and set(np.unique(m)) <= {0.0, 1.0}
    allowed = np.zeros_like(m)
    for src, dst in (("inter", "command"), ("command", "command"), ("command", "motor")):
        allowed[np.ix_(w.indices(src), w.indices(dst))] = 1
    assert np.all(m <= allowed), "a synapse exists between layers the NCP does not connect"
    assert np.all(_block(m, w, "inter", "command").sum(axis=1) >= 2)
    assert _block(m, w, "command", "command").sum() == 4
    assert np.all(_block(m, w, "command", "motor").sum(axis=0) >= 3)
    # nothing is cut off: every command unit has an inter input and a motor output
    assert np.all(_block(m, w, "inter", "command").sum(axis=0) >= 1)
    assert np.all(_block(m, w, "command", "motor").sum(axis=1) >= 1)
    im = w.input_mask(6)
    assert im.shape == (6, 17)
    assert np.all(im[:, w.indices("inter")].sum(axis=1) >= 3)
    assert im[:, w.indices("command")].sum() == 0 and im[:, w.indices("motor")].sum() == 0
    assert np.all(im[:, w.indices("inter")].sum(axis=0) >= 1)
    assert w.synapse_count() == int(m.sum())
    assert w.synapse_count(6) == int(m.sum() + im.sum())


def test_seed_makes_it_reproducible_and_different_seeds_differ():
    a, b = NCPWiring.small(seed=3), NCPWiring.small(seed=3)
    np.testing.assert_array_equal(a.mask(), b.mask())
    np.testing.assert_array_equal(a.input_mask(5), b.input_mask(5))
    assert not np.array_equal(a.mask(), NCPWiring.small(seed=4).mask())


def test_dict_round_trip_and_describe():
    w = NCPWiring.small(seed=11)
    back = NCPWiring.from_dict(w.to_dict())
    assert back == w
    np.testing.assert_array_equal(back.mask(), w.mask())
    text = w.describe(n_inputs=8)
    assert "19 units" in text and f"{w.synapse_count()} of 361" in text
    assert "inter 12" in str(w)


@pytest.mark.parametrize("kwargs", [
    dict(inter=0, command=2, motor=1, sensory_fanout=1, inter_fanout=1, recurrent_command=0, motor_fanin=1),
    dict(inter=4, command=2, motor=1, sensory_fanout=5, inter_fanout=1, recurrent_command=0, motor_fanin=1),
    dict(inter=4, command=2, motor=1, sensory_fanout=2, inter_fanout=3, recurrent_command=0, motor_fanin=1),
    dict(inter=4, command=2, motor=1, sensory_fanout=2, inter_fanout=1, recurrent_command=5, motor_fanin=1),
    dict(inter=4, command=2, motor=1, sensory_fanout=2, inter_fanout=1, recurrent_command=1, motor_fanin=3),
])
def test_impossible_wirings_are_refused(kwargs):
    with pytest.raises(ConfigError):
        NCPWiring(**kwargs)


def test_from_dict_refuses_garbage():
    with pytest.raises(ConfigError):
        NCPWiring.from_dict({"kind": "dense"})
    with pytest.raises(ConfigError):
        NCPWiring.from_dict({"inter": 3})
    with pytest.raises(ConfigError):
        NCPWiring.from_dict({**NCPWiring.small().to_dict(), "inter": "many"})
    with pytest.raises(ConfigError):
        dense(0)


def test_wired_graph_is_a_valid_sparse_perception_graph():
    w = NCPWiring.small(seed=1)
    model = random_model(hidden=w.units, wiring=w.mask(), seed=2)
    g = model.perception
    assert isinstance(g, PerceptionGraph)
    assert g.synapse_count() == g.w_in.size + w.synapse_count()
    dense_g = random_model(hidden=w.units, wiring=dense(w.units), seed=2).perception
    assert g.synapse_count() < dense_g.synapse_count()
    # a unit that receives no recurrent synapse only sees its input: zeroing the others' state
    # history changes nothing for it (here: every inter unit, which has no recurrent input)
    x = np.random.default_rng(0).normal(size=(2, 5, g.n_inputs))
    states = ref.perception_states(g, x, np.ones((2, 5)))
    inter = w.indices("inter")
    g_cut = PerceptionGraph(g.w_in, np.zeros_like(g.w_rec), g.bias, g.tau, g.a, np.zeros_like(g.wiring))
    cut = ref.perception_states(g_cut, x, np.ones((2, 5)))
    np.testing.assert_allclose(states[..., inter], cut[..., inter], atol=1e-12)
    assert not np.allclose(states[..., w.indices("motor")], cut[..., w.indices("motor")])
