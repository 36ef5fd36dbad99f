"""The numpy oracle: perception forward, memory step and decoder, written for clarity.

Every target (torch, ONNX Runtime, LiteRT, Lava, the host runners) is tested against these
functions. They follow the equations in the docstrings of ``liquidedge.ir`` line by line, compute
in float64 by default, and are vectorised over a batch (windows for the perception, independent
streams for the memory) so that per-sample dt and per-stream state are part of the definition.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from liquidedge.inputs import check_embeddings, check_window
from liquidedge.ir import DecoderGraph, LiquidTitanModel, MemoryGraph, PerceptionGraph


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free form


def silu(z: np.ndarray) -> np.ndarray:
    return z * sigmoid(z)


def silu_grad(z: np.ndarray) -> np.ndarray:
    s = sigmoid(z)
    return s * (1.0 + z * (1.0 - s))


# ----------------------------------------------------------------------------- perception

def ltc_gate(g: PerceptionGraph, h: np.ndarray, x_proj: np.ndarray) -> np.ndarray:
    """f = sigmoid(x @ w_in + h @ w_rec + b), with x @ w_in + b precomputed as ``x_proj``."""
    return sigmoid(x_proj + h @ g.w_rec.astype(h.dtype))


def ltc_derivative(g: PerceptionGraph, h: np.ndarray, x_proj: np.ndarray) -> np.ndarray:
    f = ltc_gate(g, h, x_proj)
    inv_tau = 1.0 / g.tau.astype(h.dtype)
    return -(inv_tau + f) * h + f * g.a.astype(h.dtype)


def ltc_step(g: PerceptionGraph, h: np.ndarray, x_t: np.ndarray, dt_t: np.ndarray,
             mask_t: np.ndarray) -> np.ndarray:
    """Advance h [B,H] over one step of input x_t [B,F] and elapsed time dt_t [B]."""
    dtype = h.dtype
    x_proj = x_t @ g.w_in.astype(dtype) + g.bias.astype(dtype)
    d = (dt_t / g.unfolds)[:, None]
    inv_tau = 1.0 / g.tau.astype(dtype)
    a = g.a.astype(dtype)
    new = h
    for _ in range(g.unfolds):
        if g.solver == "fused":
            f = ltc_gate(g, new, x_proj)
            new = (new + d * f * a) / (1.0 + d * (inv_tau + f))
        elif g.solver == "euler":
            new = new + d * ltc_derivative(g, new, x_proj)
        else:  # rk4
            k1 = ltc_derivative(g, new, x_proj)
            k2 = ltc_derivative(g, new + 0.5 * d * k1, x_proj)
            k3 = ltc_derivative(g, new + 0.5 * d * k2, x_proj)
            k4 = ltc_derivative(g, new + d * k3, x_proj)
            new = new + d / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
    m = mask_t[:, None]
    return m * new + (1.0 - m) * h


def perception_states(g: PerceptionGraph, x, dt, mask=None, dtype=np.float64) -> np.ndarray:
    """Hidden state after every step: [B, T, H]. Validates inputs first."""
    x, dt, mask = check_window(x, dt, mask, n_inputs=g.n_inputs, dtype=dtype)
    b, t, _ = x.shape
    h = np.zeros((b, g.hidden), dtype)
    out = np.empty((b, t, g.hidden), dtype)
    for i in range(t):
        h = ltc_step(g, h, x[:, i], dt[:, i], mask[:, i])
        out[:, i] = h
    return out


def perception_forward(g: PerceptionGraph, x, dt, mask=None, dtype=np.float64) -> np.ndarray:
    """Trajectory embedding [B, E] of windows x [B,T,F] with elapsed times dt [B,T]."""
    h = perception_states(g, x, dt, mask, dtype)[:, -1]
    if g.w_out is not None:
        h = h @ g.w_out.astype(dtype) + g.b_out.astype(dtype)
    return h


# ----------------------------------------------------------------------------- memory

@dataclass
class MemoryState:
    """Per-stream memory: the MLP weights and their momentum, each with a leading stream axis."""

    weights: list[np.ndarray]   # [B, *w.shape] per layer
    momentum: list[np.ndarray]  # same shapes

    @property
    def batch(self) -> int:
        return int(self.weights[0].shape[0])

    def copy(self) -> "MemoryState":
        return MemoryState([w.copy() for w in self.weights], [s.copy() for s in self.momentum])


@dataclass
class MemoryStepResult:
    state: MemoryState
    retrieved: np.ndarray   # [B, D]
    score: np.ndarray       # [B]  surprise score: norm of the unclipped gradient
    updated: np.ndarray     # [B]  bool: score > threshold
    bypass: np.ndarray      # [B]  bool: score > bypass_threshold (ask the edge for richer input)


def init_memory_state(g: MemoryGraph, batch: int = 1, dtype=np.float64) -> MemoryState:
    weights = [np.repeat(w.astype(dtype)[None], batch, axis=0) for w in g.theta0]
    return MemoryState(weights, [np.zeros_like(w) for w in weights])


def _unit(z: np.ndarray, eps: float) -> np.ndarray:
    return z / np.sqrt(np.sum(z * z, axis=-1, keepdims=True) + eps)


def memory_inputs(g: MemoryGraph, e: np.ndarray) -> dict[str, np.ndarray]:
    """RMS-normalise the embedding, project to k, v, q and evaluate the three gates."""
    dtype = e.dtype
    x = e / np.sqrt(np.mean(e * e, axis=-1, keepdims=True) + g.eps)
    k = _unit(x @ g.w_k.astype(dtype), g.eps)
    v = x @ g.w_v.astype(dtype)
    q = _unit(x @ g.w_q.astype(dtype), g.eps)
    lr = g.lr_max * sigmoid(x @ g.w_lr.astype(dtype) + g.b_lr)
    eta = g.eta_max * sigmoid(x @ g.w_eta.astype(dtype) + g.b_eta)
    alpha = sigmoid(x @ g.w_alpha.astype(dtype) + g.b_alpha)
    return {"x": x, "k": k, "v": v, "q": q, "lr": lr, "eta": eta, "alpha": alpha}


def memory_apply(g: MemoryGraph, weights: list[np.ndarray], u: np.ndarray) -> np.ndarray:
    """M(u) for per-stream weights: u [B,D] -> [B,D]."""
    if g.depth == 1:
        out = np.einsum("bi,bij->bj", u, weights[0])
    else:
        z = np.einsum("bi,bij->bj", u, weights[0])
        out = np.einsum("bi,bij->bj", silu(z), weights[1])
    return u + out if g.residual else out


def bias_grad(g: MemoryGraph, r: np.ndarray) -> np.ndarray:
    """d attentional_bias(r) / d r, elementwise."""
    if g.attentional_bias == "l2":
        return r
    if g.attentional_bias == "huber":
        return np.clip(r, -g.huber_delta, g.huber_delta)
    return np.sign(r) * np.abs(r) ** (g.lp_p - 1.0)


def bias_loss(g: MemoryGraph, r: np.ndarray) -> np.ndarray:
    """sum_j attentional_bias(r_j): [B,D] -> [B]."""
    if g.attentional_bias == "l2":
        return 0.5 * np.sum(r * r, axis=-1)
    if g.attentional_bias == "huber":
        a = np.abs(r)
        d = g.huber_delta
        return np.sum(np.where(a <= d, 0.5 * r * r, d * (a - 0.5 * d)), axis=-1)
    return np.sum(np.abs(r) ** g.lp_p, axis=-1) / g.lp_p


def memory_loss_and_grad(g: MemoryGraph, weights: list[np.ndarray], k: np.ndarray,
                         v: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Associative loss [B] and its closed-form gradient w.r.t. each weight, per stream."""
    if g.depth == 1:
        m = np.einsum("bi,bij->bj", k, weights[0])
        pred = k + m if g.residual else m
        r = pred - v
        gr = bias_grad(g, r)
        return bias_loss(g, r), [k[:, :, None] * gr[:, None, :]]
    z = np.einsum("bi,bij->bj", k, weights[0])
    act = silu(z)
    out = np.einsum("bi,bij->bj", act, weights[1])
    pred = k + out if g.residual else out
    r = pred - v
    gr = bias_grad(g, r)
    g_w2 = act[:, :, None] * gr[:, None, :]
    g_act = np.einsum("bj,bij->bi", gr, weights[1])
    g_z = g_act * silu_grad(z)
    g_w1 = k[:, :, None] * g_z[:, None, :]
    return bias_loss(g, r), [g_w1, g_w2]


def memory_step(g: MemoryGraph, state: MemoryState, e, dtype=np.float64,
                enabled: bool = True) -> MemoryStepResult:
    """One test-time step for a batch of independent streams: e [B,E] (or [E] for one stream).

    Returns the new state, the retrieval (post-update weights), the surprise score and whether
    the update was applied. With ``enabled=False`` the memory neither learns nor answers
    (retrieved = 0): the "memory off" ablation.
    """
    e = check_embeddings(e, g.embedding_dim, dtype)
    if e.shape[0] != state.batch:
        raise ValueError(f"memory_step: {e.shape[0]} embeddings for {state.batch} streams")
    p = memory_inputs(g, e)
    _, grads = memory_loss_and_grad(g, state.weights, p["k"], p["v"])
    sq = sum(np.sum(gw.reshape(gw.shape[0], -1) ** 2, axis=1) for gw in grads)
    score = np.sqrt(sq)
    scale = np.minimum(1.0, g.grad_clip / np.maximum(score, 1e-12))
    updated = (score > g.threshold) & enabled
    bypass = (score > g.bypass_threshold) & enabled
    new_w, new_s = [], []
    for w, s, gw in zip(state.weights, state.momentum, grads):
        shape = (-1,) + (1,) * (w.ndim - 1)
        s_next = p["eta"].reshape(shape) * s - (p["lr"] * scale).reshape(shape) * gw
        w_next = (1.0 - p["alpha"]).reshape(shape) * w + s_next
        u = updated.reshape(shape)
        new_w.append(np.where(u, w_next, w))
        new_s.append(np.where(u, s_next, s))
    new_state = MemoryState(new_w, new_s)
    retrieved = memory_apply(g, new_w, p["q"]) if enabled else np.zeros((e.shape[0], g.dim), dtype)
    return MemoryStepResult(new_state, retrieved, score, updated, bypass)


# ----------------------------------------------------------------------------- decoder + stream

def decoder_forward(g: DecoderGraph, embedding: np.ndarray, retrieved: np.ndarray) -> np.ndarray:
    dtype = embedding.dtype
    z = np.concatenate([embedding, retrieved.astype(dtype)], axis=-1)
    return np.tanh(z @ g.w1.astype(dtype) + g.b1.astype(dtype)) @ g.w2.astype(dtype) + g.b2.astype(dtype)


def model_inputs(model: LiquidTitanModel, features, dt_s, mask, feedback=None, dtype=np.float64):
    """Normalise raw features, scale dt to the LTC's unit and append the fed-back prediction.

    features [B,T,F_raw], dt_s [B,T] in seconds, mask [B,T], feedback [B,P] (zeros if None).
    Returns (x [B,T,F_raw+P], dt [B,T], mask [B,T]); padding steps are zeroed.
    """
    features, dt_s, mask = check_window(features, dt_s, mask, n_inputs=model.n_features, dtype=dtype)
    x = (features - model.norm_mean.astype(dtype)) / model.norm_std.astype(dtype)
    if model.feedback:
        b, t, _ = x.shape
        fb = np.zeros((b, model.feedback), dtype) if feedback is None else np.asarray(feedback, dtype)
        x = np.concatenate([x, np.broadcast_to(fb[:, None, :], (b, t, model.feedback))], axis=-1)
    x = x * mask[..., None]
    return x, dt_s / model.dt_unit, mask


def run_stream(model: LiquidTitanModel, features, dt_s, mask, memory_on: bool = True,
               dtype=np.float64) -> dict[str, np.ndarray]:
    """Run a time-ordered sequence of N windows of ONE stream through the whole hybrid.

    Window i sees the prediction of window i-1 as its feedback channels; the memory takes one
    test-time step per window. Returns per-window embeddings, retrieved, predictions, scores,
    updated flags and the final memory state.
    """
    features = np.asarray(features)
    n = features.shape[0]
    state = init_memory_state(model.memory, 1, dtype)
    prev = np.zeros((1, model.decoder.n_outputs), dtype)
    out = {"embedding": [], "retrieved": [], "prediction": [], "score": [], "updated": []}
    for i in range(n):
        x, dt, m = model_inputs(model, features[i:i + 1], np.asarray(dt_s)[i:i + 1],
                                np.asarray(mask)[i:i + 1], prev if model.feedback else None, dtype)
        emb = perception_forward(model.perception, x, dt, m, dtype)
        res = memory_step(model.memory, state, emb, dtype, enabled=memory_on)
        state = res.state
        pred = decoder_forward(model.decoder, emb, res.retrieved)
        prev = pred
        out["embedding"].append(emb[0])
        out["retrieved"].append(res.retrieved[0])
        out["prediction"].append(pred[0])
        out["score"].append(res.score[0])
        out["updated"].append(res.updated[0])
    result = {k: np.asarray(v) for k, v in out.items()}
    result["state"] = state
    return result
