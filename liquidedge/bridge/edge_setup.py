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


def open_edge(artefact_or_model: str | os.PathLike,
              model_dir: str | os.PathLike | None = None) -> tuple[PerceptionRunner, LiquidTitanModel]:
    """The perception runner and the model it belongs to.

    * a model directory (``model.json``): the numpy reference runner on the model's window;
    * an exported artefact (with its manifest): ``load_runner``; the model comes from
      ``model_dir`` or the nearest directory above the artefact holding ``model.json``.
    """
    src = Path(artefact_or_model)
    if not src.exists():
        raise ModelFileError(f"{src}: not found")
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


def text_event_chunks(stream: IO[str], chunk_rows: int = 256, source: str = "stdin"
                      ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Parse ``time_ns,price[,size]`` lines (epoch ns; an optional header) into chunks.

    A malformed line raises ``DataValidationError`` with its line number; nothing is skipped.
    """
    t, p, s = [], [], []
    for lineno, line in enumerate(stream, start=1):
        line = line.strip()
        if not line:
            continue
        parts = [x.strip() for x in line.split(",")]
        if lineno == 1 and not parts[0].lstrip("-").isdigit():
            continue  # header
        if len(parts) not in (2, 3):
            raise DataValidationError(f"expected 2 or 3 comma-separated values, got {len(parts)}",
                                      file=source, row=lineno, expected="time_ns,price[,size]")
        try:
            t.append(int(parts[0]))
            p.append(float(parts[1]))
            s.append(float(parts[2]) if len(parts) == 3 else 1.0)
        except ValueError as exc:
            raise DataValidationError(f"unparsable value ({exc})", file=source, row=lineno,
                                      expected="integer epoch ns, then numbers") from None
        if len(t) >= chunk_rows:
            yield np.array(t, np.int64), np.array(p), np.array(s)
            t, p, s = [], [], []
    if t:
        yield np.array(t, np.int64), np.array(p), np.array(s)


def file_event_chunks(path: str | os.PathLike, columns=None, chunk_rows: int = 4096):
    """A CSV/Parquet event file (loaded and validated by ``liquidedge.data``) in chunks."""
    from liquidedge.data import load_events

    events = load_events(path, columns)
    for i in range(0, len(events), chunk_rows):
        yield events.slice(i, i + chunk_rows)
