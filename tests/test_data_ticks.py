"""Loading and validating events: every bad input names file, row and field; nothing is silently fixed."""
from __future__ import annotations

import numpy as np
import pytest

from liquidedge.data.ticks import ColumnMap, Events, load_events, save_events, validate_events
from liquidedge.errors import ConfigError, DataValidationError

GOOD = ("timestamp,price,size\n"
        "2024-01-02T09:30:00.000,100.0,1\n"
        "2024-01-02T09:30:00.000,100.5,2\n"
        "2024-01-02T09:30:01.250,100.25,3\n")


def _error(path, **kw) -> DataValidationError:
    with pytest.raises(DataValidationError) as info:
        load_events(path, **kw)
    return info.value


def test_good_file_loads_and_keeps_duplicate_stamps_in_order(write_csv):
    ev = load_events(write_csv(GOOD))
    assert len(ev) == 3
    assert ev.time_ns.dtype == np.int64 and ev.price.dtype == np.float64
    assert ev.time_ns[0] == ev.time_ns[1]                      # duplicate kept
    assert list(ev.price) == [100.0, 100.5, 100.25]            # in file order
    assert ev.time_ns[2] - ev.time_ns[0] == 1_250_000_000      # ns resolution
    assert ev.tz == "UTC" and ev.repair is None and ev.source.endswith("events.csv")
    assert np.datetime64("2024-01-02T09:30:00", "ns") == ev.times()[0]


@pytest.mark.parametrize("row,cell,field,needle", [
    (2, "2024-01-02T09:30:00,nan,1", "price", "non-finite price nan"),
    (3, "2024-01-02T09:30:02,101,inf", "size", "non-finite size inf"),
    (1, "2024-01-02T09:30:00,100,-5", "size", "negative size -5.0"),
    (2, "2024-01-02T09:30:00,0,1", "price", "non-positive price"),
    (3, "not-a-time,100,1", "timestamp", "cannot parse timestamp 'not-a-time'"),
    (2, "2024-01-02T09:30:00,abc,1", "price", "not a number: 'abc'"),
])
def test_each_bad_value_names_file_row_and_field(write_csv, row, cell, field, needle):
    lines = ["2024-01-02T09:30:00,100,1"] * 4
    lines[row - 1] = cell
    path = write_csv("timestamp,price,size\n" + "\n".join(lines) + "\n")
    err = _error(path)
    assert (err.file, err.row, err.field) == (str(path), row, field)
    text = str(err)
    assert str(path) in text and f"row {row}" in text and f"'{field}'" in text and needle in text
    if needle.startswith(("cannot parse", "not a number")):
        assert f"line {row + 1} of the file" in text      # the header is line 1


def test_bad_value_rejected_under_repair_too(write_csv):
    path = write_csv("timestamp,price,size\n2024-01-02T09:30:01,100,1\n2024-01-02T09:30:00,nan,1\n")
    assert _error(path, policy="repair").field == "price"


def test_unsorted_strict_names_the_row(write_csv):
    path = write_csv("timestamp,price,size\n"
                     "2024-01-02T09:30:00,100,1\n2024-01-02T09:30:05,101,1\n"
                     "2024-01-02T09:30:03,102,1\n2024-01-02T09:30:06,103,1\n")
    err = _error(path)
    assert (err.row, err.field) == (3, "timestamp")
    assert "earlier than the previous" in str(err) and "repair" in str(err)


def test_unsorted_repair_sorts_stably_and_reports(write_csv):
    path = write_csv("timestamp,price,size\n"
                     "2024-01-02T09:30:00,100,1\n2024-01-02T09:30:05,101,2\n"
                     "2024-01-02T09:30:03,102,3\n2024-01-02T09:30:03,103,4\n"
                     "2024-01-02T09:30:06,104,5\n")
    ev = load_events(path, policy="repair")
    assert list(ev.price) == [100, 102, 103, 101, 104]           # stable: 102 before 103
    assert list(ev.size) == [1, 3, 4, 2, 5]                      # nothing dropped, rows move together
    rep = ev.repair
    assert rep.n_events == 5 and rep.n_out_of_order == 1 and rep.n_moved == 3
    assert rep.first_rows == (2, 3, 4)
    assert "nothing dropped" in str(rep)


def test_empty_inputs(write_csv):
    assert "empty" in str(_error(write_csv("")))
    err = _error(write_csv("timestamp,price,size\n"))
    assert "empty" in str(err) and err.file is not None
    with pytest.raises(DataValidationError, match="empty"):
        validate_events(Events([], [], []))


def test_missing_column_and_missing_file(write_csv, tmp_path):
    path = write_csv("timestamp,price\n2024-01-02T09:30:00,100\n")
    err = _error(path, columns=ColumnMap("timestamp", "price", "size"))
    assert err.field == "size" and "missing column 'size'" in str(err)
    err = _error(write_csv("when,what\n1,2\n"))
    assert "cannot find timestamp/price" in str(err)
    assert "not found" in str(_error(tmp_path / "nope.csv"))
    with pytest.raises(ConfigError):
        load_events(write_csv("x", name="events.xlsx"))
    with pytest.raises(ConfigError):
        load_events(write_csv(GOOD), policy="guess")
    with pytest.raises(ConfigError):
        load_events(write_csv(GOOD), columns="no-such-preset")


def test_size_column_optional_and_side_parsed(write_csv):
    ev = load_events(write_csv("time,value\n2024-01-02T00:00:00,1.5\n2024-01-02T00:00:01,2.5\n"))
    assert list(ev.size) == [1.0, 1.0] and ev.side is None
    path = write_csv("timestamp,price,size,side\n2024-01-02T00:00:00,1,1,buy\n"
                     "2024-01-02T00:00:01,1,1,S\n2024-01-02T00:00:02,1,1,\n")
    assert list(load_events(path).side) == [1, -1, 0]
    path = write_csv("timestamp,price,size,side\n2024-01-02T00:00:00,1,1,buy\n2024-01-02T00:00:01,1,1,maybe\n")
    err = _error(path)
    assert (err.row, err.field) == (2, "side")


def test_epoch_integer_and_offset_timestamps(write_csv):
    ev = load_events(write_csv("timestamp,price,size\n1700000000000000000,1,1\n1700000000000000001,1,1\n"))
    assert list(ev.time_ns) == [1_700_000_000_000_000_000, 1_700_000_000_000_000_001]
    ms = ColumnMap(epoch_unit="ms")
    ev = load_events(write_csv("timestamp,price,size\n1700000000000,1,1\n"), columns=ms)
    assert ev.time_ns[0] == 1_700_000_000_000_000_000
    # same instant written in two zones -> same ns; a fixed zone is kept for display
    ev = load_events(write_csv("timestamp,price,size\n2024-01-02T10:00:00+01:00,1,1\n"
                               "2024-01-02T09:00:00+00:00,1,1\n"))
    assert ev.time_ns[0] == ev.time_ns[1] and ev.tz == "UTC"
    ev = load_events(write_csv("timestamp,price,size\n2024-01-02T10:00:00-05:00,1,1\n"))
    assert ev.time_ns[0] == np.datetime64("2024-01-02T15:00:00", "ns").astype(np.int64)
    assert ev.tz not in ("UTC", "")
    # naive stamps read in the map's zone, and the zone is kept
    chicago = ColumnMap(tz="America/Chicago")
    ev = load_events(write_csv("timestamp,price,size\n2024-07-01 12:00:00,1,1\n"), columns=chicago)
    assert ev.time_ns[0] == np.datetime64("2024-07-01T17:00:00", "ns").astype(np.int64)
    assert ev.tz == "America/Chicago"
    # other pandas forms parse too
    ev = load_events(write_csv("timestamp,price,size\n2024/01/02 10:00,1,1\nJan 3 2024 10:00,1,1\n"))
    assert ev.time_ns[1] - ev.time_ns[0] == 86_400 * 10**9


def test_mixing_naive_and_offset_stamps_is_not_guessed(write_csv):
    err = _error(write_csv("timestamp,price,size\n2024-01-02T10:00:00+01:00,1,1\n"
                           "2024-01-02T10:00:00,1,1\n"))
    assert (err.row, err.field) == (2, "timestamp")


def test_parquet_round_trip(tmp_path, write_csv):
    src = load_events(write_csv(GOOD), columns=ColumnMap(tz="Europe/Paris"))
    path = save_events(src, tmp_path / "events.parquet")
    back = load_events(path)
    assert np.array_equal(back.time_ns, src.time_ns)
    assert np.array_equal(back.price, src.price) and np.array_equal(back.size, src.size)
    assert back.tz == "Europe/Paris"


def test_parquet_bad_values_named(tmp_path):
    import pandas as pd
    path = tmp_path / "bad.parquet"
    pd.DataFrame({"timestamp": pd.date_range("2024-01-01", periods=3, freq="s"),
                  "price": [1.0, 2.0, np.inf], "size": [1.0, 1.0, 1.0]}).to_parquet(path)
    err = _error(path)
    assert (err.row, err.field, err.file) == (3, "price", str(path))


def test_validate_events_in_memory_and_stream_chunks():
    ev = Events([1, 2, 2, 5], [1.0, 1.0, 1.0, 1.0], [1, 0, 2, 1])
    assert validate_events(ev) is ev
    with pytest.raises(DataValidationError) as info:
        validate_events(Events([5, 6], [1.0, 1.0], [1, 1]), row_offset=100, after_ns=7)
    assert info.value.row == 101 and info.value.field == "time_ns"
    with pytest.raises(DataValidationError) as info:
        validate_events(Events([1, 2, 3], [1.0, 2.0, 3.0], [1, -1, 1]), row_offset=10)
    assert (info.value.row, info.value.field) == (12, "size")
    with pytest.raises(DataValidationError, match="equal length"):
        Events([1, 2], [1.0], [1.0, 1.0])
    with pytest.raises(DataValidationError, match="1-D"):
        Events([[1, 2]], [[1.0, 1.0]], [[1.0, 1.0]])


def test_data_package_imports_without_torch_or_pandas():
    """The edge (a Raspberry Pi) has numpy only: importing liquidedge.data must not pull more."""
    import subprocess
    import sys
    code = ("import sys, liquidedge.data; "
            "bad = [m for m in ('torch', 'pandas', 'pyarrow') if m in sys.modules]; "
            "assert not bad, bad")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
