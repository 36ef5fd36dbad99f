"""Push a bundle to a device over OpenSSH (``ssh`` + ``scp``), then unpack (and optionally verify) it.

Uses the system's OpenSSH client so the user's keys, agent, ``~/.ssh/config`` and known hosts
apply unchanged; nothing here handles credentials. Every remote argument is shell-quoted. With
``dry_run`` the exact commands are returned and nothing is run.
"""
from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from liquidedge.deploy.manifest import MANIFEST, sha256_bytes
from liquidedge.deploy.verify import extract_bundle
from liquidedge.errors import ConfigError, DeployError

DEFAULT_REMOTE_DIR = "liquidedge"
_TARGET = re.compile(r"^(?:(?P<user>[A-Za-z0-9._][A-Za-z0-9._-]*)@)?"
                     r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_][A-Za-z0-9._-]*)(?::(?P<dir>.*))?$")


@dataclass(frozen=True)
class SshTarget:
    """``user@host:dir`` split into its parts (user optional, dir relative to the remote home)."""

    host: str
    user: str | None = None
    directory: str = DEFAULT_REMOTE_DIR

    @property
    def destination(self) -> str:
        """What ssh takes: user@host, an IPv6 address without its brackets."""
        host = self.host.strip("[]")
        return f"{self.user}@{host}" if self.user else host

    @property
    def scp_destination(self) -> str:
        """What scp takes before ':path' (IPv6 keeps its brackets)."""
        return f"{self.user}@{self.host}" if self.user else self.host


def parse_ssh_target(text: str) -> SshTarget:
    """Parse ``[user@]host[:dir]`` (IPv6 hosts in brackets); ConfigError when malformed."""
    m = _TARGET.match(text.strip())
    if not m:
        raise ConfigError(f"ssh target {text!r}: expected [user@]host[:dir] (host: a name, an IPv4 "
                          f"address or [IPv6]; nothing may start with '-')")
    directory = m.group("dir") or DEFAULT_REMOTE_DIR
    if any(c in directory for c in "\n\r\0"):
        raise ConfigError(f"ssh target {text!r}: directory contains a control character")
    return SshTarget(m.group("host"), m.group("user"), directory)


@dataclass
class PushResult:
    target: SshTarget
    remote_bundle: str                 # remote path of the unpacked bundle directory
    manifest_sha256: str
    commands: list[list[str]] = field(default_factory=list)
    dry_run: bool = False
    verify_output: str = ""


def _bundle_identity(archive: Path) -> tuple[str, str]:
    """(top-level directory name, manifest sha256) of a bundle archive, checked by unpacking it."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="liquidedge-push-") as tmp:
        bundle_dir = extract_bundle(archive, tmp)
        manifest = bundle_dir / MANIFEST
        if not manifest.is_file():
            raise DeployError(f"{archive}: has no {MANIFEST}; not a bundle")
        return bundle_dir.name, sha256_bytes(manifest.read_bytes())


def push_commands(archive: Path, target: SshTarget, top: str, *, port: int | None = None,
                  identity: str | None = None, ssh_options: Sequence[str] = (),
                  verify: bool = False, python: str = "python3") -> list[list[str]]:
    """The ssh/scp commands that push ``archive`` and unpack it into ``target.directory``."""
    base_opts: list[str] = ["-o", "BatchMode=yes"]
    if identity:
        base_opts += ["-i", str(identity)]
    for opt in ssh_options:
        base_opts += ["-o", opt]
    ssh = ["ssh"] + base_opts + (["-p", str(port)] if port else []) + [target.destination]
    scp = ["scp", "-q"] + base_opts + (["-P", str(port)] if port else [])
    d = shlex.quote(target.directory)
    name = shlex.quote(archive.name)
    top_q = shlex.quote(top)
    remote_file = f"{target.directory.rstrip('/')}/{archive.name}"
    unpack = (f"cd {d} && rm -rf {top_q} && tar -xzf {name} && rm -f {name}")
    cmds = [ssh + [f"mkdir -p {d}"],
            scp + [str(archive), f"{target.scp_destination}:{remote_file}"],
            ssh + [unpack]]
    if verify:
        cmds.append(ssh + [f"cd {d}/{top_q} && {shlex.quote(python)} run.py verify"])
    return cmds


def push_bundle(archive: str | Path, target: str | SshTarget, *, dry_run: bool = False,
                port: int | None = None, identity: str | None = None, ssh_options: Sequence[str] = (),
                verify: bool = False, python: str = "python3", timeout_s: float = 300.0) -> PushResult:
    """Copy a bundle tar.gz to ``target`` and unpack it there (see module docstring)."""
    archive = Path(archive)
    if not archive.is_file():
        raise DeployError(f"{archive}: no such bundle archive (build one with `liquidedge deploy build`)")
    target = parse_ssh_target(target) if isinstance(target, str) else target
    top, digest = _bundle_identity(archive)
    cmds = push_commands(archive, target, top, port=port, identity=identity, ssh_options=ssh_options,
                         verify=verify, python=python)
    result = PushResult(target, f"{target.directory.rstrip('/')}/{top}", digest, cmds, dry_run)
    if dry_run:
        return result
    for tool in ("ssh", "scp"):
        if shutil.which(tool) is None:
            raise DeployError(f"`{tool}` not found: install the OpenSSH client (apt install openssh-client)")
    for cmd in cmds:
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise DeployError(f"`{shlex.join(cmd)}` did not finish within {timeout_s:g} s") from None
        if proc.returncode != 0:
            raise DeployError(f"`{shlex.join(cmd)}` failed (exit {proc.returncode}): "
                              f"{(proc.stderr or proc.stdout).strip()[-2000:]}")
        if verify and cmd is cmds[-1]:
            result.verify_output = proc.stdout
    return result
