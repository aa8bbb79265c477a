"""`bench score` and `bench run` refuse bad input and unusable output directories up front, in one line.

Each case runs the CLI, expects exit 2 and exactly one `bench: error:` line naming the file, and checks
that nothing already on disk was lost and that no scoring (or training) started.
"""
from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

import bench.harness.run
import bench.harness.rundir
import bench.harness.external
from bench.cli import main
from bench.harness.rundir import RunDirTakenError, claim_run_dir
from bench.harness.external import check_pair
from bench.data.video import iter_frames, probe
from test_score import CLIP_A, noisy, run_cli, write_mp4, write_pngs

pytestmark = pytest.mark.skipif(not CLIP_A.is_file(), reason="real clips not mounted")
N = 6


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    """N real frames, cropped to 48 x 64."""
    return np.stack([f[80:128, 80:144] for _, f in zip(range(N), iter_frames(CLIP_A))])


@pytest.fixture
def no_scoring(monkeypatch) -> list[str]:
    """Clips `bench score` started to score (should stay empty)."""
    scored: list[str] = []

    def score_clip(pair, *args, **kwargs):
        scored.append(pair.clip_id)
        raise AssertionError("scoring started")

    monkeypatch.setattr(bench.harness.external, "score_clip", score_clip)
    return scored


def score_argv(pred: Path, gt: Path, out: Path) -> list[str]:
    return ["score", "--pred", str(pred), "--gt", str(gt), "--out", str(out), "--no-networks", "--no-report",
            "--no-progress"]


def one_error(capsys, code: int) -> str:
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.strip()]
    assert code == 2 and captured.out == "" and len(errors) == 1, errors
    assert errors[0].startswith("bench: error: ") and "Traceback" not in captured.err
    return errors[0]


def test_out_under_a_file_or_naming_a_file_fails_before_scoring(frames, tmp_path, capsys, no_scoring):
    video = write_mp4(tmp_path / "a.mp4", frames)
    note = tmp_path / "notes.txt"
    note.write_text("keep me")
    error = one_error(capsys, main(score_argv(video, video, note / "run")))
    assert "notes.txt is a file" in error and str(note / "run") in error
    error = one_error(capsys, main(score_argv(video, video, note)))
    assert "is an existing file, not a directory" in error and "not empty" not in error and str(note) in error
    assert note.read_text() == "keep me" and no_scoring == []


@pytest.mark.parametrize("rate", [30, 50])
def test_a_prediction_at_another_frame_rate_is_refused(frames, tmp_path, capsys, no_scoring, rate):
    gt = write_mp4(tmp_path / "gt.mp4", frames, fps=25)
    pred = write_mp4(tmp_path / f"pred{rate}.mp4", frames, fps=rate)  # equal frame counts
    error = one_error(capsys, main(score_argv(pred, gt, tmp_path / "run")))
    assert f"pred{rate}.mp4 is {rate} fps but" in error and "gt.mp4 is 25 fps" in error
    assert not (tmp_path / "run").exists() and no_scoring == []


def test_rates_within_the_tolerance_or_unknown_pass(frames, tmp_path):
    ntsc = write_mp4(tmp_path / "ntsc.mp4", frames, fps=Fraction(30000, 1001))
    thirty = write_mp4(tmp_path / "thirty.mp4", frames, fps=30)
    assert check_pair("x", ntsc, thirty).n_frames == N  # 29.97 against 30: the same frames relabelled
    assert check_pair("x", write_pngs(tmp_path / "pngs", frames), thirty).fps == 30.0  # frames carry no rate


def _gray_video(path: Path, frames: np.ndarray) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "gray"
        for frame in frames:
            gray = frame.mean(-1).round().astype(np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(gray, format="gray")))
        container.mux(stream.encode())
    return path


def test_grayscale_against_colour_is_refused(frames, tmp_path, capsys, no_scoring):
    gray = _gray_video(tmp_path / "gray.mkv", frames)
    colour = write_mp4(tmp_path / "colour.mp4", frames)
    assert probe(gray).grayscale and not probe(colour).grayscale
    error = one_error(capsys, main(score_argv(gray, colour, tmp_path / "run")))
    assert "gray.mkv is grayscale but" in error and "colour.mp4 is colour" in error
    (tmp_path / "gray_pngs").mkdir()
    for i, frame in enumerate(frames):
        Image.fromarray(frame).convert("L").save(tmp_path / "gray_pngs" / f"{i}.png")
    colour_pngs = write_pngs(tmp_path / "colour_pngs", frames)
    error = one_error(capsys, main(score_argv(colour_pngs, tmp_path / "gray_pngs", tmp_path / "run")))
    assert "colour_pngs is colour but" in error and "gray_pngs is grayscale" in error
    assert not (tmp_path / "run").exists() and no_scoring == []


def test_runs_started_in_the_same_second_get_their_own_default_directories(frames, tmp_path, monkeypatch, capsys):
    video = write_mp4(tmp_path / "clip.mp4", noisy(frames, 5))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(bench.harness.external.time, "strftime", lambda *args: "20250101-120000")
    argv = ["score", "--pred", str(video), "--gt", str(video), "--no-networks", "--no-report", "--no-progress"]
    assert main(argv) == 0 and main(argv) == 0
    capsys.readouterr()
    runs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert runs == ["score-clip-20250101-120000", "score-clip-20250101-120000-2"]
    for name in runs:
        assert json.loads((tmp_path / "runs" / name / "manifest.json").read_text())["status"] == "complete"


def test_a_taken_out_is_refused_at_the_claim(tmp_path, monkeypatch):
    out = tmp_path / "run"
    claim_run_dir(out, {"status": "running", "model": "external"})
    with pytest.raises(RunDirTakenError, match="not empty"):
        claim_run_dir(out, {"status": "running"})
    # two processes that both found it free: the exclusive manifest decides, the loser learns it at once
    monkeypatch.setattr(bench.harness.rundir, "check_run_dir_free", lambda path, hint="": Path(path))
    with pytest.raises(RunDirTakenError, match="claimed this output directory first"):
        claim_run_dir(out, {"status": "running"})
    assert json.loads((out / "manifest.json").read_text())["model"] == "external"


def test_resume_needs_out(frames, tmp_path, capsys, no_scoring):
    video = write_mp4(tmp_path / "a.mp4", frames)
    error = one_error(capsys, main(["score", "--pred", str(video), "--gt", str(video), "--resume", "--no-networks"]))
    assert "--resume needs --out" in error
    error = one_error(capsys, main(["score", "--metric", "psnr", "--pred", str(video), "--gt", str(video),
                                    "--resume"]))
    assert "drop --resume" in error


def test_bench_run_claims_its_out_before_training_and_releases_it_on_failure(tmp_path, monkeypatch, capsys):
    note = tmp_path / "notes.txt"
    note.write_text("keep me")
    seen: list[bool] = []

    def load_data(config, progress=True):
        seen.append(json.loads((tmp_path / "run" / "manifest.json").read_text())["status"] == "running")
        raise bench.harness.run.RunError(f"{tmp_path / 'nodata'}: no manifest.json")

    monkeypatch.setattr(bench.harness.run, "metric_networks", lambda config, device: {})
    monkeypatch.setattr(bench.harness.run, "load_data", load_data)
    for out, expected in ((note / "run", "notes.txt is a file"), (note, "is an existing file, not a directory")):
        error = one_error(capsys, main(["run", "--model", "copyref", "--preset", "smoke", "--out", str(out)]))
        assert expected in error
    assert seen == [] and note.read_text() == "keep me"  # refused before any data or training
    error = one_error(capsys, main(["run", "--model", "copyref", "--preset", "smoke", "--out", str(tmp_path / "run")]))
    assert "no manifest.json" in error and seen == [True]  # claimed up front ...
    assert not (tmp_path / "run").exists()  # ... and released when the run failed before writing results
