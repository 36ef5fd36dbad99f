"""The memory step on ONNX Runtime: the exported step graph, state kept as numpy arrays.

Imports numpy and onnxruntime only (``onnx`` is needed just when the graph is built from a model
instead of read from an exported file). The CUDA execution provider is used when present.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from liquidedge import reference
from liquidedge.errors import ConfigError, ModelFileError, TargetUnavailableError
from liquidedge.inputs import check_embeddings
from liquidedge.ir import LiquidTitanModel
from liquidedge.targets.host import HostOutputs, NumpyStateOps, check_learn

try:
    import onnxruntime as ort
except ImportError:  # pragma: no cover - depends on the install
    ort = None


def _providers(device: str) -> list[str]:
    have = ort.get_available_providers()
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device == "cuda":
        if "CUDAExecutionProvider" not in have:
            raise TargetUnavailableError("onnxruntime here has no CUDAExecutionProvider")
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device != "auto":
        raise ConfigError(f"onnx host device {device!r}: expected auto, cpu or cuda")
    return (["CUDAExecutionProvider"] if "CUDAExecutionProvider" in have else []) + ["CPUExecutionProvider"]


class OnnxHostRunner(NumpyStateOps):
    """``step(state, embeddings, learn)`` with ONNX Runtime.

    ``artefact``: an exported step (``exporters.memory.export_memory``) whose manifest names
    this model; when omitted the graph is built in memory from ``model``.
    """

    name = "onnxruntime"

    def __init__(self, model: LiquidTitanModel, artefact: str | os.PathLike | None = None,
                 device: str = "auto", dtype: str = "float32", threads: int | None = 1):
        if ort is None:
            raise TargetUnavailableError("onnxruntime is not installed (pip install onnxruntime)")
        if dtype not in ("float32", "float64"):
            raise ConfigError(f"onnx host dtype {dtype!r}: expected float32 or float64")
        self.memory, self.decoder = model.memory, model.decoder
        self.np_dtype = np.float64 if dtype == "float64" else np.float32
        if artefact is not None:
            payload = self._read_artefact(Path(artefact), model, dtype)
        else:
            from liquidedge.exporters.memory import build_memory_model
            payload = build_memory_model(model, dtype).SerializeToString()
        opts = ort.SessionOptions()
        if threads is not None:  # one stream's step is tiny: extra threads only add handoffs
            opts.intra_op_num_threads = int(threads)
            opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(payload, sess_options=opts, providers=_providers(device))
        except Exception as exc:  # ORT raises its own untyped errors for unreadable graphs
            raise ModelFileError(f"memory step graph rejected by onnxruntime: {exc}") from None
        n = self.memory.depth
        self._in = ["embedding", "learn"] + [f"weight_{i}" for i in range(n)] + [f"momentum_{i}" for i in range(n)]
        self._out = ([f"new_weight_{i}" for i in range(n)] + [f"new_momentum_{i}" for i in range(n)]
                     + ["retrieved", "prediction", "score", "updated", "bypass"])
        self.dtype_name = dtype

    @staticmethod
    def _read_artefact(path: Path, model: LiquidTitanModel, dtype: str) -> bytes:
        from liquidedge.targets.base import read_manifest
        manifest = read_manifest(path)
        if manifest.model_hash != model.content_hash():
            raise ModelFileError(f"{path}: exported from model {manifest.model_hash[:12]}, "
                                 f"not this model ({model.content_hash()[:12]})")
        if manifest.details.get("dtype", "float32") != dtype:
            raise ConfigError(f"{path}: exported as {manifest.details.get('dtype')}, asked for {dtype}")
        return path.read_bytes()

    def init_state(self, n: int) -> list:
        s = reference.init_memory_state(self.memory, n, self.np_dtype)
        return s.weights + s.momentum

    def step(self, state, embeddings, learn=None):
        e = check_embeddings(embeddings, self.memory.embedding_dim, self.np_dtype)
        learn = check_learn(learn, e.shape[0])
        feed = dict(zip(self._in, [np.ascontiguousarray(e), learn] + list(state)))
        outs = self.session.run(self._out, feed)
        n = 2 * self.memory.depth
        return outs[:n], HostOutputs(*outs[n:])

    def describe(self) -> dict[str, Any]:
        return {"backend": "onnxruntime", "providers": self.session.get_providers(),
                "dtype": self.dtype_name}
