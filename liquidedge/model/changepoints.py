"""Regime-change detection from a per-window score, and how to grade it against known changes.

The memory's surprise should peak when the market changes regime (the memory meets embeddings
it cannot yet predict, then learns them). To say how well, detections are the local maxima of a
score above a threshold, matched one-to-one to true change windows within a tolerance; the same
machinery grades a classic baseline, the rolling z-score of realised volatility. numpy only.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from liquidedge.errors import ConfigError, InputShapeError


@dataclass
class DetectionScore:
    precision: float
    recall: float
    f1: float
    detections: int
    changes: int
    threshold: float


def _series(name: str, values) -> np.ndarray:
    v = np.asarray(values, np.float64)
    if v.ndim != 1:
        raise InputShapeError(f"{name}: expected a 1-D series, got shape {v.shape}")
    return v


def detect_peaks(scores, threshold: float, radius: int = 2) -> np.ndarray:
    """Indices where the score exceeds ``threshold`` and is the maximum within ``radius`` windows
    either side (non-maximum suppression: one detection per burst). NaN scores never fire."""
    s = _series("scores", scores)
    if radius < 0:
        raise ConfigError(f"radius: expected >= 0, got {radius}")
    filled = np.where(np.isfinite(s), s, -np.inf)
    padded = np.pad(filled, radius, constant_values=-np.inf)
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * radius + 1)
    is_max = filled >= windows.max(axis=1)
    # ties: keep only the first index of a plateau
    first = np.ones_like(is_max)
    first[1:] = filled[1:] != filled[:-1]
    return np.flatnonzero(is_max & first & (filled > threshold))


def merge_changes(change_windows, min_gap: int) -> np.ndarray:
    """Collapse true changes closer than ``min_gap`` windows into one event (the first): a
    regime lasting a window or two is not a separate, detectable change."""
    c = np.sort(np.asarray(change_windows, np.int64))
    out: list[int] = []
    for v in c:
        if not out or v - out[-1] >= min_gap:
            out.append(int(v))
    return np.asarray(out, np.int64)


def match_detections(detections, changes, tolerance: int = 2) -> tuple[int, int]:
    """Greedy one-to-one matching in time order: (matched detections, matched changes)."""
    d = np.sort(np.asarray(detections, np.int64))
    used = np.zeros(d.size, bool)
    matched = 0
    for c in np.sort(np.asarray(changes, np.int64)):
        ok = np.flatnonzero(~used & (np.abs(d - c) <= tolerance))
        if ok.size:
            used[ok[np.argmin(np.abs(d[ok] - c))]] = True
            matched += 1
    return int(used.sum()), matched


def grade(scores, changes, threshold: float, tolerance: int = 2, radius: int = 2) -> DetectionScore:
    """Precision, recall and F1 of the peaks of ``scores`` against true change windows."""
    det = detect_peaks(scores, threshold, radius)
    changes = np.asarray(changes, np.int64)
    hit_d, hit_c = match_detections(det, changes, tolerance)
    p = hit_d / det.size if det.size else 0.0
    r = hit_c / changes.size if changes.size else 0.0
    f1 = 2 * p * r / (p + r) if p + r > 0 else 0.0
    return DetectionScore(p, r, f1, int(det.size), int(changes.size), float(threshold))


def best_threshold(scores, changes, tolerance: int = 2, radius: int = 2) -> DetectionScore:
    """The threshold maximising F1 on a calibration stream (tried at every distinct peak height)."""
    s = _series("scores", scores)
    peaks = detect_peaks(s, -np.inf, radius)
    if peaks.size == 0:
        raise InputShapeError("scores: no finite values to detect peaks in")
    candidates = np.unique(s[peaks])
    best = None
    for t in np.concatenate(([candidates[0] - 1.0], candidates[:-1])):
        g = grade(s, changes, float(t), tolerance, radius)
        if best is None or g.f1 > best.f1:
            best = g
    return best


def rolling_zscore(values, window: int = 20) -> np.ndarray:
    """|v_i - mean(v_{i-w..i-1})| / std(v_{i-w..i-1}); NaN until ``window`` past values exist."""
    v = _series("values", values)
    if window < 2:
        raise ConfigError(f"window: expected >= 2, got {window}")
    out = np.full(v.size, np.nan)
    if v.size <= window:
        return out
    past = np.lib.stride_tricks.sliding_window_view(v[:-1], window)
    mu, sd = past.mean(axis=1), past.std(axis=1)
    out[window:] = np.abs(v[window:] - mu) / np.maximum(sd, 1e-12)
    return out


def window_realised_logvol(x: np.ndarray, mask: np.ndarray, return_channel: int = 0, last: int | None = None) -> np.ndarray:
    """Log realised volatility of each window's per-step log returns (valid steps only), over
    its last ``last`` steps (all when None): the quantity the baseline z-scores."""
    x = np.asarray(x, np.float64)
    m = np.asarray(mask, bool)
    if x.ndim != 3 or m.shape != x.shape[:2]:
        raise InputShapeError(f"x [N,T,F] / mask [N,T] expected, got {x.shape} / {m.shape}")
    r = x[..., return_channel]
    if last is not None:
        r, m = r[:, -last:], m[:, -last:]
    ss = np.sum(np.where(m, r * r, 0.0), axis=1)
    return 0.5 * np.log(np.maximum(ss, 1e-30))
