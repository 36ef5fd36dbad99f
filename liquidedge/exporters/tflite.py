"""PerceptionGraph -> LiteRT (.tflite) artefact via litert-torch (no TensorFlow) + manifest.

litert-torch converts torch programs, so a small torch module is rebuilt from the IR's arrays
(``tflite_module``: the same hoisted, shifted-state equations as the ONNX graph) and converted
with one signature per batch size (``b1``, ``b256``...): litert-torch cannot export a symbolic
batch, and LiteRT cannot resize a converted graph, so the runner picks signatures instead.
int8 variants are made from the fp32 flatbuffer with ai-edge-quantizer (``litert_quant``).

torch and litert-torch are imported inside the functions that need them (importing litert-torch
takes seconds). The fp32 conversion is memoised per process, keyed by the graph's bytes, the
window and the batch sizes, so exporting fp32 and several int8 forms converts only once.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from liquidedge.errors import ConfigError, InputShapeError
from liquidedge.exporters.options import DEFAULT_SCOPE, check_int8, precision_name
from liquidedge.ir import PerceptionGraph
from liquidedge.targets.base import ArtefactManifest, write_manifest

DEFAULT_BATCH_SIZES = (1, 256)
_CONVERTED: dict[str, bytes] = {}


def _graph_key(g: PerceptionGraph, steps: int, batch_sizes: tuple[int, ...],
               ranges: dict[str, np.ndarray] | None) -> str:
    h = hashlib.sha256(repr((g.settings(), steps, batch_sizes)).encode())
    for name, value in sorted((ranges or {}).items()):
        h.update(name.encode())
        h.update(np.asarray(value, np.float64).tobytes())
    for name, arr in sorted(g.arrays().items()):
        h.update(name.encode())
        h.update(np.ascontiguousarray(arr, np.float32).tobytes())
    return h.hexdigest()


def _signature_name(batch: int) -> str:
    return f"b{batch}"


def convert_fp32(g: PerceptionGraph, steps: int, batch_sizes: tuple[int, ...] = DEFAULT_BATCH_SIZES,
                 ranges: dict[str, np.ndarray] | None = None) -> bytes:
    """The fp32 flatbuffer with one signature per batch size (inputs x, dt, mask); ``ranges``
    rescales channels for static int8 (see ``tflite_module.PerceptionModule``)."""
    key = _graph_key(g, steps, batch_sizes, ranges)
    if key in _CONVERTED:
        return _CONVERTED[key]
    import torch

    from liquidedge.exporters.tflite_module import PerceptionModule

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        import litert_torch

        module = PerceptionModule(g, steps, ranges).eval()
        converter = None
        for batch in batch_sizes:
            sample = {"x": torch.zeros(batch, steps, g.n_inputs), "dt": torch.ones(batch, steps),
                      "mask": torch.ones(batch, steps)}
            add = litert_torch.signature if converter is None else converter.signature
            converter = add(_signature_name(batch), module, sample_kwargs=sample)
        content = bytes(converter.convert().model_content())
    _CONVERTED[key] = content
    return content


def _check_batch_sizes(batch_sizes) -> tuple[int, ...]:
    sizes = tuple(sorted({int(b) for b in batch_sizes}))
    if not sizes or sizes[0] < 1:
        raise ConfigError(f"batch sizes: expected positive integers, got {batch_sizes!r}")
    if 1 not in sizes:
        raise ConfigError("batch sizes must include 1 (the runner covers any batch with b1 last)")
    return sizes


def export_tflite(graph: PerceptionGraph, out_path: str | os.PathLike, steps: int, model_hash: str, *,
                  int8: str | None = None, calib=None, method: str = "minmax", scope: str = DEFAULT_SCOPE,
                  batch_sizes=DEFAULT_BATCH_SIZES, feature_spec: dict[str, Any] | None = None) -> Path:
    """Write ``out_path`` (.tflite) and its manifest; return the artefact path.

    ``int8``: None (fp32) | "static" (int8 weights and activations, calibrated on ``calib``) |
    "dynamic" | "weight" (int8 weights, float compute); ``scope`` as in ``options``. LiteRT's
    quantiser calibrates by min/max only, so ``method`` must be "minmax".
    """
    check_int8(int8, scope, method)
    if int8 is not None and method != "minmax":
        raise ConfigError(f"LiteRT int8 calibrates by min/max only (ai-edge-quantizer); got {method!r}")
    sizes = _check_batch_sizes(batch_sizes)
    steps = int(steps)
    if int8 == "static":
        if calib is None:
            raise ConfigError("static int8 needs calibration windows (calib=CalibrationSet)")
        if calib.steps != steps or calib.n_inputs != graph.n_inputs:
            raise InputShapeError(f"calibration windows are [N, {calib.steps}, {calib.n_inputs}], the "
                                  f"export is for [B, {steps}, {graph.n_inputs}]")
    from liquidedge.exporters import litert_quant

    started = time.perf_counter()
    # static int8: every channel of each quantised tensor brought to its calibrated range [-1, 1]
    ranges = None
    if int8 == "static" and scope != "all":
        from liquidedge.exporters.tflite_module import int8_ranges

        ranges = int8_ranges(graph, calib.x, calib.dt, calib.mask)
        if scope == "recurrent":  # the input projection stays float: no need to rescale it
            ranges = {"recurrent": ranges["recurrent"]}
    content = convert_fp32(graph, steps, sizes, ranges)
    signatures = {_signature_name(b): b for b in sizes}
    details: dict[str, Any] = {
        "graph_form": "unrolled", "converter": "litert-torch",
        "hoisted": ["input projection (one FULLY_CONNECTED for all steps)",
                    "step size d = dt*mask/unfolds", "solver coefficients"],
        "recurrence": ("scaled shifted state s = (h - a) / |a|" if graph.solver in ("fused", "euler")
                       else "plain state"),
        "channel_scaling": (None if ranges is None else
                            "calibrated per-channel |max| of the input, projection and recurrent outputs "
                            "folded into the weights, restored in float after each product"),
        "solver": graph.solver, "unfolds": graph.unfolds, "signatures": signatures,
        "feature_spec": feature_spec or {"n_inputs": graph.n_inputs}}
    if int8 is not None:
        from liquidedge.calibration.readers import litert_calibration_data

        data = litert_calibration_data(calib, signatures) if int8 == "static" else None
        content, qinfo = litert_quant.quantize_flatbuffer(content, int8, scope, data)
        if int8 == "static":
            qinfo["calibration"] = {"n_windows": len(calib), **calib.info}
        details["int8_scope"] = scope
        details["quantization"] = qinfo
    details.update(litert_quant.flatbuffer_op_report(content))
    details["export_seconds"] = round(time.perf_counter() - started, 3)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(content)
    os.replace(tmp, out)
    write_manifest(out, ArtefactManifest(
        target="litert", steps=steps, n_inputs=graph.n_inputs, embedding_dim=graph.embedding_dim,
        precision=precision_name(int8), model_hash=model_hash, details=details))
    return out
