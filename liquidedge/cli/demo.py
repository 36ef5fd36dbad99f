"""`liquidedge demo`: the end-to-end pipeline on the shipped E-mini trades (what `make demo` runs)."""
from __future__ import annotations

from pathlib import Path

import typer

from liquidedge.cli.common import fail


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_cmd)


def demo_cmd(
    out: Path = typer.Option(Path("out/demo"), "--out", "-o", help="Folder for the model, artefacts and report."),
    train_budget: float = typer.Option(150.0, "--train-budget", help="Training time budget in seconds."),
    quick: bool = typer.Option(False, "--quick", help="Small data and 2 epochs: a smoke run in about a minute."),
) -> None:
    """Train on real E-mini trades, export every target, stream edge -> host, write a report."""
    from liquidedge.demo import DemoConfig, run_demo
    from liquidedge.errors import LiquidEdgeError

    try:
        run_demo(DemoConfig(out=out, train_budget_s=train_budget, quick=quick))
    except LiquidEdgeError as exc:
        fail(exc)
