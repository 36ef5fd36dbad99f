"""Loihi energy and latency per window, estimated from the op counts of a Lava simulation.

Intel has published no per-operation energy table for Loihi 2, so every figure below is Loihi 1's
and serves as a citable PROXY, not a Loihi-2 measurement. Source of every constant:

    M. Davies et al., "Loihi: A Neuromorphic Manycore Processor with On-Chip Learning",
    IEEE Micro 38(1):82-99, 2018, Table 2 ("Loihi pre-silicon performance and energy
    measurements": SDF/SPICE simulation at 0.75 V, consistent with early silicon).

What the estimate leaves out (so read it as a lower bound on the chip's share): static/leakage
power, host I/O (the player and the reader run off-chip), spike hops between tiles, and the
extra cost of a Loihi-2 microcode neuron (the LTC update is ~50 instructions, Table 2 prices a
Loihi-1 LIF compartment). The LTC neuron mapping it prices is described in ``docs/loihi2.md``.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from liquidedge.errors import ConfigError, InputShapeError

SOURCE = "Davies et al., IEEE Micro 38(1):82-99, 2018, Table 2 (Loihi 1; proxy for Loihi 2)"

# Energy, picojoules.
E_SYNOP_PJ = 23.6             # Table 2: energy per synaptic spike op (min)
E_NEURON_ACTIVE_PJ = 81.0     # Table 2: energy per neuron update, active
E_NEURON_INACTIVE_PJ = 52.0   # Table 2: energy per neuron update, inactive
E_SPIKE_TILE_PJ = 1.7         # Table 2: within-tile spike energy
# Time, nanoseconds.
T_SYNOP_NS = 3.5              # Table 2: time per synaptic spike op (max)
T_NEURON_ACTIVE_NS = 8.4      # Table 2: time per neuron update, active
T_NEURON_INACTIVE_NS = 5.3    # Table 2: time per neuron update, inactive
T_SPIKE_TILE_NS = 2.1         # Table 2: within-tile spike latency
T_BARRIER_NS = 113.0          # Table 2: mesh-wide barrier sync time, 1 tile (113-465 ns for 1-32)

REQUIRED = ("synaptic_ops", "neuron_updates", "spikes", "time_steps")


def _mean_count(counts: Mapping[str, Any], key: str) -> float:
    value = np.asarray(counts[key], np.float64)
    if value.size == 0 or not np.all(np.isfinite(value)) or np.any(value < 0):
        raise InputShapeError(f"counts[{key!r}]: expected finite non-negative numbers")
    return float(value.mean())


def loihi_estimate(counts: Mapping[str, Any], *, cores: int = 1) -> dict[str, Any]:
    """Energy (uJ) and latency (us) of one window on Loihi, from per-window op counts.

    ``counts``: ``synaptic_ops``, ``neuron_updates``, ``spikes``, ``time_steps`` and optionally
    ``active_neuron_updates`` (default: all updates active), each a number or a per-window array
    (its mean is used) - what ``LavaRunner.last_counts`` holds. ``cores``: neuro-cores the work is
    spread over, assumed perfectly balanced (1: the whole LTC layer on one core).
    """
    if not isinstance(counts, Mapping):
        raise ConfigError(f"counts: expected a mapping of op counts, got {type(counts).__name__}")
    missing = [k for k in REQUIRED if k not in counts]
    if missing:
        raise ConfigError(f"counts: missing {missing} (expected {list(REQUIRED)})")
    if int(cores) < 1:
        raise ConfigError(f"cores: expected >= 1, got {cores}")
    synops = _mean_count(counts, "synaptic_ops")
    updates = _mean_count(counts, "neuron_updates")
    spikes = _mean_count(counts, "spikes")
    steps = _mean_count(counts, "time_steps")
    active = _mean_count(counts, "active_neuron_updates") if "active_neuron_updates" in counts else updates
    if active > updates:
        raise InputShapeError("counts: active_neuron_updates exceeds neuron_updates")
    inactive = updates - active
    parts_pj = {
        "synaptic_ops": synops * E_SYNOP_PJ,
        "neuron_updates": active * E_NEURON_ACTIVE_PJ + inactive * E_NEURON_INACTIVE_PJ,
        "spikes": spikes * E_SPIKE_TILE_PJ,
    }
    core_ns = (synops * T_SYNOP_NS + active * T_NEURON_ACTIVE_NS + inactive * T_NEURON_INACTIVE_NS) / int(cores)
    latency_ns = core_ns + spikes * T_SPIKE_TILE_NS + steps * T_BARRIER_NS
    return {
        "uj_per_window": sum(parts_pj.values()) * 1e-6,
        "latency_us": latency_ns * 1e-3,
        "breakdown_uj": {k: v * 1e-6 for k, v in parts_pj.items()},
        "per_op": {"synop_pj": E_SYNOP_PJ, "neuron_active_pj": E_NEURON_ACTIVE_PJ,
                   "neuron_inactive_pj": E_NEURON_INACTIVE_PJ, "spike_pj": E_SPIKE_TILE_PJ,
                   "synop_ns": T_SYNOP_NS, "neuron_active_ns": T_NEURON_ACTIVE_NS,
                   "neuron_inactive_ns": T_NEURON_INACTIVE_NS, "spike_ns": T_SPIKE_TILE_NS,
                   "barrier_ns": T_BARRIER_NS},
        "assumptions": [
            f"per-operation figures: {SOURCE}; Intel has published none for Loihi 2",
            "dynamic energy only: no static/leakage power, no host I/O (input player and reader run off-chip)",
            "every graded spike stays within one tile (no inter-tile hops)",
            f"latency: time steps run back to back; per step the work of {int(cores)} core(s) is serial "
            "(synaptic ops and neuron updates), then spikes and one barrier sync",
            "an LTC microcode neuron update is priced as one Loihi-1 compartment update (optimistic)",
            "active update = a neuron integrating input; inactive = the per-window reset step",
        ],
    }
