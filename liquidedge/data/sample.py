"""The shipped samples, real E-mini S&P 500 data from the mlfinpy package:

* ``tick_data.csv``: 500,000 trades over 2013-09-01..03 (two days; the default everywhere);
* ``dollar_bar_sample.csv``: 1,000 dollar bars of $70M over 2015-01-01..29 (a month, 20
  sessions), a longer history for judging forecasts across many sessions.

The files are large, so they are not vendored; they come with ``mlfinpy``, which is located
without being imported (its dependency pins clash with ours, so it is installed with ``--no-deps``).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from liquidedge.data.bars import Bars
from liquidedge.data.ticks import ColumnMap, Events, load_events
from liquidedge.errors import LiquidEdgeError

_DATA = Path("dataset") / "data"
_RELATIVE = _DATA / "tick_data.csv"
DOLLAR_BAR_THRESHOLD = 70_000_000.0   # dollars per bar in dollar_bar_sample.csv
# Windows of the last 32 bars (about 2/3 of a session), one per bar, targets over the next 8 bars.
DOLLAR_BAR_SPEC = {"bar_kind": "dollar", "bar_threshold": DOLLAR_BAR_THRESHOLD, "span": None, "last": 32,
                   "steps": 32, "every": 1, "min_bars": 8, "horizon": 8, "ewma_halflife": 16.0}


class SampleDataMissingError(LiquidEdgeError, FileNotFoundError):
    """The sample tick file is not installed."""


def _mlfinpy_file(relative: Path) -> Path:
    spec = importlib.util.find_spec("mlfinpy")
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = Path(root) / relative
        if path.is_file():
            return path
    raise SampleDataMissingError(
        f"the E-mini sample file (mlfinpy/{relative.as_posix()}) is not installed; "
        "install it with: pip install --no-deps mlfinpy")


def default_ticks_path() -> Path:
    """Path of mlfinpy's ``tick_data.csv`` (E-mini trades: DateTime, Price, Volume)."""
    return _mlfinpy_file(_RELATIVE)


def default_bars_path() -> Path:
    """Path of mlfinpy's ``dollar_bar_sample.csv`` (E-mini $70M dollar bars, January 2015)."""
    return _mlfinpy_file(_DATA / "dollar_bar_sample.csv")


def load_default_ticks(policy: str = "strict") -> Events:
    """The sample file as ``Events`` (naive stamps read as CME exchange time, America/Chicago)."""
    return load_events(default_ticks_path(), ColumnMap.mlfinpy(), policy=policy)


def spec_for_bars(bars: Bars) -> dict:
    """The dollar-bar sample's windows and horizon for ``bars`` of any kind (a data spec for bar
    files whose training config names none)."""
    return {**DOLLAR_BAR_SPEC, "bar_kind": bars.kind, "bar_threshold": bars.threshold}


def load_default_bars() -> Bars:
    """The dollar-bar sample as ``Bars`` (stamps read as CME time, like the ticks); use it with
    ``DataSpec(**DOLLAR_BAR_SPEC)``."""
    from liquidedge.data.bar_files import load_bar_file
    return load_bar_file(default_bars_path(), "mlfinpy", kind="dollar", threshold=DOLLAR_BAR_THRESHOLD)
