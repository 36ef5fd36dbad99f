"""LiteRT exporter: the converted graph equals the numpy reference; signatures cover any batch.

Conversions take seconds each (litert-torch), so each graph is converted once per module and
the int8 forms are made from that flatbuffer.
"""
from functools import partial

import numpy as np
import pytest

from liquidedge import reference as ref
from liquidedge.calibration.windows import CalibrationSet
from liquidedge.errors import ConfigError, InputShapeError
from liquidedge.exporters.tflite import export_tflite
from liquidedge.ir import random_model
from liquidedge.targets.base import load_runner, read_manifest

from helpers import random_windows

T = 10

windows = partial(random_windows, steps=T, dt_hi=3.0)


@pytest.fixture(scope="module")
def fused(tmp_path_factory):
    model = random_model(unfolds=2, readout=8, seed=5)
    path = export_tflite(model.perception, tmp_path_factory.mktemp("tfl") / "p.tflite", T,
                         model.content_hash(), batch_sizes=(1, 4))
    return model, path


def test_fp32_matches_reference_for_any_batch(fused):
    model, path = fused
    g = model.perception
    runner = load_runner(path, threads=1)
    assert runner.describe()["batch_signatures"] == [1, 4]
    for batch in (1, 4, 7, 9):        # 7 = b4 + 3 x b1, 9 = 2 x b4 + b1
        x, dt, mask = windows(g.n_inputs, batch, seed=batch)
        got = runner.encode(x, dt, mask)
        assert got.shape == (batch, 8) and got.dtype == np.float32
        assert np.abs(got - ref.perception_forward(g, x, dt, mask)).max() <= 1e-4


def test_rk4_solver_matches_reference(tmp_path):
    # (euler shares the fused solver's scaled-state form, checked through the ONNX graph)
    model = random_model(solver="rk4", seed=6)
    g = model.perception
    path = export_tflite(g, tmp_path / "p.tflite", T, model.content_hash(), batch_sizes=(1,))
    x, dt, mask = windows(g.n_inputs, 3, dt_hi=0.4)
    got = load_runner(path).encode(x, dt, mask)
    assert np.abs(got - ref.perception_forward(g, x, dt, mask)).max() <= 1e-4


def test_manifest_is_the_export_report(fused):
    model, path = fused
    m = read_manifest(path)
    assert (m.target, m.precision, m.steps, m.n_inputs, m.embedding_dim) == ("litert", "fp32", T, 8, 8)
    assert m.model_hash == model.content_hash()
    d = m.details
    assert d["signatures"] == {"b1": 1, "b4": 4}
    assert d["float_ops"]["DIV"] == 2 * T and not d["integer_ops"]


@pytest.mark.parametrize("int8,scope", [("static", "recurrent"), ("dynamic", "recurrent"), ("weight", "recurrent")])
def test_int8_forms_report_their_operators_and_stay_close(tmp_path, fused, int8, scope):
    model, _ = fused
    g = model.perception
    x, dt, mask = windows(g.n_inputs, 32, seed=11)
    calib = CalibrationSet(x, dt, mask, {"source": "test"})
    path = export_tflite(g, tmp_path / "q.tflite", T, model.content_hash(), int8=int8, calib=calib,
                         scope=scope, batch_sizes=(1, 4))
    m = read_manifest(path)
    assert m.precision == f"int8-{int8}"
    d = m.details
    assert d["float_ops"]["DIV"] == 2 * T               # the fused solver's division stays float
    if int8 == "weight":
        assert not d["integer_ops"] and d["conversion_ops"]["DEQUANTIZE"] == 2   # w_rec and w_out
    else:
        # one recurrent product per step and unfold (the first, on the constant h0, is folded
        # away by the converter) + the readout; the input projection stays float
        assert d["integer_ops"]["FULLY_CONNECTED"] == 2 * T
        assert d["float_ops"]["FULLY_CONNECTED"] == 1
        assert all(v == "float32" for v in d["input_dtypes"].values())
    xt, dtt, mt = windows(g.n_inputs, 5, seed=12)
    got = load_runner(path).encode(xt, dtt, mt)
    expected = ref.perception_forward(g, xt, dtt, mt)
    cos = np.sum(got * expected, 1) / np.linalg.norm(got, axis=1) / np.linalg.norm(expected, axis=1)
    assert cos.min() >= 0.99


def test_bad_options_are_refused(tmp_path, fused):
    model, _ = fused
    g, h = model.perception, model.content_hash()
    with pytest.raises(ConfigError, match="calibration windows"):
        export_tflite(g, tmp_path / "a.tflite", T, h, int8="static")
    with pytest.raises(ConfigError, match="min/max"):
        export_tflite(g, tmp_path / "a.tflite", T, h, int8="dynamic", method="entropy")
    with pytest.raises(ConfigError, match="include 1"):
        export_tflite(g, tmp_path / "a.tflite", T, h, batch_sizes=(4, 8))
    x, dt, mask = windows(g.n_inputs, 4)
    short = CalibrationSet(x[:, :-1], dt[:, :-1], mask[:, :-1])
    with pytest.raises(InputShapeError, match="calibration windows"):
        export_tflite(g, tmp_path / "a.tflite", T, h, int8="static", calib=short)
    assert not (tmp_path / "a.tflite").exists()
