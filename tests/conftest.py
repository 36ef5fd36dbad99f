"""Shared fixtures: the real E-mini sample (loaded once per session) and a tiny CSV writer."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def emini_path():
    from liquidedge.data.sample import default_ticks_path
    return default_ticks_path()  # raises a clear error (pip install --no-deps mlfinpy) if missing


@pytest.fixture(scope="session")
def emini_events(emini_path):
    from liquidedge.data.sample import load_default_ticks
    return load_default_ticks()


@pytest.fixture(scope="session")
def emini_head(emini_path, tmp_path_factory):
    """``emini_head(n)``: a CSV of the real E-mini file's header and first n rows, byte for byte."""
    made = {}

    def head(n: int):
        if n not in made:
            out = tmp_path_factory.mktemp("ticks") / "ticks.csv"
            with open(emini_path) as src, open(out, "w") as dst:
                for i, line in enumerate(src):
                    if i > n:
                        break
                    dst.write(line)
            made[n] = out
        return made[n]
    return head


@pytest.fixture
def write_csv(tmp_path):
    """write_csv("a,b\\n1,2\\n", name="x.csv") -> path of a file with exactly that text."""
    def _write(text: str, name: str = "events.csv"):
        path = tmp_path / name
        path.write_text(text)
        return path
    return _write
