"""Does the Liquid-Titan model earn its keep? Three side-by-side measurements in one run.

1. Synthetic regime changes (known change times): precision / recall / F1 of surprise peaks
   within +-2 windows, next to the rolling z-score of realised volatility. Each detector's
   threshold is chosen on a calibration stream (its best F1) and scored on a fresh stream.
2. Real E-mini data, held-out later part: MSE of the log realised volatility forecast for the
   model with memory on, the same weights with the memory switched off, a model trained with
   the memory off, EWMA persistence and EWMA with its halflife tuned on validation, each as a
   ratio to EWMA with a 95% block-bootstrap interval; on the 2-day trade sample (the demo's
   data, one seed, with the demo's training time) and on the month of dollar bars (5 seeds).
3. Memory stability: 1,000,000 memory steps per stream on real embeddings and on adversarial
   ones (huge and tiny norms, one input repeated, two alternating, noise), as trained and with
   every gate forced to its most aggressive value; max |weight|, max |momentum|, all finite?

    .venv/bin/python benchmarks/model_quality.py [--stability-steps 1000000] [--skip ...]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from dataclasses import replace

import numpy as np

SYNTH_SPEC = dict(bar_kind="volume", bar_threshold=100.0, span="2min", steps=32, every="60s", min_bars=4,
                  horizon=8, ewma_halflife=16.0)
SYNTH_TRAIN = dict(hidden=16, mem_dim=8, decoder_hidden=16, epochs=15, patience=5, split=[0.8, 0.2])
SEEDS = {"train": 101, "calibration": 102, "evaluation": (103, 104)}
SYNTH_EVENTS = 1_500_000
MEAN_REGIME_S = 900.0
TOLERANCE = 2      # windows either side of a true change
MERGE_GAP = 3      # true changes closer than this many windows count as one event


def _table(title, columns, rows):
    from rich.table import Table
    t = Table(title=title)
    for c in columns:
        t.add_column(c, justify="right" if c != columns[0] else "left")
    for r in rows:
        t.add_row(*r)
    return t


def synthetic_stream(seed: int):
    from liquidedge.data import DataSpec, build_dataset, generate_market
    from liquidedge.model.changepoints import merge_changes

    market = generate_market(SYNTH_EVENTS, seed=seed, mean_regime_s=MEAN_REGIME_S)
    ds = build_dataset(market.events, DataSpec(**SYNTH_SPEC))
    changes = merge_changes(np.searchsorted(ds.end_ns, market.change_ns), MERGE_GAP)
    return ds, changes


def change_detection(console, progress: bool):
    from liquidedge.model import changepoints as cp
    from liquidedge.model.evaluate import run_model
    from liquidedge.model.train import TrainConfig, train_model

    t0 = time.perf_counter()
    train_ds, _ = synthetic_stream(SEEDS["train"])
    model, _ = train_model(train_ds, TrainConfig(**SYNTH_TRAIN, data_spec=SYNTH_SPEC, progress=progress))
    seconds = time.perf_counter() - t0
    calibration = synthetic_stream(SEEDS["calibration"])
    evaluation = [synthetic_stream(seed) for seed in SEEDS["evaluation"]]
    detectors = {
        "Liquid-Titan surprise peaks": lambda ds: run_model(model, ds)["score"],
        "rolling z-score of realised vol (20 windows)":
            lambda ds: cp.rolling_zscore(cp.window_realised_logvol(ds.x, ds.mask, 0), 20),
    }
    rows = []
    for name, score_of in detectors.items():
        best = cp.best_threshold(score_of(calibration[0]), calibration[1], TOLERANCE)
        # pool the evaluation streams: NaN gaps keep peaks and matches from crossing streams
        scores, changes, offset = [], [], 0
        for ds, ch in evaluation:
            s = np.concatenate([score_of(ds), np.full(10, np.nan)])
            scores.append(s)
            changes.append(ch + offset)
            offset += s.size
        g = cp.grade(np.concatenate(scores), np.concatenate(changes), best.threshold, TOLERANCE)
        rows.append((name, f"{g.precision:.3f}", f"{g.recall:.3f}", f"{g.f1:.3f}", f"{best.f1:.3f}",
                     f"{g.detections}", f"{g.changes}"))
    n_windows = sum(len(ds) for ds, _ in evaluation)
    console.print(_table(
        f"Synthetic regime changes: detection within +-{TOLERANCE} windows ({n_windows} windows of "
        f"{SYNTH_SPEC['span']} every {SYNTH_SPEC['every']} in {len(evaluation)} fresh streams; thresholds "
        f"chosen on another stream; model trained in {seconds:.0f} s on a third)",
        ["detector", "precision", "recall", "F1", "F1 (calibration stream)", "detections", "changes"], rows))
    return rows


HALFLIVES = (2, 4, 8, 16, 32, 64, 128)   # EWMA halflives (bars) the tuned baseline chooses from


def ewma_tuned_on_validation(data, spec, validation, test):
    """The EWMA baseline with its halflife chosen on the validation part: (halflife, test forecast)."""
    from liquidedge.data import Bars
    from liquidedge.data.pipeline import build_bars_for
    from liquidedge.data.targets import ewma_logvol_forecast

    bars = data if isinstance(data, Bars) else build_bars_for(data, spec)
    v = validation.target_valid

    def forecast(part, hl):
        return ewma_logvol_forecast(bars, part.end_bar, spec.horizon, halflife=hl, vol_floor=spec.vol_floor)
    best = min(HALFLIVES, key=lambda hl: np.mean((forecast(validation, hl) - validation.target_logvol)[v] ** 2))
    return best, forecast(test, best)


def forecast_comparison(console, title: str, data, cfg, seeds, progress: bool, png=None):
    """Train with the memory on and off per seed; score on the held-out later part: MSE of log
    realised vol, ratio to EWMA with a 95% moving-block bootstrap interval (blocks span a horizon).
    ``png``: plot the first seed's forecasts against the realised values there."""
    from liquidedge.data import build_dataset, split
    from liquidedge.model.evaluate import run_model
    from liquidedge.model.significance import mse_ratio_interval
    from liquidedge.model.train import train_model

    rows, summary, first = [], [], None
    for seed in seeds:
        c = replace(cfg, seed=seed, progress=progress)
        model, report = train_model(data, c)
        off_model, _ = train_model(data, replace(c, memory=False))
        spec = report_spec(model)
        _, val, test = split(build_dataset(data, spec), c.split)
        v = test.target_valid
        y = test.target_logvol[v]
        hl, tuned = ewma_tuned_on_validation(data, spec, val, test)
        every = spec.every if isinstance(spec.every, int) else 1
        block = max(2, -(-spec.horizon // every))
        pred_on = run_model(model, test)["prediction"][:, 0]
        pred_off = run_model(model, test, memory_on=False)["prediction"][:, 0]
        errors = {
            "memory on": pred_on[v] - y,
            "same weights, memory off": pred_off[v] - y,
            "trained with memory off": run_model(off_model, test)["prediction"][v, 0] - y,
            f"EWMA (halflife {spec.ewma_halflife:g} bars)": test.baseline_logvol[v] - y,
            f"EWMA (halflife {hl} bars, chosen on validation)": tuned[v] - y,
        }
        ewma = errors[f"EWMA (halflife {spec.ewma_halflife:g} bars)"]
        mse = {k: float(np.mean(e ** 2)) for k, e in errors.items()}
        for k, e in errors.items():
            iv = mse_ratio_interval(e, ewma, block=min(block, e.size))
            rows.append((str(seed), k, f"{mse[k]:.4f}", f"{iv.ratio:.3f}", f"[{iv.low:.3f}, {iv.high:.3f}]"))
        on, off = mse["memory on"], mse["same weights, memory off"]
        ablation = mse_ratio_interval(errors["memory on"], errors["same weights, memory off"], block=min(block, y.size))
        summary.append((on < float(np.mean(ewma ** 2)), on < off, report.seconds, ablation))
        if first is None and png is not None:
            from liquidedge.demo_report import plot_forecast
            plot_forecast({"end_ns": test.end_ns, "realised": test.target_logvol, "valid": v,
                           "ewma": test.baseline_logvol, "forecast": pred_on, "extra": {"same weights, memory off": pred_off}},
                          png, horizon=spec.horizon, title=f"{title}: held-out part, seed {seed}")
            console.print(f"plot: {png}")
        first = first or (model, report)
    passed = sum(a and b for a, b, *_ in summary)
    console.print(_table(f"{title}: held-out later part ({int(v.sum())} windows with targets; ratio interval: "
                         f"95% moving-block bootstrap, blocks of {block} windows)",
                         ["seed", "forecaster", "MSE log realised vol", "ratio to EWMA", "95% interval"], rows))
    console.print("memory on / same weights with memory off, MSE ratio [95% interval] per seed: " + ", ".join(
        f"{seed}: {a.ratio:.3f} [{a.low:.3f}, {a.high:.3f}]" for seed, (*_, a) in zip(seeds, summary)))
    console.print(f"seeds where memory-on beats EWMA and beats the same weights with memory off: {passed} of "
                  f"{len(summary)}; training {np.mean([s[2] for s in summary]):.0f} s per model (mean)")
    return first


def emini_forecast(console, progress: bool, bar_seeds=(0, 1, 2, 3, 4), plots=None):
    """E-mini, twice: the 2-day trade sample (the demo's data and config) and the month of dollar
    bars (20 sessions, so the held-out part is several sessions, not one afternoon)."""
    from liquidedge.data import DOLLAR_BAR_SPEC, load_default_bars, load_default_ticks
    from liquidedge.model.train import TrainConfig

    events = load_default_ticks()
    model, report = forecast_comparison(console, "E-mini trades 2013-09-01..03 (demo config)", events,
                                        TrainConfig(), (0,), progress,
                                        png=plots and plots / "emini_trades_forecast.png")
    console.print(f"demo training (memory on, TrainConfig defaults) took {report.seconds:.1f} s wall on this "
                  f"machine ({report.epochs_run} epochs, stopped: {report.stopped})")
    forecast_comparison(console, "E-mini $70M dollar bars 2015-01-01..29", load_default_bars(),
                        TrainConfig(data_spec=dict(DOLLAR_BAR_SPEC)), bar_seeds, progress,
                        png=plots and plots / "emini_dollar_bars_forecast.png")
    return model, events, report.seconds


def report_spec(model):
    from liquidedge.data import DataSpec
    return DataSpec.from_dict(model.data_spec)


def stability(console, model, events, steps: int, progress: bool):
    """Run the numpy reference memory (float64, the oracle) over ``steps`` steps per stream."""
    from rich.progress import Progress

    from liquidedge import reference as ref
    from liquidedge.data import build_dataset

    ds = build_dataset(events, report_spec(model))
    real = ref.run_stream(model, ds.x, ds.dt_s, ds.mask, dtype=np.float32)["embedding"].astype(np.float64)
    e = model.memory.embedding_dim
    rng = np.random.default_rng(0)
    one, two = rng.normal(size=e), rng.normal(size=(2, e))
    kinds = {
        "real E-mini embeddings (cycled)": lambda i, n: real[np.arange(i, i + n) % len(real)],
        "huge norms (1e30)": lambda i, n: rng.normal(size=(n, e)) * 1e30,
        "tiny norms (1e-30)": lambda i, n: rng.normal(size=(n, e)) * 1e-30,
        "norms 1e-30..1e30 at random": lambda i, n: rng.normal(size=(n, e)) * 10.0 ** rng.uniform(-30, 30, (n, 1)),
        "one input repeated": lambda i, n: np.repeat(one[None], n, 0),
        "two inputs alternating": lambda i, n: two[np.arange(i, i + n) % 2],
        "random noise": lambda i, n: rng.normal(size=(n, e)),
    }
    names = list(kinds)
    aggressive = replace(model.memory, w_lr=np.zeros(e), b_lr=30.0, w_eta=np.zeros(e), b_eta=30.0)
    rows = []
    with Progress(disable=not progress) as bar:
        for label, graph in (("as trained", model.memory), ("lr=lr_max, eta=eta_max", aggressive)):
            task = bar.add_task(f"stability ({label})", total=steps)
            state = ref.init_memory_state(graph, len(names))
            finite = np.ones(len(names), bool)
            max_w_k, max_s_k, max_r_k = (np.zeros(len(names)) for _ in range(3))
            block = 1000
            for i in range(0, steps, block):
                n = min(block, steps - i)
                batch = np.stack([kinds[k](i, n) for k in names], axis=1)   # [n, streams, E]
                for j in range(n):
                    res = ref.memory_step(graph, state, batch[j])
                    state = res.state
                    finite &= np.isfinite(res.retrieved).all(axis=1) & np.isfinite(res.score)
                    max_r_k = np.maximum(max_r_k, np.abs(res.retrieved).max(axis=1))
                wk = np.max([np.abs(w).reshape(len(names), -1).max(axis=1) for w in state.weights], axis=0)
                sk = np.max([np.abs(s).reshape(len(names), -1).max(axis=1) for s in state.momentum], axis=0)
                max_w_k, max_s_k = np.maximum(max_w_k, wk), np.maximum(max_s_k, sk)
                for w in state.weights + state.momentum:
                    finite &= np.isfinite(w.reshape(len(names), -1)).all(axis=1)
                bar.update(task, advance=n)
            for k, name in enumerate(names):
                rows.append((label, name, "yes" if finite[k] else "NO", f"{max_w_k[k]:.3g}", f"{max_s_k[k]:.3g}",
                             f"{max_r_k[k]:.3g}"))
    theta0 = max(float(np.abs(w).max()) for w in model.memory.theta0)
    console.print(_table(f"Memory stability over {steps:,} steps per stream (numpy reference, float64; "
                         f"max |theta0| = {theta0:.3g}; weights sampled every 1,000 steps)",
                         ["gates", "stream", "finite", "max |weight|", "max |momentum|", "max |retrieved|"], rows))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stability-steps", type=int, default=1_000_000)
    ap.add_argument("--skip", nargs="*", default=[], choices=["synthetic", "emini", "stability"])
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--plots", type=Path, default=Path(__file__).parent / "results",
                    help="folder for the forecast plots (default: benchmarks/results)")
    args = ap.parse_args()
    from rich.console import Console

    console = Console(width=150)
    progress = not args.no_progress
    if "synthetic" not in args.skip:
        change_detection(console, progress)
    if "emini" not in args.skip or "stability" not in args.skip:
        if "emini" in args.skip:   # stability still needs a trained model's embeddings
            from liquidedge.data import load_default_ticks
            from liquidedge.model.train import TrainConfig, train_model
            events = load_default_ticks()
            model, _ = train_model(events, TrainConfig(progress=progress))
        else:
            args.plots.mkdir(parents=True, exist_ok=True)
            model, events, _ = emini_forecast(console, progress, plots=args.plots)
        if "stability" not in args.skip:
            stability(console, model, events, args.stability_steps, progress)


if __name__ == "__main__":
    main()
