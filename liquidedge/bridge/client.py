"""The edge's bridge client: never blocks the edge on the host, never reorders what it sends.

Every embedding joins an ordered buffer; the buffer is flushed to the host oldest first, so
after an outage the memory learns the missed windows in their original order before the newest
one. While the host is unreachable the client answers ``None`` at once (the edge then runs its
local decoder, flagged degraded) and retries only after an exponential backoff with jitter, so a
dead host costs the edge no time per window. The buffer is bounded: when full the oldest
embedding is dropped with a warning and counted (the host will report the gap).

Only an outage is absorbed: a host that refuses our credentials (``BridgeAuthError``) or our
messages (``BridgeError``, e.g. over its size limit) is a configuration error and is raised.
"""
from __future__ import annotations

import logging
import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

from liquidedge.bridge import protocol as proto
from liquidedge.bridge.transport import Transport
from liquidedge.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass
class ClientStats:
    sent: int = 0               # messages answered by the host
    replayed: int = 0           # of those, sent late from the buffer after an outage
    rejected: int = 0
    duplicates: int = 0
    dropped: int = 0            # oldest embeddings dropped because the buffer was full
    failures: int = 0           # exchanges that failed (host unreachable / too slow)
    skipped_attempts: int = 0   # sends that did not try because the backoff had not elapsed
    bypass_requests: int = 0


@dataclass
class SendOutcome:
    """``result`` answers the embedding just sent (None when the host was not reached)."""

    result: proto.Result | None
    flushed: list = field(default_factory=list)   # every Result received in this call, in order
    degraded: bool = False
    buffered: int = 0                             # embeddings still waiting for the host


class BridgeClient:
    """Ordered, bounded, reconnecting delivery of embeddings over any ``Transport``."""

    def __init__(self, transport: Transport, *, timeout_s: float = 1.0, buffer_limit: int = 4096,
                 chunk: int = 64, backoff_initial_s: float = 0.1, backoff_max_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic, seed: int | None = None):
        if buffer_limit < 1 or chunk < 1:
            raise ConfigError("buffer_limit and chunk must be >= 1")
        if not (timeout_s > 0 and backoff_initial_s > 0 and backoff_max_s >= backoff_initial_s):
            raise ConfigError("timeout and backoff must be > 0 (and max backoff >= initial)")
        self.transport = transport
        self.timeout_s = float(timeout_s)
        self.buffer_limit = int(buffer_limit)
        self.chunk = int(chunk)
        self.backoff_initial_s = float(backoff_initial_s)
        self.backoff_max_s = float(backoff_max_s)
        self.clock = clock
        self.stats = ClientStats()
        self.pending: deque[proto.Embedding] = deque()
        self._backoff = self.backoff_initial_s
        self._next_try = 0.0
        self._rng = random.Random(seed)
        self.connected = True
        self._late = 0

    def _enqueue(self, msg: proto.Embedding) -> None:
        if len(self.pending) >= self.buffer_limit:
            old = self.pending.popleft()
            self.stats.dropped += 1
            log.warning("bridge buffer full (%d): dropped the oldest embedding (stream %s seq %d); "
                        "%d dropped so far", self.buffer_limit, old.stream_id, old.seq, self.stats.dropped)
        self.pending.append(msg)

    def _failed(self, exc: Exception) -> None:
        self.stats.failures += 1
        if self.connected:
            log.warning("host unreachable (%s); running degraded, buffering embeddings", exc)
        self.connected = False
        delay = self._backoff * (0.5 + self._rng.random())   # jitter: 0.5x .. 1.5x
        self._next_try = self.clock() + delay
        self._backoff = min(self._backoff * 2.0, self.backoff_max_s)

    def _account(self, results: list) -> None:
        for r in results:
            if self._late > 0:
                self.stats.replayed += 1
                self._late -= 1
            self.stats.sent += 1
            self.stats.rejected += r.status == proto.REJECTED
            self.stats.duplicates += r.status == proto.DUPLICATE
            self.stats.bypass_requests += bool(r.bypass)

    def flush(self) -> list:
        """Send everything buffered, oldest first, in chunks; return the results received.

        Raises nothing on an outage: what was not answered stays buffered for the next try.
        """
        return self._flush(len(self.pending))

    def _flush(self, backlog: int) -> list:
        """``backlog``: how many of the oldest pending messages are late (counted as replayed)."""
        received: list = []
        self._late = backlog
        while self.pending:
            batch = list(self.pending)[: self.chunk]
            try:
                got = self.transport.exchange(batch, self.timeout_s)
            except proto.HostUnavailableError as exc:
                for _ in exc.results:
                    self.pending.popleft()
                received.extend(exc.results)
                self._account(exc.results)
                self._failed(exc)
                return received
            for _ in got:
                self.pending.popleft()
            received.extend(got)
            self._account(got)
        if not self.connected:
            log.info("host reachable again; buffer replayed")
        self.connected = True
        self._backoff = self.backoff_initial_s
        return received

    def send(self, msg: proto.Embedding) -> SendOutcome:
        """Queue ``msg`` behind anything buffered and try to deliver all of it, in order."""
        self._enqueue(msg)
        if self.clock() < self._next_try:
            self.stats.skipped_attempts += 1
            return SendOutcome(None, [], True, len(self.pending))
        received = self._flush(len(self.pending) - 1)
        mine = next((r for r in reversed(received)
                     if r.stream_id == msg.stream_id and r.seq == msg.seq), None)
        return SendOutcome(mine, received, mine is None, len(self.pending))

    def close(self) -> None:
        self.transport.close()
