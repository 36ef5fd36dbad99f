"""The real device bundles: Raspberry Pi 5 (LiteRT int8) and Jetson (ONNX Runtime fp32), each
installed into a fresh virtual environment from its own requirements.txt (no torch there), then
verified and run on real E-mini ticks and compared with the numpy reference and with the same
artefact run here."""
import os
import subprocess
import sys
import venv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from liquidedge import reference as ref
from liquidedge.data import DataSpec, build_dataset
from liquidedge.deploy.bundle import build_bundle
from liquidedge.deploy.device import run_bundle
from liquidedge.deploy.manifest import read_manifest, sha256_bytes
from liquidedge.deploy.verify import extract_bundle, verify_bundle
from liquidedge.errors import DeployError
from liquidedge.ir import load_model, random_model_for, save_model

SPEC = DataSpec()
N_EVENTS = 40_000


@pytest.fixture(scope="module")
def events(emini_events):
    return emini_events.slice(0, N_EVENTS)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, events):
    m = random_model_for(build_dataset(events, SPEC), data_spec=SPEC.to_dict(), feedback=2, hidden=24, seed=11)
    return save_model(m, tmp_path_factory.mktemp("devices") / "model")


@dataclass
class Built:
    archive: Path
    bundle_dir: Path
    manifest: dict
    manifest_sha256: str

    @property
    def selftest_error(self) -> float:
        return self.manifest["selftest"]["workstation_error"]

    @property
    def selftest_tolerance(self) -> float:
        return self.manifest["selftest"]["tolerance"]


@pytest.fixture(scope="module")
def bundles(tmp_path_factory, model_dir):
    """Both device bundles, built the default way: each exports the artefact its profile prefers.

    The Pi bundle is built by the CLI in a child process: the LiteRT converter sets this
    process's multiprocessing start method, which Lava (imported by other tests) refuses."""
    d = tmp_path_factory.mktemp("bundles")
    proc = subprocess.run([sys.executable, "-m", "liquidedge.cli.app", "deploy", "build", str(model_dir),
                           "--device", "rpi5", "-o", str(d / "rpi5.tar.gz")],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    build_bundle(model_dir, "jetson-orin-nano", d / "jetson-orin-nano.tar.gz")
    out = {}
    for device in ("rpi5", "jetson-orin-nano"):
        archive = d / f"{device}.tar.gz"
        bundle_dir = extract_bundle(archive, d / device)
        raw = (bundle_dir / "manifest.json").read_bytes()
        out[device] = Built(archive, bundle_dir, read_manifest(bundle_dir), sha256_bytes(raw))
    assert out["rpi5"].manifest_sha256 in proc.stdout.replace("\n", "")
    return out


@pytest.fixture(scope="module")
def ticks_csv(emini_head):
    """The first N_EVENTS rows of the real E-mini file, exactly as the file has them."""
    return emini_head(N_EVENTS)


@pytest.fixture(scope="module")
def device_venv(tmp_path_factory, bundles):
    """A fresh venv (no system site-packages) with only what the two bundles' requirements list."""
    root = tmp_path_factory.mktemp("venv") / "device"
    venv.EnvBuilder(with_pip=True, system_site_packages=False, clear=True).create(root)
    py = root / "bin" / "python"
    for b in bundles.values():
        proc = subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                               "-r", str(b.bundle_dir / "requirements.txt")],
                              capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stderr[-3000:]
    return py


def test_each_profile_gets_its_artefact(bundles):
    rpi, jet = bundles["rpi5"], bundles["jetson-orin-nano"]
    p = rpi.manifest["perception"]
    assert (p["target"], p["precision"]) == ("litert", "int8-static")
    assert p["artefact"].endswith(".tflite") and p["runner_options"] == {"threads": 4}
    assert "ai-edge-litert" in rpi.manifest["requirements"]["packages"]
    assert "onnxruntime" not in rpi.manifest["requirements"]["packages"]
    p = jet.manifest["perception"]
    assert (p["target"], p["precision"]) == ("onnxruntime", "fp32") and p["artefact"].endswith(".onnx")
    assert p["runner_options"]["providers"][-1] == "CPUExecutionProvider"
    assert p["runner_options"]["providers"][:2] == ["TensorrtExecutionProvider", "CUDAExecutionProvider"]
    assert "onnxruntime" in jet.manifest["requirements"]["packages"]
    assert jet.selftest_error < 1e-5 < rpi.selftest_error < rpi.selftest_tolerance


def test_a_tampered_artefact_is_refused(bundles, tmp_path):
    res = bundles["rpi5"]
    bundle_dir = extract_bundle(res.archive, tmp_path)
    art = bundle_dir / res.manifest["perception"]["artefact"]
    data = bytearray(art.read_bytes())
    data[-100] ^= 0xFF
    art.write_bytes(bytes(data))
    with pytest.raises(DeployError, match="tflite: sha256 mismatch"):
        verify_bundle(bundle_dir)


def test_fresh_venv_has_no_torch(device_venv):
    proc = subprocess.run([str(device_venv), "-c", "import torch"], capture_output=True, text=True)
    assert proc.returncode != 0 and "No module named 'torch'" in proc.stderr
    proc = subprocess.run([str(device_venv), "-c", "import pandas"], capture_output=True, text=True)
    assert proc.returncode != 0


@pytest.mark.parametrize("device", ["rpi5", "jetson-orin-nano"])
def test_bundle_verifies_and_runs_in_the_fresh_venv(device, bundles, device_venv, ticks_csv, events,
                                                   model_dir, tmp_path):
    res = bundles[device]
    bundle_dir = res.bundle_dir
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    proc = subprocess.run([str(device_venv), "run.py", "verify", "--manifest-sha256", res.manifest_sha256],
                          cwd=bundle_dir, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "self-test" in proc.stdout and "OK" in proc.stdout
    out = tmp_path / "results.npz"
    proc = subprocess.run([str(device_venv), str(bundle_dir / "run.py"), "run", "--data", str(ticks_csv),
                           "--columns", "mlfinpy", "--out", str(out)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr
    got = np.load(out)
    data = build_dataset(events, SPEC)
    assert len(data) > 50
    np.testing.assert_array_equal(got["end_ns"], data.end_ns)
    # the same artefact, run here through the same edge loop: the device venv reproduces it
    here = run_bundle(bundle_dir, ticks_csv, columns="mlfinpy")
    np.testing.assert_allclose(got["embedding"], np.array([r.embedding for r in here]), atol=1e-6)
    # and the numpy reference (int8: within the self-test tolerance; fp32: to float precision)
    want = ref.run_stream(load_model(model_dir), data.x, data.dt_s, data.mask, memory_on=False)
    tol = 1e-4 if res.manifest["perception"]["precision"] == "fp32" else 2 * res.selftest_tolerance
    np.testing.assert_allclose(got["embedding"], want["embedding"], atol=tol)
    assert read_manifest(bundle_dir)["name"] == bundle_dir.name
