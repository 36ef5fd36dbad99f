"""The wire protocol: committed generated code, payload encodings and their validation."""
import numpy as np
import pytest

from liquidedge.bridge import codegen
from liquidedge.bridge import protocol as proto
from liquidedge.errors import BridgeError


def test_committed_generated_code_matches_the_proto(tmp_path):
    pytest.importorskip("grpc_tools")
    fresh = codegen.generate(tmp_path).read_text()
    assert fresh == codegen.GENERATED.read_text(), \
        "bridge_pb2.py is stale: run `python -m liquidedge.bridge.codegen`"


def test_messages_round_trip_on_the_installed_protobuf_runtime():
    msg = proto.make_embedding("dev-1", 7, np.arange(4, dtype=np.float32), event_time_ns=-3)
    back = proto.Embedding.FromString(msg.SerializeToString())
    assert back == msg and back.dtype == proto.FLOAT32
    res = proto.Result(stream_id="dev-1", seq=7, status=proto.APPLIED, prediction=[0.5, -1.0])
    assert proto.Result.FromString(res.SerializeToString()).prediction == [0.5, -1.0]


def test_int8_quantisation_is_symmetric_and_bounded():
    v = np.array([-2.0, -0.5, 0.0, 0.25, 1.0], np.float32)
    msg = proto.make_embedding("d", 1, v, wire="int8")
    back = proto.decode_vector(msg, 5)
    assert np.max(np.abs(back - v)) <= msg.scale / 2 + 1e-7
    assert np.frombuffer(msg.qvector, np.int8).min() == -127
    zero = proto.make_embedding("d", 1, np.zeros(3), wire="int8")
    np.testing.assert_array_equal(proto.decode_vector(zero, 3), np.zeros(3))


def test_decode_vector_names_the_problem():
    msg = proto.make_embedding("d", 1, np.ones(4))
    with pytest.raises(BridgeError, match="4 values, the model's embedding has 5"):
        proto.decode_vector(msg, 5)
    q = proto.make_embedding("d", 1, np.ones(4), wire="int8")
    q.vector.append(1.0)
    with pytest.raises(BridgeError, match="vector \\(float\\) is set"):
        proto.decode_vector(q, 4)
    with pytest.raises(BridgeError, match="wire format"):
        proto.make_embedding("d", 1, np.ones(4), wire="float16")


def test_unparsable_bytes_become_a_malformed_note():
    out = proto.parse_embedding(b"\x0a\xff\xff\xff\xff\xff")   # a length beyond the message
    assert isinstance(out, proto.Malformed) and "not a valid Embedding" in out.reason
    assert isinstance(proto.parse_embedding(proto.make_embedding("d", 1, [1.0]).SerializeToString()),
                      proto.Embedding)


def test_size_limit_leaves_room_for_a_full_vector_only():
    dim = 256
    full = proto.make_embedding("x" * proto.MAX_STREAM_ID, 2**40, np.full(dim, 1e30), event_time_ns=-2**62)
    assert len(full.SerializeToString()) < proto.max_message_bytes(dim)
    assert len(proto.make_embedding("x", 1, np.ones(3 * dim)).SerializeToString()) > proto.max_message_bytes(dim)
