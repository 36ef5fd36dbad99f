"""Device bundles: contents, hashes, reproducibility, verify, tampering, and running the bundle's
own entry point with torch (and pandas) unimportable, on the real E-mini ticks, against the
numpy reference - alone and talking gRPC to a real host."""
import gzip
import io
import json
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import numpy as np
import pytest

from liquidedge import reference as ref
from liquidedge.data import DataSpec, build_dataset
from liquidedge.deploy.bundle import build_bundle
from liquidedge.deploy.edge_modules import edge_closure
from liquidedge.deploy.manifest import read_manifest, sha256_path
from liquidedge.deploy.verify import extract_bundle, verify_bundle
from liquidedge.errors import ConfigError, DeployError
from liquidedge.ir import random_model, random_model_for, save_model

sys.path.insert(0, str(Path(__file__).parent))  # the harness test's simulated RAPL package

SPEC = DataSpec()          # the model's data spec: volume bars, last 4 h as 64 steps
N_EVENTS = 60_000          # a slice of the sample: ~200 windows

# Run a bundle's run.py with torch, pandas, typer, rich and matplotlib unimportable (a Pi has none
# of them) and record where every liquidedge module was loaded from.
BLOCKED_RUNNER = textwrap.dedent("""
    import importlib.abc, json, runpy, sys
    BLOCKED = {"torch", "pandas", "typer", "rich", "matplotlib", "scipy", "onnx"}
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{name} is blocked: the device does not have it")
            return None
    sys.meta_path.insert(0, Block())
    report, script = sys.argv[1], sys.argv[2]
    sys.argv = sys.argv[2:]
    try:
        runpy.run_path(script, run_name="__main__")
    finally:
        mods = {n: getattr(m, "__file__", None) for n, m in list(sys.modules.items())
                if n == "liquidedge" or n.startswith("liquidedge.")}
        json.dump({"liquidedge": mods, "torch": "torch" in sys.modules,
                   "pandas": "pandas" in sys.modules}, open(report, "w"))
""")


@pytest.fixture(scope="module")
def sample_events(emini_events):
    return emini_events.slice(0, N_EVENTS)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, sample_events):
    m = random_model_for(build_dataset(sample_events, SPEC), data_spec=SPEC.to_dict(), feedback=2, hidden=24, seed=5)
    return save_model(m, tmp_path_factory.mktemp("model") / "model")


@pytest.fixture(scope="module")
def numpy_bundle(tmp_path_factory, model_dir):
    out = tmp_path_factory.mktemp("bundle") / "rpi5.tar.gz"
    return build_bundle(model_dir, "rpi5", out, runtime="numpy")


@pytest.fixture
def unpacked(numpy_bundle, tmp_path):
    return extract_bundle(numpy_bundle.path, tmp_path)


@pytest.fixture(scope="module")
def ticks_csv(emini_head):
    """The first N_EVENTS rows of the real E-mini file, exactly as the file has them."""
    return emini_head(N_EVENTS)


def run_blocked(bundle_dir: Path, args: list[str], tmp_path: Path, timeout: int = 300):
    report = tmp_path / "imports.json"
    script = tmp_path / "blocked_runner.py"
    script.write_text(BLOCKED_RUNNER)
    proc = subprocess.run([sys.executable, str(script), str(report), str(bundle_dir / "run.py"), *args],
                          capture_output=True, text=True, timeout=timeout, cwd=tmp_path)
    return proc, json.loads(report.read_text()) if report.exists() else None


def replay(model, data, memory_on: bool):
    """The reference for one stream of windows: embeddings and predictions, window i fed i-1's."""
    r = ref.run_stream(model, data.x, data.dt_s, data.mask, memory_on=memory_on)
    return r["embedding"], r["prediction"]


# ----------------------------------------------------------------------------- contents

def test_bundle_holds_what_the_device_needs_and_nothing_more(numpy_bundle, unpacked, model_dir):
    m = read_manifest(unpacked)
    assert numpy_bundle.name == unpacked.name == m["name"]
    files = set(m["files"])
    assert {"run.py", "requirements.txt", "selftest.safetensors", "model/model.json",
            "model/weights.safetensors", "liquidedge/deploy/device.py", "liquidedge/bridge/edge.py",
            "liquidedge/data/windows.py", "liquidedge/reference.py"} <= files
    assert not any(f.startswith(("liquidedge/model/", "liquidedge/exporters/", "liquidedge/cli/"))
                   for f in files)
    for rel, digest in m["files"].items():
        assert sha256_path(unpacked / rel) == digest
    reqs = (unpacked / "requirements.txt").read_text()
    names = [line.split(">")[0].split("=")[0] for line in reqs.splitlines() if line and not line.startswith("#")]
    assert sorted(names) == ["grpcio", "numpy", "protobuf", "safetensors"]
    assert "torch" not in names
    assert m["window"]["steps"] == 64 and m["window"]["data_spec"] == SPEC.to_dict()
    assert len(m["normalisation"]["mean"]) == len(SPEC.features)
    assert m["perception"] == {"target": "numpy", "artefact": None, "precision": "fp32",
                               "runner_options": {}, "artefact_manifest": None}
    assert m["device"]["name"] == "rpi5" and m["device"]["sensor"] == "rpi-pmic"
    # no vendored module imports torch, even inside a function
    for rel in files:
        if rel.endswith(".py"):
            text = (unpacked / rel).read_text()
            assert "import torch" not in text and "from torch" not in text, rel


def test_archive_is_reproducible(model_dir, numpy_bundle, tmp_path):
    again = build_bundle(model_dir, "rpi5", tmp_path / "again.tar.gz", runtime="numpy")
    assert again.path.read_bytes() == numpy_bundle.path.read_bytes()
    assert again.manifest_sha256 == numpy_bundle.manifest_sha256


def test_edge_closure_refuses_a_module_that_imports_torch():
    with pytest.raises(DeployError, match="torch"):
        edge_closure(["liquidedge.model.ltc"])


def test_unknown_device_and_mismatched_options(model_dir, tmp_path):
    with pytest.raises(ConfigError, match="unknown device"):
        build_bundle(model_dir, "pi-zero", tmp_path / "b.tar.gz", runtime="numpy")
    with pytest.raises(ConfigError, match="not one"):
        build_bundle(model_dir, "rpi5", tmp_path / "b.tar.gz", runtime="lava")


# ----------------------------------------------------------------------------- verify + tampering

def test_verify_passes_on_archive_and_directory(numpy_bundle, unpacked):
    for target in (numpy_bundle.path, unpacked):
        rep = verify_bundle(target, expect_manifest_sha256=numpy_bundle.manifest_sha256)
        assert rep.files_checked == numpy_bundle.files
        assert rep.selftest_passed and rep.selftest_error < 1e-5
        assert all(p.ok for p in rep.packages)


@pytest.mark.parametrize("victim", ["model/weights.safetensors", "liquidedge/reference.py",
                                    "selftest.safetensors", "requirements.txt"])
def test_a_tampered_file_makes_verify_and_run_refuse(unpacked, victim, tmp_path, ticks_csv):
    path = unpacked / victim
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(DeployError, match=f"{victim}: sha256 mismatch"):
        verify_bundle(unpacked)
    proc, _ = run_blocked(unpacked, ["run", "--data", str(ticks_csv), "--limit", "100"], tmp_path)
    assert proc.returncode == 2
    assert "sha256 mismatch" in proc.stderr and victim in proc.stderr


def test_extra_missing_files_and_a_changed_manifest_are_refused(unpacked, numpy_bundle):
    (unpacked / "liquidedge" / "sitecustomize.py").write_text("print('hi')\n")
    with pytest.raises(DeployError, match="not in the manifest"):
        verify_bundle(unpacked)
    (unpacked / "liquidedge" / "sitecustomize.py").unlink()
    (unpacked / "liquidedge" / "inputs.py").unlink()
    with pytest.raises(DeployError, match="missing"):
        verify_bundle(unpacked)


def test_expected_manifest_digest_catches_a_rewritten_manifest(unpacked, numpy_bundle):
    m = json.loads((unpacked / "manifest.json").read_text())
    m["selftest"]["tolerance"] = 1e9  # someone loosened the check and re-hashed nothing else
    (unpacked / "manifest.json").write_text(json.dumps(m))
    verify_bundle(unpacked, selftest=False)  # self-consistent...
    with pytest.raises(DeployError, match="the manifest itself was changed"):
        verify_bundle(unpacked, expect_manifest_sha256=numpy_bundle.manifest_sha256)


def _tar_with(tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    out = tmp_path / "evil.tar.gz"
    with tarfile.open(out, "w:gz") as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return out


def test_hostile_or_broken_archives_are_refused(tmp_path, numpy_bundle):
    a = tarfile.TarInfo("b/../../escape.txt")
    a.size = 1
    with pytest.raises(DeployError, match="escapes the bundle"):
        extract_bundle(_tar_with(tmp_path, [(a, b"x")]), tmp_path / "x")
    link = tarfile.TarInfo("b/link")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    with pytest.raises(DeployError, match="not a regular file"):
        extract_bundle(_tar_with(tmp_path, [(link, None)]), tmp_path / "y")
    assert not (tmp_path.parent / "escape.txt").exists()
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(numpy_bundle.path.read_bytes()[:5000])
    with pytest.raises(DeployError, match="truncated|corrupt|readable"):
        verify_bundle(truncated)
    notgz = tmp_path / "plain.tar.gz"
    notgz.write_bytes(b"this is not a gzip file")
    with pytest.raises(DeployError, match="not a readable tar.gz"):
        verify_bundle(notgz)
    with gzip.open(tmp_path / "empty.tar.gz", "wb") as fh:
        fh.write(b"")
    with pytest.raises(DeployError):
        verify_bundle(tmp_path / "empty.tar.gz")


# ----------------------------------------------------------------------------- running the bundle

def test_bundle_runs_without_torch_on_real_ticks_and_matches_the_reference(unpacked, tmp_path, ticks_csv,
                                                                          sample_events, model_dir):
    out = tmp_path / "results.npz"
    proc, imports = run_blocked(unpacked, ["run", "--data", str(ticks_csv), "--columns", "mlfinpy",
                                           "--out", str(out), "--selftest"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert not imports["torch"] and not imports["pandas"]
    assert imports["liquidedge"] and all(str(f).startswith(str(unpacked)) for f in imports["liquidedge"].values())
    got = np.load(out)
    data = build_dataset(sample_events, SPEC)
    assert len(data) > 100
    np.testing.assert_array_equal(got["end_ns"], data.end_ns)
    assert got["degraded"].all()  # no host: the edge's own decoder, flagged
    from liquidedge.ir import load_model

    emb, pred = replay(load_model(model_dir), data, memory_on=False)
    np.testing.assert_allclose(got["embedding"], emb, atol=1e-4)
    np.testing.assert_allclose(got["prediction"], pred, atol=1e-4)


def test_bundle_edge_talks_grpc_to_a_real_host(unpacked, tmp_path, ticks_csv, sample_events, model_dir):
    from liquidedge.bridge.server import start_server
    from liquidedge.ir import load_model

    model = load_model(model_dir)
    limit = 20_000
    with start_server(model, "127.0.0.1:0", backend="numpy") as server:
        out = tmp_path / "hosted.npz"
        proc, imports = run_blocked(unpacked, ["run", "--data", str(ticks_csv), "--columns", "mlfinpy",
                                               "--limit", str(limit), "--host", f"127.0.0.1:{server.port}",
                                               "--out", str(out)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert not imports["torch"]
    got = np.load(out)
    data = build_dataset(sample_events.slice(0, limit), SPEC)
    np.testing.assert_array_equal(got["end_ns"], data.end_ns)
    assert not got["degraded"].any() and np.isfinite(got["surprise"]).all()
    emb, pred = replay(model, data, memory_on=True)
    np.testing.assert_allclose(got["embedding"], emb, atol=1e-4)
    np.testing.assert_allclose(got["prediction"], pred, atol=1e-3)


def test_run_py_verify_and_info(unpacked, tmp_path, numpy_bundle):
    proc, _ = run_blocked(unpacked, ["verify", "--manifest-sha256", numpy_bundle.manifest_sha256], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "OK" in proc.stdout and "self-test" in proc.stdout
    proc, _ = run_blocked(unpacked, ["info"], tmp_path)
    assert json.loads(proc.stdout)["device"] == "rpi5"
    assert not any(p.name == "__pycache__" for p in unpacked.rglob("*"))  # run.py wrote no bytecode


def test_bad_input_file_is_a_clear_error(unpacked, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,price,size\n1000,100.0,1\n2000,nan,1\n")
    proc, _ = run_blocked(unpacked, ["run", "--data", str(bad)], tmp_path)
    assert proc.returncode == 2
    assert "row 2" in proc.stderr and "price" in proc.stderr


def test_run_py_energy_times_the_runner_on_the_board(unpacked, tmp_path):
    out = tmp_path / "energy.json"
    proc, imports = run_blocked(unpacked, ["energy", "--json", str(out)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert not imports["torch"] and "liquidedge.energy.report" in imports["liquidedge"]
    row = json.loads(out.read_text())
    assert row["method"] == "estimated" and row["device"] == "rpi5" and row["latency_ms"] > 0
    assert "uJ/inference" in proc.stdout and "lower bound" in proc.stdout
    # measuring needs the Pi 5's vcgencmd, which this machine lacks: said plainly
    proc, _ = run_blocked(unpacked, ["energy", "--measure"], tmp_path)
    assert proc.returncode == 2 and "vcgencmd" in proc.stderr


def test_bundle_energy_measures_with_the_boards_meter(model_dir, tmp_path):
    import shutil

    from liquidedge.deploy.device import bundle_energy
    from test_energy_harness import FIX as RAPL_FIX, SimulatedPackage

    res = build_bundle(model_dir, "x86-host", tmp_path / "host", runtime="numpy")
    root = tmp_path / "sysroot"
    shutil.copytree(RAPL_FIX, root, symlinks=True)
    with SimulatedPackage(root, idle_w=0.2, max_uj=10**9):
        row = bundle_energy(res.path, measure=True, sysfs_root=root, window_s=0.2, idle_s=0.1, trials=3,
                            allow_short_window=True)
    assert row.method == "measured" and row.source == "rapl:package-0" and row.device == "x86-host"
    assert row.latency_ms > 0 and len(row.detail["measurement"]["trials"]) == 3


def test_an_artefact_of_another_model_or_runtime_is_refused(model_dir, tmp_path):
    from liquidedge.exporters.lava import export_lava
    from liquidedge.exporters.onnx import export_onnx
    from liquidedge.ir import load_model

    other = random_model(n_features=len(SPEC.features), feedback=2, hidden=24, seed=99)
    art = export_onnx(other.perception, tmp_path / "other.onnx", 64, other.content_hash())
    with pytest.raises(DeployError, match="exported from model"):
        build_bundle(model_dir, "jetson-orin-nano", tmp_path / "b.tar.gz", artefact=art)
    lava = export_lava(load_model(model_dir), tmp_path / "lava", steps=64)
    with pytest.raises(ConfigError, match="not one rpi5 can use"):
        build_bundle(model_dir, "rpi5", tmp_path / "c.tar.gz", artefact=lava)
