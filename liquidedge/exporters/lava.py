"""PerceptionGraph -> Loihi-2 (Lava) artefact directory.

The directory holds ``graph.safetensors`` (for ``floating_pt`` the float arrays of the graph; for
``fixed_pt`` the 8-bit weight mantissas, their shared exponents' shifts, the integer bias, A and
1/tau, the two lookup tables) and ``manifest.json`` (target ``lava``, the window it accepts, the
fixed-point formats, the synapse counts and the sha256 of the arrays, so a tampered file is
refused). No Lava import: exporting needs numpy and safetensors only.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from liquidedge.errors import ConfigError
from liquidedge.ir import LiquidTitanModel, PerceptionGraph
from liquidedge.lava_procs import fixed_point as fxp
from liquidedge.targets.base import ArtefactManifest, sha256_file, write_manifest

PRECISIONS = ("floating_pt", "fixed_pt")
GRAPH_FILE = "graph.safetensors"


def solver_stages(solver: str) -> int:
    """Neuron time steps per sub-step: rk4 evaluates the gate at 4 states, each via Dense(W_rec)."""
    return 4 if solver == "rk4" else 1


def fanouts(g: PerceptionGraph) -> tuple[np.ndarray, np.ndarray]:
    """Synapses each input and each hidden unit drives: what one of its graded spikes costs."""
    in_fanout = np.count_nonzero(g.w_in, axis=1).astype(np.int32)
    rec_fanout = g.wiring.sum(axis=1).astype(np.int32)
    return in_fanout, rec_fanout


def export_lava(model: LiquidTitanModel | PerceptionGraph, out_dir: str | os.PathLike, *, steps: int,
                precision: str = "floating_pt", x_range: float = 64.0, weight_synapses: int = 1,
                model_hash: str | None = None) -> Path:
    """Write a Lava artefact directory for windows of ``steps`` steps and return its path.

    ``x_range`` (fixed_pt only) is the largest |input| the 24-bit input payloads must carry
    (a larger range leaves fewer fractional bits); inputs beyond it are refused at run time,
    never clipped. ``weight_synapses`` (fixed_pt only): 1 stores each weight as one 8-bit
    synapse; 2 adds a second 8-bit synapse for its rounding residual (16-bit effective weights,
    twice the synaptic operations).
    """
    from safetensors.numpy import save_file

    if isinstance(model, LiquidTitanModel):
        g, model_hash = model.perception, model_hash or model.content_hash()
    elif isinstance(model, PerceptionGraph):
        g, model_hash = model, model_hash or ""
    else:
        raise ConfigError(f"export_lava: expected a LiquidTitanModel or PerceptionGraph, got {type(model).__name__}")
    if precision not in PRECISIONS:
        raise ConfigError(f"precision: expected one of {PRECISIONS}, got {precision!r}")
    if int(steps) < 1:
        raise ConfigError(f"steps: expected >= 1, got {steps}")
    steps = int(steps)
    if precision == "floating_pt" and weight_synapses != 1:
        raise ConfigError("weight_synapses applies to fixed_pt only")
    in_fanout, rec_fanout = (f * weight_synapses for f in fanouts(g))
    details = {
        "solver": g.solver, "unfolds": g.unfolds, "hidden": g.hidden,
        "stages": solver_stages(g.solver), "readout": g.w_out is not None,
        "frame_length": 1 + steps * g.unfolds * solver_stages(g.solver),
        "synapses": {"input": int(in_fanout.sum()), "recurrent": int(rec_fanout.sum()),
                     "readout": int(g.w_out.size) if g.w_out is not None else 0},
        "graph_file": GRAPH_FILE,
    }
    if precision == "floating_pt":
        arrays = {k: np.ascontiguousarray(v, np.float32) for k, v in g.arrays().items()}
    else:
        fmt, arrays = fxp.quantise_graph(g, x_range, weight_synapses)
        details["formats"] = fmt.to_dict()
        details["weight_max_abs_error"] = _weight_errors(g, fmt, arrays)
    arrays["in_fanout"] = in_fanout
    arrays["rec_fanout"] = rec_fanout
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / GRAPH_FILE
    tmp = out / (GRAPH_FILE + ".tmp")
    save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp))
    os.replace(tmp, path)
    details["graph_sha256"] = sha256_file(path)
    manifest = ArtefactManifest(target="lava", steps=steps, n_inputs=g.n_inputs,
                                embedding_dim=g.embedding_dim, precision=precision,
                                model_hash=model_hash, details=details)
    write_manifest(out, manifest)
    return out


def _weight_errors(g: PerceptionGraph, fmt: fxp.FixedFormats, arrays: dict) -> dict[str, float]:
    """Largest |w - quantised w| per matrix: the weights' share of the fixed_pt error."""
    out = {"w_in": float(np.abs(g.w_in - fxp.effective_weights(arrays, "w_in", fmt.w_in_exp)).max()),
           "w_rec": float(np.abs(g.w_rec - fxp.effective_weights(arrays, "w_rec", fmt.w_rec_exp)).max())}
    if g.w_out is not None:
        out["w_out"] = float(np.abs(g.w_out - arrays["w_out_mant"] * 2.0 ** fmt.w_out_exp).max())
    return out
