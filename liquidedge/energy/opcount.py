"""Operation and memory-traffic counts of one perception inference, by dtype.

The counts follow the expression tree of ``liquidedge.reference.ltc_step`` (what every artefact
computes), per window step:

* input projection ``x @ w_in + b`` once per step (the input is held over the unfolds);
* per unfold, the recurrent matmul ``h @ w_rec`` plus the solver's elementwise work, e.g. for
  the fused step ``z = xp + hW; f = sigmoid(z); h' = (h + d f a) / (1 + d (1/tau + f))``:
  4 adds, 3 multiplies, 1 division and 1 sigmoid per unit;
* the mask blend ``m h' + (1 - m) h``: 2 multiplies and 1 add per unit;
* the readout ``h @ w_out + b_out`` once per window.

Dense runtimes (ONNX Runtime, LiteRT) multiply the whole ``w_rec``; a sparse target (Loihi) only
the synapses that exist, so ``sparse=True`` counts ``wiring.sum()`` instead of H*H.
Weights are re-read from memory every time they are used (a conservative assumption: small
models stay in cache, which the energy table accounts for by picking the cache level).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from liquidedge.errors import ConfigError
from liquidedge.ir import PerceptionGraph

# precision label (ArtefactManifest.precision) -> (matmul dtype, elementwise dtype, weight bytes)
PRECISIONS: dict[str, tuple[str, str, int]] = {
    "fp64": ("fp64", "fp64", 8),
    "fp32": ("fp32", "fp32", 4),
    "fp16": ("fp16", "fp16", 2),
    "int8-dynamic": ("int8", "fp32", 1),   # int8 weights, activations quantised on the fly
    "int8-weight": ("fp32", "fp32", 1),    # int8 weights dequantised, computed in float
    "int8-static": ("int8", "int8", 1),    # full-integer graph
    "int8": ("int8", "int8", 1),
}

# Elementwise work per hidden unit and per unfold, by solver (adds, muls, divs, sigmoids),
# read off the reference's expressions (see module docstring).
_SOLVER_OPS: dict[str, tuple[int, int, int, int]] = {
    "fused": (4, 3, 1, 1),
    # z; f; -(1/tau + f) h + f a (2 adds, 2 muls); h + d * dh (1 add, 1 mul)
    "euler": (4, 3, 0, 1),
    # 4 derivative evaluations (3 adds incl. z, 2 muls, 1 sigmoid each), 3 intermediate states
    # (1 mul, 1 add each), the weighted sum k1 + 2k2 + 2k3 + k4 (3 adds, 2 muls), * d/6 and + h.
    "rk4": (4 * 3 + 3 + 3 + 1, 4 * 2 + 3 + 2 + 1, 0, 4),
}
_RK4_MATMULS = 4


INT8_SCOPES = ("recurrent", "matmul", "all")  # as the exporters record them
_BYTES = {"fp64": 8, "fp32": 4, "fp16": 2, "int8": 1}


def precision_dtypes(precision: str, int8_scope: str | None = None) -> tuple[str, str, str]:
    """(input-projection dtype, recurrent/readout matmul dtype, elementwise dtype) of an artefact.

    ``int8_scope`` refines "int8-static" the way the exporters record it in the manifest
    (``details["int8_scope"]``): "recurrent" quantises the per-step recurrent products and the
    readout (the hoisted input projection and the elementwise solver stay float), "matmul" every
    matrix product, "all" the whole graph."""
    key = precision.lower()
    if key not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r} for the energy estimate "
                          f"(expected one of {sorted(PRECISIONS)})")
    mm, ew, _ = PRECISIONS[key]
    if key in ("int8-static", "int8") and int8_scope is not None:
        if int8_scope not in INT8_SCOPES:
            raise ConfigError(f"int8 scope {int8_scope!r}: expected one of {INT8_SCOPES}")
        if int8_scope == "recurrent":
            return "fp32", "int8", "fp32"
        if int8_scope == "matmul":
            return "int8", "int8", "fp32"
    return mm, mm, ew


@dataclass(frozen=True)
class OpCounts:
    """Per-inference counts for one window of ``steps`` steps (batch of one)."""

    steps: int
    macs: int                 # multiply-accumulates in matmuls (all of them)
    adds: int                 # elementwise adds/subtractions
    muls: int                 # elementwise multiplies
    divs: int                 # elementwise divisions
    sigmoids: int             # sigmoid evaluations
    weight_bytes_read: int    # bytes of weights streamed per inference
    weight_bytes: int         # bytes of all weights (the working set that must stay in cache)
    activation_bytes: int     # bytes of activations read and written by elementwise ops
    input_bytes: int          # the window itself (x, dt, mask), read once
    matmul_dtype: str
    elementwise_dtype: str
    sparse: bool
    input_macs: int = 0       # of ``macs``, those of the input projection ...
    input_dtype: str = ""     # ... which may run in another dtype (int8 scope "recurrent": float)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def count_perception_ops(g: PerceptionGraph, steps: int, precision: str = "fp32",
                         sparse: bool = False, int8_scope: str | None = None) -> OpCounts:
    """Count the work of one inference of ``g`` over a window of ``steps`` steps."""
    if int(steps) < 1:
        raise ConfigError(f"steps must be >= 1, got {steps}")
    steps = int(steps)
    in_dtype, mm_dtype, ew_dtype = precision_dtypes(precision, int8_scope)
    _, _, wbytes = PRECISIONS[precision.lower()]  # weight storage (int8-weight: 1 byte, float compute)
    in_wbytes = 1 if in_dtype == "int8" else wbytes
    ew_bytes = _BYTES[ew_dtype]
    f, h, u = g.n_inputs, g.hidden, g.unfolds
    rec = int(g.wiring.sum()) if sparse else h * h
    adds_u, muls_u, divs_u, sig_u = _SOLVER_OPS[g.solver]
    matmuls_per_unfold = _RK4_MATMULS if g.solver == "rk4" else 1

    macs = steps * (f * h + u * matmuls_per_unfold * rec)
    adds = steps * (h + u * adds_u * h + h)          # bias, solver, mask blend
    muls = steps * (u * muls_u * h + 2 * h)
    divs = steps * (u * divs_u * h)
    sigmoids = steps * (u * sig_u * h)
    vec_params = 3 * h                                 # bias, 1/tau, a
    weight_bytes_read = steps * (f * h * in_wbytes + u * matmuls_per_unfold * rec * wbytes) \
        + steps * vec_params * ew_bytes
    weight_bytes = f * h * in_wbytes + rec * wbytes + vec_params * ew_bytes
    if g.w_out is not None:
        e = g.embedding_dim
        macs += h * e
        adds += e
        weight_bytes_read += h * e * wbytes + e * ew_bytes
        weight_bytes += h * e * wbytes + e * ew_bytes
    # every elementwise op reads two operands and writes one result
    activation_bytes = 3 * (adds + muls + divs + sigmoids) * ew_bytes
    input_bytes = steps * (f + 2) * 4
    return OpCounts(steps=steps, macs=macs, adds=adds, muls=muls, divs=divs, sigmoids=sigmoids,
                    weight_bytes_read=weight_bytes_read, weight_bytes=weight_bytes,
                    activation_bytes=activation_bytes, input_bytes=input_bytes,
                    matmul_dtype=mm_dtype, elementwise_dtype=ew_dtype, sparse=sparse,
                    input_macs=steps * f * h, input_dtype=in_dtype)
