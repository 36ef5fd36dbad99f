"""int8 versions of the LiteRT perception artefact, with ai-edge-quantizer recipes.

The recipe is built per scope (see ``options``): the recurrent products are the
FULLY_CONNECTED ops whose outputs are named after the module's ``rec`` (and ``readout``) layers,
the hoisted input projection is the one named after ``proj``. The report reads the quantised flatbuffer back and lists
which operators run on int8 tensors and which stay float (the solver's division among them).
"""
from __future__ import annotations

import contextlib
import io
import tempfile
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

# the module's recurrent layer; the readout's output is the signature's output tensor
_RECURRENT_REGEX = ".*(Linear_rec|Linear_readout|_output_0_output).*"


def _recipe(int8: str, scope: str):
    from ai_edge_quantizer import recipe_manager
    from ai_edge_quantizer.recipe import TFLOperationName as Op

    rm = recipe_manager.RecipeManager()
    regex = _RECURRENT_REGEX if scope == "recurrent" else ".*"
    op = Op.ALL_SUPPORTED if scope == "all" else Op.FULLY_CONNECTED
    if int8 == "static":
        rm.add_static_config(regex=regex, operation_name=op, activation_num_bits=8, weight_num_bits=8)
    elif int8 == "dynamic":
        rm.add_dynamic_config(regex=regex, operation_name=op, num_bits=8)
    else:  # weight-only
        rm.add_weight_only_config(regex=regex, operation_name=op, num_bits=8)
    return rm.get_quantization_recipe()


def quantize_flatbuffer(fp32: bytes, int8: str, scope: str,
                        calibration: dict[str, list[dict[str, Any]]] | None) -> tuple[bytes, dict[str, Any]]:
    """Return the int8 flatbuffer and what was done (``calibration`` is needed for ``static``)."""
    from ai_edge_quantizer import quantizer

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "fp32.tflite", Path(tmp) / "int8.tflite"
        src.write_bytes(fp32)
        q = quantizer.Quantizer(str(src), _recipe(int8, scope))
        # the quantiser prints progress bars, a size summary and a debugging-mode warning
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
                warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = q.calibrate(calibration, num_threads=1) if q.need_calibration else None
            q.quantize(result, enable_progress_bar=False).export_model(str(dst), overwrite=True)
        out = dst.read_bytes()
    scheme = {"static": "int8 weights (per-channel) and int8 activations (calibrated min/max)",
              "dynamic": "int8 weights (per-channel), activations quantised at run time",
              "weight": "int8 weights (per-channel) dequantised to float, float compute"}[int8]
    return out, {"quantizer": "ai-edge-quantizer", "scheme": scheme,
                 "calibration_method": "minmax" if int8 == "static" else None}


def flatbuffer_op_report(content: bytes) -> dict[str, Any]:
    """Operators of the first signature by the dtype they compute in (int8 / float / conversion)."""
    from liquidedge.targets.litert import load_interpreter_class

    interpreter = load_interpreter_class()(model_content=content)
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    integer, floating, conversions, io_dtypes = Counter(), Counter(), Counter(), {}
    plumbing = {"RESHAPE", "SLICE", "STRIDED_SLICE", "UNPACK", "SPLIT", "CONCATENATION", "SQUEEZE",
                "EXPAND_DIMS", "TRANSPOSE"}
    for op in interpreter._get_ops_details():
        name = op["op_name"]
        if name in ("QUANTIZE", "DEQUANTIZE"):
            conversions[name] += 1
            continue
        if name in plumbing:
            continue
        dtypes = [tensors[i]["dtype"] for i in list(op["inputs"]) + list(op["outputs"]) if i >= 0 and i in tensors]
        if any(np.dtype(d) in (np.int8, np.uint8, np.int16) for d in dtypes):
            integer[name] += 1
        else:
            floating[name] += 1
    for d in interpreter.get_input_details():
        io_dtypes[d["name"]] = np.dtype(d["dtype"]).name
    return {"integer_ops": dict(sorted(integer.items())), "float_ops": dict(sorted(floating.items())),
            "conversion_ops": dict(sorted(conversions.items())), "input_dtypes": io_dtypes}
