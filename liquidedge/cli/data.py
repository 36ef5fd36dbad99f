"""`liquidedge data ...`: look at an event file and turn it into bars (thin: the library does the work)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from liquidedge.cli.common import bar_threshold
from liquidedge.cli.common import fail as _fail

from liquidedge.errors import LiquidEdgeError

data_app = typer.Typer(no_args_is_help=True, add_completion=False,
                       help="Event data: inspect files, build bars.")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")


def _columns(preset: Optional[str]):
    return preset  # None -> auto-detect names; else a preset name (checked by the library)




@data_app.command("inspect")
def inspect_cmd(
    file: Path = typer.Argument(..., help="CSV/TSV or Parquet event file."),
    columns: Optional[str] = typer.Option(None, "--columns", "-c",
                                          help="Column preset (default, mlfinpy, sensor); default: detect."),
    gap: str = typer.Option("60s", "--gap", help="Report gaps longer than this (e.g. 60s, 5min)."),
) -> None:
    """Rows, time span, gaps, duplicate stamps and every validation finding of FILE."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from liquidedge.data.inspect import inspect_file
    from liquidedge.data.timeutil import NS_PER_S, format_ns, format_seconds, parse_duration_ns

    try:
        gap_s = parse_duration_ns(gap, what="--gap") / NS_PER_S
        rep = inspect_file(file, _columns(columns), gap_threshold_s=gap_s)
    except LiquidEdgeError as exc:
        _fail(exc)
    console = Console()
    table = Table(title=escape(rep.path), show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    c = rep.columns
    table.add_row("columns", f"time={c.timestamp} price={c.price} size={c.size} side={c.side}")
    table.add_row("rows", f"{rep.rows:,}")
    if rep.first_ns is not None:
        table.add_row("first", format_ns(rep.first_ns, rep.tz))
        table.add_row("last", format_ns(rep.last_ns, rep.tz))
        table.add_row("span", format_seconds(rep.span_s))
        table.add_row("time zone", rep.tz)
        after = "" if rep.largest_gap_after_ns is None else f" after {format_ns(rep.largest_gap_after_ns, rep.tz)}"
        table.add_row("largest gap", f"{format_seconds(rep.largest_gap_s)}{after}")
        table.add_row(f"gaps > {format_seconds(gap_s)}", f"{rep.gaps_over_threshold:,}")
        table.add_row("duplicate stamps", f"{rep.duplicate_stamps:,}")
        table.add_row("total size", f"{rep.total_size:,.6g}")
    table.add_row("findings", "[green]none[/]" if rep.ok else f"[red]{len(rep.findings)}[/]")
    console.print(table)
    if rep.findings:
        ft = Table(title="validation findings")
        for col in ("kind", "field", "first row", "rows", "message", "expected"):
            ft.add_column(col)
        for f in rep.findings:
            ft.add_row(*(escape(v) for v in (f.kind, str(f.field), str(f.row), f"{f.count:,}", f.message,
                                             f.expected or "")))
        console.print(ft)
        raise typer.Exit(code=1)


@data_app.command("bars")
def bars_cmd(
    file: Path = typer.Argument(..., help="CSV/TSV or Parquet event file."),
    kind: str = typer.Option("volume", "--kind", "-k", help="time, tick, volume or dollar."),
    threshold: str = typer.Option(..., "--threshold", "-t",
                                  help="Size per bar (volume), price*size (dollar), events (tick) "
                                       "or interval (time, e.g. 5min)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output .parquet (or .csv)."),
    columns: Optional[str] = typer.Option(None, "--columns", "-c", help="Column preset; default: detect."),
    policy: str = typer.Option("strict", "--policy", help="strict, or repair (re-sort, reported)."),
    min_dt: float = typer.Option(1e-3, "--min-dt", help="Clock resolution in seconds (dt floor)."),
    partial: str = typer.Option("keep", "--partial", help="keep or drop the unfinished last bar."),
) -> None:
    """Build bars from FILE and write them to OUT."""
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from liquidedge.data.bars import build_bars, write_bars
    from liquidedge.data.ticks import load_events

    console = Console(stderr=True)
    try:
        thr = bar_threshold(kind, threshold)
    except LiquidEdgeError as exc:
        _fail(exc)
    try:
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                      TimeElapsedColumn(), console=console, transient=True) as progress:
            task = progress.add_task("loading events", total=3)
            events = load_events(file, _columns(columns), policy=policy)
            progress.update(task, advance=1, description=f"building {kind} bars")
            bars = build_bars(events, kind, thr, min_dt_s=min_dt, partial=partial)
            progress.update(task, advance=1, description=f"writing {out}")
            write_bars(bars, out)
            progress.update(task, advance=1)
    except LiquidEdgeError as exc:
        _fail(exc)
    if events.repair is not None:
        console.print(f"[yellow]repaired:[/] {escape(str(events.repair))}", soft_wrap=True)
    console.print(f"{len(events):,} events -> {len(bars):,} {kind} bars -> {escape(str(out))} "
                  f"({bars.n_floored} dt floored at {bars.min_dt_s:g}s"
                  f"{', last bar partial' if bars.partial_last else ''})", soft_wrap=True)
