"""Pushing a bundle over OpenSSH: target parsing, the exact commands, and a real push to an sshd
started on 127.0.0.1 with throw-away keys (skipped where sshd is missing, except under CI=true)."""
import getpass
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from liquidedge.deploy.bundle import build_bundle
from liquidedge.deploy.manifest import read_manifest, sha256_path
from liquidedge.deploy.push import SshTarget, parse_ssh_target, push_bundle
from liquidedge.deploy.verify import verify_bundle
from liquidedge.errors import ConfigError, DeployError
from liquidedge.ir import random_model, save_model

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    d = tmp_path_factory.mktemp("push")
    save_model(random_model(seed=9), d / "model")
    return build_bundle(d / "model", "jetson-orin-nano", d / "bundle.tar.gz", runtime="numpy", steps=16)


def test_targets_parse_and_hostile_ones_are_refused():
    assert parse_ssh_target("pi@raspberrypi.local:/opt/edge") == SshTarget("raspberrypi.local", "pi", "/opt/edge")
    assert parse_ssh_target("jetson") == SshTarget("jetson", None, "liquidedge")
    t = parse_ssh_target("nvidia@[fe80::1]:models")
    assert (t.destination, t.scp_destination) == ("nvidia@fe80::1", "nvidia@[fe80::1]")
    for bad in ("-oProxyCommand=touch /tmp/x", "a b", "user@", "", "@host"):
        with pytest.raises(ConfigError):
            parse_ssh_target(bad)


def test_dry_run_prints_quoted_commands_and_runs_nothing(bundle, tmp_path):
    res = push_bundle(bundle.path, "pi@rpi5.local:edge dir; rm -rf ~", dry_run=True, port=2222,
                      identity="/keys/id_ed25519", ssh_options=["ConnectTimeout=5"], verify=True)
    assert res.dry_run and res.manifest_sha256 == bundle.manifest_sha256
    mkdir, scp, unpack, verify = res.commands
    assert mkdir[:1] == ["ssh"] and ["-p", "2222"] == mkdir[mkdir.index("-p"):mkdir.index("-p") + 2]
    assert ["-P", "2222"] == scp[scp.index("-P"):scp.index("-P") + 2]
    assert "-i" in scp and "ConnectTimeout=5" in scp and "BatchMode=yes" in scp
    assert mkdir[-1] == "mkdir -p 'edge dir; rm -rf ~'"  # the remote shell sees one quoted word
    assert scp[-1] == "pi@rpi5.local:edge dir; rm -rf ~/bundle.tar.gz"
    assert "tar -xzf bundle.tar.gz" in unpack[-1] and bundle.name in unpack[-1]
    assert verify[-1].endswith("python3 run.py verify")
    assert res.remote_bundle == f"edge dir; rm -rf ~/{bundle.name}"


def test_a_missing_archive_or_a_non_bundle_is_refused(tmp_path):
    with pytest.raises(DeployError, match="no such bundle"):
        push_bundle(tmp_path / "nope.tar.gz", "host", dry_run=True)
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"junk")
    with pytest.raises(DeployError, match="not a readable tar.gz"):
        push_bundle(junk, "host", dry_run=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "liquidedge-test", "-f", str(path)],
                   check=True, capture_output=True)
    return path.with_suffix(".pub").read_text().strip()


@pytest.fixture
def sshd(tmp_path):
    """A real OpenSSH server on 127.0.0.1:<free port> that accepts one throw-away key."""
    if not os.path.exists(SSHD) or shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
        msg = ("OpenSSH server/client not installed (Debian: apt-get install openssh-server); "
               ".ci/run installs it")
        if os.environ.get("CI") == "true":
            pytest.fail(msg + " - under CI=true this test must run")
        pytest.skip(msg)
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
    d = tmp_path / "sshd"
    d.mkdir()
    host_pub = _keygen(d / "host_key")
    user_pub = _keygen(d / "id")
    (d / "authorized_keys").write_text(user_pub + "\n")
    port = _free_port()
    (d / "sshd_config").write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {d / 'host_key'}", f"PidFile {d / 'sshd.pid'}",
        f"AuthorizedKeysFile {d / 'authorized_keys'}", "StrictModes no", "PermitRootLogin yes",
        "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no",
        "Subsystem sftp internal-sftp", "LogLevel ERROR", ""]))
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / "sshd_config")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                out, err = proc.communicate()
                pytest.fail(f"sshd did not start: {err.strip() or out.strip()}")
            time.sleep(0.1)
    (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {' '.join(host_pub.split()[:2])}\n")
    options = [f"UserKnownHostsFile={d / 'known_hosts'}", "StrictHostKeyChecking=yes", "IdentitiesOnly=yes",
               "ConnectTimeout=10"]
    yield {"port": port, "identity": str(d / "id"), "options": options, "user": getpass.getuser()}
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_push_to_a_real_sshd_delivers_every_file_intact(bundle, sshd, tmp_path):
    remote = tmp_path / "device home" / "edge"
    res = push_bundle(bundle.path, f"{sshd['user']}@127.0.0.1:{remote}", port=sshd["port"],
                      identity=sshd["identity"], ssh_options=sshd["options"], verify=True,
                      python=sys.executable)
    arrived = remote / bundle.name
    assert res.remote_bundle == f"{remote}/{bundle.name}"
    assert "OK" in res.verify_output and "self-test" in res.verify_output  # verified on the "device"
    m = read_manifest(arrived)
    assert len(m["files"]) == bundle.files
    for rel, digest in m["files"].items():
        assert sha256_path(arrived / rel) == digest
    assert sha256_path(arrived / "manifest.json") == bundle.manifest_sha256
    assert not (remote / bundle.path.name).exists()  # the archive was removed after unpacking
    verify_bundle(arrived, expect_manifest_sha256=bundle.manifest_sha256)
    # pushing again replaces the bundle cleanly
    push_bundle(bundle.path, f"{sshd['user']}@127.0.0.1:{remote}", port=sshd["port"],
                identity=sshd["identity"], ssh_options=sshd["options"])
    verify_bundle(arrived, selftest=False)


def test_push_failure_is_a_clear_error(bundle, sshd, tmp_path):
    wrong = tmp_path / "wrong_key"
    _keygen(wrong)
    with pytest.raises(DeployError, match="failed .exit 255"):
        push_bundle(bundle.path, f"{sshd['user']}@127.0.0.1:{tmp_path / 'x'}", port=sshd["port"],
                    identity=str(wrong), ssh_options=sshd["options"])
