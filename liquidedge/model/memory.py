"""Titans neural long-term memory with MIRAS choices, in torch: the trainable twin of ``MemoryGraph``.

The memory is a small MLP whose weights are the state; each step it takes one gradient step on
an associative loss (test-time learning), with momentum and a forgetting gate, exactly as
``MemoryGraph``'s docstring and ``reference.memory_step`` define. The gradient is written in
closed form (so it exports to any runtime and costs no autograd graph at inference) yet remains
differentiable, so the outer training loop learns the projections, gates and initial weights
*through* the inner updates.

Two execution modes:

* ``step``: exact streaming, one embedding per stream at a time. The carried state is only the
  MLP weights and their momentum, per stream: nothing grows with the length of the stream.
* ``scan``: chunked. Within a chunk every gradient is taken at the chunk-start weights (one
  batched computation), then momentum/forgetting are applied position by position. Only the
  final weights and momentum leave the chunk. ``scan(..., chunk=1)`` equals ``step`` exactly.

The hard threshold gate (update only when the surprise score exceeds ``threshold``) has no
useful gradient; training runs with threshold 0 (always update) and the deployment threshold is
calibrated afterwards from a target update rate (``liquidedge.calibration.threshold``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from liquidedge.errors import ConfigError, InputShapeError
from liquidedge.ir import ATTENTIONAL_BIASES, MemoryGraph
from liquidedge.model.checks import check_embeddings

GATES = ("data", "constant")


@dataclass
class MemoryState:
    """Per-stream memory: MLP weights and momentum, each [B, *layer shape]. Nothing else."""

    weights: list[torch.Tensor]
    momentum: list[torch.Tensor]

    @property
    def batch(self) -> int:
        return int(self.weights[0].shape[0])

    def detach(self) -> "MemoryState":
        """Cut the autograd history (truncated BPTT between training segments)."""
        return MemoryState([w.detach() for w in self.weights], [s.detach() for s in self.momentum])

    def numpy(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        return ([w.detach().cpu().numpy() for w in self.weights],
                [s.detach().cpu().numpy() for s in self.momentum])


@dataclass
class MemoryStep:
    """What one step reports: the new state, retrieval, surprise score and the gate decisions."""

    state: MemoryState
    retrieved: torch.Tensor   # [B, D] (zeros when the memory is off)
    score: torch.Tensor       # [B]    norm of the unclipped surprise gradient
    updated: torch.Tensor     # [B]    bool, score > threshold
    bypass: torch.Tensor      # [B]    bool, score > bypass_threshold


@dataclass
class MemoryScan:
    """What ``scan`` reports for a sequence of N embeddings per stream."""

    state: MemoryState
    retrieved: torch.Tensor   # [B, N, D]
    score: torch.Tensor       # [B, N]
    updated: torch.Tensor     # [B, N]
    bypass: torch.Tensor      # [B, N]


class TitansMemory(nn.Module):
    """Neural memory M (MLP, depth 1 or 2) over projections of E-dim embeddings into D dims."""

    def __init__(self, embedding_dim: int, dim: int = 16, depth: int = 2, expansion: int = 2, *,
                 residual: bool = True, attentional_bias: str = "l2", huber_delta: float = 1.0,
                 lp_p: float = 1.5, lr_max: float = 0.1, eta_max: float = 0.9, grad_clip: float = 1.0,
                 threshold: float = 0.0, bypass_threshold: float = float("inf"), gates: str = "data",
                 init_lr: float = 0.5, init_eta: float = 0.5, init_alpha: float = 0.02,
                 eps: float = 1e-6, seed: int = 0):
        super().__init__()
        if depth not in (1, 2):
            raise ConfigError(f"TitansMemory: depth must be 1 or 2, got {depth}")
        if attentional_bias not in ATTENTIONAL_BIASES:
            raise ConfigError(f"TitansMemory: unknown attentional bias {attentional_bias!r} "
                              f"(expected one of {ATTENTIONAL_BIASES})")
        if gates not in GATES:
            raise ConfigError(f"TitansMemory: gates must be one of {GATES}, got {gates!r}")
        for name, v in (("init_lr", init_lr), ("init_eta", init_eta), ("init_alpha", init_alpha)):
            if not 0.0 < v < 1.0:
                raise ConfigError(f"TitansMemory: {name} is a fraction of its maximum, in (0, 1); got {v}")
        if not 0.0 <= eta_max < 1.0 or lr_max < 0 or grad_clip <= 0 or lp_p < 1.0:
            raise ConfigError("TitansMemory: need 0 <= eta_max < 1, lr_max >= 0, grad_clip > 0, lp_p >= 1")
        e, d = int(embedding_dim), int(dim)
        self.embedding_dim, self.dim, self.depth = e, d, int(depth)
        self.residual, self.attentional_bias = bool(residual), attentional_bias
        self.huber_delta, self.lp_p = float(huber_delta), float(lp_p)
        self.lr_max, self.eta_max, self.grad_clip = float(lr_max), float(eta_max), float(grad_clip)
        self.threshold, self.bypass_threshold = float(threshold), float(bypass_threshold)
        self.eps, self.gates = float(eps), gates
        gen = torch.Generator().manual_seed(int(seed))
        self.w_k = nn.Parameter(torch.randn(e, d, generator=gen) / math.sqrt(e))
        self.w_v = nn.Parameter(torch.randn(e, d, generator=gen) / math.sqrt(e))
        self.w_q = nn.Parameter(torch.randn(e, d, generator=gen) / math.sqrt(e))
        if depth == 1:
            theta = [torch.randn(d, d, generator=gen) * 0.1]
        else:
            x = d * int(expansion)
            theta = [torch.randn(d, x, generator=gen) / math.sqrt(d), torch.randn(x, d, generator=gen) * 0.1]
        self.theta0 = nn.ParameterList([nn.Parameter(w) for w in theta])
        logit = lambda p: math.log(p / (1.0 - p))  # noqa: E731
        learn_w = gates == "data"
        for name, init in (("lr", init_lr), ("eta", init_eta), ("alpha", init_alpha)):
            w = torch.randn(e, generator=gen) * 0.01 if learn_w else torch.zeros(e)
            setattr(self, f"w_{name}", nn.Parameter(w, requires_grad=learn_w))
            setattr(self, f"b_{name}", nn.Parameter(torch.tensor(logit(init))))

    # ------------------------------------------------------------------ pieces
    def init_state(self, batch: int = 1) -> MemoryState:
        """Every stream starts from the learned initial weights ``theta0`` and zero momentum."""
        weights = [w[None].expand(batch, *w.shape) for w in self.theta0]
        return MemoryState(weights, [torch.zeros_like(w) for w in weights])

    def inputs(self, e: torch.Tensor) -> dict[str, torch.Tensor]:
        """RMS-normalise, project to k, v, q (k and q unit-normalised) and evaluate the gates."""
        x = e / torch.sqrt(torch.mean(e * e, dim=-1, keepdim=True) + self.eps)
        unit = lambda z: z / torch.sqrt(torch.sum(z * z, dim=-1, keepdim=True) + self.eps)  # noqa: E731
        return {"x": x, "k": unit(x @ self.w_k), "v": x @ self.w_v, "q": unit(x @ self.w_q),
                "lr": self.lr_max * torch.sigmoid(x @ self.w_lr + self.b_lr),
                "eta": self.eta_max * torch.sigmoid(x @ self.w_eta + self.b_eta),
                "alpha": torch.sigmoid(x @ self.w_alpha + self.b_alpha)}

    def apply_memory(self, weights: list[torch.Tensor], u: torch.Tensor) -> torch.Tensor:
        """M(u) with per-stream weights; u is [B, D] or [B, C, D] (weights [B, ...] broadcast)."""
        squeeze = u.ndim == 2
        u3 = u[:, None] if squeeze else u
        out = u3 @ weights[0] if self.depth == 1 else F.silu(u3 @ weights[0]) @ weights[1]
        out = u3 + out if self.residual else out
        return out[:, 0] if squeeze else out

    def bias_loss(self, r: torch.Tensor) -> torch.Tensor:
        """sum_j attentional_bias(r_j) over the last axis."""
        if self.attentional_bias == "l2":
            return 0.5 * (r * r).sum(-1)
        if self.attentional_bias == "huber":
            a, d = r.abs(), self.huber_delta
            return torch.where(a <= d, 0.5 * r * r, d * (a - 0.5 * d)).sum(-1)
        return (r.abs() ** self.lp_p).sum(-1) / self.lp_p

    def bias_grad(self, r: torch.Tensor) -> torch.Tensor:
        if self.attentional_bias == "l2":
            return r
        if self.attentional_bias == "huber":
            return torch.clamp(r, -self.huber_delta, self.huber_delta)
        return torch.sign(r) * r.abs() ** (self.lp_p - 1.0)

    def loss_and_grad(self, weights: list[torch.Tensor], k: torch.Tensor,
                      v: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Associative loss and its closed-form gradient w.r.t. each weight.

        k, v are [B, C, D] against weights [B, ...]: the C gradients of a chunk, all at the same
        weights, come out as [B, C, ...] in one batched computation.
        """
        if self.depth == 1:
            pred = k @ weights[0]
            pred = k + pred if self.residual else pred
            gr = self.bias_grad(pred - v)
            return self.bias_loss(pred - v), [k[..., :, None] * gr[..., None, :]]
        z = k @ weights[0]
        act = F.silu(z)
        pred = act @ weights[1]
        pred = k + pred if self.residual else pred
        r = pred - v
        gr = self.bias_grad(r)
        g_w2 = act[..., :, None] * gr[..., None, :]
        s = torch.sigmoid(z)
        g_z = (gr @ weights[1].transpose(-1, -2)) * (s * (1.0 + z * (1.0 - s)))
        g_w1 = k[..., :, None] * g_z[..., None, :]
        return self.bias_loss(r), [g_w1, g_w2]

    # ------------------------------------------------------------------ streaming
    def step(self, state: MemoryState, e, enabled: bool = True) -> MemoryStep:
        """One exact test-time step for B independent streams: e [B, E]."""
        e = check_embeddings(e, self.embedding_dim, self.w_k.dtype)
        if e.shape[0] != state.batch:
            raise InputShapeError(f"memory step: {e.shape[0]} embeddings for {state.batch} streams")
        p = self.inputs(e)
        _, grads = self.loss_and_grad(state.weights, p["k"][:, None], p["v"][:, None])
        grads = [g[:, 0] for g in grads]
        score = torch.sqrt(sum((g.reshape(g.shape[0], -1) ** 2).sum(1) for g in grads))
        scale = torch.clamp(self.grad_clip / torch.clamp(score, min=1e-12), max=1.0)
        updated = (score > self.threshold) & enabled
        bypass = (score > self.bypass_threshold) & enabled
        new_w, new_s = [], []
        for w, s, g in zip(state.weights, state.momentum, grads):
            shape = (-1,) + (1,) * (w.ndim - 1)
            s_next = p["eta"].reshape(shape) * s - (p["lr"] * scale).reshape(shape) * g
            w_next = (1.0 - p["alpha"]).reshape(shape) * w + s_next
            u = updated.reshape(shape)
            new_w.append(torch.where(u, w_next, w))
            new_s.append(torch.where(u, s_next, s))
        new_state = MemoryState(new_w, new_s)
        retrieved = self.apply_memory(new_w, p["q"]) if enabled else e.new_zeros((e.shape[0], self.dim))
        return MemoryStep(new_state, retrieved, score, updated, bypass)

    # ------------------------------------------------------------------ chunked
    def scan(self, state: MemoryState, embeddings, chunk: int = 16, enabled: bool = True) -> MemoryScan:
        """Run N embeddings per stream ([B, N, E]) in chunks of ``chunk`` positions."""
        if int(chunk) < 1:
            raise ConfigError(f"memory scan: chunk must be >= 1, got {chunk}")
        e_all = torch.as_tensor(embeddings) if not isinstance(embeddings, torch.Tensor) else embeddings
        if e_all.ndim != 3:
            raise InputShapeError(f"memory scan: expected [streams, steps, {self.embedding_dim}], "
                                  f"got {tuple(e_all.shape)}")
        b, n, _ = e_all.shape
        e_all = check_embeddings(e_all.reshape(b * n, -1), self.embedding_dim, self.w_k.dtype).reshape(b, n, -1)
        if b != state.batch:
            raise InputShapeError(f"memory scan: {b} streams for a state of {state.batch}")
        p_all = self.inputs(e_all)
        outs = {"retrieved": [], "score": [], "updated": [], "bypass": []}
        for c0 in range(0, n, int(chunk)):
            p = {k: v[:, c0:c0 + int(chunk)] for k, v in p_all.items()}
            state, out = self._chunk(state, p, enabled)
            for k in outs:
                outs[k].append(out[k])
        cat = {k: torch.cat(v, dim=1) for k, v in outs.items()}
        return MemoryScan(state, cat["retrieved"], cat["score"], cat["updated"], cat["bypass"])

    def _chunk(self, state: MemoryState, p: dict[str, torch.Tensor], enabled: bool):
        _, grads = self.loss_and_grad(state.weights, p["k"], p["v"])      # [B, C, ...] at chunk start
        b, c = p["k"].shape[:2]
        score = torch.sqrt(sum((g.reshape(b, c, -1) ** 2).sum(-1) for g in grads))
        scale = torch.clamp(self.grad_clip / torch.clamp(score, min=1e-12), max=1.0)
        updated = (score > self.threshold) & enabled
        bypass = (score > self.bypass_threshold) & enabled
        weights, momentum = list(state.weights), list(state.momentum)
        retrieved = []
        for t in range(c):
            for i, (w, s, g) in enumerate(zip(weights, momentum, grads)):
                shape = (-1,) + (1,) * (w.ndim - 1)
                s_next = p["eta"][:, t].reshape(shape) * s - (p["lr"][:, t] * scale[:, t]).reshape(shape) * g[:, t]
                w_next = (1.0 - p["alpha"][:, t]).reshape(shape) * w + s_next
                u = updated[:, t].reshape(shape)
                weights[i] = torch.where(u, w_next, w)
                momentum[i] = torch.where(u, s_next, s)
            if enabled:
                retrieved.append(self.apply_memory(weights, p["q"][:, t]))
            else:
                retrieved.append(p["q"].new_zeros((b, self.dim)))
        out = {"retrieved": torch.stack(retrieved, dim=1), "score": score, "updated": updated, "bypass": bypass}
        return MemoryState(weights, momentum), out

    # ------------------------------------------------------------------ IR conversion
    def to_graph(self, threshold: float | None = None, bypass_threshold: float | None = None) -> MemoryGraph:
        t = lambda p: p.detach().cpu().numpy().astype(np.float32)  # noqa: E731
        return MemoryGraph(
            w_k=t(self.w_k), w_v=t(self.w_v), w_q=t(self.w_q), theta0=[t(w) for w in self.theta0],
            w_lr=t(self.w_lr), b_lr=self.b_lr.item(), w_eta=t(self.w_eta), b_eta=self.b_eta.item(),
            w_alpha=t(self.w_alpha), b_alpha=self.b_alpha.item(), lr_max=self.lr_max,
            eta_max=self.eta_max, grad_clip=self.grad_clip,
            threshold=self.threshold if threshold is None else float(threshold),
            bypass_threshold=self.bypass_threshold if bypass_threshold is None else float(bypass_threshold),
            residual=self.residual, attentional_bias=self.attentional_bias,
            huber_delta=self.huber_delta, lp_p=self.lp_p, eps=self.eps)

    @classmethod
    def from_graph(cls, g: MemoryGraph) -> "TitansMemory":
        expansion = 1 if g.depth == 1 else g.theta0[0].shape[1] // g.dim
        gates = "data" if any(np.any(w != 0) for w in (g.w_lr, g.w_eta, g.w_alpha)) else "constant"
        mem = cls(g.embedding_dim, g.dim, g.depth, max(expansion, 1), residual=g.residual,
                  attentional_bias=g.attentional_bias, huber_delta=g.huber_delta, lp_p=g.lp_p,
                  lr_max=g.lr_max, eta_max=g.eta_max, grad_clip=g.grad_clip, threshold=g.threshold,
                  bypass_threshold=g.bypass_threshold, gates=gates, eps=g.eps)
        with torch.no_grad():
            if g.depth == 2:  # an expansion that does not divide evenly: take the stored shapes
                mem.theta0 = nn.ParameterList([nn.Parameter(torch.as_tensor(w).clone()) for w in g.theta0])
            for name in ("w_k", "w_v", "w_q", "w_lr", "w_eta", "w_alpha"):
                getattr(mem, name).copy_(torch.as_tensor(getattr(g, name)))
            for i, w in enumerate(g.theta0):
                mem.theta0[i].copy_(torch.as_tensor(w))
            for name in ("b_lr", "b_eta", "b_alpha"):
                getattr(mem, name).fill_(float(getattr(g, name)))
        return mem
