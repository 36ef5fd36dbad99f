"""The gRPC host: serves ``HostService`` over a bidirectional stream, with TLS and a token.

Every stream is authenticated before its first message is read (an unauthenticated client gets
nothing, not even a rejection per message); messages above the size limit are refused by grpc
itself (RESOURCE_EXHAUSTED); bytes that do not parse as an Embedding end the stream with
INVALID_ARGUMENT and the reason; well-formed but invalid embeddings (wrong length, non-finite,
bad scale) are answered REJECTED with the reason and the stream stays open.
"""
from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import threading
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc

from liquidedge.bridge import protocol as proto
from liquidedge.bridge.service import HostService
from liquidedge.errors import BridgeError, ConfigError
from liquidedge.ir import LiquidTitanModel

log = logging.getLogger(__name__)


def is_loopback(listen: str) -> bool:
    host = listen.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_token(path: str | os.PathLike) -> str:
    """The bearer token from a file (first line, stripped); refuse an empty one."""
    p = Path(path)
    try:
        lines = p.read_text().strip().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read the token file ({exc})") from None
    token = lines[0].strip() if lines else ""
    if len(token) < 16:
        raise ConfigError(f"{p}: the token must be at least 16 characters")
    return token


class _Handlers:
    """The two RPCs; checks the token on every call before doing anything else."""

    def __init__(self, service: HostService, token: str | None):
        self.service = service
        self._expected = f"Bearer {token}".encode() if token else None

    def _authorised(self, context) -> bool:
        if self._expected is None:
            return True
        for key, value in context.invocation_metadata() or ():
            if key == proto.AUTH_HEADER:
                got = value.encode() if isinstance(value, str) else bytes(value)
                return hmac.compare_digest(got, self._expected)
        return False

    def exchange(self, requests, context):
        if not self._authorised(context):
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")
        for msg in requests:
            if isinstance(msg, proto.Malformed):
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, msg.reason)
            try:
                result = self.service.submit([msg])[0]
            except BridgeError as exc:  # shutting down, or the memory step failed
                context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
            yield result

    def info(self, request, context):
        if not self._authorised(context):
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")
        if isinstance(request, proto.Malformed):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.reason)
        return self.service.info(request.stream_id[:proto.MAX_STREAM_ID])


@dataclass
class ServerHandle:
    """A running host: its address, the service behind it, and a clean ``stop``."""

    server: grpc.Server
    service: HostService
    address: str
    port: int
    _stopped: bool = False

    def stop(self, grace: float = 2.0) -> None:
        """Stop accepting, let in-flight calls finish, then checkpoint and close the log."""
        if self._stopped:
            return
        self._stopped = True
        self.server.stop(grace).wait(grace + 5)
        self.service.close()

    def wait(self, timeout: float | None = None) -> bool:
        return self.server.wait_for_termination(timeout)

    def __enter__(self) -> "ServerHandle":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_server(model: LiquidTitanModel, listen: str = "127.0.0.1:50051", *,
                 backend: str = "auto", service: HostService | None = None, token: str | None = None,
                 tls_cert: str | os.PathLike | None = None, tls_key: str | os.PathLike | None = None,
                 client_ca: str | os.PathLike | None = None, checkpoint_dir: str | os.PathLike | None = None,
                 checkpoint_every_s: float = 60.0, wal_sync: str = "write", max_workers: int = 128,
                 allow_insecure: bool = False) -> ServerHandle:
    """Start serving on ``listen`` ("host:port"; port 0 picks a free one) and return a handle.

    Without TLS the host only listens on a loopback address unless ``allow_insecure``: a token
    sent in clear over a network is no protection. ``client_ca`` makes client certificates
    mandatory (mutual TLS).
    """
    if (tls_cert is None) != (tls_key is None):
        raise ConfigError("TLS needs both a certificate and its key")
    if client_ca is not None and tls_cert is None:
        raise ConfigError("client certificates need TLS (give --tls-cert and --tls-key)")
    if tls_cert is None and not is_loopback(listen) and not allow_insecure:
        raise ConfigError(f"refusing to listen on {listen} without TLS; give a certificate, use a "
                          f"loopback address, or pass allow_insecure")
    if service is None:
        service = HostService(model, backend, checkpoint_dir=checkpoint_dir,
                              checkpoint_every_s=checkpoint_every_s, wal_sync=wal_sync)
    limit = proto.max_message_bytes(model.memory.embedding_dim)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="liquidedge-rpc"),
        options=[("grpc.max_receive_message_length", limit),
                 ("grpc.max_send_message_length", 1 << 20),
                 ("grpc.so_reuseport", 0)],
        maximum_concurrent_rpcs=max_workers)
    handlers = _Handlers(service, token)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(proto.SERVICE, {
        "Exchange": grpc.stream_stream_rpc_method_handler(
            handlers.exchange, request_deserializer=proto.parse_embedding,
            response_serializer=proto.Result.SerializeToString),
        "Info": grpc.unary_unary_rpc_method_handler(
            handlers.info, request_deserializer=proto.parse_info_request,
            response_serializer=proto.HostInfo.SerializeToString),
    }),))
    try:
        if tls_cert is not None:
            creds = grpc.ssl_server_credentials(
                [(Path(tls_key).read_bytes(), Path(tls_cert).read_bytes())],
                root_certificates=Path(client_ca).read_bytes() if client_ca else None,
                require_client_auth=client_ca is not None)
            port = server.add_secure_port(listen, creds)
        else:
            port = server.add_insecure_port(listen)
    except OSError as exc:
        service.close()
        raise ConfigError(f"cannot read TLS files: {exc}") from None
    except RuntimeError as exc:
        service.close()
        raise ConfigError(f"cannot listen on {listen}: {exc}") from None
    if port == 0:
        service.close()
        raise ConfigError(f"cannot listen on {listen} (address in use or invalid)")
    server.start()
    address = f"{listen.rsplit(':', 1)[0]}:{port}"
    log.info("liquidedge host listening on %s (%s, runner %s)", address,
             "TLS" if tls_cert else "plaintext", service.runner.name)
    return ServerHandle(server, service, address, port)


def serve_until_signal(handle: ServerHandle, grace: float = 2.0) -> None:
    """Block until SIGINT/SIGTERM, then stop cleanly (checkpoint included)."""
    import signal

    done = threading.Event()
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, lambda *_: done.set())
    try:
        while not done.wait(0.5):
            pass
    finally:
        handle.stop(grace)
        for sig, prev in previous.items():
            signal.signal(sig, prev)
