"""`liquidedge export`: thin over export_model; tampered or truncated model files are refused."""
import dataclasses
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from liquidedge.cli.app import app
from liquidedge.exporters.export import export_model
from liquidedge.ir import random_model, save_model
from liquidedge.targets.base import load_runner, read_manifest


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from liquidedge.data import DataSpec

    spec = DataSpec(steps=16)
    model = dataclasses.replace(random_model(n_features=len(spec.features)), data_spec=spec.to_dict(),
                                dt_unit=100.0)
    return save_model(model, tmp_path_factory.mktemp("cli") / "model")


def test_export_fp32_and_static_int8(model_dir, tmp_path):
    out = tmp_path / "p.onnx"
    r = CliRunner().invoke(app, ["export", str(model_dir), "--target", "onnx", "-o", str(out)])
    assert r.exit_code == 0, r.output
    m = read_manifest(out)
    assert (m.target, m.precision, m.steps) == ("onnxruntime", "fp32", 16)
    r = CliRunner().invoke(app, ["export", str(model_dir), "-t", "onnx", "--int8", "static", "--calib", "32",
                                 "--method", "percentile", "--seed", "5", "-o", str(tmp_path)])
    assert r.exit_code == 0, r.output
    path = tmp_path / "perception-int8-static-recurrent.onnx"
    q = read_manifest(path)
    assert q.precision == "int8-static"
    cal = q.details["quantization"]["calibration"]
    assert (cal["n_windows"], cal["seed"], q.details["quantization"]["calibration_method"]) == (32, 5, "percentile")
    # the CLI and the library export the same artefact
    same = export_model(model_dir, "onnx", tmp_path / "lib.onnx", int8="static", calib_windows=32,
                        method="percentile", seed=5)
    x = np.random.default_rng(0).normal(size=(3, 16, 8))
    np.testing.assert_array_equal(load_runner(path).encode(x, np.ones((3, 16))),
                                  load_runner(same).encode(x, np.ones((3, 16))))


@pytest.mark.parametrize("damage", ["tampered", "truncated"])
def test_damaged_model_directory_is_refused(model_dir, tmp_path, damage):
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    if damage == "tampered":
        header = json.loads((copy / "model.json").read_text())
        header["dt_unit"] = 1.0
        (copy / "model.json").write_text(json.dumps(header))
        expected = "content hash mismatch"
    else:
        w = copy / "weights.safetensors"
        w.write_bytes(w.read_bytes()[:-100])
        expected = "truncated"
    r = CliRunner().invoke(app, ["export", str(copy), "-t", "onnx", "-o", str(tmp_path / "p.onnx")])
    assert r.exit_code == 2
    assert expected in r.output and "Traceback" not in r.output
    assert not (tmp_path / "p.onnx").exists()


@pytest.mark.parametrize("args,message", [(["-t", "coreml"], "target"), (["-t", "onnx", "--int8", "weight"], "LiteRT only"),
                                          (["-t", "onnx", "--int8", "static", "--scope", "some"], "scope"),
                                          (["-t", "tflite", "--int8", "static", "--method", "entropy"], "min/max"),
                                          (["-t", "tflite", "--batches", "1,many"], "comma-separated")])
def test_bad_options_give_a_clear_error(model_dir, tmp_path, args, message):
    r = CliRunner().invoke(app, ["export", str(model_dir), *args, "-o", str(tmp_path / "p.bin")])
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output
