"""A torch module rebuilt from a ``PerceptionGraph``'s numpy arrays, only to feed ``litert-torch``.

litert-torch converts torch programs, so the LiteRT exporter needs one; it is built here from the
IR (never from the training code) and follows the same hoisted, shifted-state equations as the
ONNX graph (see ``onnx_graph``), so the two artefacts compute the same thing the same way:
the input projection and the solver coefficients for all T steps are computed up front, the
recurrence holds only the operators that depend on h, and it runs on the scaled state
``s = (h - a) / c`` whose every unit spans [-1, 1] (what an int8 product needs). This module imports torch: import it
lazily, from the exporter only.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from liquidedge.exporters.onnx_graph import state_scale
from liquidedge.ir import PerceptionGraph


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


class PerceptionModule(nn.Module):
    """``forward(x [B,T,F], dt [B,T], mask [B,T]) -> embedding [B,E]``, weights frozen as buffers."""

    def __init__(self, g: PerceptionGraph, steps: int, input_scale: np.ndarray | None = None):
        super().__init__()
        self.solver = g.solver
        self.unfolds = g.unfolds
        self.steps = int(steps)
        shifted = g.solver in ("fused", "euler")
        self.shifted = shifted
        bias = g.bias.astype(np.float64)
        w_in, w_rec = g.w_in.astype(np.float64), g.w_rec.astype(np.float64)
        scale = state_scale(g) if shifted else np.ones(g.hidden)
        if shifted:  # state s = (h - a) / c; h @ w_rec = s @ (c w_rec) + a @ w_rec
            bias = bias + g.a.astype(np.float64) @ w_rec
            w_rec = scale[:, None] * w_rec
        self.input_scaled = input_scale is not None
        if self.input_scaled:  # x / r, with r folded into w_in: same product, even channel ranges
            r = np.asarray(input_scale, np.float64)
            self.register_buffer("inv_input_scale", _t(1.0 / r))
            w_in = r[:, None] * w_in
        # nn.Linear weights become FULLY_CONNECTED ops with constant filters: what the quantiser targets
        self.proj = nn.Linear(g.n_inputs, g.hidden)
        self.rec = nn.Linear(g.hidden, g.hidden, bias=False)
        with torch.no_grad():
            self.proj.weight.copy_(_t(w_in.T))
            self.proj.bias.copy_(_t(bias))
            self.rec.weight.copy_(_t(w_rec.T))
        self.register_buffer("a", _t(g.a))
        self.register_buffer("scale", _t(scale))
        self.register_buffer("neg_a_c", _t(-g.a.astype(np.float64) / scale))
        self.register_buffer("inv_tau", _t(1.0 / g.tau.astype(np.float64)))
        self.readout = None
        if g.w_out is not None:
            self.readout = nn.Linear(g.hidden, g.embedding_dim)
            with torch.no_grad():
                self.readout.weight.copy_(_t(g.w_out.T))
                self.readout.bias.copy_(_t(g.b_out))
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor, dt: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.input_scaled:
            x = x * self.inv_input_scale
        xp = self.proj(x)                                      # [B,T,H], hoisted
        d = (dt * mask).unsqueeze(-1)
        if self.unfolds != 1:
            d = d * (1.0 / self.unfolds)
        d_tau = d * self.inv_tau
        xs, ds = torch.unbind(xp, 1), torch.unbind(d, 1)
        if self.shifted:
            c = 1.0 + d_tau if self.solver == "fused" else 1.0 - d_tau
            cs, ks = torch.unbind(c, 1), torch.unbind(d_tau * self.neg_a_c, 1)
            s = dt[:, :1] * 0.0 + self.neg_a_c                  # h0 = 0  ->  s0 = -a/c, [B,H]
            for t in range(self.steps):
                for _ in range(self.unfolds):
                    fd = torch.sigmoid(self.rec(s) + xs[t]) * ds[t]
                    if self.solver == "fused":
                        s = (s + ks[t]) / (cs[t] + fd)
                    else:
                        s = s * (cs[t] - fd) + ks[t]
            h = s * self.scale + self.a
        else:
            h = dt[:, :1] * 0.0 + torch.zeros_like(self.a)
            for t in range(self.steps):
                for _ in range(self.unfolds):
                    h = self._rk4(h, xs[t], ds[t])
        return self.readout(h) if self.readout is not None else h

    def _deriv(self, h: torch.Tensor, xp: torch.Tensor) -> torch.Tensor:
        f = torch.sigmoid(self.rec(h) + xp)
        return f * (self.a - h) - h * self.inv_tau

    def _rk4(self, h: torch.Tensor, xp: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        k1 = self._deriv(h, xp)
        k2 = self._deriv(h + 0.5 * d * k1, xp)
        k3 = self._deriv(h + 0.5 * d * k2, xp)
        k4 = self._deriv(h + d * k3, xp)
        return h + d * (1.0 / 6.0) * (k1 + 2.0 * (k2 + k3) + k4)
