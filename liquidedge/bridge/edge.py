"""The edge loop: events -> bars -> windows -> perception -> bridge -> prediction, fed back.

Runs on the device with numpy, protobuf/grpcio and the perception runtime only (no torch, no
pandas). Each window's input is the model's normalisation of its raw features plus, as feedback
channels, the previous window's prediction: the host's when it answered, otherwise the local
*degraded* one, ``decoder(embedding, 0)`` (the decoder without memory), flagged as such.

Selective bypass: when the host's surprise for a window exceeds its bypass threshold it sets
``bypass`` in the answer, and the edge then sends its next ``bypass_windows`` windows *rich*: the
embedding un-quantised (float32 on the wire, from ``rich_runner`` when one is given, e.g. the
fp32 artefact beside an int8 one) and at the fastest cadence (a window at every bar instead of
every ``every``), so the memory gets more and better input exactly when it is surprised.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from liquidedge import reference
from liquidedge.bridge import protocol as proto
from liquidedge.bridge.client import BridgeClient
from liquidedge.errors import ConfigError, InputShapeError
from liquidedge.ir import LiquidTitanModel
from liquidedge.targets.base import PerceptionRunner

log = logging.getLogger(__name__)


@dataclass
class EdgeResult:
    """One window's outcome on the edge."""

    seq: int
    end_ns: int
    prediction: np.ndarray        # [P] what the edge acts on (host's, or degraded)
    source: str                   # "host" or "degraded"
    embedding: np.ndarray         # [E] float32
    surprise: float | None = None
    updated: bool = False
    memory_version: int | None = None
    gap: int = 0
    bypass_requested: bool = False
    rich: bool = False            # sent as rich input (answering an earlier bypass request)
    status: str = ""              # host's status name, "" when degraded

    @property
    def degraded(self) -> bool:
        return self.source == "degraded"


class EdgeLoop:
    """Drive one stream: windows in, predictions out; the host is optional and may vanish."""

    def __init__(self, runner: PerceptionRunner, model: LiquidTitanModel, client: BridgeClient | None = None,
                 *, stream_id: str = "edge-0", wire: str = "float32", rich_runner: PerceptionRunner | None = None,
                 bypass_windows: int = 8, first_seq: int | None = None, spec=None):
        if wire not in ("float32", "int8"):
            raise ConfigError(f"wire {wire!r}: expected float32 or int8")
        if runner.manifest.n_inputs != model.perception.n_inputs:
            raise ConfigError(f"runner takes {runner.manifest.n_inputs} inputs, the model "
                              f"{model.perception.n_inputs}; they do not belong together")
        if runner.manifest.embedding_dim != model.memory.embedding_dim:
            raise ConfigError("runner and model disagree on the embedding width")
        if runner.manifest.model_hash and runner.manifest.model_hash != model.content_hash():
            log.warning("runner artefact was exported from model %s, not %s",
                        runner.manifest.model_hash[:12], model.content_hash()[:12])
        self.runner, self.rich_runner = runner, rich_runner
        self.model = model
        self.client = client
        self.stream_id = stream_id
        self.wire = wire
        self.bypass_windows = int(bypass_windows)
        self.prev = np.zeros(model.decoder.n_outputs)
        self._bypass_left = 0
        self.spec = spec
        self._builder = self._windower = None
        self._prev_bar_end: int | None = None
        self.seq = self._first_seq() if first_seq is None else int(first_seq)

    def _first_seq(self) -> int:
        """Continue the stream where the host has it (a restarted edge must not reuse seqs)."""
        if self.client is None:
            return 1
        try:
            info = self.client.transport.info(self.client.timeout_s, self.stream_id)
        except proto.HostUnavailableError as exc:  # an auth error is not an outage: it propagates
            log.warning("could not ask the host where stream %s stands (%s); starting at seq 1 "
                        "(the host will treat already-used seqs as duplicates)", self.stream_id, exc)
            return 1
        if info.embedding_dim != self.model.memory.embedding_dim:
            raise ConfigError(f"host serves embeddings of {info.embedding_dim}, this model makes "
                              f"{self.model.memory.embedding_dim}")
        if info.model_hash != self.model.content_hash():
            log.warning("host serves model %s, edge runs %s", info.model_hash[:12],
                        self.model.content_hash()[:12])
        return int(info.last_seq) + 1

    # ------------------------------------------------------------------ one window

    def step_window(self, features, dt_s, mask, end_ns: int = 0) -> EdgeResult:
        """Encode one window (raw features [T,F], dt_s [T], mask [T]) and get its prediction."""
        features = np.asarray(features)
        if features.ndim != 2:
            raise InputShapeError(f"features: expected one window [steps, features], got {features.shape}")
        rich = self._bypass_left > 0
        fb = self.prev[None, :] if self.model.feedback else None
        x, dt, m = reference.model_inputs(self.model, features[None], np.asarray(dt_s)[None],
                                          np.asarray(mask)[None], fb)
        runner = self.rich_runner if (rich and self.rich_runner is not None) else self.runner
        emb = np.asarray(runner.encode(x.astype(np.float32), dt.astype(np.float32), m.astype(np.float32)),
                         np.float32)[0]
        seq = self.seq
        self.seq += 1
        if rich:
            self._bypass_left -= 1
        outcome = None
        if self.client is not None:
            msg = proto.make_embedding(self.stream_id, seq, emb, int(end_ns),
                                       "float32" if rich else self.wire, rich=rich)
            outcome = self.client.send(msg).result
        if outcome is not None and outcome.status in (proto.APPLIED, proto.DUPLICATE):
            pred = np.asarray(outcome.prediction, np.float64)
            res = EdgeResult(seq, int(end_ns), pred, "host", emb, float(outcome.surprise),
                             bool(outcome.updated), int(outcome.memory_version), int(outcome.gap),
                             bool(outcome.bypass), rich, proto.pb.Status.Name(outcome.status))
            if outcome.bypass and self.bypass_windows > 0:
                self._bypass_left = self.bypass_windows
        else:
            if outcome is not None:  # REJECTED: our message was wrong; say so, carry on locally
                log.warning("host rejected window %d: %s", seq, outcome.detail)
            pred = reference.decoder_forward(self.model.decoder, emb[None].astype(np.float64),
                                             np.zeros((1, self.model.memory.dim)))[0]
            res = EdgeResult(seq, int(end_ns), pred, "degraded", emb, rich=rich,
                             status="" if outcome is None else "REJECTED")
        self.prev = pred
        return res

    # ------------------------------------------------------------------ events

    def _data_spec(self):
        from liquidedge.data import DataSpec

        if self.spec is not None:
            return self.spec if isinstance(self.spec, DataSpec) else DataSpec.from_dict(self.spec)
        if not self.model.data_spec:
            raise ConfigError("the model has no data_spec; pass spec= (a DataSpec) to the edge loop")
        return DataSpec.from_dict(self.model.data_spec)

    def _ensure_windower(self):
        if self._windower is None:
            from liquidedge.data import StreamingBarBuilder, StreamingWindower

            spec = self.spec = self._data_spec()
            if spec.steps != self.runner.manifest.steps:
                raise ConfigError(f"data spec cuts windows of {spec.steps} steps, the runner "
                                  f"takes {self.runner.manifest.steps}")
            self._builder = StreamingBarBuilder(spec.bar_kind, spec.bar_threshold, min_dt_s=spec.min_dt_s)
            # every bar makes a window here; the spec's cadence is applied in _take (bypass: all)
            self._windower = StreamingWindower(spec.steps, spec.span, last=spec.last, every=1,
                                               min_bars=spec.min_bars)
            self._window_spec = spec.window_spec()
        return self._windower

    def push_events(self, time_ns, price, size=None) -> list[EdgeResult]:
        """Feed events in time order; return the results of the windows they completed."""
        from liquidedge.data import compute_features
        from liquidedge.data.windows import emitting_bars

        windower = self._ensure_windower()
        bars = self._builder.update(time_ns, price, size)
        if len(bars) == 0:
            return []
        bar_prev = np.concatenate(([-1 if self._prev_bar_end is None else self._prev_bar_end],
                                   bars.end_ns[:-1]))
        first_bar = self._builder.n_bars - len(bars)
        self._prev_bar_end = int(bars.end_ns[-1])
        windows = windower.push_bars(bars)
        if len(windows) == 0:
            return []
        x = compute_features(windows, self.spec.features)
        out = []
        for i in range(len(windows)):
            j = int(windows.end_bar[i])
            prev_end = int(bar_prev[j - first_bar])
            emits = emitting_bars(windows.end_ns[i:i + 1], j, None if prev_end < 0 else prev_end,
                                  self._window_spec).size > 0
            if self._bypass_left <= 0 and not emits:
                continue
            out.append(self.step_window(x[i], windows.dt_s[i], windows.mask[i], int(windows.end_ns[i])))
        return out

    def run(self, chunks: Iterable, progress=None) -> list[EdgeResult]:
        """Run over an iterable of event chunks ``(time_ns, price, size)`` (or ``Events``)."""
        results = []
        for chunk in chunks:
            if hasattr(chunk, "time_ns"):
                chunk = (chunk.time_ns, chunk.price, chunk.size)
            results.extend(self.push_events(*chunk))
            if progress is not None:
                progress(len(results))
        return results

    def drain(self) -> int:
        """Try once more to deliver what is buffered (at shutdown); return how many are left."""
        if self.client is None:
            return 0
        self.client.flush()
        return len(self.client.pending)
