"""Representative windows for int8 calibration and held-out windows for agreement checks.

Quantisation ranges are only as good as the windows they are measured on: a calibration set
drawn from one quiet afternoon clips every volatile window later. So windows are drawn from the
*training* span, stratified by volatility (quantile bins of the EWMA log-volatility the data
pipeline computes for every window, i.e. calm to turbulent regimes) and spread over time inside
each bin, with a seed, so two exports with the same settings calibrate on the same windows.

Windows are turned into exactly what a perception artefact consumes (``reference.model_inputs``:
normalised features, dt in the LTC's unit, fed-back prediction channels). The fed-back channels
carry the predictions of ``reference.run_stream`` run over the source windows in time order
(``feedback="stream"``, the default: what the deployed loop feeds), or zeros (``"zeros"``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from liquidedge import reference
from liquidedge.errors import ConfigError, InputShapeError
from liquidedge.inputs import check_window
from liquidedge.ir import LiquidTitanModel

FEEDBACK = ("stream", "zeros")


@dataclass
class CalibrationSet:
    """Perception inputs x [N,T,F], dt [N,T] (LTC units), mask [N,T], plus how they were drawn."""

    x: np.ndarray
    dt: np.ndarray
    mask: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.x, self.dt, self.mask = check_window(self.x, self.dt, self.mask, dtype=np.float32)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def steps(self) -> int:
        return int(self.x.shape[1])

    @property
    def n_inputs(self) -> int:
        return int(self.x.shape[2])

    def channel_absmax(self, floor: float = 1e-6) -> np.ndarray:
        """Largest |x| of every input channel over the real (unmasked) steps: [F], > 0.

        Symmetric about zero on purpose: a range fitted tightly to the training span clips
        later windows that leave it (measured on the E-mini sample: the held-out day's volumes
        sit entirely above the training day's), while zero-centred ranges are wider.
        """
        valid = self.x[self.mask.astype(bool)].astype(np.float64)
        top = np.abs(valid).max(axis=0) if valid.size else np.ones(self.n_inputs)
        return np.where(top > floor, top, 1.0)

    def take(self, index) -> "CalibrationSet":
        return CalibrationSet(self.x[index], self.dt[index], self.mask[index], dict(self.info))

    def batches(self, size: int) -> Iterator[dict[str, np.ndarray]]:
        """Feeds of at most ``size`` windows, keyed like the artefacts' inputs (x, dt, mask)."""
        if size < 1:
            raise ConfigError(f"batch size: expected >= 1, got {size}")
        for i in range(0, len(self), size):
            yield {"x": self.x[i:i + size], "dt": self.dt[i:i + size], "mask": self.mask[i:i + size]}

    def tiled(self, size: int) -> dict[str, np.ndarray]:
        """One feed of exactly ``size`` windows (cycling through the set when it is smaller)."""
        idx = np.resize(np.arange(len(self)), size)
        return {"x": self.x[idx], "dt": self.dt[idx], "mask": self.mask[idx]}


@dataclass
class StreamWindows:
    """Windows of one time-ordered stream as model inputs, with the reference's own run over them."""

    inputs: CalibrationSet
    stream: dict[str, np.ndarray]   # reference.run_stream output (embedding, prediction, ...)
    index: np.ndarray               # rows of the source dataset, in time order


def _check_dataset(model: LiquidTitanModel, dataset) -> None:
    for name in ("x", "dt_s", "mask", "end_ns"):
        if not hasattr(dataset, name):
            raise ConfigError(f"dataset: expected a liquidedge.data.Dataset (missing '{name}')")
    if len(dataset) == 0:
        raise InputShapeError("dataset: no windows")
    if dataset.x.shape[2] != model.n_features:
        raise InputShapeError(f"dataset has {dataset.x.shape[2]} features per step, the model "
                              f"expects {model.n_features}")


def stream_windows(model: LiquidTitanModel, dataset, feedback: str = "stream",
                   dtype=np.float64) -> StreamWindows:
    """All windows of ``dataset`` as perception inputs, fed back as the deployed loop would."""
    if feedback not in FEEDBACK:
        raise ConfigError(f"feedback: expected one of {FEEDBACK}, got {feedback!r}")
    _check_dataset(model, dataset)
    order = np.argsort(dataset.end_ns, kind="stable")
    feats, dt_s, mask = dataset.x[order], dataset.dt_s[order], dataset.mask[order]
    stream = reference.run_stream(model, feats, dt_s, mask, dtype=dtype)
    fb = None
    if model.feedback and feedback == "stream":
        fb = np.zeros((len(order), model.feedback), dtype)
        fb[1:] = stream["prediction"][:-1]
    x, dt, m = reference.model_inputs(model, feats, dt_s, mask, fb, dtype=dtype)
    info = {"n_windows": int(len(order)), "feedback": feedback if model.feedback else "none",
            "span_ns": [int(dataset.end_ns[order[0]]), int(dataset.end_ns[order[-1]])]}
    return StreamWindows(CalibrationSet(x, dt, m, info), stream, order)


def volatility_strata(dataset, strata: int) -> np.ndarray:
    """Stratum [N] of every window: quantile bins of its EWMA log-volatility (calm .. turbulent)."""
    vol = np.asarray(getattr(dataset, "baseline_logvol", np.zeros(len(dataset))), np.float64)
    vol = np.where(np.isfinite(vol), vol, np.nanmedian(vol) if np.isfinite(vol).any() else 0.0)
    edges = np.quantile(vol, np.linspace(0, 1, strata + 1)[1:-1])
    return np.searchsorted(edges, vol, side="right")


def representative_windows(model: LiquidTitanModel, dataset, n: int = 256, *, seed: int = 0,
                           strata: int = 4, feedback: str = "stream") -> CalibrationSet:
    """``n`` windows of the (training) ``dataset``, an equal share from each volatility stratum.

    Inside a stratum the windows are drawn without replacement with ``numpy.random.default_rng
    (seed)``, which spreads them over the whole time span. The result is in time order.
    """
    if n < 1 or strata < 1:
        raise ConfigError(f"calibration windows: expected n >= 1 and strata >= 1, got {n}, {strata}")
    sw = stream_windows(model, dataset, feedback)
    ordered = dataset.take(sw.index) if hasattr(dataset, "take") else dataset
    bins = volatility_strata(ordered, strata)
    rng = np.random.default_rng(seed)
    chosen: list[np.ndarray] = []
    groups = [np.flatnonzero(bins == s) for s in range(strata)]
    share = np.full(strata, n // strata) + (np.arange(strata) < n % strata)
    spare = 0
    for s in np.argsort([len(g) for g in groups]):      # small strata first; their leftovers move on
        want = int(share[s]) + spare
        take = min(want, len(groups[s]))
        spare = want - take
        chosen.append(rng.choice(groups[s], size=take, replace=False))
    idx = np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, int)
    picked = sw.inputs.take(idx)
    picked.info.update({"n_windows": int(len(idx)), "requested": int(n), "seed": int(seed),
                        "strata": int(strata), "stratified_by": "baseline_logvol quantiles",
                        "per_stratum": [int(np.sum(bins[idx] == s)) for s in range(strata)],
                        "source_windows": int(len(ordered))})
    return picked


def dataset_for_model(model: LiquidTitanModel, data=None):
    """The windows a model was built for: ``data`` if given (a Dataset), else the E-mini sample
    cut with the model's own ``data_spec`` (the default spec when the model has none)."""
    if data is not None:
        return data
    from liquidedge.data import DataSpec, build_dataset, load_default_ticks

    spec = DataSpec.from_dict(model.data_spec) if model.data_spec else DataSpec()
    return build_dataset(load_default_ticks(), spec)


def train_and_held_out(dataset, fractions=(0.6, 0.2, 0.2)):
    """Time-ordered split: calibration comes from the first part, agreement from the last."""
    from liquidedge.data import split

    parts = split(dataset, fractions)
    return parts[0], parts[-1]
