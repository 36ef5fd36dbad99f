"""The host side of the bridge, independent of transport: order, dedup, batching, durability.

``HostService.submit(embeddings) -> results`` is what both the gRPC server and the in-process
transport call. Per stream it enforces the sequence: a seq above the last applied one is
applied (a jump is reported as a gap), anything else is a duplicate, answered but never applied
again. Concurrent callers are batched by *flat combining*: whoever holds the step lock drains
every waiting request, so embeddings from several streams that arrive together are stepped in
one runner call, and a lone stream pays no thread hand-off. Accepted embeddings are written to
the write-ahead log before the memory steps on them (see ``persistence``).
"""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from liquidedge.bridge import persistence as wal
from liquidedge.bridge.protocol import (APPLIED, DUPLICATE, MAX_STREAM_ID, REJECTED, HostInfo,
                                        Result, decode_vector)
from liquidedge.errors import BridgeError, ConfigError
from liquidedge.ir import LiquidTitanModel
from liquidedge.targets.host import HostRunner, StreamMemory, load_host_runner

log = logging.getLogger(__name__)


@dataclass
class HostStats:
    applied: int = 0
    updates: int = 0
    duplicates: int = 0
    rejected: int = 0
    gaps: int = 0
    missing: int = 0          # windows skipped over by gaps
    batches: int = 0
    max_batch: int = 0
    replayed: int = 0
    checkpoints: int = 0


@dataclass
class _Ticket:
    messages: Sequence
    results: list = field(default_factory=list)
    done: bool = False
    error: BaseException | None = None


@dataclass
class _Item:
    ticket: _Ticket
    index: int
    msg: object
    vector: np.ndarray | None = None


class HostService:
    """Steps each stream's memory on its embeddings, in order, exactly once, durably.

    ``checkpoint_dir=None`` keeps everything in memory (tests, demos). ``checkpoint_every_s``:
    how often the background thread checkpoints (plus on ``close``).
    """

    def __init__(self, model: LiquidTitanModel, runner: HostRunner | str = "auto", *,
                 checkpoint_dir: str | Path | None = None, checkpoint_every_s: float = 60.0,
                 wal_sync: str = "write", result_cache: int = 64):
        self.model = model
        self.runner = load_host_runner(model, runner) if isinstance(runner, str) else runner
        self.memory = StreamMemory(self.runner)
        self.meta: dict[str, wal.StreamMeta] = {}
        self.stats = HostStats()
        self.model_hash = model.content_hash()
        self.dim = model.memory.embedding_dim
        self._cache: dict[str, OrderedDict[int, Result]] = {}
        self._cache_size = int(result_cache)
        self._pending: deque[_Ticket] = deque()
        self._pending_lock = threading.Lock()
        self._step_lock = threading.Lock()
        self._closed = False
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self._wal: wal.WriteAheadLog | None = None
        self._stop = threading.Event()
        self._timer: threading.Thread | None = None
        if self.checkpoint_dir is not None:
            if not checkpoint_every_s > 0:
                raise ConfigError(f"checkpoint interval must be > 0 seconds, got {checkpoint_every_s}")
            self._recover()
            self._wal = wal.WriteAheadLog(self.checkpoint_dir, wal_sync)
            self._timer = threading.Thread(target=self._checkpoint_loop, args=(float(checkpoint_every_s),),
                                           name="liquidedge-checkpoint", daemon=True)
            self._timer.start()

    # ------------------------------------------------------------------ durability

    def _recover(self) -> None:
        snap = wal.read_checkpoint(self.checkpoint_dir, self.model_hash)
        first = 1
        if snap is not None:
            if snap.state is not None:
                self.memory.restore(snap.stream_ids, snap.state)
            self.meta = dict(snap.meta)
            first = snap.first_segment
            log.info("restored %d streams from %s", len(snap.stream_ids), self.checkpoint_dir)
        for batch in wal.replay_batches(self.checkpoint_dir, first):
            todo = [r for r in batch if r.seq > self.meta.get(r.stream_id, wal.StreamMeta()).last_seq]
            if todo:
                self._apply([r.stream_id for r in todo], np.stack([r.vector for r in todo]),
                            [r.seq for r in todo])
                self.stats.replayed += len(todo)
        if self.stats.replayed:
            log.info("replayed %d logged embeddings", self.stats.replayed)

    def checkpoint(self) -> Path | None:
        """Write every stream's state now (atomically); the log restarts after it."""
        if self.checkpoint_dir is None or self._wal is None:
            return None
        with self._step_lock:
            ids, state = self.memory.export()
            meta = {s: wal.StreamMeta(self.meta[s].last_seq, self.meta[s].version) for s in ids}
            first = self._wal.rotate()
        snap = wal.Snapshot(ids, state if ids else None, meta, self.model_hash, first)
        path = wal.write_checkpoint(self.checkpoint_dir, snap)
        self._wal.drop_before(first)
        self.stats.checkpoints += 1
        return path

    def _checkpoint_loop(self, every: float) -> None:
        while not self._stop.wait(every):
            try:
                self.checkpoint()
            except Exception:  # keep serving; the log still holds every accepted embedding
                log.exception("periodic checkpoint failed")

    def close(self) -> None:
        """Stop the timer, checkpoint, close the log. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._timer is not None:
            self._timer.join(timeout=10)
        if self.checkpoint_dir is not None:
            self.checkpoint()
        if self._wal is not None:
            self._wal.close()

    # ------------------------------------------------------------------ stepping

    def _apply(self, ids: list[str], vectors: np.ndarray, seqs: list[int]):
        out = self.memory.step(ids, vectors)
        for i, (sid, seq) in enumerate(zip(ids, seqs)):
            m = self.meta.setdefault(sid, wal.StreamMeta())
            m.last_seq = seq
            m.version += int(out.updated[i])
        return out

    def submit(self, messages: Sequence) -> list[Result]:
        """Answer each Embedding message with a Result, in the order given. Thread-safe."""
        if self._closed:
            raise BridgeError("the host service is shut down")
        ticket = _Ticket(messages)
        with self._pending_lock:
            self._pending.append(ticket)
        with self._step_lock:  # whoever holds it drains everything queued, ours included
            if not ticket.done:
                self._drain()
        if ticket.error is not None:
            raise BridgeError(f"the host failed to step the memory: {ticket.error}") from ticket.error
        return ticket.results

    def _drain(self) -> None:
        while True:
            with self._pending_lock:
                tickets = list(self._pending)
                self._pending.clear()
            if not tickets:
                return
            try:
                self._process(tickets)
            except Exception as exc:  # every waiting caller hears about it, none hangs
                log.exception("memory step failed")
                for t in tickets:
                    t.error = exc
            for t in tickets:
                t.done = True

    def _process(self, tickets: list[_Ticket]) -> None:
        for t in tickets:
            t.results = [None] * len(t.messages)
        queues: OrderedDict[str, deque[_Item]] = OrderedDict()
        for t in tickets:
            for i, msg in enumerate(t.messages):
                try:
                    vec = decode_vector(msg, self.dim)
                except BridgeError as exc:
                    self.stats.rejected += 1
                    t.results[i] = Result(stream_id=msg.stream_id[:MAX_STREAM_ID], seq=msg.seq,
                                          status=REJECTED, detail=str(exc))
                    continue
                queues.setdefault(msg.stream_id, deque()).append(_Item(t, i, msg, vec))
        while queues:  # one wave = the oldest waiting embedding of every stream
            wave = [q.popleft() for q in queues.values()]
            for sid in [s for s, q in queues.items() if not q]:
                del queues[sid]
            self._step_wave(wave)

    def _step_wave(self, wave: list[_Item]) -> None:
        fresh, replay = [], []
        for item in wave:
            last = self.meta.get(item.msg.stream_id, wal.StreamMeta()).last_seq
            (fresh if item.msg.seq > last else replay).append(item)
        if fresh:
            records = [wal.Record(it.msg.stream_id, it.msg.seq, it.msg.event_time_ns, it.vector, it.msg.rich)
                       for it in fresh]
            if self._wal is not None:
                self._wal.append(records)
            lasts = [self.meta.get(it.msg.stream_id, wal.StreamMeta()).last_seq for it in fresh]
            out = self._apply([it.msg.stream_id for it in fresh], np.stack([it.vector for it in fresh]),
                              [it.msg.seq for it in fresh])
            self.stats.batches += 1
            self.stats.max_batch = max(self.stats.max_batch, len(fresh))
            for j, (it, last) in enumerate(zip(fresh, lasts)):
                gap = it.msg.seq - last - 1
                if gap:
                    self.stats.gaps += 1
                    self.stats.missing += gap
                    log.warning("stream %s: %d windows missing before seq %d", it.msg.stream_id, gap, it.msg.seq)
                sid = it.msg.stream_id
                res = Result(stream_id=sid, seq=it.msg.seq, status=APPLIED,
                             prediction=out.prediction[j].tolist(), surprise=float(out.score[j]),
                             updated=bool(out.updated[j]), memory_version=self.meta[sid].version,
                             gap=gap, bypass=bool(out.bypass[j]),
                             detail=f"{gap} windows missing before this one" if gap else "")
                self.stats.applied += 1
                self.stats.updates += int(out.updated[j])
                self._remember(sid, res)
                it.ticket.results[it.index] = res
        if replay:
            self._answer_duplicates(replay)

    def _remember(self, sid: str, res: Result) -> None:
        cache = self._cache.setdefault(sid, OrderedDict())
        cache[res.seq] = res
        while len(cache) > self._cache_size:
            cache.popitem(last=False)

    def _answer_duplicates(self, items: list[_Item]) -> None:
        """Recent duplicates get their original answer; older ones a read-only answer."""
        cold = []
        for it in items:
            self.stats.duplicates += 1
            cached = self._cache.get(it.msg.stream_id, {}).get(it.msg.seq)
            if cached is not None:
                res = Result()
                res.CopyFrom(cached)
                res.status, res.detail = DUPLICATE, "already applied; original answer"
                it.ticket.results[it.index] = res
            else:
                cold.append(it)
        if not cold:
            return
        ids = [it.msg.stream_id for it in cold]
        out = self.memory.step(ids, np.stack([it.vector for it in cold]), learn=np.zeros(len(cold), bool))
        for j, it in enumerate(cold):
            sid = it.msg.stream_id
            it.ticket.results[it.index] = Result(
                stream_id=sid, seq=it.msg.seq, status=DUPLICATE, prediction=out.prediction[j].tolist(),
                surprise=float(out.score[j]), updated=False,
                memory_version=self.meta.get(sid, wal.StreamMeta()).version,
                detail="already applied; answered from the current memory without learning")

    # ------------------------------------------------------------------ introspection

    def info(self, stream_id: str = "") -> HostInfo:
        """What the host serves, and (when ``stream_id`` is given) where that stream stands."""
        with self._step_lock:
            m = self.meta.get(stream_id, wal.StreamMeta())
            return HostInfo(embedding_dim=self.dim, outputs=list(self.model.decoder.outputs),
                            model_hash=self.model_hash, runner=self.runner.name,
                            streams=len(self.meta), max_stream_id_length=MAX_STREAM_ID,
                            last_seq=m.last_seq, memory_version=m.version)

    def stream_state(self, stream_id: str):
        """One stream's memory state as numpy (for tests and inspection)."""
        with self._step_lock:
            return self.memory.state_of(stream_id)

    def stream_meta(self, stream_id: str) -> wal.StreamMeta:
        with self._step_lock:
            m = self.meta.get(stream_id, wal.StreamMeta())
            return wal.StreamMeta(m.last_seq, m.version)
