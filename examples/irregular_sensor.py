"""A real, irregularly sampled sensor stream with dropped beats: does the LTC need the true dt?

The stream is heartpy's ``data3.csv``: ~68k PPG readings (~11 min at ~100 Hz) stamped by a 64 Hz
clock, so stamps repeat and step by 15-16 ms. We drop a seeded fraction of the readings in runs
(dropped beats, lost packets), then ask one question: predict the signal's next reading (the next
one the sensor produced, received or not) from the last ``--steps`` received readings.

Two Liquid-Titan models with identical settings and seed are trained on the same windows:
one is fed the true elapsed time of every step (dt spans each gap), the other a constant dt (and
a constant ``log_dt`` feature): it cannot tell a gap from a regular step. On the held-out part of
the stream we compare both, the dt-aware model fed a constant dt at run time, and persistence
(next = last), overall and by the length of the gap before the window's last reading.

dt is floored at the clock's tick, not at 1 ms: within a tick the real spacing is unknown, and a
1 ms floor would turn every repeated stamp into a near-zero step the LTC all but skips.

    python examples/irregular_sensor.py [--out out/examples/sensor] [--drop 0.3] [--train-budget 60]

Writes ``sensor.png`` (signal with the dropped readings, predictions vs truth, error by gap length)
and ``summary.json`` into ``--out``; ``main`` returns the same numbers as a dict.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

GAP_GROUPS = (("regular (1 tick)", 0.0, 1.5), ("2 ticks", 1.5, 2.5), ("3-5 ticks", 2.5, 5.5),
              (">= 6 ticks", 5.5, np.inf))
ROWS = {"persistence": "persistence (next = last)",
        "true_dt": "LTC, true dt",
        "true_dt_fed_constant": "same LTC fed a constant dt",
        "dt_blind": "LTC trained and run with constant dt"}
COLOURS = {"persistence": "0.55", "true_dt": "tab:blue", "true_dt_fed_constant": "tab:green",
           "dt_blind": "tab:orange"}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("out/examples/sensor"), help="output folder")
    p.add_argument("--drop", type=float, default=0.3, help="fraction of readings dropped")
    p.add_argument("--max-gap", type=int, default=12, help="longest run of dropped readings")
    p.add_argument("--steps", type=int, default=16, help="received readings per window")
    p.add_argument("--every", type=int, default=8, help="a window every k received readings")
    p.add_argument("--train-budget", type=float, default=60.0, help="training seconds per model")
    p.add_argument("--epochs", type=int, default=60, help="most epochs per model (early stopping)")
    p.add_argument("--limit", type=int, default=0, help="use only the first N readings (0: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the dropouts and of training")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p.parse_args(argv)


def _train_config(args):
    from liquidedge.model.train import TrainConfig

    # Many short truncated-BPTT segments over many parallel streams: the most optimiser steps
    # per second on a CPU, which is what a one-minute budget needs.
    return TrainConfig(task="sensor", hidden=16, learning_rate=1e-2,
                       streams=32, seq_windows=4, epochs=args.epochs, patience=5,
                       time_budget_s=args.train_budget, seed=args.seed, progress=not args.no_progress)


def gap_groups(dt_last: np.ndarray, tick_s: float) -> dict[str, np.ndarray]:
    """Windows grouped by the time before their last reading, in clock ticks."""
    ticks = np.asarray(dt_last, np.float64) / tick_s
    return {name: (ticks >= lo) & (ticks < hi) for name, lo, hi in GAP_GROUPS}


def score_rows(predictions: dict[str, np.ndarray], test, tick_s: float) -> dict[str, dict[str, Any]]:
    """MSE (standardised units) of each forecast, overall and per gap group, on valid windows."""
    ok = np.asarray(test.target_valid, bool)
    y = np.asarray(test.target_value, np.float64)
    groups = gap_groups(test.dt_s[:, -1], tick_s)
    rows = {}
    for key, pred in predictions.items():
        err = (np.asarray(pred, np.float64) - y) ** 2
        row = {"mse": float(np.mean(err[ok])), "n": int(ok.sum())}
        row["by_gap"] = {name: {"mse": float(np.mean(err[ok & g])) if (ok & g).any() else float("nan"),
                                "n": int((ok & g).sum())} for name, g in groups.items()}
        rows[key] = row
    return rows


def _print_table(console, rows: dict[str, dict[str, Any]], scale: float) -> None:
    from rich.table import Table

    base = rows["persistence"]["mse"]
    counts = ", ".join(f"{name}: {rows['persistence']['by_gap'][name]['n']}" for name, *_ in GAP_GROUPS)
    table = Table(title="Held-out next-reading error: MSE in units of the stream's std, RMSE in raw PPG units",
                  caption=f"MSE by the time before the window's last reading; windows: {counts}")
    table.add_column("forecast")
    table.add_column("MSE", justify="right")
    table.add_column("vs persistence", justify="right")
    table.add_column("RMSE raw", justify="right")
    for name, *_ in GAP_GROUPS:
        table.add_column(name.replace(" (1 tick)", ""), justify="right")
    for key, row in rows.items():
        table.add_row(ROWS[key], f"{row['mse']:.5f}", f"{row['mse'] / base:.2f}x",
                      f"{np.sqrt(row['mse']) * scale:.2f}",
                      *[f"{row['by_gap'][name]['mse']:.5f}" for name, *_ in GAP_GROUPS])
    console.print(table)


def plot(path: Path, *, events, received, test, spec, predictions, rows, tick_s: float,
         span_readings: int = 400) -> Path:
    """Top: a held-out stretch of the signal with the dropped readings and the forecasts of the
    next reading; bottom: error by the length of the gap before the window's last reading."""
    from liquidedge.plots import pyplot, save_figure

    plt = pyplot()

    t0_ns = int(events.time_ns[0])
    sec = lambda ns: (np.asarray(ns, np.float64) - t0_ns) / 1e9  # noqa: E731
    lo = int(test.end_bar[0])
    hi = min(lo + span_readings, len(events) - 1)
    idx = np.arange(lo, hi + 1)
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(11, 7.5), gridspec_kw={"height_ratios": [3, 2]})
    ax1.plot(sec(events.time_ns[idx]), events.price[idx], lw=0.8, color="0.6", label="recorded signal")
    got, lost = idx[received[idx]], idx[~received[idx]]
    ax1.scatter(sec(events.time_ns[got]), events.price[got], s=5, color="0.25", label="received readings")
    ax1.scatter(sec(events.time_ns[lost]), events.price[lost], s=14, marker="x", color="tab:red",
                label=f"dropped readings ({np.mean(~received):.0%} overall)")
    sel = np.flatnonzero(np.asarray(test.target_valid) & (test.end_bar + spec.horizon <= hi))
    target_at = test.end_bar[sel] + spec.horizon
    last_raw = events.price[test.end_bar[sel]]
    for key, marker in (("true_dt", "^"), ("dt_blind", "s")):
        pred_raw = last_raw + predictions[key][sel] * spec.scale      # target = change (standardised)
        ax1.scatter(sec(events.time_ns[target_at]), pred_raw, s=22, facecolors="none", zorder=3,
                    label=f"forecast: {ROWS[key]}", marker=marker, color=COLOURS[key])
    ax1.set_xlabel("seconds into the recording")
    ax1.set_ylabel("PPG value")
    ax1.set_title("Held-out stretch: the next reading forecast from the last received ones")
    ax1.legend(loc="upper right", fontsize=7)
    names = [name for name, *_ in GAP_GROUPS]
    xs = np.arange(len(names))
    for k, key in enumerate(ROWS):
        vals = [rows[key]["by_gap"][name]["mse"] for name in names]
        ax2.bar(xs + (k - 1.5) * 0.2, vals, width=0.2, label=ROWS[key], color=COLOURS[key])
    ax2.set_xticks(xs, [f"{name}\n({rows['persistence']['by_gap'][name]['n']} windows)" for name in names],
                   fontsize=8)
    ax2.set_yscale("log")
    ax2.set_ylabel("MSE (standardised)")
    ax2.set_xlabel(f"time before the window's last reading (clock tick {tick_s * 1e3:.1f} ms)")
    ax2.legend(fontsize=7)
    return save_figure(fig, path)


def main(argv=None) -> dict[str, Any]:
    from rich.console import Console

    from liquidedge.data import (SensorSpec, build_sensor_dataset, clock_tick_s, load_ppg_sample,
                                 persistence_forecast, simulate_dropouts, split, with_constant_dt)
    from liquidedge.model.evaluate import run_model
    from liquidedge.model.train import train_model

    args = parse_args(argv)
    console = Console()
    if console.width < 130:    # logs, CI and narrow terminals: keep the table on one line per row
        console = Console(width=130)
    t_start = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)

    events = load_ppg_sample()
    if args.limit:
        events = events.slice(0, args.limit)
    n = len(events)
    tick = clock_tick_s(events.time_ns)
    repeated = float(np.mean(np.diff(events.time_ns) == 0))
    received = simulate_dropouts(n, args.drop, max_run=args.max_gap, seed=args.seed)
    spec = SensorSpec(steps=args.steps, every=args.every, target="change", min_dt_s=tick)
    data = build_sensor_dataset(events.time_ns, events.price, spec, received=received)
    blind = with_constant_dt(data)
    console.print(f"{n:,} PPG readings over {(events.time_ns[-1] - events.time_ns[0]) / 1e9:.0f} s; "
                  f"{repeated:.0%} of stamps repeat the previous one (clock tick {tick * 1e3:.1f} ms, "
                  f"used as the dt floor); dropped {np.mean(~received):.0%} in runs of 1-{args.max_gap}; "
                  f"{len(data):,} windows of {args.steps} received readings")

    cfg = _train_config(args)
    trained = {}
    for key, ds in (("true_dt", data), ("dt_blind", blind)):
        console.rule(f"training: {ROWS[key]}")
        model, report = train_model(ds, cfg)
        trained[key] = (model, report)
        console.print(f"{report.seconds:.0f} s, {report.epochs_run} epochs, stopped: {report.stopped}")

    test, test_blind = split(data, cfg.split)[-1], split(blind, cfg.split)[-1]
    with console.status("running the held-out stream through the numpy reference"):
        predictions = {
            "persistence": persistence_forecast(test),
            "true_dt": run_model(trained["true_dt"][0], test)["prediction"][:, 0],
            "true_dt_fed_constant": run_model(trained["true_dt"][0], test_blind)["prediction"][:, 0],
            "dt_blind": run_model(trained["dt_blind"][0], test_blind)["prediction"][:, 0],
        }
    rows = score_rows(predictions, test, tick)
    _print_table(console, rows, data.spec.scale)
    ratio = rows["dt_blind"]["mse"] / rows["true_dt"]["mse"]
    console.print(f"dt-blind / dt-aware MSE on held-out windows: {ratio:.2f}")

    png = plot(args.out / "sensor.png", events=events, received=received, test=test, spec=data.spec,
               predictions=predictions, rows=rows, tick_s=tick)
    result: dict[str, Any] = {
        "out": str(args.out), "plot": str(png), "summary": str(args.out / "summary.json"),
        "readings": n, "received": int(received.sum()), "clock_tick_s": tick, "repeated_stamps": repeated,
        "spec": data.spec.to_dict(), "windows": {"all": len(data), "test": len(test)},
        "metrics": rows, "blind_over_true_mse": ratio,
        "training": {key: {"seconds": rep.seconds, "epochs": rep.epochs_run, "stopped": rep.stopped,
                           "metrics": rep.metrics} for key, (_, rep) in trained.items()},
    }
    result["seconds"] = time.perf_counter() - t_start
    Path(result["summary"]).write_text(json.dumps(result, indent=2, default=float))
    console.print(f"plot: {png}\ntotal {result['seconds']:.0f} s")
    return result


if __name__ == "__main__":
    import sys

    from liquidedge.errors import LiquidEdgeError

    try:
        main()
    except LiquidEdgeError as exc:
        sys.exit(f"error: {exc}")
