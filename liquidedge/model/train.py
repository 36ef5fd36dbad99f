"""Training the Liquid-Titan hybrid: truncated BPTT through windows with the memory's updates inside.

The training stream is cut into ``streams`` contiguous stretches run in parallel, each with its
own memory state; every optimiser step backpropagates through ``seq_windows`` consecutive windows
(LTC solver steps, the memory's test-time updates and the fed-back predictions included), then
the carried state is detached and the next stretch continues from it. The outer loop therefore
learns the LTC, the memory's projections, gates and initial weights, and the decoder.

``mode="end_to_end"`` trains everything at once; ``mode="decoupled"`` first trains the LTC with
the memory off, freezes it, then trains the memory side (with the chunked memory scan when no
predictions are fed back, since the embeddings are then fixed). AdamW, gradient-norm clipping,
seeded, early stopping on a validation split that lies later in time than the training split.

Training runs the memory with threshold 0 (always update: the hard gate has no gradient); the
deployment threshold is then calibrated on the validation windows from ``target_update_rate``.
"""
from __future__ import annotations

import copy
import json
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from liquidedge.calibration.threshold import calibrate_model
from liquidedge.errors import ConfigError
from liquidedge.ir import LiquidTitanModel
from liquidedge.model.evaluate import evaluate_model
from liquidedge.model.hybrid import LiquidTitan
from liquidedge.model.ltc import GRADIENTS
from liquidedge.model.targets import task_outputs, task_targets
from liquidedge.wiring import NCPWiring

MODES = ("end_to_end", "decoupled")


@dataclass
class TrainConfig:
    """Every training choice; json-loadable (``from_json``) and recorded in the model file."""

    # task and data
    task: str = "market"
    data_spec: dict[str, Any] | None = None      # DataSpec fields (None: defaults; for Bars, spec_for_bars)
    split: tuple[float, ...] = (0.6, 0.2, 0.2)    # train / validation / test, in time order
    # perception
    hidden: int = 32
    wiring: dict[str, Any] | None = None          # NCPWiring.to_dict(); None: dense
    solver: str = "fused"
    unfolds: int = 1
    readout: int | None = None
    gradient: str = "bptt"                        # or "adjoint" (solver euler/rk4)
    # memory
    memory: bool = True                           # False: the memory-off ablation (retrieved = 0)
    mem_dim: int = 16
    mem_depth: int = 2
    mem_expansion: int = 2
    attentional_bias: str = "l2"
    lr_max: float = 0.1
    eta_max: float = 0.9
    mem_grad_clip: float = 1.0
    gates: str = "data"
    # decoder and feedback
    decoder_hidden: int = 32
    feedback: bool = True
    # optimisation
    mode: str = "end_to_end"
    streams: int = 8
    seq_windows: int = 16
    epochs: int = 25
    pretrain_epochs: int = 10
    chunk: int = 8
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    clip_norm: float = 1.0
    patience: int = 5
    direction_weight: float = 0.1
    time_budget_s: float | None = None
    seed: int = 0
    threads: int | None = None
    progress: bool = True
    # surprise-threshold calibration
    target_update_rate: float = 0.5
    bypass_quantile: float = 0.99

    def __post_init__(self) -> None:
        self.split = tuple(float(v) for v in self.split)
        task_outputs(self.task)
        if self.mode not in MODES:
            raise ConfigError(f"TrainConfig.mode: expected one of {MODES}, got {self.mode!r}")
        if self.gradient not in GRADIENTS:
            raise ConfigError(f"TrainConfig.gradient: expected one of {GRADIENTS}, got {self.gradient!r}")
        for name in ("streams", "seq_windows", "epochs", "chunk", "hidden", "mem_dim", "decoder_hidden"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"TrainConfig.{name}: expected >= 1, got {getattr(self, name)}")
        if self.pretrain_epochs < 0 or self.patience < 1:
            raise ConfigError("TrainConfig: pretrain_epochs must be >= 0 and patience >= 1")
        if not (self.learning_rate > 0 and self.clip_norm > 0 and self.weight_decay >= 0):
            raise ConfigError("TrainConfig: learning_rate and clip_norm must be > 0, weight_decay >= 0")
        if not 0.0 <= self.target_update_rate <= 1.0 or not 0.0 <= self.bypass_quantile <= 1.0:
            raise ConfigError("TrainConfig: target_update_rate and bypass_quantile are fractions in [0, 1]")
        if len(self.split) < 2 or any(v < 0 for v in self.split) or not np.isclose(sum(self.split), 1.0):
            raise ConfigError(f"TrainConfig.split: expected >= 2 fractions summing to 1, got {self.split}")
        if self.wiring is not None:
            NCPWiring.from_dict(self.wiring)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["split"] = list(self.split)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        if not isinstance(d, dict):
            raise ConfigError(f"TrainConfig: expected a JSON object, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"TrainConfig: unknown keys {unknown}; expected some of {sorted(known)}")
        try:
            return cls(**d)
        except (TypeError, ValueError) as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"TrainConfig: {exc}") from None

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> "TrainConfig":
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: not valid JSON ({exc})") from None
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the config ({exc})") from None


@dataclass
class TrainReport:
    """What happened: per-epoch losses, when and why training stopped, and the held-out scores."""

    config: dict[str, Any]
    seconds: float
    epochs_run: int
    best_epoch: int
    stopped: str                      # "early_stopping" | "epochs" | "time_budget"
    n_windows: dict[str, int]
    history: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ----------------------------------------------------------------------------- data preparation

def _dataset_of(data, config: TrainConfig):
    from liquidedge.data import Bars, DataSpec, Dataset, build_dataset, spec_for_bars
    from liquidedge.data.ticks import Events

    if isinstance(data, Dataset) or hasattr(data, "x") and hasattr(data, "dt_s"):
        return data
    if isinstance(data, Events):
        return build_dataset(data, DataSpec.from_dict(config.data_spec or {}))
    if isinstance(data, Bars):   # no spec given: the bar sample's windows, for these bars
        return build_dataset(data, DataSpec.from_dict(config.data_spec or spec_for_bars(data)))
    raise ConfigError(f"train_model: expected liquidedge.data Events, Bars or a Dataset, got {type(data).__name__}")


@dataclass
class _Arrays:
    """One split as tensors: normalised x [N,T,F], dt in LTC units, mask, targets, valid."""

    x: torch.Tensor
    dt: torch.Tensor
    mask: torch.Tensor
    y: torch.Tensor
    valid: torch.Tensor

    def streams(self, b: int) -> "_Arrays":
        """Cut into b contiguous streams [b, S, ...] (the oldest leftover windows are dropped)."""
        n = self.x.shape[0]
        s = n // b
        if s < 1:
            raise ConfigError(f"training split has {n} windows, fewer than streams={b}")
        cut = n - b * s
        return _Arrays(*(a[cut:].reshape(b, s, *a.shape[1:]) for a in
                         (self.x, self.dt, self.mask, self.y, self.valid)))


def _arrays(part, norm, task: str) -> _Arrays:
    x = norm.apply(part.x, part.mask)
    dt = norm.scale_dt(part.dt_s, part.mask)
    y, valid = task_targets(part, task)
    t = lambda a, dtype=torch.float32: torch.as_tensor(np.ascontiguousarray(a), dtype=dtype)  # noqa: E731
    return _Arrays(t(x), t(dt), t(np.asarray(part.mask, np.float32)), t(np.nan_to_num(y)), t(valid, torch.bool))


def task_loss(pred: torch.Tensor, y: torch.Tensor, valid: torch.Tensor, task: str,
              direction_weight: float) -> torch.Tensor:
    """MSE of the first output (log vol / next value), plus weighted BCE of the direction logit."""
    v = valid.to(pred.dtype)
    n = torch.clamp(v.sum(), min=1.0)
    loss = (((pred[..., 0] - y[..., 0]) ** 2) * v).sum() / n
    if task == "market" and direction_weight > 0:
        bce = F.binary_cross_entropy_with_logits(pred[..., 1], y[..., 1], reduction="none")
        loss = loss + direction_weight * (bce * v).sum() / n
    return loss


# ----------------------------------------------------------------------------- the loop

class _Trainer:
    def __init__(self, model: LiquidTitan, config: TrainConfig, train: _Arrays, val: _Arrays, progress):
        self.model, self.cfg, self.val, self.progress = model, config, val, progress
        self.train = train.streams(config.streams)
        self.history: list[dict[str, Any]] = []
        self.epoch = 0
        self.start = time.perf_counter()
        self.stopped = "epochs"

    def out_of_time(self) -> bool:
        budget = self.cfg.time_budget_s
        return budget is not None and time.perf_counter() - self.start > budget

    def val_loss(self, memory_on: bool) -> float:
        """MSE of the primary output (log vol / next value) on the validation split, run as one
        stream from a fresh memory, as deployment runs it. The direction term is left out: it
        is mostly noise and would make early stopping chase it."""
        self.model.eval()
        with torch.no_grad():
            v = self.val
            out = self.model.run(v.x[None], v.dt[None], v.mask[None], memory_on=memory_on)
            loss = task_loss(out.prediction, v.y[None], v.valid[None], self.cfg.task, 0.0)
        self.model.train()
        return float(loss)

    def phase(self, name: str, params, epochs: int, memory_on: bool, step_fn) -> int:
        """Train ``params`` for up to ``epochs`` with early stopping; keeps the best weights."""
        if epochs == 0:
            return self.epoch
        opt = torch.optim.AdamW(params, lr=self.cfg.learning_rate, weight_decay=self.cfg.weight_decay)
        best = (self.val_loss(memory_on), self.epoch, copy.deepcopy(self.model.state_dict()))
        s = self.train.x.shape[1]
        seg = self.cfg.seq_windows
        n_seg = -(-s // seg)
        task = self.progress.add_task(name, total=epochs * n_seg, loss=float("nan"), val=best[0])
        bad = 0
        for _ in range(epochs):
            self.epoch += 1
            t0 = time.perf_counter()
            losses = []
            for loss in step_fn(seg):
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, self.cfg.clip_norm)
                opt.step()
                losses.append(loss.detach().item())
                self.progress.update(task, advance=1, loss=float(np.mean(losses)))
            val = self.val_loss(memory_on)
            self.progress.update(task, val=val)
            self.history.append({"phase": name, "epoch": self.epoch, "train_loss": float(np.mean(losses)),
                                 "val_loss": val, "seconds": time.perf_counter() - t0})
            if val < best[0] - 1e-6:
                best, bad = (val, self.epoch, copy.deepcopy(self.model.state_dict())), 0
            else:
                bad += 1
            if bad >= self.cfg.patience:
                self.stopped = "early_stopping"
                break
            if self.out_of_time():
                self.stopped = "time_budget"
                break
        self.progress.update(task, completed=epochs * n_seg)
        self.model.load_state_dict(best[2])
        return best[1]

    def hybrid_steps(self, memory_on: bool):
        """Truncated BPTT over consecutive segments of every stream, carrying detached state."""
        def steps(seg: int):
            tr = self.train
            state, prev = None, None
            for s0 in range(0, tr.x.shape[1], seg):
                sl = slice(s0, s0 + seg)
                out = self.model.run(tr.x[:, sl], tr.dt[:, sl], tr.mask[:, sl], state, prev, memory_on=memory_on)
                yield task_loss(out.prediction, tr.y[:, sl], tr.valid[:, sl], self.cfg.task,
                                self.cfg.direction_weight)
                state, prev = out.state.detach(), out.last_prediction.detach()
                if self.out_of_time():
                    return
        return steps

    def scan_steps(self):
        """Memory side only, no feedback: embeddings are fixed, so compute them once and train
        the memory with its chunked scan."""
        tr, m = self.train, self.model
        with torch.no_grad():
            b, s = tr.x.shape[:2]
            flat = lambda a: a.reshape(b * s, *a.shape[2:])  # noqa: E731
            emb = m.encoder(m.window_inputs(flat(tr.x), flat(tr.mask), None), flat(tr.dt), flat(tr.mask))
            emb = emb.reshape(b, s, -1)

        def steps(seg: int):
            state = None
            for s0 in range(0, s, seg):
                e = emb[:, s0:s0 + seg]
                state = m.memory.init_state(b) if state is None else state
                res = m.memory.scan(state, e, chunk=self.cfg.chunk)
                pred = m.decoder(e, res.retrieved)
                yield task_loss(pred, tr.y[:, s0:s0 + seg], tr.valid[:, s0:s0 + seg], self.cfg.task,
                                self.cfg.direction_weight)
                state = res.state.detach()
                if self.out_of_time():
                    return
        return steps


def _progress(enabled: bool):
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("loss {task.fields[loss]:.4f}  val {task.fields[val]:.4f}"),
                    TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), disable=not enabled)


def build_hybrid(config: TrainConfig, n_features: int, output_bias: np.ndarray | None = None) -> LiquidTitan:
    """The untrained hybrid a config describes."""
    wiring = NCPWiring.from_dict(config.wiring) if config.wiring is not None else None
    return LiquidTitan.build(
        n_features, hidden=config.hidden, wiring=wiring, solver=config.solver, unfolds=config.unfolds,
        readout=config.readout, gradient=config.gradient, mem_dim=config.mem_dim, mem_depth=config.mem_depth,
        mem_expansion=config.mem_expansion,
        memory_options={"attentional_bias": config.attentional_bias, "lr_max": config.lr_max,
                        "eta_max": config.eta_max, "grad_clip": config.mem_grad_clip, "gates": config.gates},
        decoder_hidden=config.decoder_hidden, outputs=task_outputs(config.task), output_bias=output_bias,
        feedback=config.feedback, seed=config.seed)


def train_model(data, config: TrainConfig | None = None) -> tuple[LiquidTitanModel, TrainReport]:
    """Train on ``data`` (liquidedge.data Events, or a Dataset already built) and return the
    deployable model (thresholds calibrated, settings and metrics recorded) and a report."""
    from liquidedge.data import Normaliser, split

    cfg = config or TrainConfig()
    t_start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.set_num_threads(int(cfg.threads or os.cpu_count() or 1))
    dataset = _dataset_of(data, cfg)
    parts = split(dataset, cfg.split)
    train, val = parts[0], parts[1]
    test = parts[2] if len(parts) > 2 else None
    for name, part in (("training", train), ("validation", val)):
        if len(part) == 0 or not task_targets(part, cfg.task)[1].any():
            raise ConfigError(f"the {name} split has no windows with valid targets; use more data")
    norm = Normaliser(tuple(dataset.feature_names)).fit(train.x, train.mask, train.dt_s)
    tr_arr, va_arr = _arrays(train, norm, cfg.task), _arrays(val, norm, cfg.task)
    y_tr, ok = task_targets(train, cfg.task)
    bias = np.zeros(len(task_outputs(cfg.task)), np.float32)
    bias[0] = float(np.mean(y_tr[ok, 0]))
    model = build_hybrid(cfg, dataset.x.shape[-1], bias)

    with _progress(cfg.progress) as progress:
        trainer = _Trainer(model, cfg, tr_arr, va_arr, progress)
        everything = [p for p in model.parameters() if p.requires_grad]
        if cfg.mode == "end_to_end" or not cfg.memory:
            best = trainer.phase("train", everything, cfg.epochs, cfg.memory, trainer.hybrid_steps(cfg.memory))
        else:
            enc_dec = [p for p in model.encoder.parameters()] + [p for p in model.decoder.parameters()]
            trainer.phase("pretrain LTC", enc_dec, cfg.pretrain_epochs, False, trainer.hybrid_steps(False))
            for p in model.encoder.parameters():
                p.requires_grad_(False)
            memory_side = [p for p in model.memory.parameters() if p.requires_grad] + list(model.decoder.parameters())
            steps = trainer.scan_steps() if not cfg.feedback else trainer.hybrid_steps(True)
            trainer.stopped = "epochs"
            best = trainer.phase("train memory", memory_side, cfg.epochs, True, steps)
            for p in model.encoder.parameters():
                p.requires_grad_(True)
    train_seconds = time.perf_counter() - t_start

    training = {"task": cfg.task, "memory_on": cfg.memory, "config": cfg.to_dict(),
                "seconds": round(train_seconds, 2), "best_epoch": best, "epochs_run": trainer.epoch,
                "stopped": trainer.stopped, "threshold_during_training": 0.0,
                "normaliser": norm.to_dict()}
    ir = model.to_ir(norm.mean, norm.std, norm.dt_unit, data_spec=dataset.spec.to_dict(), training=training)
    calibration: dict[str, Any] = {}
    if cfg.memory:
        ir, cal = calibrate_model(ir, val.x, val.dt_s, val.mask, cfg.target_update_rate,
                                  bypass_quantile=cfg.bypass_quantile)
        calibration = cal.to_dict()
    metrics = {}
    for name, part in (("validation", val), ("test", test)):
        if part is not None and len(part):
            m = evaluate_model(ir, part)
            if cfg.memory:
                off = evaluate_model(ir, part, memory_on=False)
                m.update({f"memory_off_{k}": v for k, v in off.items()
                          if k.startswith("mse") and not k.endswith("ewma")})
            metrics[name] = m
    training["metrics"] = metrics
    ir.training = training
    report = TrainReport(config=cfg.to_dict(), seconds=time.perf_counter() - t_start, epochs_run=trainer.epoch,
                         best_epoch=best, stopped=trainer.stopped,
                         n_windows={"train": len(train), "validation": len(val), "test": len(test or [])},
                         history=trainer.history, metrics=metrics, calibration=calibration)
    return ir, report
