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


PARTS = ("train", "validation", "test", "all")


def dataset_for(model: LiquidTitanModel, events, part: str = "test"):
    """Cut ``events`` exactly as the model's data spec says and pick one time-ordered part of the
    split recorded at training (``test``: the held-out later part)."""
    from liquidedge.data import DataSpec, build_dataset, split

    if part not in PARTS:
        raise ConfigError(f"part: expected one of {PARTS}, got {part!r}")
    if model.data_spec.get("kind") == "sensor":   # readings (value in the price column), not trades
        from liquidedge.data.sensor import SensorSpec, build_sensor_dataset
        dataset = build_sensor_dataset(events.time_ns, events.price, SensorSpec.from_dict(model.data_spec))
    else:
        dataset = build_dataset(events, DataSpec.from_dict(model.data_spec) if model.data_spec else None)
    if part == "all":
        return dataset
    fractions = model.training.get("config", {}).get("split", (0.6, 0.2, 0.2))
    parts = split(dataset, fractions)
    index = PARTS.index(part)
    if index >= len(parts):
        raise ConfigError(f"the model was trained with a {len(parts)}-way split: there is no {part!r} part")
    return parts[index]


def evaluate_events(model: LiquidTitanModel, events, part: str = "test") -> dict[str, Any]:
    """Metrics of ``model`` on one part of ``events``, with the memory on and off (ablation)."""
    dataset = dataset_for(model, events, part)
    if len(dataset) == 0:
        raise ConfigError(f"the {part!r} part of this data holds no windows")
    out: dict[str, Any] = {"part": part, "memory_on": evaluate_model(model, dataset)}
    if model.training.get("memory_on", True):
        out["memory_off"] = evaluate_model(model, dataset, memory_on=False)
    return out
