"""The demo's report folder: PNG plots people would rather look at than read, and one HTML page.

Plots: price with surprise spikes and memory updates marked, the volatility forecast against what
was realised (beside the EWMA persistence baseline), training curves, and latency/energy per target
(written by the energy stage). The page embeds the plots and the per-target table.
"""
from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np

from liquidedge.plots import pyplot, save_figure


def _times(ns: np.ndarray) -> np.ndarray:
    return np.asarray(ns, dtype="datetime64[ns]")


def plot_price_surprise(stream: dict[str, Any], png: Path) -> Path:
    """Price of the streamed trades, windows the memory learned from marked, surprise below."""
    plt = pyplot()
    ev, results = stream["events"], stream["results"]
    step = max(1, len(ev) // 5000)
    end = np.array([r.end_ns for r in results], np.int64)
    score = np.array([np.nan if r.surprise is None else r.surprise for r in results])
    upd = np.array([r.updated for r in results], bool)
    price_at = ev.price[np.clip(np.searchsorted(ev.time_ns, end, side="right") - 1, 0, len(ev) - 1)]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(11, 6), sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    ax1.plot(_times(ev.time_ns[::step]), ev.price[::step], lw=0.7, color="0.3", label="E-mini price")
    ax1.scatter(_times(end[upd]), price_at[upd], s=12, color="tab:red", zorder=3,
                label=f"memory update ({int(upd.sum())} of {len(upd)} windows)")
    ax1.set_ylabel("price")
    ax1.legend(loc="upper left", fontsize=8)
    ax1.set_title("Held-out trades streamed edge -> host: where the memory was surprised enough to learn")
    ax2.plot(_times(end), score, lw=0.8, color="tab:blue", label="surprise (host)")
    ax2.axhline(stream["threshold"], color="tab:red", ls="--", lw=0.8, label="calibrated threshold")
    ax2.set_ylabel("surprise ||grad||")
    ax2.legend(loc="upper left", fontsize=8)
    return save_figure(fig, png, dates=True)


def forecast_vs_realised(model, stream: dict[str, Any]) -> dict[str, np.ndarray]:
    """Realised next-horizon log vol for each streamed window, from bars of the same trades."""
    from liquidedge.data import DataSpec, build_bars, ewma_logvol_forecast, future_targets

    spec = DataSpec.from_dict(model.data_spec) if model.data_spec else DataSpec()
    ev, results = stream["events"], stream["results"]
    bars = build_bars(ev, spec.bar_kind, spec.bar_threshold, min_dt_s=spec.min_dt_s)
    end = np.array([r.end_ns for r in results], np.int64)
    end_bar = np.clip(np.searchsorted(bars.end_ns, end, side="right") - 1, 0, len(bars) - 1)
    realised, _, valid = future_targets(bars, end_bar, spec.horizon, vol_floor=spec.vol_floor)
    ewma = ewma_logvol_forecast(bars, end_bar, spec.horizon, halflife=spec.ewma_halflife, vol_floor=spec.vol_floor)
    forecast = np.array([r.prediction[0] for r in results], np.float64)
    return {"end_ns": end, "realised": realised, "valid": valid, "ewma": ewma, "forecast": forecast}


def plot_forecast(fv: dict[str, np.ndarray], png: Path, *, horizon: int = 16,
                  title: str = "Forecast against the realised value (held-out trades, as served by the host)"
                  ) -> dict[str, float]:
    """Realised log vol, the model's forecast, EWMA and any ``extra`` forecasts ({label: values})
    in ``fv``; returns each one's MSE on the valid windows."""
    plt = pyplot()
    ok = fv["valid"]
    lines = {"model": ("Liquid-Titan forecast", fv["forecast"]), "ewma": ("EWMA persistence", fv["ewma"]),
             **{k: (k, v) for k, v in fv.get("extra", {}).items()}}
    mse = {k: float(np.mean((v[ok] - fv["realised"][ok]) ** 2)) if ok.any() else float("nan")
           for k, (_, v) in lines.items()}
    fig, ax = plt.subplots(figsize=(11, 4))
    t = _times(fv["end_ns"][ok])
    ax.plot(t, fv["realised"][ok], lw=1.0, color="0.2", label=f"realised (next {horizon} bars)")
    styles = {"model": dict(lw=1.0, color="tab:blue"), "ewma": dict(lw=0.8, color="tab:orange", ls="--")}
    for k, (label, v) in lines.items():
        ax.plot(t, v[ok], **styles.get(k, dict(lw=0.8, ls=":")), label=f"{label} (MSE {mse[k]:.3f})")
    ax.set_ylabel("log realised volatility")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8)
    save_figure(fig, png, dates=True)
    return mse


def plot_training(history: list[dict[str, Any]], png: Path) -> Path | None:
    if not history:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for phase in dict.fromkeys(h["phase"] for h in history):
        hs = [h for h in history if h["phase"] == phase]
        ax.plot([h["epoch"] for h in hs], [h["train_loss"] for h in hs], marker=".", label=f"{phase}: train")
        ax.plot([h["epoch"] for h in hs], [h["val_loss"] for h in hs], marker=".", ls="--", label=f"{phase}: validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.legend(fontsize=7)
    ax.set_title("Training (validation is later in time than training)")
    return save_figure(fig, png)


def _table_html(targets) -> str:
    head = ("target", "precision", "windows", "max |err|", "cosine min", "decision agreement",
            "latency ms", "µJ / inference", "method")
    rows = []
    for t in targets:
        a, e = t.agreement, t.energy
        lat = e.get("latency_ms")
        cells = (t.name, t.precision, a.get("n_windows", "-"), f"{a.get('max_abs_error', float('nan')):.1e}",
                 f"{a.get('cosine_min', float('nan')):.5f}", f"{a.get('decision_agreement', float('nan')):.1%}",
                 "-" if lat is None else f"{lat:.3f}", f"{e.get('uj', float('nan')):.3g}",
                 f"{e.get('method', '-')}: {e.get('source', '')}")
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    return ("<table><thead><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")


def write_report(folder: Path, *, model, dataset, train_report, targets, stream) -> Path:
    """Write the plots and ``index.html`` into ``folder``; return the page's path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    plot_price_surprise(stream, folder / "price_surprise.png")
    fv = forecast_vs_realised(model, stream)
    mse = plot_forecast(fv, folder / "forecast.png")
    stream["forecast_mse"] = mse
    training_png = plot_training(train_report.history, folder / "training.png")
    results = stream["results"]
    test = train_report.metrics.get("test", {})
    metric_rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.4f}</td></tr>" for k, v in test.items()
                          if isinstance(v, (int, float)))
    imgs = ["price_surprise.png", "forecast.png"] + (["training.png"] if training_png else [])
    if (folder / "energy.png").exists():
        imgs.append("energy.png")
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>liquidedge demo report</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1150px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;font-size:13px}}
th{{background:#f3f3f3}}img{{max-width:100%;margin:1em 0;border:1px solid #eee}}</style></head><body>
<h1>liquidedge demo: Liquid-Titan on real E-mini trades</h1>
<p>Model hash <code>{model.content_hash()[:16]}</code>; trained in {train_report.seconds:.0f} s
({train_report.epochs_run} epochs, stopped: {html.escape(train_report.stopped)}).
Held-out stream: {len(stream['events']):,} trades, {len(results)} windows, {int(sum(r.updated for r in results))}
memory updates; host surprise vs numpy reference max |diff| {stream['max_surprise_diff']:.2e}.
Forecast MSE of log realised volatility on the streamed windows: model {mse['model']:.4f}, EWMA persistence {mse['ewma']:.4f}.</p>
<h2>Targets</h2>{_table_html(targets)}
<p>Latency is measured on this machine; energy is <em>estimated</em> from operation counts (Horowitz, ISSCC 2014,
scaled per device; Loihi rows from Lava op counts with Loihi-1 figures as a proxy) unless the method says measured.</p>
<h2>Held-out test metrics (batch evaluation)</h2><table>{metric_rows}</table>
{''.join(f'<img src="{i}" alt="{i}">' for i in imgs)}
</body></html>"""
    out = folder / "index.html"
    out.write_text(page)
    return out
