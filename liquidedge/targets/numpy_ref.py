"""The numpy reference as a perception runner: runs anywhere numpy does, no runtime needed.

Useful as the edge's fallback when no accelerated artefact is installed, and in tests of the
bridge and the edge loop where what matters is the data flow, not the runtime.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from liquidedge import reference
from liquidedge.ir import PerceptionGraph
from liquidedge.targets.base import ArtefactManifest, checked_inputs


class ReferenceRunner:
    """``encode`` with ``reference.perception_forward`` in float32 (the oracle itself in float64)."""

    def __init__(self, graph: PerceptionGraph, steps: int, model_hash: str = "",
                 dtype=np.float32):
        self.graph = graph
        self.dtype = dtype
        self.manifest = ArtefactManifest(
            target="numpy", steps=int(steps), n_inputs=graph.n_inputs,
            embedding_dim=graph.embedding_dim,
            precision="fp64" if dtype == np.float64 else "fp32", model_hash=model_hash)

    def encode(self, x, dt, mask=None) -> np.ndarray:
        x, dt, mask = checked_inputs(self.manifest, x, dt, mask)
        return reference.perception_forward(self.graph, x, dt, mask, self.dtype).astype(np.float32)

    def describe(self) -> dict[str, Any]:
        return {"target": "numpy", "precision": self.manifest.precision,
                "steps": self.manifest.steps, "solver": self.graph.solver,
                "unfolds": self.graph.unfolds}
