"""The decoder: embedding + the memory's answer -> prediction (the twin of ``DecoderGraph``)."""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from liquidedge.errors import InputShapeError
from liquidedge.ir import DecoderGraph


class Decoder(nn.Module):
    """``prediction = tanh(concat(embedding, retrieved) @ w1 + b1) @ w2 + b2``.

    ``output_bias`` seeds b2 (e.g. the training mean of the log volatility) so training starts
    from a sensible constant forecast instead of spending its first epochs finding the level.
    """

    def __init__(self, embedding_dim: int, memory_dim: int, hidden: int = 32,
                 outputs: tuple[str, ...] = ("log_vol", "direction_logit"),
                 output_bias: np.ndarray | None = None, seed: int = 0):
        super().__init__()
        gen = torch.Generator().manual_seed(int(seed))
        z = int(embedding_dim) + int(memory_dim)
        self.outputs = tuple(outputs)
        p = len(self.outputs)
        if p < 1:
            raise InputShapeError("decoder: needs at least one output")
        self.w1 = nn.Parameter(torch.randn(z, hidden, generator=gen) / math.sqrt(z))
        self.b1 = nn.Parameter(torch.zeros(hidden))
        self.w2 = nn.Parameter(torch.randn(hidden, p, generator=gen) * (0.1 / math.sqrt(hidden)))
        b2 = torch.zeros(p) if output_bias is None else torch.as_tensor(np.asarray(output_bias, np.float32))
        if b2.shape != (p,):
            raise InputShapeError(f"decoder: output_bias must have {p} values, got {tuple(b2.shape)}")
        self.b2 = nn.Parameter(b2.clone())

    @property
    def n_outputs(self) -> int:
        return len(self.outputs)

    def forward(self, embedding: torch.Tensor, retrieved: torch.Tensor) -> torch.Tensor:
        z = torch.cat([embedding, retrieved], dim=-1)
        return torch.tanh(z @ self.w1 + self.b1) @ self.w2 + self.b2

    def to_graph(self) -> DecoderGraph:
        t = lambda p: p.detach().cpu().numpy().astype(np.float32)  # noqa: E731
        return DecoderGraph(w1=t(self.w1), b1=t(self.b1), w2=t(self.w2), b2=t(self.b2), outputs=self.outputs)

    @classmethod
    def from_graph(cls, g: DecoderGraph, embedding_dim: int) -> "Decoder":
        dec = cls(embedding_dim, g.w1.shape[0] - embedding_dim, g.w1.shape[1], g.outputs)
        with torch.no_grad():
            for name in ("w1", "b1", "w2", "b2"):
                getattr(dec, name).copy_(torch.as_tensor(getattr(g, name)))
        return dec
