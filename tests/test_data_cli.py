"""`liquidedge data inspect|bars` through the real typer app."""
from __future__ import annotations

import numpy as np
from typer.testing import CliRunner

from liquidedge.cli.app import app
from liquidedge.data.bars import read_bars

runner = CliRunner()


def test_inspect_real_file(emini_path):
    res = runner.invoke(app, ["data", "inspect", str(emini_path), "--columns", "mlfinpy"],
                        env={"COLUMNS": "160"})
    assert res.exit_code == 0, res.output
    assert "500,000" in res.output and "6.5h" in res.output and "415,432" in res.output
    assert "2013-09-01T17:00:00.083" in res.output and "America/Chicago" in res.output
    assert "none" in res.output


def test_inspect_bad_file_lists_every_finding(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("timestamp,price,size\n2020-01-01 00:00:01,1,1\n2020-01-01 00:00:00,nan,-2\nxx,3,1\n")
    res = runner.invoke(app, ["data", "inspect", str(path)], env={"COLUMNS": "200"})
    assert res.exit_code == 1
    for needle in ("unparsable", "nonfinite", "negative", "unsorted"):
        assert needle in res.output


def test_bars_writes_parquet(emini_path, tmp_path):
    out = tmp_path / "bars.parquet"
    res = runner.invoke(app, ["data", "bars", str(emini_path), "--kind", "volume", "--threshold", "500",
                              "-o", str(out), "--columns", "mlfinpy"])
    assert res.exit_code == 0, res.output
    bars = read_bars(out)
    assert 3_000 <= len(bars) <= 6_000 and bars.volume.sum() == 1_844_058
    assert bars.kind == "volume" and bars.tz == "America/Chicago" and np.all(bars.dt_s > 0)
    res = runner.invoke(app, ["data", "bars", str(emini_path), "-k", "time", "-t", "15min",
                              "-o", str(tmp_path / "t.parquet"), "-c", "mlfinpy"])
    assert res.exit_code == 0, res.output
    assert len(read_bars(tmp_path / "t.parquet")) < 200


def test_bars_errors_are_messages_not_tracebacks(tmp_path):
    path = tmp_path / "unsorted.csv"
    path.write_text("timestamp,price,size\n2020-01-01 00:00:05,1,1\n2020-01-01 00:00:00,1,1\n")
    res = runner.invoke(app, ["data", "bars", str(path), "-t", "2", "-o", str(tmp_path / "o.parquet")])
    assert res.exit_code == 2 and "row 2" in res.output and "timestamp" in res.output
    res = runner.invoke(app, ["data", "bars", str(path), "-t", "2", "-o", str(tmp_path / "o.parquet"),
                              "--policy", "repair"])
    assert res.exit_code == 0 and "re-sorted" in res.output
    res = runner.invoke(app, ["data", "bars", str(path), "-t", "lots", "-o", str(tmp_path / "o.parquet")])
    assert res.exit_code == 2 and "threshold" in res.output
    res = runner.invoke(app, ["data", "inspect", str(tmp_path / "missing.csv")])
    assert res.exit_code == 2 and "not found" in res.output
    odd = tmp_path / "odd.csv"
    odd.write_text("a,b\n1,2\n")
    res = runner.invoke(app, ["data", "inspect", str(odd)])
    assert res.exit_code == 2 and "['a', 'b']" in res.output     # brackets are text, not rich markup
