"""Checkpoints and the write-ahead log: a restarted host reaches exactly the state it had."""
import numpy as np
import pytest

from liquidedge import reference as ref
from liquidedge.bridge import persistence as wal
from liquidedge.bridge.protocol import APPLIED, DUPLICATE, make_embedding
from liquidedge.bridge.service import HostService
from liquidedge.errors import ConfigError, ModelFileError
from liquidedge.ir import random_model

DIM = 32


@pytest.fixture(scope="module")
def model():
    m = random_model(seed=21)
    m.memory.threshold = 0.5
    return m


def embeddings(n, seed=0):
    return np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)


def feed(service, stream_id, vectors, first_seq=1):
    msgs = [make_embedding(stream_id, first_seq + i, v) for i, v in enumerate(vectors)]
    return [service.submit([m])[0] for m in msgs]


def assert_same_state(a: ref.MemoryState, b: ref.MemoryState, atol=0.0):
    for x, y in zip(a.weights + a.momentum, b.weights + b.momentum):
        if atol:
            np.testing.assert_allclose(x, y, atol=atol, rtol=0)
        else:
            np.testing.assert_array_equal(x, y)


def test_checkpoint_round_trip_and_refusals(tmp_path, model):
    state = ref.init_memory_state(model.memory, 2, np.float32)
    state.weights[0][1] += 0.5
    snap = wal.Snapshot(["a", "b"], state, {"a": wal.StreamMeta(3, 2), "b": wal.StreamMeta(7, 7)},
                        model.content_hash(), first_segment=4)
    path = wal.write_checkpoint(tmp_path, snap)
    back = wal.read_checkpoint(tmp_path, model.content_hash())
    assert back.stream_ids == ["a", "b"] and back.first_segment == 4
    assert back.meta["b"].last_seq == 7 and back.meta["a"].version == 2
    assert_same_state(back.state, state)
    assert not (tmp_path / (wal.CHECKPOINT + ".tmp")).exists()
    with pytest.raises(ModelFileError, match="belongs to model"):
        wal.read_checkpoint(tmp_path, random_model(seed=1).content_hash())
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x40  # flip a bit inside the last tensor's bytes
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="checksum"):
        wal.read_checkpoint(tmp_path, model.content_hash())
    path.write_bytes(b"\x00\x01garbage")
    with pytest.raises(ModelFileError, match="unreadable"):
        wal.read_checkpoint(tmp_path, model.content_hash())


def test_log_frames_round_trip_and_torn_tail_is_cut(tmp_path):
    log = wal.WriteAheadLog(tmp_path)
    batches = [[wal.Record("s", i, 10 * i, np.full(4, i, np.float32))] for i in range(1, 4)]
    batches.append([wal.Record("a", 9, 0, np.ones(4, np.float32), True),
                    wal.Record("b", 1, -5, np.zeros(4, np.float32))])
    for b in batches:
        log.append(b)
    log.close()
    seg = wal.segment_path(tmp_path, 1)
    full = seg.read_bytes()
    seg.write_bytes(full[:-7])  # a crash in the middle of writing the last frame
    got = list(wal.replay_batches(tmp_path))
    assert [[(r.stream_id, r.seq, r.event_time_ns, r.rich) for r in b] for b in got] == \
        [[("s", 1, 10, False)], [("s", 2, 20, False)], [("s", 3, 30, False)]]
    np.testing.assert_array_equal(got[2][0].vector, np.full(4, 3, np.float32))
    assert len(seg.read_bytes()) < len(full) - 7  # the torn frame was cut off the file


def test_corruption_inside_the_log_refuses_to_start(tmp_path):
    log = wal.WriteAheadLog(tmp_path)
    for i in range(1, 4):
        log.append([wal.Record("s", i, 0, np.full(4, i, np.float32))])
    log.close()
    seg = wal.segment_path(tmp_path, 1)
    data = bytearray(seg.read_bytes())
    data[20] ^= 0xFF  # inside the first frame's payload, with frames after it
    seg.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="checksum mismatch"):
        list(wal.replay_batches(tmp_path))
    with pytest.raises(ConfigError):
        wal.WriteAheadLog(tmp_path / "x", sync="sometimes")


def test_restart_from_checkpoint_plus_log_equals_uninterrupted(tmp_path, model):
    vec = embeddings(60, seed=1)
    plain = HostService(model, "onnxruntime")
    feed(plain, "dev", vec)
    want, want_meta = plain.stream_state("dev"), plain.stream_meta("dev")

    first = HostService(model, "onnxruntime", checkpoint_dir=tmp_path, checkpoint_every_s=3600)
    feed(first, "dev", vec[:25])
    first.checkpoint()                      # state after 25 in the checkpoint ...
    feed(first, "dev", vec[25:40], first_seq=26)  # ... 15 more only in the log
    # crash: no close(), no final checkpoint; the next host reads what is on disk
    second = HostService(model, "onnxruntime", checkpoint_dir=tmp_path, checkpoint_every_s=3600)
    assert second.stats.replayed == 15
    assert second.stream_meta("dev").last_seq == 40
    feed(second, "dev", vec[40:], first_seq=41)
    second.close()
    third = HostService(model, "onnxruntime", checkpoint_dir=tmp_path, checkpoint_every_s=3600)
    assert third.stats.replayed == 0        # close() checkpointed everything
    assert_same_state(third.stream_state("dev"), want)
    assert third.stream_meta("dev") == want_meta
    third.close()


def test_replay_applies_nothing_twice(tmp_path, model):
    vec = embeddings(30, seed=2)
    host = HostService(model, "onnxruntime", checkpoint_dir=tmp_path, checkpoint_every_s=3600)
    feed(host, "dev", vec[:20])
    # the edge re-sends windows 11..20 (it never saw their answers): duplicates, not re-applied
    again = feed(host, "dev", vec[10:20], first_seq=11)
    assert all(r.status == DUPLICATE for r in again)
    restarted = HostService(model, "onnxruntime", checkpoint_dir=tmp_path, checkpoint_every_s=3600)
    assert restarted.stats.replayed == 20
    out = feed(restarted, "dev", vec[15:30], first_seq=16)
    assert [r.status for r in out] == [DUPLICATE] * 5 + [APPLIED] * 10
    plain = HostService(model, "onnxruntime")
    feed(plain, "dev", vec)
    assert_same_state(restarted.stream_state("dev"), plain.stream_state("dev"))
    assert restarted.stream_meta("dev") == plain.stream_meta("dev")


def test_replayed_state_matches_reference_for_many_streams(tmp_path, model):
    vec = embeddings(40, seed=3).reshape(10, 4, DIM)
    host = HostService(model, "onnxruntime", checkpoint_dir=tmp_path, checkpoint_every_s=3600)
    for t in range(10):  # four streams arrive together: one batched step per wave
        res = host.submit([make_embedding(f"s{i}", t + 1, vec[t, i]) for i in range(4)])
        assert all(r.status == APPLIED for r in res)
        if t == 4:
            host.checkpoint()
    assert host.stats.max_batch == 4
    restarted = HostService(model, "onnxruntime", checkpoint_dir=tmp_path, checkpoint_every_s=3600)
    for i in range(4):
        state = ref.init_memory_state(model.memory, 1)
        for t in range(10):
            state = ref.memory_step(model.memory, state, vec[t, i:i + 1].astype(np.float64)).state
        assert_same_state(restarted.stream_state(f"s{i}"), state, atol=1e-4)
        assert_same_state(restarted.stream_state(f"s{i}"), host.stream_state(f"s{i}"))


def test_periodic_checkpoints_rotate_the_log(tmp_path, model):
    import time

    host = HostService(model, "onnxruntime", checkpoint_dir=tmp_path, checkpoint_every_s=0.05)
    feed(host, "dev", embeddings(5, seed=4))
    deadline = time.monotonic() + 10
    while host.stats.checkpoints < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert host.stats.checkpoints >= 2
    host.close()
    segments = wal.list_segments(tmp_path)
    assert len(segments) == 1  # older segments are deleted once a checkpoint covers them
    snap = wal.read_checkpoint(tmp_path, model.content_hash())
    assert snap.meta["dev"].last_seq == 5 and snap.first_segment == segments[0][0]


def test_checkpoint_of_another_model_refuses_to_start(tmp_path, model):
    host = HostService(model, "onnxruntime", checkpoint_dir=tmp_path)
    feed(host, "dev", embeddings(3))
    host.close()
    with pytest.raises(ModelFileError, match="belongs to model"):
        HostService(random_model(seed=99), "onnxruntime", checkpoint_dir=tmp_path)
