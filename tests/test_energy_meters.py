"""Energy meters read fixture trees that mirror the real sysfs layouts and vcgencmd output."""
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from liquidedge.energy.harness import open_meter
from liquidedge.energy.jetson import JetsonIna3221Meter
from liquidedge.energy.meter import EnergyTracker, Reading
from liquidedge.energy.rapl import RaplMeter, wrapped_delta_uj
from liquidedge.energy.rpi import RpiPmicMeter, parse_pmic_adc
from liquidedge.errors import EnergyMeterError

FIX = Path(__file__).parent / "fixtures"
RAPL_PKG = "sys/devices/virtual/powercap/intel-rapl/intel-rapl:0"


def copy_tree(name: str, dest: Path) -> Path:
    out = dest / name
    shutil.copytree(FIX / "sysfs" / name, out, symlinks=True)
    return out


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".new")
    tmp.write_text(text)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- RAPL

def test_rapl_finds_packages_through_the_class_symlinks(tmp_path):
    root = copy_tree("rapl", tmp_path)
    assert (root / "sys/class/powercap/intel-rapl:0").is_symlink()
    meter = RaplMeter(root)
    assert [z.name for z in meter.zones] == ["package-0"]  # psys and sub-domains are not added
    r = meter.read()
    assert r.values == {"intel-rapl:0": 84021553412.0}
    both = RaplMeter(root, domains=["package-0", "dram"])
    assert set(both.read().values) == {"intel-rapl:0", "intel-rapl:0:2"}
    with pytest.raises(EnergyMeterError, match="no domain"):
        RaplMeter(root, domains=["gpu"])


def test_rapl_wrap_around_formula():
    mx = 262143328850
    assert wrapped_delta_uj(100, 350, mx) == 250
    assert wrapped_delta_uj(mx - 100, 50, mx) == 151  # 100 to the top, 1 for the wrap to 0, 50 after
    assert wrapped_delta_uj(mx, 0, mx) == 1


def test_rapl_energy_between_readings_across_a_wrap(tmp_path):
    root = copy_tree("rapl", tmp_path)
    pkg = root / RAPL_PKG
    mx = int((pkg / "max_energy_range_uj").read_text())
    write_atomic(pkg / "energy_uj", str(mx - 2_000_000))
    meter = RaplMeter(root)
    a = meter.read()
    write_atomic(pkg / "energy_uj", str(3_000_000))
    b = meter.read()
    per = meter.energy_between(a, b)
    assert per == {"intel-rapl:0": pytest.approx(5.000001)}
    assert meter.total(per) == pytest.approx(5.000001)


def test_rapl_tracker_follows_several_wraps(tmp_path):
    """A counter that wraps every ~0.25 s is integrated right because the tracker polls faster."""
    root = copy_tree("rapl", tmp_path)
    pkg = root / RAPL_PKG
    mx = 249_999
    write_atomic(pkg / "max_energy_range_uj", str(mx))
    write_atomic(pkg / "energy_uj", "0")
    power_w = 1.0
    stop = threading.Event()
    t0 = time.monotonic()

    def kernel():
        while not stop.is_set():
            write_atomic(pkg / "energy_uj", str(int(power_w * 1e6 * (time.monotonic() - t0)) % (mx + 1)))
            time.sleep(0.001)

    th = threading.Thread(target=kernel, daemon=True)
    th.start()
    try:
        meter = RaplMeter(root)
        with EnergyTracker(meter, interval_s=0.01) as tr:
            time.sleep(0.8)
    finally:
        stop.set()
        th.join()
    assert tr.joules == pytest.approx(power_w * tr.seconds, rel=0.05)
    assert tr.joules > 3 * (mx + 1) / 1e6  # it really wrapped several times


def test_rapl_garbage_and_out_of_range_values_are_refused(tmp_path):
    root = copy_tree("rapl", tmp_path)
    pkg = root / RAPL_PKG
    meter = RaplMeter(root)
    write_atomic(pkg / "energy_uj", "not-a-number")
    with pytest.raises(EnergyMeterError, match="integer"):
        meter.read()
    write_atomic(pkg / "energy_uj", str(10**15))
    with pytest.raises(EnergyMeterError, match="outside"):
        meter.read()


def test_rapl_missing_interface_is_explained(tmp_path):
    with pytest.raises(EnergyMeterError, match="no powercap interface"):
        RaplMeter(tmp_path)


def test_rapl_permission_error_explains_platypus():
    """energy_uj is mode 0400 root since CVE-2020-8694: a normal user gets a clear explanation."""
    tmp = Path(tempfile.mkdtemp(prefix="rapl-perm-", dir="/tmp"))
    try:
        root = copy_tree("rapl", tmp)
        for dirpath, dirnames, filenames in os.walk(tmp):
            os.chmod(dirpath, 0o755)
            for f in filenames:
                os.chmod(os.path.join(dirpath, f), 0o644)
        # as the kernel has it: 0400 root. A non-root runner owns its copy, so it gets mode 000.
        os.chmod(root / RAPL_PKG / "energy_uj", 0o400 if os.geteuid() == 0 else 0o000)
        code = ("import os, sys\n"
                "from liquidedge.energy.rapl import RaplMeter\n"
                "from liquidedge.errors import EnergyMeterError\n"
                "if os.geteuid() == 0:\n"
                "    os.setgid(65534); os.setuid(65534)\n"
                f"m = RaplMeter({str(root)!r})\n"
                "try:\n"
                "    m.read()\n"
                "except EnergyMeterError as e:\n"
                "    print('ERR', e); sys.exit(0)\n"
                "sys.exit(3)\n")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "permission denied" in out.stdout and "CVE-2020-8694" in out.stdout
    finally:
        shutil.rmtree(tmp)


# ----------------------------------------------------------------------------- Jetson INA3221

def test_orin_nano_total_is_vdd_in(tmp_path):
    root = copy_tree("jetson-orin-nano", tmp_path)
    meter = JetsonIna3221Meter(root)
    assert sorted(meter.rails) == ["VDD_CPU_GPU_CV", "VDD_IN", "VDD_SOC"]  # "sum of shunt" skipped
    assert meter.total_rails == ["VDD_IN"]
    r = meter.read()
    assert r.values["VDD_IN"] == pytest.approx(5.016 * 1.032)
    assert r.values["VDD_SOC"] == pytest.approx(5.016 * 0.296)


def test_agx_orin_sums_rails_of_both_monitors_and_skips_nc(tmp_path):
    root = copy_tree("jetson-agx-orin", tmp_path)
    meter = JetsonIna3221Meter(root)
    assert sorted(meter.rails) == ["VDDQ_VDD2_1V8AO", "VDD_CPU_CV", "VDD_GPU_SOC", "VIN_SYS_5V0"]
    r = meter.read()
    per = {k: v * 2.0 for k, v in r.values.items()}  # as if each rail drew that power for 2 s
    expected = 2.0 * (4.992 * 1.512 + 4.992 * 0.392 + 5.000 * 0.664 + 4.992 * 0.240)
    assert meter.total(per) == pytest.approx(expected)


def test_jetpack4_iio_layout(tmp_path):
    root = copy_tree("jetson-xavier-nx-jp4", tmp_path)
    meter = JetsonIna3221Meter(root)
    assert meter.total_rails == ["VDD_IN"]
    assert meter.read().values["VDD_IN"] == pytest.approx(5064 * 944 // 1000 / 1e3)


def test_ina3221_tracker_integrates_a_power_step(tmp_path):
    root = copy_tree("jetson-orin-nano", tmp_path)
    hw = root / "sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon3"
    write_atomic(hw / "in1_input", "5000")
    write_atomic(hw / "curr1_input", "1000")  # 5 W
    meter = JetsonIna3221Meter(root)
    with EnergyTracker(meter, interval_s=0.005) as tr:
        time.sleep(0.3)
        write_atomic(hw / "curr1_input", "3000")  # 15 W
        time.sleep(0.3)
    assert tr.joules == pytest.approx(5 * 0.3 + 15 * 0.3, rel=0.06)
    assert tr.samples > 20


def test_ina3221_absent_or_broken(tmp_path):
    with pytest.raises(EnergyMeterError, match="no INA3221"):
        JetsonIna3221Meter(tmp_path)
    root = copy_tree("jetson-orin-nano", tmp_path)
    hw = root / "sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon3"
    meter = JetsonIna3221Meter(root)
    write_atomic(hw / "curr1_input", "garbage")
    with pytest.raises(EnergyMeterError, match="expected a number"):
        meter.read()
    write_atomic(hw / "curr1_input", "-5")
    with pytest.raises(EnergyMeterError, match="finite value >= 0"):
        meter.read()


# ----------------------------------------------------------------------------- Raspberry Pi 5 PMIC

def fake_vcgencmd(tmp_path: Path, fixture: str, exit_code: int = 0) -> list[str]:
    """A `vcgencmd` stand-in that prints a captured output file, as the real tool does."""
    script = tmp_path / "vcgencmd"
    script.write_text(f"#!/bin/sh\ncat {FIX / 'vcgencmd' / fixture}\nexit {exit_code}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return [str(script), "pmic_read_adc"]


def test_pmic_output_parses_into_rail_powers():
    rails = parse_pmic_adc((FIX / "vcgencmd/pmic_read_adc_rpi5.txt").read_text())
    assert len(rails) == 12  # EXT5V and BATT have a voltage only
    assert "EXT5V" not in rails and "BATT" not in rails
    assert rails["VDD_CORE"] == pytest.approx(0.81624 * 0.739602)
    assert rails["HDMI"] == pytest.approx(0.023199 * 5.1282)
    assert 1.0 < sum(rails.values()) < 3.0  # an idle Pi 5's rails add up to a couple of watts


def test_pmic_meter_runs_the_command(tmp_path):
    meter = RpiPmicMeter(fake_vcgencmd(tmp_path, "pmic_read_adc_rpi5.txt"))
    r = meter.read()
    assert r.values["DDR_VDD2"] == pytest.approx(0.0312576 * 1.108428)
    a = Reading(0.0, r.values)
    b = Reading(2.0, r.values)
    assert meter.total(meter.energy_between(a, b)) == pytest.approx(2.0 * sum(r.values.values()))


def test_pmic_on_a_board_without_it_is_explained(tmp_path):
    with pytest.raises(EnergyMeterError, match="no rail with both"):
        parse_pmic_adc((FIX / "vcgencmd/pmic_read_adc_rpi4.txt").read_text())
    with pytest.raises(EnergyMeterError, match="failed"):
        RpiPmicMeter(fake_vcgencmd(tmp_path, "pmic_read_adc_rpi4.txt"))
    with pytest.raises(EnergyMeterError, match="not found"):
        RpiPmicMeter([str(tmp_path / "no-such-vcgencmd"), "pmic_read_adc"])


def test_open_meter_by_sensor_name(tmp_path):
    assert isinstance(open_meter("rapl", copy_tree("rapl", tmp_path)), RaplMeter)
    assert isinstance(open_meter("ina3221", copy_tree("jetson-orin-nano", tmp_path)), JetsonIna3221Meter)
    with pytest.raises(EnergyMeterError, match="no supported power sensor"):
        open_meter("none")
