"""Features, normalisation, targets (only from the future), baseline (only from the past), pipeline."""
from __future__ import annotations

import json

import numpy as np
import pytest

from liquidedge.data.bars import Bars
from liquidedge.data.features import FEATURE_NAMES, Normaliser, compute_features
from liquidedge.data.pipeline import DataSpec, build_dataset, split
from liquidedge.data.synthetic import generate_market
from liquidedge.data.targets import bar_log_returns, ewma_logvol_forecast, future_targets
from liquidedge.data.windows import make_windows
from liquidedge.errors import ConfigError, DataValidationError, InputShapeError

S = 10**9


def _bars(close, volume=None, dt=None, partial=False):
    close = np.asarray(close, float)
    n = len(close)
    opn = np.concatenate(([close[0]], close[:-1]))
    volume = np.ones(n) * 10 if volume is None else np.asarray(volume, float)
    dt = np.ones(n) * 2.0 if dt is None else np.asarray(dt, float)
    end = (np.cumsum(dt) * S).astype(np.int64)
    return Bars(start_ns=end, end_ns=end, dt_s=dt, open=opn, high=np.maximum(opn, close) * 1.01,
                low=np.minimum(opn, close) * 0.99, close=close, volume=volume, count=np.arange(n) + 1,
                vwap=(opn + close) / 2, first_event=np.arange(n), last_event=np.arange(n),
                partial_last=partial)


def test_features_by_hand_and_zero_on_padding():
    bars = _bars([100, 101, 99, 99.5], volume=[0, 3, 5, 7], dt=[1, 2, 4, 8])
    w = make_windows(bars, steps=6, last=4, every=4)
    x = compute_features(w)
    assert x.dtype == np.float32 and x.shape == (1, 6, len(FEATURE_NAMES))
    assert np.all(x[0, :2] == 0)                                  # padding
    f = {name: x[0, 2:, k] for k, name in enumerate(FEATURE_NAMES)}
    np.testing.assert_allclose(f["log_return"], np.log([100 / 100, 101 / 100, 99 / 101, 99.5 / 99]), rtol=1e-6)
    np.testing.assert_allclose(f["log_dt"], np.log([1, 2, 4, 8]), rtol=1e-6)
    np.testing.assert_allclose(f["log_volume"], np.log1p([0, 3, 5, 7]), rtol=1e-6)
    np.testing.assert_allclose(f["log_count"], np.log1p([1, 2, 3, 4]), rtol=1e-6)
    np.testing.assert_allclose(f["log_range"], np.log(bars.high / bars.low), rtol=1e-5)
    np.testing.assert_allclose(f["vwap_dev"], np.log(bars.close / bars.vwap), rtol=1e-5, atol=1e-7)
    sub = compute_features(w, ("log_dt", "log_return"))
    np.testing.assert_array_equal(sub[..., 0], x[..., FEATURE_NAMES.index("log_dt")])
    with pytest.raises(ConfigError):
        compute_features(w, ("log_return", "astrology"))


def test_non_positive_prices_are_reported_not_logged():
    bars = _bars([1.0, 2.0, 3.0])
    bars.close[1] = -1.0
    with pytest.raises(DataValidationError, match="non-positive close"):
        compute_features(make_windows(bars, steps=4, last=3, every=3))


def test_normaliser_fits_valid_steps_only_and_survives_constants():
    rng = np.random.default_rng(0)
    x = rng.normal(5, 2, (50, 8, 3)).astype(np.float32)
    x[..., 2] = 7.0                                              # a constant feature
    mask = rng.random((50, 8)) > 0.3
    x[~mask] = 1e6                                               # garbage on padding must be ignored
    dt = rng.uniform(1, 3, (50, 8))
    norm = Normaliser(("a", "b", "c")).fit(x, mask, dt)
    np.testing.assert_allclose(norm.mean[:2], x[mask][:, :2].mean(0), rtol=1e-6)
    assert norm.std[2] == 1.0 and norm.dt_unit == pytest.approx(np.median(dt[mask]))
    y = norm.apply(x, mask)
    assert y.dtype == np.float32 and np.all(np.isfinite(y)) and np.all(y[~mask] == 0)
    assert np.allclose(y[mask][:, :2].mean(0), 0, atol=1e-5) and np.allclose(y[mask][:, :2].std(0), 1, atol=1e-4)
    assert np.all(y[mask][:, 2] == 0)
    back = Normaliser.from_dict(json.loads(json.dumps(norm.to_dict())))
    np.testing.assert_array_equal(back.apply(x, mask), y)
    np.testing.assert_allclose(back.scale_dt(dt, mask)[mask], dt[mask] / norm.dt_unit, rtol=1e-6)
    with pytest.raises(ConfigError):
        Normaliser(("a",)).apply(x[..., :1], mask)
    with pytest.raises(ConfigError):
        Normaliser.from_dict({"feature_names": ["a"], "mean": [0.0, 1.0], "std": [1.0], "dt_unit": 1.0})
    with pytest.raises(ConfigError):
        Normaliser.from_dict({"mean": [0.0]})
    with pytest.raises(InputShapeError):
        norm.apply(x[..., :2], mask)
    with pytest.raises(DataValidationError):
        Normaliser(("a", "b", "c")).fit(x, np.zeros_like(mask))


def test_targets_use_only_the_next_h_bars():
    close = [100, 101, 100, 102, 101, 101, 103]
    bars = _bars(close)
    r = bar_log_returns(bars)
    assert r[0] == 0 and r[1] == pytest.approx(np.log(1.01))
    logvol, direction, valid = future_targets(bars, np.arange(7), horizon=2)
    assert valid.tolist() == [True] * 5 + [False] * 2
    assert logvol[1] == pytest.approx(np.log(np.sqrt(r[2] ** 2 + r[3] ** 2)))
    assert direction.tolist()[:5] == [0.0, 1.0, 1.0, 0.0, 1.0]     # j=0: flat (100 -> 100) counts as 0
    assert np.all(np.isnan(logvol[5:])) and np.all(np.isnan(direction[5:]))
    # a flat future hits the floor instead of log(0)
    flat = future_targets(_bars([1, 1, 1, 1]), np.array([0]), horizon=2, vol_floor=1e-6)[0]
    assert flat[0] == pytest.approx(np.log(1e-6))
    # a partial last bar is not a complete future bar
    assert not future_targets(_bars(close, partial=True), np.array([4]), horizon=2)[2][0]
    # changing bars up to j does not change returns measured after j+1 ... but changing j+1 does
    b2 = _bars(close)
    b2.close[5] = 90
    assert future_targets(b2, np.array([1]), 2)[0][0] == logvol[1]
    assert future_targets(b2, np.array([3]), 2)[0][0] != logvol[3]
    with pytest.raises(ConfigError):
        future_targets(bars, np.arange(3), horizon=0)


def test_ewma_baseline_uses_only_the_past():
    rng = np.random.default_rng(3)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, 200)))
    bars = _bars(close)
    base = ewma_logvol_forecast(bars, np.arange(200), horizon=16, halflife=10)
    cut = _bars(close[:120])
    np.testing.assert_array_equal(ewma_logvol_forecast(cut, np.arange(120), horizon=16, halflife=10), base[:120])
    lam = 0.5 ** (1 / 10)
    r2 = bar_log_returns(bars) ** 2
    s2 = r2[0]
    for k in range(1, 50):
        s2 = lam * s2 + (1 - lam) * r2[k]
    assert base[49] == pytest.approx(np.log(np.sqrt(16 * s2)))


def test_dataspec_round_trip_and_errors():
    spec = DataSpec()
    assert DataSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    with pytest.raises(ConfigError):
        DataSpec.from_dict({"bar_kind": "volume", "colour": "red"})
    for bad in [dict(bar_kind="renko"), dict(span="eventually"), dict(horizon=0), dict(steps=-1),
                dict(bar_threshold=-5)]:
        with pytest.raises(ConfigError):
            DataSpec(**bad)


def test_build_dataset_and_time_ordered_purged_split():
    market = generate_market(60_000, seed=4)
    spec = DataSpec(bar_threshold=150, span="30min", steps=16, every=3, horizon=8, min_bars=4)
    ds = build_dataset(market.events, spec)
    n = len(ds)
    assert n > 100
    assert ds.x.shape == (n, 16, len(spec.features)) and ds.x.dtype == np.float32
    assert ds.dt_s.shape == ds.mask.shape == (n, 16)
    assert np.all(np.isfinite(ds.x)) and np.all(ds.x[~ds.mask] == 0) and np.all(ds.dt_s[~ds.mask] == 0)
    assert np.all(np.diff(ds.end_ns) >= 0)
    assert np.all(np.isfinite(ds.target_logvol[ds.target_valid]))
    assert np.all(np.isnan(ds.target_logvol[~ds.target_valid]))
    assert ds.target_valid[:-5].all() and not ds.target_valid[-1]
    assert set(np.unique(ds.target_dir[ds.target_valid])) <= {0.0, 1.0}
    assert np.all(np.isfinite(ds.baseline_logvol))
    train, val, test = split(ds)
    assert len(val) and len(test) and len(train) + len(val) + len(test) <= n
    assert abs(len(train) - 0.6 * n) <= 0.6 * n * 0.1 + spec.horizon
    assert train.end_ns.max() < val.end_ns.min() and val.end_ns.max() < test.end_ns.min()
    # purged: no training target reaches the bars validation predicts
    assert np.all(train.end_bar + spec.horizon <= val.end_bar.min())
    assert np.all(val.end_bar + spec.horizon <= test.end_bar.min())
    unpurged = split(ds, purge=False)
    assert sum(map(len, unpurged)) == n
    with pytest.raises(ConfigError):
        split(ds, (0.5, 0.6))
