"""What ``liquidedge run`` needs before the loop starts: the runner + model, and an event source.

Kept apart from the loop so the CLI stays thin and tests call the same code. Reading events from
a pipe uses plain Python (no pandas), so a device can be fed by ``tail -f | liquidedge run -``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Iterator

import numpy as np

from liquidedge.errors import ConfigError, DataValidationError, ModelFileError
from liquidedge.ir import MODEL_JSON, LiquidTitanModel, load_model
from liquidedge.targets.base import PerceptionRunner, load_runner, manifest_path


def _find_model_dir(start: Path) -> Path | None:
    for d in (start, *start.parents[:2]):
        if (d / MODEL_JSON).is_file():
            return d
    return None


def _is_bundle(directory: Path) -> bool:
    import json

    path = directory / "manifest.json"
    if not path.is_file():
        return False
    try:
        return json.loads(path.read_text()).get("format") == "liquidedge-bundle"
    except (ValueError, UnicodeDecodeError, AttributeError):
        return False


def open_edge(artefact_or_model: str | os.PathLike,
              model_dir: str | os.PathLike | None = None) -> tuple[PerceptionRunner, LiquidTitanModel]:
    """The perception runner and the model it belongs to.

    * a deployment bundle (directory from ``liquidedge deploy build``, extracted): hash-checked,
      then its model and the runner its device profile asks for (``liquidedge.deploy.runtime``);
    * a model directory (``model.json``): the numpy reference runner on the model's window;
    * an exported artefact (with its manifest): ``load_runner``; the model comes from
      ``model_dir`` or the nearest directory above the artefact holding ``model.json``.
    """
    src = Path(artefact_or_model)
    if not src.exists():
        raise ModelFileError(f"{src}: not found")
    if src.is_file() and src.name.endswith((".tar.gz", ".tgz")):
        raise ConfigError(f"{src}: extract the bundle first (liquidedge deploy verify/push unpack it), "
                          f"then pass its directory")
    if src.is_dir() and _is_bundle(src):
        from liquidedge.deploy.runtime import bundle_model, bundle_runner
        from liquidedge.deploy.verify import load_verified

        manifest = load_verified(src)
        model = bundle_model(src, manifest)
        return bundle_runner(src, manifest, model), model
    if src.is_dir() and (src / MODEL_JSON).is_file() and not manifest_path(src).is_file():
        model = load_model(src)
        steps = model.data_spec.get("steps")
        if not steps:
            raise ConfigError(f"{src}: the model has no data_spec.steps; export an artefact instead")
        from liquidedge.targets.numpy_ref import ReferenceRunner

        return ReferenceRunner(model.perception, int(steps), model.content_hash()), model
    runner = load_runner(src)
    found = Path(model_dir) if model_dir is not None else _find_model_dir(src if src.is_dir() else src.parent)
    if found is None:
        raise ModelFileError(f"{src}: no model directory next to the artefact; give --model")
    model = load_model(found)
    if runner.manifest.model_hash and runner.manifest.model_hash != model.content_hash():
        raise ModelFileError(f"{src} was exported from model {runner.manifest.model_hash[:12]}, "
                             f"but {found} is model {model.content_hash()[:12]}")
    return runner, model


class _LineParser:
    """``time_ns,price[,size]`` lines -> arrays, counting lines for error messages."""

    def __init__(self, source: str):
        self.source = source
        self.lineno = 0

    def parse(self, lines) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        t, p, s = [], [], []
        for raw in lines:
            self.lineno += 1
            line = raw.decode() if isinstance(raw, bytes) else raw
            line = line.strip()
            if not line:
                continue
            parts = [x.strip() for x in line.split(",")]
            if self.lineno == 1 and not parts[0].lstrip("-").isdigit():
                continue  # header
            if len(parts) not in (2, 3):
                raise DataValidationError(f"expected 2 or 3 comma-separated values, got {len(parts)}",
                                          file=self.source, row=self.lineno, expected="time_ns,price[,size]")
            try:
                t.append(int(parts[0]))
                p.append(float(parts[1]))
                s.append(float(parts[2]) if len(parts) == 3 else 1.0)
            except ValueError as exc:
                raise DataValidationError(f"unparsable value ({exc})", file=self.source, row=self.lineno,
                                          expected="integer epoch ns, then numbers") from None
        return np.array(t, np.int64), np.array(p, np.float64), np.array(s, np.float64)


def text_event_chunks(stream: IO, chunk_rows: int = 256, source: str = "stdin"
                      ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Parse ``time_ns,price[,size]`` lines (epoch ns; an optional header) into chunks.

    From a pipe or file, every read hands on whatever complete lines have arrived (at most
    ``chunk_rows`` per chunk), so a slow live feed is processed as it comes instead of waiting
    for a full chunk. A malformed line raises ``DataValidationError`` with its line number.
    """
    parser = _LineParser(source)
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        fd = None
    if fd is None:  # an in-memory text stream
        lines = stream.read().splitlines()
        for i in range(0, len(lines), chunk_rows):
            chunk = parser.parse(lines[i:i + chunk_rows])
            if len(chunk[0]):
                yield chunk
        return
    pending = b""
    while True:
        data = os.read(fd, 1 << 16)
        if not data:
            break
        *lines, pending = (pending + data).split(b"\n")
        for i in range(0, len(lines), chunk_rows):
            chunk = parser.parse(lines[i:i + chunk_rows])
            if len(chunk[0]):
                yield chunk
    if pending.strip():
        chunk = parser.parse([pending])
        if len(chunk[0]):
            yield chunk


def file_event_chunks(path: str | os.PathLike, columns=None, chunk_rows: int = 4096):
    """A CSV/Parquet event file (loaded and validated by ``liquidedge.data``) in chunks."""
    from liquidedge.data import load_events

    events = load_events(path, columns)
    for i in range(0, len(events), chunk_rows):
        yield events.slice(i, i + chunk_rows)
