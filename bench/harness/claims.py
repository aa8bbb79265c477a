"""Testing an experiment's claims on its finished runs: one paired test per (claim, metric), Holm-corrected.

How each test is made (``bench.metrics.stats``):

* metrics with per-clip values (frame-level means from frames.parquet, clip-level scores from
  clips.parquet): per seed, per-clip values of the two sides (two runs on the same clips for ``pair``;
  two pose bins of one run for ``bins``; one run against a constant for ``threshold``; a clip's frames
  showing a scene event against its other frames for ``affected``); clips are bootstrapped within each
  seed and the replicates averaged over seeds (``seed_pooled_bootstrap``);
* metrics with one value per run (FID, pooled correlations, failure AUROC): the per-seed differences of
  summary.json's values, with a Student-t interval over seeds (``over_seeds``: wide with 3 seeds).

Every effect is oriented so that > 0 means the claim holds. p-values are Holm-adjusted over all tests
of the experiment; at 5% a test reads "supported" (effect > 0), "contradicted" (effect < 0) or
"inconclusive", and "untestable" when a run lacks the metric.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.metrics import specs
from bench.metrics.dynamics import CONDITION_BITS
from bench.metrics.stats import (PooledResult, holm, over_seeds, paired_clip_mean, seed_pooled_bootstrap,
                                 unpaired_bin_means)

ALPHA = 0.05
RESAMPLES = 2000


class _Run:
    """The parts of one finished run directory the tests read, loaded once."""

    def __init__(self, run_dir: Path) -> None:
        self.summary = json.loads((run_dir / "summary.json").read_text())
        self.frames = pd.read_parquet(run_dir / "frames.parquet")
        clips = run_dir / "clips.parquet"
        self.clips = pd.read_parquet(clips) if clips.is_file() else None

    def per_clip(self, metric: str, pose_bin: str | None = None, condition: str = "") -> pd.Series | None:
        """Per-clip means of a metric (clip id -> value), or None when it has no per-clip values; with
        ``condition``, only the clips showing that scene event."""
        spec = specs.spec(metric)
        table = self.frames if spec is not None and spec.level == "frame" else self.clips
        if table is None or metric not in table:
            return None
        if pose_bin is not None:
            table = table[table["pose_bin"].astype(str) == pose_bin]
        if condition:
            table = table[table["clip_id"].isin(self.event_clips(condition))]
        values = specs.capped(metric, pd.to_numeric(table[metric], errors="coerce").astype(float))
        return values.groupby(table["clip_id"]).mean().dropna()

    def event_hits(self, condition: str) -> pd.Series:
        """Per frame: does it show the scene event ``condition`` (any event with "")?"""
        bits = self.frames["affected"].fillna(0).astype(int)
        return (bits & CONDITION_BITS[condition] if condition else bits) > 0

    def event_clips(self, condition: str) -> set[str]:
        """Clips with frames showing the scene event ``condition`` (every event with "")."""
        if "affected" not in self.frames:
            return set()
        return set(self.frames.loc[self.event_hits(condition), "clip_id"])

    def event_contrast(self, metric: str, condition: str = "") -> np.ndarray | None:
        """Per clip showing the event: the metric's mean on the event's frames minus its mean on the clip's
        other frames (paired within the clip), or None without the metric or labelled frames."""
        if metric not in self.frames or "affected" not in self.frames:
            return None
        rows = self.frames.assign(_hit=self.event_hits(condition).to_numpy())
        rows = rows[rows["clip_id"].isin(self.event_clips(condition))]
        values = pd.to_numeric(rows[metric], errors="coerce").astype(float)
        means = values.groupby([rows["clip_id"], rows["_hit"]]).mean().unstack()
        if True not in means or False not in means:
            return None
        return (means[True] - means[False]).dropna().to_numpy()

    def value(self, metric: str, pose_bin: str | None = None) -> float:
        block = self.summary.get("metrics") if pose_bin is None else (self.summary.get("by_pose") or {}).get(pose_bin)
        entry = (block or {}).get(metric) or {}
        value = entry.get("value") if isinstance(entry, dict) else None
        return float(value) if isinstance(value, (int, float)) else float("nan")


def _sign(metric: str) -> float:
    return -1.0 if specs.higher_is_better(metric) is False else 1.0


def _test(claim: Any, metric: str, runs: dict[tuple[str, int], _Run], seeds: list[int]) -> PooledResult | None:
    per_seed: list[tuple[np.ndarray, ...]] = []
    per_seed_values: list[float] = []
    for seed in seeds:
        if claim.kind == "pair":
            better, than = runs.get((claim.better, seed)), runs.get((claim.than, seed))
            if better is None or than is None:
                return None
            b, t = better.per_clip(metric), than.per_clip(metric)
            if b is not None and t is not None:
                shared = b.index.intersection(t.index)
                per_seed.append((_sign(metric) * (b[shared] - t[shared]).to_numpy(),))
            per_seed_values.append(_sign(metric) * (better.value(metric) - than.value(metric)))
        else:
            run = runs.get((claim.run, seed))
            if run is None:
                return None
            if claim.kind == "affected":
                contrast = run.event_contrast(metric, claim.condition)
                if contrast is not None:
                    per_seed.append((contrast,))
                per_seed_values.append(float("nan"))  # no one-number form: the per-clip test or none
            elif claim.kind == "bins":
                a, b = run.per_clip(metric, claim.than), run.per_clip(metric, claim.higher)
                if a is not None and b is not None and len(a) and len(b):
                    per_seed.append((a.to_numpy(), b.to_numpy()))
                per_seed_values.append(run.value(metric, claim.higher) - run.value(metric, claim.than))
            else:
                above = metric in claim.above
                bound = claim.above[metric] if above else claim.below[metric]
                values = run.per_clip(metric, condition=claim.condition)
                if values is not None:
                    per_seed.append((((values - bound) if above else (bound - values)).to_numpy(),))
                per_seed_values.append((run.value(metric) - bound) if above else (bound - run.value(metric)))
    if len(per_seed) == len(seeds) and all(a.size for arrays in per_seed for a in arrays):
        statistic = unpaired_bin_means if claim.kind == "bins" else paired_clip_mean
        return seed_pooled_bootstrap(per_seed, statistic, resamples=RESAMPLES)
    if np.isfinite(per_seed_values).sum() >= 2:
        return over_seeds(np.asarray(per_seed_values))
    return None


def _verdict(result: PooledResult | None, p_holm: float) -> str:
    if result is None or not math.isfinite(result.diff) or not math.isfinite(p_holm):
        return "untestable"
    if p_holm < ALPHA:
        return "supported" if result.diff > 0 else "contradicted"
    return "inconclusive"


def _claim_verdict(verdicts: list[str]) -> str:
    supported, contradicted = verdicts.count("supported"), verdicts.count("contradicted")
    if verdicts and supported == len(verdicts):
        return "supported"
    if verdicts and contradicted == len(verdicts):
        return "contradicted"
    if supported and contradicted:
        return f"mixed ({supported} of {len(verdicts)} metrics support it, {contradicted} contradict it)"
    if supported or contradicted:  # one direction only; the other metrics inconclusive (or untestable)
        side, count = ("supported", supported) if supported else ("contradicted", contradicted)
        return f"{side} on {count} of {len(verdicts)} metrics, the rest inconclusive"
    return "untestable" if verdicts and all(v == "untestable" for v in verdicts) else "inconclusive"


def evaluate_claims(experiment: Any, cells: list[Any]) -> dict[str, Any]:
    """The tests and verdicts of every claim of an ``experiment.Experiment``, from the run directories of its
    finished ``experiment.Cell``s (typed loosely: this module sits below the experiment runner)."""
    runs = {(c.label, c.seed): _Run(c.run_dir) for c in cells if (c.run_dir / "summary.json").is_file()}
    seeds = sorted({c.seed for c in cells})
    rows = []
    for claim in experiment.claims:
        for metric in claim.metrics:
            rows.append({"claim": claim.text, "metric": metric, "result": _test(claim, metric, runs, seeds)})
    adjusted = holm([r["result"].p_value if r["result"] is not None else float("nan") for r in rows])
    tests = []
    for row, p_holm in zip(rows, adjusted):
        result = row["result"]
        tests.append({
            "claim": row["claim"], "metric": row["metric"], "verdict": _verdict(result, p_holm),
            "effect": None if result is None else result.diff, "ci95": None if result is None else result.ci,
            "p_value": None if result is None else result.p_value, "p_holm": p_holm,
            "per_seed": None if result is None else list(result.per_seed),
            "method": "a run lacks this metric" if result is None else result.method,
        })
    claims = []
    for claim in experiment.claims:
        verdicts = [t["verdict"] for t in tests if t["claim"] == claim.text]
        claims.append({"claim": claim.text, "verdict": _claim_verdict(verdicts)})
    return {"alpha": ALPHA, "correction": "Holm over every (claim, metric) test of the experiment",
            "effect_sign": "> 0 means the claim holds", "tests": tests, "claims": claims}


def _fmt(value: Any) -> str:
    return "—" if value is None or not math.isfinite(float(value)) else f"{float(value):+.4g}"


def claims_markdown(result: dict[str, Any]) -> str:
    """claims.md: one line per claim, then one table row per test."""
    lines = [f"# {result['name']} ({result['preset']} preset, {result['seeds']} seeds)", "",
             result.get("description", ""), "", "| claim | verdict |", "|---|---|"]
    lines += [f"| {c['claim']} | {c['verdict']} |" for c in result["claims"]]
    lines += ["", f"Tests ({result['correction']}; effect {result['effect_sign']}):", "",
              "| claim | metric | effect | 95% CI | p (Holm) | verdict | how |", "|---|---|---|---|---|---|---|"]
    for t in result["tests"]:
        ci = "—" if not t["ci95"] else f"[{_fmt(t['ci95'][0])}, {_fmt(t['ci95'][1])}]"
        p = "—" if t["p_holm"] is None or not math.isfinite(t["p_holm"]) else f"{t['p_holm']:.3g}"
        lines.append(f"| {t['claim']} | {t['metric']} | {_fmt(t['effect'])} | {ci} | {p} | {t['verdict']} | "
                     f"{t['method']} |")
    return "\n".join(lines) + "\n"
