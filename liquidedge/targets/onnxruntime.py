"""ONNX Runtime perception runner: numpy + onnxruntime only, no torch.

The artefact has a static window (T steps) and a dynamic batch. Inputs are checked against the
manifest before the session sees them, and the model hash written into the ONNX file's metadata
must match the manifest's, so a manifest copied next to the wrong file is refused at load time.
The session runs sequentially with ``threads`` intra-op threads (1 by default: at batch 1 the
graph is hundreds of tiny operators and threads only add synchronisation).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from liquidedge.errors import ModelFileError, TargetUnavailableError
from liquidedge.targets.base import ArtefactManifest, checked_inputs, check_runner_args

MODEL_HASH_KEY = "liquidedge.model_hash"


class OnnxRuntimeRunner:
    """``encode(x [B,T,F], dt [B,T], mask [B,T]) -> embedding [B,E]`` on an ``.onnx`` artefact."""

    def __init__(self, path: str | Path, manifest: ArtefactManifest, threads: int = 1,
                 providers: list[str] | None = None, **options: Any):
        threads = check_runner_args("onnxruntime", path, manifest, threads, options)
        try:
            import onnxruntime as ort
        except ImportError:
            raise TargetUnavailableError("ONNX Runtime is not installed: pip install onnxruntime") from None
        self.path = Path(path)
        self.manifest = manifest
        self.threads = int(threads)
        so = ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.log_severity_level = 3
        self.providers = list(providers or ["CPUExecutionProvider"])
        try:
            self._session = ort.InferenceSession(str(self.path), so, providers=self.providers)
        except Exception as exc:  # ORT raises its own exception types for unreadable models
            raise ModelFileError(f"{self.path}: ONNX Runtime cannot load this file ({exc})") from None
        meta = self._session.get_modelmeta().custom_metadata_map
        if meta.get(MODEL_HASH_KEY) != manifest.model_hash:
            raise ModelFileError(f"{self.path}: the file was exported from model "
                                 f"{meta.get(MODEL_HASH_KEY)!r} but its manifest names {manifest.model_hash!r}")
        names = [i.name for i in self._session.get_inputs()]
        if sorted(names) != ["dt", "mask", "x"]:
            raise ModelFileError(f"{self.path}: expected inputs x, dt, mask, found {names}")
        shape = self._session.get_inputs()[names.index("x")].shape
        if list(shape[1:]) != [manifest.steps, manifest.n_inputs]:
            raise ModelFileError(f"{self.path}: input x is {shape}, the manifest promises "
                                 f"[B, {manifest.steps}, {manifest.n_inputs}]")
        self._output = self._session.get_outputs()[0].name

    def encode(self, x, dt, mask=None) -> np.ndarray:
        x, dt, mask = checked_inputs(self.manifest, x, dt, mask)
        out = self._session.run([self._output], {"x": x, "dt": dt, "mask": mask})[0]
        return np.asarray(out, dtype=np.float32)

    def describe(self) -> dict[str, Any]:
        d = self.manifest.details
        return {"target": "onnxruntime", "providers": self._session.get_providers(),
                "threads": self.threads, "precision": self.manifest.precision,
                "steps": self.manifest.steps, "n_inputs": self.manifest.n_inputs,
                "embedding_dim": self.manifest.embedding_dim, "graph_form": d.get("graph_form"),
                "int8_scope": d.get("int8_scope"), "model_hash": self.manifest.model_hash}
