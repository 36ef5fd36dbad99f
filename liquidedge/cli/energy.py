"""`liquidedge energy MODEL_DIR|ARTEFACT --device D [--measure]`: the energy table and its chart."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from liquidedge.errors import LiquidEdgeError


def register(app: typer.Typer) -> None:
    app.command("energy")(energy_cmd)


def energy_cmd(
    path: Path = typer.Argument(..., help="Model directory (reports it and every artefact exported "
                                          "under it) or one artefact."),
    device: Optional[str] = typer.Option(None, "--device", "-d",
                                         help="Device profile the energy is for (default: this machine's)."),
    measure: bool = typer.Option(False, "--measure", help="Measure with the device's power meter "
                                                          "(run this on the device itself)."),
    png: Path = typer.Option(Path("energy.png"), "--png", help="Bar chart to write."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the rows as JSON."),
    model: Optional[Path] = typer.Option(None, "--model", help="Model directory an ARTEFACT came from "
                                                               "(found automatically when beside it)."),
    window: float = typer.Option(10.0, "--window", help="Seconds per measured window (>= 10)."),
    trials: int = typer.Option(5, "--trials", help="Measured trials (the median is reported)."),
    idle: float = typer.Option(5.0, "--idle", help="Seconds of idle baseline before each trial."),
) -> None:
    """Latency and µJ per inference of each target, measured or estimated, as a table and a PNG."""
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from liquidedge.energy.report import energy_table, plot_energy, rich_table, targets_in

    console = Console()
    try:
        if device is None:
            from liquidedge.deploy.profiles import detect_profile

            device = detect_profile().name
        targets = targets_in(path)
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      TimeElapsedColumn(), console=console, transient=True) as prog:
            task = prog.add_task("energy", total=len(targets))

            def step(name: str) -> None:
                prog.update(task, description=f"{'measuring' if measure else 'timing'} {name}")

            rows = energy_table(targets, device, measure, model=model, window_s=window, trials=trials,
                                idle_s=idle, progress=lambda n: (step(n), prog.advance(task)))
        out = plot_energy(rows, png)
        if json_out is not None:
            json_out.write_text(json.dumps([r.to_dict() for r in rows], indent=2, default=str))
    except LiquidEdgeError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=2)
    console.print(rich_table(rows))
    for note in dict.fromkeys(r.notes[0] for r in rows if r.notes):
        console.print(f"[dim]{escape(note)}[/]", highlight=False)
    console.print(f"chart -> {out}")
