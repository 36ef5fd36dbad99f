"""How far an artefact's embeddings are from the fp32 reference, and whether it matters.

Small embedding errors only matter if they change what the system *does*. So besides max abs
error and cosine similarity, the report runs the host memory as one stream over the held-out
windows twice (on the reference embeddings and on the artefact's, same inputs) and counts the
windows on which the memory makes the same update / no-update decision ("decision agreement"),
then compares the decoder's predictions against the data's targets (change in the metric).
One differing update changes the memory, so later decisions can differ too; the report also
gives the agreement when both embeddings meet the same (reference) memory state, which
separates the artefact's own effect from that cascade.

The update threshold must make the decision meaningful: the model's stored threshold when it was
calibrated (``model.calibration["surprise_threshold"]``), otherwise one chosen on the reference
scores of these held-out windows for a target update rate (20% by default), with
``calibration.threshold.calibrate_threshold``. The report says which.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from liquidedge import reference
from liquidedge.calibration.threshold import calibrate_threshold
from liquidedge.calibration.windows import StreamWindows
from liquidedge.errors import ConfigError
from liquidedge.ir import LiquidTitanModel, MemoryGraph


@dataclass
class MemoryRun:
    """The memory stream over one sequence of embeddings, with the decoder's predictions."""

    score: np.ndarray
    updated: np.ndarray
    prediction: np.ndarray


@dataclass
class AgreementReport:
    artefact: str
    target: str
    precision: str
    n_windows: int
    max_abs_error: float
    mean_abs_error: float
    cosine_min: float
    cosine_mean: float
    decision_agreement: float
    same_state_agreement: float
    update_rate_reference: float
    update_rate_artefact: float
    threshold: float
    threshold_source: str
    prediction_max_abs_diff: float
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def memory_run(model: LiquidTitanModel, memory: MemoryGraph, embeddings: np.ndarray) -> MemoryRun:
    """``reference.memory_step`` window by window over one stream, then the decoder (float64)."""
    emb = np.asarray(embeddings, np.float64)
    state = reference.init_memory_state(memory, 1, np.float64)
    scores, updated, retrieved = [], [], []
    for i in range(emb.shape[0]):
        res = reference.memory_step(memory, state, emb[i:i + 1], np.float64)
        state = res.state
        scores.append(res.score[0])
        updated.append(bool(res.updated[0]))
        retrieved.append(res.retrieved[0])
    prediction = reference.decoder_forward(model.decoder, emb, np.asarray(retrieved))
    return MemoryRun(np.asarray(scores), np.asarray(updated), prediction)


def same_state_agreement(memory: MemoryGraph, reference_embeddings: np.ndarray,
                         artefact_embeddings: np.ndarray) -> float:
    """Fraction of windows decided alike when both embeddings meet the *same* memory state (the
    reference stream's): the per-window effect of the artefact, without the cascade that one
    differing update causes in a free-running stream."""
    state = reference.init_memory_state(memory, 1, np.float64)
    same = 0
    for i in range(reference_embeddings.shape[0]):
        ref = reference.memory_step(memory, state, reference_embeddings[i:i + 1], np.float64)
        art = reference.memory_step(memory, state, artefact_embeddings[i:i + 1], np.float64)
        same += int(ref.updated[0] == art.updated[0])
        state = ref.state
    return same / max(reference_embeddings.shape[0], 1)


def choose_threshold(model: LiquidTitanModel, reference_embeddings: np.ndarray,
                     target_rate: float = 0.2) -> tuple[float, str]:
    """The stored threshold if the model's was calibrated, else one for ``target_rate`` here."""
    if "surprise_threshold" in (model.calibration or {}):
        return model.memory.threshold, "stored in the model (calibrated)"

    def run(threshold: float) -> np.ndarray:
        return memory_run(model, replace(model.memory, threshold=threshold), reference_embeddings).score

    cal = calibrate_threshold(run, target_rate, bypass_quantile=1.0)
    # a quantile threshold sits on one window's own score, which makes that window a coin flip
    # for any perturbation; the middle of the gap around it gives the same decisions (so the same
    # stream and rate) with the widest margin
    scores = run(cal.threshold)
    below, above = scores[scores <= cal.threshold], scores[scores > cal.threshold]
    threshold = cal.threshold
    if below.size and above.size:
        threshold = 0.5 * (float(below.max()) + float(above.min()))
    return threshold, (f"chosen on the held-out reference scores for a {target_rate:.0%} update "
                       f"rate, mid-gap (model threshold not calibrated)")


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    return np.sum(a * b, axis=1) / np.maximum(na * nb, 1e-30)


def _metrics(model: LiquidTitanModel, prediction: np.ndarray, dataset, index: np.ndarray) -> dict[str, float]:
    """The training task's own quality metrics (``model.targets.prediction_metrics``) on these
    windows; empty when the data carries no targets or the decoder's outputs name no known task."""
    from liquidedge.model.targets import TASKS, prediction_metrics

    task = next((name for name, outputs in TASKS.items() if tuple(model.decoder.outputs) == outputs), None)
    if dataset is None or task is None or not hasattr(dataset, "take"):
        return {}
    try:
        return prediction_metrics(prediction, dataset.take(index), task)
    except ConfigError:
        return {}


def agreement_report(model: LiquidTitanModel, runner, held_out: StreamWindows, *, dataset=None,
                     artefact: str = "", target_rate: float = 0.2, batch: int = 256,
                     threshold: tuple[float, str] | None = None) -> AgreementReport:
    """Compare ``runner`` (any perception runner) with the fp32 reference on ``held_out`` windows.

    ``held_out`` comes from ``windows.stream_windows`` (time-ordered, stream feedback); pass the
    ``dataset`` it was cut from to get the prediction metrics against real targets.
    """
    manifest = getattr(runner, "manifest", None)
    if manifest is not None and manifest.model_hash and manifest.model_hash != model.content_hash():
        raise ConfigError(f"{artefact or 'artefact'} was exported from model {manifest.model_hash[:12]}..., "
                          f"not from this model ({model.content_hash()[:12]}...)")
    inputs = held_out.inputs
    ref_emb = reference.perception_forward(model.perception, inputs.x, inputs.dt, inputs.mask, np.float64)
    art_emb = np.concatenate([runner.encode(**feed) for feed in inputs.batches(batch)]).astype(np.float64)
    err = np.abs(art_emb - ref_emb)
    cos = _cosine(art_emb, ref_emb)
    thr, source = threshold or choose_threshold(model, ref_emb, target_rate)
    memory = replace(model.memory, threshold=thr)
    ref_run, art_run = memory_run(model, memory, ref_emb), memory_run(model, memory, art_emb)
    ref_m = _metrics(model, ref_run.prediction, dataset, held_out.index)
    art_m = _metrics(model, art_run.prediction, dataset, held_out.index)
    metrics = {k: {"reference": ref_m[k], "artefact": art_m[k], "change": art_m[k] - ref_m[k]} for k in ref_m}
    return AgreementReport(
        artefact=artefact, target=getattr(manifest, "target", "unknown"),
        precision=getattr(manifest, "precision", "unknown"), n_windows=len(inputs),
        max_abs_error=float(err.max()), mean_abs_error=float(err.mean()),
        cosine_min=float(cos.min()), cosine_mean=float(cos.mean()),
        decision_agreement=float(np.mean(ref_run.updated == art_run.updated)),
        same_state_agreement=same_state_agreement(memory, ref_emb, art_emb),
        update_rate_reference=float(ref_run.updated.mean()), update_rate_artefact=float(art_run.updated.mean()),
        threshold=float(thr), threshold_source=source,
        prediction_max_abs_diff=float(np.abs(ref_run.prediction - art_run.prediction).max()),
        metrics=metrics)


def report_table(reports: list[AgreementReport]):
    """A rich Table of the reports (one row per artefact)."""
    from rich.table import Table

    table = Table(title="artefact vs fp32 reference (held-out windows)")
    for col in ("artefact", "precision", "n", "max|err|", "cos min", "cos mean", "decisions",
                "same-state", "updates ref/art", "metric change"):
        table.add_column(col, justify="left" if col in ("artefact", "precision") else "right",
                         overflow="fold")
    for r in reports:
        change = ", ".join(f"{k} {v['change']:+.4f}" for k, v in r.metrics.items()) or "-"
        table.add_row(Path(r.artefact).name, r.precision, str(r.n_windows), f"{r.max_abs_error:.1e}",
                      f"{r.cosine_min:.5f}", f"{r.cosine_mean:.5f}", f"{r.decision_agreement:.1%}",
                      f"{r.same_state_agreement:.1%}",
                      f"{r.update_rate_reference:.0%}/{r.update_rate_artefact:.0%}", change)
    return table


def evaluate_artefacts(model: LiquidTitanModel, artefacts, held_out: StreamWindows, *, dataset=None,
                       target_rate: float = 0.2, **runner_options) -> list[AgreementReport]:
    """One report per artefact path, all against the same reference run and threshold."""
    from liquidedge.targets.base import load_runner

    inputs = held_out.inputs
    ref_emb = reference.perception_forward(model.perception, inputs.x, inputs.dt, inputs.mask, np.float64)
    threshold = choose_threshold(model, ref_emb, target_rate)
    return [agreement_report(model, load_runner(path, **runner_options), held_out, dataset=dataset,
                             artefact=str(path), threshold=threshold) for path in artefacts]


def report_for_model(model_dir, artefacts, *, data=None, target_rate: float = 0.2,
                     **runner_options) -> list[AgreementReport]:
    """Load ``model_dir`` (verified), take the held-out (last) part of its data, report each artefact.

    ``data``: a ``liquidedge.data.Dataset``; the E-mini sample cut with the model's data spec
    when omitted.
    """
    from liquidedge.calibration.windows import dataset_for_model, stream_windows, train_and_held_out
    from liquidedge.ir import load_model

    model = load_model(model_dir)
    _, held = train_and_held_out(dataset_for_model(model, data))
    return evaluate_artefacts(model, list(artefacts), stream_windows(model, held), dataset=held,
                              target_rate=target_rate, **runner_options)
