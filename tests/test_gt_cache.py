"""Ground-truth work cached by content (bench.metrics.gt_cache): a second model scored on the same frames reads
the ground truth's Inception features back, gets a bit-identical FID, and a damaged entry is rebuilt, not trusted."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.config import EvalConfig
from bench.harness.scorer import FrameScorer, summarise
from bench.metrics import fid
from bench.metrics.gt_cache import GroundTruthCache, weights_digest

CONFIG = EvalConfig(bootstrap=20, samples_per_bin=1)


class _CountingInception(torch.nn.Module):
    """A small stand-in with pytorch-fid's output shape (list of B x D x 1 x 1); counts the images it sees."""

    def __init__(self, dim: int = 8) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, dim, 3)
        self.images = 0

    def forward(self, x):
        self.images += len(x)
        return [torch.tanh(self.conv(x)).mean((2, 3))[:, :, None, None]]


def _frames(seed: int, n: int = 6, size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    gt = torch.from_numpy(rng.integers(0, 256, (n, 3, size, size)).astype(np.float32))
    return gt, (gt + torch.from_numpy(rng.normal(0, 20, gt.shape).astype(np.float32))).clamp(0, 255).round()


def _score(model: torch.nn.Module, cache, clips=((0, 5.0), (1, 20.0), (2, 45.0)), shift: float = 0.0):
    scorer = FrameScorer(CONFIG, inception=model, gt_cache=cache)
    for seed, yaw in clips:
        gt, pred = _frames(seed)
        pred = (pred + shift).clamp(0, 255)
        scorer.update(pred, gt, None, None, [{"clip_id": f"c{seed}", "frame": t, "yaw": yaw} for t in range(len(gt))])
    return scorer, summarise(scorer.result(), "m", CONFIG, seed=0)


@pytest.fixture
def model() -> _CountingInception:
    net = _CountingInception()
    weights_digest(net)  # what build_inception does: a digest keys (and enables) the cache
    return net


def test_a_second_model_reads_the_ground_truth_features_and_gets_a_bit_identical_fid(model, tmp_path):
    first, summary = _score(model, tmp_path)
    assert first.fid_cache.misses == 3 and first.fid_cache.hits == 0 and model.images == 2 * 18
    model.images = 0
    again, summary_again = _score(model, tmp_path)
    assert again.fid_cache.hits == 3 and again.fid_cache.misses == 0
    assert model.images == 18  # only the generated frames went through the network
    assert summary_again == summary  # every FID (overall and per pose bin) to the bit
    assert summary["metrics"]["fid"]["value"] > 0 and summary["metrics"]["fid"]["n"] == 18
    # another model on the same ground truth: same hits, its own FID
    model.images = 0
    other, summary_other = _score(model, tmp_path, shift=30.0)
    assert other.fid_cache.hits == 3 and model.images == 18
    assert summary_other["metrics"]["fid"]["value"] != summary["metrics"]["fid"]["value"]
    uncached, summary_uncached = _score(model, False, shift=30.0)
    assert uncached.fid_cache is None and summary_uncached == summary_other


def test_other_frames_or_other_weights_do_not_hit(model, tmp_path):
    _score(model, tmp_path)
    scorer, _ = _score(model, tmp_path, clips=((3, 5.0),))
    assert scorer.fid_cache.hits == 0 and scorer.fid_cache.misses == 1
    changed = _CountingInception()
    with torch.no_grad():
        changed.conv.bias += 1e-3
    weights_digest(changed)
    scorer, _ = _score(changed, tmp_path)
    assert scorer.fid_cache.hits == 0 and scorer.fid_cache.misses == 3


def test_a_network_without_a_weights_digest_is_not_cached(tmp_path):
    scorer, summary = _score(_CountingInception(), tmp_path)
    assert scorer.fid_cache is None and not any(tmp_path.iterdir()) and summary["metrics"]["fid"]["n"] == 18


@pytest.mark.parametrize("damage", ["garbage", "truncated", "tampered", "other_key", "wrong_shape"])
def test_a_damaged_or_mismatched_entry_is_ignored_and_rebuilt(model, tmp_path, damage):
    first, summary = _score(model, tmp_path)
    paths = sorted(tmp_path.rglob("*.npz"))
    assert len(paths) == 3
    target = paths[0]
    if damage == "garbage":
        target.write_bytes(b"not an npz")
    elif damage == "truncated":
        target.write_bytes(target.read_bytes()[:200])
    elif damage == "other_key":
        target.write_bytes(paths[1].read_bytes())  # a valid entry, for other frames
    else:
        with np.load(target) as data:
            arrays = {name: np.array(data[name]) for name in data.files}
        if damage == "tampered":
            arrays["features"][0, 0] += 1.0  # the checksum no longer matches
        else:
            arrays["features"] = arrays["features"][:-1]
        np.savez(target, **arrays)
    model.images = 0
    again, summary_again = _score(model, tmp_path)
    assert again.fid_cache.rejected == 1 and again.fid_cache.hits == 2
    assert model.images == 18 + 6  # the damaged batch's ground truth went through the network again
    assert summary_again == summary
    third, summary_third = _score(model, tmp_path)  # rebuilt: every entry hits now
    assert third.fid_cache.hits == 3 and third.fid_cache.rejected == 0 and summary_third == summary


def test_entries_hold_float32_features_exactly_as_computed(model, tmp_path):
    cache = GroundTruthCache("unit", {"weights": weights_digest(model)}, tmp_path)
    gt, _ = _frames(0)
    features = fid.inception_features(model, gt / 255.0)
    key = cache.key(gt)
    assert cache.key(gt.clone()) == key and cache.key(gt + 1) != key and cache.key(gt.double()) != key
    cache.store(key, {"features": features.float().numpy()})
    loaded = cache.load(key, {"features": tuple(features.shape)})
    assert torch.equal(torch.from_numpy(loaded["features"]).double(), features)
    assert cache.load(key, {"features": (1, None)}) is None and cache.rejected == 1


def test_the_provisioned_inception_is_cached_bit_for_bit(provisioned, tmp_path):
    """The real network (channels-last, as bench builds it): a cached run equals the first, and both equal the
    default-layout network to float32 rounding."""
    inception = fid.build_inception()
    plain = fid.build_inception(channels_last=False)
    assert fid.inception_cache(inception, tmp_path) is not None
    gt, _ = _frames(4, n=3, size=64)
    cache = fid.inception_cache(inception, tmp_path)
    computed = fid.cached_features(inception, gt, cache)
    read = fid.cached_features(inception, gt, cache)
    assert cache.misses == 1 and cache.hits == 1 and torch.equal(read, computed)
    torch.testing.assert_close(computed, fid.inception_features(plain, gt / 255.0), rtol=1e-4, atol=1e-4)
    # the layout is part of the key: the default-layout network's features are its own entries
    assert fid.inception_cache(plain, tmp_path).key(gt) != cache.key(gt)
