"""Plain-text tables of ``bench compare`` (bench.harness.compare): one per run against the baseline."""
from __future__ import annotations

import math
from typing import Any

import pandas as pd

from bench.harness import compare_stats as cs
from bench.harness.compare_stats import ALPHA


def _num(x: Any) -> str:
    if x is None or not math.isfinite(x):
        return "—"
    return f"{x:.4g}" if x != 0 else "0"


def _p(x: Any) -> str:
    if x is None or not math.isfinite(x):
        return "—"
    return "<0.001" if x < 0.001 else f"{x:.3f}"


def format_comparison(df: pd.DataFrame) -> str:
    """A readable table: ↑/↓ the better direction, * a difference with p < 0.05; [clip], [set], [pooled]
    mark metrics that are not per frame, "no CI" differences of summary values."""
    at = df.attrs
    head = [f"A = {at.get('model_a', 'A')} ({at.get('run_a', '?')})   B = {at.get('model_b', 'B')} ({at.get('run_b', '?')})"]
    if "n_frames_shared" in at:
        head.append(f"{at['n_frames_shared']} frames in {at['n_clips_shared']} clips present in both runs "
                    f"(A has {at['n_frames_a']} frames, B {at['n_frames_b']})")
    table = [("metric", "pose", "A", "B", "B-A", "95% CI", "p", "better")]
    for row in df.itertuples(index=False):
        arrow = {True: "↑", False: "↓"}.get(row.higher_is_better, "·")
        level = getattr(row, "level", "frame")
        name = f"{row.metric} {arrow}" + (f" [{level}]" if level != "frame" else "")
        if math.isfinite(row.ci_low):
            ci = f"[{_num(row.ci_low)}, {_num(row.ci_high)}]"
        else:
            ci = "no CI" if getattr(row, "basis", "") == cs.NO_CI else "—"
        better = (row.better or "—") + (" *" if row.significant else "")
        table.append((name, row.pose_bin, _num(row.mean_a), _num(row.mean_b), _num(row.diff), ci, _p(row.p_value),
                      better))
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    lines = ["  ".join(cell.ljust(w) if i < 2 or i == 7 else cell.rjust(w) for i, (cell, w)
                       in enumerate(zip(r, widths))).rstrip() for r in table]
    foot = (f"↑ higher is better, ↓ lower is better, · no better direction; * p < {at.get('alpha', ALPHA)} "
            f"(paired clip bootstrap, {at.get('resamples', '?')} resamples, at most {cs.SET_RESAMPLES} for [set] "
            "statistics); A, B and B-A are means of per-clip means; no CI: the difference of summary.json's "
            "values (no per-clip data in the run directory)")
    return "\n".join(head + [""] + lines + ["", foot])


def format_comparisons(result: Any) -> str:
    """Every run of a ``bench.harness.compare.Comparison`` against its baseline: one table each."""
    parts = [format_comparison(result.pair(r.label)) for r in result.runs if r is not result.baseline]
    if len(parts) > 1:
        parts.insert(0, f"baseline A = {result.baseline.label}; {len(parts)} runs compared against it")
    return ("\n\n").join(parts)
