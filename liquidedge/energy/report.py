"""The energy table: one row per perception target (latency, uJ per inference, how it was obtained)
and its bar chart.

For every target the row is *measured* when ``measure=True`` and the device's power meter is
readable here (MLPerf-Tiny method, ``harness``), and *estimated* otherwise: op counts x
published energy per op (``estimate``), or, for a Lava artefact, the Loihi model fed with the
simulator's own op counts (``loihi``). Latency is always measured, on this machine (the row says
which); a Loihi row gives the Loihi model's latency instead, since a simulator's wall time says
nothing about the chip.
"""
from __future__ import annotations

import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from liquidedge.deploy.profiles import DeviceProfile, get_profile
from liquidedge.energy.estimate import estimate_energy
from liquidedge.energy.harness import measure_energy, open_meter
from liquidedge.energy.meter import EnergyMeter
from liquidedge.energy.opcount import count_perception_ops
from liquidedge.errors import ConfigError, ModelFileError
from liquidedge.ir import LiquidTitanModel, PerceptionGraph, load_model
from liquidedge.targets.base import PerceptionRunner, load_runner, read_manifest


@dataclass
class EnergyRow:
    """One target's cost per inference (one window, batch of one)."""

    target: str
    runtime: str
    dtype: str
    latency_ms: float | None
    uj: float
    low_uj: float
    high_uj: float
    method: str                 # "measured" | "estimated"
    source: str                 # meter name, or what the estimate is based on
    device: str
    latency_on: str             # where the latency was measured ("loihi model" for Lava rows)
    notes: list[str] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _host_label() -> str:
    return f"this host ({platform.machine()})"


def window_inputs(steps: int, n_inputs: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A valid, seeded input window of batch one (what a latency/energy run feeds)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, (1, steps, n_inputs)).astype(np.float32)
    dt = rng.uniform(0.5, 1.5, (1, steps)).astype(np.float32)
    return x, dt, np.ones((1, steps), np.float32)


def time_inference(infer: Callable[[], Any], min_seconds: float = 0.3, min_runs: int = 5) -> float:
    """Median wall time of one call, in ms, over at least ``min_runs`` calls and ``min_seconds``."""
    infer()  # warm-up (first-call allocation, graph preparation)
    times = []
    end = time.perf_counter() + min_seconds
    while len(times) < min_runs or time.perf_counter() < end:
        t0 = time.perf_counter()
        infer()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def _open(artefact_or_runner) -> PerceptionRunner:
    if hasattr(artefact_or_runner, "encode") and hasattr(artefact_or_runner, "manifest"):
        return artefact_or_runner
    return load_runner(artefact_or_runner)


def find_model_for(artefact: str | os.PathLike, model_hash: str) -> LiquidTitanModel | None:
    """The model an artefact was exported from, looked for in its directory and up to 3 parents
    (a model directory, or a bundle's ``model/``), matched by content hash."""
    p = Path(artefact).resolve()
    for d in [p.parent, *list(p.parents)[1:4]]:
        for cand in (d, d / "model"):
            if (cand / "model.json").is_file():
                try:
                    m = load_model(cand)
                except ModelFileError:
                    continue
                if m.content_hash() == model_hash:
                    return m
    return None


def _graph_for(runner: PerceptionRunner, source, model) -> PerceptionGraph:
    if isinstance(model, PerceptionGraph):
        return model
    if isinstance(model, LiquidTitanModel):
        return model.perception
    if model is not None:
        return load_model(model).perception
    graph = getattr(runner, "graph", None)
    if isinstance(graph, PerceptionGraph):
        return graph
    if not hasattr(source, "encode"):
        found = find_model_for(source, runner.manifest.model_hash)
        if found is not None:
            return found.perception
    raise ConfigError(f"cannot count the operations of {runner.manifest.target} artefact: its model was not "
                      f"found next to it; pass model= (the model directory it was exported from)")


def energy_row(name: str, artefact_or_runner, precision: str | None = None, device: str | DeviceProfile = "x86-host",
               measure: bool = False, *, model=None, meter: EnergyMeter | None = None,
               window_s: float = 10.0, idle_s: float = 5.0, trials: int = 5,
               allow_short_window: bool = False) -> EnergyRow:
    """The energy-table row of one target (see module docstring)."""
    profile = device if isinstance(device, DeviceProfile) else get_profile(device)
    runner = _open(artefact_or_runner)
    try:
        return _row(name, runner, artefact_or_runner, precision, profile, measure, model, meter,
                    window_s, idle_s, trials, allow_short_window)
    finally:
        if runner is not artefact_or_runner and hasattr(runner, "close"):
            runner.close()  # we opened it (Lava runners hold simulator processes)


def _row(name, runner, source, precision, profile, measure, model, meter, window_s, idle_s, trials,
         allow_short_window) -> EnergyRow:
    man = runner.manifest
    precision = precision or man.precision
    x, dt, mask = window_inputs(man.steps, man.n_inputs)

    if man.target == "lava":
        from liquidedge.energy.loihi import SOURCE, loihi_estimate

        _, counts = runner.encode(x, dt, mask, return_counts=True)
        est = loihi_estimate(counts)
        uj = float(est["uj_per_window"])
        return EnergyRow(name, man.target, precision, float(est["latency_us"]) / 1e3, uj, uj, uj, "estimated",
                         f"Loihi op-count model ({SOURCE})", "loihi2", "loihi model",
                         notes=list(est["assumptions"]),
                         detail={"counts": {k: float(np.mean(v)) for k, v in counts.items()},
                                 "breakdown_uj": est["breakdown_uj"]})

    graph = _graph_for(runner, source, model)
    scope = man.details.get("int8_scope") if isinstance(man.details, dict) else None
    counts = count_perception_ops(graph, man.steps, precision, sparse=False,
                                  int8_scope=scope if precision == man.precision else None)
    est = estimate_energy(counts, profile)
    infer = lambda: runner.encode(x, dt, mask)  # noqa: E731
    if measure:
        meter = meter or open_meter(profile.sensor)
        m = measure_energy(infer, meter, window_s=window_s, idle_s=idle_s, trials=trials,
                           allow_short_window=allow_short_window)
        notes = [f"median of {len(m.trials)} trials, idle {m.idle_w:.2f} W subtracted"]
        if m.short_window:
            notes.append("short window (< 10 s): a quick look, not the MLPerf Tiny method")
        if m.below_noise:
            notes.append("below the meter's noise: inference costs less than the idle fluctuation")
        return EnergyRow(name, man.target, precision, m.latency_ms, m.uj_per_inference, m.min_uj, m.max_uj,
                         "measured", m.meter, profile.name, _host_label(), notes,
                         {"measurement": m.to_dict(), "estimate_uj": est.uj})
    latency = time_inference(infer)
    notes = [f"lower bound: arithmetic + memory only ({est.memory_level}), 45 nm table scaled x{est.scale:.2f}"]
    return EnergyRow(name, man.target, precision, latency, est.uj, est.low_uj, est.high_uj, "estimated",
                     "op counts x Horowitz ISSCC 2014", profile.name, _host_label(), notes,
                     {"estimate": est.to_dict()})


def energy_table(targets: Iterable[tuple[str, Any, str | None]], device: str = "x86-host", measure: bool = False,
                 *, model=None, meter: EnergyMeter | None = None, window_s: float = 10.0, idle_s: float = 5.0,
                 trials: int = 5, allow_short_window: bool = False,
                 progress: Callable[[str], None] | None = None) -> list[EnergyRow]:
    """Rows for ``targets``: (name, artefact path or runner, precision or None for the manifest's)."""
    profile = get_profile(device)
    if measure and meter is None:
        meter = open_meter(profile.sensor)  # fail before any work when the meter is unreadable
    rows = []
    for name, art, precision in targets:
        if progress is not None:
            progress(name)
        rows.append(energy_row(name, art, precision, profile, measure, model=model, meter=meter,
                               window_s=window_s, idle_s=idle_s, trials=trials,
                               allow_short_window=allow_short_window))
    return rows


def targets_in(path: str | os.PathLike) -> list[tuple[str, Any, str | None]]:
    """The targets `liquidedge energy PATH` reports: an artefact, or everything exported in a model
    directory (``*.manifest.json`` / artefact directories below it) plus the numpy reference, run
    on the model's window length (its data spec's, else the artefacts')."""
    p = Path(path)
    if not (p / "model.json").is_file():
        man = read_manifest(p, verify=False)
        return [(man.target, p, None)]
    from liquidedge.targets.numpy_ref import ReferenceRunner

    found: list[tuple[str, Any, str | None]] = []
    steps_seen = []
    for mp in sorted(p.rglob("*.manifest.json")):
        art = mp.with_name(mp.name[: -len(".manifest.json")])
        if art.exists():
            man = read_manifest(art, verify=False)
            found.append((man.target, art, None))
            steps_seen.append(man.steps)
    for mp in sorted(p.rglob("manifest.json")):  # artefact directories (e.g. Lava)
        if mp.parent == p:
            continue
        try:
            man = read_manifest(mp.parent, verify=False)
        except ModelFileError:
            continue  # not an artefact (a bundle's manifest, say)
        found.append((man.target, mp.parent, None))
        steps_seen.append(man.steps)
    model = load_model(p)
    steps = int(model.data_spec["steps"]) if model.data_spec.get("steps") else (steps_seen[0] if steps_seen else 64)
    ref = ("numpy", ReferenceRunner(model.perception, steps, model.content_hash()), "fp32")
    return [ref] + found


def plot_energy(rows: list[EnergyRow], png_path: str | os.PathLike, title: str | None = None) -> Path:
    """Horizontal bars of uJ per inference (log scale), whiskers for the range, coloured by method."""
    from liquidedge.plots import pyplot, save_figure

    plt = pyplot()

    if not rows:
        raise ConfigError("plot_energy: no rows to plot")
    colours = {"measured": "#1b7837", "estimated": "#2166ac"}
    labels = [r.target if r.dtype in r.target else f"{r.target}\n{r.dtype}" for r in rows]
    values = np.array([max(r.uj, 1e-9) for r in rows])
    lo = np.array([max(min(r.low_uj, r.uj), 1e-9) for r in rows])
    hi = np.array([max(r.high_uj, r.uj) for r in rows])
    fig, ax = plt.subplots(figsize=(8, 0.7 * len(rows) + 1.6), dpi=150)
    y = np.arange(len(rows))[::-1]
    ax.barh(y, values, color=[colours.get(r.method, "#777777") for r in rows], height=0.6)
    ax.errorbar(values, y, xerr=[values - lo, hi - values], fmt="none", ecolor="black", capsize=3, lw=1)
    ax.set_xscale("log")
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=8)
    for yi, v, h, r in zip(y, values, hi, rows):
        ms = "" if r.latency_ms is None else f", {r.latency_ms:.2g} ms"
        ax.text(h * 1.2, yi, f"{v:.3g} µJ{ms} ({r.method})", va="center", fontsize=7)
    ax.set_xlabel("energy per inference, µJ (log scale; whiskers: range; estimates are lower bounds)")
    devices = sorted({r.device for r in rows})
    ax.set_title(title or f"Energy per inference on {', '.join(devices)}", fontsize=10)
    ax.set_xlim(lo.min() / 3, hi.max() * 30)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colours.values()]
    ax.legend(handles, list(colours), loc="lower right", fontsize=8)
    ax.grid(axis="x", which="both", alpha=0.25)
    return save_figure(fig, png_path, dpi="figure")


def rich_table(rows: list[EnergyRow]):
    """The table as a rich Table (the CLI prints it); the title says for which device and where
    the latency was measured."""
    from rich.table import Table

    devices = ", ".join(sorted({r.device for r in rows}))
    where = ", ".join(sorted({r.latency_on for r in rows}))
    t = Table(title=f"energy per inference on {devices} (one window, batch 1)",
              caption=f"ms: latency, measured on {where}; µJ/inf: energy per inference")
    for col, just in (("target", "left"), ("dtype", "left"), ("ms", "right"),
                      ("µJ/inf", "right"), ("range µJ", "right"), ("method", "left")):
        t.add_column(col, justify=just, no_wrap=True)
    for r in rows:
        t.add_row(r.target, r.dtype, "-" if r.latency_ms is None else f"{r.latency_ms:.3g}",
                  f"{r.uj:.3g}", f"{r.low_uj:.2g}-{r.high_uj:.2g}", r.method)
    return t
