"""Device profiles: every board the issue names, with runtime, threads and a readable sensor."""
import platform

import pytest

from liquidedge.deploy.profiles import PROFILES, DeviceProfile, detect_profile, get_profile
from liquidedge.errors import ConfigError


def test_the_five_boards_and_what_they_prefer():
    assert {"rpi4", "rpi5", "jetson-orin-nano", "jetson-agx-orin", "x86-host"} <= set(PROFILES)
    for name in ("rpi4", "rpi5"):
        p = get_profile(name)
        assert (p.arch, p.runtime, p.precision, p.delegate) == ("aarch64", "litert", "int8", "xnnpack")
        assert p.runner_options() == {"threads": 4}
    for name in ("jetson-orin-nano", "jetson-agx-orin"):
        p = get_profile(name)
        assert p.runtime == "onnxruntime" and p.sensor == "ina3221"
        assert p.execution_providers[-1] == "CPUExecutionProvider"  # CPU fallback always last
        assert p.runner_options()["providers"][0] == "TensorrtExecutionProvider"
    assert get_profile("rpi5").sensor == "rpi-pmic" and get_profile("x86-host").sensor == "rapl"
    assert get_profile("rpi4").sensor == "none"
    for p in PROFILES.values():
        assert p.threads >= 1 and p.sensor_howto and p.node_nm > 0 and 0 < p.core_volts < 2
        d = p.to_dict()
        assert d["name"] == p.name and isinstance(d["execution_providers"], list)


def test_unknown_names_and_bad_profiles_are_refused():
    with pytest.raises(ConfigError, match="unknown device 'pi-zero'"):
        get_profile("pi-zero")
    base = dict(name="x", description="", arch="aarch64", precision="fp32", threads=1, sensor="none",
                sensor_howto="", node_nm=7, core_volts=0.8, l1d_kib=64, l2_kib=512)
    with pytest.raises(ConfigError, match="unknown runtime"):
        DeviceProfile(runtime="tensorflow", **base)
    with pytest.raises(ConfigError, match="threads"):
        DeviceProfile(runtime="litert", **{**base, "threads": 0})


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="detection is checked on x86 hosts")
def test_this_machine_is_detected_as_an_x86_host():
    assert detect_profile().name == "x86-host"
