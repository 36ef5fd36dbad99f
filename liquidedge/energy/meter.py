"""What every energy meter provides, and the tracker that turns raw readings into joules.

Sensors come in two kinds. *Counters* (RAPL) give cumulative energy that wraps around; the energy
between two readings is their wrapped difference. *Power sensors* (Jetson INA3221, Raspberry Pi 5
PMIC) give instantaneous power; the energy between two readings is the trapezoid under it. The
tracker polls a meter from a background thread so that a counter never wraps twice between two
reads and power is sampled evenly, whatever the measured code is doing.
"""
from __future__ import annotations

import math
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass

from liquidedge.errors import EnergyMeterError


@dataclass(frozen=True)
class Reading:
    """One poll of a meter: a monotonic timestamp (s) and a value per channel."""

    t: float
    values: dict[str, float]


class EnergyMeter(ABC):
    """A power/energy sensor. Subclasses read raw values; the base class integrates them."""

    name: str = "meter"
    kind: str = "power"          # "counter" (cumulative energy) | "power" (instantaneous watts)
    poll_interval_s: float = 0.05

    @abstractmethod
    def read(self) -> Reading:
        """Read every channel now; raise EnergyMeterError when the sensor cannot be read."""

    @abstractmethod
    def energy_between(self, a: Reading, b: Reading) -> dict[str, float]:
        """Joules per channel between two consecutive readings."""

    @abstractmethod
    def total(self, per_channel: dict[str, float]) -> float:
        """The device's energy from per-channel energies (which channels count, without overlap)."""

    def describe(self) -> str:
        return self.name


def check_finite(meter: str, values: dict[str, float]) -> dict[str, float]:
    """Refuse NaN/inf/negative power or energy: a sensor that returns nonsense must not be averaged."""
    for key, v in values.items():
        if not math.isfinite(v) or v < 0:
            raise EnergyMeterError(f"{meter}: channel {key!r} returned {v!r} (expected a finite value >= 0)")
    return values


class EnergyTracker:
    """Context manager: integrates a meter's energy from entry to exit, polling in a thread.

    ``with EnergyTracker(meter) as tr: work()`` then ``tr.joules`` (device total),
    ``tr.per_channel`` and ``tr.seconds``. A sensor error inside the thread is re-raised on exit.
    """

    def __init__(self, meter: EnergyMeter, interval_s: float | None = None):
        self.meter = meter
        self.interval_s = float(interval_s if interval_s is not None else meter.poll_interval_s)
        if not self.interval_s > 0:
            raise EnergyMeterError(f"poll interval must be > 0 s, got {self.interval_s}")
        self.per_channel: dict[str, float] = {}
        self.samples = 0
        self.seconds = 0.0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._error: BaseException | None = None
        self._last: Reading | None = None
        self._first: Reading | None = None
        self._thread: threading.Thread | None = None

    @property
    def joules(self) -> float:
        return self.meter.total(self.per_channel)

    def _advance(self, reading: Reading) -> None:
        with self._lock:
            if self._last is not None:
                for k, v in self.meter.energy_between(self._last, reading).items():
                    self.per_channel[k] = self.per_channel.get(k, 0.0) + v
            self._last = reading
            self.samples += 1

    def _poll(self) -> None:
        try:
            while not self._stop.wait(self.interval_s):
                self._advance(self.meter.read())
        except BaseException as exc:  # surfaced in __exit__, never swallowed
            self._error = exc

    def __enter__(self) -> "EnergyTracker":
        first = self.meter.read()
        self._first = first
        self._advance(first)
        self._thread = threading.Thread(target=self._poll, name=f"energy-{self.meter.name}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._error is None:
            self._advance(self.meter.read())
        if self._error is not None:
            raise self._error
        self.seconds = self._last.t - self._first.t
