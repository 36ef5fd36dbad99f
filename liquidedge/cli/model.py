"""`liquidedge train | eval | info`: train a Liquid-Titan model, score it, describe it (thin:
each command parses its arguments and calls the library function the tests also call)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from liquidedge.cli.common import bar_threshold
from liquidedge.cli.common import fail as _fail

from liquidedge.errors import ConfigError, LiquidEdgeError

SAMPLE = "sample"
SAMPLE_BARS = "sample-bars"
DATA_HELP = ("Event file (CSV/TSV/Parquet), a bar file with --bars, 'sample' (the E-mini trades) or "
             "'sample-bars' (a month of E-mini dollar bars).")


def load_data(data: str, columns: Optional[str] = None, bars: Optional[str] = None,
              threshold: Optional[str] = None):
    """DATA as ``Events`` (trades) or, with ``bars`` (the bar kind) or 'sample-bars', as ``Bars``."""
    from liquidedge.data import load_bar_file, load_default_bars, load_default_ticks, load_events
    if data == SAMPLE:
        return load_default_ticks()
    if data == SAMPLE_BARS:
        return load_default_bars()
    if bars is not None:
        if threshold is None:
            raise ConfigError("--bars needs --bar-threshold: the size of the file's bars "
                              "(contracts, dollars, events or a duration like 5min)")
        return load_bar_file(Path(data), columns or "default", kind=bars,
                             threshold=bar_threshold(bars, threshold, "--bar-threshold"))
    return load_events(Path(data), columns)


def _metrics_table(title: str, rows: dict[str, dict[str, float]]):
    from rich.table import Table
    keys = sorted({k for r in rows.values() for k in r})
    table = Table(title=title)
    table.add_column("metric")
    for name in rows:
        table.add_column(name, justify="right")
    for k in keys:
        table.add_row(k, *(f"{rows[n][k]:.4g}" if k in rows[n] else "" for n in rows))
    return table


def train_cmd(
    data: str = typer.Argument(..., help=DATA_HELP),
    output: Path = typer.Option(..., "--output", "-o", help="Model directory to write."),
    config: Optional[Path] = typer.Option(None, "--config", help="TrainConfig as JSON (unknown keys refused)."),
    columns: Optional[str] = typer.Option(None, "--columns", "-c", help="Column preset; default: detect."),
    bars: Optional[str] = typer.Option(None, "--bars", help="DATA is a bar file (OHLCV rows) of this kind: "
                                       "time | tick | volume | dollar."),
    bar_size: Optional[str] = typer.Option(None, "--bar-threshold", help="Size of the file's bars."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Override the config's seed."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Train on DATA, calibrate the surprise threshold on the validation part, write MODEL_DIR."""
    from rich.console import Console

    from liquidedge.ir import save_model
    from liquidedge.model.train import TrainConfig, train_model

    try:
        cfg = TrainConfig.from_json(config) if config else TrainConfig()
        if seed is not None:
            cfg.seed = seed
        if quiet:
            cfg.progress = False
        model, report = train_model(load_data(data, columns, bars, bar_size), cfg)
        save_model(model, output)
    except LiquidEdgeError as exc:
        _fail(exc)
    console = Console()
    console.print(f"wrote {output}  ({report.seconds:.1f} s, {report.epochs_run} epochs, best {report.best_epoch}, "
                  f"stopped: {report.stopped})")
    if report.metrics:
        console.print(_metrics_table("held-out metrics", report.metrics))
    if report.calibration:
        c = report.calibration
        console.print(f"surprise threshold {c['threshold']:.4g} (update rate {c['achieved_rate']:.2f}, "
                      f"target {c['target_rate']:.2f}); bypass threshold {c['bypass_threshold']:.4g}")


def eval_cmd(
    model_dir: Path = typer.Argument(..., help="A model directory written by `liquidedge train`."),
    data: str = typer.Argument(..., help=DATA_HELP),
    part: str = typer.Option("test", "--part", help="train | validation | test | all (time-ordered split)."),
    columns: Optional[str] = typer.Option(None, "--columns", "-c", help="Column preset; default: detect."),
    bars: Optional[str] = typer.Option(None, "--bars", help="DATA is a bar file of this kind."),
    bar_size: Optional[str] = typer.Option(None, "--bar-threshold", help="Size of the file's bars."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
) -> None:
    """Score MODEL_DIR on DATA with the numpy reference: memory on, memory off and EWMA baseline."""
    from rich.console import Console

    from liquidedge.ir import load_model
    from liquidedge.model.evaluate import evaluate_events

    try:
        result = evaluate_events(load_model(model_dir), load_data(data, columns, bars, bar_size), part)
    except LiquidEdgeError as exc:
        _fail(exc)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    Console().print(_metrics_table(f"{model_dir} on the {part} part",
                                   {k: v for k, v in result.items() if isinstance(v, dict)}))


def info_cmd(
    model_dir: Path = typer.Argument(..., help="A model directory."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Architecture, thresholds, data spec and training results of MODEL_DIR."""
    from rich.console import Console
    from rich.pretty import Pretty

    from liquidedge.ir import load_model
    from liquidedge.model.summary import describe_model

    try:
        summary = describe_model(load_model(model_dir))
    except LiquidEdgeError as exc:
        _fail(exc)
    if as_json:
        typer.echo(json.dumps(summary, indent=2, default=str))
        return
    Console().print(Pretty(summary))


def register(app: typer.Typer) -> None:
    app.command("train")(train_cmd)
    app.command("eval")(eval_cmd)
    app.command("info")(info_cmd)
