"""`bench run` and `bench score` under torchrun (2 ranks, gloo on CPU) write what one process writes.

Each rank scores its share of the clips; rank 0 merges the per-clip states in clip order and alone writes
and prints. Both sides run as fresh processes with one thread each (torchrun's default), so that the
networks' float32 kernels round alike: then summary.json, frames.parquet and the sample files agree
exactly (numbers are compared to 1e-9 relative all the same).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import torch

from bench.config import EvalConfig
from bench.data.frames import eval_reference_indices, make_batch, mouth_mask
from bench.data.video import iter_frames
from bench.harness.evaluate import evaluate
from bench.harness.scorer import FrameScorer, summarise
from bench.models import build_model
from test_score import CLIP_A, CLIP_B, noisy, write_mp4
from test_score_state import FakeInception
from train_fixtures import fake_clips, tiny_config
from trees import leaves

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
            "-m", "bench.cli"]
ONE = [sys.executable, "-m", "bench.cli"]
ARRAYS = ("samples.npz", "worst.npz", "clip_samples.npz", "curves.npz")


def _env(cache: Path) -> dict[str, str]:
    return {**os.environ, "TALKBENCH_CACHE": str(cache), "OMP_NUM_THREADS": "1"}


def _bench(command: list[str], argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    done = subprocess.run(command + argv, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done


def _assert_same_run(one: Path, two: Path) -> None:
    """summary.json (every number to 1e-9 relative, the rest exactly), the frame table and the sample files."""
    got, want = (leaves(json.loads((run / "summary.json").read_text())) for run in (two, one))
    assert got.keys() == want.keys()
    for key, value in want.items():
        if isinstance(value, float):
            assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-12, nan_ok=True), key
        else:
            assert got[key] == value, key
    pd.testing.assert_frame_equal(pd.read_parquet(one / "frames.parquet"), pd.read_parquet(two / "frames.parquet"))
    for name in ARRAYS:
        if not (one / name).exists():
            assert not (two / name).exists(), name
            continue
        a, b = np.load(one / name), np.load(two / name)
        assert sorted(a.files) == sorted(b.files), name
        for key in a.files:
            if a[key].dtype.kind in "fc":
                np.testing.assert_allclose(b[key], a[key], rtol=1e-9, atol=1e-12, err_msg=f"{name}:{key}")
            else:
                np.testing.assert_array_equal(b[key], a[key], err_msg=f"{name}:{key}")
    manifest = json.loads((two / "manifest.json").read_text())
    assert manifest["ranks"] == {"world_size": 2, "backend": "gloo"} and manifest["status"] == "complete"
    assert "ranks" not in json.loads((one / "manifest.json").read_text())


def test_evaluate_merging_clip_states_equals_one_scorer_over_the_split():
    """What each rank does (a scorer per clip, merged in clip order; FID's sums batch by batch) against the
    one scorer the whole split used to go through: the same frames, summary and FID, FID on every 2nd frame
    of the split (not of each clip: clips of 7 frames)."""
    config = EvalConfig(bootstrap=50, fid_every=2, batch_size=3, networks=())
    clips = fake_clips(3, frames=7)
    model = build_model("julnet", tiny_config().net, seed=0).eval()
    networks = {"fid": FakeInception()}
    merged = evaluate(model, clips, 2, config, progress=False, networks=networks)
    single = FrameScorer(config, inception=networks["fid"])
    with torch.no_grad():
        for clip in clips:
            for start in range(0, clip.n_frames, config.batch_size):
                targets = list(range(start, min(start + config.batch_size, clip.n_frames)))
                batch = make_batch(clip, targets, [eval_reference_indices(clip.n_frames, 2, t) for t in targets], "cpu")
                pred, log_scale = model(batch["audio"], batch["masked"], batch["refs"])
                meta = [{"clip_id": clip.clip_id, "frame": t, "identity": clip.identity, "stratum": clip.stratum,
                         "yaw": float(clip.yaw[t]), "pitch": float(clip.pitch[t]), "roll": float(clip.roll[t])}
                        for t in targets]
                single.update((pred.clamp(0, 1) * 255).round(), batch["target"] * 255, torch.exp(log_scale[:, 0]),
                              mouth_mask(*pred.shape[-2:])[0, 0].bool().numpy(), meta)
    reference = single.result()
    pd.testing.assert_frame_equal(merged.frames, reference.frames)
    assert merged.fid["all"].fake.count == reference.fid["all"].fake.count == 11  # 21 frames, every 2nd
    assert merged.fid["all"].compute() == reference.fid["all"].compute()
    assert summarise(merged, "julnet", config, 0) == summarise(reference, "julnet", config, 0)
    for key, curve in reference.curves.items():
        np.testing.assert_allclose(merged.curves[key], curve, rtol=1e-12)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, provisioned) -> tuple[Path, Path]:
    """(cache, julnet smoke checkpoint); the cache also holds the smoke data and, once `bench run` ran, its expert."""
    root = tmp_path_factory.mktemp("dist")
    cache = root / "cache"
    _bench(ONE, ["train", "--model", "julnet", "--preset", "smoke", "--out", str(root / "ckpt"), "--no-progress"],
           _env(cache))
    return cache, root / "ckpt" / "final.pt"


@pytest.mark.slow  # fresh processes, 2 ranks each: about a minute on 2 busy cores
def test_bench_run_on_two_ranks_equals_one_process(checkpoint, tmp_path):
    cache, ckpt = checkpoint
    argv = ["run", "--model", "julnet", "--preset", "smoke", "--checkpoint", str(ckpt), "--no-report",
            "--no-progress"]
    # one process first: it trains and caches the lip-sync expert that both evaluations then use
    single = _bench(ONE, argv + ["--out", str(tmp_path / "one")], _env(cache))
    ranked = _bench(TORCHRUN, argv + ["--out", str(tmp_path / "two")], _env(cache))
    _assert_same_run(tmp_path / "one", tmp_path / "two")
    # rank 0 alone printed: the results table and the run directory once
    assert ranked.stdout.count("run directory:") == 1 and ranked.stdout.count("PSNR julnet") == 1
    assert single.stdout.replace(str(tmp_path / "one"), "") == ranked.stdout.replace(str(tmp_path / "two"), "")
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert summary["metrics"]["psnr"]["n"] == len(pd.read_parquet(tmp_path / "two" / "frames.parquet"))
    assert len(set(pd.read_parquet(tmp_path / "two" / "frames.parquet")["clip_id"])) >= 3  # both ranks had clips


@pytest.mark.slow  # fresh processes, 2 ranks each: about a minute on 2 busy cores
def test_a_refused_output_fails_every_rank_with_one_line(checkpoint, tmp_path):
    cache, ckpt = checkpoint
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    done = subprocess.run(TORCHRUN + ["run", "--model", "julnet", "--preset", "smoke", "--checkpoint", str(ckpt),
                                      "--out", str(taken), "--no-report", "--no-progress"],
                          env=_env(cache), capture_output=True, text=True, timeout=600)
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("bench: error:")]
    assert len(errors) == 1 and "not empty" in errors[0] and str(taken) in errors[0]
    assert sorted(p.name for p in taken.iterdir()) == ["keep.txt"]


@pytest.mark.slow
@pytest.mark.skipif(not (CLIP_A.is_file() and CLIP_B.is_file()), reason="real clips not mounted")
def test_bench_score_on_two_ranks_equals_one_process(checkpoint, tmp_path):
    """Three pairs (odd: rank 0 scores two), every metric network on: FID's features merge in clip order."""
    cache, _ = checkpoint
    inputs = tmp_path / "inputs"
    for clip_id, (source, top, n) in {"a": (CLIP_A, 60, 6), "b": (CLIP_B, 70, 5), "c": (CLIP_A, 90, 4)}.items():
        gt = np.stack([f[top:top + 64, 72:136] for _, f in zip(range(n), iter_frames(source))])
        pred = noisy(gt, 6, seed=len(clip_id) + n)
        write_mp4(inputs / "gt" / f"{clip_id}.mp4", gt)
        write_mp4(inputs / "pred" / f"{clip_id}.mp4", pred)
        (inputs / "unc").mkdir(exist_ok=True)
        u = np.abs(pred.astype(np.float32) - gt).mean(-1) / 255 + 0.01
        np.save(inputs / "unc" / f"{clip_id}.npy", u.astype(np.float32))
    argv = ["score", "--pred", str(inputs / "pred"), "--gt", str(inputs / "gt"), "--uncertainty",
            str(inputs / "unc"), "--no-report", "--no-progress"]
    _bench(ONE, argv + ["--out", str(tmp_path / "one")], _env(cache))
    ranked = _bench(TORCHRUN, argv + ["--out", str(tmp_path / "two")], _env(cache))
    _assert_same_run(tmp_path / "one", tmp_path / "two")
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    every = EvalConfig().fid_every  # FID's frames: every fid_every-th of each clip
    assert summary["metrics"]["fid"]["n"] == sum(-(-n // every) for n in (6, 5, 4))
    assert np.isfinite(summary["metrics"]["fid"]["value"])
    assert ranked.stdout.count("run directory:") == 1
    assert not (tmp_path / "two" / "partial").exists()
