"""The host's memory step as one ONNX graph: ``(state, embedding) -> (state', answers)``.

Why a hand-built graph: the step is a pure function whose gradient has a closed form (see
``MemoryGraph`` and ``reference.memory_loss_and_grad``), so it needs no autograd and exports to
any runtime; building it from the IR's arrays keeps torch out of the exporter. The graph is
batched over independent streams: every state tensor has a leading stream axis ``B``, so one
call steps as many streams as have embeddings waiting.

Graph signature (``dtype`` is float32 or float64 throughout)::

    inputs   embedding [B,E], learn [B] bool, weight_i [B,*W_i], momentum_i [B,*W_i]
    outputs  new_weight_i, new_momentum_i, retrieved [B,D], prediction [B,P],
             score [B], updated [B] bool, bypass [B] bool

``learn`` masks the update per stream (False: answer from the current memory without learning,
used for duplicates); ``updated = learn & (score > threshold)``, ``bypass = learn & (score >
bypass_threshold)``. The decoder is included: ``prediction = decoder(embedding, retrieved)``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from liquidedge.errors import ConfigError
from liquidedge.ir import DecoderGraph, LiquidTitanModel, MemoryGraph
from liquidedge.targets.base import ArtefactManifest, write_manifest

OPSET = 17
HOST_TARGET = "host-memory-onnx"
DTYPES = {"float32": np.float32, "float64": np.float64}


def weight_shapes(g: MemoryGraph) -> list[tuple[int, ...]]:
    """Per-stream shapes of the memory MLP's weights (the momentum has the same shapes)."""
    return [tuple(w.shape) for w in g.theta0]


def input_names(g: MemoryGraph) -> list[str]:
    n = g.depth
    return (["embedding", "learn"] + [f"weight_{i}" for i in range(n)]
            + [f"momentum_{i}" for i in range(n)])


def output_names(g: MemoryGraph) -> list[str]:
    n = g.depth
    return ([f"new_weight_{i}" for i in range(n)] + [f"new_momentum_{i}" for i in range(n)]
            + ["retrieved", "prediction", "score", "updated", "bypass"])


@dataclass
class _Graph:
    """Accumulates nodes and constants with unique names, in one floating dtype."""

    dtype: Any
    nodes: list = field(default_factory=list)
    inits: list = field(default_factory=list)
    n: int = 0

    def _name(self, stem: str) -> str:
        self.n += 1
        return f"{stem}_{self.n}"

    def const(self, stem: str, value, dtype=None) -> str:
        from onnx import numpy_helper

        name = self._name(stem)
        arr = np.asarray(value, dtype=dtype if dtype is not None else self.dtype)
        self.inits.append(numpy_helper.from_array(arr, name))
        return name

    def ints(self, stem: str, values) -> str:
        return self.const(stem, np.asarray(values, np.int64), np.int64)

    def op(self, op_type: str, *inputs: str, out: str | None = None, **attrs) -> str:
        from onnx import helper

        name = out or self._name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [name],
                                           name=self._name("n_" + op_type), **attrs))
        return name

    # small vocabulary, named after the maths they express
    def matmul(self, a: str, b: str) -> str:
        return self.op("MatMul", a, b)

    def mul(self, a: str, b: str) -> str:
        return self.op("Mul", a, b)

    def add(self, a: str, b: str) -> str:
        return self.op("Add", a, b)

    def sub(self, a: str, b: str) -> str:
        return self.op("Sub", a, b)

    def sum_last(self, a: str, keepdims: int = 1) -> str:
        return self.op("ReduceSum", a, self.ints("ax", [-1]), keepdims=keepdims)

    def unit(self, a: str, eps: float) -> str:
        """l2-normalise the last axis: a / sqrt(sum(a^2) + eps)."""
        norm = self.op("Sqrt", self.add(self.sum_last(self.mul(a, a)), self.const("eps", eps)))
        return self.op("Div", a, norm)

    def row(self, a: str) -> str:
        """[B,N] -> [B,1,N]: one row vector per stream, for batched matmuls."""
        return self.op("Unsqueeze", a, self.ints("ax", [1]))

    def col(self, a: str) -> str:
        """[B,1,N] -> [B,N,1]."""
        return self.op("Transpose", a, perm=[0, 2, 1])


def _inputs(b: _Graph, g: MemoryGraph, e: str) -> dict[str, str]:
    """RMS-normalise, project to k, q, v and the lr/eta/alpha gates with ONE MatMul, normalise k
    and q together; k, q, v come out as row vectors [B,1,D], the gates as [B,1,1]."""
    eps, d = g.eps, g.dim
    mean_sq = b.op("ReduceMean", b.mul(e, e), axes=[-1], keepdims=1)
    x = b.op("Div", e, b.op("Sqrt", b.add(mean_sq, b.const("eps", eps))))
    gate_w = np.stack([g.w_lr, g.w_eta, g.w_alpha], axis=1)                  # [E,3]
    w_all = np.concatenate([g.w_k, g.w_q, g.w_v, gate_w], axis=1)            # [E,3D+3]
    b_all = np.concatenate([np.zeros(3 * d), [g.b_lr, g.b_eta, g.b_alpha]])
    proj = b.add(b.matmul(x, b.const("w_all", w_all)), b.const("b_all", b_all))
    from onnx import helper

    kq, v, gates = (b._name(n) for n in ("kq", "v", "gates"))
    b.nodes.append(helper.make_node("Split", [proj, b.ints("split", [2 * d, d, 3])], [kq, v, gates],
                                    name=b._name("n_Split"), axis=1))
    kq = b.op("Reshape", kq, b.ints("shape", [-1, 2, d]))                    # [B,2,D]
    kq = b.unit(kq, eps)
    k, q = b._name("k"), b._name("q")
    b.nodes.append(helper.make_node("Split", [kq, b.ints("split", [1, 1])], [k, q],
                                    name=b._name("n_Split"), axis=1))          # [B,1,D] each
    gates = b.mul(b.op("Sigmoid", gates), b.const("gate_max", [g.lr_max, g.eta_max, 1.0]))
    gates = b.op("Unsqueeze", gates, b.ints("ax", [2]))                      # [B,3,1]
    lr, eta, alpha = b._name("lr"), b._name("eta"), b._name("alpha")
    b.nodes.append(helper.make_node("Split", [gates, b.ints("split", [1, 1, 1])], [lr, eta, alpha],
                                    name=b._name("n_Split"), axis=1))          # [B,1,1] each
    return {"k": k, "v": b.row(v), "q": q, "lr": lr, "eta": eta, "alpha": alpha}


def _bias_grad(b: _Graph, g: MemoryGraph, r: str) -> str:
    if g.attentional_bias == "l2":
        return r
    if g.attentional_bias == "huber":
        return b.op("Clip", r, b.const("lo", -g.huber_delta), b.const("hi", g.huber_delta))
    power = b.op("Pow", b.op("Abs", r), b.const("p_minus_1", g.lp_p - 1.0))
    return b.mul(b.op("Sign", r), power)


def _apply(b: _Graph, g: MemoryGraph, weights: list[str], u: str) -> str:
    """M(u) with per-stream weights; u [B,1,D] -> [B,1,D]."""
    if g.depth == 1:
        out = b.matmul(u, weights[0])
    else:
        z = b.matmul(u, weights[0])
        out = b.matmul(b.mul(z, b.op("Sigmoid", z)), weights[1])
    return b.add(u, out) if g.residual else out


def _grads(b: _Graph, g: MemoryGraph, weights: list[str], k: str, v: str) -> list[str]:
    """Closed-form gradient of the associative loss w.r.t. each weight, per stream."""
    k_col = b.col(k)
    if g.depth == 1:
        m = b.matmul(k, weights[0])
        pred = b.add(k, m) if g.residual else m
        gr = _bias_grad(b, g, b.sub(pred, v))
        return [b.matmul(k_col, gr)]
    z = b.matmul(k, weights[0])                                      # [B,1,X]
    sig = b.op("Sigmoid", z)
    act = b.mul(z, sig)
    out = b.matmul(act, weights[1])
    pred = b.add(k, out) if g.residual else out
    gr = _bias_grad(b, g, b.sub(pred, v))                            # [B,1,D]
    g_w2 = b.matmul(b.col(act), gr)                                  # [B,X,D]
    g_act = b.matmul(gr, b.op("Transpose", weights[1], perm=[0, 2, 1]))  # [B,1,X]
    one = b.const("one", 1.0)
    silu_grad = b.mul(sig, b.add(one, b.mul(z, b.sub(one, sig))))
    g_w1 = b.matmul(k_col, b.mul(g_act, silu_grad))                  # [B,D,X]
    return [g_w1, g_w2]


def build_memory_model(model: LiquidTitanModel | tuple[MemoryGraph, DecoderGraph],
                       dtype: str = "float32", metadata: dict[str, str] | None = None):
    """Return the step as an ``onnx.ModelProto`` (see the module docstring for its signature)."""
    import onnx
    from onnx import TensorProto, helper

    g, dec = (model.memory, model.decoder) if isinstance(model, LiquidTitanModel) else model
    if dtype not in DTYPES:
        raise ConfigError(f"memory graph dtype {dtype!r}: expected one of {sorted(DTYPES)}")
    b = _Graph(DTYPES[dtype])
    n = g.depth
    weights = [f"weight_{i}" for i in range(n)]
    momenta = [f"momentum_{i}" for i in range(n)]
    p = _inputs(b, g, "embedding")
    grads = _grads(b, g, weights, p["k"], p["v"])
    sq = None
    for gw in grads:
        s = b.op("ReduceSum", b.mul(gw, gw), b.ints("ax", [1, 2]), keepdims=0)   # [B]
        sq = s if sq is None else b.add(sq, s)
    score = b.op("Sqrt", sq, out="score")
    scale = b.op("Min", b.const("one", 1.0),
                 b.op("Div", b.const("clip", g.grad_clip), b.op("Max", score, b.const("tiny", 1e-12))))
    scale = b.op("Unsqueeze", scale, b.ints("ax", [1, 2]))                       # [B,1,1]
    learn = "learn"
    b.op("And", learn, b.op("Greater", score, b.const("threshold", g.threshold)), out="updated")
    b.op("And", learn, b.op("Greater", score, b.const("bypass_threshold", g.bypass_threshold)),
         out="bypass")
    upd3 = b.op("Unsqueeze", "updated", b.ints("ax", [1, 2]))
    step = b.mul(p["lr"], scale)
    keep = b.sub(b.const("one", 1.0), p["alpha"])
    new_w = []
    for i, (w, s, gw) in enumerate(zip(weights, momenta, grads)):
        s_next = b.sub(b.mul(p["eta"], s), b.mul(step, gw))
        w_next = b.add(b.mul(keep, w), s_next)
        new_w.append(b.op("Where", upd3, w_next, w, out=f"new_weight_{i}"))
        b.op("Where", upd3, s_next, s, out=f"new_momentum_{i}")
    retrieved = b.op("Squeeze", _apply(b, g, new_w, p["q"]), b.ints("ax", [1]), out="retrieved")
    z = b.op("Concat", "embedding", retrieved, axis=-1)
    hidden = b.op("Tanh", b.add(b.matmul(z, b.const("dec_w1", dec.w1)), b.const("dec_b1", dec.b1)))
    b.op("Add", b.matmul(hidden, b.const("dec_w2", dec.w2)), b.const("dec_b2", dec.b2), out="prediction")

    fl = TensorProto.DOUBLE if dtype == "float64" else TensorProto.FLOAT
    shapes = weight_shapes(g)
    e_dim, d_dim = g.embedding_dim, g.dim

    def info(name, elem, shape):
        return helper.make_tensor_value_info(name, elem, shape)

    inputs = ([info("embedding", fl, ["B", e_dim]), info("learn", TensorProto.BOOL, ["B"])]
              + [info(w, fl, ["B", *sh]) for w, sh in zip(weights, shapes)]
              + [info(s, fl, ["B", *sh]) for s, sh in zip(momenta, shapes)])
    outputs = ([info(f"new_weight_{i}", fl, ["B", *sh]) for i, sh in enumerate(shapes)]
               + [info(f"new_momentum_{i}", fl, ["B", *sh]) for i, sh in enumerate(shapes)]
               + [info("retrieved", fl, ["B", d_dim]), info("prediction", fl, ["B", dec.n_outputs]),
                  info("score", fl, ["B"]), info("updated", TensorProto.BOOL, ["B"]),
                  info("bypass", TensorProto.BOOL, ["B"])])
    graph = helper.make_graph(b.nodes, "liquidedge_memory_step", inputs, outputs, initializer=b.inits)
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                   producer_name="liquidedge")
    onnx_model.ir_version = 8
    for key, value in (metadata or {}).items():
        entry = onnx_model.metadata_props.add()
        entry.key, entry.value = str(key), str(value)
    onnx.checker.check_model(onnx_model, full_check=True)
    return onnx_model


def export_memory(model: LiquidTitanModel, path: str | os.PathLike, dtype: str = "float32") -> Path:
    """Write the step to ``path`` (.onnx) with a manifest naming its source model and shapes."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx_model = build_memory_model(model, dtype, {"model_hash": model.content_hash()})
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(onnx_model.SerializeToString())
    os.replace(tmp, out)
    g = model.memory
    manifest = ArtefactManifest(
        target=HOST_TARGET, steps=0, n_inputs=g.embedding_dim, embedding_dim=g.embedding_dim,
        precision="fp64" if dtype == "float64" else "fp32", model_hash=model.content_hash(),
        details={"depth": g.depth, "dim": g.dim, "weight_shapes": [list(s) for s in weight_shapes(g)],
                 "outputs": list(model.decoder.outputs), "dtype": dtype,
                 "inputs": input_names(g), "graph_outputs": output_names(g),
                 "operators": len(onnx_model.graph.node)})
    write_manifest(out, manifest)
    return out
