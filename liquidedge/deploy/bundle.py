"""Build a device bundle: artefact + model + self-test + edge code + requirements + run.py.

``build_bundle(model_dir, "rpi5", "bundle.tar.gz")`` exports (or takes) the perception artefact
the device profile prefers, computes a self-test window and its expected embedding with the
numpy reference, checks the artefact reproduces it *here* before shipping it, copies the edge
subset of liquidedge (see ``edge_modules``), writes ``requirements.txt`` and ``manifest.json``
(sha256 of every file) and packs everything into a reproducible tar.gz (sorted members, fixed
mtimes and owners) so the same inputs give the same bytes.
"""
from __future__ import annotations

import gzip
import io
import os
import platform
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import numpy as np

from liquidedge import __version__, reference
from liquidedge.deploy.edge_modules import PACKAGE_DIR, edge_files
from liquidedge.deploy.manifest import (ENTRY_POINT, FORMAT, FORMAT_VERSION, MANIFEST, REQUIREMENTS,
                                        SELFTEST, dump_manifest, list_files, sha256_bytes, sha256_path)
from liquidedge.deploy.profiles import DeviceProfile, get_profile
from liquidedge.errors import ConfigError, DeployError
from liquidedge.ir import MODEL_JSON, WEIGHTS_FILE, LiquidTitanModel, load_model
from liquidedge.targets.base import PerceptionRunner, load_runner, manifest_path, read_manifest

PYTHON_REQUIREMENT = ">=3.10"
# Absolute agreement with the fp64 reference a precision may need on top of what the workstation
# measured, in units of max(1, max|expected embedding|).
BASE_TOLERANCE = {"fp64": 1e-6, "fp32": 1e-4, "fp16": 2e-2}
INT8_BASE_TOLERANCE = 2e-2
# Beyond this the artefact does not reproduce the model at all: refuse to ship it.
MAX_ERROR = {"fp64": 1e-4, "fp32": 1e-3, "fp16": 5e-2}
INT8_MAX_ERROR = 0.5

RUN_PY = '''#!/usr/bin/env python3
"""Entry point of this liquidedge bundle: python run.py info | verify | run --data TRADES.csv [--host ADDR].

Needs only what requirements.txt lists (no torch). Uses the liquidedge subset shipped beside it.
"""
import sys

sys.dont_write_bytecode = True  # a bundle holds exactly its listed files; never add __pycache__
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from liquidedge.deploy.device import main  # noqa: E402

sys.exit(main(sys.argv[1:], bundle_dir=HERE))
'''


@dataclass
class BuildResult:
    path: Path                 # the tar.gz (or directory) written
    name: str                  # the bundle's top-level directory name
    manifest: dict[str, Any]
    manifest_sha256: str
    selftest_error: float
    selftest_tolerance: float

    @property
    def files(self) -> int:
        return len(self.manifest["files"])


# ----------------------------------------------------------------------------- artefacts

def _tolerances(precision: str) -> tuple[float, float]:
    if precision.startswith("int8"):
        return INT8_BASE_TOLERANCE, INT8_MAX_ERROR
    if precision not in BASE_TOLERANCE:
        raise ConfigError(f"precision {precision!r}: no self-test tolerance known")
    return BASE_TOLERANCE[precision], MAX_ERROR[precision]


def export_for_profile(model_dir: Path, profile: DeviceProfile, runtime: str, out_dir: Path,
                       progress: Callable[[str], None] | None = None) -> Path:
    """Export the artefact ``runtime`` + the profile's precision wants, with the exporters' one call
    (static int8 is calibrated on windows of the model's own data, see ``exporters.export``)."""
    try:
        from liquidedge.exporters.export import export_model
    except ImportError as exc:
        raise DeployError(f"cannot export a {runtime} artefact here ({exc}); export it elsewhere and pass "
                          f"--artefact, or build with --runtime numpy") from None
    out_dir.mkdir(parents=True, exist_ok=True)
    int8 = "static" if profile.precision == "int8" else None
    # the edge loop encodes one window at a time: a LiteRT artefact needs only its batch-1 signature
    extra = {"batch_sizes": (1,)} if runtime == "litert" else {}
    return Path(export_model(model_dir, runtime, out_dir, int8=int8, progress=progress, **extra))


def _runner_for(runtime: str, artefact: Path | None, model: LiquidTitanModel, steps: int,
                options: dict[str, Any]) -> PerceptionRunner:
    if runtime == "numpy":
        from liquidedge.targets.numpy_ref import ReferenceRunner

        return ReferenceRunner(model.perception, steps, model.content_hash())
    from liquidedge.deploy.runtime import _accepted

    return load_runner(artefact, **_accepted(runtime, options))


# ----------------------------------------------------------------------------- self-test

def selftest_window(model: LiquidTitanModel, steps: int, events=None, seed: int = 0):
    """One perception input window (x, dt, mask), as the artefact consumes it.

    Cut from ``events`` (or, without them, from a seeded synthetic market) through the model's own
    data spec, so the self-test exercises realistic inputs; a model without a data spec gets a
    seeded random window."""
    if model.data_spec:
        from liquidedge.data import DataSpec, build_dataset, generate_market

        spec = DataSpec.from_dict(model.data_spec)
        if spec.steps != steps:
            raise DeployError(f"the model's data spec cuts {spec.steps}-step windows, the artefact takes {steps}")
        if events is None:
            events = generate_market(40_000, seed=seed).events
        ds = build_dataset(events, spec)
        if len(ds) == 0:
            raise DeployError("the self-test data is too short to cut a single window with the model's data spec")
        return reference.model_inputs(model, ds.x[-1:], ds.dt_s[-1:], ds.mask[-1:], dtype=np.float32)
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, (1, steps, model.perception.n_inputs)).astype(np.float32)
    dt = rng.uniform(0.5, 1.5, (1, steps)).astype(np.float32)
    return x, dt, np.ones((1, steps), np.float32)


# ----------------------------------------------------------------------------- requirements

def _installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _protobuf_requirement() -> str:
    """protobuf >= the version the bridge's messages were generated with (same major)."""
    pb2 = PACKAGE_DIR / "bridge" / "bridge_pb2.py"
    if pb2.is_file():
        for line in pb2.read_text().splitlines()[:10]:
            if "Protobuf Python Version:" in line:
                v = line.split(":", 1)[1].strip()
                return f">={v},<{int(v.split('.')[0]) + 1}"
    return ">=4.25"


def device_requirements(profile: DeviceProfile, runtime: str) -> dict[str, str]:
    """Package -> version spec for the device: numpy, safetensors, the runtime, grpcio, protobuf."""
    reqs = {"numpy": ">=1.24", "safetensors": ">=0.4", "grpcio": ">=1.60", "protobuf": _protobuf_requirement()}
    if runtime == "litert":
        v = _installed("ai-edge-litert")
        reqs["ai-edge-litert"] = f">={v}" if v else ">=1.0"
    elif runtime == "onnxruntime":
        line = next((p for p in profile.runtime_packages if p.startswith("onnxruntime")), "onnxruntime>=1.17")
        reqs["onnxruntime"] = line[len("onnxruntime"):]
    return reqs


def requirements_text(name: str, profile: DeviceProfile, reqs: dict[str, str]) -> str:
    lines = [f"# Device requirements of liquidedge bundle {name} ({profile.name}).",
             "# numpy + the perception runtime + the bridge client. No torch.",
             "# Install into a venv OUTSIDE the bundle directory (verify refuses unlisted files):",
             "#   python3 -m venv ~/edge-venv && ~/edge-venv/bin/pip install -r requirements.txt"]
    lines += [f"# {n}" for n in profile.notes]
    lines += [f"{pkg}{spec}" for pkg, spec in sorted(reqs.items())]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- packing

def _tar_bytes(stage: Path, top: str, out: Path) -> None:
    """Reproducible tar.gz: sorted members, mtime 0, owner root, fixed modes."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tf:
        files = list_files(stage)
        parents = {Path(f).parent for f in files}
        all_dirs = sorted({Path(*d.parts[:i]).as_posix() for d in parents for i in range(1, len(d.parts) + 1)})
        for d in [""] + all_dirs:
            info = tarfile.TarInfo(f"{top}/{d}".rstrip("/"))
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tf.addfile(info)
        for rel in files:
            data = (stage / rel).read_bytes()
            info = tarfile.TarInfo(f"{top}/{rel}")
            info.size, info.mtime = len(data), 0
            info.mode = 0o755 if rel == ENTRY_POINT else 0o644
            tf.addfile(info, io.BytesIO(data))
    os.replace(tmp, out)


def _copy_artefact(artefact: Path, dest_dir: Path) -> str:
    """Copy an artefact (file + its manifest, or a directory) and return its bundle path."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    if artefact.is_dir():
        shutil.copytree(artefact, dest_dir / artefact.name)
        return f"artefact/{artefact.name}"
    shutil.copy2(artefact, dest_dir / artefact.name)
    mp = manifest_path(artefact)
    shutil.copy2(mp, dest_dir / mp.name)
    return f"artefact/{artefact.name}"


# ----------------------------------------------------------------------------- build

def build_bundle(model_dir: str | os.PathLike, device: str, out: str | os.PathLike, *,
                 artefact: str | os.PathLike | None = None, runtime: str | None = None,
                 steps: int | None = None, selftest_events=None, seed: int = 0,
                 progress: Callable[[str], None] | None = None) -> BuildResult:
    """Build the bundle for ``device`` from ``model_dir`` and write it to ``out``.

    ``out`` ending in .tar.gz/.tgz gives an archive, anything else a bundle directory.
    ``artefact``: an exported perception artefact to ship (else one is exported for the profile);
    ``runtime="numpy"`` ships the numpy reference instead of an accelerated artefact.
    """
    say = progress or (lambda msg: None)
    model_dir = Path(model_dir)
    model = load_model(model_dir)
    profile = get_profile(device)
    model_hash = model.content_hash()
    spec_steps = model.data_spec.get("steps") if model.data_spec else None

    with tempfile.TemporaryDirectory(prefix="liquidedge-build-") as tmp:
        tmp = Path(tmp)
        if artefact is not None:
            artefact = Path(artefact)
            am = read_manifest(artefact)
            if runtime is not None and runtime != am.target:
                raise DeployError(f"--runtime {runtime} but the artefact is for {am.target}")
            runtime = am.target
        runtime = runtime or profile.runtime
        usable = (profile.runtime,) + profile.fallback_runtimes + ("numpy",)
        if runtime not in usable:
            raise ConfigError(f"runtime {runtime!r} is not one {profile.name} can use (one of {usable})")
        if artefact is None:
            if runtime != "numpy":
                say(f"exporting the {profile.precision} {runtime} artefact")
                artefact = export_for_profile(model_dir, profile, runtime, tmp / "export", say)
                am = read_manifest(artefact)
        if runtime == "numpy":
            steps = int(steps or spec_steps or 64)
            precision = "fp32"
        else:
            if am.model_hash != model_hash:
                raise DeployError(f"{artefact}: exported from model {am.model_hash[:12]}, but {model_dir} is "
                                  f"model {model_hash[:12]}; export it from this model")
            if am.n_inputs != model.perception.n_inputs or am.embedding_dim != model.perception.embedding_dim:
                raise DeployError(f"{artefact}: takes {am.n_inputs} inputs -> {am.embedding_dim}, the model "
                                  f"{model.perception.n_inputs} -> {model.perception.embedding_dim}")
            if steps is not None and int(steps) != am.steps:
                raise DeployError(f"--steps {steps} but the artefact was exported for {am.steps}")
            steps, precision = am.steps, am.precision
        if spec_steps is not None and int(spec_steps) != steps:
            raise DeployError(f"the model's data spec cuts {spec_steps}-step windows, the artefact takes {steps}")
        if runtime == "onnxruntime":
            options = {"threads": profile.threads, "providers": list(profile.execution_providers)}
        else:
            options = profile.runner_options(runtime)

        say("computing the self-test window with the numpy reference")
        x, dt, mask = selftest_window(model, steps, selftest_events, seed)
        expected = reference.perception_forward(model.perception, x, dt, mask, np.float64)
        here_options = dict(options)
        if runtime == "onnxruntime":
            here_options["providers"] = ["CPUExecutionProvider"]
        here = np.asarray(_runner_for(runtime, artefact, model, steps, here_options).encode(x, dt, mask),
                          np.float64)
        scale = max(1.0, float(np.max(np.abs(expected))))
        err_here = float(np.max(np.abs(here - expected)))
        base, worst = _tolerances(precision)
        if err_here > worst * scale:
            raise DeployError(f"the {precision} {runtime} artefact differs from the reference by {err_here:.3g} "
                              f"on the self-test window here (limit {worst * scale:.3g}); not shipping it")
        tolerance = base * scale + 1.5 * err_here

        name = f"liquidedge-{profile.name}-{model_hash[:8]}"
        stage = tmp / name
        stage.mkdir()
        say("staging files")
        (stage / "model").mkdir()
        for f in (MODEL_JSON, WEIGHTS_FILE):
            shutil.copy2(model_dir / f, stage / "model" / f)
        art_rel = None if runtime == "numpy" else _copy_artefact(Path(artefact), stage / "artefact")
        from safetensors.numpy import save_file

        save_file({"x": np.ascontiguousarray(x, np.float32), "dt": np.ascontiguousarray(dt, np.float32),
                   "mask": np.ascontiguousarray(mask, np.float32), "expected": expected.astype(np.float64),
                   "workstation": here.astype(np.float64)}, str(stage / SELFTEST))
        for rel, src in edge_files(runtime).items():
            (stage / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, stage / rel)
        reqs = device_requirements(profile, runtime)
        (stage / REQUIREMENTS).write_text(requirements_text(name, profile, reqs))
        (stage / ENTRY_POINT).write_text(RUN_PY)

        manifest = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "name": name,
            "liquidedge_version": __version__,
            "built_on": {"python": platform.python_version(), "machine": platform.machine(),
                         "system": platform.system()},
            "device": profile.to_dict(),
            "model": {"path": "model", "hash": model_hash},
            "window": {"steps": steps, "n_inputs": model.perception.n_inputs,
                       "n_features": model.n_features, "feedback": model.feedback,
                       "embedding_dim": model.perception.embedding_dim, "dt_unit": model.dt_unit,
                       "data_spec": model.data_spec},
            "normalisation": {"mean": model.norm_mean.tolist(), "std": model.norm_std.tolist()},
            "perception": {"target": runtime, "artefact": art_rel, "precision": precision,
                           "runner_options": options,
                           "artefact_manifest": None if runtime == "numpy" else {
                               "target": am.target, "precision": am.precision, "steps": am.steps,
                               "artefact_sha256": am.artefact_sha256}},
            "requirements": {"python": PYTHON_REQUIREMENT, "packages": reqs,
                             "tested_with": {p: _installed(p) for p in sorted(reqs) if _installed(p)}},
            "selftest": {"file": SELFTEST, "tolerance": tolerance, "workstation_error": err_here,
                         "expected_from": "liquidedge.reference.perception_forward (float64)"},
            "entry_point": ENTRY_POINT,
            "files": {rel: sha256_path(stage / rel) for rel in list_files(stage)},
        }
        raw = dump_manifest(manifest)
        (stage / MANIFEST).write_bytes(raw)

        out = Path(out)
        if out.name.endswith((".tar.gz", ".tgz")):
            say(f"packing {out}")
            _tar_bytes(stage, name, out)
        else:
            if out.exists():
                raise DeployError(f"{out}: already exists; choose a new directory or a .tar.gz name")
            shutil.copytree(stage, out)
    return BuildResult(out, name, manifest, sha256_bytes(raw), err_here, tolerance)
