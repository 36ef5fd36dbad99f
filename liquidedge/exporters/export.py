"""One call from a model directory to a perception artefact: what the CLI, the demo and the
deploy-bundle builder use, so they all export (and calibrate) the same way.

Static int8 calibrates on representative windows of the model's own data: the training part
of a time-ordered split of ``data`` (a ``liquidedge.data.Dataset``), or of the E-mini sample cut
with the model's ``data_spec`` when no data is given.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from liquidedge.errors import ConfigError, InputShapeError
from liquidedge.ir import LiquidTitanModel, load_model

TARGETS = {"onnx": "onnxruntime", "onnxruntime": "onnxruntime", "tflite": "litert", "litert": "litert"}
_SUFFIX = {"onnxruntime": ".onnx", "litert": ".tflite"}


def window_steps(model: LiquidTitanModel, data=None) -> int:
    """The window length T the model reads: its data spec's, checked against ``data`` if given."""
    from liquidedge.data import DataSpec

    spec_steps = int(model.data_spec.get("steps", DataSpec().steps)) if model.data_spec else DataSpec().steps
    if data is not None and int(data.x.shape[1]) != spec_steps and model.data_spec:
        raise InputShapeError(f"data windows have {data.x.shape[1]} steps, the model's data spec says {spec_steps}")
    return int(data.x.shape[1]) if data is not None else spec_steps


def feature_spec(model: LiquidTitanModel) -> dict[str, Any]:
    """What the artefact's x holds, recorded in its metadata/manifest."""
    return {"features": list(model.data_spec.get("features", [])) if model.data_spec else [],
            "n_features": model.n_features, "feedback": model.feedback,
            "n_inputs": model.perception.n_inputs, "dt_unit_s": model.dt_unit,
            "normalised": "(raw - norm_mean) / norm_std, statistics frozen in model.json"}


def default_artefact_name(target: str, int8: str | None, scope: str) -> str:
    tag = "fp32" if int8 is None else (f"int8-{int8}-{scope}" if int8 == "static" else f"int8-{int8}")
    return f"perception-{tag}{_SUFFIX[target]}"


def export_model(model_dir: str | os.PathLike, target: str, out: str | os.PathLike, *,
                 int8: str | None = None, calib_windows: int = 256, method: str = "minmax",
                 scope: str = "recurrent", data=None, seed: int = 0, feedback: str = "stream",
                 batch_sizes=None, progress: Callable[[str], None] | None = None) -> Path:
    """Load ``model_dir`` (verified), build calibration windows if needed, write the artefact.

    ``target``: onnx | tflite (aliases onnxruntime | litert). ``out``: the artefact file, or an
    existing directory to write ``perception-<precision>.<ext>`` into. Returns its path.
    """
    from liquidedge.calibration.windows import dataset_for_model, representative_windows, train_and_held_out

    if target not in TARGETS:
        raise ConfigError(f"target: expected one of {sorted(TARGETS)}, got {target!r}")
    kind = TARGETS[target]
    say = progress or (lambda stage: None)
    say("loading model")
    model = load_model(model_dir)
    steps = window_steps(model, data)
    out = Path(out)
    if out.is_dir():
        out = out / default_artefact_name(kind, int8, scope)
    calib = None
    if int8 == "static":
        say("drawing calibration windows")
        train, _ = train_and_held_out(dataset_for_model(model, data))
        calib = representative_windows(model, train, calib_windows, seed=seed, feedback=feedback)
    common = dict(int8=int8, calib=calib, method=method, scope=scope, feature_spec=feature_spec(model))
    say("writing and quantising the artefact" if int8 else "writing the artefact")
    if kind == "onnxruntime":
        from liquidedge.exporters.onnx import export_onnx

        return export_onnx(model.perception, out, steps, model.content_hash(), **common)
    from liquidedge.exporters.tflite import DEFAULT_BATCH_SIZES, export_tflite

    return export_tflite(model.perception, out, steps, model.content_hash(),
                         batch_sizes=batch_sizes or DEFAULT_BATCH_SIZES, **common)
