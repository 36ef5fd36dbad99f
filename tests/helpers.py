"""Plain helpers shared by several test modules (fixtures live in conftest.py)."""
from __future__ import annotations

import numpy as np


def random_windows(n_inputs: int, batch: int, seed: int = 0, dt_hi: float = 2.0, *, steps: int):
    """Random float32 windows ``(x, dt, mask)``: x ~ N(0, 1.5), dt ~ U(0.01, dt_hi), about 20% of
    steps masked, the last step always real."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1.5, (batch, steps, n_inputs)).astype(np.float32)
    dt = rng.uniform(0.01, dt_hi, (batch, steps)).astype(np.float32)
    mask = (rng.uniform(size=(batch, steps)) > 0.2).astype(np.float32)
    mask[:, -1] = 1
    return x, dt, mask
