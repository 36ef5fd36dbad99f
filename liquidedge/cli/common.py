"""What every command shares: how a LiquidEdgeError reaches the user, and bar-size parsing."""
from __future__ import annotations

import typer


def fail(exc: Exception) -> None:
    """Print the error's own message (it names file/row/field) without a traceback; exit 2."""
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True).print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


def bar_threshold(kind: str, text: str, option: str = "--threshold"):
    """A bar size as the bar code takes it: a duration (``5min``) for time bars, else a number."""
    from liquidedge.errors import ConfigError

    if kind == "time":
        return text
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"{option} {text!r}: expected a number for {kind} bars") from None
