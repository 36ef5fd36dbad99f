"""ONNX Runtime runner: refuses bad input before the runtime, refuses tampered artefacts, no torch."""
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from liquidedge.errors import ConfigError, InputShapeError, ModelFileError
from liquidedge.exporters.onnx import export_onnx
from liquidedge.ir import random_model
from liquidedge.targets.base import ArtefactManifest, load_runner, manifest_path, read_manifest
from liquidedge.targets.onnxruntime import OnnxRuntimeRunner

T = 8


@pytest.fixture(scope="module")
def artefact(tmp_path_factory):
    model = random_model(seed=4)
    return model, export_onnx(model.perception, tmp_path_factory.mktemp("ort") / "p.onnx", T, model.content_hash())


def good(n_inputs, batch=2):
    rng = np.random.default_rng(0)
    return (rng.normal(size=(batch, T, n_inputs)).astype(np.float32), np.ones((batch, T), np.float32),
            np.ones((batch, T), np.float32))


class CountingSession:
    """Stands in for the ORT session only to prove it is never reached with bad input."""

    def __init__(self):
        self.calls = 0

    def run(self, *args, **kwargs):
        self.calls += 1
        raise AssertionError("the runtime was called with input that should have been refused")


@pytest.mark.parametrize("bad", ["steps", "features", "rank", "nan", "inf_dt", "dt0", "mask", "dtype", "dt_shape"])
def test_bad_input_is_refused_before_the_runtime(artefact, bad):
    model, path = artefact
    runner = load_runner(path)
    runner._session = CountingSession()
    x, dt, mask = good(model.perception.n_inputs)
    if bad == "steps":
        x, dt, mask = x[:, 1:], dt[:, 1:], mask[:, 1:]
    elif bad == "features":
        x = x[..., 1:]
    elif bad == "rank":
        x = x[0]
    elif bad == "nan":
        x[1, 3, 2] = np.nan
    elif bad == "inf_dt":
        dt[0, 0] = np.inf
    elif bad == "dt0":
        dt[0, 5] = 0.0
    elif bad == "mask":
        mask[0, 0] = 0.5
    elif bad == "dtype":
        x = x.astype(str)
    else:
        dt = dt[:, :-1]
    with pytest.raises(InputShapeError):
        runner.encode(x, dt, mask)
    assert runner._session.calls == 0


def test_tampered_or_truncated_artefact_is_refused(artefact, tmp_path):
    model, path = artefact
    data = path.read_bytes()
    copy = tmp_path / "p.onnx"
    copy.write_bytes(data[: len(data) // 2])
    manifest_path(copy).write_text(manifest_path(path).read_text())
    with pytest.raises(ModelFileError, match="sha256"):
        load_runner(copy)
    # a manifest re-signed for the truncated bytes: the runtime cannot load it -> still our error
    m = read_manifest(path)
    with pytest.raises(ModelFileError, match="cannot load"):
        OnnxRuntimeRunner(copy, m)


def test_manifest_for_another_model_is_refused(artefact, tmp_path):
    model, path = artefact
    d = json.loads(manifest_path(path).read_text())
    d["model_hash"] = "0" * 64
    with pytest.raises(ModelFileError, match="exported from model"):
        OnnxRuntimeRunner(path, ArtefactManifest(**d))
    d = json.loads(manifest_path(path).read_text())
    d["steps"] = T + 1
    with pytest.raises(ModelFileError, match="manifest promises"):
        OnnxRuntimeRunner(path, ArtefactManifest(**d))
    d = json.loads(manifest_path(path).read_text())
    d["target"] = "litert"
    with pytest.raises(ConfigError):
        OnnxRuntimeRunner(path, ArtefactManifest(**d))
    with pytest.raises(ConfigError):
        load_runner(path, threads=0)
    with pytest.raises(ConfigError, match="unknown options"):
        load_runner(path, colour="blue")


def test_describe_and_threads(artefact):
    model, path = artefact
    runner = load_runner(path, threads=2)
    d = runner.describe()
    assert d["target"] == "onnxruntime" and d["threads"] == 2 and d["steps"] == T
    assert d["model_hash"] == model.content_hash() and "CPUExecutionProvider" in d["providers"]


BLOCK_TORCH = textwrap.dedent("""
    import sys, importlib.abc
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError("torch is blocked in this test")
    sys.meta_path.insert(0, Block())
""")


def test_runner_works_with_torch_blocked(artefact):
    model, path = artefact
    x, dt, mask = good(model.perception.n_inputs)
    np.save(path.parent / "x.npy", x)
    code = BLOCK_TORCH + textwrap.dedent(f"""
        import numpy as np
        from liquidedge.targets.base import load_runner
        x = np.load({str(path.parent / 'x.npy')!r})
        e = load_runner({str(path)!r}).encode(x, np.ones(x.shape[:2]), np.ones(x.shape[:2]))
        assert "torch" not in sys.modules
        print(e.shape)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"(2, {model.perception.embedding_dim})"
