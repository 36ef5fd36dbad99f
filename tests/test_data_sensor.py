"""Sensor streams: windows of the last T readings, dt floored at the clock, targets only from the future."""
from __future__ import annotations

import numpy as np
import pytest

from liquidedge.data import split
from liquidedge.data.sensor import (SENSOR_FEATURE_NAMES, SensorSpec, build_sensor_dataset, clock_tick_s,
                                    load_ppg_sample, persistence_forecast, reading_dt, simulate_dropouts,
                                    with_constant_dt)
from liquidedge.errors import ConfigError, DataValidationError

MS = 1_000_000


def _stream(n=40, seed=0):
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.integers(5, 30, size=n)) * MS
    v = np.sin(np.arange(n) / 3.0) * 10 + 50 + rng.normal(0, 0.1, n)
    return t.astype(np.int64), v


def test_features_dt_and_next_value_by_hand_with_a_repeated_stamp():
    t = np.array([0, 10, 10, 40, 50, 70], np.int64) * MS        # reading 2 repeats reading 1's stamp
    v = np.array([1.0, 3.0, 2.0, 6.0, 5.0, 9.0])
    spec = SensorSpec(steps=3, every=1, min_dt_s=0.005, center=0.0, scale=2.0)
    ds = build_sensor_dataset(t, v, spec)
    assert ds.feature_names == SENSOR_FEATURE_NAMES == ("value", "diff", "log_dt")
    np.testing.assert_array_equal(ds.end_bar, [3, 4, 5])             # windows need a reading before them
    z = v / 2.0
    first = ds.x[0]                                                  # readings 1, 2, 3
    np.testing.assert_allclose(first[:, 0], z[1:4])
    np.testing.assert_allclose(first[:, 1], z[1:4] - z[0:3])
    np.testing.assert_allclose(ds.dt_s[0], [0.010, 0.005, 0.030], rtol=1e-6)   # repeated stamp -> floor
    np.testing.assert_allclose(first[:, 2], np.log([0.010, 0.005, 0.030]), rtol=1e-5)
    np.testing.assert_allclose(ds.target_value[:2], z[[4, 5]])
    assert list(ds.target_valid) == [True, True, False] and np.isnan(ds.target_value[2])
    np.testing.assert_array_equal(ds.end_ns, t[[3, 4, 5]])
    assert ds.mask.all() and ds.x.dtype == np.float32 and ds.dt_s.dtype == np.float32
    dt, floored = reading_dt(t, 0.005)
    assert floored == 1 and np.isnan(dt[0])


def test_targets_come_only_from_the_future():
    t, v = _stream(60)
    spec = SensorSpec(steps=8, every=4, horizon=2, center=50.0, scale=10.0)
    base = build_sensor_dataset(t, v, spec)
    k = 29                                   # change one reading: windows ending before it see it only as a target
    v2 = v.copy()
    v2[k] += 100.0
    moved = build_sensor_dataset(t, v2, spec)
    before = base.end_bar < k
    np.testing.assert_array_equal(base.x[before], moved.x[before])
    same = (base.target_value == moved.target_value) | (np.isnan(base.target_value) & np.isnan(moved.target_value))
    assert list(np.flatnonzero(~same)) == list(np.flatnonzero(base.end_bar + 2 == k)) and (~same).sum() == 1


def test_received_mask_windows_skip_lost_readings_but_targets_do_not():
    t = np.arange(12, dtype=np.int64) * 10 * MS
    v = np.arange(12, dtype=float)
    received = np.ones(12, bool)
    received[[5, 6]] = False                                        # a lost run of two readings
    spec = SensorSpec(steps=3, every=1, target="change", center=0.0, scale=1.0)
    ds = build_sensor_dataset(t, v, spec, received=received)
    np.testing.assert_array_equal(ds.end_bar, [3, 4, 7, 8, 9, 10, 11])   # full-stream indices
    w = ds.x[list(ds.end_bar).index(7)]                            # readings 3, 4, 7
    np.testing.assert_allclose(w[:, 0], [3, 4, 7])
    np.testing.assert_allclose(ds.dt_s[list(ds.end_bar).index(7)], [0.01, 0.01, 0.03], rtol=1e-6)
    after_4 = list(ds.end_bar).index(4)
    assert ds.target_value[after_4] == pytest.approx(5 - 4)          # the lost reading 5 is still the target
    np.testing.assert_array_equal(persistence_forecast(ds), np.zeros(len(ds)))
    with pytest.raises(DataValidationError, match="received"):
        build_sensor_dataset(t, v, spec, received=np.ones(11, bool))
    with pytest.raises(DataValidationError, match="received"):
        build_sensor_dataset(t, v, spec, received=np.ones(12))


def test_standardisation_is_fitted_on_the_first_part_only():
    t, v = _stream(100)
    spec = SensorSpec(steps=8, every=2, fit_fraction=0.5)
    a = build_sensor_dataset(t, v, spec)
    v2 = v.copy()
    v2[60:] *= 3.0
    b = build_sensor_dataset(t, v2, spec)
    assert a.spec.center == pytest.approx(np.mean(v[:50])) and a.spec.scale == pytest.approx(np.std(v[:50]))
    assert (b.spec.center, b.spec.scale) == (a.spec.center, a.spec.scale)
    assert SensorSpec.from_dict(a.spec.to_dict()) == a.spec and a.spec.to_dict()["kind"] == "sensor"
    nxt = build_sensor_dataset(t, v, SensorSpec(steps=8, every=2, fit_fraction=0.5, target="next"))
    np.testing.assert_allclose(persistence_forecast(nxt), nxt.x[:, -1, 0])


def test_split_and_take_carry_the_sensor_target_and_purge_by_horizon():
    t, v = _stream(400)
    ds = build_sensor_dataset(t, v, SensorSpec(steps=16, every=1, horizon=3))
    parts = split(ds, (0.6, 0.2, 0.2))
    for part, nxt in zip(parts[:-1], parts[1:]):
        assert part.target_value is not None and len(part.target_value) == len(part)
        assert np.all(part.end_bar + 3 <= nxt.end_bar[0])
    sub = ds.take(np.array([2, 5]))
    np.testing.assert_array_equal(sub.target_value, ds.target_value[[2, 5]])


@pytest.mark.parametrize("bad, match", [
    (lambda t, v: (t, np.where(np.arange(len(v)) == 7, np.nan, v)), "row 8"),
    (lambda t, v: (t[::-1].copy(), v), "earlier than the previous"),
    (lambda t, v: (t[:5], v[:5]), "cannot fill one window"),
    (lambda t, v: (t, v[:-1]), "differ"),
    (lambda t, v: (t, np.full(len(v), 3.0)), "constant"),
])
def test_bad_streams_are_reported(bad, match):
    t, v = _stream(40)
    with pytest.raises(DataValidationError, match=match):
        build_sensor_dataset(*bad(t, v), SensorSpec(steps=8))


@pytest.mark.parametrize("kwargs", [dict(steps=0), dict(every=0), dict(horizon=0), dict(min_dt_s=0.0),
                                    dict(min_dt_s=float("nan")), dict(features=("value", "phase")),
                                    dict(target="tomorrow"), dict(center=1.0), dict(center=0.0, scale=-1.0),
                                    dict(fit_fraction=0.0)])
def test_bad_specs_are_config_errors(kwargs):
    with pytest.raises(ConfigError):
        SensorSpec(**kwargs)


def test_constant_dt_erases_timing_and_nothing_else():
    t, v = _stream(80)
    ds = build_sensor_dataset(t, v, SensorSpec(steps=8, every=2, features=("value", "diff", "log_dt", "slope")))
    before = ds.x.copy()
    blind = with_constant_dt(ds)
    const = float(np.median(ds.dt_s))
    np.testing.assert_allclose(blind.dt_s, const)
    np.testing.assert_allclose(blind.x[..., 2], np.log(const), rtol=1e-6)
    np.testing.assert_allclose(blind.x[..., 3], blind.x[..., 1] / const, rtol=1e-5)
    np.testing.assert_array_equal(blind.x[..., :2], ds.x[..., :2])
    np.testing.assert_array_equal(ds.x, before)                     # the original is untouched
    np.testing.assert_array_equal(blind.target_value, ds.target_value)
    with pytest.raises(ConfigError):
        with_constant_dt(ds, dt_s=0.0)


def test_dropouts_are_seeded_runs_of_the_asked_fraction():
    keep = simulate_dropouts(10_000, 0.3, max_run=5, seed=3)
    assert keep[0] and keep[-1]
    assert int((~keep).sum()) == round(0.3 * 9_998)
    edges = np.diff(np.concatenate(([1], keep.astype(int), [1])))
    runs = np.flatnonzero(edges == 1) - np.flatnonzero(edges == -1)
    assert runs.max() <= 5 and runs.min() >= 1 and len(runs) > 3_000 / 5
    np.testing.assert_array_equal(keep, simulate_dropouts(10_000, 0.3, max_run=5, seed=3))
    assert not np.array_equal(keep, simulate_dropouts(10_000, 0.3, max_run=5, seed=4))
    assert simulate_dropouts(50, 0.0).all()
    for bad in (dict(fraction=1.0), dict(fraction=-0.1), dict(max_run=0), dict(fraction=0.9, max_run=1)):
        with pytest.raises(ConfigError):
            simulate_dropouts(100, **{"fraction": 0.2, **bad})


def test_the_real_ppg_sample_repeats_stamps_and_builds_windows():
    ev = load_ppg_sample()
    assert len(ev) == 68_476
    assert np.mean(np.diff(ev.time_ns) == 0) > 0.3                 # a 64 Hz clock stamping ~100 Hz readings
    tick = clock_tick_s(ev.time_ns)
    assert 0.015 <= tick <= 0.0165
    ds = build_sensor_dataset(ev.time_ns, ev.price, SensorSpec(steps=16, every=64, min_dt_s=tick))
    assert len(ds) == (len(ev) // 64) and np.all(ds.dt_s >= np.float32(tick))
    assert np.all(np.isfinite(ds.x)) and ds.target_valid.sum() == len(ds)
    with pytest.raises(DataValidationError):
        clock_tick_s(np.zeros(5, np.int64))
