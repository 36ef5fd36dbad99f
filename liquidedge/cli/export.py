"""`liquidedge export ...` and `liquidedge calibrate report ...` (thin: the library does the work)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from liquidedge.cli.common import fail as _fail

from liquidedge.errors import ConfigError, LiquidEdgeError

calibrate_app = typer.Typer(no_args_is_help=True, add_completion=False,
                            help="Calibration: check exported artefacts against the fp32 reference.")


def register(app: typer.Typer) -> None:
    app.command("export")(export_cmd)
    app.add_typer(calibrate_app, name="calibrate")




def _dataset(events: Optional[Path], model_dir: Path):
    """The windows to calibrate/evaluate on: EVENTS cut with the model's data spec, or None
    (the library then uses the E-mini sample)."""
    if events is None:
        return None
    from liquidedge.data import DataSpec, build_dataset, load_events
    from liquidedge.ir import load_model

    model = load_model(model_dir)
    spec = DataSpec.from_dict(model.data_spec) if model.data_spec else DataSpec()
    return build_dataset(load_events(events), spec)


def export_cmd(
    model_dir: Path = typer.Argument(..., help="Model directory (model.json + weights.safetensors)."),
    target: str = typer.Option(..., "--target", "-t", help="onnx or tflite."),
    out: Path = typer.Option(..., "-o", "--out", help="Artefact file, or an existing directory."),
    int8: Optional[str] = typer.Option(None, "--int8", help="static, dynamic or weight (LiteRT only)."),
    calib: int = typer.Option(256, "--calib", help="Calibration windows for static int8."),
    method: str = typer.Option("minmax", "--method", help="minmax, entropy or percentile (ONNX)."),
    scope: str = typer.Option("recurrent", "--scope", help="Static int8 scope: recurrent, matmul or all."),
    seed: int = typer.Option(0, "--seed", help="Seed of the calibration-window draw."),
    events: Optional[Path] = typer.Option(None, "--events", help="Event file to calibrate on "
                                          "(default: the E-mini sample)."),
    batches: str = typer.Option("1,256", "--batches", help="LiteRT: batch sizes to write a signature "
                                "for (comma-separated, must include 1)."),
) -> None:
    """Export the perception of MODEL_DIR for ONNX Runtime or LiteRT (fp32 or int8)."""
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from liquidedge.exporters.export import export_model
    from liquidedge.targets.base import read_manifest

    console = Console(stderr=True)
    try:
        try:
            batch_sizes = tuple(int(b) for b in batches.split(","))
        except ValueError:
            raise ConfigError(f"--batches {batches!r}: expected comma-separated integers such as 1,256") from None
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                      console=console, transient=True) as progress:
            task = progress.add_task("exporting", total=None)
            data = _dataset(events, model_dir)
            path = export_model(model_dir, target, out, int8=int8, calib_windows=calib, method=method,
                                scope=scope, data=data, seed=seed, batch_sizes=batch_sizes,
                                progress=lambda stage: progress.update(task, description=stage))
        manifest = read_manifest(path)
    except LiquidEdgeError as exc:
        _fail(exc)
    d = manifest.details
    console.print(f"[green]wrote[/] {path} ({manifest.target}, {manifest.precision}, T={manifest.steps}, "
                  f"F={manifest.n_inputs}, E={manifest.embedding_dim})")
    if d.get("float_ops"):
        console.print(f"  float ops: {d['float_ops']}")
    if d.get("integer_ops"):
        console.print(f"  integer ops: {d['integer_ops']}")
    typer.echo(str(path))


@calibrate_app.command("report")
def report_cmd(
    model_dir: Path = typer.Argument(..., help="Model directory the artefacts were exported from."),
    artefacts: List[Path] = typer.Argument(..., help="Exported artefacts (each with its manifest)."),
    json_out: Optional[str] = typer.Option(None, "--json", help="Write JSON here ('-' = stdout, no table)."),
    rate: float = typer.Option(0.2, "--rate", help="Update rate for the threshold when the model's "
                               "threshold is not calibrated."),
    events: Optional[Path] = typer.Option(None, "--events", help="Event file (default: the E-mini sample)."),
) -> None:
    """Agreement of each ARTEFACT with the fp32 reference on held-out windows."""
    from rich.console import Console

    from liquidedge.calibration.agreement import report_for_model, report_table

    try:
        reports = report_for_model(model_dir, artefacts, data=_dataset(events, model_dir), target_rate=rate)
    except LiquidEdgeError as exc:
        _fail(exc)
    payload = json.dumps([r.to_dict() for r in reports], indent=2)
    if json_out == "-":
        typer.echo(payload)
        return
    Console().print(report_table(reports))
    if reports:
        Console().print(f"threshold {reports[0].threshold:.6g}: {reports[0].threshold_source}")
    if json_out:
        Path(json_out).write_text(payload)
