"""The Loihi energy/latency estimate: linear in the counts, cited constants, clear errors."""
import numpy as np
import pytest

from liquidedge.energy import loihi
from liquidedge.errors import ConfigError, InputShapeError

BASE = {"synaptic_ops": 80_000, "neuron_updates": 2_080, "active_neuron_updates": 2_048,
        "spikes": 2_500, "time_steps": 65}


def test_each_count_adds_its_own_per_operation_cost():
    base = loihi.loihi_estimate(BASE)
    for key, pj, ns in (("synaptic_ops", loihi.E_SYNOP_PJ, loihi.T_SYNOP_NS),
                        ("spikes", loihi.E_SPIKE_TILE_PJ, loihi.T_SPIKE_TILE_NS),
                        ("time_steps", 0.0, loihi.T_BARRIER_NS)):
        more = loihi.loihi_estimate({**BASE, key: BASE[key] + 1000})
        assert more["uj_per_window"] - base["uj_per_window"] == pytest.approx(1000 * pj * 1e-6)
        assert more["latency_us"] - base["latency_us"] == pytest.approx(1000 * ns * 1e-3)
    # An inactive (reset) update is cheaper than an active one.
    all_active = loihi.loihi_estimate({**BASE, "active_neuron_updates": BASE["neuron_updates"]})
    assert all_active["uj_per_window"] - base["uj_per_window"] == pytest.approx(
        32 * (loihi.E_NEURON_ACTIVE_PJ - loihi.E_NEURON_INACTIVE_PJ) * 1e-6)
    assert sum(base["breakdown_uj"].values()) == pytest.approx(base["uj_per_window"])


def test_per_window_arrays_are_averaged_and_cores_split_the_work():
    arr = {k: np.array([v, 3 * v]) for k, v in BASE.items()}
    doubled = {k: 2 * v for k, v in BASE.items()}
    assert loihi.loihi_estimate(arr)["uj_per_window"] == pytest.approx(
        loihi.loihi_estimate(doubled)["uj_per_window"])
    one, four = loihi.loihi_estimate(BASE), loihi.loihi_estimate(BASE, cores=4)
    assert four["latency_us"] < one["latency_us"] and four["uj_per_window"] == one["uj_per_window"]


def test_assumptions_name_the_source_and_the_proxy():
    text = " ".join(loihi.loihi_estimate(BASE)["assumptions"])
    assert "Davies" in text and "Table 2" in text and "Loihi 2" in text and "proxy" in text


def test_bad_counts_are_refused():
    with pytest.raises(ConfigError, match="missing"):
        loihi.loihi_estimate({"synaptic_ops": 1})
    with pytest.raises(InputShapeError, match="non-negative"):
        loihi.loihi_estimate({**BASE, "spikes": -1})
    with pytest.raises(InputShapeError, match="finite"):
        loihi.loihi_estimate({**BASE, "synaptic_ops": np.nan})
    with pytest.raises(InputShapeError, match="exceeds"):
        loihi.loihi_estimate({**BASE, "active_neuron_updates": 10_000})
    with pytest.raises(ConfigError, match="cores"):
        loihi.loihi_estimate(BASE, cores=0)
