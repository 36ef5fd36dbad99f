"""liquidedge.energy: energy per inference, measured (RAPL, Jetson INA3221, Raspberry Pi 5 PMIC)
with the MLPerf Tiny method, or estimated from op counts (and, for Loihi, from Lava's counts).

Names load on first use: the meters need nothing beyond the standard library, the report needs
matplotlib only when it draws.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "EnergyMeter": "meter", "EnergyTracker": "meter", "Reading": "meter",
    "RaplMeter": "rapl", "JetsonIna3221Meter": "jetson", "RpiPmicMeter": "rpi",
    "measure_energy": "harness", "open_meter": "harness", "EnergyMeasurement": "harness",
    "count_perception_ops": "opcount", "OpCounts": "opcount",
    "estimate_energy": "estimate", "EnergyEstimate": "estimate",
    "energy_table": "report", "energy_row": "report", "plot_energy": "report", "EnergyRow": "report",
    "targets_in": "report",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'liquidedge.energy' has no attribute {name!r}")
    return getattr(importlib.import_module(f"liquidedge.energy.{_EXPORTS[name]}"), name)
