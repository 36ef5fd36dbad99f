"""Device profiles: what each supported board is, which artefact and runtime suit it, and how
its power is measured.

A profile is data, not logic: the bundle builder reads it to pick the artefact and write the
device's requirements, the runner reads it for threads and execution providers, and the energy
tools read it to pick a meter and to scale the analytic estimate. Silicon facts (process node,
nominal core voltage, cache sizes) come from the vendors' product briefs and are used only by the
analytic estimate, which is always labelled as such.

This module imports nothing beyond the standard library: it runs on the device.
"""
from __future__ import annotations

import platform
from dataclasses import asdict, dataclass, field
from typing import Any

from liquidedge.errors import ConfigError

RUNTIMES = ("litert", "onnxruntime", "numpy")
SENSORS = ("rapl", "ina3221", "rpi-pmic", "none")


@dataclass(frozen=True)
class DeviceProfile:
    """One deployment target board.

    ``runtime``/``precision`` name the preferred perception artefact (``fallback_runtimes`` are
    tried in order when it is missing). ``execution_providers`` (ONNX Runtime) and ``delegate``
    (LiteRT) are runner options; the CPU provider is always last so a board without CUDA still
    runs. ``sensor`` names the power meter in ``liquidedge.energy`` and ``sensor_howto`` says how
    a person reads it by hand. ``node_nm``/``core_volts`` scale the 45 nm energy-per-operation
    table; ``l1d_kib``/``l2_kib`` decide which memory level the weights are read from.
    """

    name: str
    description: str
    arch: str                              # "aarch64" | "x86_64"
    runtime: str                           # preferred perception runtime
    precision: str                         # preferred artefact precision
    threads: int
    sensor: str
    sensor_howto: str
    node_nm: float
    core_volts: float
    l1d_kib: int
    l2_kib: int
    execution_providers: tuple[str, ...] = ()
    delegate: str | None = None
    fallback_runtimes: tuple[str, ...] = ("numpy",)
    runtime_packages: tuple[str, ...] = ()   # pip requirement lines for the runtime
    notes: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.runtime not in RUNTIMES:
            raise ConfigError(f"profile {self.name}: unknown runtime {self.runtime!r} (expected one of {RUNTIMES})")
        if self.sensor not in SENSORS:
            raise ConfigError(f"profile {self.name}: unknown sensor {self.sensor!r} (expected one of {SENSORS})")
        if self.threads < 1:
            raise ConfigError(f"profile {self.name}: threads must be >= 1, got {self.threads}")

    def runner_options(self, runtime: str | None = None) -> dict[str, Any]:
        """Keyword options for the runner of ``runtime`` (default: the preferred one)."""
        runtime = runtime or self.runtime
        if runtime == "onnxruntime":
            return {"threads": self.threads, "providers": list(self.execution_providers or ("CPUExecutionProvider",))}
        if runtime == "litert":
            return {"threads": self.threads}
        return {}

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("execution_providers", "fallback_runtimes", "runtime_packages", "notes"):
            d[k] = list(d[k])
        return d


_JETSON_GPU_NOTE = ("For CUDA/TensorRT install NVIDIA's onnxruntime-gpu wheel for your JetPack "
                    "(Jetson Zoo) instead of the PyPI onnxruntime; the CPU provider is the fallback.")
_ORT_JETSON = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
# What the Orin modules share (same CPU cores, GPU, sensor and software stack); size and rails differ.
_JETSON_ORIN = dict(arch="aarch64", runtime="onnxruntime", precision="fp32", execution_providers=_ORT_JETSON,
                    sensor="ina3221", node_nm=8, core_volts=0.75, l1d_kib=64, l2_kib=256,
                    fallback_runtimes=("numpy",), runtime_packages=("onnxruntime>=1.17",),
                    notes=(_JETSON_GPU_NOTE,))

PROFILES: dict[str, DeviceProfile] = {p.name: p for p in (
    DeviceProfile(
        name="rpi4", description="Raspberry Pi 4 Model B (BCM2711, 4x Cortex-A72 @ 1.5-1.8 GHz)",
        arch="aarch64", runtime="litert", precision="int8", threads=4, delegate="xnnpack",
        sensor="none",
        sensor_howto="No on-board current sensor: `vcgencmd measure_volts core` gives voltage only. "
                     "Use an inline USB-C power meter, or the analytic estimate.",
        node_nm=28, core_volts=0.85, l1d_kib=32, l2_kib=1024,
        fallback_runtimes=("onnxruntime", "numpy"), runtime_packages=("ai-edge-litert>=1.0",)),
    DeviceProfile(
        name="rpi5", description="Raspberry Pi 5 (BCM2712, 4x Cortex-A76 @ 2.4 GHz)",
        arch="aarch64", runtime="litert", precision="int8", threads=4, delegate="xnnpack",
        sensor="rpi-pmic",
        sensor_howto="`vcgencmd pmic_read_adc` prints current (A) and voltage (V) of every PMIC rail; "
                     "power is the sum of V x I over rails with both readings (the 5 V input is "
                     "not sensed, so converter losses are not included).",
        node_nm=16, core_volts=0.8, l1d_kib=64, l2_kib=512,
        fallback_runtimes=("onnxruntime", "numpy"), runtime_packages=("ai-edge-litert>=1.0",)),
    DeviceProfile(
        name="jetson-orin-nano", description="NVIDIA Jetson Orin Nano (6x Cortex-A78AE, Ampere GPU)",
        threads=6,
        sensor_howto="INA3221 under /sys/bus/i2c/drivers/ina3221/*/hwmon/hwmon*: in<N>_label names "
                     "the rail (VDD_IN is the module input), in<N>_input is mV, curr<N>_input is mA. "
                     "jtop shows the same rail names.",
        **_JETSON_ORIN),
    DeviceProfile(
        name="jetson-agx-orin", description="NVIDIA Jetson AGX Orin (12x Cortex-A78AE, Ampere GPU)",
        threads=8,
        sensor_howto="Two INA3221 under /sys/bus/i2c/drivers/ina3221/*/hwmon/hwmon*: VDD_GPU_SOC, "
                     "VDD_CPU_CV, VIN_SYS_5V0, VDDQ_VDD2_1V8AO (channels labelled NC are unused); "
                     "the module total is their sum, as jtop reports it.",
        **_JETSON_ORIN),
    DeviceProfile(
        name="x86-host", description="x86-64 workstation or server (Intel/AMD)",
        arch="x86_64", runtime="onnxruntime", precision="fp32", threads=4,
        execution_providers=("CPUExecutionProvider",), sensor="rapl",
        sensor_howto="RAPL counters in /sys/class/powercap/intel-rapl:<N>/energy_uj (package "
                     "domains); root-only since the 2020 Platypus fix (CVE-2020-8694).",
        node_nm=10, core_volts=1.0, l1d_kib=32, l2_kib=1024,
        fallback_runtimes=("litert", "numpy"),
        runtime_packages=("onnxruntime>=1.17",)),
)}


def get_profile(name: str) -> DeviceProfile:
    """The profile called ``name``, or ConfigError listing the known ones."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ConfigError(f"unknown device {name!r}; expected one of {sorted(PROFILES)}") from None


def detect_profile() -> DeviceProfile:
    """Best guess for the machine we are running on (used when no --device is given)."""
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64"):
        return PROFILES["x86-host"]
    model = ""
    try:
        with open("/proc/device-tree/model", "rb") as fh:
            model = fh.read().decode(errors="replace").lower()
    except OSError:
        pass
    if "raspberry pi 5" in model:
        return PROFILES["rpi5"]
    if "raspberry pi 4" in model:
        return PROFILES["rpi4"]
    if "agx orin" in model:
        return PROFILES["jetson-agx-orin"]
    if "orin" in model:
        return PROFILES["jetson-orin-nano"]
    raise ConfigError(f"cannot tell which device this is (machine {machine!r}, model {model.strip()!r}); "
                      f"pass --device (one of {sorted(PROFILES)})")
