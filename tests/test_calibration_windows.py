"""Calibration windows: drawn from the training span, stratified by volatility, seeded; readers."""

import numpy as np
import pytest

from liquidedge import reference
from liquidedge.calibration.readers import litert_calibration_data, ort_reader
from liquidedge.calibration.windows import (CalibrationSet, representative_windows, stream_windows,
                                            train_and_held_out, volatility_strata)
from liquidedge.errors import ConfigError, InputShapeError
from liquidedge.ir import random_model, random_model_for


@pytest.fixture(scope="module")
def emini(emini_events):
    from liquidedge.data import DataSpec, build_dataset

    spec = DataSpec(steps=16)
    ds = build_dataset(emini_events, spec)
    train, held = train_and_held_out(ds)
    model = random_model_for(train, data_spec=spec.to_dict())
    return model, train, held


def test_draw_is_seeded_stratified_and_from_the_training_span(emini):
    model, train, held = emini
    a = representative_windows(model, train, 64, seed=3)
    b = representative_windows(model, train, 64, seed=3)
    c = representative_windows(model, train, 64, seed=4)
    np.testing.assert_array_equal(a.x, b.x)
    assert not np.array_equal(a.x, c.x)
    assert len(a) == 64 and a.info["per_stratum"] == [16, 16, 16, 16]
    assert a.info["span_ns"][1] < held.end_ns.min()            # nothing from the held-out part
    full = stream_windows(model, train).inputs
    rows = {full.x[i].tobytes() for i in range(len(full))}
    assert all(a.x[i].tobytes() in rows for i in range(len(a)))  # exactly training windows, as inputs
    # strata are volatility quantile bins: each holds about a quarter of the windows
    counts = np.bincount(volatility_strata(train, 4), minlength=4)
    assert counts.min() >= 0.2 * len(train)


def test_inputs_are_what_the_reference_feeds_the_perception(emini):
    model, train, _ = emini
    sw = stream_windows(model, train.take(np.arange(40)))
    fb = np.zeros((40, model.feedback))
    fb[1:] = sw.stream["prediction"][:-1]
    x, dt, mask = reference.model_inputs(model, train.x[:40], train.dt_s[:40], train.mask[:40], fb)
    np.testing.assert_allclose(sw.inputs.x, x, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(sw.inputs.dt, dt, rtol=1e-6)
    zeros = stream_windows(model, train.take(np.arange(40)), feedback="zeros").inputs
    assert np.all(zeros.x[..., -model.feedback:] == 0)
    assert np.any(sw.inputs.x[1:, :, -model.feedback:] != 0)


def test_bad_requests_are_refused(emini):
    model, train, _ = emini
    with pytest.raises(ConfigError):
        representative_windows(model, train, 0)
    with pytest.raises(ConfigError):
        stream_windows(model, train, feedback="previous")
    other = random_model(n_features=train.x.shape[2] + 1)
    with pytest.raises(InputShapeError, match="features"):
        representative_windows(other, train, 8)
    x = np.zeros((2, 4, 3))
    x[0, 1, 1] = np.nan
    with pytest.raises(InputShapeError):
        CalibrationSet(x, np.ones((2, 4)), np.ones((2, 4)))


def test_both_readers_serve_the_same_windows(emini):
    model, train, _ = emini
    calib = representative_windows(model, train, 20, seed=0)
    reader = ort_reader(calib, batch_size=8)
    for _ in range(2):                                         # rewindable
        feeds = []
        while (feed := reader.get_next()) is not None:
            feeds.append(feed)
        assert [f["x"].shape[0] for f in feeds] == [8, 8, 4]
        np.testing.assert_array_equal(np.concatenate([f["x"] for f in feeds]), calib.x)
        reader.rewind()
    data = litert_calibration_data(calib, {"b1": 1, "b32": 32})
    assert len(data["b1"]) == 20 and data["b1"][0]["x"].shape == (1, 16, model.perception.n_inputs)
    assert len(data["b32"]) == 1 and data["b32"][0]["dt"].shape == (32, 16)   # cycled to fill b32
    np.testing.assert_array_equal(data["b32"][0]["x"][20:], calib.x[:12])
