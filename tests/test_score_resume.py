"""`bench score` over clips of mixed sizes and rates, per-clip partial results, and `--resume`.

Three short clips cut from the real 224x224 clips (different crops, 25 and 29.97 fps) are scored into
one run; a failure after two clips and a real SIGKILL leave the scored clips in partial/, and
`--resume` scores only the missing ones, to the same summary.json as an uninterrupted run.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bench.cli
import bench.harness.external
from bench.data.video import iter_frames
from test_score import CLIP_A, CLIP_B, noisy, run_cli, write_mp4

ROOT = Path(__file__).resolve().parents[1]
# clip id -> (source, crop rows, crop columns, frames, fps)
CLIPS = {"a": (CLIP_A, slice(60, 124), slice(72, 152), 7, 25),
         "b": (CLIP_B, slice(70, 118), slice(80, 144), 8, Fraction(30000, 1001)),
         "c": (CLIP_A, slice(90, 146), slice(60, 132), 6, 25)}
SIZES = {"a": (64, 80), "b": (48, 64), "c": (56, 72)}
SCORE_CLIP = bench.harness.external.score_clip

pytestmark = pytest.mark.skipif(not (CLIP_A.is_file() and CLIP_B.is_file()), reason="real clips not mounted")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """pred/, gt/ and unc/ for clips a, b, c of three sizes; b at 29.97 fps."""
    root = tmp_path_factory.mktemp("inputs")
    for clip_id, (source, rows, cols, n, fps) in CLIPS.items():
        gt = np.stack([f[rows, cols] for _, f in zip(range(n), iter_frames(source))])
        pred = noisy(gt, 6, seed=len(clip_id))
        write_mp4(root / "gt" / f"{clip_id}.mp4", gt, fps=fps)
        write_mp4(root / "pred" / f"{clip_id}.mp4", pred, fps=fps)
        (root / "unc").mkdir(exist_ok=True)
        u = np.abs(pred.astype(np.float32) - gt).mean(-1) / 255 + 0.01
        np.save(root / "unc" / f"{clip_id}.npy", u.astype(np.float32))
    return root


def argv(inputs: Path, out: Path, *extra: str) -> list[str]:
    return ["score", "--pred", str(inputs / "pred"), "--gt", str(inputs / "gt"), "--uncertainty",
            str(inputs / "unc"), "--out", str(out), "--no-networks", "--no-report", "--no-progress", *extra]


@pytest.fixture(scope="module")
def straight(inputs, tmp_path_factory) -> Path:
    """The uninterrupted run everything is compared with."""
    out = tmp_path_factory.mktemp("straight") / "run"
    assert bench.cli.main(argv(inputs, out)) == 0
    return out


def recording(monkeypatch, fail_on: str | None = None) -> list[str]:
    """Record the clips `bench score` scores (and raise on ``fail_on``)."""
    scored: list[str] = []

    def score_clip(pair, *args, **kwargs):
        if pair.clip_id == fail_on:
            raise RuntimeError(f"simulated failure on clip {pair.clip_id}")
        scored.append(pair.clip_id)
        return SCORE_CLIP(pair, *args, **kwargs)

    monkeypatch.setattr(bench.harness.external, "score_clip", score_clip)
    return scored


def same_results(run: Path, straight: Path) -> None:
    assert json.loads((run / "summary.json").read_text()) == json.loads((straight / "summary.json").read_text())
    pd.testing.assert_frame_equal(pd.read_parquet(run / "frames.parquet"), pd.read_parquet(straight / "frames.parquet"))
    for name in ("samples.npz", "clip_samples.npz", "worst.npz", "calibration.npz"):
        if not (straight / name).exists():
            assert not (run / name).exists(), name
            continue
        with np.load(run / name) as mine, np.load(straight / name) as theirs:
            assert sorted(mine.files) == sorted(theirs.files), name
            for key in mine.files:
                np.testing.assert_array_equal(mine[key], theirs[key], err_msg=f"{name}: {key}")
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "complete" and not (run / "partial").exists()


def test_clips_of_mixed_sizes_and_rates_score_into_one_run(straight):
    manifest = json.loads((straight / "manifest.json").read_text())
    clips = {c["clip_id"]: c for c in manifest["data"]["clips"]}
    assert {k: (c["height"], c["width"]) for k, c in clips.items()} == SIZES
    assert clips["a"]["fps"] == 25.0 and clips["b"]["fps"] == pytest.approx(29.97, abs=1e-3)
    assert manifest["status"] == "complete" and not (straight / "partial").exists()
    table = pd.read_parquet(straight / "frames.parquet")
    assert table.groupby("clip_id").size().to_dict() == {"a": 7, "b": 8, "c": 6} and table["ause"].notna().all()
    with np.load(straight / "samples.npz") as samples:
        assert len(samples["gt"]) == 6  # no pose: as many as three pose bins would show
        sizes = set(zip(samples["height"].tolist(), samples["width"].tolist()))
        assert len(sizes) >= 2 and sizes <= set(SIZES.values())  # the stack failed on this before
        assert samples["gt"].shape[1:3] == tuple(np.max(list(sizes), axis=0))
        for i in range(len(samples["gt"])):
            h, w = samples["height"][i], samples["width"][i]
            assert np.isfinite(samples["error"][i, :h, :w]).all() and np.isnan(samples["error"][i, h:, :]).all()


def test_failure_after_two_clips_then_resume_scores_only_the_third(inputs, straight, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    scored = recording(monkeypatch, fail_on="c")
    with pytest.raises(RuntimeError, match="simulated failure"):
        bench.cli.main(argv(inputs, out))
    assert scored == ["a", "b"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "failed" and "simulated failure" in manifest["error"]
    assert sorted(p.name for p in (out / "partial").iterdir()) == ["a.npz", "b.npz"]

    code, _, errors = run_cli(argv(inputs, out), capsys)  # without --resume: refused, pointing at it
    assert code == 2 and len(errors) == 1 and "--resume" in errors[0] and str(out) in errors[0]

    scored = recording(monkeypatch)
    code, stdout, _ = run_cli(argv(inputs, out, "--resume"), capsys)
    assert code == 0 and "psnr" in stdout
    assert scored == ["c"]
    same_results(out, straight)
    resumed = json.loads((out / "manifest.json").read_text())
    assert resumed["created"] == manifest["created"] and len(resumed["resumed"]) == 1

    code, _, errors = run_cli(argv(inputs, out, "--resume"), capsys)  # complete: nothing to resume
    assert code == 2 and len(errors) == 1 and "already complete" in errors[0]


def test_sigkill_then_resume(inputs, straight, tmp_path, monkeypatch, capsys):
    """A real `bench score` process, killed once its first clip is saved (its second clip never ends)."""
    out = tmp_path / "run"
    script = ("import sys, threading; import bench.harness.external as s; original = s.score_clip\n"
              "def stall(pair, *a, **k):\n"
              "    if pair.clip_id == 'b': threading.Event().wait()\n"
              "    return original(pair, *a, **k)\n"
              "s.score_clip = stall\n"
              "from bench.cli import main; sys.exit(main(sys.argv[1:]))\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-c", script, *argv(inputs, out)], cwd=tmp_path, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300  # a guard against hanging, not a timing assumption
        while not (out / "partial" / "a.npz").is_file():
            assert process.poll() is None, process.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "bench score never saved its first clip"
            time.sleep(0.2)
        # while it runs, the directory is held: a --resume is refused
        code, _, errors = run_cli(argv(inputs, out, "--resume"), capsys)
        assert code == 2 and len(errors) == 1 and "another bench process" in errors[0]
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert json.loads((out / "manifest.json").read_text())["status"] == "running"
    (out / "partial" / ".b.left-behind.tmp").write_bytes(b"half a file")  # what a kill mid-write leaves
    (out / ".report.html.x.tmp").write_text("<html")

    scored = recording(monkeypatch)
    code, _, errors = run_cli(argv(inputs, out, "--resume"), capsys)
    assert code == 0, errors
    assert scored == ["b", "c"]
    same_results(out, straight)
    assert not list(out.glob("*.tmp"))


def copy_inputs(inputs: Path, to: Path) -> Path:
    for path in inputs.rglob("*"):
        if path.is_file():
            (to / path.relative_to(inputs)).parent.mkdir(parents=True, exist_ok=True)
            (to / path.relative_to(inputs)).write_bytes(path.read_bytes())
    return to


def test_resume_with_out_inside_an_input_directory(inputs, straight, tmp_path, monkeypatch, capsys):
    """What the run writes under --out does not count as changed input when it resumes."""
    mine = copy_inputs(inputs, tmp_path / "inputs")
    out = mine / "pred" / "scores"
    recording(monkeypatch, fail_on="b")
    with pytest.raises(RuntimeError):
        bench.cli.main(argv(mine, out))
    scored = recording(monkeypatch)
    code, _, errors = run_cli(argv(mine, out, "--resume"), capsys)
    assert code == 0, errors
    assert scored == ["b", "c"]
    assert json.loads((out / "summary.json").read_text()) == json.loads((straight / "summary.json").read_text())


def test_resume_refuses_other_inputs_or_settings_and_keeps_what_was_scored(inputs, tmp_path, monkeypatch, capsys):
    mine = copy_inputs(inputs, tmp_path / "inputs")
    out = tmp_path / "run"
    recording(monkeypatch, fail_on="b")
    with pytest.raises(RuntimeError):
        bench.cli.main(argv(mine, out))
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert Path("partial/a.npz") in before

    code, _, errors = run_cli(argv(mine, out, "--resume", "--seed", "3"), capsys)
    assert code == 2 and len(errors) == 1 and errors[0].startswith("bench: error: ") and "--seed changed" in errors[0]
    frames = np.stack(list(iter_frames(mine / "gt" / "a.mp4")))
    write_mp4(mine / "gt" / "a.mp4", noisy(frames, 2))  # same size, count and rate; other pixels
    code, _, errors = run_cli(argv(mine, out, "--resume"), capsys)
    assert code == 2 and len(errors) == 1 and str(out) in errors[0] and "input files" in errors[0]
    code, _, errors = run_cli(argv(mine, tmp_path / "elsewhere", "--resume"), capsys)
    assert code == 2 and len(errors) == 1 and "nothing to resume" in errors[0]
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before  # nothing lost or rewritten
