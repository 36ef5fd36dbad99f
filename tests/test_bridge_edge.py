"""The edge loop and its client, in-process: windows, feedback, degraded mode, bypass, buffering."""
import logging
import socket
import subprocess
import sys

import numpy as np
import pytest

from liquidedge import reference as ref
from liquidedge.bridge.client import BridgeClient
from liquidedge.bridge.edge import EdgeLoop
from liquidedge.bridge.protocol import make_embedding
from liquidedge.bridge.service import HostService
from liquidedge.bridge.transport import GrpcTransport, LocalTransport
from liquidedge.data import DataSpec, build_dataset, generate_market
from liquidedge.errors import ConfigError, DeployError
from liquidedge.ir import random_model
from liquidedge.targets.numpy_ref import ReferenceRunner

SPEC = DataSpec(bar_threshold=40, span="20min", steps=16, every=2, min_bars=4)


@pytest.fixture(scope="module")
def events():
    return generate_market(6000, seed=3).events


@pytest.fixture()
def model():
    m = random_model(seed=41)
    m.memory.threshold = 1.0
    m.data_spec = SPEC.to_dict()
    return m


def chunks(events, size=500):
    return [events.slice(i, i + size) for i in range(0, len(events), size)]


def runner_for(model, dtype=np.float32):
    return ReferenceRunner(model.perception, SPEC.steps, model.content_hash(), dtype=dtype)


def test_edge_windows_feedback_and_host_memory_match_the_reference(model, events):
    host = HostService(model, "onnxruntime")
    loop = EdgeLoop(runner_for(model), model, BridgeClient(LocalTransport(host)), stream_id="es")
    results = loop.run(chunks(events))
    data = build_dataset(events, SPEC)           # the batch pipeline cuts the same windows
    assert len(results) > 30
    assert [r.end_ns for r in results] == data.end_ns.tolist()
    assert [r.seq for r in results] == list(range(1, len(results) + 1))
    assert all(r.source == "host" for r in results)
    # replay the whole hybrid in float64: window i is fed window i-1's prediction
    prev = np.zeros((1, model.decoder.n_outputs))
    state = ref.init_memory_state(model.memory, 1)
    for i, r in enumerate(results):
        x, dt, m = ref.model_inputs(model, data.x[i:i + 1], data.dt_s[i:i + 1], data.mask[i:i + 1], prev)
        emb = ref.perception_forward(model.perception, x, dt, m)
        np.testing.assert_allclose(r.embedding, emb[0], atol=1e-4)
        step = ref.memory_step(model.memory, state, r.embedding[None].astype(np.float64))
        state = step.state
        want = ref.decoder_forward(model.decoder, r.embedding[None].astype(np.float64), step.retrieved)
        np.testing.assert_allclose(r.prediction, want[0], atol=1e-4)
        assert r.updated == bool(step.updated[0])
        prev = r.prediction[None]
    got = host.stream_state("es")
    for a, b in zip(got.weights + got.momentum, state.weights + state.momentum):
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_without_a_host_the_edge_runs_its_local_decoder_flagged_degraded(model, events):
    loop = EdgeLoop(runner_for(model), model, None)
    results = loop.run(chunks(events)[:4])
    assert results and all(r.degraded for r in results)
    for r in results:
        want = ref.decoder_forward(model.decoder, r.embedding[None].astype(np.float64),
                                   np.zeros((1, model.memory.dim)))
        np.testing.assert_allclose(r.prediction, want[0], atol=1e-6)


def test_bypass_request_makes_the_edge_send_rich_input_at_full_cadence(model, events):
    plain = EdgeLoop(runner_for(model), model, BridgeClient(LocalTransport(HostService(model, "onnxruntime"))),
                     wire="int8").run(chunks(events))
    model.memory.bypass_threshold = 0.0      # every answer asks for richer input
    host = HostService(model, "onnxruntime")
    rich_runner = runner_for(model, np.float64)
    loop = EdgeLoop(runner_for(model), model, BridgeClient(LocalTransport(host)), wire="int8",
                    rich_runner=rich_runner, bypass_windows=1000)
    results = loop.run(chunks(events))
    assert results[0].bypass_requested and not results[0].rich
    assert all(r.rich for r in results[1:])
    every_bar = build_dataset(events, DataSpec(**{**SPEC.to_dict(), "every": 1}))
    assert len(plain) == len(build_dataset(events, SPEC))
    assert len(results) == len(every_bar) > 1.8 * len(plain)   # a window at every bar
    assert [r.end_ns for r in results] == every_bar.end_ns.tolist()
    # rich windows are the rich runner's fp64 embeddings, sent un-quantised
    r = results[5]
    x, dt, m = ref.model_inputs(model, every_bar.x[5:6], every_bar.dt_s[5:6], every_bar.mask[5:6],
                                results[4].prediction[None])
    np.testing.assert_array_equal(r.embedding, rich_runner.encode(x, dt, m)[0])
    state = ref.init_memory_state(model.memory, 1)
    for res in results:
        vec = res.embedding if res.rich else _int8_round_trip(res.embedding)
        state = ref.memory_step(model.memory, state, vec[None].astype(np.float64)).state
    got = host.stream_state("edge-0")
    np.testing.assert_allclose(got.weights[0], state.weights[0], atol=1e-4)


def _int8_round_trip(v):
    msg = make_embedding("x", 1, v, wire="int8")
    return np.frombuffer(msg.qvector, np.int8).astype(np.float32) * np.float32(msg.scale)


def _dead_address():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"   # closed again: nothing listens there


def test_unreachable_host_buffers_with_a_bound_and_backs_off(model, caplog):
    now = [0.0]
    client = BridgeClient(GrpcTransport(_dead_address()), timeout_s=0.5, buffer_limit=3,
                          backoff_initial_s=1.0, backoff_max_s=4.0, clock=lambda: now[0], seed=0)
    vec = np.zeros(model.memory.embedding_dim, np.float32)
    with caplog.at_level(logging.WARNING, logger="liquidedge.bridge.client"):
        out = client.send(make_embedding("dev", 1, vec))
        assert out.result is None and out.degraded and client.stats.failures == 1
        for seq in range(2, 6):                 # within the backoff: no attempt, just buffered
            out = client.send(make_embedding("dev", seq, vec))
            assert out.result is None
    assert client.stats.skipped_attempts == 4 and client.stats.failures == 1
    assert [m.seq for m in client.pending] == [3, 4, 5]          # oldest dropped first
    assert client.stats.dropped == 2
    assert sum("dropped the oldest" in rec.message for rec in caplog.records) == 2
    assert any("running degraded" in rec.message for rec in caplog.records)
    now[0] = 10.0
    client.send(make_embedding("dev", 6, vec))
    assert client.stats.failures == 2         # retried after the backoff, failed again


def test_edge_refuses_a_runner_of_another_shape(model):
    other = random_model(n_features=3, seed=1)
    with pytest.raises(ConfigError, match="inputs"):
        EdgeLoop(ReferenceRunner(other.perception, 16), model, None)
    loop = EdgeLoop(ReferenceRunner(model.perception, 32), model, None)
    with pytest.raises(ConfigError, match="16 steps"):
        loop.push_events(np.array([1, 2], np.int64) * 10**9, np.array([1.0, 1.0]), np.array([1.0, 1.0]))


def test_edge_path_needs_neither_torch_nor_pandas():
    code = (
        "import sys, numpy as np\n"
        "from liquidedge.ir import random_model\n"
        "from liquidedge.data import DataSpec, generate_market\n"
        "from liquidedge.bridge.edge import EdgeLoop\n"
        "from liquidedge.bridge.client import BridgeClient\n"
        "from liquidedge.bridge.transport import GrpcTransport\n"
        "from liquidedge.targets.numpy_ref import ReferenceRunner\n"
        "m = random_model(); m.data_spec = DataSpec(bar_threshold=40, span='20min', steps=16, min_bars=4).to_dict()\n"
        "ev = generate_market(3000, seed=1).events\n"
        "loop = EdgeLoop(ReferenceRunner(m.perception, 16), m, None)\n"
        "assert loop.run([ev])\n"
        "BridgeClient(GrpcTransport('127.0.0.1:1'))\n"
        "print(sorted(k for k in ('torch', 'pandas', 'pyarrow', 'onnx') if k in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_text_events_parse_in_order_and_name_the_bad_line(tmp_path):
    import io

    from liquidedge.bridge.edge_setup import text_event_chunks
    from liquidedge.errors import DataValidationError

    text = "time_ns,price,size\n1000,10.5,2\n2000,10.25\n\n3000,10.75,1\n"
    chunks = list(text_event_chunks(io.StringIO(text), chunk_rows=2))
    t = np.concatenate([c[0] for c in chunks])
    np.testing.assert_array_equal(t, [1000, 2000, 3000])
    np.testing.assert_array_equal(np.concatenate([c[2] for c in chunks]), [2.0, 1.0, 1.0])
    path = tmp_path / "feed.csv"
    path.write_text(text + "4000,abc,1\n")
    with open(path) as fh, pytest.raises(DataValidationError, match="row 6.*unparsable"):
        list(text_event_chunks(fh))


def test_open_edge_finds_the_model_and_refuses_a_foreign_artefact(tmp_path, model, events):
    from liquidedge.bridge.edge_setup import open_edge
    from liquidedge.errors import ModelFileError
    from liquidedge.exporters.onnx import export_onnx
    from liquidedge.ir import save_model

    model_dir = save_model(model, tmp_path / "model")
    runner, loaded = open_edge(model_dir)                  # a model dir: the numpy reference
    assert runner.manifest.steps == SPEC.steps and loaded.content_hash() == model.content_hash()
    art = export_onnx(model.perception, model_dir / "perception.onnx", SPEC.steps, model.content_hash())
    runner, loaded = open_edge(art)                         # an artefact: its runner, model found beside it
    assert runner.manifest.target == "onnxruntime" and loaded.content_hash() == model.content_hash()
    host = HostService(model, "onnxruntime")
    results = EdgeLoop(runner, loaded, BridgeClient(LocalTransport(host))).run(chunks(events)[:4])
    ref_results = EdgeLoop(runner_for(model), model, None).run(chunks(events)[:4])
    assert results and len(results) == len(ref_results)
    np.testing.assert_allclose([r.embedding for r in results[:1]], [ref_results[0].embedding], atol=1e-4)
    other = random_model(seed=42)
    foreign = export_onnx(other.perception, model_dir / "other.onnx", SPEC.steps, other.content_hash())
    with pytest.raises(ModelFileError, match="exported from model"):
        open_edge(foreign)
    with pytest.raises(ModelFileError, match="not found"):
        open_edge(tmp_path / "nothing")
    from liquidedge.deploy.bundle import build_bundle   # a deployment bundle: hash-checked first
    bundle = build_bundle(model_dir, "rpi5", tmp_path / "bundle", runtime="numpy").path
    runner, loaded = open_edge(bundle)
    assert runner.manifest.steps == SPEC.steps and loaded.content_hash() == model.content_hash()
    (bundle / "model" / "model.json").write_text("{}")
    with pytest.raises(DeployError, match="sha256 mismatch"):
        open_edge(bundle)
