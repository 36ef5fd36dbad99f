"""LiteRT (TFLite) perception runner: numpy + the LiteRT interpreter only, no torch.

LiteRT artefacts have a static batch per signature (litert-torch cannot export a symbolic
batch), so the exporter writes one signature per batch size (``b1``, ``b256``, ... listed in the
manifest) and this runner covers any batch with the largest signatures that fit, then
signature ``b1`` for the rest. Inputs are checked against the manifest before the interpreter
sees them; full-integer artefacts get their inputs quantised and their output dequantised here
with the scales stored in the flatbuffer. Uses ``ai_edge_litert.interpreter`` and falls back to
``tflite_runtime.interpreter`` where only that is installed; XNNPACK runs with ``threads``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from liquidedge.errors import ModelFileError, TargetUnavailableError
from liquidedge.targets.base import ArtefactManifest, checked_inputs, check_runner_args

_INPUTS = ("x", "dt", "mask")


def _import_interpreter() -> tuple[Any, str]:
    try:
        from ai_edge_litert.interpreter import Interpreter
        return Interpreter, "ai_edge_litert"
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter
        return Interpreter, "tflite_runtime"
    except ImportError:
        raise TargetUnavailableError(
            "LiteRT is not installed: pip install ai-edge-litert (or tflite-runtime)") from None


def load_interpreter_class():
    """The LiteRT ``Interpreter`` class (ai_edge_litert, else tflite_runtime)."""
    return _import_interpreter()[0]


def _quantise(value: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    if dtype == np.float32:
        return value
    scale, zero = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(value / scale) + zero, info.min, info.max).astype(dtype)


def _dequantise(value: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    if np.dtype(detail["dtype"]) == np.float32:
        return value
    scale, zero = detail["quantization"]
    return ((value.astype(np.float32) - zero) * scale).astype(np.float32)


class LiteRTRunner:
    """``encode(x [B,T,F], dt [B,T], mask [B,T]) -> embedding [B,E]`` on a ``.tflite`` artefact."""

    def __init__(self, path: str | Path, manifest: ArtefactManifest, threads: int = 1, **options: Any):
        threads = check_runner_args("litert", path, manifest, threads, options)
        self.path = Path(path)
        self.manifest = manifest
        self.threads = int(threads)
        interpreter_class, self.runtime = _import_interpreter()
        try:
            self._interpreter = interpreter_class(model_path=str(self.path), num_threads=self.threads)
            available = self._interpreter.get_signature_list()
        except (ValueError, RuntimeError) as exc:
            raise ModelFileError(f"{self.path}: LiteRT cannot load this file ({exc})") from None
        signatures = manifest.details.get("signatures")
        if not isinstance(signatures, dict) or not signatures:
            raise ModelFileError(f"{self.path}: manifest lists no signatures")
        self._runners: dict[int, tuple[Any, dict, dict, str]] = {}
        for name, batch in signatures.items():
            if name not in available:
                raise ModelFileError(f"{self.path}: signature {name!r} named in the manifest is missing")
            runner = self._interpreter.get_signature_runner(name)
            inputs = runner.get_input_details()
            outputs = runner.get_output_details()
            self._check_signature(name, int(batch), inputs, outputs)
            self._runners[int(batch)] = (runner, inputs, next(iter(outputs.values())), next(iter(outputs)))
        if 1 not in self._runners:
            raise ModelFileError(f"{self.path}: no batch-1 signature")
        self._sizes = sorted(self._runners, reverse=True)

    def _check_signature(self, name: str, batch: int, inputs: dict, outputs: dict) -> None:
        m = self.manifest
        want = {"x": (batch, m.steps, m.n_inputs), "dt": (batch, m.steps), "mask": (batch, m.steps)}
        got = {k: tuple(int(v) for v in d["shape"]) for k, d in inputs.items()}
        if got != want or len(outputs) != 1:
            raise ModelFileError(f"{self.path}: signature {name!r} has inputs {got}, the manifest "
                                 f"promises {want}")
        out_shape = tuple(int(v) for v in next(iter(outputs.values()))["shape"])
        if out_shape != (batch, m.embedding_dim):
            raise ModelFileError(f"{self.path}: signature {name!r} outputs {out_shape}, expected "
                                 f"{(batch, m.embedding_dim)}")

    def _plan(self, total: int) -> list[tuple[int, int]]:
        """(start, signature batch) chunks: largest signatures first, batch 1 for the remainder."""
        plan, start = [], 0
        for size in self._sizes:
            while total - start >= size:
                plan.append((start, size))
                start += size
        return plan

    def encode(self, x, dt, mask=None) -> np.ndarray:
        x, dt, mask = checked_inputs(self.manifest, x, dt, mask)
        out = np.empty((x.shape[0], self.manifest.embedding_dim), np.float32)
        feeds = {"x": x, "dt": dt, "mask": mask}
        for start, size in self._plan(x.shape[0]):
            runner, inputs, out_detail, out_name = self._runners[size]
            chunk = {k: _quantise(np.ascontiguousarray(v[start:start + size]), inputs[k]) for k, v in feeds.items()}
            out[start:start + size] = _dequantise(runner(**chunk)[out_name], out_detail)
        return out

    def describe(self) -> dict[str, Any]:
        d = self.manifest.details
        return {"target": "litert", "runtime": self.runtime, "threads": self.threads,
                "precision": self.manifest.precision, "steps": self.manifest.steps,
                "n_inputs": self.manifest.n_inputs, "embedding_dim": self.manifest.embedding_dim,
                "batch_signatures": sorted(self._runners), "graph_form": d.get("graph_form"),
                "int8_scope": d.get("int8_scope"), "model_hash": self.manifest.model_hash}
