"""The real E-mini S&P 500 sample: 500,000 trades, 2013-09-01..03, with the Labor Day halt."""
from __future__ import annotations

import numpy as np
import pytest

from liquidedge.data.pipeline import DataSpec, build_dataset, split
from liquidedge.data.timeutil import format_ns


def test_loads_500k_rows_spanning_the_three_days(emini_events):
    ev = emini_events
    assert len(ev) == 500_000
    assert ev.tz == "America/Chicago" and ev.repair is None
    assert format_ns(ev.time_ns[0], ev.tz).startswith("2013-09-01T17:00:00.083")
    assert format_ns(ev.time_ns[-1], ev.tz).startswith("2013-09-03T13:51:44.578")
    assert np.all(np.diff(ev.time_ns) >= 0)
    assert np.count_nonzero(np.diff(ev.time_ns) == 0) == 415_432    # duplicate stamps kept
    assert ev.size.sum() == 1_844_058


def test_halt_is_the_largest_gap(emini_events):
    gaps = np.diff(emini_events.time_ns)
    i = int(np.argmax(gaps))
    assert gaps[i] / 3.6e12 == pytest.approx(6.5, abs=0.01)
    assert format_ns(emini_events.time_ns[i], "America/Chicago").startswith("2013-09-02T10:29:59")
    assert np.sort(gaps)[-2] < 3_600 * 10**9                       # nothing else comes close


def test_default_dataset(emini_events):
    spec = DataSpec()
    ds = build_dataset(emini_events, spec)
    n = len(ds)
    assert 1_000 < n < 3_000
    assert ds.x.shape == (n, 64, len(spec.features)) and np.all(np.isfinite(ds.x))
    full = ds.mask.all(axis=1).mean()
    assert full > 0.85                                             # windows mostly hold >= 64 bars
    assert ds.target_valid.mean() > 0.98
    # the persistence baseline carries information about next-horizon volatility
    v = ds.target_valid
    assert np.corrcoef(ds.baseline_logvol[v], ds.target_logvol[v])[0, 1] > 0.3
    train, val, test = split(ds)
    assert train.end_ns.max() < val.end_ns.min() < test.end_ns.min()
