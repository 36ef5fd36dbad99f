"""Event data for liquidedge: load and validate ticks, build bars, cut windows, features, targets.

numpy only (pandas/pyarrow are imported inside the file loaders), so the edge side can use it.
"""
from liquidedge.data.bar_files import BAR_PRESETS, BarColumnMap, load_bar_file
from liquidedge.data.bars import BAR_KINDS, Bars, StreamingBarBuilder, build_bars, read_bars, write_bars
from liquidedge.data.features import FEATURE_NAMES, Normaliser, compute_features
from liquidedge.data.pipeline import DataSpec, Dataset, build_dataset, split
from liquidedge.data.sample import (DOLLAR_BAR_SPEC, SampleDataMissingError, default_bars_path, default_ticks_path,
                                    load_default_bars, load_default_ticks, spec_for_bars)
from liquidedge.data.sensor import (SENSOR_FEATURE_NAMES, SensorSampleMissingError, SensorSpec,
                                    build_sensor_dataset, clock_tick_s, load_ppg_sample,
                                    persistence_forecast, ppg_sample_path, reading_dt,
                                    simulate_dropouts, with_constant_dt)
from liquidedge.data.synthetic import DEFAULT_REGIMES, Regime, SyntheticMarket, generate_market
from liquidedge.data.targets import bar_log_returns, ewma_logvol_forecast, future_targets
from liquidedge.data.ticks import (ColumnMap, Events, RepairReport, load_events, save_events,
                                   validate_events)
from liquidedge.data.timeutil import parse_duration_ns, parse_time_ns
from liquidedge.data.windows import StreamingWindower, WindowBatch, WindowSpec, make_windows

__all__ = [
    "BAR_PRESETS", "BarColumnMap", "load_bar_file",
    "BAR_KINDS", "Bars", "StreamingBarBuilder", "build_bars", "read_bars", "write_bars",
    "FEATURE_NAMES", "Normaliser", "compute_features",
    "DataSpec", "Dataset", "build_dataset", "split",
    "DOLLAR_BAR_SPEC", "SampleDataMissingError", "default_bars_path", "default_ticks_path",
    "load_default_bars", "load_default_ticks", "spec_for_bars",
    "SENSOR_FEATURE_NAMES", "SensorSampleMissingError", "SensorSpec", "build_sensor_dataset",
    "clock_tick_s", "load_ppg_sample", "persistence_forecast", "ppg_sample_path", "reading_dt",
    "simulate_dropouts", "with_constant_dt",
    "DEFAULT_REGIMES", "Regime", "SyntheticMarket", "generate_market",
    "bar_log_returns", "ewma_logvol_forecast", "future_targets",
    "ColumnMap", "Events", "RepairReport", "load_events", "save_events", "validate_events",
    "parse_duration_ns", "parse_time_ns",
    "StreamingWindower", "WindowBatch", "WindowSpec", "make_windows",
]
