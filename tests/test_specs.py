"""bench.metrics.specs is the one table of what each metric is: every name a run writes is in it, the
scorer, summary.json, `bench compare` and the CLI table follow it, and nothing else says a direction."""
import ast
import json
import math
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from bench.cli.output import results_table
from bench.config import EvalConfig
from bench.harness.compare import NON_METRICS, compare_runs
from bench.harness.scorer import FrameScorer, summarise
from bench.harness.scorer_summary import expert_discriminates
from bench.metrics import specs
from bench.metrics.sync import local_values, official_values
from tests.fake_run import make_fake_run

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).with_name("golden") / "summary_julnet_smoke_seed0.json"
CONFIG = EvalConfig(bootstrap=20, samples_per_bin=1, fid_every=2)


class _FakeLPIPS(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(()))

    def forward(self, a, b):
        return (a - b).abs().mean((1, 2, 3)) * self.weight


class _TinyInception(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return [self.conv(x).mean((2, 3))[:, :, None, None]]


class _TinyFace(torch.nn.Module):
    """Stands in for ArcFace (csim) and, called on 5-d windows, for the I3D (fvd)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.weight = torch.nn.Parameter(torch.randn(3, 6))

    def forward(self, x):
        features = x.flatten(2).mean(2) @ self.weight
        return (features, features) if x.ndim == 5 else features


@pytest.fixture(scope="module")
def scored():
    """Every metric the scorer can write: map, mouth and face boxes, LPIPS, LMD, CPBD, CSIM, FID, FVD (one clip of
    16 frames), official and local LSE, and the face-track statistics a no-ground-truth score adds per clip."""
    rng = np.random.default_rng(0)
    scorer = FrameScorer(CONFIG, lpips_model=_FakeLPIPS(), inception=_TinyInception(),
                         landmarks=lambda pred, gt: np.linspace(0.01, 0.05, len(pred)), i3d=_TinyFace(),
                         identity_model=_TinyFace())
    scorer.set_source(rng.integers(0, 256, (1, 12, 12, 3), dtype=np.uint8))
    for c, yaw in enumerate([3, 8, 20, 30, 50, 60]):
        frames = 16 if c == 5 else 4
        gt = torch.from_numpy(rng.integers(0, 256, (frames, 3, 16, 16)).astype(np.float32))
        pred = (gt + torch.from_numpy(rng.laplace(0, 6 + 3 * c, gt.shape).astype(np.float32))).clamp(0, 255).round()
        if c == 0:
            pred = gt.clone()  # identical frames: PSNR and mouth PSNR are inf
        scale = ((pred - gt).abs().mean(1) / 255).clamp_min(1e-3)
        meta = [{"clip_id": f"c{c}", "frame": t, "yaw": float(yaw), "mouth_box": (2, 8, 14, 15),
                 "face_box": (1, 1, 15, 15)} for t in range(frames)]
        scorer.update(pred, gt, scale, None, meta)
        sync = SimpleNamespace(lse_c=2.0 + c, lse_d=9.0 - c, offset=c - 2)
        scorer.add_clip({"clip_id": f"c{c}", "yaw": float(yaw)}, {**official_values(sync), **local_values(sync),
                                                                "lse_c_local_gt": 3.0 + c, "lse_c_local_shifted": 0.5,
                                                                "face_found": 1.0, "box_jitter": 0.01 * c})
    scorer.add_features("fvd", rng.normal(size=(3, 6)), None, np.array(["extreme"] * 3))  # FVD needs 2 windows
    result = scorer.result()
    return result, summarise(result, "m", CONFIG, seed=0)


def _metric_columns(df: pd.DataFrame) -> set[str]:
    """What `bench compare` would compare: numeric columns that are not identifiers or pose."""
    return {c for c in df.columns if c not in NON_METRICS and pd.api.types.is_numeric_dtype(df[c])}


def test_every_name_the_scorer_writes_is_in_the_table(scored):
    result, summary = scored
    written = set(summary["metrics"]) | {k for block in summary["by_pose"].values() for k in block}
    assert written - set(specs.METRICS) == set()
    assert _metric_columns(result.frames) - set(specs.METRICS) == set()
    assert _metric_columns(result.clips) - set(specs.METRICS) == set()
    # the fixture really reaches every averaged metric, so the checks above cover them all
    assert set(summary["metrics"]) == {n for n, s in specs.METRICS.items() if s.in_summary}
    assert {"err_mean", "unc_mean"} <= set(result.frames) and {"av_offset", "av_offset_local"} <= set(result.clips)


def test_summary_directions_order_and_notes_are_the_tables(scored):
    _, summary = scored
    for block in [summary["metrics"], *summary["by_pose"].values()]:
        assert list(block) == sorted(block, key=specs.sort_key)  # table order, key for key
        for name, entry in block.items():
            assert entry["higher_is_better"] is specs.higher_is_better(name), name
    present = ("lmd", "csim", "fvd", "lse_local", "lse")
    assert summary["notes"] == {key: specs.SUMMARY_NOTES[key] for key in present}
    # in the table's order; "real": bench run, per dataset; *_missing: asked for but not computed
    assert list(summary["notes"]) == [key for key in specs.SUMMARY_NOTES if key in present]
    capped = summary["metrics"]["psnr_mouth"]
    assert math.isfinite(capped["value"]) and capped["value"] <= specs.PSNR_CAP  # inf frames count as the cap


def test_the_golden_summary_agrees_with_the_table():
    summary = json.loads(GOLDEN.read_text())
    for block in [summary["metrics"], *summary["by_pose"].values(), summary["floor"]["metrics"]]:
        assert set(block) <= set(specs.METRICS)
        assert list(block) == sorted(block, key=specs.sort_key)
        assert {n: e["higher_is_better"] for n, e in block.items()} == {n: specs.higher_is_better(n) for n in block}
    assert set(summary["notes"].values()) <= set(specs.SUMMARY_NOTES.values())


@pytest.mark.parametrize("kwargs", [{}, {"with_uncertainty": False}, {"identical": True}])
def test_every_name_a_fake_run_writes_is_in_the_table(tmp_path, kwargs):
    run = make_fake_run(tmp_path / "run", **kwargs)
    summary = json.loads((run / "summary.json").read_text())
    assert _metric_columns(pd.read_parquet(run / "frames.parquet")) <= set(specs.METRICS)
    for block in [summary["metrics"], *summary["by_pose"].values()]:
        assert {n: e["higher_is_better"] for n, e in block.items()} == {n: specs.higher_is_better(n) for n in block}


def test_every_row_is_well_formed():
    levels = {"frame", "clip", "pooled", "set"}
    for name, row in specs.METRICS.items():
        assert row.name == name and row.level in levels and row.group in specs.GROUPS, name
        assert row.higher_is_better in (True, False, None) and row.note and row.reference, name
    assert len(specs.ORDER) == len(set(specs.ORDER)) == len(specs.METRICS)
    # every PSNR averaged over frames is capped (a perfect frame is +inf); nothing else is
    assert {n for n, s in specs.METRICS.items() if s.cap is not None} == {"psnr", "psnr_mouth", "psnr_face"}
    assert all(specs.METRICS[n].cap == specs.PSNR_CAP for n in ("psnr", "psnr_mouth", "psnr_face"))
    assert set(specs.FRAME_METRICS) <= set(specs.METRICS)
    assert specs.sort_key("psnr") < specs.sort_key("ssim") < specs.sort_key("zzz_unknown")
    assert specs.sort_key("a_unknown") < specs.sort_key("b_unknown") and specs.spec("clip_id") is None


def _two_runs(tmp_path: Path, psnr_mouth_b: float) -> tuple[Path, Path]:
    run_a = make_fake_run(tmp_path / "a", seed=0)
    run_b = make_fake_run(tmp_path / "b", seed=0, model="other")
    frames = pd.read_parquet(run_a / "frames.parquet")
    frames["psnr_mouth"] = 30.0 + np.arange(len(frames)) % 3
    frames["mystery_up"] = 1.0
    frames["mystery_none"] = 1.0
    frames.to_parquet(run_a / "frames.parquet", index=False)
    frames["psnr_mouth"] = psnr_mouth_b
    frames["mystery_up"] = 2.0
    frames["mystery_none"] = 2.0
    frames.to_parquet(run_b / "frames.parquet", index=False)
    summary = json.loads((run_b / "summary.json").read_text())
    summary["metrics"]["mystery_up"] = {"value": 2.0, "ci95": None, "higher_is_better": True, "n": 1}
    summary["metrics"]["unc_mean"] = {"value": 2.0, "ci95": None, "higher_is_better": True, "n": 1}  # table wins
    (run_b / "summary.json").write_text(json.dumps(summary))
    return run_a, run_b


def test_compare_caps_psnr_mouth_like_psnr_and_orders_by_the_table(tmp_path):
    df = compare_runs(*_two_runs(tmp_path, psnr_mouth_b=math.inf), resamples=50, seed=0)
    mouth = df[(df.metric == "psnr_mouth") & (df.pose_bin == "all")].iloc[0]
    assert mouth.mean_b == pytest.approx(specs.PSNR_CAP) and math.isfinite(mouth["diff"]) and mouth.better == "B"
    by_metric = df[df.pose_bin == "all"].set_index("metric")
    assert by_metric.loc["mystery_up", "higher_is_better"] is True and by_metric.loc["mystery_up", "better"] == "B"
    assert by_metric.loc["mystery_none", "higher_is_better"] is None and by_metric.loc["mystery_none", "better"] == ""
    assert by_metric.loc["unc_mean", "higher_is_better"] is None  # the table's, not summary.json's
    assert list(by_metric.index) == sorted(by_metric.index, key=specs.sort_key)
    assert list(by_metric.index)[:3] == ["psnr", "ssim", "psnr_mouth"] and list(by_metric.index)[-2:] == [
        "mystery_none", "mystery_up"]


def test_cli_table_arrows_follow_the_table():
    entry = {"value": 1.0, "ci95": None, "n": 3}
    summary = {"metrics": {"psnr": {**entry, "higher_is_better": True},
                           "sharpness": {**entry, "higher_is_better": True},  # a stale file: the table wins
                           "unc_mean": {**entry, "higher_is_better": None},
                           "mystery": {**entry, "higher_is_better": None},
                           "mystery_down": {**entry, "higher_is_better": False}}, "by_pose": {}}
    first_cells = [line.split("  ")[0].strip() for line in results_table(summary).splitlines()[2:]]
    assert first_cells == ["psnr ↑", "sharpness ↓", "unc_mean ·", "mystery ·", "mystery_down ↓"]


# ---------------------------------------------------------------- no second table
def _direction_tables(source: str) -> list[str]:
    """Dict literals mapping metric names to True/False/None, module constants named like a direction table or
    a PSNR cap, and hard-coded "higher_is_better" values: what a second metric table would look like."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Dict):
            pairs = list(zip(node.keys, node.values))
            directions = [k.value for k, v in pairs if isinstance(k, ast.Constant) and k.value in specs.METRICS
                          and isinstance(v, ast.Constant) and v.value in (True, False, None)]
            if directions:
                found.append(f"line {node.lineno}: {directions}")
            found += [f"line {node.lineno}: higher_is_better literal" for k, v in pairs
                      if isinstance(k, ast.Constant) and k.value == "higher_is_better" and isinstance(v, ast.Constant)]
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            found += [f"line {node.lineno}: {t.id}" for t in targets if isinstance(t, ast.Name)
                      and ("HIGHER_IS_BETTER" in t.id.upper() or t.id.upper() == "PSNR_CAP" or t.id.endswith("_NOTE"))]
    return found


def test_the_detector_finds_a_second_table():
    assert _direction_tables('X = {"psnr": True, "lpips": False}')
    assert _direction_tables('HIGHER_IS_BETTER = {}') and _direction_tables('PSNR_CAP = 100.0')
    assert _direction_tables('e = {"value": 1, "higher_is_better": False}')
    assert not _direction_tables('e = {"psnr": float(x), "higher_is_better": higher}')


def test_no_module_but_specs_says_what_a_metric_is():
    sources = sorted((ROOT / "bench").rglob("*.py")) + sorted((ROOT / "benchmarks").glob("*.py"))
    assert len(sources) > 20
    offenders = {str(p.relative_to(ROOT)): hits for p in sources if p != ROOT / "bench" / "metrics" / "specs.py"
                 and (hits := _direction_tables(p.read_text()))}
    assert offenders == {}


def test_a_blind_expert_is_named_in_the_notes():
    # Its ceiling (ground truth) and floor (audio shifted) read alike: lse_c_local then says nothing.
    rng = np.random.default_rng(1)
    scorer = FrameScorer(replace(CONFIG, networks=()))
    for c, yaw in enumerate([3, 8, 20, 30, 50, 60]):
        gt = torch.from_numpy(rng.integers(0, 256, (4, 3, 16, 16)).astype(np.float32))
        meta = [{"clip_id": f"c{c}", "frame": t, "yaw": float(yaw)} for t in range(4)]
        scorer.update(gt.clone(), gt, torch.full((4, 16, 16), 0.01), None, meta)
        sync = SimpleNamespace(lse_c=0.06, lse_d=1.0, offset=0)
        scorer.add_clip({"clip_id": f"c{c}", "yaw": float(yaw)},
                        {**local_values(sync), "lse_c_local_gt": 0.05 + 0.01 * (c % 3), "lse_c_local_shifted": 0.06})
    summary = summarise(scorer.result(), "m", CONFIG, seed=0)
    assert summary["notes"]["lse_local_blind"] == specs.SUMMARY_NOTES["lse_local_blind"]
    assert not expert_discriminates(summary["metrics"])
    clear = {"lse_c_local_gt": {"ci95": [0.51, 0.68]}, "lse_c_local_shifted": {"ci95": [0.19, 0.26]}}
    assert expert_discriminates(clear)
    assert not expert_discriminates({**clear, "lse_c_local_shifted": {"ci95": [0.19, 0.52]}})
    assert expert_discriminates({})  # nothing to judge by
