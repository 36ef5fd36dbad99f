"""Loihi-2 simulation speed beside the numpy reference, on held-out real E-mini windows.

Run from the repository root: ``.venv/bin/python benchmarks/loihi2_sim.py [--windows N] [--seeds S]``.
Prints one table measured side by side in one run: windows/s of the numpy reference, the numpy
fixed-point mirror and Lava's simulator (floating_pt; fixed_pt with one and with two 8-bit
synapses per weight), each as a ratio to the reference, with the agreement and the Loihi
energy/latency estimate, for a dense and an NCP-wired LTC; then a table of where fixed_pt
decision disagreements come from, over every held-out window and several model seeds.

``benchmarks/perception.py`` may import ``lava_windows_per_s`` from here to add a Lava row. This
file's name matches the ``lava`` package: scripts in ``benchmarks/`` find it first on sys.path,
which ``liquidedge.lava_compat.ensure_lava`` looks past; import this file by path
(``importlib.util.spec_from_file_location``), never as ``import lava``.
"""
import argparse
import time
from dataclasses import replace

import numpy as np

from liquidedge import reference
from liquidedge.energy.loihi import loihi_estimate
from liquidedge.exporters.lava import export_lava
from liquidedge.lava_procs import fixed_point as fxp
from liquidedge.targets.base import load_runner
from liquidedge.targets.lava import decision_agreement, embedding_agreement


def lava_windows_per_s(model, x, dt, mask, precision: str = "floating_pt", repeats: int = 1,
                       weight_synapses: int = 1):
    """Windows/s of ``LavaRunner.encode`` on these windows, plus the embeddings and counts.

    The network is compiled by one warm-up window before the clock starts, so the figure is
    the simulator's steady rate, comparable with the other targets' encode rates.
    """
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = export_lava(model, tmp, steps=x.shape[1], precision=precision, weight_synapses=weight_synapses)
        with load_runner(path) as runner:
            runner.encode(x[:1], dt[:1], mask[:1])
            start = time.perf_counter()
            for _ in range(repeats):
                emb, counts = runner.encode(x, dt, mask, return_counts=True)
            rate = repeats * x.shape[0] / (time.perf_counter() - start)
    return rate, emb, counts


def _rate(fn, n: int, min_s: float = 0.5) -> float:
    runs, start = 0, time.perf_counter()
    while True:
        fn()
        runs += 1
        if time.perf_counter() - start >= min_s:
            return runs * n / (time.perf_counter() - start)


def fitted_random_model(dataset, hidden: int = 32, wiring=None, input_mask=None, seed: int = 0):
    """A seeded random LTC with normalisation and time unit fitted to ``dataset`` (train part)."""
    from liquidedge.ir import random_model_for

    m = random_model_for(dataset, hidden=hidden, wiring=wiring, seed=seed)
    if input_mask is not None:
        m.perception.w_in = m.perception.w_in * input_mask(m.perception.n_inputs)
    return m


def main(argv=None) -> None:
    from rich.console import Console
    from rich.table import Table

    from liquidedge.data import DataSpec, build_dataset, load_default_ticks, split
    from liquidedge.wiring import NCPWiring

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--windows", type=int, default=60, help="held-out windows per Lava run")
    ap.add_argument("--seeds", type=int, default=6, help="model seeds for the decision table")
    args = ap.parse_args(argv)
    train, _, test = split(build_dataset(load_default_ticks(), DataSpec()))
    ncp = NCPWiring.small(seed=0)
    models = {"dense H=32": fitted_random_model(train, hidden=32),
              f"NCP H={ncp.units}": fitted_random_model(train, hidden=ncp.units, wiring=ncp.mask(),
                                                        input_mask=ncp.input_mask)}
    table = Table(title=f"LTC perception, held-out E-mini windows of {test.x.shape[1]} steps "
                        f"({args.windows} windows per Lava run; speed ratio vs numpy reference)")
    for col in ("model", "runner", "windows/s", "x reference", "max abs", "cosine min",
                "decisions", "synaptic ops", "uJ/window", "latency us"):
        table.add_column(col, justify="left" if col in ("model", "runner") else "right")
    for name, model in models.items():
        x, dt, mask = reference.model_inputs(model, test.x, test.dt_s, test.mask)
        x, dt, mask = x[:args.windows], dt[:args.windows], mask[:args.windows]
        want = reference.perception_forward(model.perception, x, dt, mask)
        ref_rate = _rate(lambda: reference.perception_forward(model.perception, x, dt, mask), len(x))
        table.add_row(name, "numpy reference (fp64)", f"{ref_rate:,.0f}", "1", "-", "-", "-", "-", "-", "-")
        fmt, arrays = fxp.quantise_graph(model.perception)
        mirror = fxp.FixedPointMirror(fmt, arrays, model.perception.unfolds)
        x32, dt32 = x.astype(np.float32), dt.astype(np.float32)
        rate = _rate(lambda: mirror.encode(x32, dt32, mask), len(x))
        got = mirror.encode(x32, dt32, mask)
        agree = embedding_agreement(want, got)
        table.add_row("", "numpy fixed_pt mirror", f"{rate:,.0f}", f"{rate / ref_rate:.3g}",
                      f"{agree['max_abs']:.2g}", f"{agree['cosine_min']:.6f}",
                      f"{decision_agreement(model, want, got)['decision_agreement']:.1%}",
                      "-", "-", "-")
        for precision, synapses in (("floating_pt", 1), ("fixed_pt", 1), ("fixed_pt", 2)):
            rate, got, counts = lava_windows_per_s(model, x, dt, mask, precision, weight_synapses=synapses)
            agree = embedding_agreement(want, got)
            est = loihi_estimate(counts)
            label = f"Lava {precision}" + (", 2 synapses/weight" if synapses == 2 else "")
            table.add_row("", label, f"{rate:,.1f}", f"{rate / ref_rate:.3g}",
                          f"{agree['max_abs']:.2g}", f"{agree['cosine_min']:.6f}",
                          f"{decision_agreement(model, want, got)['decision_agreement']:.1%}",
                          f"{counts['synaptic_ops'].mean():,.0f}", f"{est['uj_per_window']:.3f}",
                          f"{est['latency_us']:.1f}")
    console = Console(width=200)
    console.print(table)
    console.print(_decision_table(train, test, args.seeds))


def _decision_table(train, test, seeds: int):
    """Where fixed_pt decision disagreements come from, on every held-out window (numpy mirror).

    Compares the mirror with the float reference, with the float reference using the same 8-bit
    weights (isolates the integer arithmetic), the reference with the reference plus N(0, 1e-3)
    noise (how sensitive the memory's update decisions are to any perturbation at all), and the
    2-synapses-per-weight variant (16-bit effective weights) with the float reference.
    """
    from rich.table import Table

    table = Table(title=f"fixed_pt on all {len(test)} held-out windows (dense H=32), per model seed")
    for col in ("seed", "cosine min", "decisions vs reference", "vs reference with 8-bit weights",
                "reference vs reference + 1e-3 noise", "2 synapses/weight: max abs", "decisions", "update rate"):
        table.add_column(col, justify="right")
    for seed in range(seeds):
        model = fitted_random_model(train, hidden=32, seed=seed)
        g = model.perception
        x, dt, mask = reference.model_inputs(model, test.x, test.dt_s, test.mask)
        fmt, arrays = fxp.quantise_graph(g)
        got = fxp.FixedPointMirror(fmt, arrays, g.unfolds).encode(x.astype(np.float32), dt.astype(np.float32), mask)
        want = reference.perception_forward(g, x, dt, mask)
        g8 = replace(g, w_in=arrays["w_in_mant"] * 2.0 ** fmt.w_in_exp,
                     w_rec=arrays["w_rec_mant"] * 2.0 ** fmt.w_rec_exp)
        want8 = reference.perception_forward(g8, x, dt, mask)
        noisy = want + np.random.default_rng(seed).normal(0.0, 1e-3, want.shape)
        vs_ref = decision_agreement(model, want, got)
        fmt2, arrays2 = fxp.quantise_graph(g, weight_synapses=2)
        got2 = fxp.FixedPointMirror(fmt2, arrays2, g.unfolds).encode(x.astype(np.float32), dt.astype(np.float32), mask)
        table.add_row(str(seed), f"{embedding_agreement(want, got)['cosine_min']:.6f}",
                      f"{vs_ref['decision_agreement']:.1%}",
                      f"{decision_agreement(replace(model, perception=g8), want8, got)['decision_agreement']:.1%}",
                      f"{decision_agreement(model, want, noisy)['decision_agreement']:.1%}",
                      f"{embedding_agreement(want, got2)['max_abs']:.2g}",
                      f"{decision_agreement(model, want, got2)['decision_agreement']:.1%}",
                      f"{vs_ref['update_rate_reference']:.1%}")
    return table


if __name__ == "__main__":
    main()
