"""The intermediate representation: the model as plain numpy arrays plus settings.

Training (torch) produces these graphs; every exporter reads them and nothing downstream of this
module imports torch. Each graph is a small dataclass that states its own equation and checks
its shapes on construction, raising the project's errors (never ``assert``).

A model directory is ``model.json`` (settings, specs, schema version, content hash) plus
``weights.safetensors`` (every array). Loading never executes code and refuses a directory whose
content hash does not match what it holds.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from liquidedge import __version__
from liquidedge.errors import ConfigError, InputShapeError, ModelFileError

SCHEMA_VERSION = 1
SOLVERS = ("fused", "euler", "rk4")
ATTENTIONAL_BIASES = ("l2", "huber", "lp")
MEMORY_ACTIVATIONS = ("silu",)


def _as_f32(name: str, value: Any, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Convert to a finite float32 array of the expected shape, or raise InputShapeError."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiub":
        raise InputShapeError(f"{name}: expected a numeric array, got dtype {arr.dtype}")
    arr = arr.astype(np.float32, copy=False)
    if shape is not None and arr.shape != tuple(shape):
        raise InputShapeError(f"{name}: expected shape {tuple(shape)}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InputShapeError(f"{name}: contains NaN or inf")
    return arr


@dataclass
class PerceptionGraph:
    """Liquid Time-Constant encoder (Hasani et al., AAAI 2021).

    Per hidden unit, with input x (F features) and elapsed time dt > 0::

        f      = sigmoid(x @ w_in + h @ w_rec + bias)
        dh/dt  = -(1/tau + f) * h + f * a

    ``solver`` picks the discretisation, applied ``unfolds`` times with d = dt / unfolds and the
    input held over the step:

    * ``fused`` (default, semi-implicit Euler, stable for any dt > 0):
      ``h <- (h + d * f * a) / (1 + d * (1/tau + f))``
    * ``euler``: ``h <- h + d * dh/dt``
    * ``rk4``: classic Runge-Kutta 4 on dh/dt.

    Masked (padding) steps leave h unchanged; h starts at zero. The trajectory embedding is the
    final h, or ``h @ w_out + b_out`` when a readout is present. ``wiring`` is the 0/1 sparsity
    pattern of ``w_rec`` (all ones when dense); ``w_rec`` is already zero outside it.
    """

    w_in: np.ndarray      # [F, H]
    w_rec: np.ndarray     # [H, H]
    bias: np.ndarray      # [H]
    tau: np.ndarray       # [H], > 0
    a: np.ndarray         # [H], reversal potentials
    wiring: np.ndarray    # [H, H], 0/1
    solver: str = "fused"
    unfolds: int = 1
    w_out: np.ndarray | None = None  # [H, E]
    b_out: np.ndarray | None = None  # [E]

    def __post_init__(self) -> None:
        self.w_in = _as_f32("perception.w_in", self.w_in)
        if self.w_in.ndim != 2:
            raise InputShapeError(f"perception.w_in: expected [F, H], got shape {self.w_in.shape}")
        f, h = self.w_in.shape
        self.w_rec = _as_f32("perception.w_rec", self.w_rec, (h, h))
        self.bias = _as_f32("perception.bias", self.bias, (h,))
        self.tau = _as_f32("perception.tau", self.tau, (h,))
        self.a = _as_f32("perception.a", self.a, (h,))
        self.wiring = _as_f32("perception.wiring", self.wiring, (h, h))
        if np.any(self.tau <= 0):
            raise InputShapeError("perception.tau: every time constant must be > 0")
        if not np.all((self.wiring == 0) | (self.wiring == 1)):
            raise InputShapeError("perception.wiring: expected a 0/1 mask")
        if np.any(self.w_rec[self.wiring == 0] != 0):
            raise InputShapeError("perception.w_rec: non-zero weight outside the wiring mask")
        if self.solver not in SOLVERS:
            raise ConfigError(f"perception.solver: unknown solver {self.solver!r} (expected one of {SOLVERS})")
        if int(self.unfolds) < 1:
            raise ConfigError(f"perception.unfolds: expected >= 1, got {self.unfolds}")
        self.unfolds = int(self.unfolds)
        if (self.w_out is None) != (self.b_out is None):
            raise InputShapeError("perception: w_out and b_out must both be given or both omitted")
        if self.w_out is not None:
            self.w_out = _as_f32("perception.w_out", self.w_out)
            if self.w_out.ndim != 2 or self.w_out.shape[0] != h:
                raise InputShapeError(f"perception.w_out: expected [{h}, E], got {self.w_out.shape}")
            self.b_out = _as_f32("perception.b_out", self.b_out, (self.w_out.shape[1],))

    @property
    def n_inputs(self) -> int:
        return int(self.w_in.shape[0])

    @property
    def hidden(self) -> int:
        return int(self.w_in.shape[1])

    @property
    def embedding_dim(self) -> int:
        return int(self.w_out.shape[1]) if self.w_out is not None else self.hidden

    def synapse_count(self) -> int:
        """Synapses that exist (input + recurrent + readout): what a sparse target pays for."""
        n = int(self.w_in.size + self.wiring.sum())
        if self.w_out is not None:
            n += int(self.w_out.size)
        return n

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"w_in": self.w_in, "w_rec": self.w_rec, "bias": self.bias, "tau": self.tau,
               "a": self.a, "wiring": self.wiring}
        if self.w_out is not None:
            out["w_out"] = self.w_out
            out["b_out"] = self.b_out
        return out

    def settings(self) -> dict[str, Any]:
        return {"solver": self.solver, "unfolds": self.unfolds, "n_inputs": self.n_inputs,
                "hidden": self.hidden, "embedding_dim": self.embedding_dim,
                "readout": self.w_out is not None}


@dataclass
class MemoryGraph:
    """Titans neural long-term memory (Behrouz et al., 2024) with MIRAS choices (2025).

    For an embedding e (E values), first RMS-normalised (``x = e / sqrt(mean(e^2) + eps)``) so no
    input scale can blow the memory up::

        k = unit(x @ w_k),  v = x @ w_v,  q = unit(x @ w_q)             (unit: l2-normalise)
        M(u) = [u +] silu(u @ W1) @ W2        (depth 2)   or   [u +] u @ W1   (depth 1)
        loss = sum_j bias(M(k)_j - v_j)       l2: r^2/2 | huber(delta) | lp: |r|^p / p
        g    = d loss / d theta               closed form; score = ||g|| (over all weights)
        g    <- g * min(1, grad_clip / ||g||)
        lr, eta, alpha = lr_max*sigmoid(x.w_lr+b_lr), eta_max*sigmoid(x.w_eta+b_eta),
                         sigmoid(x.w_alpha+b_alpha)          (constants when the w_* are 0)
        S'     = eta * S - lr * g                               (momentum, "past surprise")
        theta' = (1 - alpha) * theta + S'                       (forgetting / retention)
        retrieved = M(q) with the POST-update weights

    The update (S', theta') is applied only when score > threshold; otherwise the state is left
    exactly as it was. ``[u +]`` is present when ``residual``. ``theta0``/the state carry only
    weights and momentum: nothing grows with the length of the stream.
    """

    w_k: np.ndarray        # [E, D]
    w_v: np.ndarray        # [E, D]
    w_q: np.ndarray        # [E, D]
    theta0: list[np.ndarray]  # depth 1: [W1 [D, D]]; depth 2: [W1 [D, D*x], W2 [D*x, D]]
    w_lr: np.ndarray       # [E]
    b_lr: float
    w_eta: np.ndarray      # [E]
    b_eta: float
    w_alpha: np.ndarray    # [E]
    b_alpha: float
    lr_max: float = 0.1
    eta_max: float = 0.9
    grad_clip: float = 1.0
    threshold: float = 0.0
    bypass_threshold: float = float("inf")
    residual: bool = True
    attentional_bias: str = "l2"
    huber_delta: float = 1.0
    lp_p: float = 1.5
    activation: str = "silu"
    eps: float = 1e-6

    def __post_init__(self) -> None:
        self.w_k = _as_f32("memory.w_k", self.w_k)
        if self.w_k.ndim != 2:
            raise InputShapeError(f"memory.w_k: expected [E, D], got {self.w_k.shape}")
        e, d = self.w_k.shape
        self.w_v = _as_f32("memory.w_v", self.w_v, (e, d))
        self.w_q = _as_f32("memory.w_q", self.w_q, (e, d))
        if len(self.theta0) not in (1, 2):
            raise ConfigError(f"memory: depth must be 1 or 2, got {len(self.theta0)}")
        self.theta0 = [_as_f32(f"memory.theta0.{i}", w) for i, w in enumerate(self.theta0)]
        if len(self.theta0) == 1:
            if self.theta0[0].shape != (d, d):
                raise InputShapeError(f"memory.theta0.0: expected {(d, d)}, got {self.theta0[0].shape}")
        else:
            w1, w2 = self.theta0
            if w1.ndim != 2 or w1.shape[0] != d or w2.shape != (w1.shape[1], d):
                raise InputShapeError(
                    f"memory.theta0: expected W1 [{d}, X] and W2 [X, {d}], got {w1.shape}, {w2.shape}")
        for name in ("w_lr", "w_eta", "w_alpha"):
            setattr(self, name, _as_f32(f"memory.{name}", getattr(self, name), (e,)))
        for name in ("b_lr", "b_eta", "b_alpha", "lr_max", "eta_max", "grad_clip", "threshold",
                     "huber_delta", "lp_p", "eps"):
            value = float(getattr(self, name))
            if not np.isfinite(value):
                raise ConfigError(f"memory.{name}: must be finite, got {value}")
            setattr(self, name, value)
        self.bypass_threshold = float(self.bypass_threshold)
        if not 0.0 <= self.eta_max < 1.0:
            raise ConfigError(f"memory.eta_max: must be in [0, 1), got {self.eta_max}")
        if self.lr_max < 0 or self.grad_clip <= 0:
            raise ConfigError("memory: lr_max must be >= 0 and grad_clip > 0")
        if self.attentional_bias not in ATTENTIONAL_BIASES:
            raise ConfigError(f"memory.attentional_bias: unknown {self.attentional_bias!r} "
                              f"(expected one of {ATTENTIONAL_BIASES})")
        if self.activation not in MEMORY_ACTIVATIONS:
            raise ConfigError(f"memory.activation: unknown {self.activation!r}")
        if self.lp_p < 1.0:
            raise ConfigError(f"memory.lp_p: must be >= 1, got {self.lp_p}")
        self.residual = bool(self.residual)

    @property
    def embedding_dim(self) -> int:
        return int(self.w_k.shape[0])

    @property
    def dim(self) -> int:
        return int(self.w_k.shape[1])

    @property
    def depth(self) -> int:
        return len(self.theta0)

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"w_k": self.w_k, "w_v": self.w_v, "w_q": self.w_q, "w_lr": self.w_lr,
               "w_eta": self.w_eta, "w_alpha": self.w_alpha}
        for i, w in enumerate(self.theta0):
            out[f"theta0.{i}"] = w
        return out

    def settings(self) -> dict[str, Any]:
        return {"depth": self.depth, "dim": self.dim, "embedding_dim": self.embedding_dim,
                "b_lr": self.b_lr, "b_eta": self.b_eta, "b_alpha": self.b_alpha,
                "lr_max": self.lr_max, "eta_max": self.eta_max, "grad_clip": self.grad_clip,
                "threshold": self.threshold, "bypass_threshold": _json_float(self.bypass_threshold),
                "residual": self.residual, "attentional_bias": self.attentional_bias,
                "huber_delta": self.huber_delta, "lp_p": self.lp_p, "activation": self.activation,
                "eps": self.eps}


@dataclass
class DecoderGraph:
    """Turns the embedding and the memory's answer into a prediction::

        z = concat(embedding, retrieved)          (retrieved = 0 when the memory is off)
        prediction = tanh(z @ w1 + b1) @ w2 + b2

    The prediction of one window is fed back as ``feedback`` extra input channels of the next.
    """

    w1: np.ndarray  # [E + D, Hd]
    b1: np.ndarray  # [Hd]
    w2: np.ndarray  # [Hd, P]
    b2: np.ndarray  # [P]
    outputs: tuple[str, ...] = ("log_vol", "direction_logit")

    def __post_init__(self) -> None:
        self.w1 = _as_f32("decoder.w1", self.w1)
        if self.w1.ndim != 2:
            raise InputShapeError(f"decoder.w1: expected 2-D, got {self.w1.shape}")
        self.b1 = _as_f32("decoder.b1", self.b1, (self.w1.shape[1],))
        self.w2 = _as_f32("decoder.w2", self.w2)
        if self.w2.ndim != 2 or self.w2.shape[0] != self.w1.shape[1]:
            raise InputShapeError(f"decoder.w2: expected [{self.w1.shape[1]}, P], got {self.w2.shape}")
        self.b2 = _as_f32("decoder.b2", self.b2, (self.w2.shape[1],))
        self.outputs = tuple(self.outputs)
        if len(self.outputs) != self.w2.shape[1]:
            raise InputShapeError(f"decoder.outputs: {len(self.outputs)} names for {self.w2.shape[1]} outputs")

    @property
    def n_outputs(self) -> int:
        return int(self.w2.shape[1])

    def arrays(self) -> dict[str, np.ndarray]:
        return {"w1": self.w1, "b1": self.b1, "w2": self.w2, "b2": self.b2}

    def settings(self) -> dict[str, Any]:
        return {"outputs": list(self.outputs), "hidden": int(self.w1.shape[1])}


@dataclass
class LiquidTitanModel:
    """The whole deployable model: perception + memory + decoder + how to feed it data.

    ``data_spec`` describes bars, windows and features (the data pipeline's own dict form);
    ``norm_mean``/``norm_std`` are the frozen feature-normalisation statistics for the raw
    features (the fed-back channels are not normalised); ``dt_unit`` is the LTC's unit of time in
    seconds. ``feedback`` is how many input channels carry the previous window's prediction
    (0 or the decoder's output count). ``calibration`` records how thresholds were chosen.
    """

    perception: PerceptionGraph
    memory: MemoryGraph
    decoder: DecoderGraph
    norm_mean: np.ndarray
    norm_std: np.ndarray
    dt_unit: float = 1.0
    feedback: int = 0
    data_spec: dict[str, Any] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.norm_mean = _as_f32("norm_mean", self.norm_mean)
        self.norm_std = _as_f32("norm_std", self.norm_std, self.norm_mean.shape)
        if np.any(self.norm_std <= 0):
            raise InputShapeError("norm_std: every standard deviation must be > 0")
        self.dt_unit = float(self.dt_unit)
        if not (np.isfinite(self.dt_unit) and self.dt_unit > 0):
            raise ConfigError(f"dt_unit: must be a finite number > 0, got {self.dt_unit}")
        self.feedback = int(self.feedback)
        n_raw = int(self.norm_mean.shape[0])
        if n_raw + self.feedback != self.perception.n_inputs:
            raise InputShapeError(
                f"perception expects {self.perception.n_inputs} inputs but the model has {n_raw} "
                f"features + {self.feedback} feedback channels")
        if self.feedback not in (0, self.decoder.n_outputs):
            raise InputShapeError(f"feedback: expected 0 or {self.decoder.n_outputs}, got {self.feedback}")
        if self.memory.embedding_dim != self.perception.embedding_dim:
            raise InputShapeError(f"memory takes embeddings of {self.memory.embedding_dim} but the "
                                  f"perception produces {self.perception.embedding_dim}")
        expected = self.perception.embedding_dim + self.memory.dim
        if self.decoder.w1.shape[0] != expected:
            raise InputShapeError(f"decoder.w1: expected {expected} input rows, got {self.decoder.w1.shape[0]}")

    @property
    def n_features(self) -> int:
        return int(self.norm_mean.shape[0])

    def content_hash(self) -> str:
        return _content_hash(self._header(), self._tensors())

    def _tensors(self) -> dict[str, np.ndarray]:
        tensors = {f"perception.{k}": v for k, v in self.perception.arrays().items()}
        tensors.update({f"memory.{k}": v for k, v in self.memory.arrays().items()})
        tensors.update({f"decoder.{k}": v for k, v in self.decoder.arrays().items()})
        tensors["norm.mean"] = self.norm_mean
        tensors["norm.std"] = self.norm_std
        return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}

    def _header(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "liquidedge_version": __version__,
            "perception": self.perception.settings(),
            "memory": self.memory.settings(),
            "decoder": self.decoder.settings(),
            "dt_unit": self.dt_unit,
            "feedback": self.feedback,
            "data_spec": self.data_spec,
            "calibration": self.calibration,
            "training": self.training,
        }


def _json_float(x: float) -> float | str:
    return x if np.isfinite(x) else ("inf" if x > 0 else "-inf")


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def _content_hash(header: dict[str, Any], tensors: dict[str, np.ndarray]) -> str:
    """sha256 over the canonical settings and every tensor's name, shape and bytes."""
    h = hashlib.sha256()
    h.update(_canonical({k: v for k, v in header.items()
                           if k not in ("liquidedge_version", "content_hash")}))
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name], dtype=np.float32)
        h.update(name.encode())
        h.update(repr(arr.shape).encode())
        h.update(arr.tobytes())
    return h.hexdigest()


MODEL_JSON = "model.json"
WEIGHTS_FILE = "weights.safetensors"


def save_model(model: LiquidTitanModel, directory: str | os.PathLike) -> Path:
    """Write ``model.json`` + ``weights.safetensors`` (each atomically) and return the directory."""
    from safetensors.numpy import save_file

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    header = model._header()
    tensors = model._tensors()
    header["content_hash"] = _content_hash(header, tensors)
    tmp_w = out / (WEIGHTS_FILE + ".tmp")
    save_file(tensors, str(tmp_w), metadata={"content_hash": header["content_hash"]})
    os.replace(tmp_w, out / WEIGHTS_FILE)
    tmp_j = out / (MODEL_JSON + ".tmp")
    tmp_j.write_text(json.dumps(header, indent=2, sort_keys=True, allow_nan=False))
    os.replace(tmp_j, out / MODEL_JSON)
    return out


def load_model(directory: str | os.PathLike) -> LiquidTitanModel:
    """Load and verify a model directory; raise ModelFileError on anything missing or tampered."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    src = Path(directory)
    jpath, wpath = src / MODEL_JSON, src / WEIGHTS_FILE
    for p in (jpath, wpath):
        if not p.is_file():
            raise ModelFileError(f"{p}: missing (a model directory holds {MODEL_JSON} and {WEIGHTS_FILE})")
    try:
        header = json.loads(jpath.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{jpath}: not valid JSON ({exc})") from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{jpath}: expected a JSON object")
    if header.get("schema_version") != SCHEMA_VERSION:
        raise ModelFileError(f"{jpath}: schema_version {header.get('schema_version')!r} is not "
                             f"supported (expected {SCHEMA_VERSION})")
    try:
        tensors = load_file(str(wpath))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFileError(f"{wpath}: unreadable or truncated safetensors file ({exc})") from None
    stored = header.get("content_hash")
    actual = _content_hash(header, tensors)
    if stored != actual:
        raise ModelFileError(f"{src}: content hash mismatch (model.json says {stored}, contents hash to "
                             f"{actual}); the model was modified or corrupted")
    try:
        return _from_parts(header, tensors)
    except (KeyError, TypeError) as exc:
        raise ModelFileError(f"{src}: missing entry {exc}") from None


def _from_parts(header: dict[str, Any], t: dict[str, np.ndarray]) -> LiquidTitanModel:
    p, m, d = header["perception"], header["memory"], header["decoder"]
    perception = PerceptionGraph(
        w_in=t["perception.w_in"], w_rec=t["perception.w_rec"], bias=t["perception.bias"],
        tau=t["perception.tau"], a=t["perception.a"], wiring=t["perception.wiring"],
        solver=p["solver"], unfolds=p["unfolds"],
        w_out=t.get("perception.w_out"), b_out=t.get("perception.b_out"))
    memory = MemoryGraph(
        w_k=t["memory.w_k"], w_v=t["memory.w_v"], w_q=t["memory.w_q"],
        theta0=[t[f"memory.theta0.{i}"] for i in range(m["depth"])],
        w_lr=t["memory.w_lr"], b_lr=m["b_lr"], w_eta=t["memory.w_eta"], b_eta=m["b_eta"],
        w_alpha=t["memory.w_alpha"], b_alpha=m["b_alpha"], lr_max=m["lr_max"],
        eta_max=m["eta_max"], grad_clip=m["grad_clip"], threshold=m["threshold"],
        bypass_threshold=float(m["bypass_threshold"]), residual=m["residual"],
        attentional_bias=m["attentional_bias"], huber_delta=m["huber_delta"], lp_p=m["lp_p"],
        activation=m["activation"], eps=m["eps"])
    decoder = DecoderGraph(w1=t["decoder.w1"], b1=t["decoder.b1"], w2=t["decoder.w2"],
                           b2=t["decoder.b2"], outputs=tuple(d["outputs"]))
    return LiquidTitanModel(
        perception=perception, memory=memory, decoder=decoder, norm_mean=t["norm.mean"],
        norm_std=t["norm.std"], dt_unit=header["dt_unit"], feedback=header["feedback"],
        data_spec=header.get("data_spec", {}), calibration=header.get("calibration", {}),
        training=header.get("training", {}))


def random_model(n_features: int = 6, hidden: int = 32, mem_dim: int = 16, depth: int = 2,
                 expansion: int = 2, feedback: int = 2, solver: str = "fused", unfolds: int = 1,
                 decoder_hidden: int = 32, readout: int | None = None, wiring: np.ndarray | None = None,
                 seed: int = 0) -> LiquidTitanModel:
    """A seeded, untrained but well-scaled model: for tests, benchmarks and exporter checks."""
    rng = np.random.default_rng(seed)
    f = n_features + feedback
    wire = np.ones((hidden, hidden), np.float32) if wiring is None else np.asarray(wiring, np.float32)
    perception = PerceptionGraph(
        w_in=rng.normal(0, 1 / np.sqrt(f), (f, hidden)),
        w_rec=rng.normal(0, 1 / np.sqrt(hidden), (hidden, hidden)) * wire,
        bias=rng.normal(0, 0.1, hidden), tau=rng.uniform(0.5, 3.0, hidden),
        a=rng.normal(0, 1.0, hidden), wiring=wire, solver=solver, unfolds=unfolds,
        w_out=None if readout is None else rng.normal(0, 1 / np.sqrt(hidden), (hidden, readout)),
        b_out=None if readout is None else np.zeros(readout))
    e = perception.embedding_dim
    if depth == 1:
        theta0 = [rng.normal(0, 0.1, (mem_dim, mem_dim))]
    else:
        x = mem_dim * expansion
        theta0 = [rng.normal(0, 1 / np.sqrt(mem_dim), (mem_dim, x)), rng.normal(0, 0.1, (x, mem_dim))]
    memory = MemoryGraph(
        w_k=rng.normal(0, 1 / np.sqrt(e), (e, mem_dim)), w_v=rng.normal(0, 1 / np.sqrt(e), (e, mem_dim)),
        w_q=rng.normal(0, 1 / np.sqrt(e), (e, mem_dim)), theta0=theta0,
        w_lr=rng.normal(0, 0.05, e), b_lr=0.0, w_eta=rng.normal(0, 0.05, e), b_eta=0.0,
        w_alpha=rng.normal(0, 0.05, e), b_alpha=-4.0, threshold=0.0)
    p = 2
    decoder = DecoderGraph(w1=rng.normal(0, 1 / np.sqrt(e + mem_dim), (e + mem_dim, decoder_hidden)),
                           b1=np.zeros(decoder_hidden), w2=rng.normal(0, 0.1, (decoder_hidden, p)),
                           b2=np.zeros(p))
    return LiquidTitanModel(perception=perception, memory=memory, decoder=decoder,
                            norm_mean=np.zeros(n_features), norm_std=np.ones(n_features),
                            dt_unit=1.0, feedback=feedback if feedback else 0)


def random_model_for(dataset, *, data_spec: dict[str, Any] | None = None, **kwargs: Any) -> LiquidTitanModel:
    """``random_model`` whose normalisation and time unit are fitted on ``dataset``'s windows.

    An untrained model fed realistic inputs: what exporter, target and benchmark checks on real
    data need before (or without) training. ``kwargs`` go to ``random_model``.
    """
    from liquidedge.data import Normaliser

    norm = Normaliser().fit(dataset.x, np.asarray(dataset.mask).astype(bool), dataset.dt_s)
    model = random_model(n_features=dataset.x.shape[-1], **kwargs)
    return replace(model, norm_mean=norm.mean, norm_std=norm.std, dt_unit=norm.dt_unit,
                   data_spec=model.data_spec if data_spec is None else data_spec)
