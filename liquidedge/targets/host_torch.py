"""The memory step in torch: closed-form gradient, batched over streams, CPU or CUDA.

Inference-time only (no autograd: the gradient is the closed form of ``MemoryGraph``), so the
whole step is a handful of batched matmuls that ``torch.compile`` can fuse. The state tensors
live on the runner's device between steps; only embeddings in and answers out cross to numpy.
This is the only host module that imports torch.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from liquidedge import reference
from liquidedge.errors import ConfigError
from liquidedge.inputs import check_embeddings
from liquidedge.ir import LiquidTitanModel, MemoryGraph
from liquidedge.targets.host import HostOutputs, check_learn

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _bias_grad(g: MemoryGraph, r: torch.Tensor) -> torch.Tensor:
    if g.attentional_bias == "l2":
        return r
    if g.attentional_bias == "huber":
        return r.clamp(-g.huber_delta, g.huber_delta)
    return torch.sign(r) * r.abs().pow(g.lp_p - 1.0)


class _Step(torch.nn.Module):
    """The pure step as a module holding the (fixed) projections and decoder as buffers.

    Written for few kernel launches (each costs microseconds on CPU, more than the maths at
    these widths): one fused projection for k, q, v and the three gates, ``rms_norm`` for every
    normalisation, ``silu_backward`` for the chain rule through the activation, fused
    multiply-adds for the update, and no update work at all when no stream crosses the surprise
    threshold.
    """

    def __init__(self, model: LiquidTitanModel, dtype: torch.dtype, branchless: bool = False):
        super().__init__()
        g, d = model.memory, model.decoder
        self.g = g
        self.dim = g.dim
        self.branchless = branchless  # for torch.compile: no data-dependent Python branches

        def buf(name, arr):
            self.register_buffer(name, torch.as_tensor(np.asarray(arr, np.float64), dtype=dtype))

        gate_w = np.stack([g.w_lr, g.w_eta, g.w_alpha], axis=1)
        buf("proj", np.concatenate([g.w_k, g.w_q, g.w_v, gate_w], axis=1))        # [E, 3D+3]
        buf("proj_b", np.concatenate([np.zeros(3 * g.dim), [g.b_lr, g.b_eta, g.b_alpha]]))
        buf("gate_max", [g.lr_max, g.eta_max, 1.0])
        buf("unit_w", np.full(g.dim, g.dim ** -0.5))
        buf("dec_w1", d.w1)
        buf("dec_b1", d.b1)
        buf("dec_w2", d.w2)
        buf("dec_b2", d.b2)

    def apply_memory(self, weights: list[torch.Tensor], u: torch.Tensor) -> torch.Tensor:
        if self.g.depth == 1:
            out = torch.bmm(u, weights[0])
        else:
            out = torch.bmm(torch.nn.functional.silu(torch.bmm(u, weights[0])), weights[1])
        return u + out if self.g.residual else out

    def grads(self, weights: list[torch.Tensor], k: torch.Tensor, v: torch.Tensor) -> list[torch.Tensor]:
        g = self.g
        k_col = k.transpose(1, 2)
        if g.depth == 1:
            m = torch.bmm(k, weights[0])
            gr = _bias_grad(g, (m + (k - v)) if g.residual else m - v)
            return [torch.bmm(k_col, gr)]
        z = torch.bmm(k, weights[0])
        act = torch.nn.functional.silu(z)
        out = torch.bmm(act, weights[1])
        gr = _bias_grad(g, (out + (k - v)) if g.residual else out - v)
        g_w2 = torch.bmm(act.transpose(1, 2), gr)
        g_act = torch.bmm(gr, weights[1].transpose(1, 2))
        g_z = torch.ops.aten.silu_backward(g_act, z)     # g_act * silu'(z), one kernel
        return [torch.bmm(k_col, g_z), g_w2]

    def forward(self, e: torch.Tensor, learn: torch.Tensor, *state: torch.Tensor):
        g = self.g
        n, d, b = g.depth, self.dim, e.shape[0]
        weights, momenta = list(state[:n]), list(state[n:])
        x = torch.nn.functional.rms_norm(e, (e.shape[-1],), eps=g.eps)   # e / sqrt(mean(e^2) + eps)
        proj = torch.addmm(self.proj_b, x, self.proj)
        # unit(z) = z / sqrt(sum(z^2) + eps) = rms_norm(z, eps / D) / sqrt(D): k and q in one call
        kq = torch.nn.functional.rms_norm(proj[:, :2 * d].reshape(b, 2, d), (d,), weight=self.unit_w,
                                          eps=g.eps / d)
        k, q = kq[:, 0:1], kq[:, 1:2]                                        # [B,1,D]
        v = proj[:, 2 * d:3 * d].unsqueeze(1)
        gates = (torch.sigmoid(proj[:, 3 * d:]) * self.gate_max).unsqueeze(-1)
        lr, eta, alpha = gates[:, 0:1], gates[:, 1:2], gates[:, 2:3]        # [B,1,1]
        grads = self.grads(weights, k, v)
        score = torch.linalg.vector_norm(torch.cat([gw.reshape(b, -1) for gw in grads], dim=1), dim=1)
        updated = learn & (score > g.threshold)
        bypass = learn & (score > g.bypass_threshold)
        n_up = -1 if self.branchless else int(updated.sum())
        if n_up == 0:                       # nobody learns: the state is returned untouched
            new_w, new_s = weights, momenta
        else:
            scale = torch.clamp(torch.reciprocal(torch.clamp(score, min=1e-12)) * g.grad_clip, max=1.0)
            step = lr * scale[:, None, None]
            keep = 1.0 - alpha
            u = updated[:, None, None]
            new_w, new_s = [], []
            for w, s, gw in zip(weights, momenta, grads):
                s_next = torch.addcmul(eta * s, step, gw, value=-1.0)
                w_next = torch.addcmul(s_next, keep, w)
                if n_up == b:
                    new_w.append(w_next)
                    new_s.append(s_next)
                else:
                    new_w.append(torch.where(u, w_next, w))
                    new_s.append(torch.where(u, s_next, s))
        retrieved = self.apply_memory(new_w, q).squeeze(1)
        hidden = torch.tanh(torch.addmm(self.dec_b1, torch.cat([e, retrieved], dim=-1), self.dec_w1))
        prediction = torch.addmm(self.dec_b2, hidden, self.dec_w2)
        return (*new_w, *new_s, retrieved, prediction, score, updated, bypass)


class TorchHostRunner:
    """``step(state, embeddings, learn)`` in torch; ``device`` "auto" picks CUDA when present.

    ``threads`` (CPU): the step's tensors are tiny, so intra-op threads only add hand-offs, and
    on a busy machine OpenMP's spinning made it ~10x slower in our measurements; the default is 1.
    ``torch.set_num_threads`` is process-wide, so pass ``None`` to leave torch's setting alone.
    """

    name = "torch"

    def __init__(self, model: LiquidTitanModel, device: str = "auto", dtype: str = "float32",
                 compile: bool = False, threads: int | None = 1):
        if dtype not in _DTYPES:
            raise ConfigError(f"torch host dtype {dtype!r}: expected one of {sorted(_DTYPES)}")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if threads is not None and device == "cpu":
            torch.set_num_threads(int(threads))
        self.memory, self.decoder = model.memory, model.decoder
        self.device = torch.device(device)
        self._on_cuda = self.device.type == "cuda"
        self.dtype = _DTYPES[dtype]
        self.np_dtype = np.float64 if dtype == "float64" else np.float32
        self.module = _Step(model, self.dtype, branchless=compile).to(self.device).eval()
        self.compiled = bool(compile)
        self._fn = torch.compile(self.module, dynamic=True) if compile else self.module
        self._theta0 = [torch.as_tensor(np.asarray(w, np.float64), dtype=self.dtype, device=self.device)
                        for w in self.memory.theta0]

    def init_state(self, n: int) -> list:
        w = [t.unsqueeze(0).repeat(n, *([1] * t.ndim)) for t in self._theta0]
        return w + [torch.zeros_like(t) for t in w]

    @torch.no_grad()
    def step(self, state, embeddings, learn=None):
        e = check_embeddings(embeddings, self.memory.embedding_dim, self.np_dtype)
        learn = check_learn(learn, e.shape[0])
        e_t = torch.from_numpy(np.ascontiguousarray(e))
        learn_t = torch.from_numpy(learn)
        if self._on_cuda:
            e_t, learn_t = e_t.to(self.device), learn_t.to(self.device)
        outs = self._fn(e_t, learn_t, *state)
        n = 2 * self.memory.depth
        retrieved, prediction, score, updated, bypass = outs[n:]
        # two device->host copies instead of five: answers as one float block, flags as one bool block
        d, p = retrieved.shape[1], prediction.shape[1]
        floats = torch.cat([retrieved, prediction, score[:, None]], dim=1).cpu().numpy()
        flags = torch.stack([updated, bypass], dim=1).cpu().numpy()
        out = HostOutputs(floats[:, :d], floats[:, d:d + p], floats[:, d + p], flags[:, 0], flags[:, 1])
        return list(outs[:n]), out

    def _index(self, rows) -> torch.Tensor:
        return torch.as_tensor(np.asarray(rows, np.int64), device=self.device)

    def take(self, state, rows):
        rows = np.asarray(rows)
        if rows.size == 1:
            r = int(rows[0])
            return [s[r:r + 1] for s in state]
        idx = self._index(rows)
        return [s.index_select(0, idx) for s in state]

    @torch.no_grad()
    def put(self, state, rows, part):
        rows = np.asarray(rows)
        if rows.size == 1:
            r = int(rows[0])
            for s, p in zip(state, part):
                s[r:r + 1].copy_(p)
            return state
        idx = self._index(rows)
        for s, p in zip(state, part):
            s.index_copy_(0, idx, p)
        return state

    def concat(self, a, b):
        return [torch.cat([x, y]) for x, y in zip(a, b)]

    def to_numpy(self, state) -> reference.MemoryState:
        arrs = [s.detach().cpu().numpy().copy() for s in state]
        n = self.memory.depth
        return reference.MemoryState(arrs[:n], arrs[n:])

    def from_numpy(self, state: reference.MemoryState) -> list:
        return [torch.as_tensor(np.asarray(s), dtype=self.dtype, device=self.device).clone()
                for s in state.weights + state.momentum]

    def describe(self) -> dict[str, Any]:
        return {"backend": "torch", "device": str(self.device), "dtype": str(self.dtype).replace("torch.", ""),
                "compiled": self.compiled, "threads": torch.get_num_threads()}
