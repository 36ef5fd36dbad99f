"""Root typer app. Each area of the toolchain registers its commands from its own module.

The CLI is thin by design: every command parses its arguments and calls a library function that
the tests also call.
"""
from __future__ import annotations

import importlib

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="liquidedge: Liquid-Titan models from irregular events to edge hardware.")

# Each module defines `register(app: typer.Typer) -> None`.
_COMMAND_MODULES = (
    "data",
    "serve",
    "simulate",
    "model",
    "deploy",
    "energy",
    "export",
    "demo",
)

for _name in _COMMAND_MODULES:
    importlib.import_module(f"liquidedge.cli.{_name}").register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
