"""A quick health report of an event file: size, span, gaps, duplicate stamps and every problem.

Unlike ``load_events`` (which stops at the first problem) this collects all findings, so a user
sees everything wrong with a file at once before deciding how to fix it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from liquidedge.data.ticks import ColumnMap, Finding, check_arrays, read_table
from liquidedge.data.timeutil import NS_PER_S


@dataclass
class FileReport:
    """What ``inspect_file`` found. Times are UTC epoch ns; ``tz`` is the file's own zone."""
    path: str
    rows: int
    columns: ColumnMap
    tz: str
    first_ns: int | None = None
    last_ns: int | None = None
    largest_gap_s: float = 0.0
    largest_gap_after_ns: int | None = None   # stamp of the event before the largest gap
    gap_threshold_s: float = 60.0
    gaps_over_threshold: int = 0
    duplicate_stamps: int = 0                 # events sharing the previous event's stamp
    total_size: float = 0.0
    findings: list[Finding] = field(default_factory=list)

    @property
    def span_s(self) -> float:
        return 0.0 if self.first_ns is None else (self.last_ns - self.first_ns) / NS_PER_S

    @property
    def ok(self) -> bool:
        return not self.findings


def inspect_file(path: str | Path, columns: ColumnMap | str | None = None, *,
                 gap_threshold_s: float = 60.0) -> FileReport:
    """Read ``path`` leniently and summarise it; problems go to ``report.findings``, not raised."""
    raw = read_table(path, columns)
    c = raw.columns
    findings = list(raw.findings)
    times = raw.time_ns
    if raw.time_bad is not None and raw.time_bad.any():  # carry the last good stamp over bad ones
        keep = np.maximum.accumulate(np.where(raw.time_bad, 0, np.arange(len(times))))
        times = times[keep]
    findings += check_arrays(times, raw.price, raw.size, raw.side,
                             fields=(c.timestamp, c.price, c.size or "size", c.side or "side"))
    report = FileReport(raw.path, len(raw.time_ns), c, raw.tz, gap_threshold_s=gap_threshold_s,
                        findings=findings)
    t = raw.time_ns if raw.time_bad is None else raw.time_ns[~raw.time_bad]  # parsed stamps only
    if t.size:
        report.first_ns, report.last_ns = int(t.min()), int(t.max())
        order_t = np.sort(t, kind="stable")
        gaps = np.diff(order_t)
        if gaps.size:
            i = int(np.argmax(gaps))
            report.largest_gap_s = float(gaps[i]) / NS_PER_S
            report.largest_gap_after_ns = int(order_t[i])
            report.gaps_over_threshold = int(np.count_nonzero(gaps > gap_threshold_s * NS_PER_S))
            report.duplicate_stamps = int(np.count_nonzero(np.diff(t) == 0))
        finite = raw.size[np.isfinite(raw.size)]
        report.total_size = float(finite.sum())
    return report
