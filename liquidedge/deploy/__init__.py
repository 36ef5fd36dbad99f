"""liquidedge.deploy: device profiles, bundles (build, verify, run) and ssh push.

Names are loaded on first use, so importing this package on a device pulls in nothing beyond
what the bundle's entry point needs.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "DeviceProfile": "profiles", "PROFILES": "profiles", "get_profile": "profiles",
    "detect_profile": "profiles",
    "build_bundle": "bundle", "BuildResult": "bundle",
    "verify_bundle": "verify", "VerifyReport": "verify", "extract_bundle": "verify",
    "run_bundle": "device",
    "push_bundle": "push", "SshTarget": "push", "parse_ssh_target": "push",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'liquidedge.deploy' has no attribute {name!r}")
    return getattr(importlib.import_module(f"liquidedge.deploy.{_EXPORTS[name]}"), name)
