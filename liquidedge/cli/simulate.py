"""`liquidedge simulate loihi2 MODEL_DIR`: run a model's perception in Lava's Loihi-2 simulator.

Thin: ``liquidedge.targets.lava.held_out_windows`` picks the windows and ``simulate_loihi2``
does the work (export, run, compare, count, estimate); this module parses and prints.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from liquidedge.cli.common import fail as _fail

from liquidedge.errors import LiquidEdgeError

simulate_app = typer.Typer(no_args_is_help=True, add_completion=False,
                           help="Simulate a model's perception on neuromorphic hardware models.")


def register(app: typer.Typer) -> None:
    app.add_typer(simulate_app, name="simulate")




@simulate_app.command("loihi2")
def loihi2_cmd(
    model_dir: Path = typer.Argument(..., help="Model directory (model.json + weights.safetensors)."),
    fixed_pt: bool = typer.Option(False, "--fixed-pt", help="Integer-only neuron models (default: float)."),
    windows: int = typer.Option(20, "--windows", "-n", min=1, help="Held-out windows to run."),
    data: Optional[Path] = typer.Option(None, "--data", help="Event file (CSV/Parquet); default: the E-mini sample."),
    x_range: float = typer.Option(64.0, "--x-range", help="Largest |input| the fixed_pt payloads carry."),
    weight_synapses: int = typer.Option(1, "--weight-synapses", min=1, max=2,
                                        help="fixed_pt: 8-bit synapses per weight (2: 16-bit precision, 2x synops)."),
) -> None:
    """Run windows through Lava; print agreement with the reference, op counts, energy, latency."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from liquidedge.ir import load_model
    from liquidedge.targets.lava import held_out_windows, simulate_loihi2

    precision = "fixed_pt" if fixed_pt else "floating_pt"
    console = Console()
    try:
        model = load_model(model_dir)
        x, dt, mask = held_out_windows(model, windows, data)
        with Progress(TextColumn(f"Lava {precision}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=console, transient=True) as bar:
            task = bar.add_task("windows", total=x.shape[0])
            report = simulate_loihi2(model, x, dt, mask, precision=precision, x_range=x_range,
                                     weight_synapses=weight_synapses if fixed_pt else 1,
                                     on_progress=lambda done: bar.update(task, completed=done))
    except LiquidEdgeError as exc:
        _fail(exc)
    agree = Table(title=f"Loihi-2 simulation ({precision}) vs numpy reference, "
                        f"{report['windows']} held-out windows of {report['steps']} steps")
    agree.add_column("measure")
    agree.add_column("value", justify="right")
    agree.add_row("max |lava - reference|", f"{report['max_abs']:.3g}")
    agree.add_row("cosine (min / mean)", f"{report['cosine_min']:.6f} / {report['cosine_mean']:.6f}")
    agree.add_row("decision agreement", f"{report['decision_agreement']:.1%}")
    agree.add_row("update threshold", f"{report['threshold']:.4g} ({report['threshold_source']})")
    agree.add_row("update rate (reference / lava)",
                  f"{report['update_rate_reference']:.1%} / {report['update_rate_target']:.1%}")
    agree.add_row("simulator speed", f"{report['windows_per_s']:.1f} windows/s")
    console.print(agree)
    counts = Table(title="Op counts per window (mean)")
    counts.add_column("count")
    counts.add_column("value", justify="right")
    for name, value in report["counts"].items():
        counts.add_row(name, f"{value:,.0f}")
    console.print(counts)
    e = report["energy"]
    energy = Table(title="Loihi estimate per window")
    energy.add_column("quantity")
    energy.add_column("value", justify="right")
    energy.add_row("energy", f"{e['uj_per_window']:.3f} uJ")
    for part, uj in e["breakdown_uj"].items():
        energy.add_row(f"  {part}", f"{uj:.3f} uJ")
    energy.add_row("latency", f"{e['latency_us']:.1f} us")
    console.print(energy)
    console.print("[bold]Assumptions[/]")
    for line in e["assumptions"]:
        console.print(f" - {line}", highlight=False)
