"""Peak training memory and time of the LTC: backprop through the solver vs the adjoint method.

Backpropagation through the discretised solver (``gradient="bptt"``) keeps every sub-step's
activations for the backward pass, so its memory grows with T x unfolds. The adjoint method
(``gradient="adjoint"``, torchdiffeq.odeint_adjoint over the LTC vector field, input held per
step) re-integrates backwards instead and keeps only the per-step states. Each measurement runs
in a fresh subprocess so the peak resident set size (``ru_maxrss``) belongs to it alone; the
table reports the peak above a baseline subprocess that builds the same data but trains nothing.

    .venv/bin/python benchmarks/training_memory.py [--steps 64 256 1024] [--batch 16]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
import torch
import torchdiffeq  # imported by every run, so the baseline includes it too
from liquidedge.model.ltc import LTCEncoder
cfg = json.loads(sys.argv[1])
torch.set_num_threads(cfg["threads"])
torch.manual_seed(0)
enc = LTCEncoder(8, cfg["hidden"], solver="rk4", unfolds=cfg["unfolds"], gradient=cfg["gradient"] or "bptt")
x = torch.randn(cfg["batch"], cfg["steps"], 8)
dt = torch.rand(cfg["batch"], cfg["steps"]) + 0.1
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
if cfg["gradient"]:
    loss = enc(x, dt).pow(2).sum()
    loss.backward()
seconds = time.perf_counter() - t0
print(json.dumps({"peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "before_kib": before,
                  "seconds": seconds}))
"""


def measure(steps: int, gradient: str | None, args) -> dict:
    cfg = {"steps": steps, "gradient": gradient, "batch": args.batch, "hidden": args.hidden,
           "unfolds": args.unfolds, "threads": args.threads}
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(cfg)], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, nargs="+", default=[64, 256, 1024])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--unfolds", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"LTC training step (rk4, {args.unfolds} unfolds, batch {args.batch}, "
                        f"hidden {args.hidden}): one forward + backward")
    for col in ("T", "bptt MiB", "adjoint MiB", "memory ratio bptt/adjoint", "bptt s", "adjoint s",
                "time ratio adjoint/bptt"):
        table.add_column(col, justify="right")
    for t in args.steps:
        base = measure(t, None, args)["peak_kib"]
        b, a = measure(t, "bptt", args), measure(t, "adjoint", args)
        mb, ma = (b["peak_kib"] - base) / 1024, (a["peak_kib"] - base) / 1024
        table.add_row(str(t), f"{mb:.1f}", f"{ma:.1f}", f"{mb / max(ma, 1e-3):.1f}x",
                      f"{b['seconds']:.2f}", f"{a['seconds']:.2f}", f"{a['seconds'] / b['seconds']:.1f}x")
    Console(width=150).print(table)


if __name__ == "__main__":
    main()
