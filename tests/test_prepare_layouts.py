"""`bench data prepare`: the MEAD layout and its views, shot cuts, --max-seconds segments, several faces.

Inputs are built from the real clips in ../shared/data/real (skipped where absent): short re-muxes into a
MEAD-shaped tree with the sound split out, two clips concatenated (a hard cut), two faces side by side.
"""
from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest

from bench.cli import main
from bench.data.clips import open_dataset
from bench.data.prepare.cuts import Cut, find_cuts, plan_parts
from bench.data.prepare.layouts import PrepareError, find_sources
from bench.data.prepare.track import largest_track
from bench.data.video import read_audio

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
VOX = REAL / "pc-avs__misc_Pose_Source_00067.mp4"  # 224 px, 25 fps
OTHER = REAL / "pc-avs__misc_Audio_Source_00086.mp4"  # another person, 224 px, 25 fps
THIRD = REAL / "pc-avs__misc_Pose_Source_00473.mp4"
needs_real = pytest.mark.skipif(not all(p.is_file() for p in (VOX, OTHER, THIRD)), reason=f"no real clips in {REAL}")


def _decode(path: Path, seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """The first ``seconds`` of a 25 fps clip: frames and 16 kHz mono audio."""
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(container.streams.video[0])]
    n = int(round(seconds * 25))
    return np.stack(frames[:n]), read_audio(path)[:n * 640]


def _encode(path: Path, frames: np.ndarray | None, audio: np.ndarray | None, audio_codec: str = "aac") -> Path:
    """Frames (25 fps) and/or mono 16 kHz audio, written with PyAV (the container follows the suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        if frames is not None:
            video = container.add_stream("libx264", rate=Fraction(25))
            video.width, video.height, video.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        sound = container.add_stream(audio_codec, rate=16000, layout="mono") if audio is not None else None
        if frames is not None:
            for image in frames:
                container.mux(video.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")))
            container.mux(video.encode(None))
        if sound is not None:
            pcm = audio_codec.startswith("pcm_s16")
            for start in range(0, len(audio), 1024):
                part = np.ascontiguousarray(audio[start:start + 1024], dtype=np.float32)[None]
                if pcm:
                    part = np.round(np.clip(part, -1, 1) * 32767).astype(np.int16)
                frame = av.AudioFrame.from_ndarray(part, format="s16" if pcm else "flt", layout="mono")
                frame.sample_rate = 16000
                container.mux(sound.encode(frame))
            container.mux(sound.encode(None))
    return path


def _mead_tree(root: Path) -> Path:
    """M001: front and left_30 video with .m4a audio apart; W002: front 001 with only the video's own sound,
    002 with .wav audio apart; W003: front video with no sound anywhere."""
    vox, vox_audio = _decode(VOX, 1.2)
    other, other_audio = _decode(OTHER, 1.2)
    third, _ = _decode(THIRD, 1.2)
    _encode(root / "M001/video/front/neutral/level_1/001.mp4", vox, None)
    _encode(root / "M001/audio/neutral/level_1/001.m4a", None, vox_audio)
    _encode(root / "M001/video/left_30/neutral/level_1/001.mp4", vox[:, :, ::-1].copy(), None)  # (a mirror)
    _encode(root / "W002/video/front/angry/level_2/001.mp4", other, other_audio)
    _encode(root / "W002/video/front/angry/level_2/002.mp4", other[::-1].copy(), None)
    _encode(root / "W002/audio/angry/level_2/002.wav", None, other_audio[::-1].copy(), audio_codec="pcm_s16le")
    _encode(root / "W003/video/front/happy/level_3/001.mp4", third, None)
    return root


def _clip_ids(out: Path) -> set[str]:
    return {entry["id"] for entry in open_dataset(out).entries}


def test_mead_layout_finds_views_speakers_and_audio(tmp_path):
    for path in ("S1/video/front/neutral/level_1/001.mp4", "S1/video/left_60/neutral/level_1/001.mp4",
                 "S2/video/front/sad/level_3/007.mp4", "S2/audio/sad/level_3/007.wav", "stray.mp4"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(b"x")
    front, split_by = find_sources(tmp_path, None, "mead")
    assert split_by == "identity" and [(s.identity, s.view) for s in front] == [("S1", "front"), ("S2", "front")]
    assert front[0].audio.endswith("S1/audio/neutral/level_1/001.m4a")  # expected, missing: the video's sound
    assert front[1].audio.endswith("S2/audio/sad/level_3/007.wav") and front[1].clip_id == "S2__front__sad__level_3__007"
    assert {s.view for s in find_sources(tmp_path, None, "mead", "all")[0]} == {"front", "left_60"}
    assert [s.view for s in find_sources(tmp_path, None, "mead", "left_60")[0]] == ["left_60"]
    with pytest.raises(PrepareError, match="views found"):
        find_sources(tmp_path, None, "mead", "right_30")
    with pytest.raises(PrepareError, match="unknown view"):
        find_sources(tmp_path, None, "mead", "front,sideways")
    with pytest.raises(PrepareError, match="only --layout mead"):
        find_sources(tmp_path, None, "folder", "front")
    listing = tmp_path / "list.txt"
    listing.write_text("S1/video/left_60/neutral/level_1/001.mp4\nS2/video/front/sad/level_3/007.mp4\n")
    listed, _ = find_sources(None, listing, "mead", "all")
    assert [(s.identity, s.view) for s in listed] == [("S1", "left_60"), ("S2", "front")]


@needs_real
def test_mead_tree_prepares_by_speaker_with_views_and_separate_audio(tmp_path, capsys):
    pytest.importorskip("mediapipe", reason="face tracking needs the landmarks extra")
    root = _mead_tree(tmp_path / "mead")
    out = tmp_path / "out"
    code = main(["data", "prepare", "--videos", str(root), "--layout", "mead", "--views", "front,left_30",
                 "--out", str(out), "--size", "64", "--no-progress", "--val-fraction", "0"])
    assert code == 1  # W003 has no sound: skipped, said on one line
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("skipped")]
    assert len(err) == 1 and "W003" in err[0] and "no audio" in err[0]
    dataset = open_dataset(out)
    entries = {entry["id"]: entry for entry in dataset.entries}
    assert set(entries) == {"M001__front__neutral__level_1__001", "M001__left_30__neutral__level_1__001",
                            "W002__front__angry__level_2__001", "W002__front__angry__level_2__002"}
    assert dataset.manifest["split_by"] == "identity" and dataset.manifest["layout"] == "mead"
    for entry in entries.values():
        assert entry["identity"] == entry["id"][:4] and entry["view"] == entry["id"].split("__")[1]
        assert dataset.clip(entry).meta["view"] == entry["view"]
    splits = {identity: {e["split"] for e in entries.values() if e["identity"] == identity} for identity in ("M001", "W002")}
    assert all(len(s) == 1 for s in splits.values()) and splits["M001"] != splits["W002"]  # by speaker
    qa = pd.read_parquet(out / "qa.parquet").set_index("file")
    assert qa.loc["M001/video/left_30/neutral/level_1/001.mp4", "view"] == "left_30"
    assert "own sound used" in qa.loc["W002/video/front/angry/level_2/001.mp4", "notes"]
    for name in ("M001/video/front/neutral/level_1/001.mp4", "W002/video/front/angry/level_2/002.mp4"):
        assert qa.loc[name, "status"] == "ok" and "own sound" not in qa.loc[name, "notes"]
    # The separate .m4a is the clip's sound (up to AAC's priming delay, which PyAV's muxer leaves in).
    m001 = dataset.clip(entries["M001__front__neutral__level_1__001"]).audio
    reference = read_audio(VOX)
    window = m001[2000:14000]
    best = max(np.corrcoef(window, reference[2000 + lag:14000 + lag])[0, 1] for lag in range(-1200, 1201, 4))
    assert best > 0.8
    w002 = dataset.clip(entries["W002__front__angry__level_2__002"]).audio
    assert np.corrcoef(w002[2000:14000], _decode(OTHER, 1.2)[1][::-1][2000:14000])[0, 1] > 0.95  # the .wav


def test_plan_parts_splits_at_cuts_and_max_length_and_drops_short_pieces():
    parts = plan_parts(100, [Cut(40, "picture"), Cut(43, "face")], max_frames=25, min_frames=6)
    assert [(p.start, p.stop) for p in parts if not p.reason] == [(0, 20), (20, 40), (43, 62), (62, 81), (81, 100)]
    dropped = [p for p in parts if p.reason]
    assert [(p.start, p.stop) for p in dropped] == [(40, 43)] and "sync window" in dropped[0].reason
    assert [(p.start, p.stop) for p in plan_parts(30, [], None, 6)] == [(0, 30)]


def test_find_cuts_sees_a_hard_cut_but_not_a_flash_or_a_face_moving():
    rng = np.random.default_rng(0)
    dark = rng.integers(0, 90, (20, 24, 24, 3), dtype=np.uint8)
    light = rng.integers(140, 255, (20, 24, 24, 3), dtype=np.uint8)
    assert find_cuts(np.concatenate([dark, light])) == [Cut(20, "picture")]
    flash = dark.copy()
    flash[8:11] = 255 - flash[8:11]  # three inverted frames
    assert find_cuts(flash) == []
    centres = np.column_stack([np.r_[np.linspace(50, 60, 20), np.linspace(150, 151, 20)], np.full(40, 50.0)])
    sizes = np.full(40, 60.0)
    same = np.repeat(dark[:1], 40, axis=0)
    assert find_cuts(same, centres, sizes) == [Cut(20, "face")]
    centres[20] = centres[19] + 40  # one frame on another face, then back: no cut
    centres[21:] = centres[19]
    assert find_cuts(same, centres, sizes) == []


def test_largest_track_follows_the_larger_face_whatever_the_detector_order():
    face = np.stack(np.meshgrid(np.linspace(0, 1, 26), np.linspace(0, 1, 18)), -1).reshape(-1, 2)[:468]
    points = np.full((10, 3, 468, 2), np.nan)
    for t in range(10):
        big, small = face * 80 + [200 + t, 50], face * 30 + [20, 60]
        points[t, t % 2], points[t, 1 - t % 2] = big, small  # the order swaps every frame
    points[4, :2] = np.nan  # a frame without any face
    chosen, faces, tracks = largest_track(points)
    assert faces == 2 and tracks == 2
    assert np.isnan(chosen[4]).all() and np.allclose(np.nanmin(chosen[[0, 5, 9]], axis=1)[:, 0], [200, 205, 209])


@pytest.fixture(scope="module")
def cut_set(tmp_path_factory):
    if not all(p.is_file() for p in (VOX, OTHER)):
        pytest.skip(f"no real clips in {REAL}")
    pytest.importorskip("mediapipe", reason="face tracking needs the landmarks extra")
    root = tmp_path_factory.mktemp("cuts")
    videos = root / "videos"
    vox, vox_audio = _decode(VOX, 1.6)
    other, other_audio = _decode(OTHER, 1.6)
    _encode(videos / "cut.mp4", np.concatenate([vox, other]), np.concatenate([vox_audio, other_audio]))
    _encode(videos / "short_tail.mp4", np.concatenate([vox, other[:4]]), np.concatenate([vox_audio, other_audio[:2560]]))
    # Two faces side by side, the larger on the right (the detector's first face is not necessarily it).
    small = np.pad(other[:, ::2, ::2], ((0, 0), (56, 56), (56, 56), (0, 0)))
    _encode(videos / "two_faces.mp4", np.concatenate([small, vox], axis=2), vox_audio)
    out = root / "out"
    code = main(["data", "prepare", "--videos", str(videos), "--out", str(out), "--size", "64", "--no-progress"])
    long_out = root / "long"
    long_code = main(["data", "prepare", "--list", str(_listing(videos, "cut.mp4")), "--out", str(long_out),
                      "--size", "64", "--no-progress", "--max-seconds", "1"])
    return {"out": out, "code": code, "long": long_out, "long_code": long_code}


def _listing(folder: Path, *names: str) -> Path:
    listing = folder / "list.txt"
    listing.write_text("\n".join(names) + "\n")
    return listing


def test_a_hard_cut_splits_the_video_and_each_clip_is_smooth(cut_set):
    assert cut_set["code"] == 0  # a dropped part is no skipped file
    dataset = open_dataset(cut_set["out"])
    entries = {entry["id"]: entry for entry in dataset.entries}
    assert {"cut-seg1", "cut-seg2", "short_tail", "two_faces"} == set(entries)
    assert entries["cut-seg1"]["n_frames"] == 40 and entries["cut-seg2"]["n_frames"] == 40
    assert entries["cut-seg1"]["split"] == entries["cut-seg2"]["split"]  # one video: one split
    assert entries["short_tail"]["n_frames"] == 40
    for entry in dataset.entries:
        yaw = dataset.clip(entry).yaw
        steps = np.abs(np.diff(yaw))
        assert np.isfinite(yaw).all() and steps.max() < 5.0, (entry["id"], steps.max())
    qa = pd.read_parquet(cut_set["out"] / "qa.parquet")
    cut = qa[qa["file"] == "cut.mp4"].set_index("clip_id")
    assert list(cut["segment"]) == ["1/2", "2/2"] and (cut["cuts"] == 1).all()
    assert cut.loc["cut-seg2", "start_s"] == pytest.approx(1.6) and "cut at 1.60 s" in cut.loc["cut-seg1", "notes"]
    tail = qa[qa["file"] == "short_tail.mp4"].set_index("status")
    assert tail.loc["dropped", "start_s"] == pytest.approx(1.6) and "sync window" in tail.loc["dropped", "reason"]
    manifest = json.loads((cut_set["out"] / "manifest.json").read_text())
    assert manifest["skipped"] == [] and [d["file"] for d in manifest["dropped"]] == ["short_tail.mp4"]


def test_several_faces_use_the_largest_track(cut_set):
    dataset = open_dataset(cut_set["out"])
    two = dataset.clip(next(e for e in dataset.entries if e["id"] == "two_faces"))
    alone = dataset.clip(next(e for e in dataset.entries if e["id"] == "cut-seg1"))
    difference = np.abs(two.frames.astype(int) - alone.frames.astype(int)).mean()
    assert difference < 8  # the larger face's crop (another face's differs by about 60 grey levels)
    qa = pd.read_parquet(cut_set["out"] / "qa.parquet").set_index("clip_id")
    assert qa.loc["two_faces", "faces"] == 2 and "largest track" in qa.loc["two_faces", "notes"]
    assert two.meta["faces"] == 2


def test_max_seconds_splits_long_videos_at_cuts_first(cut_set):
    assert cut_set["long_code"] == 0
    entries = sorted(open_dataset(cut_set["long"]).entries, key=lambda e: e["id"])
    assert [e["n_frames"] for e in entries] == [20, 20, 20, 20]  # 1.6 s a side, at most 1 s a clip
    qa = pd.read_parquet(cut_set["long"] / "qa.parquet")
    assert list(qa["start_s"]) == pytest.approx([0.0, 0.8, 1.6, 2.4])  # the cut at 1.6 s is a clip boundary
    assert all("at most 1 s" in note for note in qa["notes"])
