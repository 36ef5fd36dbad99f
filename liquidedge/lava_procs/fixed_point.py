"""Integer arithmetic of the ``fixed_pt`` LTC: formats, tables and the neuron's update.

One definition shared by the exporter (which quantises the graph), the Lava process models
(which run it) and a numpy mirror of the whole network (which tests use to check the Lava
simulation bit for bit and docs use to measure the error on many windows quickly). The neuron
side uses only what Loihi-2 microcode offers: add, multiply, shift, compare and two small
lookup tables (129 and 65 entries); no division. Derivation and error bound: ``docs/loihi2.md``.

The fused LTC step ``h <- (h + d f A) / (1 + d (1/tau + f))`` is rewritten with two per-step
numbers the host computes once per step (it can divide): ``p = min(d, 1)`` and
``q = min(1, 1/d)``. Multiplying numerator and denominator by ``q`` gives, for every d > 0,

    h <- (q h + p f A) / (q + p/tau + p f)        with p, q in [0, 1]

so every operand stays bounded however large or small dt is; a masked step is p = 0, q = 1,
which leaves h bit-exactly unchanged. The division is a normalise-by-shift plus a reciprocal
table on [1, 2] with linear interpolation; the sigmoid is a table on [0, 16] with linear
interpolation and the symmetry sigmoid(-z) = 1 - sigmoid(z).
"""
# No ``from __future__ import annotations`` here: Lava executes this file under a bare module
# name while searching for ProcessModels, and dataclasses cannot resolve string annotations then.
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from liquidedge.errors import ConfigError, InputShapeError, ModelFileError

STATE_MAX = 2 ** 23 - 1          # 24-bit signed state and graded-spike payloads
STATE_MIN = -(2 ** 23)
ACC_MAX = 2 ** 31 - 1            # Lava's bit-accurate Dense accumulates in int32
WEIGHT_MANT_MAX = 127            # 8-bit signed synaptic weight mantissa
RESIDUAL_SHIFT = 8               # a second synapse per weight carries the rounding residual * 2**8

Q_Z = 12   # dendritic sum (x W_in + h W_rec) and bias: 1.0 == 4096
Q_F = 16   # gate f in [0, 1]
Q_P = 22   # per-step p, q in [0, 1]
Q_R = 22   # reciprocal table values 1/m, m in [1, 2)
Q_E = 16   # embedding after an integer readout
SIGMOID_RANGE_BITS = 4           # table covers |z| < 2**4 = 16
SIGMOID_SEG_BITS = 3             # 2**3 segments per unit of z: 128 segments
RECIP_SEG_BITS = 6               # 64 segments over [1, 2)


def _round_shift(x: np.ndarray, s) -> np.ndarray:
    """Arithmetic right shift by ``s`` (>= 0, scalar or array) rounding half up; add + shift."""
    x = np.asarray(x, np.int64)
    s = np.asarray(s, np.int64)
    half = np.where(s > 0, np.left_shift(np.int64(1), np.maximum(s - 1, 0)), 0)
    return np.right_shift(x + half, s)


def floor_shift(x: np.ndarray, exp: int) -> np.ndarray:
    """Lava's bit-accurate Dense scaling: ``x << exp`` for exp > 0, else ``x >> -exp`` (floor)."""
    x = np.asarray(x, np.int64)
    return np.left_shift(x, exp) if exp > 0 else np.right_shift(x, -exp)


def quantise_weights(w: np.ndarray) -> tuple[np.ndarray, int]:
    """``w ~= mant * 2**exp`` with an 8-bit signed mantissa (|mant| <= 127) and one shared exponent."""
    w = np.asarray(w, np.float64)
    peak = float(np.max(np.abs(w))) if w.size else 0.0
    if peak == 0.0:
        return np.zeros(w.shape, np.int64), 0
    exp = int(np.ceil(np.log2(peak / WEIGHT_MANT_MAX)))
    mant = np.clip(np.round(w / 2.0 ** exp), -WEIGHT_MANT_MAX, WEIGHT_MANT_MAX).astype(np.int64)
    return mant, exp


def quantise_residual(w: np.ndarray, mant: np.ndarray, exp: int) -> np.ndarray:
    """Mantissa of a second 8-bit synapse: ``w ~= mant * 2**exp + mant2 * 2**(exp - 8)``."""
    r = (np.asarray(w, np.float64) - mant * 2.0 ** exp) / 2.0 ** (exp - RESIDUAL_SHIFT)
    return np.clip(np.round(r), -WEIGHT_MANT_MAX, WEIGHT_MANT_MAX).astype(np.int64)


def effective_weights(arrays: dict[str, np.ndarray], name: str, exp: int) -> np.ndarray:
    """The weights the integer network really uses (one or two 8-bit synapses per weight)."""
    w = arrays[f"{name}_mant"].astype(np.float64) * 2.0 ** exp
    if f"{name}_mant2" in arrays:
        w = w + arrays[f"{name}_mant2"].astype(np.float64) * 2.0 ** (exp - RESIDUAL_SHIFT)
    return w


def sigmoid_table() -> np.ndarray:
    """sigmoid(i / 8) in Q16 for i = 0..128 (129 entries: 128 segments over [0, 16])."""
    z = np.arange(2 ** (SIGMOID_RANGE_BITS + SIGMOID_SEG_BITS) + 1) / 2.0 ** SIGMOID_SEG_BITS
    return np.round((0.5 * (1.0 + np.tanh(0.5 * z))) * 2 ** Q_F).astype(np.int64)


def reciprocal_table() -> np.ndarray:
    """1 / (1 + i/64) in Q22 for i = 0..64; entry 0 is exactly 1.0."""
    m = 1.0 + np.arange(2 ** RECIP_SEG_BITS + 1) / 2.0 ** RECIP_SEG_BITS
    return np.round(2.0 ** Q_R / m).astype(np.int64)


def sigmoid_q(z: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Gate f (Q16) of a pre-activation z (Q12): table + linear interpolation, odd symmetry."""
    z = np.asarray(z, np.int64)
    seg_shift = Q_Z - SIGMOID_SEG_BITS
    n_seg = table.size - 1
    s = np.abs(z)
    idx = np.right_shift(s, seg_shift)
    saturated = idx >= n_seg
    idx = np.minimum(idx, n_seg - 1)
    frac = s - np.left_shift(idx, seg_shift)
    lo = table[idx]
    f_pos = lo + _round_shift((table[idx + 1] - lo) * frac, seg_shift)
    f_pos = np.where(saturated, table[n_seg], f_pos)
    return np.where(z >= 0, f_pos, (1 << Q_F) - f_pos)


def reciprocal_q(den: np.ndarray, q_d: int, table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """1/den for den > 0 in Q``q_d``: returns (r in Q22, k) with 1/den = r * 2**-(22 + k) * 2**q_d.

    Normalise den = m * 2**k with m in [1, 2) (a leading-one search: compares and shifts), then
    interpolate the table at m.
    """
    den = np.asarray(den, np.int64)
    msb = np.frexp(den.astype(np.float64))[1].astype(np.int64) - 1   # exact below 2**53
    k = msb - q_d
    m = np.where(k >= 0, np.right_shift(den, np.maximum(k, 0)), np.left_shift(den, np.maximum(-k, 0)))
    seg_shift = q_d - RECIP_SEG_BITS
    off = m - (np.int64(1) << q_d)
    idx = np.right_shift(off, seg_shift)
    frac = off - np.left_shift(idx, seg_shift)
    lo = table[idx]
    r = lo + _round_shift((table[idx + 1] - lo) * frac, seg_shift)
    return r, k


def ltc_step_q(h, z, p, q, a_q, inv_tau_q, q_d: int, sig_table, recip_table) -> np.ndarray:
    """One fused LTC step in integers: ``h <- (q h + p f A) / (q + p/tau + p f)``.

    h, a_q: state format (Q``q_h``); z: Q12; p, q: Q22 (per step, broadcast); inv_tau_q: Q``q_d``.
    Returns the new state, saturated to 24 bits (the box property keeps it far inside).
    """
    h = np.asarray(h, np.int64)
    f = sigmoid_q(z, sig_table)
    p = np.asarray(p, np.int64)
    q = np.asarray(q, np.int64)
    pf = _round_shift(p * f, Q_P + Q_F - q_d)                        # p f        Q_d
    den = (_round_shift(q, Q_P - q_d) + _round_shift(p * inv_tau_q, Q_P) + pf)
    num = _round_shift(q * h, Q_P) + _round_shift(pf * a_q, q_d)      # q h + p f A  Q_h
    r, k = reciprocal_q(den, q_d, recip_table)
    out = _round_shift(num * r, Q_R + k)
    return np.clip(out, STATE_MIN, STATE_MAX)


def step_controls(dt: np.ndarray, mask: np.ndarray, unfolds: int):
    """Per-step numbers the host sends: d = dt/unfolds (0 on padding), p = min(d,1), q = min(1,1/d)."""
    dt = np.asarray(dt, np.float64)
    d = np.where(np.asarray(mask) > 0, dt / unfolds, 0.0)
    p = np.minimum(d, 1.0)
    q = np.ones_like(d)
    big = d > 1.0
    q[big] = 1.0 / d[big]
    return d, p, q


def quantise_controls(p: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return (np.round(np.asarray(p) * 2.0 ** Q_P).astype(np.int64),
            np.round(np.asarray(q) * 2.0 ** Q_P).astype(np.int64))


@dataclass(frozen=True)
class FixedFormats:
    """Where the binary point sits in every fixed-point quantity (fractional bits) and the shifts.

    ``exp_in``/``exp_rec`` are the Dense ``weight_exp`` values: the dendritic sum in Q12 is
    ``floor((sum_j 2*mant_ij * s_j) * 2**exp)`` (Lava stores 8-bit weights doubled in mixed-sign
    mode, hence the 2). ``x_range`` is the largest |x| the input payload format accepts.
    ``weight_synapses`` = 2 adds a second 8-bit synapse per weight for the rounding residual
    (Dense shift ``exp - 8``): 16-bit effective weights for twice the synaptic operations.
    """

    q_x: int
    q_h: int
    q_s: int
    q_d: int
    w_in_exp: int
    w_rec_exp: int
    exp_in: int
    exp_rec: int
    x_range: float
    w_out_exp: int | None = None
    exp_out: int | None = None
    weight_synapses: int = 1
    q_z: int = Q_Z
    q_f: int = Q_F
    q_p: int = Q_P
    q_r: int = Q_R
    q_e: int = Q_E

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FixedFormats":
        try:
            fmt = cls(**d)
        except TypeError as exc:
            raise ModelFileError(f"fixed-point formats malformed ({exc})") from None
        if (fmt.q_z, fmt.q_f, fmt.q_p, fmt.q_r, fmt.q_e) != (Q_Z, Q_F, Q_P, Q_R, Q_E):
            raise ModelFileError("fixed-point formats were written by an incompatible exporter")
        return fmt


def _max_bits(limit: float, scale: float) -> int:
    """Largest n with scale * 2**n <= limit (scale > 0)."""
    return int(np.floor(np.log2(limit / scale)))


def quantise_graph(g, x_range: float = 64.0,
                   weight_synapses: int = 1) -> tuple[FixedFormats, dict[str, np.ndarray]]:
    """Plan every format of a fused-solver PerceptionGraph and quantise its arrays.

    Formats are chosen so nothing can overflow: 24-bit state and payloads, int32 Dense
    accumulators for any input with |x| <= ``x_range``. ``weight_synapses``: 1 (8-bit weights)
    or 2 (a residual synapse per weight, see ``FixedFormats``). Raises ConfigError when the
    graph's values do not fit (e.g. an extreme tau or reversal potential).
    """
    if g.solver != "fused":
        raise ConfigError(f"fixed_pt implements the fused solver only; this graph uses {g.solver!r} "
                          "(export it as floating_pt)")
    x_range = float(x_range)
    if not (np.isfinite(x_range) and x_range > 0):
        raise ConfigError(f"x_range: expected a finite number > 0, got {x_range}")
    if weight_synapses not in (1, 2):
        raise ConfigError(f"weight_synapses: expected 1 or 2, got {weight_synapses!r}")
    m_in, e_in = quantise_weights(g.w_in)
    m_rec, e_rec = quantise_weights(g.w_rec)
    extra = {}
    if weight_synapses == 2:
        extra = {"w_in_mant2": quantise_residual(g.w_in, m_in, e_in),
                 "w_rec_mant2": quantise_residual(g.w_rec, m_rec, e_rec)}
    a = g.a.astype(np.float64)
    max_a = float(np.max(np.abs(a)))
    q_h = 21 - max(0, int(np.ceil(np.log2(max_a)))) if max_a > 0 else 21
    if q_h < 8:
        raise ConfigError(f"perception.a: |A| up to {max_a:g} leaves fewer than 8 fractional state bits")
    inv_tau = 1.0 / g.tau.astype(np.float64)
    q_d = 22 - int(np.ceil(np.log2(2.0 + float(inv_tau.max()))))
    if q_d < 8:
        raise ConfigError(f"perception.tau: min tau {float(g.tau.min()):g} is too small for fixed_pt")
    inv_tau_q = np.round(inv_tau * 2.0 ** q_d).astype(np.int64)
    if np.any(inv_tau_q < 1):
        raise ConfigError(f"perception.tau: max tau {float(g.tau.max()):g} is too large for fixed_pt "
                          f"(1/tau underflows Q{q_d})")
    col_in = max(float(np.abs(m).sum(axis=0).max()) for m in (m_in, extra.get("w_in_mant2", m_in)))
    q_x = min(22, _max_bits(STATE_MAX, x_range))
    if col_in > 0:
        q_x = min(q_x, _max_bits(ACC_MAX, 2.0 * col_in * x_range))
    if q_x < 6:
        raise ConfigError(f"x_range {x_range:g} is too large for 24-bit input payloads")
    h_bound = max_a + 2.0 ** -q_h
    col_rec = max(float(np.abs(m).sum(axis=0).max()) for m in (m_rec, extra.get("w_rec_mant2", m_rec)))
    q_s = q_h if col_rec == 0 else min(q_h, _max_bits(ACC_MAX, 2.0 * col_rec * h_bound))
    z_bound = (np.abs(g.w_in.astype(np.float64)).sum(axis=0) * x_range
               + np.abs(g.w_rec.astype(np.float64)).sum(axis=0) * h_bound + np.abs(g.bias)).max()
    if z_bound * 2.0 ** Q_Z > STATE_MAX:
        raise ConfigError(f"pre-activations up to {z_bound:g} overflow the 24-bit dendritic sum; "
                          "lower x_range")
    arrays = {
        "w_in_mant": m_in.astype(np.int8), "w_rec_mant": m_rec.astype(np.int8),
        "bias_q": np.round(g.bias.astype(np.float64) * 2.0 ** Q_Z).astype(np.int32),
        "a_q": np.round(a * 2.0 ** q_h).astype(np.int32),
        "inv_tau_q": inv_tau_q.astype(np.int32),
        "sigmoid_lut": sigmoid_table().astype(np.int32),
        "recip_lut": reciprocal_table().astype(np.int32),
        **{k: v.astype(np.int8) for k, v in extra.items()},
    }
    w_out_exp = exp_out = None
    if g.w_out is not None:
        m_out, w_out_exp = quantise_weights(g.w_out)
        e_bound = float((np.abs(g.w_out.astype(np.float64)).sum(axis=0) * h_bound + np.abs(g.b_out)).max())
        if e_bound * 2.0 ** Q_E > STATE_MAX:
            raise ConfigError(f"readout values up to {e_bound:g} overflow the 24-bit embedding")
        exp_out = w_out_exp + Q_E - q_s
        arrays["w_out_mant"] = m_out.astype(np.int8)
        arrays["b_out_q"] = np.round(g.b_out.astype(np.float64) * 2.0 ** Q_E).astype(np.int32)
    fmt = FixedFormats(q_x=q_x, q_h=q_h, q_s=q_s, q_d=q_d, w_in_exp=e_in, w_rec_exp=e_rec,
                       exp_in=e_in - 1 + Q_Z - q_x, exp_rec=e_rec - 1 + Q_Z - q_s, x_range=x_range,
                       w_out_exp=w_out_exp, exp_out=exp_out, weight_synapses=weight_synapses)
    return fmt, arrays


def encode_inputs(x: np.ndarray, fmt: FixedFormats) -> np.ndarray:
    """Input graded-spike payloads round(x * 2**q_x); |x| beyond ``x_range`` is refused, not clipped."""
    x = np.asarray(x, np.float64)
    bad = np.abs(x) > fmt.x_range
    if bad.any():
        i = tuple(int(v) for v in np.argwhere(bad)[0])
        raise InputShapeError(
            f"x: |value| {abs(float(x[i])):g} at {list(i)} exceeds the fixed_pt input range "
            f"{fmt.x_range:g} (re-export with a larger x_range)")
    return np.round(x * 2.0 ** fmt.q_x).astype(np.int64)


def state_payload(h_q: np.ndarray, fmt: FixedFormats) -> np.ndarray:
    """Graded-spike payload of the state: h in Q``q_s`` (q_s <= q_h keeps Dense sums in int32)."""
    return _round_shift(h_q, fmt.q_h - fmt.q_s)


def readout_q(s_h: np.ndarray, w_out_mant: np.ndarray, b_out_q: np.ndarray, fmt: FixedFormats) -> np.ndarray:
    """Integer readout of the final state payload: Q16 embedding."""
    acc = np.asarray(s_h, np.int64) @ np.asarray(w_out_mant, np.int64)
    return floor_shift(acc, fmt.exp_out) + np.asarray(b_out_q, np.int64)


def embedding_from_state(h_q: np.ndarray, fmt: FixedFormats, arrays: dict[str, np.ndarray]) -> np.ndarray:
    """Float embedding the host reads back: h (or the integer readout of h) over its scale."""
    if "w_out_mant" in arrays:
        e = readout_q(state_payload(h_q, fmt), arrays["w_out_mant"], arrays["b_out_q"], fmt)
        return e / 2.0 ** Q_E
    return np.asarray(h_q, np.float64) / 2.0 ** fmt.q_h


def dense_q(s: np.ndarray, mant: np.ndarray, exp: int) -> np.ndarray:
    """What Lava's bit-accurate Dense delivers: floor((s @ 2*mant) * 2**exp), int32 accumulator."""
    acc = np.asarray(s, np.int64) @ (2 * np.asarray(mant, np.int64))
    if np.any(np.abs(acc) > ACC_MAX):
        raise ConfigError("fixed-point Dense accumulator overflow (a planning bug: please report)")
    return floor_shift(acc, exp)


def one_step_error_bound(fmt: FixedFormats, arrays: dict[str, np.ndarray], d: float) -> float:
    """Worst-case |h_fixed - h_float| after ONE fused step of size d from the same state.

    "h_float" is the exact fused step with the same quantised weights and the same rounded A and
    1/tau (their own rounding is a separate, reported error). Terms, as derived in
    docs/loihi2.md: the gate error times the step's sensitivity to f, the rounding of the
    numerator and denominator, the reciprocal table, the final rounding, and p and q's rounding.
    """
    w_in = np.abs(effective_weights(arrays, "w_in", fmt.w_in_exp))
    w_rec = np.abs(effective_weights(arrays, "w_rec", fmt.w_rec_exp))
    eps_z = (2.0 ** (-fmt.q_x - 1) * w_in.sum(axis=0).max() + 2.0 ** (-fmt.q_s - 1) * w_rec.sum(axis=0).max()
             + 2 * fmt.weight_synapses * 2.0 ** -Q_Z + 2.0 ** (-Q_Z - 1))  # payloads, Dense floors, bias
    step = 2.0 ** -SIGMOID_SEG_BITS
    lut = max(step ** 2 / 8 * 0.0963,                               # interpolation: h^2/8 max|sigmoid''|
              0.5 * (1.0 - np.tanh(2.0 ** (SIGMOID_RANGE_BITS - 1))))  # sigmoid(-16): past the table
    eps_f = eps_z / 4 + lut + 2 * 2.0 ** (-Q_F - 1)
    a_max = float(np.abs(arrays["a_q"]).max()) / 2.0 ** fmt.q_h
    inv_tau = arrays["inv_tau_q"].astype(np.float64) / 2.0 ** fmt.q_d
    tau_max, inv_tau_max = 1.0 / inv_tau.min(), inv_tau.max()
    den_min = min(1.0, 1.0 / tau_max)
    lsb_h, lsb_d, lsb_p = 2.0 ** -fmt.q_h, 2.0 ** -fmt.q_d, 2.0 ** -Q_P
    gate = 2 * a_max * min(d, tau_max) * eps_f
    numerator = (lsb_h + a_max * lsb_d / 2) / den_min
    denominator = a_max * 1.5 * lsb_d / den_min
    reciprocal = a_max * (2.0 ** (-2 * RECIP_SEG_BITS) / 4 + lsb_d + 2.0 ** -Q_R)
    controls = a_max * (4 + inv_tau_max) * lsb_p / 2 / den_min
    return float(gate + numerator + denominator + reciprocal + lsb_h / 2 + controls)


class FixedPointMirror:
    """The whole fixed_pt network in numpy, same integers as the Lava simulation, batched.

    Not a runner: it exists so tests can check the Lava simulation bit for bit and so the error
    of the fixed-point maths can be measured on thousands of windows in seconds.
    """

    def __init__(self, fmt: FixedFormats, arrays: dict[str, np.ndarray], unfolds: int = 1):
        self.fmt, self.arrays, self.unfolds = fmt, arrays, int(unfolds)
        self._sig = np.asarray(arrays["sigmoid_lut"], np.int64)
        self._rec = np.asarray(arrays["recip_lut"], np.int64)

    def final_state(self, x: np.ndarray, dt: np.ndarray, mask: np.ndarray) -> np.ndarray:
        fmt, arr = self.fmt, self.arrays
        s_x = encode_inputs(x, fmt)
        _, p, q = step_controls(dt, mask, self.unfolds)
        p_q, q_q = quantise_controls(p, q)
        b, t, _ = s_x.shape
        h = np.zeros((b, arr["a_q"].size), np.int64)
        s_h = np.zeros_like(h)
        bias, a_q, inv_tau = (np.asarray(arr[k], np.int64) for k in ("bias_q", "a_q", "inv_tau_q"))
        residual = fmt.weight_synapses == 2
        for k in range(t):
            drive = dense_q(s_x[:, k], arr["w_in_mant"], fmt.exp_in)
            if residual:
                drive = drive + dense_q(s_x[:, k], arr["w_in_mant2"], fmt.exp_in - RESIDUAL_SHIFT)
            for _ in range(self.unfolds):
                z = drive + dense_q(s_h, arr["w_rec_mant"], fmt.exp_rec) + bias
                if residual:
                    z = z + dense_q(s_h, arr["w_rec_mant2"], fmt.exp_rec - RESIDUAL_SHIFT)
                h = ltc_step_q(h, z, p_q[:, k, None], q_q[:, k, None], a_q, inv_tau, fmt.q_d,
                               self._sig, self._rec)
                s_h = state_payload(h, fmt)
        return h

    def encode(self, x, dt, mask) -> np.ndarray:
        return embedding_from_state(self.final_state(x, dt, mask), self.fmt, self.arrays)
