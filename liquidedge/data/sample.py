"""The shipped sample: 500,000 real E-mini S&P 500 trades (2013-09-01..03) from the mlfinpy package.

The file is large, so it is not vendored; it comes with ``mlfinpy``, which is located without
being imported (its dependency pins clash with ours, so it is installed with ``--no-deps``).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from liquidedge.data.ticks import ColumnMap, Events, load_events
from liquidedge.errors import LiquidEdgeError

_RELATIVE = Path("dataset") / "data" / "tick_data.csv"


class SampleDataMissingError(LiquidEdgeError, FileNotFoundError):
    """The sample tick file is not installed."""


def default_ticks_path() -> Path:
    """Path of mlfinpy's ``tick_data.csv`` (E-mini trades: DateTime, Price, Volume)."""
    spec = importlib.util.find_spec("mlfinpy")
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = Path(root) / _RELATIVE
        if path.is_file():
            return path
    raise SampleDataMissingError(
        "the E-mini sample file (mlfinpy/dataset/data/tick_data.csv) is not installed; "
        "install it with: pip install --no-deps mlfinpy")


def load_default_ticks(policy: str = "strict") -> Events:
    """The sample file as ``Events`` (naive stamps read as CME exchange time, America/Chicago)."""
    return load_events(default_ticks_path(), ColumnMap.mlfinpy(), policy=policy)
