"""`bench score` on real clips: video I/O, the run directory, degradations, uncertainty, CLI errors, batches.

Uses the first frames of two small 224x224 clips from ../shared/data/real (never copied into the
repo: truncated copies are written to tmp_path as PNG frame directories or mp4 via PyAV).
"""
from __future__ import annotations

import json
import wave
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageFilter

from bench.cli import main
from bench.config import EvalConfig, pose_bin
from bench.harness.external import check_pair, score, score_metric, score_pairs
from bench.data.video import VideoError, iter_frames, read_audio, read_frames, read_uncertainty

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
CLIP_A = REAL / "pc-avs__misc_Audio_Source_00015.mp4"
CLIP_B = REAL / "pc-avs__misc_Pose_Source_00067.mp4"
RETALK = REAL / "video-retalking__examples_face_1.mp4"  # 44.1 kHz audio, 6.13 s
N = 25  # frames of each clip used anywhere here
FAST = EvalConfig(bootstrap=200, networks=())  # no LPIPS/FID weights needed; a cheaper bootstrap

pytestmark = pytest.mark.skipif(not (CLIP_A.is_file() and CLIP_B.is_file() and RETALK.is_file()),
                                reason=f"real clips not found in {REAL} (shared data not mounted)")


@pytest.fixture(scope="module")
def frames() -> dict[str, np.ndarray]:
    """First N frames of two real clips, uint8 N x 224 x 224 x 3."""
    out = {}
    for name, path in (("a", CLIP_A), ("b", CLIP_B)):
        out[name] = np.stack([f for _, f in zip(range(N), iter_frames(path))])
    return out


def write_pngs(directory: Path, frames: np.ndarray) -> Path:
    """Unpadded names (0.png ... 24.png): only natural ordering reads them back in order."""
    directory.mkdir(parents=True)
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(directory / f"{i}.png", compress_level=1)
    return directory


def write_mp4(path: Path, frames: np.ndarray, fps: int = 25) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def noisy(frames: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0.0, sigma, frames.shape)
    return np.clip(frames + noise, 0, 255).round().astype(np.uint8)


def abs_error(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    return (np.abs(pred.astype(np.float32) - gt.astype(np.float32)).mean(-1) / 255.0).astype(np.float32)


def run_cli(argv: list[str], capsys) -> tuple[int, str, list[str]]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, [line for line in captured.err.splitlines() if line.strip()]


# ---------------------------------------------------------------- video I/O
def test_pose_bin_of_nan_is_unknown():
    assert pose_bin(float("nan")) == "unknown"
    assert pose_bin(abs(float("nan"))) == "unknown"
    assert pose_bin(10.0) == "frontal"


def test_frame_directory_reads_in_natural_order_like_the_video(frames, tmp_path):
    directory = write_pngs(tmp_path / "a", frames["a"])
    read, fps = read_frames(directory)
    assert fps is None and read.dtype == np.uint8
    np.testing.assert_array_equal(read, frames["a"])  # 10.png after 9.png, not after 1.png
    video, fps = read_frames(write_mp4(tmp_path / "a.mp4", frames["a"]))
    assert video.shape == (N, 224, 224, 3) and fps == 25.0


def test_audio_of_a_44k_video_and_a_wav_reads_as_16k_mono(tmp_path):
    with av.open(str(RETALK)) as container:
        duration = float(container.duration / av.time_base)
        assert container.streams.audio[0].rate == 44100
    audio = read_audio(RETALK)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(audio.size - duration * 16000) < 0.02 * duration * 16000
    rate, seconds = 44100, 0.5  # a 440 Hz stereo tone: length and pitch survive resampling
    t = np.arange(int(rate * seconds)) / rate
    tone = (0.5 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)
    with wave.open(str(tmp_path / "tone.wav"), "wb") as handle:
        handle.setnchannels(2)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(np.repeat(tone, 2).tobytes())
    audio = read_audio(tmp_path / "tone.wav")
    assert abs(audio.size - 8000) <= 64
    peak = np.argmax(np.abs(np.fft.rfft(audio))) * 16000 / audio.size
    assert abs(peak - 440) < 5


def test_uncertainty_file_and_directory_forms_and_their_errors(tmp_path):
    maps = np.random.default_rng(0).random((3, 4, 5)).astype(np.float32)
    np.save(tmp_path / "u.npy", maps)
    np.testing.assert_array_equal(read_uncertainty(tmp_path / "u.npy", 3, 4, 5), maps)
    (tmp_path / "dir").mkdir()
    for i, u in enumerate(maps):
        np.save(tmp_path / "dir" / f"u{i}.npy", u.astype(np.float64))
    np.testing.assert_array_equal(read_uncertainty(tmp_path / "dir", 3, 4, 5), maps)
    for name, array, problem in (("shape.npy", maps[:, :, :4], "shape"), ("neg.npy", -maps, "negative"),
                                 ("nan.npy", np.where(maps > 0.5, np.nan, maps), "non-finite")):
        np.save(tmp_path / name, array)
        with pytest.raises(VideoError, match=problem) as error:
            read_uncertainty(tmp_path / name, 3, 4, 5)
        assert name in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(VideoError, match="2 .npy maps but the video has 3"):
        (tmp_path / "dir" / "u2.npy").unlink()
        read_uncertainty(tmp_path / "dir", 3, 4, 5)


# ---------------------------------------------------------------- scoring
def test_clip_scored_against_itself_writes_a_perfect_run(frames, tmp_path):
    video = write_mp4(tmp_path / "a.mp4", frames["a"])
    run_dir = score(video, video, tmp_path / "run", audio=CLIP_A, config=FAST, report=None, progress=False)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["model"] == "external"
    assert summary["metrics"]["psnr"]["value"] == 100.0  # inf per frame, capped in the mean
    assert summary["metrics"]["ssim"]["value"] == pytest.approx(1.0)
    assert set(summary["by_pose"]) == {"frontal", "moderate", "extreme"}
    for block in summary["by_pose"].values():  # no pose labels: every bin empty, nothing crashes
        assert block["psnr"]["n"] == 0 and block["psnr"]["value"] is None
    table = pd.read_parquet(run_dir / "frames.parquet")
    assert len(table) == N and list(table["frame"]) == list(range(N)) and set(table["clip_id"]) == {"a"}
    assert np.isinf(table["psnr"]).all() and (table["err_mean"] == 0).all()
    assert (table["pose_bin"] == "unknown").all() and table["yaw"].isna().all()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["model"] == "external"
    assert manifest["checkpoint"] is None and len(manifest["data"]["hash"]) == 64
    assert manifest["config"]["pred"] == str(video.resolve()) and manifest["config"]["eval"]["bootstrap"] == 200
    assert manifest["data"]["audio"]["a"]["samples"] == pytest.approx(7.0 * 16000, rel=0.02)
    with np.load(run_dir / "samples.npz") as samples:
        assert samples["gt"].shape[1:] == (224, 224, 3) and len(samples["gt"]) >= 2
    assert (run_dir / "curves.npz").is_file() and not (run_dir / "report.html").exists()


def test_degradations_lower_the_scores_in_order(frames, tmp_path):
    gt = frames["a"][:7]
    blurred = np.stack([np.asarray(Image.fromarray(f).filter(ImageFilter.GaussianBlur(1.5))) for f in gt])
    variants = {"same": gt[:6], "blur": blurred[:6], "noise5": noisy(gt[:6], 5), "noise20": noisy(gt[:6], 20),
                "shift5": noisy(gt[1:7], 5)}  # frame t+1 against frame t
    gt_dir = write_pngs(tmp_path / "gt", gt[:6])
    scores = {}
    for name, pred in variants.items():
        pair = check_pair(name, write_pngs(tmp_path / name, pred), gt_dir)
        scores[name] = score_pairs([pair], FAST, progress=False).frames
    assert np.isinf(scores["same"]["psnr"]).all() and np.allclose(scores["same"]["ssim"], 1.0)
    assert (scores["blur"]["ssim"] < 0.97).all() and np.isfinite(scores["blur"]["psnr"]).all()
    assert (scores["noise20"]["psnr"] < scores["noise5"]["psnr"] - 6).all()
    assert (scores["noise20"]["ssim"] < scores["noise5"]["ssim"]).all()
    assert (scores["shift5"]["psnr"] < scores["noise5"]["psnr"]).all()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # u = 0 where pred == gt: NLL is infinite there
def test_abs_error_as_uncertainty_is_ideal_and_a_constant_map_is_uninformative(frames, tmp_path):
    gt, pred = frames["a"][:8], noisy(frames["a"][:8], 8)
    gt_dir, pred_dir = write_pngs(tmp_path / "gt", gt), write_pngs(tmp_path / "pred", pred)
    np.save(tmp_path / "u.npy", abs_error(pred, gt))
    run_dir = score(pred_dir, gt_dir, tmp_path / "ideal", uncertainty=tmp_path / "u.npy", config=FAST,
                    report=None, progress=False)
    metrics = json.loads((run_dir / "summary.json").read_text())["metrics"]
    assert metrics["ause"]["value"] == pytest.approx(0.0, abs=1e-6)
    assert metrics["unc_spearman"]["value"] > 0.9
    (tmp_path / "const").mkdir()  # the per-frame directory form
    for i in range(len(gt)):
        np.save(tmp_path / "const" / f"{i}.npy", np.full((224, 224), 0.05, np.float32))
    run_dir = score(pred_dir, gt_dir, tmp_path / "flat", uncertainty=tmp_path / "const", config=FAST,
                    report=None, progress=False)
    metrics = json.loads((run_dir / "summary.json").read_text())["metrics"]
    assert metrics["unc_spearman"]["value"] is None
    assert metrics["ause"]["value"] > 0.001


# ---------------------------------------------------------------- command line
def _bad_inputs(frames: np.ndarray, tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    """case -> (extra CLI args, the file the error line must name)."""
    gt = write_pngs(tmp_path / "gt", frames[:6])
    short = write_pngs(tmp_path / "short", frames[:5])
    small = write_pngs(tmp_path / "small", frames[:6, :200, :200])
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    np.save(tmp_path / "wrong.npy", np.zeros((6, 224, 200), np.float32))
    return {
        "frames": (["--pred", str(short), "--gt", str(gt)], "short has 5 frames but"),
        "size": (["--pred", str(small), "--gt", str(gt)], "small is 200x200"),
        "unreadable": (["--pred", str(garbage), "--gt", str(gt)], "garbage.mp4"),
        "npy": (["--pred", str(gt), "--gt", str(gt), "--uncertainty", str(tmp_path / "wrong.npy")], "wrong.npy"),
    }


@pytest.mark.parametrize("case", ["frames", "size", "unreadable", "npy"])
def test_bad_input_exits_2_with_one_line_and_no_run_directory(frames, tmp_path, capsys, case):
    args, named = _bad_inputs(frames["a"], tmp_path)[case]
    out = tmp_path / "out" / "run"
    code, stdout, errors = run_cli(["score", *args, "--out", str(out), "--no-networks", "--no-progress"], capsys)
    assert code == 2 and stdout == ""
    assert len(errors) == 1 and errors[0].startswith("bench: error: ") and named in errors[0], errors
    assert not (tmp_path / "out").exists()


def test_an_occupied_output_directory_is_refused(frames, tmp_path, capsys):
    gt = write_pngs(tmp_path / "gt", frames["a"][:2])
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")
    code, _, errors = run_cli(["score", "--pred", str(gt), "--gt", str(gt), "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and len(errors) == 1 and "not empty" in errors[0]


def test_batch_of_videos_pairs_by_stem_into_one_run(frames, tmp_path, capsys):
    for name in ("a", "b"):
        write_mp4(tmp_path / "pred" / f"{name}.mp4", noisy(frames[name][:6], 6))
        write_mp4(tmp_path / "gt" / f"{name}.mp4", frames[name][:6])
    (tmp_path / "unc" / "b").mkdir(parents=True)  # a: one file, b: a directory of per-frame maps
    np.save(tmp_path / "unc" / "a.npy", np.full((6, 224, 224), 0.1, np.float32))
    for i in range(6):
        np.save(tmp_path / "unc" / "b" / f"{i}.npy", np.full((224, 224), 0.1, np.float32))
    out = tmp_path / "run"
    code, stdout, _ = run_cli(["score", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "--uncertainty",
                               str(tmp_path / "unc"), "--out", str(out), "--no-networks", "--no-report",
                               "--no-progress"], capsys)
    assert code == 0 and "psnr" in stdout and str(out) in stdout
    table = pd.read_parquet(out / "frames.parquet")
    assert sorted(set(table["clip_id"])) == ["a", "b"] and len(table) == 12 and table["ause"].notna().all()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["batch"] and [c["clip_id"] for c in manifest["data"]["clips"]] == ["a", "b"]
    (tmp_path / "gt" / "b.mp4").rename(tmp_path / "gt" / "c.mp4")
    code, _, errors = run_cli(["score", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"),
                               "--out", str(tmp_path / "run2"), "--no-networks"], capsys)
    assert code == 2 and len(errors) == 1 and "only in pred: b; only in gt: c" in errors[0]
    assert not (tmp_path / "run2").exists()


def test_metric_prints_one_float_per_frame(frames, tmp_path, capsys):
    gt = write_pngs(tmp_path / "gt", frames["b"][:4])
    pred = write_pngs(tmp_path / "pred", noisy(frames["b"][:4], 10))
    code, stdout, _ = run_cli(["score", "--metric", "psnr", "--pred", str(pred), "--gt", str(gt)], capsys)
    values = [float(line) for line in stdout.splitlines()]
    assert code == 0 and len(values) == 4 and all(25 < v < 35 for v in values)
    assert values == pytest.approx(score_metric("psnr", pred, gt))
    single = score_metric("ssim", gt / "0.png", gt / "0.png")  # a pair of images: one value
    assert single == [pytest.approx(1.0)]
    code, stdout, errors = run_cli(["score", "--metric", "sharpness", "--pred", str(pred), "--gt", str(gt)], capsys)
    assert code == 2 and stdout == "" and "unknown metric" in errors[0]


def test_report_renders_for_an_external_run(frames, tmp_path):
    """The one report render here (~4 s)."""
    gt, pred = frames["b"][:6], noisy(frames["b"][:6], 8)
    gt_dir, pred_dir = write_pngs(tmp_path / "gt", gt), write_pngs(tmp_path / "pred", pred)
    np.save(tmp_path / "u.npy", abs_error(pred, gt) + 0.01)
    from bench.report.render import render_report  # the harness renders with what the caller hands it

    run_dir = score(pred_dir, gt_dir, tmp_path / "run", uncertainty=tmp_path / "u.npy", config=FAST,
                    progress=False, report=render_report)
    assert (run_dir / "report.html").stat().st_size > 10_000
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "complete"


def test_lpips_per_frame_with_provisioned_weights(frames, tmp_path, provisioned):
    gt = write_pngs(tmp_path / "gt", frames["a"][:2])
    pred = write_pngs(tmp_path / "pred", noisy(frames["a"][:2], 20))
    assert score_metric("lpips", gt, gt) == [pytest.approx(0.0, abs=1e-6)] * 2
    assert all(v > 0.05 for v in score_metric("lpips", pred, gt))
