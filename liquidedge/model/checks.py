"""Input validation for the torch modules, with the same rules and errors as ``liquidedge.inputs``.

A NaN or a dt <= 0 fed into training would not crash: it would quietly poison the weights. The
checks are a handful of reductions per batch, cheap next to the LTC's T sequential steps.
"""
from __future__ import annotations

import numpy as np
import torch

from liquidedge.errors import InputShapeError


def as_tensor(value, dtype=torch.float32) -> torch.Tensor:
    """numpy/lists become tensors of ``dtype``; tensors keep their graph (only cast if needed)."""
    if isinstance(value, torch.Tensor):
        return value if value.dtype == dtype else value.to(dtype)
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiub":
        raise InputShapeError(f"expected a numeric array, got dtype {arr.dtype}")
    return torch.as_tensor(arr.astype(np.float64 if dtype == torch.float64 else np.float32))


def check_window(x, dt, mask=None, n_inputs: int | None = None,
                 dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return (x [B,T,F], dt [B,T], mask [B,T]) tensors, or raise InputShapeError.

    Same rules as ``liquidedge.inputs.check_window``: finite values, 0/1 mask, dt > 0 on valid
    steps and >= 0 on padding.
    """
    x, dt = as_tensor(x, dtype), as_tensor(dt, dtype)
    if x.ndim != 3:
        raise InputShapeError(f"x: expected [batch, steps, features], got shape {tuple(x.shape)}")
    b, t, f = x.shape
    if b == 0 or t == 0:
        raise InputShapeError(f"x: empty batch or window, shape {tuple(x.shape)}")
    if n_inputs is not None and f != n_inputs:
        raise InputShapeError(f"x: expected {n_inputs} features per step, got {f}")
    if tuple(dt.shape) != (b, t):
        raise InputShapeError(f"dt: expected shape {(b, t)} to match x, got {tuple(dt.shape)}")
    mask = torch.ones((b, t), dtype=dtype) if mask is None else as_tensor(mask, dtype)
    if tuple(mask.shape) != (b, t):
        raise InputShapeError(f"mask: expected shape {(b, t)} to match x, got {tuple(mask.shape)}")
    with torch.no_grad():
        if not bool(((mask == 0) | (mask == 1)).all()):
            raise InputShapeError("mask: expected only 0 and 1")
        if not bool(torch.isfinite(x).all()):
            i = [int(v) for v in torch.nonzero(~torch.isfinite(x))[0]]
            raise InputShapeError(f"x: non-finite value at [batch {i[0]}, step {i[1]}, feature {i[2]}]")
        if not bool(torch.isfinite(dt).all()):
            i = [int(v) for v in torch.nonzero(~torch.isfinite(dt))[0]]
            raise InputShapeError(f"dt: non-finite value at [batch {i[0]}, step {i[1]}]")
        bad = ((mask == 1) & (dt <= 0)) | (dt < 0)
        if bool(bad.any()):
            i = [int(v) for v in torch.nonzero(bad)[0]]
            raise InputShapeError(f"dt: expected elapsed time > 0 on valid steps (>= 0 on padding), "
                                  f"got {float(dt[i[0], i[1]]):g} at [batch {i[0]}, step {i[1]}]")
    return x, dt, mask


def check_embeddings(e, dim: int, dtype=torch.float32) -> torch.Tensor:
    """Embeddings as [B, dim]; a single vector becomes a batch of one."""
    e = as_tensor(e, dtype)
    if e.ndim == 1:
        e = e[None, :]
    if e.ndim != 2 or e.shape[1] != dim:
        raise InputShapeError(f"embedding: expected [batch, {dim}], got shape {tuple(e.shape)}")
    with torch.no_grad():
        if not bool(torch.isfinite(e).all()):
            raise InputShapeError("embedding: contains NaN or inf")
    return e
