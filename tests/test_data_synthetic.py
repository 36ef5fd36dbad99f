"""The regime-switching generator: seeded, exact size, labels agree with the known change times."""
from __future__ import annotations

import time

import numpy as np
import pytest

from liquidedge.data.synthetic import DEFAULT_REGIMES, Regime, generate_market
from liquidedge.data.ticks import validate_events
from liquidedge.errors import ConfigError


def test_seeded_determinism():
    a = generate_market(20_000, seed=7)
    b = generate_market(20_000, seed=7)
    c = generate_market(20_000, seed=8)
    for name in ("time_ns", "price", "size"):
        assert np.array_equal(getattr(a.events, name), getattr(b.events, name))
    assert np.array_equal(a.regime, b.regime) and np.array_equal(a.change_ns, b.change_ns)
    assert not np.array_equal(a.events.price, c.events.price)


def test_labels_and_change_times_consistent():
    m = generate_market(200_000, seed=1, mean_regime_s=300.0)
    ev = m.events
    assert len(ev) == 200_000
    validate_events(ev)                                        # sorted, finite, sizes >= 1
    assert np.any(np.diff(ev.time_ns) == 0)                    # duplicate stamps, as in real feeds
    assert len(m.change_ns) >= 5
    # every event carries the regime of the segment its stamp falls in
    seg = np.searchsorted(m.segment_start_ns, ev.time_ns, side="right") - 1
    assert np.array_equal(m.regime, m.segment_regime[seg])
    # at each change the regime differs and the change index is the first event at/after it
    assert np.all(m.segment_regime[1:] != m.segment_regime[:-1])
    assert np.all(ev.time_ns[m.change_index[m.change_index < len(ev)]] >= m.change_ns[m.change_index < len(ev)])
    inside = (m.change_index > 0) & (m.change_index < len(ev))
    assert np.all(ev.time_ns[m.change_index[inside] - 1] < m.change_ns[inside])
    # regimes really differ: the volatile one moves more per sqrt(second) than the calm one
    r = np.diff(np.log(ev.price))
    dt = np.diff(ev.time_ns) / 1e9
    lab = m.regime[1:]
    ok = dt > 0
    vol = {k: np.sqrt(np.mean(r[ok & (lab == k)] ** 2 / dt[ok & (lab == k)])) for k in np.unique(lab)}
    names = [reg.name for reg in m.regimes]
    if {"calm", "volatile"} <= {names[k] for k in vol}:
        assert vol[names.index("volatile")] > 3 * vol[names.index("calm")]


def test_fast_enough():
    t0 = time.perf_counter()
    m = generate_market(500_000, seed=0)
    assert len(m.events) == 500_000
    assert time.perf_counter() - t0 < 3.0                      # ~0.1 s; generous for shared CPUs


def test_bad_settings():
    with pytest.raises(ConfigError):
        generate_market(0)
    with pytest.raises(ConfigError):
        generate_market(10, regimes=(Regime("x", vol=1e-4, branching=1.2),))
    with pytest.raises(ConfigError):
        generate_market(10, regimes=())
    one = generate_market(1_000, seed=2, regimes=DEFAULT_REGIMES[:1], tick=0.25)
    assert np.all(one.regime == 0) and np.all(np.round(one.events.price / 0.25) * 0.25 == one.events.price)
