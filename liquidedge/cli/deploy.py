"""`liquidedge deploy build|push|verify|profiles`: thin wrappers over ``liquidedge.deploy``."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from liquidedge.cli.common import fail as _fail

from liquidedge.errors import LiquidEdgeError

deploy_app = typer.Typer(no_args_is_help=True, add_completion=False,
                         help="Bundle a model for a Raspberry Pi / Jetson, push it over ssh, verify it.")


def register(app: typer.Typer) -> None:
    app.add_typer(deploy_app, name="deploy")




@deploy_app.command("profiles")
def profiles_cmd() -> None:
    """The device profiles: runtime, precision, threads and power sensor of each board."""
    from rich.console import Console
    from rich.table import Table

    from liquidedge.deploy.profiles import PROFILES

    t = Table(title="device profiles")
    for col in ("device", "arch", "runtime", "precision", "threads", "providers", "sensor"):
        t.add_column(col, no_wrap=col in ("device", "runtime"))
    for p in PROFILES.values():
        t.add_row(p.name, p.arch, p.runtime, p.precision, str(p.threads),
                  ", ".join(e.replace("ExecutionProvider", "") for e in p.execution_providers)
                  or (p.delegate or "-"), p.sensor)
    Console().print(t)


@deploy_app.command("build")
def build_cmd(
    model_dir: Path = typer.Argument(..., help="Model directory (model.json + weights.safetensors)."),
    device: str = typer.Option(..., "--device", "-d", help="Device profile (see `liquidedge deploy profiles`)."),
    out: Path = typer.Option(..., "--out", "-o", help="Bundle to write: NAME.tar.gz (or a new directory)."),
    artefact: Optional[Path] = typer.Option(None, "--artefact", "-a",
                                            help="Ship this exported artefact instead of exporting one."),
    runtime: Optional[str] = typer.Option(None, "--runtime",
                                          help="Override the profile's runtime (litert, onnxruntime, numpy)."),
    selftest_data: Optional[Path] = typer.Option(None, "--selftest-data",
                                                 help="Trades file to cut the self-test window from "
                                                      "(default: a seeded synthetic market)."),
    columns: Optional[str] = typer.Option(None, "--columns", help="Column preset of --selftest-data."),
) -> None:
    """Build a bundle for DEVICE: artefact, manifest (sha256 of every file), requirements.txt, run.py."""
    from rich.console import Console

    from liquidedge.deploy.bundle import build_bundle

    console = Console()
    try:
        events = None
        if selftest_data is not None:
            from liquidedge.data import load_events

            events = load_events(selftest_data, columns)
        with console.status("building bundle") as status:
            res = build_bundle(model_dir, device, out, artefact=artefact, runtime=runtime,
                               selftest_events=events, progress=lambda m: status.update(m))
    except LiquidEdgeError as exc:
        _fail(exc)
    p = res.manifest["perception"]
    console.print(f"[bold]{res.path}[/]: {res.files} files for {device} "
                  f"({p['target']} {p['precision']}), self-test error {res.selftest_error:.3g} "
                  f"(device tolerance {res.selftest_tolerance:.3g})")
    console.print(f"manifest sha256 {res.manifest_sha256}")


@deploy_app.command("push")
def push_cmd(
    bundle: Path = typer.Argument(..., help="Bundle archive (.tar.gz) from `deploy build`."),
    ssh: str = typer.Option(..., "--ssh", help="Destination [user@]host[:dir] (dir default: ~/liquidedge)."),
    port: Optional[int] = typer.Option(None, "--port", "-p", help="ssh port."),
    identity: Optional[Path] = typer.Option(None, "--identity", "-i", help="ssh private key file."),
    option: List[str] = typer.Option([], "--ssh-option", "-O", help="Extra ssh -o option (repeatable)."),
    verify: bool = typer.Option(False, "--verify", help="Run `python3 run.py verify` on the device after."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the ssh/scp commands, run nothing."),
) -> None:
    """Copy BUNDLE to a device over OpenSSH and unpack it there."""
    import shlex

    from rich.console import Console

    from liquidedge.deploy.push import push_bundle

    console = Console()
    try:
        with console.status(f"pushing to {ssh}"):
            res = push_bundle(bundle, ssh, dry_run=dry_run, port=port,
                              identity=str(identity) if identity else None, ssh_options=option, verify=verify)
    except LiquidEdgeError as exc:
        _fail(exc)
    if dry_run:
        for cmd in res.commands:
            print(shlex.join(cmd))
        return
    console.print(f"pushed to {res.target.destination}:{res.remote_bundle} "
                  f"(manifest sha256 {res.manifest_sha256})")
    if res.verify_output:
        console.print(res.verify_output.rstrip(), highlight=False)


@deploy_app.command("verify")
def verify_cmd(
    bundle: Path = typer.Argument(..., help="Bundle directory or .tar.gz."),
    manifest_sha256: Optional[str] = typer.Option(None, "--manifest-sha256",
                                                  help="Refuse unless manifest.json has this sha256."),
    selftest: bool = typer.Option(True, "--selftest/--no-selftest", help="Run the self-test window."),
) -> None:
    """Check every file's sha256, the installed packages and the self-test window."""
    from liquidedge.deploy.verify import verify_bundle

    try:
        report = verify_bundle(bundle, selftest=selftest, expect_manifest_sha256=manifest_sha256)
    except LiquidEdgeError as exc:
        _fail(exc)
    print("\n".join(report.lines()))
    print("OK")
