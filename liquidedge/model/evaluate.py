"""Score a deployable model on time-ordered windows with the numpy reference (no torch needed).

Evaluation runs exactly what every target runs (``reference.run_stream``), so a number reported
here is the number the deployed model earns, memory updates and fed-back predictions included.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from liquidedge import reference
from liquidedge.errors import ConfigError
from liquidedge.ir import LiquidTitanModel
from liquidedge.model.targets import TASKS, prediction_metrics


def model_task(model: LiquidTitanModel) -> str:
    """The task a model was trained for (recorded at training; else inferred from its outputs)."""
    task = model.training.get("task")
    if task in TASKS:
        return task
    for name, outputs in TASKS.items():
        if tuple(model.decoder.outputs) == outputs:
            return name
    raise ConfigError(f"cannot tell the task of a model with outputs {model.decoder.outputs}")


def check_features(model: LiquidTitanModel, dataset) -> None:
    """Refuse a dataset whose feature channels differ from those the model was trained on."""
    want = model.data_spec.get("features")
    have = getattr(dataset, "feature_names", None)
    if want is not None and have is not None and tuple(want) != tuple(have):
        raise ConfigError(f"dataset features {list(have)} differ from the model's {list(want)}")
    if dataset.x.shape[-1] != model.n_features:
        raise ConfigError(f"dataset has {dataset.x.shape[-1]} features, the model takes {model.n_features}")


def run_model(model: LiquidTitanModel, dataset, memory_on: bool | None = None,
              dtype=np.float32) -> dict[str, Any]:
    """``reference.run_stream`` over all windows of ``dataset`` as one stream, fresh memory."""
    check_features(model, dataset)
    if memory_on is None:
        memory_on = bool(model.training.get("memory_on", True))
    return reference.run_stream(model, dataset.x, dataset.dt_s, dataset.mask, memory_on=memory_on, dtype=dtype)


def evaluate_model(model: LiquidTitanModel, dataset, memory_on: bool | None = None,
                   dtype=np.float32) -> dict[str, float]:
    """Task metrics (e.g. MSE of log realised vol, and the EWMA baseline's) plus the update rate."""
    out = run_model(model, dataset, memory_on, dtype)
    metrics = prediction_metrics(out["prediction"], dataset, model_task(model))
    metrics["update_rate"] = float(np.mean(out["updated"]))
    metrics["n_windows"] = int(len(out["score"]))
    return metrics
