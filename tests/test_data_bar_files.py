"""OHLCV bar files: the mlfinpy dollar-bar sample loads as real E-mini bars; bad rows are named."""
from __future__ import annotations

import numpy as np
import pytest

from liquidedge.data import (DOLLAR_BAR_SPEC, BarColumnMap, DataSpec, build_dataset, load_bar_file,
                             load_default_bars, split)
from liquidedge.errors import ConfigError, DataValidationError

HEADER = "timestamp,open,high,low,close,volume,dollar\n"
ROWS = ["2024-01-02T09:30:00,100,101,99,100.5,10,1003",
        "2024-01-02T09:31:00,100.5,102,100,101,20,2020",
        "2024-01-02T09:33:30,101,101.5,100.5,101,5,506",
        "2024-01-02T09:33:30,101,101,100,100,5,502"]
MAP = BarColumnMap(dollar="dollar")


def _text(rows) -> str:
    return HEADER + "\n".join(rows) + "\n"


def test_good_file_first_row_marks_the_start_and_dt_is_close_to_close(write_csv):
    bars = load_bar_file(write_csv(_text(ROWS), "bars.csv"), MAP, kind="dollar", threshold=1000)
    assert len(bars) == 3                                     # the first row only marks a start
    np.testing.assert_allclose(bars.dt_s, [60.0, 150.0, 1e-3])  # duplicate close stamp floored
    assert bars.n_floored == 1
    np.testing.assert_allclose(bars.vwap, [101.0, 101.2, 100.4])
    np.testing.assert_allclose(bars.close, [101, 101, 100])
    assert list(bars.first_event) == [1, 2, 3] and bars.start_ns[0] < bars.end_ns[0]
    assert bars.kind == "dollar" and bars.threshold == 1000


def test_without_dollar_or_count_columns_vwap_is_the_typical_price(write_csv):
    bars = load_bar_file(write_csv(_text(ROWS), "bars.csv"), BarColumnMap(), kind="volume")
    np.testing.assert_allclose(bars.vwap[0], (102 + 100 + 101) / 3)
    assert (bars.count == 0).all()


@pytest.mark.parametrize("row,cell,field,needle", [
    (2, "2024-01-02T09:31:00,100.5,102,100,nan,20,2020", "close", "not a finite number"),
    (3, "2024-01-02T09:33:30,0,101.5,100.5,101,5,506", "open", "price must be > 0"),
    (2, "2024-01-02T09:31:00,100.5,100.8,100,101,20,2020", "high", "high is below"),
    (3, "2024-01-02T09:33:30,101,101.5,101.2,101,5,506", "low", "low is above"),
    (2, "2024-01-02T09:31:00,100.5,102,100,101,-1,2020", "volume", "must be >= 0"),
    (2, "2024-01-02T09:29:00,100.5,102,100,101,20,2020", "timestamp", "goes back in time"),
    (3, "yesterday-ish,101,101.5,100.5,101,5,506", "timestamp", "cannot parse timestamp"),
    (2, "2024-01-02T09:31:00,100.5,102,100,101,20,101000", "dollar", "outside [low, high]"),
])
def test_bad_rows_are_named_by_file_row_and_field(write_csv, row, cell, field, needle):
    rows = list(ROWS)
    rows[row - 1] = cell
    path = write_csv(_text(rows), "bad.csv")
    with pytest.raises(DataValidationError) as info:
        load_bar_file(path, MAP)
    err = info.value
    assert (err.row, err.field) == (row, field), str(err)
    assert needle in str(err) and "bad.csv" in str(err)


def test_missing_column_too_few_rows_and_unknown_preset(write_csv):
    with pytest.raises(DataValidationError, match="missing column 'cum_vol'"):
        load_bar_file(write_csv(_text(ROWS), "bars.csv"), BarColumnMap(volume="cum_vol"))
    with pytest.raises(DataValidationError, match="at least 2 bars"):
        load_bar_file(write_csv(_text(ROWS[:1]), "one.csv"), MAP)
    with pytest.raises(ConfigError, match="unknown bar column preset"):
        load_bar_file(write_csv(_text(ROWS), "bars.csv"), "nope")
    with pytest.raises(ConfigError, match="kind"):
        load_bar_file(write_csv(_text(ROWS), "bars.csv"), MAP, kind="renko")


def test_the_dollar_bar_sample_is_a_month_of_real_e_mini_bars():
    bars = load_default_bars()
    assert len(bars) == 999 and bars.tz == "America/Chicago" and bars.kind == "dollar"
    days = (bars.end_ns[-1] - bars.end_ns[0]) / 86400e9
    assert 27 < days < 29                                   # 2015-01-01 .. 2015-01-29
    assert (bars.dt_s > 0).all() and 60 < np.median(bars.dt_s) < 3600
    assert ((bars.vwap >= bars.low) & (bars.vwap <= bars.high)).all()
    ds = build_dataset(bars, DataSpec(**DOLLAR_BAR_SPEC))
    assert len(ds) == len(bars) - DOLLAR_BAR_SPEC["min_bars"] + 1
    train, val, test = split(ds, (0.6, 0.2, 0.2))
    assert train.end_ns[-1] < val.end_ns[0] < test.end_ns[0]
    assert test.target_valid.sum() > 150


def test_a_spec_for_other_bars_is_refused():
    bars = load_default_bars()
    with pytest.raises(ConfigError, match="dollar bars but the data spec asks for volume"):
        build_dataset(bars, DataSpec(**{**DOLLAR_BAR_SPEC, "bar_kind": "volume", "bar_threshold": 500.0}))
    with pytest.raises(ConfigError, match="threshold"):
        build_dataset(bars, DataSpec(**{**DOLLAR_BAR_SPEC, "bar_threshold": 1e6}))


def test_time_bar_files_take_a_duration_kept_in_seconds(write_csv):
    bars = load_bar_file(write_csv(_text(ROWS), "bars.csv"), MAP, kind="time", threshold="1min")
    assert bars.kind == "time" and bars.threshold == 60.0
    with pytest.raises(ConfigError, match="time bar interval"):
        load_bar_file(write_csv(_text(ROWS), "bars.csv"), MAP, kind="time", threshold="soon")
