"""The wire protocol: message types, method names, payload encoding and validation.

Shared by the host and the edge; imports numpy and the protobuf runtime only. The generated
``bridge_pb2`` holds the messages; the two service methods are named here and wired by hand
(``server.py``/``transport.py``) so that a message the host cannot parse is answered with a clear
INVALID_ARGUMENT instead of grpc's generic deserialisation failure.
"""
from __future__ import annotations

import math

import numpy as np

from liquidedge.bridge import bridge_pb2 as pb
from liquidedge.errors import BridgeError

SERVICE = "liquidedge.bridge.v1.Bridge"
EXCHANGE = f"/{SERVICE}/Exchange"
INFO = f"/{SERVICE}/Info"
AUTH_HEADER = "authorization"
MAX_STREAM_ID = 128

Embedding = pb.Embedding
Result = pb.Result
HostInfo = pb.HostInfo
InfoRequest = pb.InfoRequest
FLOAT32, INT8 = pb.FLOAT32, pb.INT8
APPLIED, DUPLICATE, REJECTED = pb.APPLIED, pb.DUPLICATE, pb.REJECTED


class HostUnavailableError(BridgeError):
    """The host did not answer in time or the connection broke: the edge goes degraded."""

    def __init__(self, message: str, results: list | None = None):
        super().__init__(message)
        self.results = list(results or [])  # answers received before the failure


class BridgeAuthError(BridgeError):
    """The host refused our credentials: a configuration error, not an outage."""


def max_message_bytes(embedding_dim: int) -> int:
    """Largest message the host accepts: a float32 vector of this width plus generous headers."""
    return 1024 + 8 * int(embedding_dim)


def quantise_int8(vector: np.ndarray) -> tuple[bytes, float]:
    """Symmetric per-vector int8: q = round(v / scale), scale = max|v| / 127 (> 0)."""
    v = np.asarray(vector, np.float32)
    peak = float(np.max(np.abs(v))) if v.size else 0.0
    scale = peak / 127.0 if peak > 0 else 1.0
    q = np.clip(np.rint(v / scale), -127, 127).astype(np.int8)
    return q.tobytes(), scale


def make_embedding(stream_id: str, seq: int, vector, event_time_ns: int = 0,
                   wire: str = "float32", rich: bool = False) -> pb.Embedding:
    """Build an Embedding message with the vector as float32 or int8 + scale on the wire."""
    vec = np.asarray(vector, np.float32).ravel()
    msg = pb.Embedding(stream_id=stream_id, seq=int(seq), event_time_ns=int(event_time_ns), rich=rich)
    if wire == "float32":
        msg.dtype = pb.FLOAT32
        msg.vector.extend(vec.tolist())
    elif wire == "int8":
        msg.dtype = pb.INT8
        msg.qvector, msg.scale = quantise_int8(vec)
    else:
        raise BridgeError(f"wire format {wire!r}: expected float32 or int8")
    return msg


def _check_stream_id(sid: str) -> None:
    if not sid:
        raise BridgeError("stream_id is empty")
    if len(sid) > MAX_STREAM_ID:
        raise BridgeError(f"stream_id is {len(sid)} characters long (at most {MAX_STREAM_ID})")
    if not sid.isprintable():
        raise BridgeError("stream_id contains non-printable characters")


def decode_vector(msg: pb.Embedding, dim: int) -> np.ndarray:
    """The embedding as float32 [dim], or BridgeError saying exactly what is wrong."""
    _check_stream_id(msg.stream_id)
    if msg.seq < 1:
        raise BridgeError("seq must be >= 1 (sequence numbers start at 1 for each stream)")
    if msg.dtype == pb.FLOAT32:
        if msg.qvector:
            raise BridgeError("dtype FLOAT32 but qvector is set")
        if len(msg.vector) != dim:
            raise BridgeError(f"vector has {len(msg.vector)} values, the model's embedding has {dim}")
        vec = np.array(msg.vector, np.float32)
    elif msg.dtype == pb.INT8:
        if len(msg.vector):
            raise BridgeError("dtype INT8 but vector (float) is set")
        if len(msg.qvector) != dim:
            raise BridgeError(f"qvector has {len(msg.qvector)} values, the model's embedding has {dim}")
        if not (math.isfinite(msg.scale) and msg.scale > 0):
            raise BridgeError(f"INT8 scale must be finite and > 0, got {msg.scale}")
        vec = np.frombuffer(msg.qvector, np.int8).astype(np.float32) * np.float32(msg.scale)
    else:
        raise BridgeError(f"dtype {msg.dtype} is not FLOAT32 or INT8")
    bad = ~np.isfinite(vec)
    if bad.any():
        raise BridgeError(f"vector has a non-finite value at index {int(np.argmax(bad))}")
    return vec


def parse_embedding(data: bytes):
    """Deserialiser for the server: a message, or a ``Malformed`` note (never an exception)."""
    try:
        return pb.Embedding.FromString(data)
    except Exception as exc:  # protobuf's DecodeError and friends
        return Malformed(f"not a valid Embedding message ({type(exc).__name__}: {exc})")


def parse_info_request(data: bytes):
    try:
        return pb.InfoRequest.FromString(data)
    except Exception as exc:
        return Malformed(f"not a valid InfoRequest ({type(exc).__name__})")


class Malformed:
    """Stands in for a request that could not be parsed, so the handler can say why."""

    def __init__(self, reason: str):
        self.reason = reason


def bearer(token: str) -> tuple[tuple[str, str]]:
    return ((AUTH_HEADER, f"Bearer {token}"),)
