"""The host service in-process: order, duplicates, gaps, rejections, batching, int8 wire."""
import threading

import numpy as np
import pytest

from liquidedge import reference as ref
from liquidedge.bridge import protocol as proto
from liquidedge.bridge.protocol import APPLIED, DUPLICATE, REJECTED, make_embedding
from liquidedge.bridge.service import HostService
from liquidedge.bridge.transport import LocalTransport
from liquidedge.ir import random_model

DIM = 32


@pytest.fixture(scope="module")
def model():
    m = random_model(seed=31)
    m.memory.threshold = 2.0  # about a third of these random embeddings are stored
    return m


def vectors(n, seed=0):
    return np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)


def reference_states(model, vecs):
    """Reference state and per-step prediction for one stream fed ``vecs`` in order."""
    state = ref.init_memory_state(model.memory, 1)
    preds = []
    for v in vecs:
        e = np.asarray(v, np.float64)[None]
        r = ref.memory_step(model.memory, state, e)
        state = r.state
        preds.append(ref.decoder_forward(model.decoder, e, r.retrieved)[0])
    return state, np.asarray(preds)


def close_states(a, b, atol=1e-4):
    return all(np.allclose(x, y, atol=atol, rtol=0) for x, y in zip(a.weights + a.momentum, b.weights + b.momentum))


def test_in_order_stream_matches_reference(model):
    host = HostService(model, "onnxruntime")
    vecs = vectors(40)
    out = LocalTransport(host).exchange([make_embedding("dev", i + 1, v) for i, v in enumerate(vecs)])
    want_state, want_pred = reference_states(model, vecs)
    assert [r.status for r in out] == [APPLIED] * 40
    np.testing.assert_allclose([list(r.prediction) for r in out], want_pred, atol=1e-4)
    assert close_states(host.stream_state("dev"), want_state)
    updates = sum(r.updated for r in out)
    assert 0 < updates < 40 and out[-1].memory_version == updates


@pytest.mark.parametrize("mutate,reason", [
    (lambda m: m.vector.pop(), "vector has 31 values"),
    (lambda m: m.vector.__setitem__(5, float("nan")), "non-finite value at index 5"),
    (lambda m: m.vector.__setitem__(0, float("inf")), "non-finite value at index 0"),
    (lambda m: setattr(m, "stream_id", ""), "stream_id is empty"),
    (lambda m: setattr(m, "stream_id", "x" * 200), "at most 128"),
    (lambda m: setattr(m, "stream_id", "a\nb"), "non-printable"),
    (lambda m: setattr(m, "seq", 0), "seq must be >= 1"),
    (lambda m: setattr(m, "dtype", proto.pb.DTYPE_UNSPECIFIED), "is not FLOAT32 or INT8"),
    (lambda m: setattr(m, "qvector", b"\x01" * 32), "qvector is set"),
])
def test_invalid_embeddings_are_rejected_with_the_reason(model, mutate, reason):
    host = HostService(model, "onnxruntime")
    msg = make_embedding("dev", 1, vectors(1)[0])
    mutate(msg)
    (res,) = host.submit([msg])
    assert res.status == REJECTED and reason in res.detail
    assert host.stats.rejected == 1 and host.stats.applied == 0
    # the stream is unharmed: a valid message with the same seq is then applied
    (ok,) = host.submit([make_embedding("dev", 1, vectors(1)[0])])
    assert ok.status == APPLIED


@pytest.mark.parametrize("scale,reason", [(0.0, "scale must be finite and > 0"),
                                          (float("nan"), "scale must be finite"),
                                          (-1.0, "> 0")])
def test_int8_with_bad_scale_is_rejected(model, scale, reason):
    msg = make_embedding("dev", 1, vectors(1)[0], wire="int8")
    msg.scale = scale
    (res,) = HostService(model, "onnxruntime").submit([msg])
    assert res.status == REJECTED and reason in res.detail


def test_int8_wire_applies_the_dequantised_vector(model):
    host = HostService(model, "onnxruntime")
    vecs = vectors(10, seed=3)
    msgs = [make_embedding("q", i + 1, v, wire="int8") for i, v in enumerate(vecs)]
    assert all(len(m.SerializeToString()) < 80 for m in msgs)  # ~4x smaller than float32
    host.submit(msgs)
    deq = [np.frombuffer(m.qvector, np.int8).astype(np.float32) * np.float32(m.scale) for m in msgs]
    assert np.max(np.abs(np.asarray(deq) - vecs)) <= np.max(np.abs(vecs)) / 127
    want, _ = reference_states(model, deq)
    assert close_states(host.stream_state("q"), want)


def test_duplicates_are_answered_but_never_applied_twice(model):
    host = HostService(model, "onnxruntime", result_cache=2)
    vecs = vectors(5, seed=4)
    first = host.submit([make_embedding("dev", i + 1, v) for i, v in enumerate(vecs)])
    before, meta = host.stream_state("dev"), host.stream_meta("dev")
    (recent,) = host.submit([make_embedding("dev", 5, vecs[4])])
    assert recent.status == DUPLICATE and list(recent.prediction) == list(first[4].prediction)
    (old,) = host.submit([make_embedding("dev", 1, vecs[0])])
    assert old.status == DUPLICATE and not old.updated and "without learning" in old.detail
    # the cold duplicate is answered by the current memory, read-only
    g = model.memory
    p = ref.memory_inputs(g, vecs[:1].astype(np.float64))
    retrieved = ref.memory_apply(g, [w.astype(np.float64) for w in before.weights], p["q"])
    want = ref.decoder_forward(model.decoder, vecs[:1].astype(np.float64), retrieved)[0]
    np.testing.assert_allclose(old.prediction, want, atol=1e-4)
    after = host.stream_state("dev")
    assert close_states(after, before, atol=0) and host.stream_meta("dev") == meta
    assert host.stats.duplicates == 2 and host.stats.applied == 5


def test_gap_is_reported_and_the_memory_moves_on(model):
    host = HostService(model, "onnxruntime")
    vecs = vectors(3, seed=5)
    out = host.submit([make_embedding("dev", s, v) for s, v in zip((1, 2, 6), vecs)])
    assert [r.gap for r in out] == [0, 0, 3] and "3 windows missing" in out[2].detail
    assert out[2].status == APPLIED and host.stats.gaps == 1 and host.stats.missing == 3
    (late,) = host.submit([make_embedding("dev", 4, vecs[0])])  # a window from inside the gap
    assert late.status == DUPLICATE  # arrived after seq 6: never applied out of order


def test_several_streams_in_one_call_are_stepped_together_in_order(model):
    host = HostService(model, "onnxruntime")
    vecs = vectors(7, seed=6)
    order = [("a", 1), ("b", 1), ("a", 2), ("c", 1), ("a", 3), ("b", 2), ("c", 2)]
    out = host.submit([make_embedding(s, q, v) for (s, q), v in zip(order, vecs)])
    assert [(r.stream_id, r.seq) for r in out] == order
    assert host.stats.max_batch == 3 and host.stats.batches == 3
    for sid in "abc":
        mine = [v for (s, _), v in zip(order, vecs) if s == sid]
        want, _ = reference_states(model, mine)
        assert close_states(host.stream_state(sid), want)


def test_concurrent_streams_each_match_their_reference(model):
    host = HostService(model, "onnxruntime")
    data = {f"dev{i}": vectors(30, seed=100 + i) for i in range(6)}
    errors = []

    def drive(sid):
        try:
            for i, v in enumerate(data[sid]):
                (r,) = host.submit([make_embedding(sid, i + 1, v)])
                assert r.status == APPLIED and r.seq == i + 1
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=drive, args=(s,)) for s in data]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    assert host.stats.applied == 180
    for sid, vecs in data.items():
        want, _ = reference_states(model, vecs)
        assert close_states(host.stream_state(sid), want)


def test_info_reports_where_a_stream_stands(model):
    host = HostService(model, "numpy")
    host.submit([make_embedding("dev", i + 1, v) for i, v in enumerate(vectors(4))])
    info = LocalTransport(host).info(stream_id="dev")
    assert info.last_seq == 4 and info.embedding_dim == DIM and info.runner == "numpy"
    assert info.model_hash == model.content_hash() and list(info.outputs) == list(model.decoder.outputs)
    assert LocalTransport(host).info(stream_id="nobody").last_seq == 0


def test_closed_service_refuses_work(model):
    host = HostService(model, "numpy")
    host.close()
    with pytest.raises(proto.BridgeError, match="shut down"):
        host.submit([make_embedding("dev", 1, vectors(1)[0])])
