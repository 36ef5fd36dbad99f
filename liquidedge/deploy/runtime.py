"""Open a bundle's model and perception runner, with the device profile's runner options.

Edge-side module: numpy + the bundle's runtime only.
"""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from liquidedge.errors import ConfigError, DeployError, TargetUnavailableError
from liquidedge.ir import LiquidTitanModel, load_model
from liquidedge.targets.base import PerceptionRunner, load_runner, runner_factory


def bundle_model(bundle_dir: Path, manifest: dict[str, Any]) -> LiquidTitanModel:
    model = load_model(bundle_dir / manifest["model"]["path"])
    if model.content_hash() != manifest["model"]["hash"]:
        raise DeployError(f"{bundle_dir}: the bundled model hashes to {model.content_hash()[:12]}, "
                          f"the manifest says {manifest['model']['hash'][:12]}")
    return model


def _accepted(target: str, options: dict[str, Any]) -> dict[str, Any]:
    """Keep only the options the target's runner factory accepts (runners differ in what they tune)."""
    if not options:
        return {}
    try:
        factory = runner_factory(target)
    except (ConfigError, TargetUnavailableError) as exc:
        raise TargetUnavailableError(f"{exc}; pip install -r requirements.txt") from None
    params = inspect.signature(factory).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return dict(options)
    return {k: v for k, v in options.items() if k in params}


def bundle_runner(bundle_dir: Path, manifest: dict[str, Any], model: LiquidTitanModel | None = None,
                  **overrides: Any) -> PerceptionRunner:
    """The runner the bundle was built for: its artefact with the profile's options, or the numpy
    reference when the bundle carries no accelerated artefact."""
    p = manifest["perception"]
    if p["target"] == "numpy":
        from liquidedge.targets.numpy_ref import ReferenceRunner

        model = model or bundle_model(bundle_dir, manifest)
        return ReferenceRunner(model.perception, manifest["window"]["steps"], model.content_hash())
    options = dict(p.get("runner_options", {}))
    options.update(overrides)
    if p["target"] == "onnxruntime" and "providers" in options:
        options["providers"] = available_providers(options["providers"])
    return load_runner(bundle_dir / p["artefact"], **_accepted(p["target"], options))


def available_providers(wanted: list[str]) -> list[str]:
    """The wanted ONNX Runtime execution providers this install has, in order, CPU last: a Jetson
    profile asks for TensorRT and CUDA, a CPU-only onnxruntime quietly gets the CPU."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise TargetUnavailableError("ONNX Runtime is not installed: pip install -r requirements.txt") from None
    have = set(ort.get_available_providers())
    chosen = [p for p in wanted if p in have and p != "CPUExecutionProvider"]
    return chosen + ["CPUExecutionProvider"]
