"""Durable host memory: atomic checkpoints plus a write-ahead log of accepted embeddings.

Why both: a checkpoint of every stream's weights is too large to write per step, and the memory
learns on every step, so losing the steps since the last checkpoint would lose learned updates.
The host therefore appends each batch of accepted embeddings to the log *before* stepping on
it, and a restarted host loads the checkpoint and replays the log batch by batch (the same
batches, so the same arithmetic) to the exact state it had. A record whose seq is not above the
checkpoint's last seq for its stream is skipped, so replay never applies anything twice.

* Checkpoint: one safetensors file (weights/momenta + JSON metadata + a sha256 of the tensors),
  written to a temporary file, fsynced, renamed over the old one, directory fsynced.
* Log: segments ``wal-<n>.log`` of frames ``magic | length | crc32 | payload``. A checkpoint
  rotates to a new segment first and deletes older ones after it is durable. A torn frame at the
  very end (crash mid-write: never acknowledged) is cut off with a warning; a bad frame anywhere
  else is corruption and refuses the start (ModelFileError), never silently skipped.
* ``sync``: "write" hands every frame to the OS before the answer is sent (survives the host
  process dying, e.g. ``kill -9``); "fsync" also forces it to disk (survives power loss; costs a
  disk flush per batch).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from liquidedge.errors import ConfigError, ModelFileError
from liquidedge.reference import MemoryState

log = logging.getLogger(__name__)

CHECKPOINT = "memory.ckpt.safetensors"
_MAGIC = b"LEW1"
_HEAD = struct.Struct("<4sII")            # magic, payload length, crc32
_REC = struct.Struct("<HQqBI")            # id length, seq, event_time_ns, rich, vector length
SYNC_MODES = ("write", "fsync")
FORMAT_VERSION = 1


@dataclass
class Record:
    """One accepted embedding, exactly as it was applied."""

    stream_id: str
    seq: int
    event_time_ns: int
    vector: np.ndarray  # float32 [E]
    rich: bool = False


@dataclass
class StreamMeta:
    """What the host knows about a stream besides its memory: order and version."""

    last_seq: int = 0
    version: int = 0      # updates applied so far


@dataclass
class Snapshot:
    """Everything a checkpoint holds."""

    stream_ids: list[str]
    state: MemoryState | None          # row i belongs to stream_ids[i]; None when no streams
    meta: dict[str, StreamMeta]
    model_hash: str
    first_segment: int = 1             # log segments from this number on follow the checkpoint
    extra: dict = field(default_factory=dict)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _tensor_digest(tensors: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name])
        h.update(name.encode())
        h.update(str(arr.dtype).encode())
        h.update(repr(arr.shape).encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def write_checkpoint(directory: str | os.PathLike, snap: Snapshot) -> Path:
    """Atomically replace ``directory/memory.ckpt.safetensors`` with ``snap``."""
    from safetensors.numpy import save_file

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, np.ndarray] = {}
    if snap.state is not None:
        for i, w in enumerate(snap.state.weights):
            tensors[f"weight_{i}"] = np.ascontiguousarray(w)
        for i, s in enumerate(snap.state.momentum):
            tensors[f"momentum_{i}"] = np.ascontiguousarray(s)
    meta = {
        "format_version": FORMAT_VERSION,
        "model_hash": snap.model_hash,
        "first_segment": snap.first_segment,
        "streams": snap.stream_ids,
        "last_seq": [snap.meta[s].last_seq for s in snap.stream_ids],
        "version": [snap.meta[s].version for s in snap.stream_ids],
        "extra": snap.extra,
        "tensor_sha256": _tensor_digest(tensors),
    }
    path = out / CHECKPOINT
    tmp = out / (CHECKPOINT + ".tmp")
    save_file(tensors, str(tmp), metadata={"liquidedge": json.dumps(meta)})
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(out)
    return path


def read_checkpoint(directory: str | os.PathLike, model_hash: str) -> Snapshot | None:
    """Load the checkpoint (None when there is none); refuse a corrupt one or another model's."""
    from safetensors import SafetensorError, safe_open

    path = Path(directory) / CHECKPOINT
    if not path.exists():
        return None
    try:
        with safe_open(str(path), framework="numpy") as fh:
            raw = (fh.metadata() or {}).get("liquidedge")
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFileError(f"{path}: unreadable checkpoint ({exc})") from None
    try:
        meta = json.loads(raw)
        streams = [str(s) for s in meta["streams"]]
        last_seq, versions = meta["last_seq"], meta["version"]
    except (TypeError, ValueError, KeyError) as exc:
        raise ModelFileError(f"{path}: checkpoint metadata missing or malformed ({exc})") from None
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(f"{path}: checkpoint format {meta.get('format_version')!r} not supported")
    if meta.get("tensor_sha256") != _tensor_digest(tensors):
        raise ModelFileError(f"{path}: checkpoint contents do not match their checksum (corrupt or edited)")
    if meta.get("model_hash") != model_hash:
        raise ModelFileError(f"{path}: checkpoint belongs to model {str(meta.get('model_hash'))[:12]}, "
                             f"not the served model {model_hash[:12]}; use another --checkpoint-dir")
    if not (len(streams) == len(last_seq) == len(versions)):
        raise ModelFileError(f"{path}: checkpoint stream lists differ in length")
    n_layers = sum(1 for k in tensors if k.startswith("weight_"))
    state = None
    if streams:
        try:
            state = MemoryState([tensors[f"weight_{i}"] for i in range(n_layers)],
                                [tensors[f"momentum_{i}"] for i in range(n_layers)])
        except KeyError as exc:
            raise ModelFileError(f"{path}: checkpoint lacks tensor {exc}") from None
        if any(t.shape[0] != len(streams) for t in state.weights + state.momentum):
            raise ModelFileError(f"{path}: checkpoint tensors do not have one row per stream")
    return Snapshot(streams, state, {s: StreamMeta(int(q), int(v)) for s, q, v in
                                     zip(streams, last_seq, versions)},
                    model_hash, int(meta.get("first_segment", 1)), dict(meta.get("extra", {})))


# ----------------------------------------------------------------------------- write-ahead log

def encode_batch(records: list[Record]) -> bytes:
    """One frame's payload: a count, then each record's header, id and float32 vector."""
    parts = [struct.pack("<I", len(records))]
    for r in records:
        sid = r.stream_id.encode()
        vec = np.ascontiguousarray(r.vector, dtype="<f4")
        parts.append(_REC.pack(len(sid), r.seq, r.event_time_ns, int(r.rich), vec.size))
        parts.append(sid)
        parts.append(vec.tobytes())
    return b"".join(parts)


def decode_batch(payload: bytes, where: str) -> list[Record]:
    try:
        (n,) = struct.unpack_from("<I", payload, 0)
        off = 4
        out = []
        for _ in range(n):
            id_len, seq, t_ns, rich, vlen = _REC.unpack_from(payload, off)
            off += _REC.size
            sid = payload[off:off + id_len].decode()
            off += id_len
            vec = np.frombuffer(payload, "<f4", vlen, off).astype(np.float32)
            off += 4 * vlen
            out.append(Record(sid, seq, t_ns, vec, bool(rich)))
    except (struct.error, ValueError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{where}: malformed log record ({exc})") from None
    if off != len(payload):
        raise ModelFileError(f"{where}: {len(payload) - off} unexplained bytes after the records")
    return out


def segment_path(directory: Path, number: int) -> Path:
    return directory / f"wal-{number:06d}.log"


def list_segments(directory: Path) -> list[tuple[int, Path]]:
    out = []
    for p in directory.glob("wal-*.log"):
        try:
            out.append((int(p.stem.split("-")[1]), p))
        except (IndexError, ValueError):
            raise ModelFileError(f"{p}: unexpected file name in the checkpoint directory") from None
    return sorted(out)


def read_segment(path: Path, is_last: bool) -> Iterator[list[Record]]:
    """Yield the batches of one segment; cut a torn tail of the last one, refuse corruption."""
    data = path.read_bytes()
    off = 0
    while off < len(data):
        torn = None
        if len(data) - off < _HEAD.size:
            torn = "a truncated frame header"
        else:
            magic, length, crc = _HEAD.unpack_from(data, off)
            end = off + _HEAD.size + length
            if magic != _MAGIC:
                raise ModelFileError(f"{path}: bad frame marker at byte {off}; the log is corrupt "
                                     f"(move it aside to start from the checkpoint alone)")
            if end > len(data):
                torn = "a truncated frame"
            else:
                payload = data[off + _HEAD.size:end]
                if zlib.crc32(payload) != crc:
                    if end == len(data) and is_last:
                        torn = "a final frame with a bad checksum"
                    else:
                        raise ModelFileError(f"{path}: checksum mismatch in the frame at byte {off}; "
                                             f"the log is corrupt")
        if torn is not None:
            if not is_last:
                raise ModelFileError(f"{path}: {torn} at byte {off} in a sealed segment; the log is corrupt")
            log.warning("%s: dropping %s at byte %d (written during a crash, never acknowledged)",
                        path, torn, off)
            with open(path, "rb+") as fh:
                fh.truncate(off)
                os.fsync(fh.fileno())
            return
        yield decode_batch(payload, f"{path}@{off}")
        off = end


class WriteAheadLog:
    """Appends batches of accepted records to the current segment; rotates on checkpoints."""

    def __init__(self, directory: str | os.PathLike, sync: str = "write"):
        if sync not in SYNC_MODES:
            raise ConfigError(f"wal sync {sync!r}: expected one of {SYNC_MODES}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.sync = sync
        segments = list_segments(self.directory)
        self.segment = segments[-1][0] if segments else 1
        self._fh = open(segment_path(self.directory, self.segment), "ab")
        _fsync_dir(self.directory)

    def append(self, records: list[Record]) -> None:
        if not records:
            return
        payload = encode_batch(records)
        self._fh.write(_HEAD.pack(_MAGIC, len(payload), zlib.crc32(payload)) + payload)
        self._fh.flush()
        if self.sync == "fsync":
            os.fsync(self._fh.fileno())

    def rotate(self) -> int:
        """Seal the current segment and start the next; return the new segment's number."""
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        self.segment += 1
        self._fh = open(segment_path(self.directory, self.segment), "ab")
        _fsync_dir(self.directory)
        return self.segment

    def drop_before(self, number: int) -> None:
        """Delete segments older than ``number`` (their records are in a durable checkpoint)."""
        for n, p in list_segments(self.directory):
            if n < number:
                p.unlink()
        _fsync_dir(self.directory)

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()


def replay_batches(directory: str | os.PathLike, first_segment: int = 1) -> Iterator[list[Record]]:
    """Every logged batch from ``first_segment`` on, in the order it was applied."""
    segments = [(n, p) for n, p in list_segments(Path(directory)) if n >= first_segment]
    for i, (_, path) in enumerate(segments):
        yield from read_segment(path, is_last=i == len(segments) - 1)
