"""The quantisation choices both perception exporters accept, checked in one place.

``int8`` picks the scheme (``None`` = fp32, ``"static"`` = calibrated int8 weights *and*
activations, ``"dynamic"`` = int8 weights with activations quantised at run time, ``"weight"`` =
int8 weights computed in float). ``scope`` says which operators a static scheme quantises,
because on this small recurrent graph that choice decides whether int8 is accurate and fast:

* ``recurrent`` (default) - the per-step products ``state @ w_rec`` (and the readout). Their input
  is the LTC state, which the maths keeps inside a known box (the scaled state lies in [-1, 1]),
  so its int8 range cannot be outgrown by windows the calibration never saw;
* ``matmul`` - also the hoisted input projection, whose input (the features) has calibrated ranges
  that later data can leave (measured: the E-mini held-out day's volumes exceed the training day's);
* ``all``    - everything the quantiser supports (full integer as far as the runtime goes,
  including x, dt and mask inputs for LiteRT: measured to be far less accurate).

The solver's division and the state update stay in float in every scope: they are listed in the
export report, not hidden.
"""
from __future__ import annotations

from liquidedge.errors import ConfigError

INT8_MODES = ("static", "dynamic", "weight")
SCOPES = ("recurrent", "matmul", "all")
DEFAULT_SCOPE = "recurrent"
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")


def check_int8(int8: str | None, scope: str, method: str) -> None:
    if int8 is not None and int8 not in INT8_MODES:
        raise ConfigError(f"int8: expected one of {INT8_MODES} or None, got {int8!r}")
    if scope not in SCOPES:
        raise ConfigError(f"int8 scope: expected one of {SCOPES}, got {scope!r}")
    if method not in CALIBRATION_METHODS:
        raise ConfigError(f"calibration method: expected one of {CALIBRATION_METHODS}, got {method!r}")


def precision_name(int8: str | None) -> str:
    """The manifest's precision string: fp32, int8-static, int8-dynamic or int8-weight."""
    return "fp32" if int8 is None else f"int8-{int8}"
