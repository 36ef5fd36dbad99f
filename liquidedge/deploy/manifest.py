"""The bundle's ``manifest.json``: what is in the bundle, what it needs, and every file's sha256.

A bundle is a directory (shipped as a tar.gz) holding the perception artefact, the model it came
from, a self-test window, the edge subset of liquidedge, ``requirements.txt`` and ``run.py``.
``manifest.json`` lists every other file with its sha256; nothing unlisted may appear (a stray
``.py`` next to the package would be imported). The manifest cannot vouch for itself: compare
its sha256 (printed by ``deploy build`` and ``deploy push``) with ``--manifest-sha256`` when the
channel to the device is not trusted.

Edge-side module: standard library only.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from liquidedge.errors import DeployError
from liquidedge.targets.base import sha256_file

FORMAT = "liquidedge-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
REQUIREMENTS = "requirements.txt"
ENTRY_POINT = "run.py"
SELFTEST = "selftest.safetensors"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_path(path: str | os.PathLike) -> str:
    return sha256_file(path)


def list_files(root: Path) -> list[str]:
    """Every regular file under ``root`` as a POSIX relative path, sorted; links are refused."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            if p.is_symlink():
                raise DeployError(f"{p}: bundles hold regular files only, found a symbolic link")
        for name in filenames:
            p = Path(dirpath) / name
            out.append(p.relative_to(root).as_posix())
    return sorted(out)


def parse_manifest(text: str | bytes, where: str) -> dict[str, Any]:
    """Parse and shape-check a manifest; DeployError on anything malformed."""
    try:
        m = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DeployError(f"{where}: manifest is not valid JSON ({exc})") from None
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise DeployError(f"{where}: not a liquidedge bundle manifest (format {m.get('format') if isinstance(m, dict) else None!r})")
    if m.get("format_version") != FORMAT_VERSION:
        raise DeployError(f"{where}: bundle format_version {m.get('format_version')!r} is not supported "
                          f"(expected {FORMAT_VERSION}); rebuild the bundle with this liquidedge")
    for key in ("files", "device", "perception", "window", "requirements", "selftest", "model"):
        if key not in m:
            raise DeployError(f"{where}: manifest has no {key!r} section")
    files = m["files"]
    if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str) and len(v) == 64
                                              for k, v in files.items()):
        raise DeployError(f"{where}: 'files' must map relative paths to sha256 hex digests")
    for rel in files:
        check_relative(rel, where)
    return m


def check_relative(rel: str, where: str) -> None:
    """Refuse absolute paths and '..' components (a path must stay inside the bundle)."""
    p = Path(rel)
    if p.is_absolute() or ".." in p.parts or rel.startswith(("/", "\\")) or rel == "":
        raise DeployError(f"{where}: path {rel!r} escapes the bundle")


def read_manifest(bundle_dir: str | os.PathLike) -> dict[str, Any]:
    path = Path(bundle_dir) / MANIFEST
    if not path.is_file():
        raise DeployError(f"{bundle_dir}: no {MANIFEST} (not a bundle directory)")
    return parse_manifest(path.read_bytes(), str(path))


def dump_manifest(manifest: dict[str, Any]) -> bytes:
    return (json.dumps(manifest, indent=2, sort_keys=True, allow_nan=False) + "\n").encode()
