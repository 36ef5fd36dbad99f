"""Analytic energy: op counts checked against the operations the numpy reference really performs,
the published constants, and the device scaling."""
import numpy as np
import pytest
from collections import Counter

from liquidedge import reference as ref
from liquidedge.deploy.profiles import PROFILES, get_profile
from liquidedge.energy.estimate import (ADD_PJ, DRAM_PJ, MUL_PJ, SRAM_8K_PJ, estimate_energy, node_scale)
from liquidedge.energy.opcount import OpCounts, count_perception_ops
from liquidedge.errors import ConfigError
from liquidedge.ir import random_model


class Counting(np.ndarray):
    """An array that tallies every ufunc applied to it (matmul as multiply-accumulates)."""

    tally: Counter = Counter()

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        args = [np.asarray(a) if isinstance(a, Counting) else a for a in inputs]
        out = getattr(ufunc, method)(*args, **kwargs)
        if ufunc is np.matmul:
            a, b = args
            Counting.tally["macs"] += int(np.prod(a.shape[:-1])) * a.shape[-1] * b.shape[-1]
        else:
            Counting.tally[ufunc.__name__] += int(np.size(out))
        return out.view(Counting) if isinstance(out, np.ndarray) else out


def reference_tally(g, steps: int) -> Counter:
    """Run the reference on one window with the weights wrapped, and tally what it computed."""
    Counting.tally = Counter()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, steps, g.n_inputs))
    ref.perception_forward(g, x, np.full((1, steps), 0.7), dtype=np.float64)
    t = Counting.tally
    sig = t["tanh"]  # the reference's sigmoid is 0.5 * (1 + tanh(0.5 z)): 2 multiplies, 1 add, 1 tanh
    return Counter({"macs": t["macs"], "adds": t["add"] + t["subtract"] - sig,
                    "muls": t["multiply"] - 2 * sig, "divs": t["divide"] + t["true_divide"], "sigmoids": sig})


def wrapped(g):
    for name in ("w_in", "w_rec", "w_out"):
        if getattr(g, name) is not None:
            setattr(g, name, getattr(g, name).view(Counting))
    return g


@pytest.mark.parametrize("solver,unfolds,readout", [("fused", 1, None), ("fused", 3, 5), ("euler", 2, None),
                                                    ("rk4", 2, 4)])
def test_counts_match_the_operations_the_reference_performs(solver, unfolds, readout):
    g = wrapped(random_model(n_features=3, hidden=7, solver=solver, unfolds=unfolds, readout=readout,
                             seed=1).perception)
    # matmuls: exactly, for the whole window (readout included)
    assert count_perception_ops(g, 5).macs == reference_tally(g, 5)["macs"]
    # elementwise work per step: the difference of two window lengths removes the first step's
    # blend with the all-zero initial state (a plain array the tally cannot see)
    ours = {k: getattr(count_perception_ops(g, 5), k) - getattr(count_perception_ops(g, 4), k)
            for k in ("macs", "adds", "muls", "divs", "sigmoids")}
    theirs = reference_tally(g, 5)
    theirs.subtract(reference_tally(g, 4))
    assert ours == {k: theirs[k] for k in ours}


def test_sparse_counts_only_existing_synapses_and_weights_follow_precision():
    wiring = np.zeros((8, 8))
    wiring[np.arange(8), (np.arange(8) + 1) % 8] = 1
    g = random_model(hidden=8, wiring=wiring, seed=2).perception
    dense = count_perception_ops(g, 10)
    sparse = count_perception_ops(g, 10, sparse=True)
    assert dense.macs - sparse.macs == 10 * (64 - 8)
    int8 = count_perception_ops(g, 10, "int8-static")
    assert int8.weight_bytes_read < dense.weight_bytes_read
    assert (int8.matmul_dtype, int8.elementwise_dtype) == ("int8", "int8")
    assert count_perception_ops(g, 10, "int8-dynamic").elementwise_dtype == "fp32"
    with pytest.raises(ConfigError, match="unknown precision"):
        count_perception_ops(g, 10, "int4")
    with pytest.raises(ConfigError, match="steps"):
        count_perception_ops(g, 0)


def _only(**kw) -> OpCounts:
    base = dict(steps=1, macs=0, adds=0, muls=0, divs=0, sigmoids=0, weight_bytes_read=0, weight_bytes=0,
                activation_bytes=0, input_bytes=0, matmul_dtype="fp32", elementwise_dtype="fp32", sparse=False)
    base.update(kw)
    return OpCounts(**base)


def test_published_energies_are_the_ones_used():
    host = get_profile("x86-host")
    s = node_scale(host)
    e = estimate_energy(_only(macs=1000), host)
    assert e.high_uj == pytest.approx(1000 * (3.7 + 0.9) * 1e-6)      # Horowitz: fp32 mult + add
    assert e.low_uj == pytest.approx(s * e.high_uj)
    assert e.uj == pytest.approx(np.sqrt(e.low_uj * e.high_uj))
    i8 = estimate_energy(_only(macs=1000, matmul_dtype="int8"), host)
    assert i8.high_uj == pytest.approx(1000 * (MUL_PJ["int8"] + ADD_PJ["int32"]) * 1e-6)
    assert (MUL_PJ["int8"], ADD_PJ["int8"], MUL_PJ["fp32"], ADD_PJ["fp32"]) == (0.2, 0.03, 3.7, 0.9)
    assert DRAM_PJ == (1300.0, 2600.0) and SRAM_8K_PJ == 10.0
    assert e.method == "estimated" and any("Horowitz" in s for s in e.sources)


def test_weights_beyond_the_cache_are_read_from_dram():
    rpi5 = get_profile("rpi5")
    small = count_perception_ops(random_model(hidden=16).perception, 64)
    big = count_perception_ops(random_model(hidden=512, n_features=4, feedback=0).perception, 64)
    assert estimate_energy(small, rpi5).memory_level.startswith("SRAM 8 KB")
    e = estimate_energy(big, rpi5)
    assert e.memory_level == "DRAM"
    assert e.breakdown_pj["weights"] > e.breakdown_pj["matmul"]  # memory-bound, as Horowitz says


def test_smaller_nodes_and_int8_cost_less():
    g = random_model(hidden=32).perception
    fp32, int8 = count_perception_ops(g, 64), count_perception_ops(g, 64, "int8-static")
    assert estimate_energy(fp32, "rpi5").low_uj < estimate_energy(fp32, "rpi4").low_uj
    assert estimate_energy(int8, "rpi5").uj < estimate_energy(fp32, "rpi5").uj
    for name in PROFILES:
        e = estimate_energy(fp32, name)
        assert 0 < e.low_uj <= e.uj <= e.high_uj


def test_int8_scope_recorded_by_the_exporters_decides_what_runs_in_integer():
    g = random_model(hidden=32).perception
    full = count_perception_ops(g, 64, "int8-static", int8_scope="all")
    mm = count_perception_ops(g, 64, "int8-static", int8_scope="matmul")
    rec = count_perception_ops(g, 64, "int8-static", int8_scope="recurrent")
    fp32 = count_perception_ops(g, 64)
    assert (mm.matmul_dtype, mm.elementwise_dtype) == ("int8", "fp32")
    assert (rec.input_dtype, rec.matmul_dtype, rec.elementwise_dtype) == ("fp32", "int8", "fp32")
    assert rec.input_macs == 64 * g.n_inputs * g.hidden
    energies = [estimate_energy(c, "rpi5").high_uj for c in (full, mm, rec, fp32)]
    assert energies == sorted(energies)
    with pytest.raises(ConfigError, match="int8 scope"):
        count_perception_ops(g, 64, "int8-static", int8_scope="everything")
