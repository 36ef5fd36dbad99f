"""Build the LTC perception as an ONNX graph, straight from a ``PerceptionGraph``'s arrays.

Why it is written by hand and not traced from torch: the exporter must not need torch, and the
shape of the graph decides the speed. At batch 1 a 64-step LTC is ~1,000 tiny operators when
written naively, and ONNX Runtime pays a fixed cost per operator, so the graph is shaped to need
as few operators inside the recurrence as possible:

* everything that does not depend on h is *hoisted* out of the recurrence and computed for all
  T steps at once: the input projection ``x @ w_in + bias`` (one MatMul), the step size
  ``d = dt * mask / unfolds`` (the mask folded into d: a step with d = 0 is an exact no-op for
  every solver, so no select is needed), and the per-step solver coefficients;
* the fused solver runs on the *shifted, scaled* state ``s = (h - a) / c`` (``c = |a|``, floored),
  which turns ``h' = (h + d f a) / (1 + d/tau + d f)`` into ``s' = (s + k) / (q + d f)`` with
  ``k = -(a/c) d / tau`` and ``q = 1 + d / tau`` precomputed, and folds ``a @ w_rec`` into the
  projection and ``c`` into ``w_rec``: 6 operators per step and unfold (Gemm, Sigmoid, Mul, Add,
  Add, Div). Every unit's state then spans [-1, 1], which is what lets an int8 recurrent product
  keep its precision (one per-tensor scale fits all units);
* the per-step slices come from one ``Split`` per hoisted tensor, not one Slice per step.

Two forms of the recurrence are offered: ``unrolled`` (T copies of the step) and ``scan`` (one
ONNX ``Scan`` whose body is the step, a smaller file). Measured side by side
(``benchmarks/perception.py``) they are within a few percent of each other in ONNX Runtime at
batch 1 and 256 (both ~3x faster than a naive unrolled graph); ``unrolled`` is the default
because ORT's quantiser cannot calibrate inside a Scan body and LiteRT runs the same structure.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from liquidedge.errors import ConfigError
from liquidedge.ir import PerceptionGraph

FORMS = ("unrolled", "scan")
OPSET = 17
INPUT_PROJECTION = "input_projection"   # node names the int8 scopes select by
RECURRENT = "recurrent"
READOUT = "readout"


@dataclass
class _Builder:
    """Accumulates nodes and initialisers with unique names."""

    nodes: list = field(default_factory=list)
    inits: list = field(default_factory=list)
    counter: int = 0
    split_bias: bool = False

    def name(self, stem: str) -> str:
        self.counter += 1
        return f"{stem}_{self.counter}"

    def const(self, stem: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        name = self.name(stem)
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], stem: str | None = None, n_out: int = 1,
           node_name: str | None = None, **attrs) -> str | list[str]:
        from onnx import helper

        outs = [self.name(stem or op_type.lower()) for _ in range(n_out)]
        name = node_name or self.name(f"n_{op_type}")
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=name, **attrs))
        return outs[0] if n_out == 1 else outs

    def linear(self, h: str, w: str, bias: str, node_name: str) -> str:
        """h @ w + bias: one Gemm (fastest in float), or MatMul + Add when ``split_bias`` is set,
        because ORT's int8 path only turns a MatMul (not a Gemm with a varying bias) into int8."""
        if not self.split_bias:
            return self.op("Gemm", [h, w, bias], "z", node_name=node_name)
        # the product reads its own copy of h: a quantiser then rounds only what the integer
        # MatMul reads, not the state the solver carries on in float (ORT drops the Identity)
        h_in = self.op("Identity", [h], "mm_in")
        return self.op("Add", [self.op("MatMul", [h_in, w], "hw", node_name=node_name), bias], "z")


STATE_SCALE_FLOOR = 1e-3


def state_scale(g: PerceptionGraph) -> np.ndarray:
    """c = |a| floored: the scaled state (h - a) / c of every unit lies in [-1, 1]."""
    return np.maximum(np.abs(g.a.astype(np.float64)), STATE_SCALE_FLOOR)


def _hoisted(b: _Builder, g: PerceptionGraph, steps: int, shifted: bool,
             input_scale: np.ndarray | None) -> dict[str, str]:
    """Everything independent of h, for all steps at once; returns [B,T,H]/[B,T,1] tensor names."""
    f32 = np.float32
    u = g.unfolds
    inv_tau = (1.0 / g.tau.astype(np.float64)).astype(f32)
    bias = g.bias.astype(np.float64)
    if shifted:  # h = s*c + a, so h @ w_rec = s @ (c w_rec) + a @ w_rec: the constant joins the bias
        bias = bias + g.a.astype(np.float64) @ g.w_rec.astype(np.float64)
    x, w_in = "x", g.w_in.astype(np.float64)
    if input_scale is not None:  # x / r in the graph, r folded into w_in: the same product
        r = np.asarray(input_scale, np.float64)
        x = b.op("Mul", ["x", b.const("inv_input_scale", (1.0 / r).astype(f32))], "x_scaled")
        w_in = r[:, None] * w_in
    xp = b.op("MatMul", [x, b.const("w_in", w_in.astype(f32))], "xw", node_name=INPUT_PROJECTION)
    xp = b.op("Add", [xp, b.const("bias", bias.astype(f32))], "xproj")       # [B,T,H]
    d = b.op("Mul", ["dt", "mask"], "dtm")
    if u != 1:
        d = b.op("Mul", [d, b.const("inv_unfolds", np.array(1.0 / u, f32))], "d")
    d = b.op("Unsqueeze", [d, b.const("axis2", np.array([2], np.int64))], "d3")  # [B,T,1]
    d_tau = b.op("Mul", [d, b.const("inv_tau", inv_tau)], "d_tau")              # [B,T,H]
    out = {"xproj": xp, "d": d}
    neg_a_c = (-g.a.astype(np.float64) / state_scale(g)).astype(f32)
    if g.solver == "fused":
        out["c"] = b.op("Add", [d_tau, b.const("one", np.array(1.0, f32))], "c")  # 1 + d/tau
        out["k"] = b.op("Mul", [d_tau, b.const("neg_a_c", neg_a_c)], "k")         # -(a/c) d/tau
    elif g.solver == "euler":
        out["c"] = b.op("Sub", [b.const("one", np.array(1.0, f32)), d_tau], "c")  # 1 - d/tau
        out["k"] = b.op("Mul", [d_tau, b.const("neg_a_c", neg_a_c)], "k")
    return out


def _gate_times_d(b: _Builder, w_rec: str, u: str, xp: str, d: str) -> str:
    """d * sigmoid(u @ w_rec + xp): the synaptic gate both one-step solvers scale by."""
    z = b.linear(u, w_rec, xp, b.name(RECURRENT))
    f = b.op("Sigmoid", [z], "f")
    return b.op("Mul", [f, d], "fd")


def _step_fused(b: _Builder, w_rec: str, u: str, xp: str, d: str, c: str, k: str) -> str:
    gd = _gate_times_d(b, w_rec, u, xp, d)
    den = b.op("Add", [c, gd], "den")
    num = b.op("Add", [u, k], "num")
    return b.op("Div", [num, den], "u")


def _step_euler(b: _Builder, w_rec: str, u: str, xp: str, d: str, c: str, k: str) -> str:
    # s' = s * (c - d f) + k  with c = 1 - d/tau, k = -(a/c) d/tau  (s = (h - a) / c)
    gd = _gate_times_d(b, w_rec, u, xp, d)
    coef = b.op("Sub", [c, gd], "coef")
    uc = b.op("Mul", [u, coef], "uc")
    return b.op("Add", [uc, k], "u")


def _step_rk4(b: _Builder, w_rec: str, h: str, xp: str, d: str, consts: dict[str, str]) -> str:
    """Classic RK4 on dh/dt = f (a - h) - h / tau, written plainly (no shifted state)."""

    def deriv(state: str) -> str:
        z = b.linear(state, w_rec, xp, b.name(RECURRENT))
        f = b.op("Sigmoid", [z], "f")
        am = b.op("Sub", [consts["a"], state], "a_minus_h")
        fa = b.op("Mul", [f, am], "fa")
        ht = b.op("Mul", [state, consts["inv_tau"]], "h_tau")
        return b.op("Sub", [fa, ht], "dh")

    half = b.op("Mul", [d, consts["half"]], "half_d")
    k1 = deriv(h)
    k2 = deriv(b.op("Add", [h, b.op("Mul", [half, k1])]))
    k3 = deriv(b.op("Add", [h, b.op("Mul", [half, k2])]))
    k4 = deriv(b.op("Add", [h, b.op("Mul", [d, k3])]))
    s = b.op("Add", [k1, k4])
    s = b.op("Add", [s, b.op("Mul", [consts["two"], b.op("Add", [k2, k3])])])
    sixth = b.op("Mul", [d, consts["sixth"]], "d6")
    return b.op("Add", [h, b.op("Mul", [sixth, s])], "h")


def _split_steps(b: _Builder, name: str, steps: int, width: int) -> list[str]:
    """[B,T,W] -> T tensors [B,W] with one Reshape + one Split."""
    flat = b.op("Reshape", [name, b.const("shape", np.array([-1, steps * width], np.int64))], name + "_flat")
    if steps == 1:
        return [flat]
    return b.op("Split", [flat, b.const("split", np.full(steps, width, np.int64))], name + "_t",
                n_out=steps, axis=1)


def _rk4_consts(b: _Builder, g: PerceptionGraph) -> dict[str, str]:
    f32 = np.float32
    return {"a": b.const("a", g.a), "inv_tau": b.const("inv_tau_h", (1.0 / g.tau).astype(f32)),
            "half": b.const("half", np.array(0.5, f32)), "two": b.const("two", np.array(2.0, f32)),
            "sixth": b.const("sixth", np.array(1.0 / 6.0, f32))}


def _recurrent_weight(g: PerceptionGraph, shifted: bool) -> np.ndarray:
    w = g.w_rec.astype(np.float64)
    return (state_scale(g)[:, None] * w if shifted else w).astype(np.float32)


def _initial_state(b: _Builder, g: PerceptionGraph, shifted: bool) -> str:
    """h0 = 0 as a [B,H] tensor (the batch taken from dt), or s0 = -a/c for the scaled state."""
    batch_rows = b.op("Slice", ["dt", b.const("s0", np.array([0], np.int64)),
                                b.const("s1", np.array([1], np.int64)),
                                b.const("ax1", np.array([1], np.int64))], "dt0")  # [B,1]
    start = -g.a.astype(np.float64) / state_scale(g) if shifted else np.zeros(g.hidden)
    zeros = b.op("Mul", [batch_rows, b.const("zero_h", np.zeros((1, g.hidden), np.float32))], "zeros")
    return b.op("Add", [zeros, b.const("state0", start.astype(np.float32))], "state0")


def _final_state(b: _Builder, g: PerceptionGraph, shifted: bool, state: str) -> str:
    """h = s * c + a for the scaled state; h itself otherwise."""
    if not shifted:
        return state
    hc = b.op("Mul", [state, b.const("scale_out", state_scale(g).astype(np.float32))], "s_c")
    return b.op("Add", [hc, b.const("a_out", g.a)], "h_final")


def _unrolled(b: _Builder, g: PerceptionGraph, steps: int, input_scale) -> str:
    shifted = g.solver in ("fused", "euler")
    hz = _hoisted(b, g, steps, shifted, input_scale)
    h_dim = g.hidden
    xp = _split_steps(b, hz["xproj"], steps, h_dim)
    d = _split_steps(b, hz["d"], steps, 1)
    w_rec = b.const("w_rec", _recurrent_weight(g, shifted))
    state = _initial_state(b, g, shifted)
    if shifted:
        c = _split_steps(b, hz["c"], steps, h_dim)
        k = _split_steps(b, hz["k"], steps, h_dim)
        step = _step_fused if g.solver == "fused" else _step_euler
        for t in range(steps):
            for _ in range(g.unfolds):
                state = step(b, w_rec, state, xp[t], d[t], c[t], k[t])
    else:
        consts = _rk4_consts(b, g)
        for t in range(steps):
            for _ in range(g.unfolds):
                state = _step_rk4(b, w_rec, state, xp[t], d[t], consts)
    return _final_state(b, g, shifted, state)


def _scan(b: _Builder, g: PerceptionGraph, steps: int, input_scale) -> str:
    """One ONNX Scan over time; its body is one step (all unfolds) of the same equations."""
    from onnx import TensorProto, helper

    shifted = g.solver in ("fused", "euler")
    hz = _hoisted(b, g, steps, shifted, input_scale)
    perm = [1, 0, 2]
    seq = {k: b.op("Transpose", [v], k + "_tm", perm=perm) for k, v in hz.items()}  # time-major
    body = _Builder(counter=10_000, split_bias=b.split_bias)
    w_rec = body.const("w_rec", _recurrent_weight(g, shifted))
    names = ["xproj", "d"] + (["c", "k"] if shifted else [])
    # Scan slices the time axis away: each scan input arrives as [B, W]
    ins = {n: f"in_{n}" for n in names}
    state = "state_in"
    if shifted:
        step = _step_fused if g.solver == "fused" else _step_euler
        for _ in range(g.unfolds):
            state = step(body, w_rec, state, ins["xproj"], ins["d"], ins["c"], ins["k"])
    else:
        consts = _rk4_consts(body, g)
        for _ in range(g.unfolds):
            state = _step_rk4(body, w_rec, state, ins["xproj"], ins["d"], consts)
    body.nodes.append(helper.make_node("Identity", [state], ["state_out"], name="n_state_out"))
    fl = TensorProto.FLOAT
    graph_body = helper.make_graph(
        body.nodes, "ltc_step",
        [helper.make_tensor_value_info("state_in", fl, ["B", g.hidden])]
        + [helper.make_tensor_value_info(ins[n], fl, ["B", None]) for n in names],
        [helper.make_tensor_value_info("state_out", fl, ["B", g.hidden])],
        initializer=body.inits)
    final = b.op("Scan", [_initial_state(b, g, shifted)] + [seq[n] for n in names], "scan_state",
                 num_scan_inputs=len(names), body=graph_body)
    return _final_state(b, g, shifted, final)


def build_perception_model(g: PerceptionGraph, steps: int, form: str = "unrolled",
                           metadata: dict[str, str] | None = None, split_bias: bool = False,
                           input_scale: np.ndarray | None = None):
    """Return an ``onnx.ModelProto``: inputs x [B,T,F], dt [B,T], mask [B,T] -> embedding [B,E].

    ``split_bias`` writes each ``h @ w_rec + projection`` as MatMul + Add instead of one Gemm
    (slower in float, but the form ORT's int8 quantiser can turn into integer matrix products).
    ``input_scale`` [F] divides each input channel by its scale in the graph and multiplies the
    matching row of ``w_in`` by it (the same product; for int8 it gives every channel the whole
    range of one per-tensor scale instead of leaving small channels a few levels).
    """
    import onnx
    from onnx import TensorProto, helper

    if form not in FORMS:
        raise ConfigError(f"onnx graph form {form!r}: expected one of {FORMS}")
    steps = int(steps)
    if steps < 1:
        raise ConfigError(f"window steps: expected >= 1, got {steps}")
    b = _Builder(split_bias=split_bias)
    if input_scale is not None:
        input_scale = np.asarray(input_scale, np.float64)
        if input_scale.shape != (g.n_inputs,) or not np.all(np.isfinite(input_scale)) or np.any(input_scale <= 0):
            raise ConfigError(f"input_scale: expected {g.n_inputs} finite positive values")
    build = _unrolled if form == "unrolled" else _scan
    h = build(b, g, steps, input_scale)
    if g.w_out is not None:
        h = b.linear(h, b.const("w_out", g.w_out), b.const("b_out", g.b_out), READOUT)
    b.nodes.append(helper.make_node("Identity", [h], ["embedding"], name="n_embedding"))
    fl = TensorProto.FLOAT
    graph = helper.make_graph(
        b.nodes, "liquidedge_ltc_perception",
        [helper.make_tensor_value_info("x", fl, ["B", steps, g.n_inputs]),
         helper.make_tensor_value_info("dt", fl, ["B", steps]),
         helper.make_tensor_value_info("mask", fl, ["B", steps])],
        [helper.make_tensor_value_info("embedding", fl, ["B", g.embedding_dim])],
        initializer=b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="liquidedge")
    model.ir_version = 8  # readable by every onnxruntime >= 1.14
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = str(key), str(value)
    onnx.checker.check_model(model, full_check=True)
    return model


def operator_counts(model) -> dict[str, int]:
    """Histogram of operator types in the main graph (what ORT pays a fixed cost for)."""
    counts: dict[str, int] = {}
    for node in model.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items()))
