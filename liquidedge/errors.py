"""The project's own exception types.

Every bad input is reported with one of these, never a bare ``assert`` (which vanishes under
``python -O``) and never a crash deep inside a runtime. Messages name the place (file, row,
field) and what was expected, so a user can fix the input without reading our code.
"""
from __future__ import annotations


class LiquidEdgeError(Exception):
    """Base class: catch this to catch everything liquidedge raises on purpose."""


class DataValidationError(LiquidEdgeError, ValueError):
    """Input events or bars are malformed (non-finite, unsorted, negative size, empty, ...)."""

    def __init__(self, message: str, *, file: str | None = None, row: int | None = None,
                 field: str | None = None, expected: str | None = None):
        self.file, self.row, self.field, self.expected = file, row, field, expected
        where = []
        if file is not None:
            where.append(f"file {file}")
        if row is not None:
            where.append(f"row {row}")
        if field is not None:
            where.append(f"field '{field}'")
        text = message
        if where:
            text = f"{', '.join(where)}: {message}"
        if expected:
            text += f" (expected {expected})"
        super().__init__(text)


class InputShapeError(LiquidEdgeError, ValueError):
    """An array handed to a model, runner or graph has the wrong shape, dtype or values."""


class ModelFileError(LiquidEdgeError):
    """A model directory or artefact is missing, truncated, corrupt or tampered with."""


class ConfigError(LiquidEdgeError, ValueError):
    """A setting (solver name, window spec, device profile, ...) is unknown or out of range."""


class TargetUnavailableError(LiquidEdgeError, RuntimeError):
    """A runtime a target needs (onnxruntime, LiteRT, lava) is not installed or not usable."""


class BridgeError(LiquidEdgeError):
    """A bridge message is malformed, unauthorised, out of order, or the peer is unreachable."""


class EnergyMeterError(LiquidEdgeError):
    """A power/energy sensor is absent, unreadable (permissions) or returned nonsense."""


class DeployError(LiquidEdgeError):
    """A bundle is malformed or tampered with, or pushing it to a device failed."""
