"""`liquidedge serve` (the host) and `liquidedge run` (the edge loop): thin wrappers.

Both stop cleanly on SIGINT/SIGTERM: the host checkpoints every stream's memory and closes its
log; the edge finishes the current chunk, tries once more to deliver what it buffered, and
prints a summary.
"""
from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path
from typing import Optional

import typer

from liquidedge.cli.common import fail as _fail




def serve_cmd(
    model_dir: Path = typer.Argument(..., help="Model directory (model.json + weights.safetensors)."),
    listen: str = typer.Option("127.0.0.1:50051", "--listen", help="host:port to listen on (port 0: any free)."),
    tls_cert: Optional[Path] = typer.Option(None, "--tls-cert", help="Server certificate (PEM)."),
    tls_key: Optional[Path] = typer.Option(None, "--tls-key", help="Server private key (PEM)."),
    client_ca: Optional[Path] = typer.Option(None, "--client-ca", help="Require client certificates signed by this CA."),
    token_file: Optional[Path] = typer.Option(None, "--token-file", help="File holding the bearer token every stream must present."),
    checkpoint_dir: Optional[Path] = typer.Option(None, "--checkpoint-dir", help="Where memory checkpoints and the write-ahead log live (default: memory only)."),
    checkpoint_every: float = typer.Option(60.0, "--checkpoint-every", help="Seconds between checkpoints."),
    wal_sync: str = typer.Option("write", "--wal-sync", help="write: survive a host crash; fsync: also a power loss (slower)."),
    backend: str = typer.Option("auto", "--backend", help="Memory runner: auto, onnxruntime, torch or numpy."),
    allow_insecure: bool = typer.Option(False, "--allow-insecure", help="Allow plaintext on a non-loopback address."),
    port_file: Optional[Path] = typer.Option(None, "--port-file", help="Write the bound port here once listening."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Serve MODEL_DIR's memory to edge devices over gRPC until SIGINT/SIGTERM."""
    from liquidedge.bridge.server import read_token, serve_until_signal, start_server
    from liquidedge.errors import LiquidEdgeError
    from liquidedge.ir import load_model

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        model = load_model(model_dir)
        token = read_token(token_file) if token_file else None
        handle = start_server(model, listen, backend=backend, token=token, tls_cert=tls_cert,
                              tls_key=tls_key, client_ca=client_ca, checkpoint_dir=checkpoint_dir,
                              checkpoint_every_s=checkpoint_every, wal_sync=wal_sync,
                              allow_insecure=allow_insecure)
    except LiquidEdgeError as exc:
        _fail(exc)
    s = handle.service.stats
    print(f"listening on {handle.address} (runner {handle.service.runner.name}, "
          f"{len(handle.service.meta)} streams restored, {s.replayed} logged embeddings replayed)",
          file=sys.stderr, flush=True)
    if port_file is not None:
        tmp = port_file.with_name(port_file.name + ".tmp")
        tmp.write_text(str(handle.port))
        tmp.replace(port_file)
    serve_until_signal(handle)
    s = handle.service.stats
    print(f"stopped: {s.applied} applied, {s.updates} updates, {s.duplicates} duplicates, "
          f"{s.rejected} rejected, {s.gaps} gaps; checkpoint written", file=sys.stderr, flush=True)


def run_cmd(
    artefact: Path = typer.Argument(..., help="Deployment bundle directory, perception artefact (with manifest) or model directory."),
    data: str = typer.Option(..., "--data", help="Event file (CSV/Parquet) or '-' for time_ns,price,size lines on stdin."),
    host: Optional[str] = typer.Option(None, "--host", help="Host address host:port (omit: local decoder only)."),
    model_dir: Optional[Path] = typer.Option(None, "--model", help="Model directory (default: found next to the artefact)."),
    columns: Optional[str] = typer.Option(None, "--columns", "-c", help="Column preset of the event file."),
    stream_id: str = typer.Option("edge-0", "--stream-id", help="This device's stream name on the host."),
    token_file: Optional[Path] = typer.Option(None, "--token-file", help="Bearer token file."),
    tls_ca: Optional[Path] = typer.Option(None, "--tls-ca", help="Root certificate of the host (turns TLS on)."),
    client_cert: Optional[Path] = typer.Option(None, "--client-cert"),
    client_key: Optional[Path] = typer.Option(None, "--client-key"),
    server_name: Optional[str] = typer.Option(None, "--server-name", help="Name to check in the host's certificate."),
    wire: str = typer.Option("float32", "--wire", help="Embedding on the wire: float32 or int8."),
    timeout: float = typer.Option(1.0, "--timeout", help="Seconds to wait for the host per window."),
    buffer: int = typer.Option(4096, "--buffer", help="Embeddings kept for replay while the host is away."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write per-window results as CSV here."),
    first_seq: Optional[int] = typer.Option(None, "--first-seq", help="First sequence number (default: ask the host)."),
) -> None:
    """Run the edge loop: events -> bars -> windows -> perception -> host, until the data ends."""
    from rich.progress import Progress, SpinnerColumn, TextColumn

    from liquidedge.bridge.client import BridgeClient
    from liquidedge.bridge.edge import EdgeLoop
    from liquidedge.bridge.edge_setup import file_event_chunks, open_edge, text_event_chunks
    from liquidedge.bridge.server import read_token
    from liquidedge.bridge.transport import GrpcTransport
    from liquidedge.errors import LiquidEdgeError

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    stop = {"now": False, "reading": False}

    def on_signal(*_):
        stop["now"] = True
        if stop["reading"]:  # blocked waiting for input (a quiet pipe): stop waiting
            raise KeyboardInterrupt

    def guarded(source):
        """Chunks from ``source``; a signal while waiting for the next one ends the stream."""
        it = iter(source)
        while not stop["now"]:
            stop["reading"] = True
            try:
                chunk = next(it)
            except (StopIteration, KeyboardInterrupt):
                return
            finally:
                stop["reading"] = False
            yield chunk

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    try:
        runner, model = open_edge(artefact, model_dir)
        client = None
        if host:
            transport = GrpcTransport(host, token=read_token(token_file) if token_file else None,
                                      root_cert=tls_ca, client_cert=client_cert, client_key=client_key,
                                      server_name=server_name)
            client = BridgeClient(transport, timeout_s=timeout, buffer_limit=buffer)
        loop = EdgeLoop(runner, model, client, stream_id=stream_id, wire=wire, first_seq=first_seq)
        chunks = guarded(text_event_chunks(sys.stdin) if data == "-" else file_event_chunks(data, columns))
        sink = open(out, "w") if out else None
        if sink:
            sink.write("seq,end_ns,source,surprise,updated,memory_version," +
                       ",".join(model.decoder.outputs) + "\n")
        results = 0
        degraded = 0
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), transient=True) as progress:
            task = progress.add_task("windows: 0")
            for chunk in chunks:
                for r in loop.run([chunk]):
                    results += 1
                    degraded += r.degraded
                    if sink:
                        sink.write(f"{r.seq},{r.end_ns},{r.source},{'' if r.surprise is None else r.surprise},"
                                   f"{int(r.updated)},{'' if r.memory_version is None else r.memory_version},"
                                   + ",".join(f"{v:.6g}" for v in r.prediction) + "\n")
                progress.update(task, description=f"windows: {results} ({degraded} degraded)")
        left = loop.drain()
        if sink:
            sink.close()
    except LiquidEdgeError as exc:
        _fail(exc)
    stats = client.stats if client else None
    print(f"{results} windows, {degraded} degraded"
          + (f", {stats.replayed} replayed, {stats.dropped} dropped, {left} still buffered" if stats else ""),
          file=sys.stderr, flush=True)
    if client:
        client.close()


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_cmd)
    app.command("run")(run_cmd)
