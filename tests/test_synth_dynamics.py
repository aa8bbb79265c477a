"""Opt-in synthetic scene dynamics and head motion: labels that match what the pixels show."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from bench.config import SynthConfig
from bench.data.clips import ClipFormatError, load_clip, save_clip
from bench.data.frames import prepare_clip
from bench.data.synth.dataset import config_hash, plan_clips, render_clip
from bench.data.synth.dynamics import CONDITION_BITS, CONDITIONS
from bench.files import stable_hash
from bench.metrics import dynamics

SMALL = SynthConfig(size=48, seconds=1.2, train_clips=3, test_clips_per_stratum=1, val_clips_per_stratum=0,
                    supersample=1)


def _render(config: SynthConfig, index: int):
    return render_clip(config, plan_clips(config)[index])


@pytest.fixture(scope="module")
def pairs():
    """Each condition's clip rendered with and without the condition (same clip index, same seed), on a still
    camera so that the frames differ by the event only."""
    still = SMALL.still()
    with_events = dataclasses.replace(still, conditions=CONDITIONS)
    return {CONDITIONS[i]: (_render(still, i), _render(with_events, i)) for i in range(len(CONDITIONS))}


def test_still_data_keep_their_cache_key_and_the_moving_default_gets_its_own():
    # Settings added later are left out of the key at the value every earlier dataset had (still heads, no
    # conditions), so datasets made before them are still found; today's moving default has another key.
    still = SMALL.still()
    legacy = {k: v for k, v in dataclasses.asdict(still).items()
              if k not in ("head_motion_deg", "camera_motion", "conditions")}
    from bench.data.synth.dataset import GENERATOR_VERSION
    expected = stable_hash({"config": legacy, "version": GENERATOR_VERSION, "numpy": np.__version__.split(".")[0]})
    assert config_hash(still) == expected
    assert len({expected, config_hash(SMALL), config_hash(dataclasses.replace(still, conditions=("occluder",)))}) == 3


def test_the_default_data_move_and_still_is_one_flag_away():
    from bench.cli import _parser as build_parser
    from bench.cli.common import config_from_args

    assert SynthConfig().head_motion_deg > 0 and SynthConfig().camera_motion > 0
    default = config_from_args(build_parser().parse_args(["run", "--model", "julnet"])).data.synth
    still = config_from_args(build_parser().parse_args(["run", "--model", "julnet", "--still"])).data.synth
    assert default == SynthConfig()
    assert (still.head_motion_deg, still.camera_motion) == (0.0, 0.0)
    assert dataclasses.replace(still, head_motion_deg=default.head_motion_deg,
                               camera_motion=default.camera_motion) == default
    moving = _render(SMALL, 1)  # SMALL moves: the default motion
    assert np.ptp(moving.yaw) > 2 * SMALL.sway_deg


@pytest.mark.parametrize("condition", CONDITIONS)
def test_labels_match_the_pixels_that_changed(pairs, condition):
    plain, event = pairs[condition]
    meta = event.meta["condition"]
    assert meta["name"] == condition and plain.affected is None
    window = np.zeros(event.n_frames, dtype=bool)
    window[meta["start"]:meta["stop"]] = True
    labelled = event.affected > 0
    assert set(np.unique(event.affected[labelled])) == {CONDITION_BITS[condition]}
    # Every labelled frame lies in the window; the window's frames are labelled unless the event has no
    # pixel there (the occluder's tip still beyond the edge).
    assert not labelled[~window].any() and labelled[window].mean() > 0.6
    assert not event.affected_mask[~labelled].any()
    diff = np.abs(event.frames.astype(int) - plain.frames.astype(int)).max(-1)
    inside = diff[event.affected_mask]
    assert inside.mean() > 8, "the event's pixels should change visibly"
    if condition == "background":
        # Stripes are drawn on every frame (still outside the window): the person's pixels never change.
        person = ~event.affected_mask[labelled]
        assert diff[labelled][person].mean() < 1.0
    else:
        # Outside the event's pixels the frame is the plain clip's, exactly (anti-aliased edges aside).
        outside = ~event.affected_mask
        assert (diff[outside] == 0).mean() > 0.99
    # The audio, the pose and the lips do not depend on the event.
    np.testing.assert_array_equal(event.audio, plain.audio)
    np.testing.assert_array_equal(event.yaw, plain.yaw)


def test_background_moves_only_inside_its_window(pairs):
    _, event = pairs["background"]
    start, stop = event.meta["condition"]["start"], event.meta["condition"]["stop"]
    backdrop = event.affected_mask[start + 1] & event.affected_mask[start + 2]
    moving = np.abs(event.frames[start + 2].astype(int) - event.frames[start + 1].astype(int)).max(-1)[backdrop]
    assert moving.mean() > 3
    # Before the window the stripes stand still: a corner far from the head keeps its pixels.
    corner = (slice(0, 6), slice(0, 6))
    np.testing.assert_array_equal(event.frames[0][corner], event.frames[start - 1][corner])
    assert np.abs(event.frames[stop + 1][corner].astype(int) - event.frames[start][corner].astype(int)).max() > 0


def test_occluder_hides_the_landmarks_it_covers(pairs):
    _, event = pairs["occluder"]
    names = event.meta["landmark_names"]
    lips = [names.index(n) for n in ("upper_lip", "lower_lip", "mouth_left", "mouth_right")]
    covered = 0
    for f in np.flatnonzero(event.affected):
        xy = np.clip(np.round(event.landmarks[f, lips]).astype(int), 0, event.frames.shape[1] - 1)
        under = event.affected_mask[f, xy[:, 1], xy[:, 0]]
        assert not (event.landmark_visible[f, lips] & under).any()
        covered += int(under.sum())
    assert covered > 0, "the bar should cross the mouth in some frame"


def test_head_motion_turns_the_head_within_a_clip():
    still = _render(SMALL.still(), 1)
    moving = _render(dataclasses.replace(SMALL, head_motion_deg=20.0, camera_motion=0.05), 1)
    assert np.ptp(still.yaw) < 6.0  # the old sway only
    assert np.ptp(moving.yaw) > 10.0
    assert np.abs(moving.yaw).max() < SMALL.max_train_yaw
    # The landmarks follow the frames: the camera and head moved, so the nose does too.
    nose = moving.meta["landmark_names"].index("nose_tip")
    assert np.ptp(moving.landmarks[:, nose, 0]) > 2 * np.ptp(still.landmarks[:, nose, 0])


def test_labels_round_trip_and_resize(tmp_path, pairs):
    _, event = pairs["occluder"]
    path = tmp_path / "clip.npz"
    save_clip(path, event)
    loaded = load_clip(path)
    np.testing.assert_array_equal(loaded.affected, event.affected)
    np.testing.assert_array_equal(loaded.affected_mask, event.affected_mask)
    tensors = prepare_clip(loaded, 24)
    assert tensors.affected_mask.shape == (event.n_frames, 24, 24)
    f = int(np.flatnonzero(event.affected_mask.reshape(event.n_frames, -1).sum(1)).max())
    assert tensors.affected_mask[f].any()
    bad = dataclasses.replace(event, affected_mask=event.affected_mask[:, :-1])
    with pytest.raises(ClipFormatError, match="affected_mask"):
        save_clip(tmp_path / "bad.npz", bad)


def test_region_means_and_the_dynamics_block():
    mask = torch.zeros(2, 4, 4, dtype=torch.bool)
    mask[0, :2] = True
    region = torch.ones(4, 4, dtype=torch.bool)
    u = torch.where(mask, 3.0, 1.0)
    means = dynamics.region_means(u, u * 2, mask, region)
    assert means["unc_in_event"][0] == 3.0 and means["unc_out_event"][0] == 1.0
    assert np.isnan(means["unc_in_event"][1]) and means["err_out_event"][1] == 2.0
    # Frames: u rises on the affected frames of two clips (AUROC 1); error does not (0.5).
    rng = np.random.default_rng(0)
    rows = []
    for clip in ("a", "b", "c"):
        for f in range(20):
            hit = 5 <= f < 12
            rows.append({"clip_id": clip, "affected": CONDITION_BITS["occluder"] if hit else 0,
                         "unc_mean": 2.0 + hit + rng.uniform(0, 0.1), "err_mean": 1.0,
                         "unc_in_event": 4.0 if hit else np.nan, "unc_out_event": 2.0 if hit else np.nan,
                         "err_in_event": 1.0 if hit else np.nan, "err_out_event": 1.0 if hit else np.nan})
    block = dynamics.dynamics_block(pd.DataFrame(rows))
    entry = block["occluder"]
    assert set(block) == {"occluder"} and entry["clips"] == 3 and entry["affected_frames"] == 21
    assert entry["auroc_u"] == 1.0 and entry["auroc_error"] == 0.5
    assert entry["u_ratio"]["value"] == pytest.approx(2.0) and entry["error_ratio"]["value"] == pytest.approx(1.0)
    assert dynamics.dynamics_block(pd.DataFrame(rows).assign(affected=0)) == {}


def test_bench_data_synth_makes_labelled_moving_data(tmp_path, capsys):
    from bench.cli import main
    from bench.data.clips import open_dataset

    out = tmp_path / "dyn"
    assert main(["data", "synth", "--preset", "smoke", "--conditions", "all", "--head-motion", "10",
                 "--out", str(out)]) == 0
    dataset = open_dataset(out)
    clips = [dataset.clip(entry) for entry in dataset.entries]
    assert {clip.meta["condition"]["name"] for clip in clips} == set(CONDITIONS)
    assert all(clip.affected is not None and clip.affected.any() for clip in clips)
    assert dataset.manifest["generator"]["conditions"] == list(CONDITIONS)
    with pytest.raises(SystemExit) as exit_info:  # argparse's usage error
        main(["data", "synth", "--conditions", "fog", "--out", str(tmp_path / "no")])
    assert exit_info.value.code == 2
    assert "unknown condition 'fog'" in capsys.readouterr().err and not (tmp_path / "no").exists()


def test_a_run_on_scene_dynamics_reports_where_the_events_hurt(tmp_path, monkeypatch):
    """The paste floor on data with scene events: its pasted lower half never shows the occluder, so the
    error on the occluder's pixels must exceed the error on the rest of the region (a known answer), and the
    summary's dynamics block must cover every condition."""
    from bench.cli import main
    from bench.config import preset_config
    from bench.harness.run import run

    monkeypatch.setenv("TALKBENCH_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "dyn"
    assert main(["data", "synth", "--preset", "smoke", "--conditions", "all", "--out", str(data)]) == 0
    config = preset_config("smoke", model="pasteref")
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, source=str(data)),
                                 eval=dataclasses.replace(config.eval, networks=(), sync="none", official_sync=False))
    outcome = run(config, out_dir=tmp_path / "run", progress=False, report=None, floor=False)
    block = outcome.summary["dynamics"]
    assert set(block) == set(CONDITIONS)
    assert all(entry["affected_frames"] > 0 and entry["clips"] >= 1 for entry in block.values())
    assert block["occluder"]["error_ratio"]["value"] > 1.5
    frames = pd.read_parquet(tmp_path / "run" / "frames.parquet")
    hit = frames["affected"] > 0
    assert frames.loc[hit, "err_event_lift"].notna().any() and frames.loc[~hit, "err_event_lift"].isna().all()
