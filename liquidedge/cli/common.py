"""What every command shares: how a LiquidEdgeError reaches the user."""
from __future__ import annotations

import typer


def fail(exc: Exception) -> None:
    """Print the error's own message (it names file/row/field) without a traceback; exit 2."""
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True).print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)
