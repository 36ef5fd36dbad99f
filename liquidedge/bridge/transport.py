"""Transports: how the edge's messages reach a host. One small interface, two implementations.

``exchange(embeddings, timeout) -> results`` sends messages in order and returns one Result per
message, or raises ``HostUnavailableError`` (carrying the answers received before the failure),
``BridgeAuthError`` or ``BridgeError``. ``LocalTransport`` calls a ``HostService`` in the same
process; ``GrpcTransport`` keeps one long-lived bidirectional stream to a remote host. The edge
client above them (``client.BridgeClient``) cannot tell them apart.

Imports numpy, protobuf and grpcio only: this runs on the edge device.
"""
from __future__ import annotations

import queue
import threading
import time
from pathlib import Path
from typing import Protocol, Sequence

from liquidedge.bridge import protocol as proto
from liquidedge.errors import BridgeError, ConfigError

_END = object()


class Transport(Protocol):
    def exchange(self, messages: Sequence[proto.Embedding], timeout: float) -> list[proto.Result]: ...

    def info(self, timeout: float, stream_id: str = "") -> proto.HostInfo: ...

    def close(self) -> None: ...


class LocalTransport:
    """Same process, same interface: the host service is called directly (no copies, no I/O).

    The call is synchronous, so ``timeout`` cannot interrupt it; it exists for the interface.
    """

    def __init__(self, service):
        self.service = service

    def exchange(self, messages, timeout: float = 1.0):
        return self.service.submit(list(messages))

    def info(self, timeout: float = 1.0, stream_id: str = ""):
        return self.service.info(stream_id)

    def close(self) -> None:
        pass


def _map_error(err, received: list) -> BridgeError:
    import grpc

    code = err.code() if hasattr(err, "code") else None
    detail = err.details() if hasattr(err, "details") else str(err)
    if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        return proto.BridgeAuthError(f"host refused the credentials: {detail}")
    if code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED,
                grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.FAILED_PRECONDITION):
        return BridgeError(f"host refused the message ({code.name}): {detail}")
    name = code.name if code is not None else type(err).__name__
    return proto.HostUnavailableError(f"host unavailable ({name}): {detail}", received)


class GrpcTransport:
    """A bidirectional stream to ``address``, reopened when it breaks or nears its deadline.

    ``root_cert`` turns TLS on (the CA or self-signed certificate that signed the host's);
    ``client_cert``/``client_key`` present a client certificate; ``server_name`` overrides the
    name checked against the host's certificate. Every stream carries the bearer ``token``.
    Every call has a deadline: each exchange waits at most ``timeout`` for its answers and the
    stream itself lives at most ``stream_deadline_s`` before it is renewed.
    """

    def __init__(self, address: str, *, token: str | None = None, root_cert: str | Path | None = None,
                 client_cert: str | Path | None = None, client_key: str | Path | None = None,
                 server_name: str | None = None, stream_deadline_s: float = 600.0,
                 max_message_bytes: int = 1 << 20):
        import grpc  # noqa: F401 - fail early with ImportError if grpcio is absent

        if (client_cert is None) != (client_key is None):
            raise ConfigError("a client certificate needs its key (and the key its certificate)")
        if client_cert is not None and root_cert is None:
            raise ConfigError("client certificates need TLS: give the host's root certificate too")
        self.address = address
        self._metadata = proto.bearer(token) if token else ()
        self._tls = None
        if root_cert is not None:
            self._tls = (Path(root_cert).read_bytes(),
                         Path(client_key).read_bytes() if client_key else None,
                         Path(client_cert).read_bytes() if client_cert else None)
        self._server_name = server_name
        self._stream_deadline = float(stream_deadline_s)
        self._max_bytes = int(max_message_bytes)
        self._channel = None
        self._call = None
        self._requests: queue.SimpleQueue | None = None
        self._responses: queue.SimpleQueue | None = None
        self._opened_at = 0.0
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ connection

    def _channel_now(self):
        import grpc

        if self._channel is None:
            options = [("grpc.max_receive_message_length", self._max_bytes),
                       ("grpc.max_send_message_length", self._max_bytes),
                       ("grpc.enable_retries", 0)]
            if self._server_name:
                options.append(("grpc.ssl_target_name_override", self._server_name))
            if self._tls is not None:
                root, key, chain = self._tls
                creds = grpc.ssl_channel_credentials(root, key, chain)
                self._channel = grpc.secure_channel(self.address, creds, options=options)
            else:
                self._channel = grpc.insecure_channel(self.address, options=options)
        return self._channel

    def _open(self) -> None:
        requests: queue.SimpleQueue = queue.SimpleQueue()
        responses: queue.SimpleQueue = queue.SimpleQueue()

        def outgoing():
            while True:
                msg = requests.get()
                if msg is _END:
                    return
                yield msg

        call = self._channel_now().stream_stream(
            proto.EXCHANGE, request_serializer=proto.Embedding.SerializeToString,
            response_deserializer=proto.Result.FromString,
        )(outgoing(), timeout=self._stream_deadline, metadata=self._metadata)

        def read():
            try:
                for res in call:
                    responses.put(res)
            except Exception as exc:  # grpc.RpcError: the stream ended badly
                responses.put(exc)
            finally:
                responses.put(_END)

        threading.Thread(target=read, name="liquidedge-bridge-reader", daemon=True).start()
        self._call, self._requests, self._responses = call, requests, responses
        self._opened_at = time.monotonic()

    def _reset(self, drop_channel: bool = True) -> None:
        """Forget the stream (and the channel: a fresh one reconnects at once, no grpc backoff)."""
        if self._requests is not None:
            self._requests.put(_END)
        if self._call is not None:
            self._call.cancel()
        self._call = self._requests = self._responses = None
        if drop_channel and self._channel is not None:
            self._channel.close()
            self._channel = None

    # ------------------------------------------------------------------ interface

    def exchange(self, messages, timeout: float = 1.0):
        messages = list(messages)
        with self._lock:
            if self._call is not None and time.monotonic() - self._opened_at > 0.9 * self._stream_deadline:
                self._reset(drop_channel=False)  # renew before the stream's own deadline hits
            if self._call is None:
                self._open()
            for m in messages:
                self._requests.put(m)
            out: list = []
            deadline = time.monotonic() + timeout
            for _ in messages:
                try:
                    res = self._responses.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    self._reset()
                    raise proto.HostUnavailableError(
                        f"no answer from {self.address} within {timeout:g} s", out) from None
                if res is _END:
                    self._reset()
                    raise proto.HostUnavailableError(f"{self.address} closed the stream", out)
                if isinstance(res, Exception):
                    self._reset()
                    raise _map_error(res, out) from None
                out.append(res)
            return out

    def info(self, timeout: float = 1.0, stream_id: str = ""):
        import grpc

        call = self._channel_now().unary_unary(
            proto.INFO, request_serializer=proto.InfoRequest.SerializeToString,
            response_deserializer=proto.HostInfo.FromString)
        try:
            return call(proto.InfoRequest(stream_id=stream_id), timeout=timeout, metadata=self._metadata)
        except grpc.RpcError as err:
            with self._lock:
                self._reset()
            raise _map_error(err, []) from None

    def close(self) -> None:
        with self._lock:
            self._reset()
