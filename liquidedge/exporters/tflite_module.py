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

    def __init__(self, g: PerceptionGraph, steps: int, ranges: dict[str, np.ndarray] | None = None):
        """``ranges`` (for static int8; see ``int8_ranges``) rescales the products so that every
        channel of each quantised tensor spans about [-1, 1]: the input channels (``input``, divided
        before the projection), the projection's and the recurrent product's output units
        (``projection``/``recurrent``, divided inside the weights and multiplied back in float
        after the product). The function computed is the same; only int8 rounding sees it."""
        super().__init__()
        ranges = ranges or {}
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
        self.scaled = {k: k in ranges for k in ("input", "projection", "recurrent")}
        if "input" in ranges:  # x / r, r folded into w_in
            r = np.asarray(ranges["input"], np.float64)
            self.register_buffer("inv_input_scale", _t(1.0 / r))
            w_in = r[:, None] * w_in
        if "projection" in ranges:
            p = np.asarray(ranges["projection"], np.float64)
            self.register_buffer("projection_scale", _t(p))
            w_in, bias = w_in / p[None, :], bias / p
        if "recurrent" in ranges:
            q = np.asarray(ranges["recurrent"], np.float64)
            self.register_buffer("recurrent_scale", _t(q))
            w_rec = w_rec / q[None, :]
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

    def _recurrent(self, s: torch.Tensor) -> torch.Tensor:
        z = self.rec(s)
        return z * self.recurrent_scale if self.scaled["recurrent"] else z

    def forward(self, x: torch.Tensor, dt: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.scaled["input"]:
            x = x * self.inv_input_scale
        xp = self.proj(x)                                      # [B,T,H], hoisted
        if self.scaled["projection"]:
            xp = xp * self.projection_scale
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
                    fd = torch.sigmoid(self._recurrent(s) + xs[t]) * ds[t]
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
        f = torch.sigmoid(self._recurrent(h) + xp)
        return f * (self.a - h) - h * self.inv_tau

    def _rk4(self, h: torch.Tensor, xp: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        k1 = self._deriv(h, xp)
        k2 = self._deriv(h + 0.5 * d * k1, xp)
        k3 = self._deriv(h + 0.5 * d * k2, xp)
        k4 = self._deriv(h + d * k3, xp)
        return h + d * (1.0 / 6.0) * (k1 + 2.0 * (k2 + k3) + k4)


def int8_ranges(g: PerceptionGraph, x: np.ndarray, dt: np.ndarray, mask: np.ndarray,
                floor: float = 1e-6) -> dict[str, np.ndarray]:
    """Per-channel |max| of the input, of the projection's output and of the recurrent product's
    output over calibration windows (numpy reference states), for ``PerceptionModule(ranges=)``."""
    from liquidedge import reference

    def top(v: np.ndarray) -> np.ndarray:
        m = np.abs(v).max(axis=0) if v.size else np.ones(v.shape[-1])
        return np.where(m > floor, m, 1.0)

    valid = np.asarray(mask, bool)
    xv = np.asarray(x, np.float64)[valid]                                # [n, F]
    bias = g.bias.astype(np.float64)
    shifted = g.solver in ("fused", "euler")
    if shifted:
        bias = bias + g.a.astype(np.float64) @ g.w_rec.astype(np.float64)
    states = reference.perception_states(g, x, dt, mask)                 # [N, T, H] after each step
    h_prev = np.concatenate([np.zeros_like(states[:, :1]), states[:, :-1]], axis=1)[valid]
    drive = (h_prev - g.a.astype(np.float64)) if shifted else h_prev     # what the product reads, x c
    return {"input": top(xv), "projection": top(xv @ g.w_in.astype(np.float64) + bias),
            "recurrent": top(drive @ g.w_rec.astype(np.float64))}
