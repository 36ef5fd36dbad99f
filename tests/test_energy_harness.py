"""The MLPerf-Tiny-style harness recovers a known energy per inference from a live counter.

A thread plays the kernel: it keeps a RAPL fixture tree's energy_uj up to date with an idle power
plus a fixed charge per inference, wrapping at max_energy_range_uj like the real counter. The
harness, reading that tree through the real RaplMeter, must find the charge again.
"""
import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from liquidedge.energy.harness import MIN_WINDOW_S, measure_energy
from liquidedge.energy.rapl import RaplMeter
from liquidedge.errors import ConfigError

FIX = Path(__file__).parent / "fixtures" / "sysfs" / "rapl"
PKG = "sys/devices/virtual/powercap/intel-rapl/intel-rapl:0"


class SimulatedPackage:
    """Writes energy_uj = idle energy so far + charge per finished inference, mod (max + 1)."""

    def __init__(self, root: Path, idle_w: float, max_uj: int):
        self.file = root / PKG / "energy_uj"
        (root / PKG / "max_energy_range_uj").write_text(f"{max_uj}\n")
        self.idle_w, self.max_uj = idle_w, max_uj
        self.extra_uj = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.t0 = time.monotonic()
        self._write()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def charge(self, uj: int) -> None:
        with self.lock:
            self.extra_uj += uj

    def _write(self) -> None:
        with self.lock:
            value = int(self.idle_w * 1e6 * (time.monotonic() - self.t0)) + self.extra_uj
        tmp = self.file.with_name("energy_uj.new")
        tmp.write_text(f"{value % (self.max_uj + 1)}\n")
        os.replace(tmp, self.file)

    def _run(self) -> None:
        while not self.stop.is_set():
            self._write()
            time.sleep(0.0005)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


@pytest.fixture
def rapl_root(tmp_path):
    root = tmp_path / "rapl"
    shutil.copytree(FIX, root, symlinks=True)
    return root


def test_harness_recovers_the_charge_per_inference_across_wraps(rapl_root):
    charge_uj = 2000
    with SimulatedPackage(rapl_root, idle_w=0.5, max_uj=400_000) as sim:
        def infer():
            time.sleep(0.002)
            sim.charge(charge_uj)

        m = measure_energy(infer, RaplMeter(rapl_root), window_s=0.5, idle_s=0.3, trials=3,
                           warmup_s=0.05, interval_s=0.02, allow_short_window=True)
    assert len(m.trials) == 3
    assert m.short_window and m.method == "measured"
    assert m.uj_per_inference == pytest.approx(charge_uj, rel=0.1)
    assert m.min_uj <= m.uj_per_inference <= m.max_uj
    assert m.idle_w == pytest.approx(0.5, rel=0.1)
    assert 2.0 <= m.latency_ms <= 20.0
    # the window held hundreds of inferences and the counter wrapped during it
    assert all(t.inferences > 50 for t in m.trials)
    assert all(t.window_j > 400_000 / 1e6 for t in m.trials)
    d = m.to_dict()
    assert d["uj_per_inference"] == m.uj_per_inference and len(d["trials"]) == 3


def test_idle_only_work_costs_nothing(rapl_root):
    with SimulatedPackage(rapl_root, idle_w=0.5, max_uj=10**9):
        m = measure_energy(lambda: time.sleep(0.002), RaplMeter(rapl_root), window_s=0.3, idle_s=0.3,
                           trials=3, warmup_s=0.0, interval_s=0.02, allow_short_window=True)
    # no charge per inference: what is left after subtracting idle is timing noise only
    assert abs(m.uj_per_inference) < 100  # vs 0.5 W * 2 ms = 1000 uJ of idle energy per inference


def test_windows_shorter_than_ten_seconds_need_an_explicit_opt_in(rapl_root):
    meter = RaplMeter(rapl_root)
    with pytest.raises(ConfigError, match="at least 10 s"):
        measure_energy(lambda: None, meter, window_s=1.0)
    with pytest.raises(ConfigError, match="trials"):
        measure_energy(lambda: None, meter, trials=0)
    assert MIN_WINDOW_S == 10.0
