"""The end-to-end demo: real E-mini trades -> trained model -> every target -> edge/host loop -> report.

It is how a new user meets the project (``make demo`` = ``liquidedge demo``), so each stage calls
the same library functions the CLI and the tests use, prints what it measured, and the whole run
ends with one table per target and a report folder (HTML + PNG plots). Nothing here is faked: the
host really serves on loopback over gRPC and the edge really streams the held-out trades.
"""
from __future__ import annotations

import json
import secrets
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

LITERT_TARGETS = ("tflite",)


@dataclass
class DemoConfig:
    """What the demo runs. ``quick`` shrinks data and training for a fast smoke run (tests)."""

    out: Path = Path("out/demo")
    train_budget_s: float = 150.0
    quick: bool = False
    lava_windows: int = 120
    stream_fraction: float = 0.3     # the last part of the trades streamed through edge -> host
    seed: int = 0

    def __post_init__(self) -> None:
        self.out = Path(self.out)


@dataclass
class TargetResult:
    """One perception target's line in the final table."""

    name: str
    target: str
    precision: str
    artefact: str
    agreement: dict[str, Any] = field(default_factory=dict)
    energy: dict[str, Any] = field(default_factory=dict)


@dataclass
class DemoResult:
    out: Path
    seconds: dict[str, float]
    model_dir: Path
    targets: list[TargetResult]
    stream: dict[str, Any]
    report_html: Path


class _Stages:
    """Times each stage and tells the user what is happening."""

    def __init__(self, console):
        self.console = console
        self.seconds: dict[str, float] = {}

    def run(self, name: str, fn: Callable[[], Any]) -> Any:
        self.console.rule(f"[bold]{name}")
        t0 = time.perf_counter()
        out = fn()
        self.seconds[name] = time.perf_counter() - t0
        self.console.print(f"[dim]{name}: {self.seconds[name]:.1f} s[/dim]")
        return out


def _data(cfg: DemoConfig, console):
    from liquidedge.data import DataSpec, build_dataset, load_default_ticks

    events = load_default_ticks()
    if cfg.quick:
        events = events.slice(0, 150_000)
    dataset = build_dataset(events, DataSpec())
    span_h = (events.time_ns[-1] - events.time_ns[0]) / 3.6e12
    console.print(f"{len(events):,} real E-mini trades over {span_h:.1f} h "
                  f"({np.datetime64(int(events.time_ns[0]), 'ns')} .. {np.datetime64(int(events.time_ns[-1]), 'ns')} UTC) "
                  f"-> {len(dataset):,} windows of {dataset.x.shape[1]} steps x {dataset.x.shape[2]} features")
    return events, dataset


def _train(cfg: DemoConfig, dataset, console):
    from liquidedge.ir import save_model
    from liquidedge.model.train import TrainConfig, train_model

    tc = TrainConfig(time_budget_s=cfg.train_budget_s, seed=cfg.seed)
    if cfg.quick:
        tc = TrainConfig(epochs=2, pretrain_epochs=1, time_budget_s=min(cfg.train_budget_s, 30), seed=cfg.seed)
    model, report = train_model(dataset, tc)
    model_dir = save_model(model, cfg.out / "model")
    test = report.metrics.get("test", {})
    console.print(f"trained in {report.seconds:.0f} s ({report.epochs_run} epochs, stopped: {report.stopped}); "
                  f"model saved to {model_dir}")
    if test:
        console.print("held-out test: " + ", ".join(f"{k} {v:.4f}" for k, v in test.items()
                                                     if isinstance(v, (int, float))))
    return model, model_dir, report


def _export(cfg: DemoConfig, model, model_dir: Path, dataset, console) -> list[tuple[str, Path]]:
    from liquidedge.exporters.export import export_model, window_steps
    from liquidedge.exporters.lava import export_lava

    art_dir = cfg.out / "artefacts"
    art_dir.mkdir(parents=True, exist_ok=True)
    plan = [("ONNX Runtime fp32", "onnx", None), ("ONNX Runtime int8", "onnx", "static"),
            ("LiteRT fp32", "tflite", None), ("LiteRT int8", "tflite", "static")]
    out = []
    for name, target, int8 in plan:
        t0 = time.perf_counter()
        path = export_model(model_dir, target, art_dir, int8=int8, data=dataset,
                            calib_windows=64 if cfg.quick else 256)
        console.print(f"{name:<22} -> {path.name}  ({time.perf_counter() - t0:.1f} s)")
        out.append((name, path))
    steps = window_steps(model, dataset)
    for precision in ("floating_pt", "fixed_pt"):
        path = export_lava(model, art_dir / f"perception-lava-{precision}", steps=steps, precision=precision,
                           model_hash=model.content_hash())
        console.print(f"{'Lava ' + precision:<22} -> {path.name}")
        out.append((f"Loihi-2 (Lava) {precision}", path))
    return out


def _agreement(cfg: DemoConfig, model, dataset, artefacts, console) -> dict[str, dict[str, Any]]:
    from liquidedge.calibration.agreement import agreement_report, choose_threshold
    from liquidedge.calibration.windows import CalibrationSet, StreamWindows, stream_windows, train_and_held_out
    from liquidedge import reference
    from liquidedge.targets.base import load_runner

    _, held = train_and_held_out(dataset)
    windows = stream_windows(model, held)
    inputs = windows.inputs
    ref_emb = reference.perception_forward(model.perception, inputs.x, inputs.dt, inputs.mask, np.float64)
    threshold = choose_threshold(model, ref_emb, 0.2)
    n_lava = min(cfg.lava_windows if not cfg.quick else 16, len(inputs.x))
    lava_windows = StreamWindows(
        CalibrationSet(inputs.x[:n_lava], inputs.dt[:n_lava], inputs.mask[:n_lava], dict(inputs.info)),
        {k: v[:n_lava] for k, v in windows.stream.items() if isinstance(v, np.ndarray)}, windows.index[:n_lava])
    reports = {}
    # Lava's runtime forks its workers after litert-torch has loaded JAX; the workers only run
    # Lava's numpy models and never touch JAX, so CPython's "fork with threads" warning is noise.
    warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
    for name, path in artefacts:
        is_lava = "Lava" in name
        runner = load_runner(path)
        try:
            rep = agreement_report(model, runner, lava_windows if is_lava else windows,
                                   dataset=held, artefact=str(path), threshold=threshold)
        finally:
            close = getattr(runner, "close", None)
            if close is not None:
                close()
        reports[name] = rep
        console.print(f"{name:<30} {rep.n_windows:>4} windows  max|err| "
                      f"{rep.max_abs_error:.1e}  cosine min {rep.cosine_min:.5f}  decisions {rep.decision_agreement:.1%}")
    return {k: v.to_dict() for k, v in reports.items()}


def _energy(cfg: DemoConfig, model, artefacts, console) -> dict[str, dict[str, Any]]:
    from liquidedge.energy.report import energy_table, plot_energy, rich_table

    rows = energy_table([(name, path, None) for name, path in artefacts], device="x86-host", model=model)
    console.print(rich_table(rows))
    plot_energy(rows, cfg.out / "report" / "energy.png", title="latency and energy per inference (one window)")
    return {name: row.to_dict() for (name, _), row in zip(artefacts, rows)}


def _stream(cfg: DemoConfig, model, model_dir: Path, events, artefacts, console) -> dict[str, Any]:
    """Host on loopback (gRPC + token), edge streams the last trades through LiteRT int8."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from liquidedge import reference
    from liquidedge.bridge.client import BridgeClient
    from liquidedge.bridge.edge import EdgeLoop
    from liquidedge.bridge.server import start_server
    from liquidedge.bridge.transport import GrpcTransport
    from liquidedge.targets.base import load_runner

    edge_artefact = dict(artefacts)["LiteRT int8"]
    start = int(len(events) * (1.0 - cfg.stream_fraction))
    tail = events.slice(start, len(events))
    token = secrets.token_hex(16)
    handle = start_server(model, "127.0.0.1:0", token=token, checkpoint_dir=cfg.out / "host-checkpoints")
    try:
        client = BridgeClient(GrpcTransport(handle.address, token=token), timeout_s=5.0)
        loop = EdgeLoop(load_runner(edge_artefact), model, client, stream_id="es-demo")
        chunk = 2_000
        with Progress(TextColumn("edge -> host"), BarColumn(), TextColumn("{task.completed:,}/{task.total:,} trades"),
                      TimeElapsedColumn(), console=console, transient=True) as bar:
            task = bar.add_task("stream", total=len(tail))
            results = []
            for i in range(0, len(tail), chunk):
                part = tail.slice(i, min(i + chunk, len(tail)))
                results.extend(loop.push_events(part.time_ns, part.price, part.size))
                bar.update(task, advance=len(part))
        loop.drain()
    finally:
        handle.stop()
    emb = np.stack([r.embedding for r in results]).astype(np.float64)
    # The host's surprise must be the reference memory's on the very embeddings it received.
    state = reference.init_memory_state(model.memory, 1)
    ref_scores = []
    for e in emb:
        res = reference.memory_step(model.memory, state, e[None])
        state = res.state
        ref_scores.append(res.score[0])
    host_scores = np.array([np.nan if r.surprise is None else r.surprise for r in results])
    on_host = ~np.isnan(host_scores)
    max_diff = float(np.max(np.abs(host_scores[on_host] - np.asarray(ref_scores)[on_host]))) if on_host.any() else float("nan")
    console.print(f"streamed {len(tail):,} trades -> {len(results)} windows; host answered {int(on_host.sum())}, "
                  f"degraded {int(sum(r.degraded for r in results))}; memory updates {int(sum(r.updated for r in results))}; "
                  f"host surprise vs numpy reference: max |diff| {max_diff:.2e}")
    return {"events": tail, "results": results, "ref_scores": np.asarray(ref_scores),
            "max_surprise_diff": max_diff, "threshold": float(model.memory.threshold)}


def _final_table(console, targets: list[TargetResult]):
    from rich.table import Table

    table = Table(title="Every target: agreement with the numpy reference, cost per inference")
    for col in ("target", "precision", "windows", "max |err|", "cosine min", "decisions", "latency ms",
                "µJ / inference", "method"):
        table.add_column(col, justify="left" if col in ("target", "precision", "method") else "right")
    for t in targets:
        a, e = t.agreement, t.energy
        lat = e.get("latency_ms")
        table.add_row(t.name, t.precision, str(a.get("n_windows", "-")), f"{a.get('max_abs_error', float('nan')):.1e}",
                      f"{a.get('cosine_min', float('nan')):.5f}", f"{a.get('decision_agreement', float('nan')):.1%}",
                      "-" if lat is None else f"{lat:.3f}", f"{e.get('uj', float('nan')):.3g}",
                      f"{e.get('method', '-')} ({e.get('latency_on', '')})")
    console.print(table)


def run_demo(cfg: DemoConfig | None = None, console=None) -> DemoResult:
    """Run every stage; return what was measured and where the report is."""
    from rich.console import Console

    from liquidedge.demo_report import write_report

    cfg = cfg or DemoConfig()
    if console is None:
        console = Console()
        if not console.is_terminal:  # logs and CI: wide enough for the tables, no wrapping
            console = Console(width=170)
    cfg.out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    st = _Stages(console)
    events, dataset = st.run("1. data: trades -> volume bars -> windows", lambda: _data(cfg, console))
    model, model_dir, train_report = st.run("2. train the Liquid-Titan model", lambda: _train(cfg, dataset, console))
    artefacts = st.run("3. export: ONNX, LiteRT (fp32, int8), Lava",
                       lambda: _export(cfg, model, model_dir, dataset, console))
    agreement = st.run("4. agreement with the reference on held-out windows",
                       lambda: _agreement(cfg, model, dataset, artefacts, console))
    energy = st.run("5. latency and energy per inference", lambda: _energy(cfg, model, artefacts, console))
    stream = st.run("6. edge -> bridge (gRPC, loopback) -> host memory on held-out trades",
                    lambda: _stream(cfg, model, model_dir, events, artefacts, console))
    targets = []
    for name, path in artefacts:
        a = agreement.get(name, {})
        targets.append(TargetResult(name, a.get("target", ""), a.get("precision", ""), str(path), a, energy.get(name, {})))
    html = st.run("7. report", lambda: write_report(cfg.out / "report", model=model, dataset=dataset,
                                                     train_report=train_report, targets=targets, stream=stream))
    _final_table(console, targets)
    total = time.perf_counter() - t_start
    seconds = dict(st.seconds, total=total)
    summary = {"seconds": seconds, "model_dir": str(model_dir), "report": str(html),
               "targets": [t.__dict__ for t in targets],
               "stream": {k: v for k, v in stream.items() if k in ("max_surprise_diff", "threshold")},
               "training": train_report.to_dict()}
    (cfg.out / "summary.json").write_text(json.dumps(summary, indent=2, default=_json_default))
    console.print(f"report: {html}")
    console.print(f"[bold]total wall time: {total:.0f} s ({total / 60:.1f} min)[/bold]")
    return DemoResult(cfg.out, seconds, model_dir, targets, stream, html)


def _json_default(obj):
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)
