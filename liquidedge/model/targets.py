"""What the decoder predicts for each window, and how wrong it is: the training task.

``market``: the next-horizon log realised volatility and the sign of the next-horizon return
(outputs ``log_vol`` and ``direction_logit``). ``sensor``: the stream's next value
(output ``next_value``), read from a dataset's ``target_value``. numpy only, so evaluation can
run without torch.
"""
from __future__ import annotations

import numpy as np

from liquidedge.errors import ConfigError

TASKS = {"market": ("log_vol", "direction_logit"), "sensor": ("next_value",)}


def task_outputs(task: str) -> tuple[str, ...]:
    try:
        return TASKS[task]
    except KeyError:
        raise ConfigError(f"unknown task {task!r} (expected one of {sorted(TASKS)})") from None


def task_targets(dataset, task: str) -> tuple[np.ndarray, np.ndarray]:
    """(targets [N, P] float32 with NaN where invalid, valid [N] bool) for ``task``."""
    task_outputs(task)
    if task == "market":
        for name in ("target_logvol", "target_dir", "target_valid"):
            if not hasattr(dataset, name):
                raise ConfigError(f"task 'market' needs a dataset with {name} (liquidedge.data.Dataset)")
        y = np.stack([dataset.target_logvol, dataset.target_dir], axis=1).astype(np.float32)
        valid = np.asarray(dataset.target_valid, bool)
    else:
        if getattr(dataset, "target_value", None) is None:
            raise ConfigError("task 'sensor' needs a dataset with target_value [N] (the next value), "
                              "e.g. from liquidedge.data.sensor.build_sensor_dataset")
        y = np.asarray(dataset.target_value, np.float32).reshape(-1, 1)
        valid = np.asarray(getattr(dataset, "target_valid", np.isfinite(y[:, 0])), bool)
    valid = valid & np.all(np.isfinite(y), axis=1)
    return y, valid


def prediction_metrics(prediction: np.ndarray, dataset, task: str) -> dict[str, float]:
    """Per-task quality of predictions [N, P] against the dataset's targets (valid rows only)."""
    y, valid = task_targets(dataset, task)
    p = np.asarray(prediction, np.float64)[valid]
    y = y[valid].astype(np.float64)
    if task == "market":
        out = {"mse_logvol": float(np.mean((p[:, 0] - y[:, 0]) ** 2)),
               "direction_accuracy": float(np.mean((p[:, 1] > 0) == (y[:, 1] > 0.5)))}
        if hasattr(dataset, "baseline_logvol"):
            base = np.asarray(dataset.baseline_logvol, np.float64)[valid]
            out["mse_logvol_ewma"] = float(np.mean((base - y[:, 0]) ** 2))
        return out
    out = {"mse_next_value": float(np.mean((p[:, 0] - y[:, 0]) ** 2))}
    try:
        from liquidedge.data.sensor import persistence_forecast
        base = np.asarray(persistence_forecast(dataset), np.float64)[valid]
        out["mse_next_value_persistence"] = float(np.mean((base - y[:, 0]) ** 2))
    except (ImportError, ConfigError):
        pass   # no 'value' feature: no persistence baseline to report
    return out
