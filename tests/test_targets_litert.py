"""LiteRT runner: input checks before the interpreter, tamper refusal, no torch, runtime fallback."""
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from liquidedge import reference as ref
from liquidedge.errors import InputShapeError, ModelFileError
from liquidedge.exporters.tflite import export_tflite
from liquidedge.ir import random_model
from liquidedge.targets.base import ArtefactManifest, load_runner, manifest_path
from liquidedge.targets.litert import LiteRTRunner

T = 6


@pytest.fixture(scope="module")
def artefact(tmp_path_factory):
    model = random_model(seed=8)
    path = export_tflite(model.perception, tmp_path_factory.mktemp("litert") / "p.tflite", T,
                         model.content_hash(), batch_sizes=(1, 3))
    return model, path


def good(n_inputs, batch=2):
    rng = np.random.default_rng(1)
    return (rng.normal(size=(batch, T, n_inputs)).astype(np.float32),
            rng.uniform(0.1, 2, (batch, T)).astype(np.float32), np.ones((batch, T), np.float32))


class CountingRunner:
    """Stands in for a signature runner only to prove it is never reached with bad input."""

    calls = 0

    def __call__(self, **feeds):
        CountingRunner.calls += 1
        raise AssertionError("the interpreter was called with input that should have been refused")


@pytest.mark.parametrize("bad", ["steps", "features", "nan", "dt_negative", "mask", "dtype"])
def test_bad_input_is_refused_before_the_interpreter(artefact, bad):
    model, path = artefact
    runner = load_runner(path)
    runner._runners = {b: (CountingRunner(),) + rest[1:] for b, rest in runner._runners.items()}
    x, dt, mask = good(model.perception.n_inputs)
    if bad == "steps":
        x, dt, mask = x[:, :-1], dt[:, :-1], mask[:, :-1]
    elif bad == "features":
        x = np.concatenate([x, x[..., :1]], axis=-1)
    elif bad == "nan":
        x[0, 0, 0] = np.nan
    elif bad == "dt_negative":
        dt[1, 2] = -1.0
    elif bad == "mask":
        mask[0, 1] = 2
    else:
        x = x.astype(object)
    with pytest.raises(InputShapeError):
        runner.encode(x, dt, mask)
    assert CountingRunner.calls == 0


def test_tampered_artefact_and_inconsistent_manifest_are_refused(artefact, tmp_path):
    model, path = artefact
    copy = tmp_path / "p.tflite"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    copy.write_bytes(bytes(data))
    manifest_path(copy).write_text(manifest_path(path).read_text())
    with pytest.raises(ModelFileError, match="sha256"):
        load_runner(copy)
    d = json.loads(manifest_path(path).read_text())
    d["details"]["signatures"] = {"b1": 1, "b8": 8}
    with pytest.raises(ModelFileError, match="b8"):
        LiteRTRunner(path, ArtefactManifest(**d))
    d = json.loads(manifest_path(path).read_text())
    d["n_inputs"] += 1
    with pytest.raises(ModelFileError, match="manifest promises"):
        LiteRTRunner(path, ArtefactManifest(**d))
    garbage = tmp_path / "garbage.tflite"
    garbage.write_bytes(b"not a flatbuffer" * 10)
    with pytest.raises(ModelFileError, match="cannot load"):
        LiteRTRunner(garbage, ArtefactManifest(**json.loads(manifest_path(path).read_text())))


BLOCK = textwrap.dedent("""
    import sys, importlib.abc
    BLOCKED = {blocked!r}
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if any(name == b or name.startswith(b + ".") for b in BLOCKED):
                raise ImportError(name + " is blocked in this test")
    sys.meta_path.insert(0, Block())
""")


def run_blocked(blocked, body, extra_path=None, timeout=120):
    code = BLOCK.format(blocked=tuple(blocked)) + textwrap.dedent(body)
    env = None
    if extra_path:
        import os
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(extra_path), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=env)


def test_runner_works_with_torch_blocked_and_matches_reference(artefact):
    model, path = artefact
    x, dt, mask = good(model.perception.n_inputs, batch=5)
    np.savez(path.parent / "w.npz", x=x, dt=dt, mask=mask)
    out = run_blocked(["torch"], f"""
        import numpy as np
        from liquidedge.targets.base import load_runner
        w = np.load({str(path.parent / 'w.npz')!r})
        runner = load_runner({str(path)!r}, threads=1)
        np.save({str(path.parent / 'e.npy')!r}, runner.encode(w["x"], w["dt"], w["mask"]))
        assert "torch" not in sys.modules
        print(runner.describe()["runtime"])
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "ai_edge_litert"
    got = np.load(path.parent / "e.npy")
    assert np.abs(got - ref.perception_forward(model.perception, x, dt, mask)).max() <= 1e-4


def test_falls_back_to_tflite_runtime(artefact, tmp_path):
    # a tflite_runtime package whose interpreter is LiteRT's own, with ai_edge_litert blocked
    # except through it: the runner must pick the fallback and say so
    pkg = tmp_path / "tflite_runtime"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "interpreter.py").write_text(textwrap.dedent("""
        import sys
        sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != "Block"]
        from ai_edge_litert.interpreter import Interpreter  # noqa: E402
    """))
    model, path = artefact
    out = run_blocked(["torch", "ai_edge_litert"], f"""
        import numpy as np
        from liquidedge.targets.base import load_runner
        runner = load_runner({str(path)!r})
        e = runner.encode(np.zeros((1, {T}, {model.perception.n_inputs})), np.ones((1, {T})))
        print(runner.describe()["runtime"], e.shape)
    """, extra_path=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == f"tflite_runtime (1, {model.perception.embedding_dim})"


def test_missing_runtime_is_a_clear_error(artefact):
    _, path = artefact
    out = run_blocked(["torch", "ai_edge_litert", "tflite_runtime"], f"""
        from liquidedge.errors import TargetUnavailableError
        from liquidedge.targets.base import load_runner
        try:
            load_runner({str(path)!r})
        except TargetUnavailableError as exc:
            print("refused:", exc)
    """)
    assert out.returncode == 0, out.stderr
    assert "refused: LiteRT is not installed" in out.stdout
