"""Per-clip scorer states (what `bench score` saves after each clip) and samples of mixed resolutions."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from torch import nn

from bench.config import EvalConfig
from bench.harness.samples import select_samples, stack_samples
from bench.harness.scorer_state import export_state, merge_state
from bench.harness.scorer import FrameScorer

CONFIG = EvalConfig(bootstrap=50, networks=(), samples_per_bin=2, fid_every=5)  # "frames 0 and 5 of each clip"


class FakeInception(nn.Module):
    """Stands in for the FID Inception: 8-d features (mean colour and a few pooled values) per image."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        pooled = nn.functional.adaptive_avg_pool2d(images, 1).flatten(1)  # B x 3
        grid = nn.functional.adaptive_avg_pool2d(images.mean(1, keepdim=True), (1, 5)).flatten(1)  # B x 5
        return [torch.cat([pooled, grid], 1)[:, :, None, None] * self.scale]


def _clip(seed: int, n: int, height: int, width: int, yaw: float) -> list[tuple]:
    """Batches of (pred, gt, u, meta) for one synthetic clip of size height x width."""
    rng = np.random.default_rng(seed)
    gt = rng.integers(0, 256, (n, 3, height, width)).astype(np.float32)
    pred = np.clip(gt + rng.normal(0, 12, gt.shape), 0, 255).round().astype(np.float32)
    u = (np.abs(pred - gt).mean(1) / 255 + rng.uniform(0, 0.02, (n, height, width))).astype(np.float32)
    meta = [{"clip_id": f"c{seed}", "frame": t, "identity": "x", "stratum": "s", "yaw": yaw + t,
             "pitch": 0.0, "roll": 0.0} for t in range(n)]
    return [(torch.from_numpy(pred[i:i + 3]), torch.from_numpy(gt[i:i + 3]), torch.from_numpy(u[i:i + 3]),
             meta[i:i + 3]) for i in range(0, n, 3)]


CLIPS = [_clip(0, 7, 24, 32, 5.0), _clip(1, 6, 20, 20, 20.0), _clip(2, 8, 16, 28, 40.0)]


def _roundtrip(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Through np.savez and np.load(allow_pickle=False), as partial files are."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **state)
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def test_merged_clip_states_give_what_one_scorer_gives():
    single = FrameScorer(CONFIG, inception=FakeInception())
    merged = FrameScorer(CONFIG)
    for clip in CLIPS:
        scorer = FrameScorer(CONFIG, inception=FakeInception(), keep_features=True)
        for pred, gt, u, meta in clip:
            single.update(pred, gt, u, None, meta)
            scorer.update(pred, gt, u, None, meta)
        single.frames_seen = 0  # one scorer per clip picks FID frames by index within the clip
        merge_state(merged, _roundtrip(export_state(scorer)))
    a, b = single.result(), merged.result()
    assert a.frames.equals(b.frames) and len(b.frames) == 21
    np.testing.assert_array_equal(a.inside, b.inside)
    np.testing.assert_array_equal(a.region_pixels, b.region_pixels)
    for x, y in zip(a.subsample, b.subsample):  # rows of later clips are offset past the earlier ones
        np.testing.assert_array_equal(x, y)
    assert set(a.curves) == set(b.curves) and {"model_frontal", "model_moderate", "model_extreme"} <= set(b.curves)
    for key in a.curves:
        np.testing.assert_allclose(a.curves[key], b.curves[key], rtol=1e-12)
    assert set(a.fid) == set(b.fid) == {"all", "frontal", "moderate", "extreme"}
    for group in a.fid:
        assert a.fid[group].fake.count == b.fid[group].fake.count
        np.testing.assert_allclose(a.fid[group].real.outer.numpy(), b.fid[group].real.outer.numpy(), rtol=1e-12)
    assert a.fid["all"].fake.count == 2 + 2 + 2  # frames 0 and 5 of each clip
    assert b.samples["gt"].shape[0] == 6  # two per pose bin, each from its own clip's size
    assert sorted(zip(b.samples["height"].tolist(), b.samples["width"].tolist())) == \
        [(16, 28), (16, 28), (20, 20), (20, 20), (24, 32), (24, 32)]


def test_samples_of_mixed_sizes_are_padded_with_their_sizes_recorded():
    def item(height: int, width: int, value: int) -> dict:
        image = np.full((height, width, 3), value, np.uint8)
        return {"gt": image, "pred": image.copy(), "error": np.full((height, width), 0.5, np.float32),
                "uncertainty": np.full((height, width), 0.1),
                "clip_id": f"c{value}", "frame": value, "yaw": 1.0}

    pool = {"frontal": [item(4, 6, 1)], "moderate": [item(7, 3, 2)], "extreme": [item(5, 5, 3)]}
    samples = stack_samples(pool, per_bin=2)
    assert samples["gt"].shape == (3, 7, 6, 3) and samples["error"].shape == (3, 7, 6)
    assert samples["height"].tolist() == [4, 7, 5] and samples["width"].tolist() == [6, 3, 5]
    for i in range(3):
        h, w = samples["height"][i], samples["width"][i]
        assert (samples["gt"][i, :h, :w] == i + 1).all() and (samples["gt"][i, h:] == 0).all()
        assert np.isfinite(samples["error"][i, :h, :w]).all()
        assert np.isnan(samples["error"][i, h:]).all() and np.isnan(samples["uncertainty"][i, :, w:]).all()
    assert samples["clip_id"].tolist() == ["c1", "c2", "c3"]
    # no pose bin at all (external videos without a pose estimate): three per bin's worth from the rest
    unknown = {"unknown": [item(4 + i % 2, 6, i) for i in range(10)]}
    fallback = select_samples(unknown, per_bin=2)
    assert len(fallback["gt"]) == 6 and set(fallback["height"].tolist()) == {4, 5}


def test_a_state_of_another_format_is_refused():
    scorer = FrameScorer(CONFIG)
    state = export_state(scorer)
    state["meta"] = np.array('{"format": "something-else"}')
    with pytest.raises(ValueError, match="format"):
        merge_state(FrameScorer(CONFIG), state)
