"""ONNX exporter: the graph equals the numpy reference, describes itself, and refuses bad options."""
import json

from functools import partial

import numpy as np
import onnx
import pytest

from liquidedge import reference as ref
from liquidedge.calibration.windows import CalibrationSet
from liquidedge.errors import ConfigError, InputShapeError
from liquidedge.exporters.onnx import export_onnx
from liquidedge.exporters.onnx_graph import build_perception_model
from liquidedge.ir import random_model
from liquidedge.targets.base import load_runner, read_manifest

from helpers import random_windows

T = 12

windows = partial(random_windows, steps=T, dt_hi=2.0)


@pytest.mark.parametrize("solver,unfolds,readout,dt_hi", [
    ("fused", 1, None, 20.0), ("fused", 3, 8, 5.0), ("euler", 2, None, 0.4), ("rk4", 1, 6, 0.4)])
@pytest.mark.parametrize("form", ["unrolled", "scan"])
def test_fp32_graph_matches_reference(tmp_path, solver, unfolds, readout, dt_hi, form):
    model = random_model(solver=solver, unfolds=unfolds, readout=readout, seed=3)
    g = model.perception
    path = export_onnx(g, tmp_path / "p.onnx", T, model.content_hash(), form=form)
    runner = load_runner(path)
    for batch in (1, 5):
        x, dt, mask = windows(g.n_inputs, batch, seed=batch, dt_hi=dt_hi)
        expected = ref.perception_forward(g, x, dt, mask)
        got = runner.encode(x, dt, mask)
        assert got.dtype == np.float32 and got.shape == (batch, g.embedding_dim)
        assert np.abs(got - expected).max() <= 1e-4


def test_padding_steps_are_exact_no_ops(tmp_path):
    model = random_model(seed=1)
    g = model.perception
    runner = load_runner(export_onnx(g, tmp_path / "p.onnx", T, model.content_hash()))
    x, dt, _ = windows(g.n_inputs, 2)
    mask = np.ones((2, T), np.float32)
    mask[:, :5] = 0
    x_other = x.copy()
    x_other[:, :5] = 7.0          # anything on a padding step must not matter
    dt_other = dt.copy()
    dt_other[:, :5] = 0.0
    np.testing.assert_array_equal(runner.encode(x, dt, mask), runner.encode(x_other, dt_other, mask))


def test_file_checks_and_describes_itself(tmp_path):
    model = random_model(readout=4)
    g = model.perception
    path = export_onnx(g, tmp_path / "p.onnx", T, model.content_hash(),
                       feature_spec={"features": ["a", "b"], "feedback": 2})
    proto = onnx.load(path)
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version >= 17
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["liquidedge.model_hash"] == model.content_hash()
    assert meta["liquidedge.steps"] == str(T)
    assert json.loads(meta["liquidedge.feature_spec"])["features"] == ["a", "b"]
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in proto.graph.input}
    assert dims == {"x": ["B", T, g.n_inputs], "dt": ["B", T], "mask": ["B", T]}
    out = proto.graph.output[0]
    assert out.name == "embedding" and [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim] == ["B", 4]
    manifest = read_manifest(path)
    assert (manifest.target, manifest.precision, manifest.steps) == ("onnxruntime", "fp32", T)
    assert manifest.details["graph_form"] == "unrolled" and manifest.details["float_ops"]


def test_unrolled_form_keeps_six_operators_per_step():
    g = random_model().perception
    ops = build_perception_model(g, T).graph.node
    recurrent = [n for n in ops if n.op_type in ("Gemm", "Sigmoid", "Mul", "Add", "Div")]
    # 6 per step (Gemm, Sigmoid, Mul, Add, Add, Div) + a handful hoisted out of the recurrence
    assert 6 * T <= len(recurrent) <= 6 * T + 10


def calib_set(g, n=24, seed=0):
    x, dt, mask = windows(g.n_inputs, n, seed)
    return CalibrationSet(x, dt, mask, {"source": "test"})


@pytest.mark.parametrize("int8,scope,method", [("static", "recurrent", "minmax"), ("static", "matmul", "percentile"),
                                               ("static", "matmul", "entropy"), ("dynamic", "recurrent", "minmax")])
def test_int8_artefacts_report_what_runs_in_integer_and_in_float(tmp_path, int8, scope, method):
    model = random_model(seed=2)
    g = model.perception
    path = export_onnx(g, tmp_path / "q.onnx", T, model.content_hash(), int8=int8, calib=calib_set(g),
                       scope=scope, method=method)
    m = read_manifest(path)
    assert m.precision == f"int8-{int8}"
    d = m.details
    n_int = sum(d["integer_ops"].values())
    # one integer product per step (+ the hoisted input projection when it is in scope)
    assert n_int == (T if int8 == "static" and scope == "recurrent" else T + 1)
    assert d["float_ops"]["Div"] == T                      # the fused solver's division stays float
    if int8 == "static":
        assert d["quantization"]["calibration_method"] == method
        assert d["quantization"]["state_range"] == [-1.0, 1.0]   # the fused solver's bounded state
        assert d["quantization"]["calibration"]["n_windows"] == 24
    x, dt, mask = windows(g.n_inputs, 6, seed=9)
    got = load_runner(path).encode(x, dt, mask)
    expected = ref.perception_forward(g, x, dt, mask)
    cos = np.sum(got * expected, 1) / np.linalg.norm(got, axis=1) / np.linalg.norm(expected, axis=1)
    assert cos.min() >= 0.99


def test_bad_options_are_refused(tmp_path):
    model = random_model()
    g, h = model.perception, model.content_hash()
    with pytest.raises(ConfigError, match="calibration windows"):
        export_onnx(g, tmp_path / "a.onnx", T, h, int8="static")
    with pytest.raises(ConfigError, match="LiteRT only"):
        export_onnx(g, tmp_path / "a.onnx", T, h, int8="weight")
    with pytest.raises(ConfigError):
        export_onnx(g, tmp_path / "a.onnx", T, h, int8="int4")
    with pytest.raises(ConfigError):
        export_onnx(g, tmp_path / "a.onnx", T, h, form="loop")
    with pytest.raises(ConfigError):
        export_onnx(g, tmp_path / "a.onnx", T, h, int8="static", calib=calib_set(g), method="kl")
    wrong = CalibrationSet(*windows(g.n_inputs - 1, 4))
    with pytest.raises(InputShapeError, match="calibration windows"):
        export_onnx(g, tmp_path / "a.onnx", T, h, int8="static", calib=wrong)
    assert not (tmp_path / "a.onnx").exists()
