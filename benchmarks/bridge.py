"""Host memory step and edge<->host bridge, measured side by side in one run. Not a test.

    python benchmarks/bridge.py [--seconds 2] [--round-trips 3000] [--skip-titans]

1. Memory step, same width for everyone (embedding 32, memory 32, 2-layer MLP, expansion 2):
   titans-pytorch ``NeuralMemory`` streaming one token per call (the baseline, a benchmark-only
   dependency) beside our torch and ONNX Runtime runners and the numpy reference, one stream
   per call and 64 streams per call. The runners are interleaved round by round and each is
   reported by its median round, so load from other processes hits all of them alike.
2. The bridge on loopback, host in a subprocess (``liquidedge serve``, ONNX Runtime runner, write-
   ahead log on): round-trip latency of one stream (p50/p99/p99.9), the same with the log
   fsynced per batch and in-process (no network), and embeddings/s with 1, 8 and 64 concurrent
   streams (one connection and one client thread per stream).

Targets: our streaming step >= 20x titans-pytorch's streaming throughput; p99 round trip < 2 ms.
Prints a table and writes it to benchmarks/results/bridge.md.
"""
from __future__ import annotations

import argparse
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from liquidedge.bridge.protocol import make_embedding
from liquidedge.bridge.service import HostService
from liquidedge.bridge.transport import GrpcTransport, LocalTransport
from liquidedge.ir import random_model, save_model
from liquidedge.targets.host import load_host_runner

WIDTH = 32
TOKEN = "benchmark-token-0123456789abcdef"
RESULTS = Path(__file__).resolve().parent / "results" / "bridge.md"


# ----------------------------------------------------------------------------- memory step

def _titans_stepper(dim: int):
    import torch
    from titans_pytorch import NeuralMemory

    mem = NeuralMemory(dim=dim, chunk_size=1, batch_size=1, heads=1,
                       default_model_kwargs=dict(depth=2, expansion_factor=2.0))
    tokens = torch.randn(1, 4096, dim)
    box = {"state": None, "i": 0}

    def step():
        i = box["i"] % tokens.shape[1]
        box["i"] += 1
        _, box["state"] = mem(tokens[:, i:i + 1], state=box["state"])

    return step


def _our_stepper(model, backend: str, batch: int):
    runner = load_host_runner(model, backend)
    e = np.random.default_rng(0).normal(size=(batch, WIDTH)).astype(np.float32)
    box = {"state": runner.init_state(batch)}

    def step():
        box["state"], _ = runner.step(box["state"], e)

    return step


def memory_step_rows(args) -> list[tuple]:
    import torch

    torch.set_num_threads(1)  # the baseline and our torch runner alike: tiny tensors
    model = random_model(hidden=WIDTH, mem_dim=WIDTH, expansion=2, seed=0)
    model.memory.threshold = 0.0  # every step learns: the expensive path, as titans always does
    contenders = {}
    if not args.skip_titans:
        try:
            contenders["titans-pytorch NeuralMemory, 1 token/call"] = (_titans_stepper(WIDTH), 1)
        except ImportError as exc:
            print(f"titans-pytorch not installed ({exc}); baseline skipped", file=sys.stderr)
    for backend in ("torch", "onnxruntime", "numpy"):
        contenders[f"ours: {backend}, 1 stream/call"] = (_our_stepper(model, backend, 1), 1)
    for backend in ("torch", "onnxruntime"):
        contenders[f"ours: {backend}, 64 streams/call"] = (_our_stepper(model, backend, 64), 64)
    for fn, _ in contenders.values():  # warm up (first calls allocate, titans builds its state)
        for _ in range(5):
            fn()
    per_round = {name: [] for name in contenders}
    for _ in range(args.rounds):
        for name, (fn, streams) in contenders.items():
            n = 20 if name.startswith("titans") else 200
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            per_round[name].append((time.perf_counter() - t0) / (n * streams))
    base = np.median(per_round[next(iter(per_round))]) if not args.skip_titans and per_round else None
    rows = []
    for name, times in per_round.items():
        us = float(np.median(times)) * 1e6
        ratio = f"{base / (us * 1e-6):.1f}x" if base else "-"
        rows.append((name, f"{us:,.1f} us/stream-step", f"{1e6 / us:,.0f} steps/s", ratio))
    return rows


# ----------------------------------------------------------------------------- bridge

class _Host:
    def __init__(self, tmp: Path, model_dir: Path, wal_sync: str):
        port_file = tmp / f"port-{wal_sync}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "liquidedge.cli.app", "serve", str(model_dir), "--listen", "127.0.0.1:0",
             "--port-file", str(port_file), "--token-file", str(tmp / "token"),
             "--checkpoint-dir", str(tmp / f"ckpt-{wal_sync}"), "--wal-sync", wal_sync,
             "--backend", "onnxruntime"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while not port_file.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("host did not start")
            time.sleep(0.05)
        self.address = f"127.0.0.1:{int(port_file.read_text())}"

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _latencies(transport, n: int, stream: str) -> np.ndarray:
    vec = np.random.default_rng(1).normal(size=(256, WIDTH)).astype(np.float32)
    out = np.empty(n)
    for i in range(n):
        msg = make_embedding(stream, i + 1, vec[i % 256])
        t0 = time.perf_counter()
        (res,) = transport.exchange([msg], 5.0)
        out[i] = time.perf_counter() - t0
    return out[n // 10:]  # first tenth: warm-up (connection, caches)


def _throughput(address: str, streams: int, seconds: float) -> float:
    vec = np.random.default_rng(2).normal(size=(64, WIDTH)).astype(np.float32)
    counts = [0] * streams
    start = threading.Barrier(streams + 1)
    stop = threading.Event()

    def drive(k: int):
        t = GrpcTransport(address, token=TOKEN)
        t.exchange([make_embedding(f"tp{streams}-{k}", 1, vec[0])], 10.0)  # connect before timing
        start.wait()
        seq = 2
        while not stop.is_set():
            t.exchange([make_embedding(f"tp{streams}-{k}", seq, vec[seq % 64])], 10.0)
            seq += 1
            counts[k] += 1
        t.close()

    threads = [threading.Thread(target=drive, args=(k,), daemon=True) for k in range(streams)]
    for th in threads:
        th.start()
    start.wait()
    t0 = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    elapsed = time.perf_counter() - t0
    for th in threads:
        th.join(30)
    return sum(counts) / elapsed


def _noise_floor(n: int) -> np.ndarray:
    """Latency of a fixed ~100 us CPU task, repeated: this machine's own scheduling jitter."""
    a = np.random.default_rng(3).normal(size=(32, 32))
    out = np.empty(n)
    for i in range(n):
        t0 = time.perf_counter()
        for _ in range(40):
            a = np.tanh(a @ a * 0.01)
        out[i] = time.perf_counter() - t0
    return out[n // 10:]


def bridge_rows(args) -> list[tuple]:
    model = random_model(hidden=WIDTH, mem_dim=WIDTH, expansion=2, seed=0)
    rows = []
    lat = _noise_floor(args.round_trips) * 1e6
    rows.append(("reference: fixed CPU task, no I/O (machine jitter)", f"p50 {np.percentile(lat, 50):,.0f} us",
                 f"p99 {np.percentile(lat, 99):,.0f} us", f"p99.9 {np.percentile(lat, 99.9):,.0f} us"))
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        model_dir = save_model(model, tmp / "model")
        (tmp / "token").write_text(TOKEN)
        # in-process (no network): what the bridge's own logic costs
        local = LocalTransport(HostService(model, "onnxruntime"))
        lat = _latencies(local, args.round_trips, "local") * 1e6
        rows.append(("round trip, in-process transport", f"p50 {np.percentile(lat, 50):,.0f} us",
                     f"p99 {np.percentile(lat, 99):,.0f} us", f"p99.9 {np.percentile(lat, 99.9):,.0f} us"))
        for sync in ("write", "fsync"):
            host = _Host(tmp, model_dir, sync)
            try:
                t = GrpcTransport(host.address, token=TOKEN)
                n = args.round_trips if sync == "write" else max(300, args.round_trips // 5)
                lat = _latencies(t, n, "one") * 1e6
                t.close()
                p99 = np.percentile(lat, 99)
                rows.append((f"round trip, gRPC loopback, log {sync}", f"p50 {np.percentile(lat, 50):,.0f} us",
                             f"p99 {p99:,.0f} us" + (" (target < 2,000)" if sync == "write" else ""),
                             f"p99.9 {np.percentile(lat, 99.9):,.0f} us"))
                if sync == "write":
                    base = None
                    for streams in (1, 8, 64):
                        rate = _throughput(host.address, streams, args.seconds)
                        base = base or rate
                        rows.append((f"throughput, {streams} concurrent stream(s)", f"{rate:,.0f} embeddings/s",
                                     f"{rate / streams:,.0f} per stream", f"{rate / base:.2f}x of 1 stream"))
            finally:
                host.stop()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="per throughput measurement")
    ap.add_argument("--round-trips", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=7, help="interleaved rounds of the step benchmark")
    ap.add_argument("--skip-titans", action="store_true")
    args = ap.parse_args()
    load_before = os.getloadavg()[0]
    step = memory_step_rows(args)
    bridge = bridge_rows(args)
    load_after = os.getloadavg()[0]
    machine = (f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
               f"1-min load average {load_before:.1f} before / {load_after:.1f} after (other "
               f"processes share these CPUs: tail latencies include their scheduling delays)")
    lines = ["# Bridge and host memory benchmark", "",
             f"`python benchmarks/bridge.py` on {machine}; width {WIDTH} (embedding and memory).", "",
             "| memory step (every step learns) | time | throughput | vs titans-pytorch |",
             "|---|---|---|---|"]
    lines += [f"| {' | '.join(r)} |" for r in step]
    lines += ["", "| bridge | | | |", "|---|---|---|---|"]
    lines += [f"| {' | '.join(r)} |" for r in bridge]
    text = "\n".join(lines) + "\n"
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    try:
        from rich.console import Console
        from rich.table import Table

        console = Console()
        for title, rows, head in (("memory step", step, ("", "time", "throughput", "vs titans")),
                                  ("bridge", bridge, ("", "", "", ""))):
            table = Table(title=title)
            for h in head:
                table.add_column(h)
            for r in rows:
                table.add_row(*r)
            console.print(table)
    except ImportError:
        print(text)
    print(f"written to {RESULTS}", file=sys.stderr)


if __name__ == "__main__":
    main()
