"""The Liquid-Titan hybrid: LTC perception -> Titans memory -> decoder, one window at a time.

For a time-ordered stream of windows, window i is encoded by the LTC into an embedding, the
memory takes one test-time step on it (retrieving with its post-update weights), and the decoder
turns (embedding, retrieved) into a prediction. That prediction is appended, constant over the
steps, as ``feedback`` input channels of window i+1: the memory's answer comes back to the LNN.
This is ``reference.run_stream`` in torch, vectorised over B independent streams so training
can run several stretches of history in parallel, each with its own memory state.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from liquidedge.errors import ConfigError, InputShapeError
from liquidedge.ir import LiquidTitanModel
from liquidedge.model.decoder import Decoder
from liquidedge.model.ltc import LTCEncoder
from liquidedge.model.memory import MemoryState, TitansMemory


@dataclass
class StreamOutput:
    """Per-window results of ``LiquidTitan.run`` plus what the next call must carry on with."""

    prediction: torch.Tensor   # [B, N, P]
    embedding: torch.Tensor    # [B, N, E]
    retrieved: torch.Tensor    # [B, N, D]
    score: torch.Tensor        # [B, N]
    updated: torch.Tensor      # [B, N] bool
    state: MemoryState         # memory after the last window
    last_prediction: torch.Tensor  # [B, P]: the feedback for the next window


class LiquidTitan(nn.Module):
    """Perception + memory + decoder with the previous prediction fed back into the perception."""

    def __init__(self, encoder: LTCEncoder, memory: TitansMemory, decoder: Decoder, n_features: int,
                 feedback: bool = True):
        super().__init__()
        self.encoder, self.memory, self.decoder = encoder, memory, decoder
        self.n_features = int(n_features)
        self.feedback = decoder.n_outputs if feedback else 0
        if encoder.n_inputs != self.n_features + self.feedback:
            raise InputShapeError(f"encoder takes {encoder.n_inputs} inputs but the hybrid feeds "
                                  f"{self.n_features} features + {self.feedback} feedback channels")
        if memory.embedding_dim != encoder.embedding_dim:
            raise InputShapeError(f"memory takes {memory.embedding_dim}-dim embeddings, the encoder "
                                  f"makes {encoder.embedding_dim}")
        if decoder.w1.shape[0] != encoder.embedding_dim + memory.dim:
            raise InputShapeError("decoder input size must be embedding_dim + memory dim")

    @classmethod
    def build(cls, n_features: int, *, hidden: int = 32, wiring=None, solver: str = "fused",
              unfolds: int = 1, readout: int | None = None, gradient: str = "bptt", mem_dim: int = 16,
              mem_depth: int = 2, mem_expansion: int = 2, memory_options: dict[str, Any] | None = None,
              decoder_hidden: int = 32, outputs: tuple[str, ...] = ("log_vol", "direction_logit"),
              output_bias: np.ndarray | None = None, feedback: bool = True, seed: int = 0) -> "LiquidTitan":
        """A fresh, seeded hybrid. Fed-back channels start with small input weights: they carry
        un-normalised predictions (a log volatility of about -7), unlike the standardised features."""
        n_fb = len(outputs) if feedback else 0
        enc = LTCEncoder(n_features + n_fb, None if wiring is not None else hidden, wiring=wiring,
                         solver=solver, unfolds=unfolds, readout=readout, gradient=gradient, seed=seed)
        if n_fb:
            with torch.no_grad():
                enc.w_in[n_features:] *= 0.05
        mem = TitansMemory(enc.embedding_dim, mem_dim, mem_depth, mem_expansion, seed=seed + 1,
                           **(memory_options or {}))
        dec = Decoder(enc.embedding_dim, mem_dim, decoder_hidden, outputs, output_bias, seed=seed + 2)
        return cls(enc, mem, dec, n_features, feedback)

    def window_inputs(self, x: torch.Tensor, mask: torch.Tensor, prev: torch.Tensor | None) -> torch.Tensor:
        """Normalised features [B,T,F] + the previous prediction on every step; padding zeroed."""
        if self.feedback:
            b, t, _ = x.shape
            fb = x.new_zeros((b, self.feedback)) if prev is None else prev
            x = torch.cat([x, fb[:, None, :].expand(b, t, self.feedback)], dim=-1)
        return x * mask[..., None]

    def run(self, x, dt, mask, state: MemoryState | None = None, prev: torch.Tensor | None = None,
            memory_on: bool = True) -> StreamOutput:
        """Run N consecutive windows of B streams: x [B,N,T,F] normalised, dt [B,N,T] in the LTC's
        time unit, mask [B,N,T]. ``state``/``prev`` continue a previous call (None: a fresh start)."""
        x, dt, mask = (torch.as_tensor(np.asarray(a, np.float32)) if not isinstance(a, torch.Tensor) else a
                       for a in (x, dt, mask))
        if x.ndim != 4 or x.shape[-1] != self.n_features:
            raise InputShapeError(f"x: expected [streams, windows, steps, {self.n_features}], got {tuple(x.shape)}")
        if dt.shape != x.shape[:3] or mask.shape != x.shape[:3]:
            raise InputShapeError(f"dt/mask: expected {tuple(x.shape[:3])}, got {tuple(dt.shape)}/{tuple(mask.shape)}")
        b, n = x.shape[:2]
        state = self.memory.init_state(b) if state is None else state
        if state.batch != b:
            raise InputShapeError(f"state holds {state.batch} streams, x has {b}")
        outs: dict[str, list[torch.Tensor]] = {k: [] for k in ("prediction", "embedding", "retrieved",
                                                               "score", "updated")}
        for i in range(n):
            inp = self.window_inputs(x[:, i], mask[:, i], prev)
            emb = self.encoder(inp, dt[:, i], mask[:, i])
            step = self.memory.step(state, emb, enabled=memory_on)
            state = step.state
            pred = self.decoder(emb, step.retrieved)
            prev = pred
            for k, v in (("prediction", pred), ("embedding", emb), ("retrieved", step.retrieved),
                         ("score", step.score), ("updated", step.updated)):
                outs[k].append(v)
        st = {k: torch.stack(v, dim=1) for k, v in outs.items()}
        return StreamOutput(st["prediction"], st["embedding"], st["retrieved"], st["score"], st["updated"],
                            state, prev)

    # ------------------------------------------------------------------ IR conversion
    def to_ir(self, norm_mean, norm_std, dt_unit: float = 1.0, data_spec: dict | None = None,
              calibration: dict | None = None, training: dict | None = None,
              threshold: float | None = None, bypass_threshold: float | None = None) -> LiquidTitanModel:
        """The deployable model (plain numpy) with the frozen normalisation and thresholds."""
        norm_mean = np.asarray(norm_mean, np.float32)
        if norm_mean.shape != (self.n_features,):
            raise InputShapeError(f"norm_mean: expected {self.n_features} values, got {norm_mean.shape}")
        return LiquidTitanModel(
            perception=self.encoder.to_graph(),
            memory=self.memory.to_graph(threshold, bypass_threshold),
            decoder=self.decoder.to_graph(), norm_mean=norm_mean, norm_std=np.asarray(norm_std, np.float32),
            dt_unit=dt_unit, feedback=self.feedback, data_spec=dict(data_spec or {}),
            calibration=dict(calibration or {}), training=dict(training or {}))

    @classmethod
    def from_ir(cls, model: LiquidTitanModel, gradient: str = "bptt") -> "LiquidTitan":
        """A trainable hybrid holding exactly the weights of a saved model."""
        if model.feedback not in (0, model.decoder.n_outputs):
            raise ConfigError(f"model feedback {model.feedback} is neither 0 nor the output count")
        enc = LTCEncoder.from_graph(model.perception, gradient=gradient)
        mem = TitansMemory.from_graph(model.memory)
        dec = Decoder.from_graph(model.decoder, enc.embedding_dim)
        return cls(enc, mem, dec, model.n_features, feedback=bool(model.feedback))
