"""Real E-mini trades -> volume bars -> "last 3 days" windows -> Liquid-Titan -> regime flags.

The 500,000 E-mini S&P 500 trades shipped with mlfinpy (Sunday 1 Sep 2013 17:00 CT .. Tuesday 3 Sep
13:51 CT) are grouped into volume bars; every ``--every`` bars a window of the last ``--span`` of
bars (``3d`` by default: the file covers about that, so early windows hold only the hours seen so
far and later ones the whole history, resampled to a fixed number of steps) is cut. ``--from`` /
``--to`` restrict the study to part of the file (exchange time, America/Chicago).

A small model is trained within ``--train-budget`` seconds on the earlier windows (its memory's
thresholds are calibrated on later, validation windows), then the whole stream of windows is run
through the numpy reference (the maths every deployment target implements) as one stream, memory
updates and fed-back predictions included. A regime change is flagged where the memory's surprise
peaks (one flag per burst) above the flag threshold: the ``--flag-quantile`` of the surprise of the
windows before the held-out test part, leaving out the first ``--warmup`` windows (a fresh memory
is surprised by everything). Each flag is printed with the classic baseline's view of the same
window (the rolling z-score of its recent realised volatility), so you can judge what it saw.

    python examples/trading_ticks.py [--out out/examples/trading] [--every 2] [--span 3d]
                                     [--from 2013-09-02T08:30 --to 2013-09-03T12:00] [--train-budget 60]

Writes ``trading.png`` (price with the flags, surprise with its thresholds) and ``summary.json``
into ``--out``; ``main`` returns the same numbers as a dict.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("out/examples/trading"), help="output folder")
    p.add_argument("--every", type=int, default=2, help="a window every k volume bars")
    p.add_argument("--span", default="3d", help="window length: the last D of bars (e.g. 3d, 4h)")
    p.add_argument("--from", dest="start", default=None, help="first trade time (exchange time, ISO)")
    p.add_argument("--to", dest="end", default=None, help="last trade time (exchange time, ISO)")
    p.add_argument("--train-budget", type=float, default=60.0, help="training seconds")
    p.add_argument("--bar-volume", type=float, default=500.0, help="contracts per volume bar")
    p.add_argument("--steps", type=int, default=64, help="steps per window after resampling")
    p.add_argument("--flag-quantile", type=float, default=0.98,
                   help="flag threshold: this quantile of the surprise before the test part")
    p.add_argument("--warmup", type=int, default=32, help="windows a fresh memory needs before flags")
    p.add_argument("--limit", type=int, default=0, help="use only the first N trades (0: all)")
    p.add_argument("--seed", type=int, default=0, help="training seed")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p.parse_args(argv)


def select_trades(events, start=None, end=None, limit: int = 0):
    """The trades between ``start`` and ``end`` (naive times in the file's exchange zone), or the
    first ``limit`` trades; a range that holds no trade is a ``ConfigError``."""
    from liquidedge.data import parse_time_ns
    from liquidedge.errors import ConfigError

    if limit:
        events = events.slice(0, limit)
    lo, hi = 0, len(events)
    if start is not None:
        lo = int(np.searchsorted(events.time_ns, parse_time_ns(start, tz=events.tz, what="--from"), "left"))
    if end is not None:
        hi = int(np.searchsorted(events.time_ns, parse_time_ns(end, tz=events.tz, what="--to"), "right"))
    if hi <= lo:
        raise ConfigError(f"no trades between --from {start!r} and --to {end!r}")
    return events.slice(lo, hi)


def flag_threshold(score: np.ndarray, calibrate_until: int, warmup: int, quantile: float) -> float:
    """The ``quantile`` of the surprise of windows ``warmup .. calibrate_until - 1`` (those the
    model was fitted and calibrated on, minus the fresh memory's warm-up)."""
    from liquidedge.errors import ConfigError

    if not 0.0 < quantile < 1.0:
        raise ConfigError(f"--flag-quantile: expected a fraction in (0, 1), got {quantile}")
    part = np.asarray(score, np.float64)[warmup:calibrate_until]
    if part.size < 2:
        raise ConfigError(f"{part.size} windows between the warm-up ({warmup}) and the test part "
                          f"({calibrate_until}): too few to calibrate a flag threshold; use more data")
    return float(np.quantile(part, quantile))


def flag_regime_changes(score: np.ndarray, threshold: float, warmup: int, radius: int = 2) -> np.ndarray:
    """Windows after the warm-up where the surprise is a local maximum (within ``radius``
    windows) above ``threshold``: one flag per burst of surprise."""
    from liquidedge.model.changepoints import detect_peaks

    peaks = detect_peaks(score, threshold, radius)
    return peaks[peaks >= warmup]


def plot(path: Path, *, bars, dataset, stream, flags, thresholds, held_out_ns: int, tz: str) -> Path:
    from liquidedge.plots import pyplot, save_figure

    plt = pyplot()

    t_bar = np.asarray(bars.end_ns, dtype="datetime64[ns]")
    t_win = np.asarray(dataset.end_ns, dtype="datetime64[ns]")
    price_at = bars.close[dataset.end_bar]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(12, 6.5), sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    ax1.plot(t_bar, bars.close, lw=0.7, color="0.3", label=f"E-mini close ({len(bars):,} volume bars)")
    ax1.scatter(t_win[flags], price_at[flags], s=40, color="tab:red", zorder=3,
                label=f"regime flag ({len(flags)}: surprise peak above the calibrated threshold)")
    for ax in (ax1, ax2):
        ax.axvspan(np.datetime64(int(held_out_ns), "ns"), t_bar[-1], color="tab:green", alpha=0.07)
        for i in flags:
            ax.axvline(t_win[i], color="tab:red", lw=0.6, alpha=0.5)
    ax1.set_ylabel("price")
    ax1.set_title(f"Regime flags from the memory's surprise (shaded: held-out test part; times UTC, "
                  f"exchange zone {tz})")
    ax1.legend(loc="upper left", fontsize=8)
    ax2.plot(t_win, stream["score"], lw=0.8, color="tab:blue", label="surprise ||grad||")
    ax2.axhline(thresholds["update"], color="0.4", ls=":", lw=0.8, label="memory update threshold")
    ax2.axhline(thresholds["flag"], color="tab:red", ls="--", lw=0.8, label="flag threshold")
    ax2.set_ylabel("surprise")
    ax2.legend(loc="upper left", fontsize=8)
    return save_figure(fig, path, dates=True)


def main(argv=None) -> dict[str, Any]:
    from rich.console import Console
    from rich.table import Table

    from liquidedge import reference
    from liquidedge.data import DataSpec, build_dataset, load_default_ticks, split
    from liquidedge.data.pipeline import build_bars_for
    from liquidedge.data.timeutil import format_ns
    from liquidedge.model.changepoints import rolling_zscore, window_realised_logvol
    from liquidedge.model.train import TrainConfig, train_model

    args = parse_args(argv)
    console = Console()
    if console.width < 120:
        console = Console(width=120)
    t_start = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)

    events = select_trades(load_default_ticks(), args.start, args.end, args.limit)
    spec = DataSpec(bar_threshold=args.bar_volume, span=args.span, steps=args.steps, every=args.every)
    bars = build_bars_for(events, spec)
    dataset = build_dataset(events, spec)
    console.print(f"{len(events):,} trades {format_ns(events.time_ns[0], events.tz)} .. "
                  f"{format_ns(events.time_ns[-1], events.tz)} -> {len(bars):,} volume bars of "
                  f"{args.bar_volume:g} contracts -> {len(dataset):,} windows (the last {args.span}, every "
                  f"{args.every} bars, {args.steps} steps)")

    config = TrainConfig(task="market", time_budget_s=args.train_budget, seed=args.seed,
                         progress=not args.no_progress)
    model, report = train_model(dataset, config)
    console.print(f"trained in {report.seconds:.0f} s ({report.epochs_run} epochs, stopped: {report.stopped})")
    test = report.metrics.get("test", {})
    if test:
        console.print("held-out test: " + ", ".join(f"{k} {v:.4f}" for k, v in test.items()))

    with console.status(f"running {len(dataset):,} windows through the numpy reference"):
        stream = reference.run_stream(model, dataset.x, dataset.dt_s, dataset.mask, dtype=np.float32)
    test_part = split(dataset, config.split)[-1]
    first_test = int(np.searchsorted(dataset.end_ns, test_part.end_ns[0])) if len(test_part) else len(dataset)
    held_out_ns = int(dataset.end_ns[min(first_test, len(dataset) - 1)])
    thresholds = {"update": float(model.memory.threshold),
                  "flag": flag_threshold(stream["score"], first_test, args.warmup, args.flag_quantile)}
    flags = flag_regime_changes(stream["score"], thresholds["flag"], args.warmup)
    vol_z = rolling_zscore(window_realised_logvol(dataset.x, dataset.mask, last=8), 20)

    table = Table(title=f"Regime flags: surprise peaks above {thresholds['flag']:.4g} (the "
                        f"{args.flag_quantile:.0%} quantile of the surprise before the test part)")
    for col in ("time (exchange)", "price", "surprise", "held out", "vol z-score (baseline)"):
        table.add_column(col, justify="left" if col.startswith("time") else "right")
    rows = []
    for i in flags:
        row = {"time": format_ns(int(dataset.end_ns[i]), events.tz), "end_ns": int(dataset.end_ns[i]),
               "price": float(bars.close[dataset.end_bar[i]]), "score": float(stream["score"][i]),
               "held_out": bool(dataset.end_ns[i] >= held_out_ns), "vol_z": float(vol_z[i])}
        rows.append(row)
        table.add_row(row["time"], f"{row['price']:.2f}", f"{row['score']:.4g}",
                      "yes" if row["held_out"] else "no", f"{row['vol_z']:.2f}")
    console.print(table)
    agree = sum(1 for r in rows if np.isfinite(r["vol_z"]) and r["vol_z"] > 2.0)
    console.print(f"{len(rows)} flags; {agree} of them where the baseline's vol z-score also exceeds 2 "
                  f"(it does on {np.mean(np.nan_to_num(vol_z) > 2.0):.0%} of all windows)")

    png = plot(args.out / "trading.png", bars=bars, dataset=dataset, stream=stream, flags=flags,
               thresholds=thresholds, held_out_ns=held_out_ns, tz=events.tz)
    result: dict[str, Any] = {
        "out": str(args.out), "plot": str(png), "summary": str(args.out / "summary.json"),
        "trades": len(events), "first_ns": int(events.time_ns[0]), "last_ns": int(events.time_ns[-1]),
        "bars": len(bars), "windows": len(dataset), "data_spec": spec.to_dict(),
        "thresholds": thresholds, "update_rate": float(np.mean(stream["updated"])),
        "flags": rows, "flags_with_vol_z_above_2": agree, "held_out_from_ns": held_out_ns,
        "training": {"seconds": report.seconds, "epochs": report.epochs_run, "stopped": report.stopped,
                     "metrics": report.metrics},
    }
    result["seconds"] = time.perf_counter() - t_start
    Path(result["summary"]).write_text(json.dumps(result, indent=2, default=float))
    console.print(f"plot: {png}\ntotal {result['seconds']:.0f} s")
    return result


if __name__ == "__main__":
    from liquidedge.errors import LiquidEdgeError

    try:
        main()
    except LiquidEdgeError as exc:
        sys.exit(f"error: {exc}")
