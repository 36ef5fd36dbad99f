"""Intel/AMD RAPL energy counters through the Linux powercap interface.

Layout (``/sys/class/powercap``)::

    intel-rapl:0/              -> ../../devices/virtual/powercap/intel-rapl/intel-rapl:0
        name                   "package-0"   (top level: package-N or psys)
        energy_uj              cumulative microjoules, wraps to 0 after max_energy_range_uj
        max_energy_range_uj
        intel-rapl:0:0/ ...    sub-domains: core, uncore, dram (already inside the package,
                               except dram)

AMD Zen CPUs expose the same ``intel-rapl`` zones (kernel >= 5.8). ``energy_uj`` has been
readable by root only since the 2020 "Platypus" power side-channel fix (CVE-2020-8694), so a
permission error is explained rather than reported as a broken sensor.
"""
from __future__ import annotations

import os
import re
import time
from pathlib import Path

from liquidedge.energy.meter import EnergyMeter, Reading
from liquidedge.errors import EnergyMeterError

POWERCAP = Path("sys/class/powercap")
_ZONE = re.compile(r"^intel-rapl:(\d+)(?::(\d+))?$")

PLATYPUS_HELP = (
    "RAPL energy_uj is readable by root only since the 2020 Platypus fix (CVE-2020-8694). "
    "Run as root, or grant read access until the next reboot with "
    "`sudo chmod o+r /sys/class/powercap/intel-rapl:*/energy_uj`, or add a udev rule; "
    "without it use the analytic estimate (omit --measure)."
)


class RaplZone:
    """One powercap zone: its name and the files to read."""

    def __init__(self, path: Path, key: str, name: str, max_range_uj: int):
        self.path, self.key, self.name, self.max_range_uj = path, key, name, max_range_uj

    def read_uj(self) -> int:
        f = self.path / "energy_uj"
        try:
            text = f.read_text()
        except PermissionError:
            raise EnergyMeterError(f"{f}: permission denied. {PLATYPUS_HELP}") from None
        except OSError as exc:
            raise EnergyMeterError(f"{f}: unreadable ({exc})") from None
        try:
            value = int(text.strip())
        except ValueError:
            raise EnergyMeterError(f"{f}: expected an integer count of microjoules, got {text.strip()!r}") from None
        if not 0 <= value <= self.max_range_uj:
            raise EnergyMeterError(f"{f}: {value} is outside [0, max_energy_range_uj={self.max_range_uj}]")
        return value


def wrapped_delta_uj(e0: int, e1: int, max_range_uj: int) -> int:
    """Energy between two counter values that wraps to 0 after ``max_range_uj``:
    (e1 - e0) mod (max_range_uj + 1). Correct across at most one wrap."""
    return (int(e1) - int(e0)) % (int(max_range_uj) + 1)


def _read_int(path: Path) -> int:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError) as exc:
        raise EnergyMeterError(f"{path}: unreadable or not an integer ({exc})") from None


def find_zones(root: str | os.PathLike = "/") -> list[RaplZone]:
    """Every RAPL zone under ``root``/sys/class/powercap (top level and sub-domains)."""
    base = Path(root) / POWERCAP
    if not base.is_dir():
        raise EnergyMeterError(f"{base}: no powercap interface (not Linux, or RAPL unsupported: "
                               f"load the intel_rapl_common / intel_rapl_msr module)")
    zones = []
    for entry in sorted(base.iterdir()):
        if not _ZONE.match(entry.name) or not (entry / "name").is_file():
            continue
        name = (entry / "name").read_text().strip()
        zones.append(RaplZone(entry, entry.name, name, _read_int(entry / "max_energy_range_uj")))
    if not zones:
        raise EnergyMeterError(f"{base}: no intel-rapl zones found")
    return zones


class RaplMeter(EnergyMeter):
    """RAPL counters of the chosen domains (default: every ``package-N``; psys when it is the
    only zone). Sub-domains (core, uncore) are inside their package and never added to it.
    Channels are keyed by zone directory (``intel-rapl:0``); ``domains`` accepts either form."""

    kind = "counter"
    poll_interval_s = 0.1

    def __init__(self, root: str | os.PathLike = "/", domains: list[str] | None = None):
        zones = find_zones(root)
        top = [z for z in zones if _ZONE.match(z.key).group(2) is None]
        if domains is None:
            chosen = [z for z in top if z.name.startswith("package")] or top
        else:
            by_name = {z.name: z for z in zones} | {z.key: z for z in zones}
            missing = [d for d in domains if d not in by_name]
            if missing:
                raise EnergyMeterError(f"RAPL: no domain {missing} (found {sorted(z.name for z in zones)})")
            chosen = [by_name[d] for d in domains]
        self.zones = chosen
        self.name = "rapl:" + "+".join(z.name for z in chosen)

    def read(self) -> Reading:
        values = {z.key: float(z.read_uj()) for z in self.zones}
        return Reading(time.monotonic(), values)

    def energy_between(self, a: Reading, b: Reading) -> dict[str, float]:
        return {z.key: wrapped_delta_uj(a.values[z.key], b.values[z.key], z.max_range_uj) / 1e6
                for z in self.zones}

    def total(self, per_channel: dict[str, float]) -> float:
        return float(sum(per_channel.get(z.key, 0.0) for z in self.zones))
