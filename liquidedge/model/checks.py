"""Input validation for the torch modules, with the same rules and errors as ``liquidedge.inputs``.

A NaN or a dt <= 0 fed into training would not crash: it would quietly poison the weights. The
checks are a handful of reductions per batch, cheap next to the LTC's T sequential steps.
"""
from __future__ import annotations

import numpy as np
import torch

from liquidedge import inputs
from liquidedge.errors import InputShapeError


def as_tensor(value, dtype=torch.float32) -> torch.Tensor:
    """numpy/lists become tensors of ``dtype``; tensors keep their graph (only cast if needed)."""
    if isinstance(value, torch.Tensor):
        return value if value.dtype == dtype else value.to(dtype)
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiub":
        raise InputShapeError(f"expected a numeric array, got dtype {arr.dtype}")
    return torch.as_tensor(arr.astype(np.float64 if dtype == torch.float64 else np.float32))


def _numpy_view(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def check_window(x, dt, mask=None, n_inputs: int | None = None,
                 dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return (x [B,T,F], dt [B,T], mask [B,T]) tensors, or raise InputShapeError.

    The rules are ``liquidedge.inputs.check_window``'s, applied to a no-copy numpy view, so the
    torch modules and every runner refuse exactly the same inputs with the same messages.
    """
    x, dt = as_tensor(x, dtype), as_tensor(dt, dtype)
    if mask is None:
        mask = torch.ones(tuple(dt.shape), dtype=dtype)
    mask = as_tensor(mask, dtype)
    inputs.check_window(_numpy_view(x), _numpy_view(dt), _numpy_view(mask), n_inputs=n_inputs)
    return x, dt, mask


def check_embeddings(e, dim: int, dtype=torch.float32) -> torch.Tensor:
    """Embeddings as [B, dim]; a single vector becomes a batch of one (rules of ``liquidedge.inputs``)."""
    e = as_tensor(e, dtype)
    inputs.check_embeddings(_numpy_view(e), dim)
    return e[None, :] if e.ndim == 1 else e
