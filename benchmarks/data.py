"""Event-data path throughput on the real E-mini file (500,000 trades). Not a test.

    python benchmarks/data.py [--repeat 3]

Prints a table: events/s for loading and for each bar kind, windows/s for the batch and the
streaming windower (bars fed one at a time, and events fed in chunks through the bar builder),
and the streaming/batch ratio. Target: the full file into volume bars in well under 1 s.
"""
from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from liquidedge.data import (DataSpec, StreamingWindower, build_bars, build_dataset, compute_features,
                             load_default_ticks, make_windows)


def best(fn, repeat):
    """(best wall time in seconds, last result) over ``repeat`` runs."""
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--chunk", type=int, default=1_000, help="events per streaming chunk")
    args = ap.parse_args()
    spec = DataSpec()
    rows = []

    t, ev = best(load_default_ticks, args.repeat)
    n = len(ev)
    rows.append(("load CSV (validate, tz)", t, f"{n / t:,.0f} events/s", f"{n:,} events"))
    for kind, thr in (("time", "1min"), ("tick", 100), ("volume", spec.bar_threshold),
                      ("dollar", spec.bar_threshold * 1_640.0)):
        t, bars = best(lambda: build_bars(ev, kind, thr), args.repeat)
        rows.append((f"{kind} bars ({thr})", t, f"{n / t:,.0f} events/s", f"{len(bars):,} bars"))

    bars = build_bars(ev, spec.bar_kind, spec.bar_threshold, partial="drop")
    wkw = dict(steps=spec.steps, span=spec.span, every=spec.every, min_bars=spec.min_bars)
    t_batch, w = best(lambda: make_windows(bars, **wkw), args.repeat)
    rows.append((f"batch windows (T={spec.steps}, {spec.span})", t_batch, f"{len(w) / t_batch:,.0f} windows/s",
                 f"{len(w):,} windows"))

    def stream_bars():
        sw = StreamingWindower(**wkw)
        return sum(len(sw.push_bars(bars.slice(i, i + 1))) for i in range(len(bars)))

    t_sb, n_sb = best(stream_bars, args.repeat)
    rows.append(("streaming windows, 1 bar/push", t_sb, f"{n_sb / t_sb:,.0f} windows/s", f"{n_sb:,} windows"))

    def stream_events():
        sw = StreamingWindower(**wkw, bar_kind=spec.bar_kind, bar_threshold=spec.bar_threshold)
        c = args.chunk
        return sum(len(sw.push_events(ev.time_ns[i:i + c], ev.price[i:i + c], ev.size[i:i + c]))
                   for i in range(0, n, c))

    t_se, n_se = best(stream_events, args.repeat)
    rows.append((f"streaming events->bars->windows, {args.chunk}/push", t_se,
                 f"{n_se / t_se:,.0f} windows/s", f"{n / t_se:,.0f} events/s"))
    t_f, _ = best(lambda: compute_features(w, spec.features), args.repeat)
    rows.append(("features", t_f, f"{len(w) / t_f:,.0f} windows/s", f"{len(spec.features)} features"))
    t_d, ds = best(lambda: build_dataset(ev, spec), args.repeat)
    rows.append(("build_dataset (default spec)", t_d, f"{n / t_d:,.0f} events/s", f"x {tuple(ds.x.shape)}"))

    assert n_sb == n_se == len(w), "streaming and batch emitted different numbers of windows"
    print(f"liquidedge.data on the E-mini sample ({n:,} trades); best of {args.repeat}; "
          f"{platform.processor() or platform.machine()}, numpy {np.__version__}\n")
    print(f"| {'step':<46} | {'seconds':>8} | {'throughput':>20} | {'size':>20} |")
    print(f"|{'-' * 48}|{'-' * 9}:|{'-' * 21}:|{'-' * 21}:|")
    for name, t, rate, size in rows:
        print(f"| {name:<46} | {t:8.4f} | {rate:>20} | {size:>20} |")
    print(f"\nstreaming/batch windows/s: {t_batch / t_sb:.2f} (1 bar per push), "
          f"{t_batch / t_se:.2f} (events in chunks of {args.chunk}, including bar building)")
    vol = next(r for r in rows if r[0].startswith("volume"))
    print(f"volume bars for the full file: {vol[1]:.3f} s (target < 1 s): {'OK' if vol[1] < 1 else 'MISSED'}")


if __name__ == "__main__":
    main()
