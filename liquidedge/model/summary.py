"""A plain-dict summary of a model directory: what `liquidedge info` prints and tests check.

numpy only: a deployment machine can describe a model without torch.
"""
from __future__ import annotations

from typing import Any

from liquidedge.ir import LiquidTitanModel


def describe_model(model: LiquidTitanModel) -> dict[str, Any]:
    """Architecture, sizes, thresholds, data spec and recorded training results of a model."""
    p, m, d = model.perception, model.memory, model.decoder
    n_params = sum(int(v.size) for k, v in model._tensors().items()
                   if not k.startswith("norm.") and not k.endswith("wiring"))
    training = dict(model.training)
    return {
        "content_hash": model.content_hash(),
        "perception": {**p.settings(), "synapses": p.synapse_count(),
                       "dense": bool(p.wiring.min() == 1.0)},
        "memory": {k: m.settings()[k] for k in ("depth", "dim", "attentional_bias", "residual", "lr_max",
                                                 "eta_max", "grad_clip", "threshold", "bypass_threshold")},
        "decoder": d.settings(),
        "features": list(model.data_spec.get("features", [])) or model.n_features,
        "feedback_channels": model.feedback,
        "dt_unit_s": model.dt_unit,
        "parameters": n_params,
        "data_spec": model.data_spec,
        "calibration": model.calibration,
        "training": {k: training[k] for k in ("task", "memory_on", "seconds", "best_epoch", "epochs_run",
                                              "stopped", "metrics") if k in training},
    }
