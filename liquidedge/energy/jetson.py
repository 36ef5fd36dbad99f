"""NVIDIA Jetson power rails from the on-board INA3221 monitors, read through sysfs.

Two kernel layouts exist and both are read:

* JetPack 5/6 (hwmon), e.g. Orin::

      /sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon3/
          in1_label   "VDD_IN"      rail name (jtop shows the same names)
          in1_input   bus voltage, mV
          curr1_input current, mA
      channels labelled "NC" are not connected; "sum of shunt voltages" (in7) is not a rail.

* JetPack 4 and older (iio), e.g. Xavier/Nano::

      /sys/bus/i2c/drivers/ina3221x/1-0040/iio:device0/
          rail_name_0       "POM_5V_IN"
          in_power0_input   mW     (in_voltage0_input mV, in_current0_input mA)

The board total follows jtop: the input rail (``VDD_IN`` or ``POM_5V_IN``) when the board has
one, otherwise the sum of all rails (AGX Orin).
"""
from __future__ import annotations

import os
import re
import time
from pathlib import Path

from liquidedge.energy.meter import EnergyMeter, Reading, check_finite
from liquidedge.errors import EnergyMeterError

HWMON_GLOB = "sys/bus/i2c/drivers/ina3221/*/hwmon/hwmon*"
IIO_GLOB = "sys/bus/i2c/drivers/ina3221x/*/iio:device*"
INPUT_RAILS = ("VDD_IN", "POM_5V_IN")
_SKIP_LABELS = ("NC", "sum of shunt voltages")


def _read_number(path: Path) -> float:
    try:
        text = path.read_text()
    except PermissionError:
        raise EnergyMeterError(f"{path}: permission denied (INA3221 sysfs files are world-readable "
                               f"on stock JetPack; check the file's mode)") from None
    except OSError as exc:
        raise EnergyMeterError(f"{path}: unreadable ({exc})") from None
    try:
        return float(text.split()[0])
    except (ValueError, IndexError):
        raise EnergyMeterError(f"{path}: expected a number, got {text.strip()!r}") from None


class _Rail:
    def __init__(self, label: str, files: dict[str, Path]):
        self.label, self.files = label, files

    def watts(self) -> float:
        if "power_mw" in self.files:
            return _read_number(self.files["power_mw"]) / 1e3
        return _read_number(self.files["volt_mv"]) * _read_number(self.files["curr_ma"]) / 1e6


def find_rails(root: str | os.PathLike = "/") -> dict[str, _Rail]:
    """Every connected INA3221 rail under ``root``, keyed by its label."""
    root = Path(root)
    rails: dict[str, _Rail] = {}
    for hw in sorted(root.glob(HWMON_GLOB)):
        for label_file in sorted(hw.glob("in*_label")):
            m = re.match(r"in(\d+)_label$", label_file.name)
            if not m:
                continue
            label = label_file.read_text().strip()
            if label in _SKIP_LABELS or label.startswith("NC"):
                continue
            n = m.group(1)
            rails[label] = _Rail(label, {"volt_mv": hw / f"in{n}_input", "curr_ma": hw / f"curr{n}_input"})
    for dev in sorted(root.glob(IIO_GLOB)):
        for name_file in sorted(dev.glob("rail_name_*")):
            n = name_file.name.rsplit("_", 1)[1]
            label = name_file.read_text().strip()
            rails[label] = _Rail(label, {"power_mw": dev / f"in_power{n}_input"})
    return rails


class JetsonIna3221Meter(EnergyMeter):
    """Samples every INA3221 rail's power; energy is the trapezoid over the samples."""

    kind = "power"
    poll_interval_s = 0.02

    def __init__(self, root: str | os.PathLike = "/", rails: list[str] | None = None):
        found = find_rails(root)
        if not found:
            raise EnergyMeterError(f"no INA3221 power monitor under {Path(root) / 'sys/bus/i2c/drivers'} "
                                   f"(not a Jetson, or the ina3221 driver is not loaded)")
        if rails is not None:
            missing = [r for r in rails if r not in found]
            if missing:
                raise EnergyMeterError(f"INA3221: no rail {missing} (found {sorted(found)})")
            found = {r: found[r] for r in rails}
        self.rails = found
        inputs = [r for r in INPUT_RAILS if r in found]
        self.total_rails = inputs[:1] if inputs else sorted(found)
        self.name = "ina3221:" + "+".join(self.total_rails)

    def read(self) -> Reading:
        values = {label: rail.watts() for label, rail in self.rails.items()}
        return Reading(time.monotonic(), check_finite(self.name, values))

    def energy_between(self, a: Reading, b: Reading) -> dict[str, float]:
        dt = b.t - a.t
        return {k: 0.5 * (a.values[k] + b.values[k]) * dt for k in self.rails}

    def total(self, per_channel: dict[str, float]) -> float:
        return float(sum(per_channel.get(k, 0.0) for k in self.total_rails))
