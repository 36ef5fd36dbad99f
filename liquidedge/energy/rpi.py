"""Raspberry Pi 5 power from its PMIC, read with ``vcgencmd pmic_read_adc``.

The firmware prints one line per ADC channel, currents first, then voltages::

       VDD_CORE_A current(7)=0.56259000A
       VDD_CORE_V volt(15)=0.76798460V
          EXT5V_V volt(24)=5.14158000V          (voltage only: the 5 V input has no current sense)

A rail's power is V x I for each name that has both an ``_A`` and a ``_V`` line; the board figure
is their sum. It leaves out the PMIC's own conversion losses, which is fine for the *difference*
between running and idle that the energy method uses. ``vcgencmd`` needs access to /dev/vcio
(members of the ``video`` group have it).
"""
from __future__ import annotations

import re
import subprocess
import time
from typing import Sequence

from liquidedge.energy.meter import EnergyMeter, Reading, check_finite
from liquidedge.errors import EnergyMeterError

DEFAULT_COMMAND = ("vcgencmd", "pmic_read_adc")
_LINE = re.compile(r"^\s*(?P<rail>\S+)_(?P<unit>[AV])\s+(?:current|volt)\((?P<ch>\d+)\)="
                   r"(?P<value>[-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)(?P<suffix>[AV])\s*$")


def parse_pmic_adc(text: str) -> dict[str, float]:
    """Watts per rail from ``pmic_read_adc`` output; EnergyMeterError when nothing parses."""
    amps: dict[str, float] = {}
    volts: dict[str, float] = {}
    for line in text.splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        if m.group("unit") != m.group("suffix"):
            raise EnergyMeterError(f"pmic_read_adc: inconsistent units in line {line.strip()!r}")
        (amps if m.group("unit") == "A" else volts)[m.group("rail")] = float(m.group("value"))
    rails = {name: amps[name] * volts[name] for name in amps if name in volts}
    if not rails:
        head = text.strip().splitlines()[:1]
        raise EnergyMeterError(f"pmic_read_adc: no rail with both current and voltage in the output "
                               f"(first line: {head[0] if head else '<empty>'!r}); this firmware or board "
                               f"has no PMIC ADC (Raspberry Pi 5 only)")
    return rails


class RpiPmicMeter(EnergyMeter):
    """Samples the Pi 5 PMIC rails through ``vcgencmd`` (about 10 readings a second at best)."""

    kind = "power"
    poll_interval_s = 0.2

    def __init__(self, command: Sequence[str] = DEFAULT_COMMAND, timeout_s: float = 5.0):
        self.command = list(command)
        self.timeout_s = timeout_s
        self.name = "rpi-pmic"
        self.rails = sorted(self._power().keys())

    def _power(self) -> dict[str, float]:
        try:
            proc = subprocess.run(self.command, capture_output=True, text=True, timeout=self.timeout_s)
        except FileNotFoundError:
            raise EnergyMeterError(f"{self.command[0]}: not found. It ships with Raspberry Pi OS "
                                   f"(package raspi-utils); this is not a Raspberry Pi 5, or the "
                                   f"tool is not installed") from None
        except subprocess.TimeoutExpired:
            raise EnergyMeterError(f"{' '.join(self.command)}: no answer within {self.timeout_s} s") from None
        if proc.returncode != 0 or "error=" in proc.stdout:
            msg = (proc.stderr or proc.stdout).strip()
            hint = " (add the user to the 'video' group for /dev/vcio)" if "vcio" in msg or "ermission" in msg else ""
            raise EnergyMeterError(f"{' '.join(self.command)} failed (exit {proc.returncode}): {msg}{hint}")
        return parse_pmic_adc(proc.stdout)

    def read(self) -> Reading:
        return Reading(time.monotonic(), check_finite(self.name, self._power()))

    def energy_between(self, a: Reading, b: Reading) -> dict[str, float]:
        dt = b.t - a.t
        keys = set(a.values) & set(b.values)
        return {k: 0.5 * (a.values[k] + b.values[k]) * dt for k in keys}

    def total(self, per_channel: dict[str, float]) -> float:
        return float(sum(per_channel.values()))
