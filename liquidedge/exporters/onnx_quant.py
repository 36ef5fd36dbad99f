"""int8 versions of the ONNX perception graph, with ONNX Runtime's quantisation tools.

What is quantised is chosen by *node name* (see ``onnx_graph.INPUT_PROJECTION``/``RECURRENT``/
``READOUT``), so a scope means the same operators whatever the solver. Static int8 is QDQ with
per-channel int8 weights and uint8 activations (the u8s8 pairing ONNX Runtime's x86 integer
kernels are built for; int8 x int8 recurrent products were measured to stay as float MatMuls
wrapped in conversions). The report lists what the runtime really executes in integer and in
float, read back from ONNX Runtime's own optimised graph, not from what we asked for.
"""
from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from liquidedge.errors import ConfigError
from liquidedge.exporters.onnx_graph import INPUT_PROJECTION, READOUT, RECURRENT

_INTEGER_OPS = ("QLinear", "QGemm", "MatMulInteger", "DynamicQuantizeMatMul", "ConvInteger",
                "MatMulIntegerToFloat", "DynamicQuantizeLinear")
_CONVERSIONS = ("QuantizeLinear", "DequantizeLinear")


def _scope_nodes(model, scope: str) -> list[str] | None:
    """Node names a scope quantises (None: every supported operator)."""
    if scope == "all":
        return None
    names = [n.name for n in model.graph.node]
    recurrent = [n for n in names if n == READOUT or n.startswith(RECURRENT)]
    return recurrent + ([INPUT_PROJECTION] if scope == "matmul" else [])


def _state_overrides(model, state_range: tuple[float, float] | None) -> dict[str, Any]:
    """Fix the int8 range of what each recurrent product reads to the state's provable box."""
    if state_range is None:
        return {}
    lo, hi = state_range
    return {n.input[0]: [{"rmin": np.float32(lo), "rmax": np.float32(hi)}]
            for n in model.graph.node if n.op_type == "MatMul" and n.name.startswith(RECURRENT)}


def quantize_static_qdq(model, reader, scope: str, method: str,
                        state_range: tuple[float, float] | None = None) -> tuple[Any, dict[str, Any]]:
    """Calibrate on ``reader`` (an ORT ``CalibrationDataReader``) and return the QDQ model.

    Each product keeps a float output (ORT runs it as MatMulIntegerToFloat: integer inputs,
    float result), so only its inputs are rounded; ``state_range`` fixes the range of the state
    the recurrent products read instead of measuring it.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    if any(n.op_type == "Scan" for n in model.graph.node):
        raise ConfigError("static int8 needs the unrolled graph form (the quantiser does not "
                          "calibrate inside a Scan body)")
    overrides = _state_overrides(model, state_range)
    with tempfile.TemporaryDirectory() as tmp, _quiet():
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        onnx.save(model, src)
        quantize_static(str(src), str(dst), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        nodes_to_quantize=_scope_nodes(model, scope), calibrate_method=methods[method],
                        calibration_providers=["CPUExecutionProvider"],
                        extra_options={"MatMulConstBOnly": False, "OpTypesToExcludeOutputQuantization": ["MatMul"],
                                       "CalibMaxIntermediateOutputs": 64, "TensorQuantOverrides": overrides})
        quantised = onnx.load(dst)
    return quantised, {"format": "QDQ", "weights": "int8 per-channel (symmetric)",
                       "activations": "uint8 per-tensor (asymmetric); product outputs stay float",
                       "calibration_method": method,
                       "state_range": None if state_range is None else list(state_range)}


def quantize_dynamic_int8(model) -> tuple[Any, dict[str, Any]]:
    """int8 weights; each matrix product quantises its input at run time (no calibration)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp, _quiet():
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        onnx.save(model, src)
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul"])
        quantised = onnx.load(dst)
    return quantised, {"format": "dynamic", "weights": "int8 per-channel",
                       "activations": "uint8, range measured per call"}


def runtime_op_report(model_bytes: bytes) -> dict[str, Any]:
    """What ONNX Runtime executes after its own fusions: integer, conversion and float operators."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        opt = Path(tmp) / "optimised.onnx"
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        so.optimized_model_filepath = str(opt)
        so.log_severity_level = 3
        ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])
        graph = onnx.load(opt).graph
    ops = Counter(n.op_type for n in graph.node)
    integer = {k: v for k, v in ops.items() if k.startswith(_INTEGER_OPS)}
    conversions = {k: v for k, v in ops.items() if k in _CONVERSIONS}
    plumbing = {"Split", "Reshape", "Unsqueeze", "Slice", "Identity", "Transpose", "Concat"}
    float_ops = {k: v for k, v in ops.items()
                 if k not in integer and k not in conversions and k not in plumbing}
    return {"runtime_ops": dict(sorted(ops.items())), "integer_ops": dict(sorted(integer.items())),
            "conversion_ops": dict(sorted(conversions.items())),
            "float_ops": dict(sorted(float_ops.items()))}


class _quiet:
    """ORT's quantiser logs a warning per node and prints histogram progress; the export report
    says what matters instead."""

    def __enter__(self):
        self._level = logging.root.manager.disable
        logging.disable(logging.WARNING)
        self._stdout = contextlib.redirect_stdout(io.StringIO())
        self._stdout.__enter__()

    def __exit__(self, *exc):
        self._stdout.__exit__(*exc)
        logging.disable(self._level)
        return False
