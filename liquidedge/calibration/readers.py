"""One calibration set, two runtimes' ways of reading it.

ONNX Runtime pulls batches from a ``CalibrationDataReader``; ai-edge-quantizer takes a dict of
signature name -> list of input dicts. Both are built from the same ``CalibrationSet`` so an ORT
and a LiteRT artefact calibrated with the same seed saw exactly the same windows.
"""
from __future__ import annotations

from typing import Any

from liquidedge.calibration.windows import CalibrationSet
from liquidedge.errors import ConfigError


def ort_reader(calib: CalibrationSet, batch_size: int = 64):
    """A fresh ``onnxruntime.quantization.CalibrationDataReader`` over ``calib`` (rewindable)."""
    from onnxruntime.quantization import CalibrationDataReader

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._feeds = None
            self.rewind()

        def get_next(self) -> dict[str, Any] | None:
            return next(self._feeds, None)

        def rewind(self) -> None:
            self._feeds = iter(list(calib.batches(batch_size)))

        def __len__(self) -> int:
            return -(-len(calib) // batch_size)

    if len(calib) == 0:
        raise ConfigError("calibration set is empty")
    return _Reader()


def litert_calibration_data(calib: CalibrationSet, signatures: dict[str, int],
                            max_batches: int = 64) -> dict[str, list[dict[str, Any]]]:
    """Representative data per signature: the calibration windows cut (or cycled) to its batch.

    A signature of batch b gets ``ceil(N / b)`` feeds of b windows (at most ``max_batches``); when
    b > N the set is cycled, which leaves every tensor's observed range unchanged.
    """
    if len(calib) == 0:
        raise ConfigError("calibration set is empty")
    out: dict[str, list[dict[str, Any]]] = {}
    for name, batch in signatures.items():
        feeds = [f for f in calib.batches(batch) if f["x"].shape[0] == batch][:max_batches]
        if not feeds:
            feeds = [calib.tiled(batch)]
        out[name] = feeds
    return out
