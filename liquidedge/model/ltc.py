"""The LTC perception encoder in torch: the trainable twin of ``PerceptionGraph``.

It implements exactly the equations of ``liquidedge.ir.PerceptionGraph`` (and so of
``reference.perception_forward``): the fused semi-implicit step by default, explicit Euler or
RK4 on request, per-sample dt, masked steps as no-ops, an optional NCP wiring on ``w_rec``.
Every sample of the batch carries its own dt vector, so nothing is shared across the batch
(ncps squeezes the timespans and mixes samples when batch > 1).

Gradients flow either by backpropagation through the discretised solver (``gradient="bptt"``,
the default: exact for the model we deploy) or by the adjoint sensitivity method
(``gradient="adjoint"``: ``torchdiffeq.odeint_adjoint`` over the LTC vector field with the input
held over each step), whose memory does not grow with the solver's sub-steps.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from liquidedge.errors import ConfigError
from liquidedge.ir import SOLVERS, PerceptionGraph
from liquidedge.model.checks import check_window
from liquidedge.wiring import NCPWiring

GRADIENTS = ("bptt", "adjoint")
_ADJOINT_METHODS = {"euler": "euler", "rk4": "rk4"}


def inverse_softplus(y: np.ndarray) -> np.ndarray:
    """raw such that softplus(raw) == y (y > 0), stable for tiny and large y."""
    y = np.asarray(y, np.float64)
    return y + np.log(-np.expm1(-y))


class LTCEncoder(nn.Module):
    """Liquid Time-Constant encoder: window x [B,T,F] + dt [B,T] (+ mask) -> embedding [B,E].

    ``wiring``: None (dense), an ``NCPWiring`` (whose ``units`` set ``hidden`` and whose
    ``input_mask`` also sparsifies ``w_in``), or a 0/1 [H,H] array. ``tau`` is softplus-
    parametrised so it stays > 0 whatever the optimiser does.
    """

    def __init__(self, n_inputs: int, hidden: int | None = None, *, wiring=None, solver: str = "fused",
                 unfolds: int = 1, readout: int | None = None, gradient: str = "bptt",
                 tau_range: tuple[float, float] = (0.5, 5.0), seed: int = 0):
        super().__init__()
        if solver not in SOLVERS:
            raise ConfigError(f"LTCEncoder: unknown solver {solver!r} (expected one of {SOLVERS})")
        if int(unfolds) < 1:
            raise ConfigError(f"LTCEncoder: unfolds must be >= 1, got {unfolds}")
        if int(n_inputs) < 1:
            raise ConfigError(f"LTCEncoder: n_inputs must be >= 1, got {n_inputs}")
        rec_mask, in_mask = self._masks(int(n_inputs), hidden, wiring)
        h = rec_mask.shape[0]
        self.n_inputs, self.hidden, self.solver, self.unfolds = int(n_inputs), h, solver, int(unfolds)
        self.gradient = gradient
        self.wiring_spec = wiring.to_dict() if isinstance(wiring, NCPWiring) else None
        gen = torch.Generator().manual_seed(int(seed))
        fan_in = torch.clamp(torch.as_tensor(rec_mask.sum(axis=0)), min=1.0)
        self.register_buffer("wiring_mask", torch.as_tensor(rec_mask))
        self.register_buffer("input_mask", torch.as_tensor(in_mask))
        self.w_in = nn.Parameter(torch.randn(n_inputs, h, generator=gen) / math.sqrt(n_inputs) * self.input_mask)
        self.w_rec = nn.Parameter(torch.randn(h, h, generator=gen) / torch.sqrt(fan_in) * self.wiring_mask)
        self.bias = nn.Parameter(torch.zeros(h))
        lo, hi = tau_range
        tau = lo + (hi - lo) * torch.rand(h, generator=gen)
        self.tau_raw = nn.Parameter(torch.as_tensor(inverse_softplus(tau.numpy()), dtype=torch.float32))
        self.a = nn.Parameter(torch.randn(h, generator=gen))
        if readout is not None:
            self.w_out = nn.Parameter(torch.randn(h, int(readout), generator=gen) / math.sqrt(h))
            self.b_out = nn.Parameter(torch.zeros(int(readout)))
        else:
            self.w_out = self.b_out = None

    @staticmethod
    def _masks(n_inputs: int, hidden: int | None, wiring) -> tuple[np.ndarray, np.ndarray]:
        if isinstance(wiring, NCPWiring):
            if hidden is not None and hidden != wiring.units:
                raise ConfigError(f"LTCEncoder: hidden={hidden} but the wiring has {wiring.units} units")
            return wiring.mask(), wiring.input_mask(n_inputs)
        if wiring is None:
            if hidden is None or int(hidden) < 1:
                raise ConfigError(f"LTCEncoder: hidden must be >= 1, got {hidden}")
            return np.ones((int(hidden), int(hidden)), np.float32), np.ones((n_inputs, int(hidden)), np.float32)
        m = np.asarray(wiring, np.float32)
        if m.ndim != 2 or m.shape[0] != m.shape[1] or not np.all((m == 0) | (m == 1)):
            raise ConfigError(f"LTCEncoder: wiring must be a square 0/1 mask, got shape {m.shape}")
        if hidden is not None and hidden != m.shape[0]:
            raise ConfigError(f"LTCEncoder: hidden={hidden} but the wiring mask is {m.shape}")
        return m, np.ones((n_inputs, m.shape[0]), np.float32)

    # ------------------------------------------------------------------ parameters as used
    @property
    def gradient(self) -> str:
        return self._gradient

    @gradient.setter
    def gradient(self, value: str) -> None:
        if value not in GRADIENTS:
            raise ConfigError(f"LTCEncoder: unknown gradient method {value!r} (expected one of {GRADIENTS})")
        if value == "adjoint" and self.solver not in _ADJOINT_METHODS:
            raise ConfigError(f"LTCEncoder: the adjoint method integrates the LTC vector field with an ODE "
                              f"solver, so it needs solver 'euler' or 'rk4', not {self.solver!r}")
        self._gradient = value

    def tau(self) -> torch.Tensor:
        return F.softplus(self.tau_raw)

    def rec_weight(self) -> torch.Tensor:
        return self.w_rec * self.wiring_mask

    def in_weight(self) -> torch.Tensor:
        return self.w_in * self.input_mask

    @property
    def embedding_dim(self) -> int:
        return self.hidden if self.w_out is None else int(self.w_out.shape[1])

    # ------------------------------------------------------------------ dynamics
    def derivative(self, h: torch.Tensor, x_proj: torch.Tensor, w_rec=None, inv_tau=None) -> torch.Tensor:
        """dh/dt = -(1/tau + f) h + f a with f = sigmoid(x_proj + h @ w_rec)."""
        w_rec = self.rec_weight() if w_rec is None else w_rec
        inv_tau = 1.0 / self.tau() if inv_tau is None else inv_tau
        f = torch.sigmoid(x_proj + h @ w_rec)
        return -(inv_tau + f) * h + f * self.a

    def step(self, h: torch.Tensor, x_proj: torch.Tensor, dt: torch.Tensor, m: torch.Tensor,
             w_rec: torch.Tensor, inv_tau: torch.Tensor) -> torch.Tensor:
        """One window step of the discretised solver: h [B,H], x_proj [B,H], dt [B], m [B]."""
        d = (dt / self.unfolds)[:, None]
        new = h
        for _ in range(self.unfolds):
            if self.solver == "fused":
                f = torch.sigmoid(x_proj + new @ w_rec)
                new = (new + d * f * self.a) / (1.0 + d * (inv_tau + f))
            elif self.solver == "euler":
                new = new + d * self.derivative(new, x_proj, w_rec, inv_tau)
            else:
                k1 = self.derivative(new, x_proj, w_rec, inv_tau)
                k2 = self.derivative(new + 0.5 * d * k1, x_proj, w_rec, inv_tau)
                k3 = self.derivative(new + 0.5 * d * k2, x_proj, w_rec, inv_tau)
                k4 = self.derivative(new + d * k3, x_proj, w_rec, inv_tau)
                new = new + d / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
        m = m[:, None]
        return m * new + (1.0 - m) * h

    def states(self, x, dt, mask=None) -> torch.Tensor:
        """Hidden state after every step, [B, T, H] (h starts at zero)."""
        x, dt, mask = check_window(x, dt, mask, self.n_inputs, dtype=self.w_in.dtype)
        if self.gradient == "adjoint":
            return self._states_adjoint(x, dt, mask)
        x_proj = x @ self.in_weight() + self.bias
        w_rec, inv_tau = self.rec_weight(), 1.0 / self.tau()
        h = x.new_zeros((x.shape[0], self.hidden))
        out = []
        for i in range(x.shape[1]):
            h = self.step(h, x_proj[:, i], dt[:, i], mask[:, i], w_rec, inv_tau)
            out.append(h)
        return torch.stack(out, dim=1)

    def _states_adjoint(self, x, dt, mask) -> torch.Tensor:
        from torchdiffeq import odeint_adjoint

        grid = torch.linspace(0.0, 1.0, self.unfolds + 1, dtype=x.dtype)
        params = [self.w_in, self.w_rec, self.bias, self.tau_raw, self.a]
        h = x.new_zeros((x.shape[0], self.hidden))
        out = []
        for i in range(x.shape[1]):
            # one field per step: the backward pass replays each step with its own held input
            x_t = x[:, i]
            field = _HeldInputField(self, x_t, dt[:, i] * mask[:, i])
            extra = [x_t] if x_t.requires_grad else []  # the very tensor the field reads
            h = odeint_adjoint(field, h, grid, method=_ADJOINT_METHODS[self.solver],
                               adjoint_params=params + extra)[-1]
            out.append(h)
        return torch.stack(out, dim=1)

    def forward(self, x, dt, mask=None) -> torch.Tensor:
        """Trajectory embedding [B, E]: the final state, through the readout when there is one."""
        h = self.states(x, dt, mask)[:, -1]
        if self.w_out is not None:
            h = h @ self.w_out + self.b_out
        return h

    # ------------------------------------------------------------------ IR conversion
    def to_graph(self) -> PerceptionGraph:
        """The exact numpy description every exporter and the reference run."""
        t = lambda p: p.detach().cpu().numpy().astype(np.float32)  # noqa: E731
        return PerceptionGraph(
            w_in=t(self.in_weight()), w_rec=t(self.rec_weight()), bias=t(self.bias), tau=t(self.tau()),
            a=t(self.a), wiring=t(self.wiring_mask), solver=self.solver, unfolds=self.unfolds,
            w_out=None if self.w_out is None else t(self.w_out),
            b_out=None if self.b_out is None else t(self.b_out))

    @classmethod
    def from_graph(cls, g: PerceptionGraph, gradient: str = "bptt",
                   input_mask: np.ndarray | None = None) -> "LTCEncoder":
        """Rebuild a trainable encoder from a graph (fine-tuning, tests, exporters' oracles)."""
        enc = cls(g.n_inputs, g.hidden, wiring=g.wiring, solver=g.solver, unfolds=g.unfolds,
                  readout=None if g.w_out is None else g.embedding_dim)
        with torch.no_grad():
            if input_mask is not None:
                enc.input_mask.copy_(torch.as_tensor(np.asarray(input_mask, np.float32)))
            enc.w_in.copy_(torch.as_tensor(g.w_in))
            enc.w_rec.copy_(torch.as_tensor(g.w_rec))
            enc.bias.copy_(torch.as_tensor(g.bias))
            enc.tau_raw.copy_(torch.as_tensor(inverse_softplus(g.tau), dtype=torch.float32))
            enc.a.copy_(torch.as_tensor(g.a))
            if g.w_out is not None:
                enc.w_out.copy_(torch.as_tensor(g.w_out))
                enc.b_out.copy_(torch.as_tensor(g.b_out))
        enc.gradient = gradient
        return enc


class _HeldInputField(nn.Module):
    """The LTC vector field over one step, in step-normalised time s in [0, 1]:
    dh/ds = dt * dh/dt with the input held (dt = 0 on masked steps, so they stay no-ops)."""

    def __init__(self, encoder: LTCEncoder, x_t: torch.Tensor, dt_t: torch.Tensor):
        super().__init__()
        self.encoder = [encoder]  # a list, so the encoder is not registered twice as a submodule
        self.x_t, self.dt_t = x_t, dt_t

    def forward(self, s, h):
        enc = self.encoder[0]
        x_proj = self.x_t @ enc.in_weight() + enc.bias
        return self.dt_t[:, None] * enc.derivative(h, x_proj)
