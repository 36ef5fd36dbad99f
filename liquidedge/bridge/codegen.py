"""Regenerate ``bridge_pb2.py`` from ``bridge.proto`` (a development step, not run at import).

The generated module is committed so that an edge device needs only the ``protobuf`` runtime,
not ``grpcio-tools`` (a large build-time package). Only the message module is generated: the
service's two methods are wired by hand in ``protocol.py``, which keeps the generated code free
of a grpcio version pin. ``python -m liquidedge.bridge.codegen`` rewrites the file; the tests
check the committed copy still matches the .proto.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from liquidedge.errors import ConfigError, TargetUnavailableError

HERE = Path(__file__).resolve().parent
PROTO = HERE / "bridge.proto"
GENERATED = HERE / "bridge_pb2.py"


def generate(out_dir: str | Path) -> Path:
    """Run protoc (from grpcio-tools) on ``bridge.proto``; return the generated module path."""
    try:
        from grpc_tools import protoc
    except ImportError:
        raise TargetUnavailableError("grpcio-tools is needed to regenerate the bridge code "
                                     "(pip install grpcio-tools)") from None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    include = str(Path(protoc.__file__).resolve().parent / "_proto")
    rc = protoc.main(["protoc", f"-I{HERE}", f"-I{include}", f"--python_out={out}", str(PROTO)])
    if rc != 0:
        raise ConfigError(f"protoc failed on {PROTO} (exit status {rc})")
    return out / "bridge_pb2.py"


def regenerate() -> Path:
    """Regenerate the committed module in place (atomically)."""
    with tempfile.TemporaryDirectory() as tmp:
        text = generate(tmp).read_text()
    part = GENERATED.with_name(GENERATED.name + ".tmp")
    part.write_text(text)
    part.replace(GENERATED)
    return GENERATED


if __name__ == "__main__":
    print(regenerate(), file=sys.stderr)
