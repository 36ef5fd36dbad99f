"""A real host in a subprocess on loopback: round trip, kill -9 and restart, outage and catch-up."""
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from liquidedge import reference as ref
from liquidedge.bridge import persistence as wal
from liquidedge.bridge.client import BridgeClient
from liquidedge.bridge.edge import EdgeLoop
from liquidedge.bridge.service import HostService
from liquidedge.bridge.transport import GrpcTransport
from liquidedge.data import DataSpec, generate_market
from liquidedge.ir import random_model, save_model
from liquidedge.targets.numpy_ref import ReferenceRunner

SPEC = DataSpec(bar_threshold=40, span="20min", steps=16, every=2, min_bars=4)
TOKEN = "test-token-0123456789abcdef"


class HostProcess:
    """``liquidedge serve`` in a subprocess on 127.0.0.1; always killed by the fixture."""

    def __init__(self, tmp: Path, model_dir: Path, ckpt: Path):
        self.tmp, self.model_dir, self.ckpt = tmp, model_dir, ckpt
        self.proc = None
        self.port = 0
        self.starts = 0

    def start(self, port: int = 0, timeout: float = 60.0) -> str:
        self.starts += 1
        port_file = self.tmp / f"port-{self.starts}"
        self.log = open(self.tmp / f"host-{self.starts}.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "liquidedge.cli.app", "serve", str(self.model_dir),
             "--listen", f"127.0.0.1:{port}", "--port-file", str(port_file),
             "--token-file", str(self.tmp / "token"), "--checkpoint-dir", str(self.ckpt),
             "--checkpoint-every", "0.3", "--backend", "onnxruntime"],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not port_file.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"host did not start: {(self.tmp / f'host-{self.starts}.log').read_text()}")
            time.sleep(0.05)
        self.port = int(port_file.read_text())
        return self.address

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def terminate(self, timeout: float = 30.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)


@pytest.fixture()
def model():
    m = random_model(seed=51)
    m.memory.threshold = 1.0
    m.data_spec = SPEC.to_dict()
    return m


@pytest.fixture()
def host(tmp_path, model):
    model_dir = save_model(model, tmp_path / "model")
    (tmp_path / "token").write_text(TOKEN + "\n")
    hp = HostProcess(tmp_path, model_dir, tmp_path / "ckpt")
    yield hp
    hp.kill()


def edge(model, address, **client_kw):
    client = BridgeClient(GrpcTransport(address, token=TOKEN), **client_kw)
    return EdgeLoop(ReferenceRunner(model.perception, SPEC.steps, model.content_hash()), model, client,
                    stream_id="es-mini"), client


def reference_memory(model, embeddings):
    state = ref.init_memory_state(model.memory, 1)
    updates = 0
    for e in embeddings:
        r = ref.memory_step(model.memory, state, np.asarray(e, np.float64)[None])
        state, updates = r.state, updates + int(r.updated[0])
    return state, updates


def uninterrupted(model, embeddings):
    """The same embeddings through an in-process host that never stopped."""
    from liquidedge.bridge.protocol import make_embedding

    svc = HostService(model, "onnxruntime")
    for i, e in enumerate(embeddings):
        svc.submit([make_embedding("es-mini", i + 1, e)])
    return svc.stream_state("es-mini"), svc.stream_meta("es-mini")


def test_round_trip_through_a_real_host_matches_the_reference(host, model):
    address = host.start()
    loop, client = edge(model, address, timeout_s=5.0)
    assert loop.seq == 1
    events = generate_market(5000, seed=5).events
    results = loop.run(events.slice(i, i + 500) for i in range(0, len(events), 500))
    assert len(results) > 20 and all(r.source == "host" for r in results)
    assert client.transport.info(5.0, "es-mini").last_seq == len(results)
    assert host.terminate() == 0                    # SIGTERM: clean stop, checkpoint written
    snap = wal.read_checkpoint(host.ckpt, model.content_hash())
    embs = [r.embedding for r in results]
    want, updates = reference_memory(model, embs)
    got = snap.state
    for a, b in zip(got.weights + got.momentum, want.weights + want.momentum):
        np.testing.assert_allclose(a[0], b[0], atol=1e-4)
    assert snap.meta["es-mini"].last_seq == len(results) and snap.meta["es-mini"].version == updates
    # each answer is the reference decoder on the reference memory's retrieval
    state = ref.init_memory_state(model.memory, 1)
    for r in results[:10]:
        step = ref.memory_step(model.memory, state, r.embedding[None].astype(np.float64))
        state = step.state
        want_pred = ref.decoder_forward(model.decoder, r.embedding[None].astype(np.float64), step.retrieved)
        np.testing.assert_allclose(r.prediction, want_pred[0], atol=1e-4)
    client.close()


def test_kill_9_mid_stream_outage_and_restart_lose_nothing_and_apply_nothing_twice(host, model):
    address = host.start()
    loop, client = edge(model, address, timeout_s=0.5, backoff_initial_s=0.05, backoff_max_s=0.3)
    events = generate_market(16000, seed=6).events
    chunks = [events.slice(i, i + 200) for i in range(0, len(events), 200)]
    results = []
    for i, chunk in enumerate(chunks):
        if i == len(chunks) // 4:
            threading.Timer(0.003, host.kill).start()   # lands while windows are in flight
        if i == len(chunks) // 3:
            host.kill()
            host.start(port=host.port)                  # back on the same address, from disk
        results.extend(loop.run([chunk]))
        time.sleep(0.01)
    deadline = time.monotonic() + 30
    while client.pending and time.monotonic() < deadline:   # deliver the tail still buffered
        time.sleep(0.05)
        client.flush()
    assert not client.pending, "the edge never caught up"
    degraded = [r for r in results if r.degraded]
    assert degraded, "the outage should have been ridden out in degraded mode"
    back = results[len(results) // 2:]
    assert back and all(r.source == "host" for r in back[-10:])   # caught up while streaming
    assert client.stats.dropped == 0 and client.stats.replayed >= len(degraded)
    assert host.terminate() == 0
    assert "1 streams restored" in (host.tmp / "host-2.log").read_text()
    snap = wal.read_checkpoint(host.ckpt, model.content_hash())
    embs = [r.embedding for r in results]
    assert snap.meta["es-mini"].last_seq == len(results)          # nothing lost
    want_state, want_meta = uninterrupted(model, embs)
    assert snap.meta["es-mini"].version == want_meta.version       # nothing applied twice
    for a, b in zip(snap.state.weights + snap.state.momentum, want_state.weights + want_state.momentum):
        np.testing.assert_array_equal(a[0], b[0])                  # the very same state
    ref_state, updates = reference_memory(model, embs)
    assert updates == want_meta.version
    np.testing.assert_allclose(snap.state.weights[1][0], ref_state.weights[1][0], atol=1e-4)
    client.close()


def test_cli_edge_run_from_stdin_against_the_host(host, model, tmp_path):
    address = host.start()
    events = generate_market(3000, seed=7).events
    lines = "time_ns,price,size\n" + "".join(
        f"{t},{p!r},{s!r}\n" for t, p, s in zip(events.time_ns.tolist(), events.price.tolist(),
                                                 events.size.tolist()))
    out_csv = tmp_path / "out.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "liquidedge.cli.app", "run", str(host.model_dir), "--data", "-",
         "--host", address, "--token-file", str(tmp_path / "token"), "--out", str(out_csv),
         "--stream-id", "cli"],
        input=lines, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = out_csv.read_text().splitlines()
    assert rows[0].startswith("seq,end_ns,source")
    assert len(rows) > 5 and all(",host," in r for r in rows[1:])
    assert "0 degraded" in proc.stderr
    # a second run continues the stream where the host has it (no reused sequence numbers), and
    # a SIGTERM while it waits on a quiet pipe stops it cleanly
    n = len(rows) - 1
    proc2 = subprocess.Popen(
        [sys.executable, "-m", "liquidedge.cli.app", "run", str(host.model_dir), "--data", "-",
         "--host", address, "--token-file", str(tmp_path / "token"), "--out", str(out_csv),
         "--stream-id", "cli"],
        stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        proc2.stdin.write(lines)
        proc2.stdin.flush()                     # ... and the pipe stays open
        probe = GrpcTransport(address, token=TOKEN)
        deadline = time.monotonic() + 60
        while probe.info(5.0, "cli").last_seq < 2 * n and time.monotonic() < deadline:
            time.sleep(0.1)
        probe.close()
        proc2.send_signal(signal.SIGTERM)
        _, err = proc2.communicate(timeout=60)
    finally:
        proc2.kill()
    assert proc2.returncode == 0, err
    assert f"{n} windows, 0 degraded" in err
    assert int(out_csv.read_text().splitlines()[1].split(",")[0]) == n + 1
    host.proc.send_signal(signal.SIGINT)        # the host stops cleanly on SIGINT too
    assert host.proc.wait(30) == 0
    assert wal.read_checkpoint(host.ckpt, model.content_hash()).meta["cli"].last_seq == 2 * n
