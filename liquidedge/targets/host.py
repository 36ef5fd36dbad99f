"""Host runners for the memory step, and the table of per-stream memories they step.

Every runner computes the same pure function (``MemoryGraph``'s equations + the decoder)::

    step(state, embedding [B,E], learn [B]) -> (state', HostOutputs(retrieved, prediction,
                                                 score, updated, bypass))

over a batch of independent streams. The state stays in the runner's own form (torch tensors
on the runner's device, numpy arrays for ONNX Runtime) so nothing is copied between steps;
``to_numpy``/``from_numpy`` convert it for checkpoints. ``StreamMemory`` maps stream ids to rows
of one stacked state, so a batch of embeddings from different streams is one runner call.

Backends: ``torch`` (``host_torch``, CPU or CUDA), ``onnxruntime`` (``host_onnx``, numpy +
onnxruntime only) and ``numpy`` (the reference itself, float64: slow, dependency-free).
"""
from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np

from liquidedge import reference
from liquidedge.errors import ConfigError, InputShapeError, TargetUnavailableError
from liquidedge.inputs import check_embeddings
from liquidedge.ir import DecoderGraph, LiquidTitanModel, MemoryGraph

BACKENDS = ("torch", "onnxruntime", "numpy")


@dataclass
class HostOutputs:
    """What one step answers per stream (numpy, float32 unless the runner computes in float64)."""

    retrieved: np.ndarray    # [B, D]
    prediction: np.ndarray   # [B, P]
    score: np.ndarray        # [B] surprise score
    updated: np.ndarray      # [B] bool: the memory took a step
    bypass: np.ndarray       # [B] bool: surprise above the bypass threshold


@runtime_checkable
class HostRunner(Protocol):
    """One signature for every host backend; ``state`` is a list ``weights + momenta``."""

    name: str
    memory: MemoryGraph
    decoder: DecoderGraph

    def init_state(self, n: int) -> list: ...

    def step(self, state: list, embeddings: np.ndarray,
             learn: np.ndarray | None = None) -> tuple[list, HostOutputs]: ...

    def take(self, state: list, rows: np.ndarray) -> list: ...

    def put(self, state: list, rows: np.ndarray, part: list) -> list: ...

    def concat(self, a: list, b: list) -> list: ...

    def to_numpy(self, state: list) -> reference.MemoryState: ...

    def from_numpy(self, state: reference.MemoryState) -> list: ...

    def describe(self) -> dict[str, Any]: ...


def check_learn(learn, batch: int) -> np.ndarray:
    if learn is None:
        return np.ones(batch, bool)
    arr = np.asarray(learn)
    if arr.shape != (batch,) or arr.dtype.kind not in "bui":
        raise InputShapeError(f"learn: expected {batch} booleans, got shape {arr.shape} dtype {arr.dtype}")
    return arr.astype(bool)


class NumpyStateOps:
    """Row bookkeeping for runners whose state is a list of numpy arrays [weights..., momenta...].

    Needs ``self.memory`` (the MemoryGraph) and ``self.np_dtype``.
    """

    def take(self, state, rows):
        rows = np.asarray(rows)
        if rows.size == 1:  # a view, not a copy: the common one-stream case
            r = int(rows.reshape(-1)[0])
            return [s[r:r + 1] for s in state]
        return [s[rows] for s in state]

    def put(self, state, rows, part):
        rows = np.asarray(rows)
        if rows.size == 1:
            r = int(rows.reshape(-1)[0])
            for s, p in zip(state, part):
                s[r:r + 1] = p
            return state
        for s, p in zip(state, part):
            s[rows] = p
        return state

    def concat(self, a, b):
        return [np.concatenate([x, y]) for x, y in zip(a, b)]

    def to_numpy(self, state) -> reference.MemoryState:
        n = self.memory.depth
        return reference.MemoryState([np.array(s) for s in state[:n]], [np.array(s) for s in state[n:]])

    def from_numpy(self, state: reference.MemoryState) -> list:
        return [np.array(s, self.np_dtype) for s in state.weights + state.momentum]


class NumpyHostRunner(NumpyStateOps):
    """The reference as a runner (float64): the oracle, and a host with no runtime installed."""

    name = "numpy"

    def __init__(self, model: LiquidTitanModel, dtype=np.float64):
        self.memory, self.decoder = model.memory, model.decoder
        self.dtype = self.np_dtype = dtype
        # no score can exceed the largest float: the frozen copy never learns nor asks for bypass
        self._frozen = dataclasses.replace(self.memory, threshold=float(np.finfo(np.float64).max),
                                           bypass_threshold=float("inf"))

    def init_state(self, n: int) -> list:
        s = reference.init_memory_state(self.memory, n, self.dtype)
        return s.weights + s.momentum

    def step(self, state, embeddings, learn=None):
        e = check_embeddings(embeddings, self.memory.embedding_dim, self.dtype)
        learn = check_learn(learn, e.shape[0])
        ms = self.to_numpy(state)
        res = reference.memory_step(self.memory, ms, e, self.dtype)
        if not learn.all():  # answer the masked streams from the memory as it is
            frozen = reference.memory_step(self._frozen, ms, e, self.dtype)
            for attr in ("retrieved", "updated", "bypass"):
                getattr(res, attr)[~learn] = getattr(frozen, attr)[~learn]
            for new, old in zip(res.state.weights + res.state.momentum,
                                frozen.state.weights + frozen.state.momentum):
                new[~learn] = old[~learn]
        prediction = reference.decoder_forward(self.decoder, e, res.retrieved)
        out = HostOutputs(res.retrieved, prediction, res.score, res.updated.astype(bool),
                          res.bypass.astype(bool))
        return res.state.weights + res.state.momentum, out

    def describe(self) -> dict[str, Any]:
        return {"backend": "numpy", "dtype": np.dtype(self.dtype).name}


_FACTORIES = {
    "torch": "liquidedge.targets.host_torch:TorchHostRunner",
    "onnxruntime": "liquidedge.targets.host_onnx:OnnxHostRunner",
}


def available_backends() -> list[str]:
    """Backends whose runtime imports here, best first."""
    out = []
    for name, module in (("torch", "torch"), ("onnxruntime", "onnxruntime")):
        try:
            importlib.import_module(module)
            out.append(name)
        except ImportError:
            pass
    return out + ["numpy"]


def load_host_runner(model: LiquidTitanModel, backend: str = "auto", **options: Any) -> HostRunner:
    """Build the runner for ``backend`` ("auto": onnxruntime, then torch, then numpy).

    "auto" prefers ONNX Runtime: on a CPU host it is the faster of the two for one stream (see
    ``benchmarks/bridge.py``) and starts without importing torch.
    """
    if backend == "auto":
        have = available_backends()
        backend = next(b for b in ("onnxruntime", "torch", "numpy") if b in have)
    if backend == "numpy":
        return NumpyHostRunner(model, **options)
    spec = _FACTORIES.get(backend)
    if spec is None:
        raise ConfigError(f"host backend {backend!r}: expected one of {BACKENDS} or 'auto'")
    module, name = spec.split(":")
    try:
        factory = getattr(importlib.import_module(module), name)
    except ImportError as exc:
        raise TargetUnavailableError(f"host backend {backend!r} is not usable here: {exc}") from None
    return factory(model, **options)


class StreamMemory:
    """Per-stream memory states stacked in one runner state; rows are handed out on first use.

    Each stream has its own weights and momentum; streams never mix. ``step`` takes distinct
    stream ids (one embedding each) and steps them together in one runner call.
    """

    def __init__(self, runner: HostRunner, capacity: int = 8):
        self.runner = runner
        self.rows: dict[str, int] = {}
        self._capacity = max(1, int(capacity))
        self._state = runner.init_state(self._capacity)

    @property
    def streams(self) -> list[str]:
        return list(self.rows)

    def _row(self, stream_id: str) -> int:
        row = self.rows.get(stream_id)
        if row is None:
            row = len(self.rows)
            if row >= self._capacity:
                extra = self._capacity
                self._state = self.runner.concat(self._state, self.runner.init_state(extra))
                self._capacity += extra
            self.rows[stream_id] = row
        return row

    def step(self, stream_ids: Sequence[str], embeddings, learn=None) -> HostOutputs:
        if len(set(stream_ids)) != len(stream_ids):
            raise InputShapeError("StreamMemory.step: a stream may appear once per batch "
                                  "(its embeddings must be applied in order, one step each)")
        rows = np.array([self._row(s) for s in stream_ids], np.int64)
        part = self.runner.take(self._state, rows)
        new_part, out = self.runner.step(part, embeddings, learn)
        self._state = self.runner.put(self._state, rows, new_part)
        return out

    def state_of(self, stream_id: str) -> reference.MemoryState:
        """One stream's state as numpy (batch axis of 1); a new stream's is the initial state."""
        if stream_id not in self.rows:
            return self.runner.to_numpy(self.runner.init_state(1))
        rows = np.array([self.rows[stream_id]], np.int64)
        return self.runner.to_numpy(self.runner.take(self._state, rows))

    def export(self) -> tuple[list[str], reference.MemoryState]:
        """All streams' states (row i belongs to ids[i]), for a checkpoint."""
        ids = list(self.rows)
        rows = np.arange(len(ids), dtype=np.int64)
        return ids, self.runner.to_numpy(self.runner.take(self._state, rows))

    def restore(self, ids: Sequence[str], state: reference.MemoryState) -> None:
        """Replace every stream's state with ``state`` (row i for ids[i])."""
        n = len(ids)
        if state.batch != n:
            raise InputShapeError(f"restore: {n} stream ids for {state.batch} states")
        capacity = max(8, n)
        native = self.runner.from_numpy(state)
        if capacity > n:
            native = self.runner.concat(native, self.runner.init_state(capacity - n))
        self._state, self._capacity = native, capacity
        self.rows = {s: i for i, s in enumerate(ids)}
