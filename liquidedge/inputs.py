"""Validation of model inputs, shared by the reference and every runner.

Runtimes crash (or, worse, silently compute garbage) on NaNs, wrong shapes or dt <= 0; checking
once here, before any runtime is called, gives every target the same clear error.
"""
from __future__ import annotations

import numpy as np

from liquidedge.errors import InputShapeError


def check_window(x, dt, mask=None, *, n_inputs: int | None = None, steps: int | None = None,
                 dtype=np.float32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (x [B,T,F], dt [B,T], mask [B,T]) as ``dtype`` arrays, or raise InputShapeError.

    Rules: everything finite; mask is 0/1 (bool accepted; omitted means all valid); dt > 0 on
    valid steps and >= 0 on padding steps (padding is a no-op whatever its dt).
    """
    x = np.asarray(x)
    dt = np.asarray(dt)
    if x.ndim != 3:
        raise InputShapeError(f"x: expected [batch, steps, features], got shape {x.shape}")
    b, t, f = x.shape
    if b == 0 or t == 0:
        raise InputShapeError(f"x: empty batch or window, shape {x.shape}")
    if n_inputs is not None and f != n_inputs:
        raise InputShapeError(f"x: expected {n_inputs} features per step, got {f}")
    if steps is not None and t != steps:
        raise InputShapeError(f"x: this model's window has {steps} steps, got {t}")
    if dt.shape != (b, t):
        raise InputShapeError(f"dt: expected shape {(b, t)} to match x, got {dt.shape}")
    if mask is None:
        mask = np.ones((b, t), dtype)
    mask = np.asarray(mask)
    if mask.shape != (b, t):
        raise InputShapeError(f"mask: expected shape {(b, t)} to match x, got {mask.shape}")
    for name, arr in (("x", x), ("dt", dt), ("mask", mask)):
        if arr.dtype.kind not in "fiub":
            raise InputShapeError(f"{name}: expected a numeric array, got dtype {arr.dtype}")
    mask = mask.astype(dtype)
    if not np.all((mask == 0) | (mask == 1)):
        raise InputShapeError("mask: expected only 0 and 1")
    x = x.astype(dtype, copy=False)
    dt = dt.astype(dtype, copy=False)
    bad = ~np.isfinite(x)
    if bad.any():
        i = tuple(int(v) for v in np.argwhere(bad)[0])
        raise InputShapeError(f"x: non-finite value at [batch {i[0]}, step {i[1]}, feature {i[2]}]")
    if not np.all(np.isfinite(dt)):
        i = tuple(int(v) for v in np.argwhere(~np.isfinite(dt))[0])
        raise InputShapeError(f"dt: non-finite value at [batch {i[0]}, step {i[1]}]")
    bad_dt = (mask == 1) & (dt <= 0) | (dt < 0)
    if bad_dt.any():
        i = tuple(int(v) for v in np.argwhere(bad_dt)[0])
        raise InputShapeError(f"dt: expected elapsed time > 0 on valid steps (>= 0 on padding), "
                              f"got {float(dt[i]):g} at [batch {i[0]}, step {i[1]}]")
    return x, dt, mask


def check_embeddings(e, dim: int, dtype=np.float32) -> np.ndarray:
    """Return embeddings as [B, dim] ``dtype``; a single vector becomes a batch of one."""
    arr = np.asarray(e)
    if arr.dtype.kind not in "fiub":
        raise InputShapeError(f"embedding: expected a numeric array, got dtype {arr.dtype}")
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise InputShapeError(f"embedding: expected [batch, {dim}], got shape {np.asarray(e).shape}")
    if not np.all(np.isfinite(arr)):
        raise InputShapeError("embedding: contains NaN or inf")
    return arr.astype(dtype, copy=False)
