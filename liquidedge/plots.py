"""Figures written to files (demo report, energy report, examples): one headless backend and one
way to save, so every PNG is laid out, sized and closed the same way."""
from __future__ import annotations

import os
from pathlib import Path


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (works without a display), imported lazily."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | os.PathLike, *, dates: bool = False, dpi: float | str = 110) -> Path:
    """Tight layout (slanted x labels when ``dates``), write ``path`` (folders made), close ``fig``."""
    if dates:
        fig.autofmt_xdate()
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    pyplot().close(fig)
    return out
