"""Perception runners side by side: microseconds per window at batch 1 and batch 256, T=64.

One process, one core (every runtime pinned to 1 thread), the same real E-mini windows for every
row: the numpy reference, torch eager (``LTCEncoder.from_graph``), ONNX Runtime (fp32 in both
graph forms, int8 static / dynamic), LiteRT (fp32, int8 static / dynamic / weight-only), the
Lava target when it is installed, and the ncps LTC and CfC cells with the same units, inputs and
ODE unfolds (timing only: ncps is a different parametrisation of the LTC). Prints the table, the MACs per window and how close the fastest runner gets to this
core's measured fp32 GEMV rate, and writes ``benchmarks/results/perception.md`` (markdown +
JSON). Speed claims live here, never in tests.

    python benchmarks/perception.py [--quick]
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # before numpy loads
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from liquidedge import reference  # noqa: E402

STEPS = 64
BATCHES = (1, 256)
RESULTS = Path(__file__).resolve().parent / "results" / "perception.md"


def best_time(fn, min_seconds: float, rounds: int = 5) -> float:
    """Seconds per call: the best of ``rounds`` rounds, each long enough to beat timer noise."""
    fn()
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-7)
    calls = max(1, int(min_seconds / rounds / one))
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - t0) / calls)
    return best


def gemv_rate(min_seconds: float) -> tuple[float, int]:
    """Best fp32 GEMV rate of this core (MAC/s) over cache-resident sizes, and the size."""
    best, best_n = 0.0, 0
    rng = np.random.default_rng(0)
    for n in (64, 128, 256, 512, 1024):
        w = rng.normal(size=(n, n)).astype(np.float32)
        v = rng.normal(size=n).astype(np.float32)
        out = np.empty(n, np.float32)
        t = best_time(lambda: np.matmul(v, w, out=out), min_seconds / 5)
        if n * n / t > best:
            best, best_n = n * n / t, n
    return best, best_n


def macs_per_window(g, steps: int) -> int:
    """Multiply-accumulates of the matrix products (the elementwise solver work is not counted)."""
    macs = steps * (g.n_inputs * g.hidden + g.unfolds * int(g.wiring.sum()))
    if g.w_out is not None:
        macs += g.w_out.size
    return int(macs)


def real_windows(n_needed: int):
    """A random (untrained) model normalised on the E-mini sample, and its held-out windows."""
    from liquidedge.calibration.windows import representative_windows, stream_windows, train_and_held_out
    from liquidedge.data import DataSpec, build_dataset, load_default_ticks
    from liquidedge.ir import random_model_for

    spec = DataSpec(steps=STEPS)
    ds = build_dataset(load_default_ticks(), spec)
    train, held = train_and_held_out(ds)
    model = random_model_for(train, data_spec=spec.to_dict())
    calib = representative_windows(model, train, 256, seed=0)
    inputs = stream_windows(model, held).inputs
    idx = np.resize(np.arange(len(inputs)), n_needed)
    return model, calib, inputs.take(idx)


def build_rows(model, calib, workdir: Path, quick: bool):
    """(name, encode(x, dt, mask) -> embedding or None) for every runner that is installed."""
    from liquidedge.exporters.onnx import export_onnx
    from liquidedge.exporters.tflite import export_tflite
    from liquidedge.targets.base import load_runner

    g, h = model.perception, model.content_hash()
    rows = _lava_rows(g, h, workdir)     # first: Lava sets its process start method before torch loads
    rows.append(("numpy reference (float32)",
                 lambda x, dt, m: reference.perception_forward(g, x, dt, m, np.float32)))
    try:
        import torch

        from liquidedge.model.ltc import LTCEncoder

        torch.set_num_threads(1)
        enc = LTCEncoder.from_graph(g).eval()

        def torch_eager(x, dt, m):
            with torch.no_grad():
                return enc(torch.from_numpy(x), torch.from_numpy(dt), torch.from_numpy(m)).numpy()
        rows.append(("torch eager (LTCEncoder)", torch_eager))
    except ImportError as exc:
        print(f"skipping torch eager: {exc}")
    onnx_forms = [("ORT fp32 unrolled", dict()), ("ORT fp32 scan", dict(form="scan")),
                  ("ORT int8 static recurrent", dict(int8="static", scope="recurrent")),
                  ("ORT int8 static matmul", dict(int8="static", scope="matmul")),
                  ("ORT int8 dynamic", dict(int8="dynamic"))]
    tflite_forms = [("LiteRT fp32", dict()), ("LiteRT int8 static recurrent", dict(int8="static", scope="recurrent")),
                    ("LiteRT int8 dynamic", dict(int8="dynamic")), ("LiteRT int8 weight-only", dict(int8="weight"))]
    if quick:
        onnx_forms, tflite_forms = onnx_forms[:1] + onnx_forms[2:3], tflite_forms[:2]
    for i, (name, kw) in enumerate(onnx_forms):
        path = export_onnx(g, workdir / f"ort{i}.onnx", STEPS, h, calib=calib, **kw)
        rows.append((name, load_runner(path, threads=1).encode))
    for i, (name, kw) in enumerate(tflite_forms):
        path = export_tflite(g, workdir / f"litert{i}.tflite", STEPS, h, calib=calib, batch_sizes=BATCHES, **kw)
        rows.append((name, load_runner(path, threads=1).encode))
    rows.extend(_ncps_rows(g))
    return rows


LAVA_BATCHES = (1,)   # Lava's simulator runs one window at a time through its processes: batch 1 only


def _lava_rows(g, h, workdir: Path):
    try:
        from liquidedge.exporters import lava as lava_exporter
        from liquidedge.targets import lava as lava_target  # noqa: F401
    except ImportError:
        print("skipping Lava: liquidedge.exporters.lava / liquidedge.targets.lava not installed")
        return []
    try:
        from liquidedge.targets.base import load_runner

        path = lava_exporter.export_lava(g, workdir / "lava", steps=STEPS, model_hash=h)
        return [("Lava floating_pt (CPU simulation)", load_runner(path).encode)]
    except Exception as exc:  # another team's target: report and carry on with the others
        print(f"skipping Lava: {type(exc).__name__}: {exc}")
        return []


def _ncps_rows(g):
    """ncps LTC and CfC with the same units/inputs/unfolds, timespans = dt (not our maths: speed only)."""
    try:
        import torch
        from ncps.torch import CfC, LTC
    except ImportError as exc:
        print(f"skipping ncps: {exc}")
        return []
    ltc = LTC(g.n_inputs, g.hidden, return_sequences=False, ode_unfolds=g.unfolds).eval()
    cfc = CfC(g.n_inputs, g.hidden, return_sequences=False).eval()

    def run(cell):
        def encode(x, dt, m):
            # ncps squeezes per-sample timespans to [B], which its LTC cell cannot broadcast for
            # B > 1: there it runs with unit steps (the same work per step)
            ts = torch.from_numpy(dt) if x.shape[0] == 1 else None
            with torch.no_grad():
                out = cell(torch.from_numpy(x), timespans=ts)
            return (out[0] if isinstance(out, tuple) else out).numpy()
        return encode
    return [(f"ncps LTC (ode_unfolds={g.unfolds})", run(ltc)), ("ncps CfC", run(cfc))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rows and shorter timings")
    parser.add_argument("--seconds", type=float, default=None, help="timing budget per measurement")
    args = parser.parse_args()
    budget = args.seconds or (0.3 if args.quick else 1.5)
    from rich.console import Console
    from rich.table import Table

    model, calib, held = real_windows(max(BATCHES))
    g = model.perception
    with tempfile.TemporaryDirectory() as tmp:
        rows = build_rows(model, calib, Path(tmp), args.quick)
        results = []
        for batch in BATCHES:
            x, dt, m = held.x[:batch], held.dt[:batch], held.mask[:batch]
            ref = reference.perception_forward(g, x, dt, m)
            for name, encode in rows:
                if name.startswith("Lava") and batch not in LAVA_BATCHES:
                    continue
                out = encode(x, dt, m)
                err = float(np.abs(out - ref).max()) if not name.startswith("ncps") else None
                sec = best_time(lambda: encode(x, dt, m), budget if batch == 1 else budget * 2)
                results.append({"runner": name, "batch": batch, "us_per_window": sec / batch * 1e6,
                                "windows_per_s": batch / sec, "max_abs_err_vs_reference": err})
    rate, rate_n = gemv_rate(budget)
    macs = macs_per_window(g, STEPS)
    for batch in BATCHES:
        ncps = next(r for r in results if r["batch"] == batch and r["runner"].startswith("ncps LTC"))
        for r in results:
            if r["batch"] == batch:
                r["speedup_vs_ncps_ltc"] = ncps["us_per_window"] / r["us_per_window"]
                r["gemv_fraction"] = macs / (r["us_per_window"] * 1e-6) / rate
    table = Table(title=f"perception, T={STEPS}, H={g.hidden}, F={g.n_inputs}, unfolds={g.unfolds}, 1 thread")
    for col in ("runner", "batch", "µs/window", "windows/s", "x vs ncps LTC", "max |err| vs ref"):
        table.add_column(col, justify="left" if col == "runner" else "right")
    for r in results:
        err = "-" if r["max_abs_err_vs_reference"] is None else f"{r['max_abs_err_vs_reference']:.1e}"
        table.add_row(r["runner"], str(r["batch"]), f"{r['us_per_window']:.1f}", f"{r['windows_per_s']:,.0f}",
                      f"{r['speedup_vs_ncps_ltc']:.1f}", err)
    console = Console(width=120)
    console.print(table)
    fastest = {b: min((r for r in results if r["batch"] == b), key=lambda r: r["us_per_window"]) for b in BATCHES}
    summary = [f"load average when the run ended (other processes share these cores): "
               f"{', '.join(f'{v:.2f}' for v in os.getloadavg())} on {os.cpu_count()} CPUs",
               f"MACs per window (matrix products): {macs:,}",
               f"this core's best fp32 GEMV rate: {rate / 1e9:.2f} GMAC/s (numpy, {rate_n}x{rate_n})"]
    for b, r in fastest.items():
        summary.append(f"batch {b}: fastest is {r['runner']} at {r['us_per_window']:.1f} µs/window = "
                       f"{macs / (r['us_per_window'] * 1e-6) / 1e9:.2f} GMAC/s = {r['gemv_fraction']:.1%} "
                       f"of the GEMV rate, {r['speedup_vs_ncps_ltc']:.0f}x ncps LTC")
    for line in summary:
        console.print(line)
    _write_results(results, summary, table_title=table.title)


def _write_results(results, summary, table_title: str) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"# {table_title}", "", "Written by `python benchmarks/perception.py` "
             f"on {time.strftime('%Y-%m-%d %H:%M')}.", "",
             "| runner | batch | µs/window | windows/s | x vs ncps LTC | max abs err vs reference |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in results:
        err = "-" if r["max_abs_err_vs_reference"] is None else f"{r['max_abs_err_vs_reference']:.1e}"
        lines.append(f"| {r['runner']} | {r['batch']} | {r['us_per_window']:.1f} | {r['windows_per_s']:,.0f} | "
                     f"{r['speedup_vs_ncps_ltc']:.1f} | {err} |")
    lines += [""] + [f"- {s}" for s in summary]
    lines += ["", "```json", json.dumps({"results": results, "summary": summary}, indent=1), "```", ""]
    RESULTS.write_text("\n".join(lines))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
