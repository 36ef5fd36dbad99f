"""PerceptionGraph -> ONNX artefact (fp32, or int8 static / dynamic / weight-only) + manifest.

The graph is written from the IR's arrays (``onnx_graph``), checked with ``onnx.checker``,
optionally quantised with ONNX Runtime's tools (``onnx_quant``), and saved with metadata that
names the source model, the window and the feature layout, so the file describes itself even
without its manifest. The manifest's ``details`` is the export report: graph form, operator
counts, what runs in integer and what stays in float, and how calibration was done.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from liquidedge.errors import ConfigError, InputShapeError
from liquidedge.exporters.options import DEFAULT_SCOPE, check_int8, precision_name
from liquidedge.ir import PerceptionGraph
from liquidedge.targets.base import ArtefactManifest, write_manifest
from liquidedge.targets.onnxruntime import MODEL_HASH_KEY


def _metadata(g: PerceptionGraph, steps: int, model_hash: str, form: str,
              feature_spec: dict[str, Any] | None) -> dict[str, str]:
    return {MODEL_HASH_KEY: model_hash, "liquidedge.steps": str(steps),
            "liquidedge.n_inputs": str(g.n_inputs), "liquidedge.embedding_dim": str(g.embedding_dim),
            "liquidedge.solver": g.solver, "liquidedge.unfolds": str(g.unfolds),
            "liquidedge.graph_form": form,
            "liquidedge.feature_spec": json.dumps(feature_spec or {"n_inputs": g.n_inputs}, sort_keys=True),
            "liquidedge.inputs": "x[B,T,F] normalised features + fed-back channels; dt[B,T] in the "
                                 "LTC's time unit; mask[B,T] 1 = real step"}


def _check_calib(calib, g: PerceptionGraph, steps: int) -> None:
    if calib is None:
        raise ConfigError("static int8 needs calibration windows (calib=CalibrationSet)")
    if calib.steps != steps or calib.n_inputs != g.n_inputs:
        raise InputShapeError(f"calibration windows are [N, {calib.steps}, {calib.n_inputs}], the export "
                              f"is for [B, {steps}, {g.n_inputs}]")


def export_onnx(graph: PerceptionGraph, out_path: str | os.PathLike, steps: int, model_hash: str, *,
                int8: str | None = None, calib=None, method: str = "minmax", scope: str = DEFAULT_SCOPE,
                form: str = "unrolled", feature_spec: dict[str, Any] | None = None,
                calib_batch: int = 64) -> Path:
    """Write ``out_path`` (.onnx) and its manifest; return the artefact path.

    ``int8``: None (fp32) | "static" (QDQ, calibrated on ``calib`` with ``method``) | "dynamic";
    ``scope`` picks the operators a static scheme quantises (see ``options``).
    """
    import onnx

    from liquidedge.exporters import onnx_quant
    from liquidedge.exporters.onnx_graph import build_perception_model, operator_counts

    check_int8(int8, scope, method)
    if int8 == "weight":
        raise ConfigError("weight-only int8 is offered for LiteRT only: ONNX Runtime keeps the "
                          "dequantisation in the graph and would repeat it at every step")
    if int8 == "static":
        _check_calib(calib, graph, steps)
    started = time.perf_counter()
    meta = _metadata(graph, int(steps), model_hash, form, feature_spec)
    # the integer paths of ORT need each recurrent product as a MatMul, not a Gemm with a varying bias
    split_bias = int8 in ("static", "dynamic")
    # static int8 of the input projection: every input channel scaled to its calibrated |max|
    input_scale = calib.channel_absmax() if int8 == "static" and scope == "matmul" else None
    model = build_perception_model(graph, steps, form, meta, split_bias=split_bias,
                                   input_scale=input_scale)
    details: dict[str, Any] = {
        "graph_form": form, "hoisted": ["input projection (one MatMul for all steps)",
                                        "step size d = dt*mask/unfolds", "solver coefficients"],
        "recurrence": ("scaled shifted state s = (h - a) / |a|" if graph.solver in ("fused", "euler")
                       else "plain state"),
        "input_scaling": (None if input_scale is None else
                          "each input channel divided by its calibrated |max|, folded into w_in"),
        "recurrent_product": "MatMul + Add" if split_bias else "Gemm",
        "solver": graph.solver, "unfolds": graph.unfolds, "opset": model.opset_import[0].version,
        "graph_ops": operator_counts(model)}
    if int8 == "static":
        from liquidedge.calibration.readers import ort_reader

        model, qinfo = onnx_quant.quantize_static_qdq(model, ort_reader(calib, calib_batch), scope, method,
                                                      state_range=_state_range(graph))
        qinfo["calibration"] = {"n_windows": len(calib), **calib.info}
    elif int8 == "dynamic":
        model, qinfo = onnx_quant.quantize_dynamic_int8(model)
    else:
        qinfo = None
    if int8 is not None:
        details["int8_scope"] = scope if int8 == "static" else "matmul"
        details["quantization"] = qinfo
        _restore_metadata(model, meta)
        onnx.checker.check_model(model)
    details.update(onnx_quant.runtime_op_report(model.SerializeToString()))
    details["export_seconds"] = round(time.perf_counter() - started, 3)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    onnx.save(model, tmp)
    os.replace(tmp, out)
    write_manifest(out, ArtefactManifest(
        target="onnxruntime", steps=int(steps), n_inputs=graph.n_inputs,
        embedding_dim=graph.embedding_dim, precision=precision_name(int8), model_hash=model_hash,
        details=details))
    return out


def _state_range(g: PerceptionGraph) -> tuple[float, float] | None:
    """The box the recurrent products' input provably stays in (fused solver: the scaled state
    s = (h - a)/|a| lies in [-1, 1] for any dt), so its int8 range needs no calibration."""
    return (-1.0, 1.0) if g.solver == "fused" else None


def _restore_metadata(model, meta: dict[str, str]) -> None:
    """The quantisers rebuild the model proto; make sure every metadata entry survived."""
    have = {p.key for p in model.metadata_props}
    for key, value in meta.items():
        if key not in have:
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
