"""The bundle's entry point on the device: ``python run.py info | verify | run | energy``.

``verify`` checks every hash, the installed packages and the self-test window. ``run`` refuses a
bundle whose files do not match their hashes, then drives the edge loop over a trades file: bars,
windows, the bundle's perception runner, the bridge to the host when ``--host`` is given (without
it, or while the host is away, the edge's own degraded prediction), and writes one row per window.
``energy`` times the bundle's runner on the board and measures (``--measure``, with the board's
power meter) or estimates its energy per inference.

Edge-side module: argparse instead of typer, plain prints instead of rich, so that the device
needs numpy, safetensors, grpcio/protobuf and its runtime only.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from liquidedge.errors import LiquidEdgeError


def run_bundle(bundle_dir: str | Path, data: str | Path, *, columns: str | None = None, tz: str | None = None,
               host: str | None = None, token: str | None = None, root_cert: str | None = None,
               server_name: str | None = None, stream_id: str = "edge-0", wire: str = "float32",
               limit: int | None = None, chunk: int = 5000, selftest: bool = False,
               progress: Callable[[int, int], None] | None = None) -> list:
    """Run the edge loop from a bundle over the trades in ``data``; returns the EdgeResults."""
    from liquidedge.bridge.edge import EdgeLoop
    from liquidedge.data.ticks import ColumnMap
    from liquidedge.deploy.events_csv import read_events
    from liquidedge.deploy.runtime import bundle_model, bundle_runner
    from liquidedge.deploy.verify import load_verified, run_selftest

    bundle_dir = Path(bundle_dir)
    manifest = load_verified(bundle_dir)
    model = bundle_model(bundle_dir, manifest)
    runner = bundle_runner(bundle_dir, manifest, model)
    if selftest:
        run_selftest(bundle_dir, manifest, runner)
    cmap = ColumnMap.preset(columns) if columns else None
    if tz is not None:
        base = cmap or ColumnMap()
        cmap = ColumnMap(base.timestamp, base.price, base.size, base.side, tz, base.epoch_unit)
    events = read_events(data, cmap)
    n = len(events) if limit is None else min(int(limit), len(events))
    client = None
    if host:
        from liquidedge.bridge.client import BridgeClient
        from liquidedge.bridge.transport import GrpcTransport

        client = BridgeClient(GrpcTransport(host, token=token, root_cert=root_cert, server_name=server_name))
    loop = EdgeLoop(runner, model, client, stream_id=stream_id, wire=wire)
    results = []
    try:
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            results.extend(loop.push_events(events.time_ns[start:stop], events.price[start:stop],
                                            events.size[start:stop]))
            if progress is not None:
                progress(stop, n)
        loop.drain()
    finally:
        if client is not None:
            client.close()
    return results


def save_results(results: list, path: str | Path) -> Path:
    """One row per window: seq, end_ns, embedding, prediction, source, surprise (NaN if local)."""
    path = Path(path)
    e = results[0].embedding.shape[0] if results else 0
    p = results[0].prediction.shape[0] if results else 0
    np.savez(path,
             seq=np.array([r.seq for r in results], np.int64),
             end_ns=np.array([r.end_ns for r in results], np.int64),
             embedding=np.array([r.embedding for r in results], np.float32).reshape(-1, e),
             prediction=np.array([r.prediction for r in results], np.float64).reshape(-1, p),
             degraded=np.array([r.degraded for r in results], bool),
             surprise=np.array([np.nan if r.surprise is None else r.surprise for r in results]))
    return path


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="run.py", description="Run or check this liquidedge bundle.")
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="what this bundle is (model, device, runtime, requirements)")
    v = sub.add_parser("verify", help="check every hash, the packages and the self-test window")
    v.add_argument("--manifest-sha256", help="refuse unless manifest.json has this sha256")
    v.add_argument("--no-selftest", action="store_true", help="hashes and packages only")
    r = sub.add_parser("run", help="run the edge loop over a trades file")
    r.add_argument("--data", required=True, help="trades .csv (timestamp,price[,size]) or .npz")
    r.add_argument("--columns", help="column preset of the CSV (e.g. mlfinpy); default: detect")
    r.add_argument("--tz", help="time zone of naive timestamps (default UTC, or the preset's)")
    r.add_argument("--host", help="host address HOST:PORT of `liquidedge serve`; omit to run alone")
    r.add_argument("--token-file", help="file holding the bridge bearer token")
    r.add_argument("--root-cert", help="CA certificate of the host (turns TLS on)")
    r.add_argument("--server-name", help="name to check in the host's certificate")
    r.add_argument("--stream-id", default="edge-0")
    r.add_argument("--wire", choices=("float32", "int8"), default="float32")
    r.add_argument("--limit", type=int, help="use only the first N events")
    r.add_argument("--out", help="write per-window results to this .npz")
    r.add_argument("--selftest", action="store_true", help="also run the self-test window first")
    e = sub.add_parser("energy", help="latency and energy per inference of this bundle on this device")
    e.add_argument("--measure", action="store_true",
                   help="measure with the board's power meter (MLPerf Tiny method); default: estimate")
    e.add_argument("--window", type=float, default=10.0, help="seconds per measured window (>= 10)")
    e.add_argument("--trials", type=int, default=5)
    e.add_argument("--idle", type=float, default=5.0, help="seconds of idle baseline per trial")
    e.add_argument("--json", help="also write the row as JSON")
    e.add_argument("--sysfs-root", default="/",
                   help="where the board's /sys is mounted (e.g. /host in a container)")
    return ap


def bundle_energy(bundle_dir: str | Path, measure: bool = False, **options: Any):
    """The energy-table row of this bundle's runner, on the board it runs on."""
    from liquidedge.deploy.profiles import get_profile
    from liquidedge.deploy.runtime import bundle_model, bundle_runner
    from liquidedge.deploy.verify import load_verified
    from liquidedge.energy.harness import open_meter
    from liquidedge.energy.report import energy_row

    bundle_dir = Path(bundle_dir)
    manifest = load_verified(bundle_dir)
    model = bundle_model(bundle_dir, manifest)
    runner = bundle_runner(bundle_dir, manifest, model)
    p = manifest["perception"]
    profile = get_profile(manifest["device"]["name"])
    meter = None
    if measure:
        root = options.get("sysfs_root", "/")
        meter = open_meter(profile.sensor, root) if profile.sensor in ("rapl", "ina3221") else open_meter(profile.sensor)
    return energy_row(p["target"], runner, p["precision"], profile, measure, model=model, meter=meter,
                      window_s=options.get("window_s", 10.0), idle_s=options.get("idle_s", 5.0),
                      trials=options.get("trials", 5),
                      allow_short_window=options.get("allow_short_window", False))


def _info(bundle_dir: Path) -> dict[str, Any]:
    from liquidedge.deploy.manifest import read_manifest

    m = read_manifest(bundle_dir)
    return {"device": m["device"]["name"], "perception": m["perception"], "window": {
        k: v for k, v in m["window"].items() if k != "data_spec"}, "model": m["model"],
        "requirements": m["requirements"], "files": len(m["files"])}


def main(argv: list[str] | None = None, bundle_dir: str | Path | None = None) -> int:
    args = _parser().parse_args(argv)
    bundle_dir = Path(bundle_dir) if bundle_dir is not None else Path.cwd()
    try:
        if args.command == "info":
            print(json.dumps(_info(bundle_dir), indent=2))
            return 0
        if args.command == "verify":
            from liquidedge.deploy.verify import verify_bundle

            report = verify_bundle(bundle_dir, selftest=not args.no_selftest,
                                   expect_manifest_sha256=args.manifest_sha256)
            print("\n".join(report.lines()))
            print("OK")
            return 0
        if args.command == "energy":
            row = bundle_energy(bundle_dir, args.measure, window_s=args.window, idle_s=args.idle,
                                trials=args.trials, sysfs_root=args.sysfs_root)
            print(f"{'target':<12} {'dtype':<13} {'latency ms':>10} {'uJ/inference':>13} {'range uJ':>17}  method")
            print(f"{row.target:<12} {row.dtype:<13} {row.latency_ms:>10.3g} {row.uj:>13.3g} "
                  f"{row.low_uj:>8.3g}-{row.high_uj:<8.3g}  {row.method} ({row.source})")
            for note in row.notes:
                print(f"  note: {note}")
            if args.json:
                Path(args.json).write_text(json.dumps(row.to_dict(), indent=2, default=str))
            return 0
        token = Path(args.token_file).read_text().strip() if args.token_file else None
        t0 = time.perf_counter()

        def progress(done: int, total: int) -> None:
            print(f"\r{done}/{total} events", end="", file=sys.stderr, flush=True)

        results = run_bundle(bundle_dir, args.data, columns=args.columns, tz=args.tz, host=args.host,
                             token=token, root_cert=args.root_cert, server_name=args.server_name,
                             stream_id=args.stream_id, wire=args.wire, limit=args.limit,
                             selftest=args.selftest, progress=progress if sys.stderr.isatty() else None)
        seconds = time.perf_counter() - t0
        degraded = sum(r.degraded for r in results)
        print(f"{len(results)} windows in {seconds:.1f} s: {len(results) - degraded} answered by the host, "
              f"{degraded} degraded (local decoder)")
        if args.out:
            print(f"results -> {save_results(results, args.out)}")
        return 0
    except (LiquidEdgeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ImportError as exc:
        print(f"error: {exc}; install this bundle's requirements: pip install -r requirements.txt",
              file=sys.stderr)
        return 2
