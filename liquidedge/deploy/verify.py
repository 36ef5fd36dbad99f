"""Check a bundle before it runs: every file's sha256, nothing extra, the installed packages,
and a self-test window whose expected embedding (computed by the numpy reference on the
workstation) the device's runtime must reproduce within the precision's tolerance.

Runs on the device (``python run.py verify``) and on the workstation (``liquidedge deploy
verify``); standard library + numpy + the bundle's runtime only.
"""
from __future__ import annotations

import os
import re
import sys
import tarfile
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from liquidedge.deploy.manifest import (MANIFEST, SELFTEST, check_relative, list_files, parse_manifest,
                                        sha256_bytes, sha256_path)
from liquidedge.errors import DeployError


@dataclass
class PackageCheck:
    name: str
    required: str
    installed: str | None

    @property
    def ok(self) -> bool:
        return self.installed is not None and satisfies(self.installed, self.required)


@dataclass
class VerifyReport:
    bundle: str
    manifest_sha256: str
    files_checked: int
    packages: list[PackageCheck] = field(default_factory=list)
    selftest_error: float | None = None
    selftest_tolerance: float | None = None
    runner: dict[str, Any] = field(default_factory=dict)

    @property
    def selftest_passed(self) -> bool | None:
        if self.selftest_error is None:
            return None
        return self.selftest_error <= self.selftest_tolerance

    def lines(self) -> list[str]:
        out = [f"bundle       {self.bundle}",
               f"manifest     sha256 {self.manifest_sha256}",
               f"files        {self.files_checked} checked, all hashes match, nothing extra"]
        for p in self.packages:
            out.append(f"package      {p.name} {p.installed or 'MISSING'} (needs {p.required or 'any'})"
                       f"{'' if p.ok else '  <-- not satisfied'}")
        if self.selftest_error is not None:
            out.append(f"self-test    max |embedding error| {self.selftest_error:.3g} <= tolerance "
                       f"{self.selftest_tolerance:.3g} ({self.runner.get('target', '?')}, "
                       f"{self.runner.get('precision', '?')})")
        return out


# ----------------------------------------------------------------------------- versions

def _version_tuple(v: str) -> tuple[int, ...]:
    parts = []
    for piece in v.split("."):
        m = re.match(r"\d+", piece)
        if not m:
            break
        parts.append(int(m.group()))
    return tuple(parts)


def satisfies(version: str, spec: str) -> bool:
    """Does ``version`` meet ``spec`` (comma-separated >=, >, <=, <, ==, != clauses)?"""
    v = _version_tuple(version)
    for clause in filter(None, (c.strip() for c in spec.split(","))):
        m = re.match(r"^(>=|<=|==|!=|>|<)\s*([\w.]+)$", clause)
        if not m:
            raise DeployError(f"cannot read version requirement {clause!r}")
        op, target = m.group(1), _version_tuple(m.group(2))
        n = max(len(v), len(target))
        a, b = v + (0,) * (n - len(v)), target + (0,) * (n - len(target))
        ok = {">=": a >= b, "<=": a <= b, "==": a == b, "!=": a != b, ">": a > b, "<": a < b}[op]
        if not ok:
            return False
    return True


def check_packages(manifest: dict[str, Any]) -> list[PackageCheck]:
    from importlib import metadata

    checks = []
    for name, spec in sorted(manifest["requirements"].get("packages", {}).items()):
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = None
        checks.append(PackageCheck(name, spec, installed))
    return checks


def check_python(manifest: dict[str, Any]) -> None:
    spec = manifest["requirements"].get("python", "")
    here = ".".join(map(str, sys.version_info[:3]))
    if spec and not satisfies(here, spec):
        raise DeployError(f"this bundle needs Python {spec}, this is Python {here}")


# ----------------------------------------------------------------------------- files

def verify_files(bundle_dir: str | os.PathLike, expect_manifest_sha256: str | None = None) -> tuple[dict, str, int]:
    """Check every listed file's sha256 and that no unlisted file exists. Returns
    (manifest, manifest sha256, files checked); DeployError names the first problem."""
    root = Path(bundle_dir)
    raw = (root / MANIFEST).read_bytes() if (root / MANIFEST).is_file() else None
    if raw is None:
        raise DeployError(f"{root}: no {MANIFEST} (not a bundle directory)")
    digest = sha256_bytes(raw)
    if expect_manifest_sha256 is not None and digest != expect_manifest_sha256.lower():
        raise DeployError(f"{root / MANIFEST}: sha256 {digest} is not the expected "
                          f"{expect_manifest_sha256}; the manifest itself was changed")
    manifest = parse_manifest(raw, str(root / MANIFEST))
    listed = manifest["files"]
    present = [f for f in list_files(root) if f != MANIFEST]
    extra = sorted(set(present) - set(listed))
    if extra:
        hint = (" Remove the __pycache__ directories: run.py never writes bytecode, another tool did."
                if any("__pycache__" in e for e in extra) else "")
        raise DeployError(f"{root}: files not in the manifest: {extra[:5]}{' ...' if len(extra) > 5 else ''} "
                          f"(a bundle must hold exactly what it was built with; a stray file could be "
                          f"imported or read).{hint}")
    for rel, expected in sorted(listed.items()):
        path = root / rel
        if not path.is_file():
            raise DeployError(f"{path}: missing (listed in the manifest)")
        actual = sha256_path(path)
        if actual != expected:
            raise DeployError(f"{path}: sha256 mismatch (manifest {expected[:16]}..., file {actual[:16]}...); "
                              f"the file was modified or corrupted. Rebuild or re-push the bundle.")
    return manifest, digest, len(listed)


def run_selftest(bundle_dir: Path, manifest: dict[str, Any], runner=None) -> tuple[float, float, dict]:
    """Encode the stored window with the bundle's runner; return (max abs error, tolerance, describe)."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    from liquidedge.deploy.runtime import bundle_runner

    st = manifest["selftest"]
    try:
        t = load_file(str(bundle_dir / st.get("file", SELFTEST)))
    except (SafetensorError, OSError) as exc:
        raise DeployError(f"{bundle_dir}: self-test file unreadable ({exc})") from None
    runner = runner or bundle_runner(bundle_dir, manifest)
    emb = np.asarray(runner.encode(t["x"], t["dt"], t["mask"]), np.float64)
    expected = t["expected"].astype(np.float64)
    if emb.shape != expected.shape:
        raise DeployError(f"self-test: runner returned shape {emb.shape}, expected {expected.shape}")
    if not np.all(np.isfinite(emb)):
        raise DeployError("self-test: the runner returned NaN or inf")
    err = float(np.max(np.abs(emb - expected)))
    tol = float(st["tolerance"])
    describe = dict(runner.describe()) if hasattr(runner, "describe") else {}
    describe.setdefault("target", runner.manifest.target)
    describe.setdefault("precision", runner.manifest.precision)
    if err > tol:
        raise DeployError(f"self-test failed: max |embedding - expected| = {err:.4g} exceeds the "
                          f"{manifest['perception']['precision']} tolerance {tol:.4g} "
                          f"({describe.get('target')}); this runtime does not reproduce the model")
    return err, tol, describe


# ----------------------------------------------------------------------------- archives

def extract_bundle(archive: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Safely unpack a bundle tar.gz into ``dest`` and return the bundle directory.

    Only regular files and directories under one top-level directory are accepted; absolute
    paths, '..', links and devices are refused before anything is written.
    """
    archive = Path(archive)
    try:
        tf = tarfile.open(archive, "r:gz")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DeployError(f"{archive}: not a readable tar.gz ({exc})") from None
    with tf:
        try:
            members = tf.getmembers()
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise DeployError(f"{archive}: truncated or corrupt archive ({exc})") from None
        tops = set()
        for m in members:
            check_relative(m.name, str(archive))
            if not (m.isfile() or m.isdir()):
                raise DeployError(f"{archive}: member {m.name!r} is not a regular file or directory")
            tops.add(m.name.split("/")[0])
        if len(tops) != 1:
            raise DeployError(f"{archive}: expected one top-level directory, found {sorted(tops)}")
        top = tops.pop()
        out = Path(dest)
        for m in members:
            target = out / m.name
            if m.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            src = tf.extractfile(m)
            try:
                data = src.read()
            except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
                raise DeployError(f"{archive}: member {m.name!r} unreadable ({exc})") from None
            target.write_bytes(data)
    return out / top


def verify_bundle(path: str | os.PathLike, *, selftest: bool = True, packages: bool = True,
                  expect_manifest_sha256: str | None = None) -> VerifyReport:
    """Verify a bundle directory or tar.gz (see module docstring); DeployError on any failure."""
    path = Path(path)
    if path.is_file():
        with tempfile.TemporaryDirectory(prefix="liquidedge-verify-") as tmp:
            return verify_bundle(extract_bundle(path, tmp), selftest=selftest, packages=packages,
                                 expect_manifest_sha256=expect_manifest_sha256)
    if not path.is_dir():
        raise DeployError(f"{path}: no such bundle (expected a directory or a .tar.gz)")
    manifest, digest, n = verify_files(path, expect_manifest_sha256)
    check_python(manifest)
    report = VerifyReport(str(path), digest, n)
    if packages:
        report.packages = check_packages(manifest)
        bad = [p for p in report.packages if not p.ok]
        if bad:
            raise DeployError("required packages missing or too old: " + ", ".join(
                f"{p.name} {p.installed or 'not installed'} (needs {p.required})" for p in bad)
                + "; run `pip install -r requirements.txt` in the bundle directory")
    if selftest:
        report.selftest_error, report.selftest_tolerance, report.runner = run_selftest(path, manifest)
    return report


def load_verified(bundle_dir: str | os.PathLike) -> dict[str, Any]:
    """Hash-check a bundle directory (fast, no self-test) and return its manifest: what ``run`` does
    before it touches any bundled file."""
    manifest, _, _ = verify_files(bundle_dir)
    check_python(manifest)
    return manifest


__all__ = ["VerifyReport", "PackageCheck", "verify_bundle", "verify_files", "run_selftest",
           "extract_bundle", "load_verified", "satisfies"]
