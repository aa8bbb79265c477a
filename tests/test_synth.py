"""The embedded synthetic dataset: determinism, label quality, pose strata, caching."""
from __future__ import annotations

import json
import os
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from matplotlib import image as plt_image

from bench.data.clips import load_clip, open_dataset, save_clip
from bench.data.synth import (
    SynthConfig, config_hash, dataset_path, ensure_dataset, generate_dataset,
    plan_clips, render_frame,
)
from bench.data.synth.audio import VISEME_NAMES, synthesize
from bench.report.sheet import contact_sheet
from bench.data.synth.dataset import STRATA, TEST_BASE_YAW
from bench.data.synth.identity import make_identity

# Still heads (no within-clip turns, a still camera): every test frame then stays inside its stratum.
SMALL = SynthConfig(seed=3, size=64, seconds=0.8, identities=3, train_clips=3, test_clips_per_stratum=1,
                    head_motion_deg=0.0, camera_motion=0.0)
BOUNDS = {name: (low, high) for name, low, high in STRATA}


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return generate_dataset(SMALL, tmp_path_factory.mktemp("synth") / "a", workers=2, progress=False)


@pytest.fixture(scope="module")
def clips(small):
    return {entry["id"]: small.clip(entry) for entry in small.entries}


def _files(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(root.iterdir())}


def _rms(audio: np.ndarray, rate: int, fps: float, n: int) -> np.ndarray:
    edges = np.round(np.arange(n + 1) * rate / fps).astype(int)
    return np.array([np.sqrt(np.mean(audio[a:b].astype(np.float64) ** 2)) for a, b in zip(edges, edges[1:])])


def test_same_config_gives_identical_bytes_whatever_the_workers(small, tmp_path):
    again = generate_dataset(SMALL, tmp_path / "b", workers=1, progress=False)
    first, second = _files(small.root), _files(again.root)
    assert sorted(first) == sorted(second) and len(first) == 1 + len(plan_clips(SMALL))
    assert all(first[name] == second[name] for name in first)
    other_config = replace(SMALL, seed=4, train_clips=1, test_clips_per_stratum=0)
    other = generate_dataset(other_config, tmp_path / "c", workers=1, progress=False)
    assert _files(other.root)["train_000.npz"] != first["train_000.npz"]


def test_val_clips_leave_every_train_and_test_clip_byte_identical(small, tmp_path):
    """Val clips are planned after train and test: adding them changed no other clip (seed streams, bytes)."""
    without = generate_dataset(replace(SMALL, val_clips_per_stratum=0), tmp_path / "noval", workers=1, progress=False)
    theirs, ours = _files(without.root), _files(small.root)
    clips = sorted(name for name in theirs if name.endswith(".npz"))
    assert len(clips) == 6 and all(theirs[name] == ours[name] for name in clips)
    assert sorted(set(ours) - set(theirs)) == ["val_extreme_000.npz", "val_frontal_000.npz", "val_moderate_000.npz"]
    assert [entry["id"] for entry in small.split("val")] == ["val_extreme_000", "val_frontal_000", "val_moderate_000"]
    assert not without.split("val") and without.content_hash != small.content_hash
    assert config_hash(replace(SMALL, val_clips_per_stratum=0)) != config_hash(SMALL)


def test_meta_and_labels_follow_the_clip_format(clips):
    for clip in clips.values():
        for key in ("clip_id", "identity", "split", "stratum", "source", "landmark_names", "viseme_names"):
            assert key in clip.meta, key
        assert clip.meta["source"] == "synth" and clip.meta["identity"].startswith("id")
        n = clip.n_frames
        assert clip.frames.shape == (n, 64, 64, 3) and n == SMALL.n_frames
        assert clip.audio.dtype == np.float32 and np.abs(clip.audio).max() <= 1.0
        assert len(clip.audio) == round(SMALL.seconds * 16000)
        assert clip.landmarks.shape == (n, len(clip.meta["landmark_names"]), 2)
        assert clip.viseme.min() >= 0 and clip.viseme.max() < len(clip.meta["viseme_names"])
    assert {c.meta["identity"] for c in clips.values()} == {"id00", "id01", "id02"}


def test_mouth_opening_follows_the_audio_envelope(clips):
    opening, loudness = [], []
    for clip in clips.values():
        opening.append(clip.mouth_open)
        loudness.append(_rms(clip.audio, clip.sample_rate, clip.fps, clip.n_frames))
    assert np.corrcoef(np.concatenate(opening), np.concatenate(loudness))[0, 1] > 0.5
    for seed in range(8):  # longer utterances, every voice type
        rng = np.random.default_rng(seed)
        speech = synthesize(rng, 3.0, 25.0, make_identity(seed, 0).voice)
        rms = _rms(speech.waveform, 16000, 25.0, len(speech.mouth_open))
        assert np.corrcoef(speech.mouth_open, rms)[0, 1] > 0.5, seed


def test_bilabials_and_pauses_close_the_mouth_open_vowels_open_it():
    closed, wide = [], []
    for seed in range(6):
        speech = synthesize(np.random.default_rng(seed), 4.0, 25.0)
        names = np.array(VISEME_NAMES)[speech.viseme]
        closed.append(speech.mouth_open[np.isin(names, ["PP", "sil"])])
        wide.append(speech.mouth_open[names == "aa"])
    closed, wide = np.concatenate(closed), np.concatenate(wide)
    assert len(closed) > 20 and len(wide) > 20
    assert closed.mean() < 0.35 * wide.mean()
    assert np.median(closed) < 0.1 < 0.5 < np.median(wide)


def test_every_test_frame_lies_in_its_stratum(clips):
    for split in ("test", "val"):
        assert {c.meta["stratum"] for c in clips.values() if c.split == split} == {"frontal", "moderate", "extreme"}
    for clip in clips.values():
        low, high = BOUNDS[clip.meta["stratum"]]
        if clip.split in ("test", "val"):
            assert np.all((np.abs(clip.yaw) >= low) & (np.abs(clip.yaw) < high)), clip.clip_id
        else:
            assert low <= abs(clip.meta["base_yaw"]) < high
        assert np.abs(clip.yaw).max() <= 75.0
        assert 0 < np.ptp(clip.yaw) <= 2 * SMALL.sway_deg  # the head moves, a little


def test_default_plan_covers_yaw_and_cycles_identities():
    plans = plan_clips(SynthConfig())
    train = [p for p in plans if p.split == "train"]
    test = [p for p in plans if p.split == "test"]
    val = [p for p in plans if p.split == "val"]
    assert len(train) == 18 and len(test) == 9 and len(val) == 3
    assert [p.index for p in plans] == list(range(30)) and plans[-3:] == val  # val last: nothing else moved
    assert [p.stratum for p in val] == ["frontal", "moderate", "extreme"]
    magnitudes = np.sort([abs(p.base_yaw) for p in train])
    assert magnitudes[0] < 5 and magnitudes[-1] > 65 and magnitudes[-1] <= 72
    assert np.histogram(magnitudes, bins=3, range=(0, 72))[0].min() >= 5  # roughly uniform
    assert {p.stratum for p in train} == {"frontal", "moderate", "extreme"}
    ranges = {name: (low, high) for name, low, high in TEST_BASE_YAW}
    assert all(ranges[p.stratum][0] <= abs(p.base_yaw) <= ranges[p.stratum][1] for p in test + val)
    assert [p.identity for p in train[:7]] == [0, 1, 2, 3, 4, 5, 0]
    by_stratum = {name: sorted(p.identity for p in test if p.stratum == name) for name, _, _ in TEST_BASE_YAW}
    assert all(ids == [0, 1, 2] for ids in by_stratum.values())  # pose bins not confounded with identity


def test_landmarks_inside_image_and_mouth_narrows_with_yaw(clips):
    names = next(iter(clips.values())).meta["landmark_names"]
    left, right = names.index("mouth_left"), names.index("mouth_right")
    for clip in clips.values():
        assert np.all((clip.landmarks >= -0.5) & (clip.landmarks <= 63.5)), clip.clip_id
        assert clip.landmarks.dtype == np.float32
    def width(clip):
        return float(np.mean(np.linalg.norm(clip.landmarks[:, left] - clip.landmarks[:, right], axis=1)))
    frontal = [c for c in clips.values() if c.meta["stratum"] == "frontal" and c.split == "test"][0]
    extreme = [c for c in clips.values() if c.meta["stratum"] == "extreme" and c.split == "test"][0]
    assert width(frontal) > 1.1 * width(extreme)
    assert frontal.landmark_visible.all()


def test_far_eye_is_hidden_at_extreme_yaw():
    identity = make_identity(0, 1)
    frontal = render_frame(identity, 0.0, size=64)
    assert frontal.visible.all()
    turned_left = render_frame(identity, 72.0, size=64)  # face to the image's left
    turned_right = render_frame(identity, -72.0, size=64)
    assert not turned_left.visible[0] and turned_left.visible[1]  # left_eye is the far one
    assert turned_right.visible[0] and not turned_right.visible[1]
    assert turned_left.landmarks[2, 0] < frontal.landmarks[2, 0] < turned_right.landmarks[2, 0]


def test_mouth_pixels_change_while_the_head_top_stays(clips):
    clip = clips["test_frontal_000"]
    names = clip.meta["landmark_names"]
    # The open and the closed frame with the most similar head pose (the head sways a little).
    pose = np.stack([clip.yaw, clip.pitch, clip.roll], axis=1)
    opened, closed = np.nonzero(clip.mouth_open > 0.5)[0], np.nonzero(clip.mouth_open < 0.05)[0]
    assert len(opened) and len(closed)
    distance = np.abs(pose[opened][:, None] - pose[closed][None]).sum(-1)
    a, b = np.unravel_index(np.argmin(distance), distance.shape)
    wide, shut = opened[a], closed[b]
    mouth_points = [names.index(n) for n in ("mouth_left", "mouth_right", "upper_lip", "lower_lip")]
    points = clip.landmarks[[shut, wide]][:, mouth_points].reshape(-1, 2)
    x0, y0 = np.floor(points.min(0)).astype(int) - 1
    x1, y1 = np.ceil(points.max(0)).astype(int) + 2
    frames = clip.frames.astype(np.int16)
    mouth = np.abs(frames[wide, y0:y1, x0:x1] - frames[shut, y0:y1, x0:x1]).mean()
    top = np.abs(frames[wide, 2:16, 16:48] - frames[shut, 2:16, 16:48]).mean()
    assert mouth > 10 and mouth > 2 * top


def test_load_clip_round_trip(small, clips, tmp_path):
    entry = small.entries[0]
    original = clips[entry["id"]]
    save_clip(tmp_path / "copy.npz", original)
    copy = load_clip(tmp_path / "copy.npz")
    for key in ("frames", "audio", "yaw", "pitch", "roll", "mouth_open", "viseme", "landmarks",
                "landmark_visible"):
        a, b = getattr(original, key), getattr(copy, key)
        assert a.dtype == b.dtype and np.array_equal(a, b), key
    assert copy.meta == original.meta and copy.fps == original.fps
    assert (tmp_path / "copy.npz").read_bytes() == (small.root / entry["file"]).read_bytes()


def test_ensure_dataset_reuses_the_cache(tmp_path):
    config = SynthConfig(seed=5, size=32, seconds=0.2, identities=2, train_clips=1, test_clips_per_stratum=1)
    first = ensure_dataset(config, tmp_path, workers=1, progress=False)
    assert first.root == tmp_path / f"synth-{config_hash(config)}" == dataset_path(config, tmp_path)
    stamps = {p.name: p.stat().st_mtime_ns for p in first.root.iterdir()}
    second = ensure_dataset(config, tmp_path, workers=1, progress=False)
    assert second.root == first.root
    assert {p.name: p.stat().st_mtime_ns for p in second.root.iterdir()} == stamps
    assert [p.name for p in tmp_path.iterdir()] == [first.root.name]  # no temp dirs left
    manifest = json.loads((first.root / "manifest.json").read_text())
    assert manifest["generator"]["seed"] == 5 and manifest["source"] == "synth"
    assert config_hash(SynthConfig(seed=6)) != config_hash(SynthConfig(seed=5))


def test_interrupted_generation_is_not_taken_for_a_dataset(tmp_path):
    config = SynthConfig(seed=5, size=32, seconds=0.2, identities=2, train_clips=1, test_clips_per_stratum=1,
                         val_clips_per_stratum=0)
    target = dataset_path(config, tmp_path)
    dead = subprocess.Popen(["true"])
    dead.wait()
    leftover = tmp_path / f"{target.name}.partial-{dead.pid}-x1"
    leftover.mkdir()
    (leftover / "train_000.npz").write_bytes(b"half")
    target.mkdir()  # a half dataset at the final path: clips but no manifest
    (target / "train_000.npz").write_bytes(b"half")
    dataset = ensure_dataset(config, tmp_path, workers=1, progress=False)
    assert dataset.root == target and len(dataset.entries) == 4
    for entry in dataset.entries:
        assert dataset.clip(entry).n_frames == config.n_frames
    assert not leftover.exists()
    assert open_dataset(target).content_hash == dataset.content_hash


def test_contact_sheet_is_written(small, tmp_path):
    path = contact_sheet(small, tmp_path / "sheet.png", frames_per_clip=3, max_clips=4)
    image = plt_image.imread(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert image.shape[0] > 4 * 128 and image.shape[1] > 3 * 128
    assert float(np.std(image[..., :3])) > 0.05


def test_config_rejects_sway_that_breaks_the_strata():
    with pytest.raises(ValueError):
        SynthConfig(sway_deg=5.0)
    assert os.fspath(dataset_path(SynthConfig(), Path("/x"))).startswith("/x/synth-")


def test_pose_conventions_match_the_clip_format():
    identity = make_identity(0, 2)
    rest = render_frame(identity, size=64).landmarks
    chin_up = render_frame(identity, pitch=15.0, size=64).landmarks
    tilted = render_frame(identity, roll=15.0, size=64).landmarks
    # Chin up: the nose tip, further forward than the eyes, rises towards the eye line.
    assert chin_up[2, 1] - chin_up[0, 1] < rest[2, 1] - rest[0, 1] - 1
    assert abs(rest[0, 1] - rest[1, 1]) < 0.2
    assert tilted[1, 1] < tilted[0, 1] - 2  # roll > 0: the image-right eye rises (head top to the left)
