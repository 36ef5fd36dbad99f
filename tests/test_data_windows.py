"""Windows: resampling conserves what it should, never looks ahead, and streaming == batch."""
from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from liquidedge.data.bars import Bars, build_bars
from liquidedge.data.ticks import Events
from liquidedge.data.timeutil import parse_duration_ns, parse_time_ns
from liquidedge.data.windows import StreamingWindower, WindowBatch, make_windows
from liquidedge.errors import ConfigError

S = 10**9


@st.composite
def bar_series(draw, max_bars=150):
    """Random but well-formed bars: end stamps non-decreasing (duplicates allowed)."""
    n = draw(st.integers(1, max_bars))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    gaps = rng.choice([0, 1, 2, 30, 600, 20_000], size=n, p=[.1, .3, .3, .2, .08, .02]) * S
    end = 1_700_000_000 * S + np.cumsum(gaps)
    start = end - rng.integers(0, 2, n) * S
    close = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
    opn = np.concatenate(([100.0], close[:-1]))
    high = np.maximum(opn, close) * (1 + rng.uniform(0, 1e-3, n))
    low = np.minimum(opn, close) * (1 - rng.uniform(0, 1e-3, n))
    vol = rng.integers(0, 50, n).astype(float)
    first = np.concatenate(([0], np.cumsum(rng.integers(1, 5, n))[:-1]))
    count = rng.integers(1, 5, n)
    dt = np.maximum(np.diff(end, prepend=start[0]) / S, 1e-3)
    return Bars(start_ns=start, end_ns=end, dt_s=dt, open=opn, high=high, low=low, close=close,
                volume=vol, count=count, vwap=(low + high) / 2, first_event=first,
                last_event=first + count - 1)


def _window_kwargs(draw):
    how = draw(st.sampled_from(["span", "last"]))
    kw = {"steps": draw(st.sampled_from([1, 4, 8, 16])),
          "every": draw(st.sampled_from([1, 2, 5, "1min", "1h"])),
          "min_bars": draw(st.sampled_from([1, 3]))}
    if how == "span":
        kw["span"] = draw(st.sampled_from(["30s", "10min", "2h", "3d"]))
    else:
        kw["last"] = draw(st.sampled_from([1, 5, 20, 60]))
    return kw


def _assert_same(a: WindowBatch, b: WindowBatch):
    for f in fields(WindowBatch):
        x, y = getattr(a, f.name), getattr(b, f.name)
        assert x.shape == y.shape and np.array_equal(x, y), f.name


@settings(max_examples=150, deadline=None)
@given(bars=bar_series(), data=st.data())
def test_resampling_conserves_volume_dt_and_path_shape(bars, data):
    kw = _window_kwargs(data.draw)
    w = make_windows(bars, **kw)
    T = kw["steps"]
    for n in range(len(w)):
        a, j = w.start_bar[n], w.end_bar[n]
        m = w.mask[n]
        L = j - a + 1
        assert w.n_bars[n] == L >= kw["min_bars"]
        assert m.sum() == min(L, T) and np.all(m[T - m.sum():])    # left padding only
        assert np.isclose(w.volume[n].sum(), bars.volume[a:j + 1].sum(), rtol=1e-12)
        assert np.isclose(w.dt_s[n].sum(), bars.dt_s[a:j + 1].sum(), rtol=1e-12)
        assert w.count[n].sum() == bars.count[a:j + 1].sum()
        assert w.high[n][m].max() == bars.high[a:j + 1].max()
        assert w.low[n][m].min() == bars.low[a:j + 1].min()
        assert w.open[n][m][0] == bars.open[a] and w.close[n][-1] == bars.close[j]
        pv = (w.vwap[n] * w.volume[n]).sum()
        assert np.isclose(pv, (bars.vwap[a:j + 1] * bars.volume[a:j + 1]).sum(), rtol=1e-9)
        assert np.all(w.dt_s[n][~m] == 0) and np.all(w.volume[n][~m] == 0)
        assert np.all(w.dt_s[n][m] > 0)
        assert w.end_ns[n] == bars.end_ns[j]
        if "span" in kw:                                       # bars ending in (end - span, end]
            lo = bars.end_ns[j] - parse_duration_ns(kw["span"])
            assert bars.end_ns[a] > lo and (a == 0 or bars.end_ns[a - 1] <= lo)


@settings(max_examples=100, deadline=None)
@given(bars=bar_series(), data=st.data())
def test_windows_never_look_past_their_last_bar(bars, data):
    kw = _window_kwargs(data.draw)
    k = data.draw(st.integers(0, len(bars) - 1))
    before = make_windows(bars, **kw)
    cols = bars.columns()
    rng = np.random.default_rng(k)
    later = slice(k + 1, None)
    for name in ("open", "high", "low", "close", "vwap"):
        cols[name][later] = rng.uniform(1, 1000, len(bars) - k - 1)
    cols["volume"][later] = rng.uniform(0, 1e6, len(bars) - k - 1)
    cols["dt_s"][later] = rng.uniform(1e-3, 1e4, len(bars) - k - 1)
    cols["end_ns"][later] = cols["end_ns"][later] + rng.integers(0, 10**6, len(bars) - k - 1).cumsum() * S
    after = make_windows(Bars(**cols, **bars.meta()), **kw)
    keep_b = before.end_bar <= k
    keep_a = after.end_bar <= k
    _assert_same(before.take(keep_b), after.take(keep_a))


@settings(max_examples=150, deadline=None)
@given(bars=bar_series(), data=st.data())
def test_streaming_windower_equals_batch_on_bars(bars, data):
    kw = _window_kwargs(data.draw)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(bars)), max_size=10)))
    cuts = [0] + cuts + [len(bars)]
    sw = StreamingWindower(**kw)
    parts = [sw.push_bars(bars.slice(a, b)) for a, b in zip(cuts, cuts[1:])]
    _assert_same(WindowBatch.concat(parts, kw["steps"]), make_windows(bars, **kw))
    live = sw._ring.tail - sw._ring.head                       # memory stays bounded by the window
    need = (make_windows(bars, **{**kw, "every": 1, "min_bars": 1}).n_bars[-1])
    assert live <= need


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), chunk=st.sampled_from([1, 7, 100, 5_000]),
       kind=st.sampled_from([("volume", 40), ("tick", 9), ("time", "30s"), ("dollar", 4_000.0)]))
def test_streaming_windower_equals_batch_on_events(seed, chunk, kind):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(50, 1_500))
    t = 1_700_000_000 * S + np.cumsum(rng.choice([0, 0, 10**6, 10**8, 5 * S], n))
    ev = Events(t, 100 + np.cumsum(rng.choice([-0.25, 0, 0.25], n)), rng.integers(1, 10, n))
    spec = dict(steps=8, span="2min", every=3)
    sw = StreamingWindower(**spec, bar_kind=kind[0], bar_threshold=kind[1])
    parts = [sw.push_events(ev.time_ns[i:i + chunk], ev.price[i:i + chunk], ev.size[i:i + chunk])
             for i in range(0, n, chunk)]
    batch = make_windows(build_bars(ev, *kind, partial="drop"), **spec)
    _assert_same(WindowBatch.concat(parts, 8), batch)
    tail = sw.flush()                                          # closing the last bar may add one
    full = make_windows(build_bars(ev, *kind, partial="keep"), **spec)
    _assert_same(WindowBatch.concat(parts + [tail], 8), full)


def test_padding_and_merging_by_hand():
    bars = Bars(start_ns=[0, 1, 2, 3, 4], end_ns=np.array([1, 2, 3, 4, 5]) * S, dt_s=[1.0] * 5,
                open=[1, 2, 3, 4, 5], high=[2, 3, 4, 5, 6], low=[0.5, 1, 2, 3, 4], close=[2, 3, 4, 5, 6],
                volume=[1, 1, 2, 0, 4], count=[1, 1, 1, 1, 1], vwap=[1.5, 2.5, 3.5, 4.5, 5.5],
                first_event=[0, 1, 2, 3, 4], last_event=[0, 1, 2, 3, 4])
    w = make_windows(bars, steps=4, last=2, every=5)           # one window, bars 3..4, padded
    assert w.mask.tolist() == [[False, False, True, True]]
    assert w.close.tolist() == [[0, 0, 5, 6]] and w.dt_s.tolist() == [[0, 0, 1, 1]]
    w = make_windows(bars, steps=2, last=5, every=5)           # 5 bars -> groups {0,1}, {2,3,4}
    assert w.open.tolist() == [[1, 3]] and w.close.tolist() == [[3, 6]]
    assert w.high.tolist() == [[3, 6]] and w.low.tolist() == [[0.5, 2]]
    assert w.volume.tolist() == [[2, 6]] and w.count.tolist() == [[2, 3]] and w.dt_s.tolist() == [[2, 3]]
    assert w.vwap[0, 0] == pytest.approx((1.5 + 2.5) / 2)
    assert w.vwap[0, 1] == pytest.approx((3.5 * 2 + 5.5 * 4) / 6)
    w = make_windows(bars, steps=3, start=2 * S, end=4 * S)   # explicit range: bars ending in [2s, 4s]
    assert len(w) == 1 and w.start_bar[0] == 1 and w.end_bar[0] == 3
    w = make_windows(bars, steps=3, start="1970-01-01T00:00:02Z", end="1970-01-01T00:00:04")
    assert (w.start_bar[0], w.end_bar[0]) == (1, 3)
    w = make_windows(bars, steps=3, span="2s", every="2s")      # a window at each new 2 s interval
    assert w.end_bar.tolist() == [0, 1, 3] and w.n_bars.tolist() == [1, 2, 2]


def test_duration_and_time_parsing():
    assert parse_duration_ns("3d") == 3 * 86_400 * S
    assert parse_duration_ns("90min") == parse_duration_ns("1h30min") == parse_duration_ns(5400)
    assert parse_duration_ns("45s") == 45 * S and parse_duration_ns("2h") == 7_200 * S
    assert parse_duration_ns("250ms") == S // 4
    for bad in ["", "3", "abc", "3 parsecs", "-2h", "0s", "1h foo", float("inf"), True, None]:
        with pytest.raises(ConfigError):
            parse_duration_ns(bad)
    assert parse_time_ns("2013-09-01T17:00:00-05:00") == parse_time_ns("2013-09-01T22:00:00Z")
    assert parse_time_ns("2013-09-01 17:00", tz="America/Chicago") == parse_time_ns("2013-09-01T22:00Z")
    with pytest.raises(ConfigError):
        parse_time_ns("yesterday")


def test_bad_window_settings():
    bars = build_bars(Events(np.arange(10) * S, np.ones(10), np.ones(10)), "tick", 1)
    for kw in [dict(steps=0), dict(span="3d", last=5), dict(span="forever"), dict(every=0),
               dict(start="2020-01-01"), dict(last=0), dict(min_bars=0), dict(steps=2.5),
               dict(start=5 * S, end=1 * S), dict(start=100 * S, end=200 * S)]:
        with pytest.raises(ConfigError):
            make_windows(bars, **{"steps": 4, **kw})
    with pytest.raises(ConfigError):
        StreamingWindower(4).push_events([1], [1.0], [1.0])
