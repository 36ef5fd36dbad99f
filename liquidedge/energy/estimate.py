"""Analytic energy per inference where no meter exists: op counts x published energy per op.

Every constant below is cited. The estimate covers arithmetic and memory accesses only (no
leakage, clocking, runtime or OS overhead), so it is a *lower bound* of what a power meter sees
and is always labelled "estimated". It is reported as a point with a range:

* low  = the 45 nm energies scaled to the device's node and voltage by classical constant-field
  scaling, with the low end of each memory range;
* high = the unscaled 45 nm energies (modern nodes scale worse than classically, Stillmaker &
  Baas 2017), with the high end of each memory range;
* point = the geometric mean of the two.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from liquidedge.deploy.profiles import DeviceProfile, get_profile
from liquidedge.energy.opcount import OpCounts

HOROWITZ = ("M. Horowitz, 'Computing's energy problem (and what we can do about it)', "
            "ISSCC 2014, pp. 10-14 (45 nm, 0.9 V)")
DENNARD = ("R. H. Dennard et al., 'Design of ion-implanted MOSFET's with very small physical "
           "dimensions', IEEE JSSC 9(5), 1974 (switching energy C V^2, C proportional to feature size)")
STILLMAKER = ("A. Stillmaker and B. Baas, 'Scaling equations for the accurate prediction of CMOS "
              "device performance from 180 nm to 7 nm', Integration 58, 2017 (classical scaling is "
              "optimistic below 45 nm)")

REFERENCE_NODE_NM = 45.0
REFERENCE_VOLTS = 0.9

# Horowitz ISSCC 2014, energy per operation at 45 nm (pJ).
ADD_PJ = {"int8": 0.03, "int16": 0.05, "int32": 0.1, "fp16": 0.4, "fp32": 0.9}
MUL_PJ = {"int8": 0.2, "int32": 3.1, "fp16": 1.1, "fp32": 3.7}
# Horowitz ISSCC 2014, one 64-bit access (pJ): SRAM arrays of 8 KB, 32 KB, 1 MB; DRAM 1.3-2.6 nJ.
SRAM_8K_PJ = 10.0
SRAM_32K_PJ = 20.0
SRAM_1M_PJ = 100.0
DRAM_PJ = (1300.0, 2600.0)

# Assumptions (not from the table; stated so they can be challenged):
# fp64 is not in the table: multiply scaled by the mantissa width squared ((53/24)^2), add by 2x.
ADD_PJ["fp64"] = 2 * ADD_PJ["fp32"]
MUL_PJ["fp64"] = (53 / 24) ** 2 * MUL_PJ["fp32"]
ASSUMPTIONS = (
    "a division costs a Newton-Raphson reciprocal: 5 multiplies + 2 adds",
    "a float sigmoid costs exp by range reduction and a degree-5 polynomial plus 1 add and 1 "
    "division: 12 multiplies + 9 adds in total",
    "an int8 elementwise op is requantised with one 32-bit multiply and two 32-bit adds "
    "(integer kernels' fixed-point rescale); an int8 sigmoid is one table lookup (an 8 KB SRAM access)",
    "an int8 multiply-accumulate is an 8-bit multiply plus a 32-bit accumulate",
    "fp64 (not in the table): multiply = (53/24)^2 x fp32, add = 2 x fp32",
    "weights are read once per use from the smallest cache level that holds them all; "
    "activations from an 8 KB-class array; DRAM energy is not node-scaled",
    "leakage, clock tree, instruction overhead, runtime and OS costs are not included "
    "(the estimate is a lower bound)",
)


def node_scale(profile: DeviceProfile) -> float:
    """Classical (Dennard) scaling of switching energy from 45 nm/0.9 V to the device."""
    return (profile.node_nm / REFERENCE_NODE_NM) * (profile.core_volts / REFERENCE_VOLTS) ** 2


def _word_pj(nbytes: int, pj_per_64bit: float) -> float:
    return math.ceil(nbytes / 8) * pj_per_64bit


def _weight_level(weight_bytes: int, profile: DeviceProfile) -> tuple[str, float, float]:
    """(level name, low pJ, high pJ) per 64-bit access for a weight working set of this size."""
    if weight_bytes <= 8 * 1024:
        return "SRAM 8 KB class (L1)", SRAM_8K_PJ, SRAM_8K_PJ
    if weight_bytes <= min(32, profile.l1d_kib) * 1024:
        return "SRAM 32 KB class (L1)", SRAM_32K_PJ, SRAM_32K_PJ
    if weight_bytes <= profile.l1d_kib * 1024:
        return "SRAM 32 KB-1 MB (L1)", SRAM_32K_PJ, SRAM_1M_PJ
    if weight_bytes <= profile.l2_kib * 1024:
        return "SRAM 1 MB class (L2)", SRAM_1M_PJ, SRAM_1M_PJ
    return "DRAM", DRAM_PJ[0], DRAM_PJ[1]


def _mac_pj(dtype: str) -> float:
    return MUL_PJ["int8"] + ADD_PJ["int32"] if dtype == "int8" else MUL_PJ[dtype] + ADD_PJ[dtype]


def _compute_pj(c: OpCounts) -> tuple[float, float]:
    """(matmul pJ, elementwise pJ) at 45 nm."""
    in_dtype = c.input_dtype or c.matmul_dtype
    matmul = c.input_macs * _mac_pj(in_dtype) + (c.macs - c.input_macs) * _mac_pj(c.matmul_dtype)
    if c.elementwise_dtype == "int8":
        requant = MUL_PJ["int32"] + 2 * ADD_PJ["int32"]
        ew = (c.adds * (ADD_PJ["int8"] + requant) + c.muls * (MUL_PJ["int8"] + requant)
              + c.divs * (5 * MUL_PJ["int32"] + 2 * ADD_PJ["int32"] + requant)
              + c.sigmoids * SRAM_8K_PJ)
    else:
        a, m = ADD_PJ[c.elementwise_dtype], MUL_PJ[c.elementwise_dtype]
        ew = c.adds * a + c.muls * m + c.divs * (5 * m + 2 * a) + c.sigmoids * (12 * m + 9 * a)
    return matmul, ew


@dataclass
class EnergyEstimate:
    """Analytic energy of one inference on one device, with where it goes."""

    device: str
    uj: float
    low_uj: float
    high_uj: float
    scale: float
    memory_level: str
    breakdown_pj: dict[str, float]       # at the point estimate
    counts: OpCounts
    method: str = "estimated"
    sources: tuple[str, ...] = (HOROWITZ, DENNARD, STILLMAKER)
    assumptions: tuple[str, ...] = ASSUMPTIONS
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["counts"] = self.counts.to_dict()
        return d


def estimate_energy(counts: OpCounts, device: str | DeviceProfile = "x86-host") -> EnergyEstimate:
    """Energy of one inference with ``counts`` on ``device`` (see module docstring for the method)."""
    profile = device if isinstance(device, DeviceProfile) else get_profile(device)
    s = node_scale(profile)
    matmul, ew = _compute_pj(counts)
    level, w_lo, w_hi = _weight_level(counts.weight_bytes, profile)
    w_scale_low = 1.0 if level == "DRAM" else s
    weights_lo = _word_pj(counts.weight_bytes_read, w_lo)
    weights_hi = _word_pj(counts.weight_bytes_read, w_hi)
    acts = _word_pj(counts.activation_bytes, SRAM_8K_PJ)
    inputs = _word_pj(counts.input_bytes, SRAM_32K_PJ)
    low = s * (matmul + ew + acts + inputs) + w_scale_low * weights_lo
    high = matmul + ew + acts + inputs + weights_hi
    point = math.sqrt(low * high)
    f = point / high  # distribute the point estimate over the parts in proportion to the high end
    breakdown = {"matmul": matmul * f, "elementwise": ew * f, "weights": weights_hi * f,
                 "activations": acts * f, "input": inputs * f}
    return EnergyEstimate(device=profile.name, uj=point * 1e-6, low_uj=low * 1e-6, high_uj=high * 1e-6,
                          scale=s, memory_level=level, breakdown_pj=breakdown, counts=counts)
