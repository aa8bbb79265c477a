"""`bench data prepare` on the real clips in ../shared/data/real (skipped where they are absent).

One module-scoped prepare of a small folder (two real clips and re-encodings of them, trimmed with
--max-seconds, 64 px crops) serves most tests; bad inputs built from a real clip sit in the same folder.
"""
from __future__ import annotations

import json
import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest

from bench.cli import main
from bench.config import pose_bin
from bench.data.clips import ClipFormatError, open_dataset
from bench.data.video import read_audio

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
FACE_30FPS = REAL / "video-retalking__examples_face_1.mp4"  # 30 fps with dropped frames, 44.1 kHz stereo
VOX = REAL / "pc-avs__misc_Pose_Source_00067.mp4"  # 224 px, 25 fps, 16 kHz
needs_real = pytest.mark.skipif(not (FACE_30FPS.is_file() and VOX.is_file()), reason=f"no real clips in {REAL}")
SECONDS = "2"


def _decode(path: Path, seconds: float = 2.0) -> tuple[np.ndarray, float, np.ndarray]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        fps = float(stream.average_rate)
    audio = read_audio(path)
    n = int(seconds * fps)
    return np.stack(frames[:n]), fps, audio[:int(seconds * 16000)]


def encode(path: Path, frames: np.ndarray | None, fps: float, audio: np.ndarray | None = None, rate: int = 16000,
           pix_fmt: str = "yuv420p", codec: str = "libx264", audio_codec: str = "aac") -> Path:
    """Write frames (T x H x W x 3 uint8) and/or mono audio (float at ``rate``) with PyAV."""
    with av.open(str(path), "w") as container:
        video = None
        if frames is not None:
            video = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
            video.width, video.height, video.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        sound = container.add_stream(audio_codec, rate=rate, layout="mono") if audio is not None else None
        pcm = audio_codec.startswith("pcm_s16")
        if video is not None:
            for image in frames:
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
                container.mux(video.encode(frame.reformat(format=pix_fmt) if pix_fmt == "gray" else frame))
            container.mux(video.encode(None))
        if sound is not None:
            chunk = 1024
            for start in range(0, len(audio), chunk):
                part = np.ascontiguousarray(audio[start:start + chunk], dtype=np.float32)[None]
                if pcm:
                    part = np.round(np.clip(part, -1, 1) * 32767).astype(np.int16)
                frame = av.AudioFrame.from_ndarray(part, format="s16" if pcm else "flt", layout="mono")
                frame.sample_rate = rate
                container.mux(sound.encode(frame))
            container.mux(sound.encode(None))
    return path


def _resample(audio: np.ndarray, rate: int) -> np.ndarray:
    from scipy.signal import resample_poly
    from math import gcd

    common = gcd(rate, 16000)
    return resample_poly(audio, rate // common, 16000 // common).astype(np.float32)


def _marked_30fps(path: Path) -> Path:
    """A 30 fps video made from the 25 fps clip, with its colours inverted during [1.0, 1.2) s and a 1 kHz tone
    exactly then: after preparation the inverted frames and the tone must still coincide."""
    frames, fps, audio = _decode(VOX, 2.0)
    times = np.arange(int(2.0 * 30)) / 30
    out = frames[np.minimum(len(frames) - 1, np.round(times * fps).astype(int))].copy()
    marked = (times >= 1.0) & (times < 1.2)
    out[marked] = 255 - out[marked]
    t = np.arange(len(audio)) / 16000
    wave = 0.02 * audio + np.where((t >= 1.0) & (t < 1.2), 0.5 * np.sin(2 * np.pi * 1000 * t), 0.0)
    # PCM audio: AAC's encoder delay (1024 priming samples, which PyAV's muxer leaves in) would shift the tone.
    return encode(path, out, 30, wave.astype(np.float32), audio_codec="pcm_s16le")


def _bad_inputs(folder: Path) -> dict[str, str]:
    """file name -> a word its skip reason must contain."""
    frames, fps, audio = _decode(VOX, 2.0)
    bad = {}
    encode(folder / "no_audio.mp4", frames, fps)
    bad["no_audio.mp4"] = "no audio"
    encode(folder / "audio_only.mp4", None, fps, audio)
    bad["audio_only.mp4"] = "audio only"
    data = VOX.read_bytes()
    (folder / "truncated.mp4").write_bytes(data[: len(data) // 3])
    bad["truncated.mp4"] = "truncat"
    (folder / "empty.mp4").write_bytes(b"")
    bad["empty.mp4"] = "not a readable video"
    encode(folder / "no_face.mp4", np.full_like(frames, 90), fps, audio)
    bad["no_face.mp4"] = "no face"
    encode(folder / "tiny.mp4", frames[:, ::6, ::6].copy(), fps, audio)  # 38 x 38
    bad["tiny.mp4"] = "too small"
    encode(folder / "huge.mp4", np.zeros((3, 64, 4112, 3), np.uint8), fps, audio[:2000])
    bad["huge.mp4"] = "too large"
    encode(folder / "short.mp4", frames[:4], fps, audio[:4 * 640])
    bad["short.mp4"] = "sync window"
    encode(folder / "zero_frames.mkv", frames[:0], fps, audio, codec="ffv1", audio_codec="pcm_s16le")
    bad["zero_frames.mkv"] = "zero frames"
    return bad


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    if not (FACE_30FPS.is_file() and VOX.is_file()):
        pytest.skip(f"no real clips in {REAL}")
    pytest.importorskip("mediapipe", reason="face tracking needs the landmarks extra: pip install -e '.[landmarks]'")
    root = tmp_path_factory.mktemp("prepare")
    videos = root / "videos"
    videos.mkdir()
    shutil.copy(FACE_30FPS, videos / FACE_30FPS.name)
    shutil.copy(VOX, videos / VOX.name)
    frames, fps, audio = _decode(VOX, 2.0)
    encode(videos / "vox_50fps.mp4", np.repeat(frames, 2, axis=0), 50, audio)
    encode(videos / "vox_8k.mp4", frames, fps, _resample(audio, 8000), rate=8000)
    encode(videos / "vox_48k_gray.mkv", frames, fps, _resample(audio, 48000), rate=48000, pix_fmt="gray",
           codec="ffv1")
    _marked_30fps(videos / "marked_30fps.mov")
    # Two faces side by side, the second smaller: one track, on the larger face (the left half).
    other, _, _ = _decode(REAL / "pc-avs__misc_Audio_Source_00086.mp4", 2.0)
    n = min(len(frames), len(other))
    small = np.pad(other[:n, ::2, ::2], ((0, 0), (56, 56), (56, 56), (0, 0)))
    encode(videos / "two_faces.mp4", np.concatenate([frames[:n], small], axis=2), fps, audio)
    bad = _bad_inputs(videos)
    out = root / "out"
    code = main(["data", "prepare", "--videos", str(videos), "--out", str(out), "--size", "64",
                 "--first-seconds", SECONDS])
    return {"root": root, "videos": videos, "out": out, "code": code, "bad": bad}


def test_prepare_writes_a_dataset_with_labels(prepared):
    dataset = open_dataset(prepared["out"])
    ids = {entry["id"] for entry in dataset.entries}
    assert ids == {FACE_30FPS.stem, VOX.stem, "vox_50fps", "vox_8k", "vox_48k_gray", "marked_30fps", "two_faces"}
    assert dataset.manifest["split_by"] == "clip" and dataset.manifest["split_seed"] == 0
    # 7 clips (groups): 20% rounded up to test, then 10% rounded up of the rest to val.
    assert {e["split"] for e in dataset.entries} == {"train", "val", "test"}
    assert dataset.manifest["test_fraction"] == 0.2 and dataset.manifest["val_fraction"] == 0.1
    for entry in dataset.entries:
        clip = dataset.clip(entry)
        assert clip.fps == 25 and clip.frames.shape[1:] == (64, 64, 3)
        assert clip.meta["split"] == entry["split"] and clip.meta["stratum"] in ("frontal", "moderate", "extreme")
        assert len(clip.audio) == clip.n_frames * 640  # 16 kHz, aligned to whole frames
        assert {"mouth_left", "mouth_right", "upper_lip", "lower_lip"} <= set(clip.meta["landmark_names"])
        assert clip.landmarks.shape == (clip.n_frames, 8, 2) and clip.landmark_visible.mean() > 0.5
        assert np.isfinite(clip.yaw).mean() > 0.5 and np.nanmax(np.abs(clip.yaw)) < 60
        assert 0 <= clip.mouth_open.min() and clip.mouth_open.max() <= 1 and clip.mouth_open.max() > 0
        assert 40 <= clip.n_frames <= 51  # 2 s at 25 fps, whatever the input rate


def test_30fps_input_comes_out_at_25fps_with_audio_aligned(prepared):
    dataset = open_dataset(prepared["out"])
    clip = dataset.clip(next(e for e in dataset.entries if e["id"] == FACE_30FPS.stem))
    assert clip.n_frames == 50 and len(clip.audio) == 50 * 640
    # The video starts 33 ms after the audio: the prepared audio starts with the first frame.
    reference = read_audio(FACE_30FPS)[528:528 + len(clip.audio)]
    lags = np.arange(-200, 201)
    corr = [np.dot(clip.audio[400:-400], reference[400 + lag:len(reference) - 400 + lag]) for lag in lags]
    assert abs(lags[int(np.argmax(corr))]) <= 16  # within 1 ms


def test_two_faces_give_one_track_on_the_larger_face(prepared):
    dataset = open_dataset(prepared["out"])
    two = dataset.clip(next(e for e in dataset.entries if e["id"] == "two_faces"))
    alone = dataset.clip(next(e for e in dataset.entries if e["id"] == VOX.stem))
    assert two.landmark_visible.all()
    qa = pd.read_parquet(prepared["out"] / "qa.parquet").set_index("clip_id")
    assert qa.loc["two_faces", "faces"] == 2 and "largest track" in qa.loc["two_faces", "notes"]
    assert qa.loc[VOX.stem, "faces"] == 1 and "largest" not in qa.loc[VOX.stem, "notes"]
    # Same face, same crop (up to the wider frame's box being free to extend to the right).
    difference = np.abs(two.frames.astype(int) - alone.frames[:two.n_frames].astype(int)).mean()
    assert difference < 8  # a different face's crop differs by about 60 grey levels


def test_marked_30fps_video_keeps_its_audio_video_offset_at_zero(prepared):
    dataset = open_dataset(prepared["out"])
    clip = dataset.clip(next(e for e in dataset.entries if e["id"] == "marked_30fps"))
    brightness = clip.frames.reshape(clip.n_frames, -1).mean(1)
    inverted = np.flatnonzero(np.abs(brightness - np.median(brightness)) > 40)
    assert inverted.min() == 25 and inverted.max() == 29  # [1.0, 1.2) s at 25 fps
    # The mesh finds no face in the negatives: those frames are filled from their neighbours and flagged.
    assert not clip.landmark_visible[inverted].any() and clip.landmark_visible[:20].all()
    level = np.sqrt(np.convolve(clip.audio ** 2, np.ones(160) / 160, mode="same"))
    onset = np.flatnonzero(level > 0.2)
    assert abs(onset.min() - 16000) < 640 and abs(onset.max() - 19200) < 640  # within one frame


def test_bad_inputs_give_one_line_each_and_a_qa_row(prepared, capsys):
    assert prepared["code"] == 1  # something was skipped
    qa = pd.read_parquet(prepared["out"] / "qa.parquet")
    assert len(qa) == 7 + len(prepared["bad"])
    for name, word in prepared["bad"].items():
        row = qa[qa["file"] == name].iloc[0]
        assert row["status"] == "skipped" and word in row["reason"], (name, row["reason"])
    ok = qa[qa["status"] == "ok"].set_index("clip_id")
    assert ok.loc["vox_50fps", "fps_in"] == pytest.approx(50, abs=0.1)
    assert ok.loc[FACE_30FPS.stem, "fps_in"] == pytest.approx(30, abs=0.1)
    assert "variable frame rate" in ok.loc[FACE_30FPS.stem, "notes"]
    assert ok.loc["vox_8k", "sample_rate_in"] == 8000 and "upsampled" in ok.loc["vox_8k", "notes"]
    assert "grayscale" in ok.loc["vox_48k_gray", "notes"] and ok.loc["vox_48k_gray", "sample_rate_in"] == 48000
    gray = open_dataset(prepared["out"]).clip({"file": "vox_48k_gray.npz"}).frames.astype(int)
    assert np.abs(gray[..., 0] - gray[..., 1]).max() <= 1  # one channel replicated to RGB
    assert (ok.drop("marked_30fps")["face_found"] > 0.95).all() and (ok["audio_dbfs"] < 0).all()
    assert ok.loc["marked_30fps", "face_found"] == pytest.approx(0.9, abs=0.05)  # the inverted frames
    manifest = json.loads((prepared["out"] / "manifest.json").read_text())
    assert {s["file"] for s in manifest["skipped"]} == set(prepared["bad"])


def test_cli_prints_one_line_per_skipped_file(prepared, tmp_path, capsys):
    videos = tmp_path / "v"
    videos.mkdir()
    shutil.copy(prepared["videos"] / "no_audio.mp4", videos)
    shutil.copy(prepared["videos"] / "short.mp4", videos)
    assert main(["data", "prepare", "--videos", str(videos), "--out", str(tmp_path / "o"), "--size", "64"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert sorted(line.split(":")[0] for line in err if line.startswith("skipped")) == \
        ["skipped no_audio.mp4", "skipped short.mp4"]
    with pytest.raises(ClipFormatError):  # nothing prepared: no manifest, not a dataset
        open_dataset(tmp_path / "o")


def test_existing_dataset_needs_force(prepared, tmp_path, capsys):
    out = tmp_path / "o"
    videos = tmp_path / "v"
    videos.mkdir()
    shutil.copy(prepared["videos"] / "vox_8k.mp4", videos)
    args = ["data", "prepare", "--videos", str(videos), "--out", str(out), "--size", "32", "--first-seconds", "0.6"]
    assert main(args) == 0
    before = (out / "manifest.json").read_bytes()
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--force" in err[0] and str(out) in err[0]
    assert (out / "manifest.json").read_bytes() == before
    assert main([*args, "--force"]) == 0


def test_interrupted_prepare_resumes_and_keeps_finished_clips(prepared, tmp_path, monkeypatch, capsys):
    import bench.data.prepare.dataset as prepare_module

    videos = tmp_path / "v"
    videos.mkdir()
    for name in ("vox_50fps.mp4", "vox_8k.mp4"):
        shutil.copy(prepared["videos"] / name, videos)
    out = tmp_path / "o"
    args = ["data", "prepare", "--videos", str(videos), "--out", str(out), "--size", "32", "--first-seconds", "0.6",
            "--no-progress"]
    real = prepare_module.prepare_source

    def interrupted(source, *rest):
        if source.clip_id == "vox_50fps":  # the second file (natural order: 8 before 50): a kill (Ctrl-C) in the middle of it
            raise KeyboardInterrupt
        return real(source, *rest)

    monkeypatch.setattr(prepare_module, "prepare_source", interrupted)
    assert main(args) == 130
    assert not (out / "manifest.json").exists() and (out / ".prepare-state.json").is_file()
    with pytest.raises(ClipFormatError, match="interrupted"):  # never looks complete
        open_dataset(out)
    kept = out / "vox_8k.npz"
    mtime = kept.stat().st_mtime_ns
    monkeypatch.setattr(prepare_module, "prepare_source", real)
    capsys.readouterr()
    assert main(args) == 0
    assert "1 kept from an interrupted run" in capsys.readouterr().out
    assert {e["id"] for e in open_dataset(out).entries} == {"vox_8k", "vox_50fps"}
    assert not (out / ".prepare-state.json").exists()
    # Kept, not prepared again (the split may rewrite its meta, so compare the frames' bytes when it did).
    from bench.data.clips import load_clip
    assert kept.stat().st_mtime_ns == mtime or load_clip(kept).n_frames == 15


@needs_real
def test_bad_arguments_exit_2(tmp_path, capsys):
    assert main(["data", "prepare", "--videos", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2
    assert "no such directory" in capsys.readouterr().err
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    (tmp_path / "v").mkdir()
    shutil.copy(VOX, tmp_path / "v")
    assert main(["data", "prepare", "--videos", str(tmp_path / "v"), "--out", str(tmp_path / "busy")]) == 2
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "prepare", "--out", str(tmp_path / "o")])
    assert exit_info.value.code == 2
    capsys.readouterr()
    for fraction in ("-0.1", "0.8"):  # negative; test + val not below 1
        assert main(["data", "prepare", "--videos", str(tmp_path / "v"), "--out", str(tmp_path / "o"),
                     "--val-fraction", fraction]) == 2
        assert "--val-fraction" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_smoke_run_with_copyref_on_the_prepared_set(prepared, provisioned, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TALKBENCH_CACHE", str(tmp_path / "cache"))
    assert main(["run", "--model", "copyref", "--preset", "smoke", "--data", str(prepared["out"]),
                 "--out", str(tmp_path / "run"), "--no-progress", "--no-report"]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    dataset = open_dataset(prepared["out"])
    populated = {pose_bin(abs(float(yaw))) for clip in dataset.clips("test") for yaw in clip.yaw} - {"unknown"}
    assert populated and populated <= set(summary["by_pose"])  # every pose bin the data has is reported
    for name in populated:
        assert summary["by_pose"][name]["psnr"]["n"] > 0
    assert summary["metrics"]["psnr_mouth"]["n"] > 0  # the mouth box found its landmarks
    assert "estimated per frame by bench.data.head_pose" in summary["notes"]["real"]  # where the poses come from
    # copyref has no uncertainty map (no recalibration block); what `bench run` fits recalibration on when one
    # has: the prepared set's val split, identity-disjoint from test (7 groups, so it has one).
    val = dataset.split("val")
    assert val and not {e["identity"] for e in val} & {e["identity"] for e in dataset.split("test")}


@pytest.mark.slow
def test_smoke_run_with_julnet_on_the_prepared_set(prepared, provisioned, tmp_path, monkeypatch):
    monkeypatch.setenv("TALKBENCH_CACHE", str(tmp_path / "cache"))
    assert main(["run", "--model", "julnet", "--preset", "smoke", "--data", str(prepared["out"]),
                 "--out", str(tmp_path / "run"), "--no-progress", "--no-report"]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    n_val = len(open_dataset(prepared["out"]).split("val"))
    assert summary["recalibration"]["fit_on"].startswith(f"val split ({n_val} clip")  # not cross-fitted on test


def test_two_workers_give_the_same_clips(prepared, tmp_path):
    videos = tmp_path / "v"
    videos.mkdir()
    for name in ("vox_8k.mp4", "vox_50fps.mp4", "no_audio.mp4"):
        shutil.copy(prepared["videos"] / name, videos)
    common = ["--size", "32", "--first-seconds", "0.6", "--no-progress"]
    assert main(["data", "prepare", "--videos", str(videos), "--out", str(tmp_path / "one"), *common]) == 1
    assert main(["data", "prepare", "--videos", str(videos), "--out", str(tmp_path / "two"), "--workers", "2",
                 *common]) == 1
    one, two = (json.loads((tmp_path / d / "manifest.json").read_text()) for d in ("one", "two"))
    assert one == two  # same bytes (sha256 per clip), same splits, same skips


@pytest.mark.slow
@needs_real
def test_every_real_clip_prepares(tmp_path):
    clips = sorted(REAL.glob("*.mp4"))
    out = tmp_path / "all"
    assert main(["data", "prepare", "--videos", str(REAL), "--out", str(out), "--size", "64", "--first-seconds", "4",
                 "--no-progress"]) == 0
    dataset = open_dataset(out)
    assert len(dataset.entries) == len(clips) and dataset.split("test")
    qa = pd.read_parquet(out / "qa.parquet")
    assert (qa["status"] == "ok").all() and (qa["face_found"] > 0.9).all()
    for clip in dataset.clips("train"):
        assert clip.fps == 25 and len(clip.audio) == clip.n_frames * 640


def test_without_mediapipe_prepare_stops_with_the_install_line(prepared, tmp_path, monkeypatch, capsys):
    import sys

    import bench.data.prepare.process as process

    monkeypatch.setitem(sys.modules, "mediapipe", None)  # import fails as if not installed
    monkeypatch.setattr(process, "_MESH", None)
    videos = tmp_path / "v"
    videos.mkdir()
    shutil.copy(prepared["videos"] / "vox_8k.mp4", videos)
    assert main(["data", "prepare", "--videos", str(videos), "--out", str(tmp_path / "o"), "--size", "32",
                 "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install" in err[0]


def test_cli_offers_every_layout():
    from bench.cli.data import _PREPARE_LAYOUTS
    from bench.data.prepare import LAYOUTS

    assert set(_PREPARE_LAYOUTS) == set(LAYOUTS)
