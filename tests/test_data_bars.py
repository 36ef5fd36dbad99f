"""Bars: conservation, no event lost or doubled, dt > 0, streaming == batch, speed on the real file."""
from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from liquidedge.data.bars import Bars, StreamingBarBuilder, build_bars, read_bars, write_bars
from liquidedge.data.ticks import Events
from liquidedge.errors import ConfigError, DataValidationError

MS = 1_000_000


@st.composite
def event_streams(draw, max_events=300):
    """Sorted events with many duplicate stamps, integer sizes (zeros allowed), positive prices."""
    n = draw(st.integers(1, max_events))
    gaps = draw(st.lists(st.sampled_from([0, 0, 0, 1, 2, 5, 50, 3_000, 200_000]), min_size=n, max_size=n))
    sizes = draw(st.lists(st.integers(0, 40), min_size=n, max_size=n))
    moves = draw(st.lists(st.integers(-3, 3), min_size=n, max_size=n))
    t = 1_700_000_000_000 * MS + np.cumsum(np.asarray(gaps, np.int64)) * MS
    price = 100.0 + 0.25 * np.cumsum(moves)
    price = np.maximum(price, 0.25)
    return Events(t, price, np.asarray(sizes, float))


def _kind_threshold(draw):
    kind = draw(st.sampled_from(["time", "tick", "volume", "dollar"]))
    thr = {"time": draw(st.sampled_from(["1s", "5s", "1min", 0.5])),
           "tick": draw(st.integers(1, 20)),
           "volume": draw(st.sampled_from([1, 7, 25.0, 100, 1000])),
           "dollar": draw(st.sampled_from([50.0, 999.5, 5000.0]))}[kind]
    return kind, thr


def _split_points(draw, n):
    cuts = draw(st.lists(st.integers(0, n), max_size=8))
    return [0] + sorted(cuts) + [n]


@settings(max_examples=150, deadline=None)
@given(ev=event_streams(), data=st.data())
def test_every_event_in_exactly_one_bar_and_volume_conserved(ev, data):
    kind, thr = _kind_threshold(data.draw)
    bars = build_bars(ev, kind, thr)                           # partial="keep"
    assert bars.first_event[0] == 0 and bars.last_event[-1] == len(ev) - 1
    assert np.array_equal(bars.first_event[1:], bars.last_event[:-1] + 1)   # contiguous, no overlap
    assert np.all(bars.count == bars.last_event - bars.first_event + 1)
    assert bars.count.sum() == len(ev)
    assert bars.volume.sum() == ev.size.sum()                  # integer sizes: exact
    for k in range(len(bars)):
        s, e = bars.first_event[k], bars.last_event[k]
        assert bars.volume[k] == ev.size[s:e + 1].sum()
        assert bars.open[k] == ev.price[s] and bars.close[k] == ev.price[e]
        assert bars.high[k] == ev.price[s:e + 1].max() and bars.low[k] == ev.price[s:e + 1].min()
        assert bars.start_ns[k] == ev.time_ns[s] and bars.end_ns[k] == ev.time_ns[e]
        if bars.volume[k] > 0:
            vw = (ev.price[s:e + 1] * ev.size[s:e + 1]).sum() / bars.volume[k]
            assert bars.vwap[k] == pytest.approx(vw, rel=1e-12)
        else:
            assert bars.vwap[k] == bars.close[k]


@settings(max_examples=150, deadline=None)
@given(ev=event_streams(), thr=st.sampled_from([1, 3, 10, 50, 200]), dollar=st.booleans())
def test_volume_and_dollar_bars_close_on_the_crossing_trade(ev, thr, dollar):
    kind = "dollar" if dollar else "volume"
    thr = thr * 100.0 if dollar else thr
    bars = build_bars(ev, kind, thr)
    amount = ev.price * ev.size if dollar else ev.size
    for k in range(len(bars)):
        s, e = bars.first_event[k], bars.last_event[k]
        total = amount[s:e + 1].sum()
        closed = not (k == len(bars) - 1 and bars.partial_last)
        if closed:
            assert total >= thr - 1e-9 * thr                    # reached with the last trade included
            assert amount[s:e].sum() < thr + 1e-9 * thr         # but not before it (no early close)
        else:
            assert total < thr + 1e-9 * thr


@settings(max_examples=100, deadline=None)
@given(ev=event_streams(), interval=st.sampled_from([1, 3, 60]))
def test_time_bars_skip_empty_intervals_but_dt_spans_them(ev, interval):
    bars = build_bars(ev, "time", interval)
    key = ev.time_ns // (interval * 10**9)
    assert len(bars) == len(np.unique(key))                    # one bar per non-empty interval
    for k in range(len(bars)):
        s, e = bars.first_event[k], bars.last_event[k]
        assert key[s] == key[e]
    raw = np.diff(bars.end_ns) / 1e9
    assert np.allclose(bars.dt_s[1:], np.maximum(raw, bars.min_dt_s))


@settings(max_examples=100, deadline=None)
@given(ev=event_streams(), data=st.data())
def test_dt_positive_and_floored_at_clock_resolution(ev, data):
    kind, thr = _kind_threshold(data.draw)
    min_dt = data.draw(st.sampled_from([1e-3, 0.5, 2.0]))
    bars = build_bars(ev, kind, thr, min_dt_s=min_dt)
    assert np.all(bars.dt_s > 0)
    prev = np.concatenate(([bars.start_ns[0]], bars.end_ns[:-1]))
    raw = (bars.end_ns - prev) / 1e9
    assert np.array_equal(bars.dt_s, np.maximum(raw, min_dt))
    assert bars.n_floored == int(np.count_nonzero(raw < min_dt))


@settings(max_examples=150, deadline=None)
@given(ev=event_streams(), data=st.data())
def test_streaming_equals_batch_for_any_chunking(ev, data):
    kind, thr = _kind_threshold(data.draw)
    cuts = _split_points(data.draw, len(ev))
    builder = StreamingBarBuilder(kind, thr)
    parts = [builder.update(ev.time_ns[a:b], ev.price[a:b], ev.size[a:b]) for a, b in zip(cuts, cuts[1:])]
    streamed = Bars.concat(parts)
    batch = build_bars(ev, kind, thr, partial="drop")
    for name, arr in batch.columns().items():
        assert np.array_equal(arr, streamed.columns()[name]), name
    assert streamed.n_floored == batch.n_floored
    full = Bars.concat([streamed, builder.flush()])
    kept = build_bars(ev, kind, thr, partial="keep")
    for name, arr in kept.columns().items():
        assert np.array_equal(arr, full.columns()[name]), name
    assert full.partial_last == kept.partial_last


def test_single_events_one_at_a_time():
    ev = Events(np.arange(20) * 10**9 // 3, 100 + np.arange(20) % 3, [1, 5, 2, 9] * 5)
    builder = StreamingBarBuilder("volume", 10)
    bars = Bars.concat([builder.update(t, p, s) for t, p, s in zip(ev.time_ns, ev.price, ev.size)])
    batch = build_bars(ev, "volume", 10, partial="drop")
    assert np.array_equal(bars.volume, batch.volume) and np.array_equal(bars.end_ns, batch.end_ns)
    assert builder.open_bar_events == len(ev) - 1 - batch.last_event[-1]


def test_bad_settings_and_bad_stream():
    ev = Events([1, 2, 3], [1.0, 1.0, 1.0], [1, 1, 1])
    for kind, thr in [("volume", 0), ("volume", -1), ("dollar", float("nan")), ("tick", 2.5),
                      ("time", "soon"), ("renko", 5), ("volume", "10")]:
        with pytest.raises(ConfigError):
            build_bars(ev, kind, thr)
    with pytest.raises(ConfigError):
        build_bars(ev, "volume", 1, min_dt_s=0)
    with pytest.raises(ConfigError):
        build_bars(ev, "volume", 1, partial="maybe")
    builder = StreamingBarBuilder("tick", 2)
    builder.update([10, 20], [1.0, 1.0], [1, 1])
    with pytest.raises(DataValidationError) as info:
        builder.update([15], [1.0], [1])                        # goes back in time
    assert info.value.row == 3
    with pytest.raises(DataValidationError) as info:
        build_bars(Events([1, 2], [1.0, np.nan], [1, 1], source="x.csv"), "tick", 1)
    assert info.value.field == "price" and "x.csv" in str(info.value)


def test_parquet_round_trip(tmp_path):
    ev = Events(np.arange(50) * 10**8, 100 + np.sin(np.arange(50)), np.arange(50) % 4)
    bars = build_bars(ev, "volume", 7)
    write_bars(bars, tmp_path / "b.parquet")
    back = read_bars(tmp_path / "b.parquet")
    for name, arr in bars.columns().items():
        assert np.array_equal(arr, back.columns()[name])
    assert back.meta() == bars.meta()


def test_emini_volume_bars_fast_and_conserving(emini_events):
    t0 = time.perf_counter()
    bars = build_bars(emini_events, "volume", 500)
    elapsed = time.perf_counter() - t0
    assert elapsed < 1.0, f"500k events -> volume bars took {elapsed:.2f}s"
    assert bars.volume.sum() == emini_events.size.sum() == 1_844_058
    assert bars.count.sum() == 500_000
    assert 3_000 <= len(bars) <= 6_000
    assert np.all(bars.dt_s > 0)
    # the Labor Day halt (6.5 h) shows up as one bar's elapsed time
    assert bars.dt_s.max() == pytest.approx(6.5 * 3600, rel=0.01)
    tb = build_bars(emini_events, "time", "1min")
    assert tb.dt_s.max() > 6.4 * 3600                          # halt skipped, not filled with bars
    assert len(tb) < (emini_events.time_ns[-1] - emini_events.time_ns[0]) / 60e9
