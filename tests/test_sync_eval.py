"""Clip-level lip sync in evaluation: the offset search finds a known shift; summary labels are local."""
import numpy as np
import pytest
import torch

from bench.config import EvalConfig
from bench.metrics.sync import clip_sync
from bench.harness.scorer import FrameScorer, summarise
from bench.metrics.specs import SUMMARY_NOTES


class _CodeMatcher(torch.nn.Module):
    """A stand-in expert: both embeddings encode a per-frame code (frame brightness / mel value)."""

    def forward(self, mel, frames5):
        video_code = frames5[:, 2].mean((1, 2, 3)) * 255.0  # the window's centre frame
        audio_code = mel[:, 0, 0]
        def embed(code):
            angles = code[:, None] * torch.tensor([0.3, 0.7, 1.3])
            return torch.cat([angles.cos(), angles.sin()], dim=1) / np.sqrt(3)
        return embed(video_code), embed(audio_code)


def _clip(n: int = 40, shift: int = 0):
    codes = torch.randperm(n, generator=torch.Generator().manual_seed(0)).float()
    frames = codes[:, None, None, None].expand(n, 3, 8, 8).clone()
    mel = torch.zeros(n, 80, 16)
    mel[:, 0, 0] = torch.roll(codes, shift)  # audio of frame t is the code of frame t - shift
    return frames, mel


def test_in_sync_clip_has_zero_offset_and_minimal_distance():
    frames, mel = _clip()
    result = clip_sync(_CodeMatcher(), frames, mel)
    assert result.offset == 0
    assert result.lse_d == pytest.approx(float(result.mean_dists.min()))
    assert result.lse_c > 0.1


@pytest.mark.parametrize("shift", [3, -4])
def test_shifted_audio_moves_the_offset_and_lowers_confidence(shift):
    frames, mel = _clip(shift=shift)
    shifted = clip_sync(_CodeMatcher(), frames, mel)
    in_sync = clip_sync(_CodeMatcher(), *_clip())
    assert abs(shifted.offset) == abs(shift)
    assert shifted.lse_d > in_sync.lse_d  # zero-padded edges make the best shift imperfect


def test_clip_scores_reach_the_summary_per_pose_bin_with_the_local_label():
    scorer = FrameScorer(EvalConfig(bootstrap=50))
    rng = np.random.default_rng(0)
    for c, yaw in enumerate([3, 5, 20, 40, 50]):
        gt = torch.from_numpy(rng.integers(0, 256, (2, 3, 16, 16)).astype(np.float32))
        scorer.update(gt, gt, None, None, [{"clip_id": f"c{c}", "frame": t, "yaw": float(yaw)} for t in range(2)])
        scorer.add_clip({"clip_id": f"c{c}", "yaw": float(yaw)}, {"lse_c_local": 1.0 + c, "lse_d_local": 5.0 - c})
    summary = summarise(scorer.result(), "m", EvalConfig(bootstrap=50), seed=0)
    assert summary["metrics"]["lse_c_local"]["value"] == pytest.approx(3.0)
    assert summary["metrics"]["lse_c_local"]["n"] == 5 and summary["metrics"]["lse_c_local"]["ci95"] is not None
    assert summary["by_pose"]["frontal"]["lse_d_local"]["value"] == pytest.approx(4.5)
    assert summary["by_pose"]["extreme"]["lse_c_local"]["value"] == pytest.approx(4.5)
    assert summary["notes"]["lse_local"] == SUMMARY_NOTES["lse_local"] and "not comparable" in summary["notes"]["lse_local"]
    assert "lse_c" not in summary["metrics"]  # official names only with the official weights
