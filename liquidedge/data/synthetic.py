"""A seeded, fast regime-switching market: ground truth for tests, demos and surprise detection.

Real data has no labelled regime changes; this generator does. The market moves through regimes
(calm, trending, volatile, ...) that differ in volatility, drift and how trades arrive; the change
times are known exactly, so a detector (e.g. the memory's surprise) can be scored against them.

Arrivals in each regime follow a self-exciting (Hawkes) process with exponential kernel, drawn
with its cluster (branching) representation: Poisson "immigrants" at rate ``intensity * (1 -
branching)`` each spawn Poisson(``branching``) children after Exp(``decay``) delays, generation
after generation, so trades cluster like a real tape while the mean rate is ``intensity``. All
draws are vectorised per generation. Log price is a Brownian motion with the regime's drift and
volatility, sampled at the trades; stamps are floored to ``resolution_ns`` (duplicates appear as
in real feeds) and change times lie on that grid, so every event's label is exactly the regime in
force at its stamp.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from liquidedge.data.ticks import Events
from liquidedge.data.timeutil import NS_PER_S
from liquidedge.errors import ConfigError


@dataclass(frozen=True)
class Regime:
    """One market state. ``vol``/``drift`` are per sqrt(second) / per second of log price;
    ``intensity`` the mean trades per second; ``branching`` in [0, 1) how clustered they are;
    ``decay`` (1/s) how fast a cluster fades; ``mean_size`` the mean trade size (geometric)."""
    name: str
    vol: float
    drift: float = 0.0
    intensity: float = 50.0
    branching: float = 0.5
    decay: float = 5.0
    mean_size: float = 3.0


DEFAULT_REGIMES = (
    Regime("calm", vol=2e-5, drift=0.0, intensity=5.0, branching=0.3, decay=1.0, mean_size=2.0),
    Regime("trend", vol=4e-5, drift=5e-6, intensity=15.0, branching=0.5, decay=2.0, mean_size=3.0),
    Regime("volatile", vol=1.5e-4, drift=-2e-6, intensity=50.0, branching=0.8, decay=5.0, mean_size=5.0),
)


@dataclass
class SyntheticMarket:
    """Generated events with their ground truth.

    ``regime[i]`` indexes ``regimes`` for event i; segment k runs from ``segment_start_ns[k]`` with
    regime ``segment_regime[k]``; ``change_ns``/``change_index`` are the times (ns) and first
    event indices of every change of regime after the first segment.
    """
    events: Events
    regime: np.ndarray
    regimes: tuple[Regime, ...]
    segment_start_ns: np.ndarray
    segment_regime: np.ndarray
    change_ns: np.ndarray
    change_index: np.ndarray


def _hawkes(rng: np.random.Generator, r: Regime, duration_s: float) -> np.ndarray:
    """Sorted arrival times (s) in [0, duration) of a Hawkes process, via its cluster form."""
    mu = r.intensity * (1.0 - r.branching)
    gen = rng.uniform(0.0, duration_s, rng.poisson(mu * duration_s))
    out = [gen]
    while gen.size and r.branching > 0:
        kids = rng.poisson(r.branching, gen.size)
        gen = np.repeat(gen, kids) + rng.exponential(1.0 / r.decay, int(kids.sum()))
        gen = gen[gen < duration_s]
        out.append(gen)
    times = np.concatenate(out)
    times.sort()
    return times


def generate_market(n_events: int = 500_000, *, seed: int = 0,
                    regimes: tuple[Regime, ...] = DEFAULT_REGIMES, mean_regime_s: float = 900.0,
                    start_ns: int = 1_700_000_000 * NS_PER_S, price0: float = 100.0,
                    tick: float | None = None, resolution_ns: int = 1_000_000) -> SyntheticMarket:
    """Generate exactly ``n_events`` trades switching between ``regimes``.

    Regime durations are Exp(``mean_regime_s``) seconds (rounded up to the clock grid); the next
    regime is drawn uniformly among the others. ``tick`` rounds prices to a tick size (None: no
    rounding). Same arguments and seed, same market.
    """
    if not isinstance(n_events, (int, np.integer)) or n_events < 1:
        raise ConfigError(f"n_events: expected an integer >= 1, got {n_events!r}")
    if not regimes:
        raise ConfigError("regimes: need at least one")
    for r in regimes:
        if not (0 <= r.branching < 1 and r.intensity > 0 and r.vol >= 0 and r.decay > 0 and r.mean_size >= 1):
            raise ConfigError(f"regime {r.name!r}: need 0 <= branching < 1, intensity > 0, vol >= 0, "
                              "decay > 0, mean_size >= 1")
    if mean_regime_s <= 0 or resolution_ns < 1 or price0 <= 0 or (tick is not None and tick <= 0):
        raise ConfigError("mean_regime_s, resolution_ns, price0 and tick must be > 0")
    rng = np.random.default_rng(seed)
    times, labels, seg_start, seg_regime = [], [], [], []
    total = 0
    t0 = int(start_ns) // resolution_ns * resolution_ns
    k = int(rng.integers(len(regimes)))
    while total < n_events:
        dur_ns = int(np.ceil(rng.exponential(mean_regime_s) * NS_PER_S / resolution_ns)) * resolution_ns
        dur_ns = max(dur_ns, resolution_ns)
        arr = _hawkes(rng, regimes[k], dur_ns / NS_PER_S)
        stamps = t0 + (arr * NS_PER_S).astype(np.int64) // resolution_ns * resolution_ns
        stamps = np.minimum(stamps, t0 + dur_ns - resolution_ns)  # stay inside the segment
        seg_start.append(t0)
        seg_regime.append(k)
        times.append(stamps)
        labels.append(np.full(stamps.size, k, np.int16))
        total += stamps.size
        t0 += dur_ns
        if len(regimes) > 1:
            k = (k + 1 + int(rng.integers(len(regimes) - 1))) % len(regimes)
    time_ns = np.concatenate(times)[:n_events]
    regime = np.concatenate(labels)[:n_events]
    seg_start = np.asarray(seg_start, np.int64)
    seg_regime = np.asarray(seg_regime, np.int64)
    keep = seg_start <= time_ns[-1]
    seg_start, seg_regime = seg_start[keep], seg_regime[keep]

    vol = np.array([r.vol for r in regimes])[regime]
    drift = np.array([r.drift for r in regimes])[regime]
    dt = np.diff(time_ns, prepend=time_ns[0]) / NS_PER_S
    steps = drift * dt + vol * np.sqrt(dt) * rng.standard_normal(n_events)
    price = price0 * np.exp(np.cumsum(steps))
    if tick is not None:
        price = np.maximum(np.round(price / tick) * tick, tick)
    mean_size = np.array([r.mean_size for r in regimes])[regime]
    size = rng.geometric(1.0 / mean_size).astype(np.float64)
    change_ns = seg_start[1:]
    change_index = np.searchsorted(time_ns, change_ns, side="left")
    return SyntheticMarket(Events(time_ns, price, size, tz="UTC", source=f"synthetic(seed={seed})"),
                           regime, tuple(regimes), seg_start, seg_regime, change_ns, change_index)
