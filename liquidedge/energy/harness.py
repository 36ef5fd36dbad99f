"""Energy per inference, measured the way MLPerf Tiny's energy mode does it.

Per trial: measure the idle power over ``idle_s``, then run inferences back to back for a fixed
window of at least 10 s and integrate the energy over it; the energy of one inference is
``(measured - idle_power * duration) / N``. Five trials; the median is reported with the spread
(min, max). Subtracting idle makes the figure the *marginal* cost of inference, which is what a
device that would be on anyway pays for it.
"""
from __future__ import annotations

import os
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from liquidedge.energy.meter import EnergyMeter, EnergyTracker
from liquidedge.errors import ConfigError, EnergyMeterError

MIN_WINDOW_S = 10.0  # MLPerf Tiny energy mode: each measurement window lasts at least 10 s


def open_meter(sensor: str, root: str | os.PathLike = "/", **options: Any) -> EnergyMeter:
    """The meter for a profile's ``sensor`` name ("rapl", "ina3221", "rpi-pmic")."""
    if sensor == "rapl":
        from liquidedge.energy.rapl import RaplMeter
        return RaplMeter(root, **options)
    if sensor == "ina3221":
        from liquidedge.energy.jetson import JetsonIna3221Meter
        return JetsonIna3221Meter(root, **options)
    if sensor == "rpi-pmic":
        from liquidedge.energy.rpi import RpiPmicMeter
        return RpiPmicMeter(**options)
    raise EnergyMeterError(f"this device has no supported power sensor ({sensor!r}); "
                           f"use the analytic estimate or an external meter")


@dataclass
class Trial:
    """One idle period followed by one inference window."""

    idle_s: float
    idle_j: float
    window_s: float
    window_j: float
    inferences: int

    @property
    def idle_w(self) -> float:
        return self.idle_j / self.idle_s if self.idle_s > 0 else 0.0

    @property
    def uj_per_inference(self) -> float:
        return (self.window_j - self.idle_w * self.window_s) / self.inferences * 1e6

    @property
    def latency_ms(self) -> float:
        return self.window_s / self.inferences * 1e3


@dataclass
class EnergyMeasurement:
    """Median energy per inference over the trials, with its spread and the raw trials."""

    meter: str
    trials: list[Trial] = field(default_factory=list)
    method: str = "measured"
    short_window: bool = False

    @property
    def uj_per_inference(self) -> float:
        return statistics.median(t.uj_per_inference for t in self.trials)

    @property
    def min_uj(self) -> float:
        return min(t.uj_per_inference for t in self.trials)

    @property
    def max_uj(self) -> float:
        return max(t.uj_per_inference for t in self.trials)

    @property
    def latency_ms(self) -> float:
        return statistics.median(t.latency_ms for t in self.trials)

    @property
    def idle_w(self) -> float:
        return statistics.median(t.idle_w for t in self.trials)

    @property
    def below_noise(self) -> bool:
        """True when the median is not above zero: inference costs less than the idle noise."""
        return self.uj_per_inference <= 0

    def to_dict(self) -> dict[str, Any]:
        return {"meter": self.meter, "method": self.method, "uj_per_inference": self.uj_per_inference,
                "min_uj": self.min_uj, "max_uj": self.max_uj, "latency_ms": self.latency_ms,
                "idle_w": self.idle_w, "short_window": self.short_window,
                "trials": [asdict(t) | {"uj_per_inference": t.uj_per_inference} for t in self.trials]}


def measure_energy(infer: Callable[[], Any], meter: EnergyMeter, *, window_s: float = MIN_WINDOW_S,
                   idle_s: float = 5.0, trials: int = 5, warmup_s: float = 1.0,
                   interval_s: float | None = None, allow_short_window: bool = False,
                   progress: Callable[[int, int], None] | None = None) -> EnergyMeasurement:
    """Run ``infer()`` back to back and return its energy per inference (see module docstring).

    ``allow_short_window`` lets tests and quick looks use windows under 10 s; the result is then
    flagged ``short_window``. ``progress(done, total)`` is called after every trial.
    """
    if trials < 1:
        raise ConfigError(f"trials must be >= 1, got {trials}")
    if not window_s > 0 or not idle_s > 0:
        raise ConfigError(f"window_s and idle_s must be > 0, got {window_s} and {idle_s}")
    if window_s < MIN_WINDOW_S and not allow_short_window:
        raise ConfigError(f"window_s={window_s}: the energy method needs windows of at least "
                          f"{MIN_WINDOW_S:g} s (MLPerf Tiny); pass allow_short_window=True for a quick look")
    end = time.perf_counter() + warmup_s
    infer()
    while time.perf_counter() < end:
        infer()
    result = EnergyMeasurement(meter=meter.describe(), short_window=window_s < MIN_WINDOW_S)
    for i in range(trials):
        with EnergyTracker(meter, interval_s) as idle:
            time.sleep(idle_s)
        n = 0
        with EnergyTracker(meter, interval_s) as active:
            stop = time.perf_counter() + window_s
            while True:
                infer()
                n += 1
                if time.perf_counter() >= stop:
                    break
        result.trials.append(Trial(idle_s=idle.seconds, idle_j=idle.joules, window_s=active.seconds,
                                   window_j=active.joules, inferences=n))
        if progress is not None:
            progress(i + 1, trials)
    return result
