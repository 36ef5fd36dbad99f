"""One protocol for every perception target, and one entry point that picks the runner.

Like ``odeint(func, y0, t, method=...)`` in torchdiffeq: callers say *what* artefact to run and
get a runner with the same signature whatever the backend. Every exported artefact has a
manifest (``<artefact>.manifest.json``, or ``manifest.json`` inside an artefact directory) that
states the window it was exported for, so a mismatched input is refused before the runtime sees it.

This module imports numpy only: it runs on the edge device.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np

from liquidedge.errors import ConfigError, ModelFileError, TargetUnavailableError
from liquidedge.inputs import check_window


@dataclass
class ArtefactManifest:
    """What an artefact is: its target, the window it accepts and the model it came from."""

    target: str                 # "onnxruntime" | "litert" | "lava" | ...
    steps: int                  # static window length T
    n_inputs: int               # F (normalised features + fed-back channels)
    embedding_dim: int          # E
    precision: str              # "fp32" | "int8-static" | "int8-dynamic" | "fixed_pt" | ...
    model_hash: str             # LiquidTitanModel.content_hash() of the source model
    artefact_sha256: str = ""   # sha256 of the artefact file (empty for directories)
    details: dict[str, Any] = field(default_factory=dict)  # exporter report: graph form, float ops, ...

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str) -> "ArtefactManifest":
        try:
            return cls(**d)
        except TypeError as exc:
            raise ModelFileError(f"{where}: malformed manifest ({exc})") from None


def manifest_path(artefact: str | os.PathLike) -> Path:
    p = Path(artefact)
    return p / "manifest.json" if p.is_dir() else p.with_name(p.name + ".manifest.json")


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_manifest(artefact: str | os.PathLike, manifest: ArtefactManifest) -> Path:
    p = Path(artefact)
    if p.is_file():
        manifest.artefact_sha256 = sha256_file(p)
    out = manifest_path(p)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(manifest.to_json())
    os.replace(tmp, out)
    return out


def read_manifest(artefact: str | os.PathLike, verify: bool = True) -> ArtefactManifest:
    """Read an artefact's manifest; with ``verify`` refuse an artefact whose bytes changed."""
    p = Path(artefact)
    if not p.exists():
        raise ModelFileError(f"{p}: artefact not found")
    mp = manifest_path(p)
    if not mp.is_file():
        raise ModelFileError(f"{p}: no manifest at {mp} (export with `liquidedge export`)")
    try:
        manifest = ArtefactManifest.from_dict(json.loads(mp.read_text()), str(mp))
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{mp}: not valid JSON ({exc})") from None
    if verify and p.is_file() and manifest.artefact_sha256 != sha256_file(p):
        raise ModelFileError(f"{p}: sha256 does not match its manifest; the file was modified or truncated")
    return manifest


@runtime_checkable
class PerceptionRunner(Protocol):
    """Every target: ``encode(x [B,T,F], dt [B,T], mask [B,T]) -> embedding [B,E]`` (float32)."""

    manifest: ArtefactManifest

    def encode(self, x, dt, mask=None) -> np.ndarray: ...

    def describe(self) -> dict[str, Any]: ...


def check_runner_args(kind: str, path, manifest: ArtefactManifest, threads: int,
                      options: dict[str, Any]) -> int:
    """The checks every runner constructor makes: right target, no unknown option, threads >= 1."""
    if manifest.target != kind:
        raise ConfigError(f"{path}: manifest target is {manifest.target!r}, not {kind!r}")
    if options:
        raise ConfigError(f"runner for {kind}: unknown options {sorted(options)}")
    if int(threads) < 1:
        raise ConfigError(f"threads: expected >= 1, got {threads}")
    return int(threads)


def checked_inputs(manifest: ArtefactManifest, x, dt, mask=None):
    """Validate a window batch against the artefact's manifest before any runtime is called."""
    return check_window(x, dt, mask, n_inputs=manifest.n_inputs, steps=manifest.steps)


# target name -> "module:factory"; factories take (artefact_path, manifest, **options).
_RUNNERS: dict[str, str] = {
    "onnxruntime": "liquidedge.targets.onnxruntime:OnnxRuntimeRunner",
    "litert": "liquidedge.targets.litert:LiteRTRunner",
    "lava": "liquidedge.targets.lava:LavaRunner",
}


def register_runner(target: str, spec: str) -> None:
    _RUNNERS[target] = spec


def runner_factory(target: str) -> Callable[..., PerceptionRunner]:
    """The runner class registered for ``target`` (imports its runtime module on first use)."""
    spec = _RUNNERS.get(target)
    if spec is None:
        raise ConfigError(f"unknown target {target!r} (known: {sorted(_RUNNERS)})")
    module, name = spec.split(":")
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError as exc:
        raise TargetUnavailableError(f"the runtime for target {target!r} is not installed ({exc})") from None


def load_runner(artefact: str | os.PathLike, **options: Any) -> PerceptionRunner:
    """Open any exported perception artefact with the runner its manifest names."""
    manifest = read_manifest(artefact)
    return runner_factory(manifest.target)(Path(artefact), manifest, **options)
