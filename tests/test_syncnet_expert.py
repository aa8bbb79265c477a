"""The SyncNet expert's mouth crop, per-frame encoder, clip-grouped batches and InfoNCE term (smoke preset)."""
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from baselines.syncnet import (CONTRASTIVE_TEMPERATURE, SYNC_GROUP, SYNC_NEGATIVE_OFFSET, SyncSampler, _contrastive,
                               make_sync_batch, mouth_crop)
from bench.config import preset_config
from bench.data.frames import ClipTensors
from bench.models import build_model
from bench.training.loop import train


def _clips(n_clips: int, size: int, seed: int, frames: int = 24) -> list[ClipTensors]:
    """Clips whose mouth opening (a dark bar in the mouth region) and mel energy follow one random per-frame signal."""
    gen = torch.Generator().manual_seed(seed)
    clips = []
    for index in range(n_clips):
        signal = torch.rand(frames, generator=gen)
        video = torch.full((frames, 3, size, size), 0.6) + 0.05 * torch.rand(frames, 3, size, size, generator=gen)
        rows = torch.arange(size).view(1, size, 1)
        centre, half = size * 11 / 16, 0.5 + signal.view(-1, 1, 1) * size / 8
        bar = ((rows - centre).abs() < half) & (torch.arange(size).view(1, 1, size) - size / 2).abs().lt(size / 4)
        video = torch.where(bar.unsqueeze(1), torch.tensor(0.1), video)
        mel = signal.view(-1, 1, 1) * 4.0 - 2.0 + 0.3 * torch.randn(frames, 80, 16, generator=gen)
        zeros = np.zeros(frames, np.float32)
        clips.append(ClipTensors(clip_id=f"s{seed}_{index}", identity=f"id{index % 2}", stratum="frontal",
                                 frames=(video.clamp(0, 1) * 255).round().to(torch.uint8), mel=mel,
                                 yaw=zeros, pitch=zeros, roll=zeros))
    return clips


def _smoke_expert_config(steps: int, lr: float):
    """The expert's config as `bench run` derives it from the smoke preset, with its own schedule."""
    config = preset_config("smoke", model="syncnet")
    return replace(config, train=replace(config.train, steps=steps, lr=lr, batch_size=16))


def test_mouth_crop_is_inside_the_masked_half_and_only_it_is_seen():
    frames = torch.zeros(2, 5, 3, 64, 64)
    assert mouth_crop(frames).shape == (2, 5, 3, 24, 48)
    config = _smoke_expert_config(1, 1e-3).net
    model = build_model("syncnet", config, seed=0).eval()
    size = config.image_size
    gen = torch.Generator().manual_seed(0)
    mel, frames = torch.randn(3, 80, 16, generator=gen), torch.rand(3, 5, 3, size, size, generator=gen)
    with torch.no_grad():
        visual = model(mel, frames)[0]
        outside = frames.clone()
        outside[..., : size // 2, :] = 0  # the visible half
        outside[..., :, : size // 8] = 0  # the cheeks
        outside[..., size - size // 8:, :] = 0  # the chin and neck
        assert torch.allclose(model(mel, outside)[0], visual, atol=1e-6)
        inside = frames.clone()
        inside[..., size // 2 + 2, size // 2] += 0.5
        assert not torch.allclose(model(mel, inside)[0], visual, atol=1e-6)


def test_frame_order_matters_and_frames_share_one_encoder():
    model = build_model("syncnet", _smoke_expert_config(1, 1e-3).net, seed=0).eval()
    gen = torch.Generator().manual_seed(1)
    mel, frames = torch.randn(4, 80, 16, generator=gen), torch.rand(4, 5, 3, 32, 32, generator=gen)
    with torch.no_grad():
        forward = model(mel, frames)[0]
        backward = model(mel, frames.flip(1))[0]
        per_frame = model.visual.frame(mouth_crop(frames).flatten(0, 1)).view(4, 5, -1)
        one_by_one = torch.stack([model.visual.frame(mouth_crop(frames[:, t])) for t in range(5)], dim=1)
    assert not torch.allclose(forward, backward, atol=1e-4)  # the temporal layers see the order
    assert torch.allclose(per_frame, one_by_one, atol=1e-5)  # the same 2-D encoder reads every frame


def test_grouped_batches_keep_the_pair_contract_and_name_clip_and_centre():
    clips = _clips(5, 32, seed=0)
    batch = make_sync_batch(clips, 16, torch.Generator().manual_seed(0), group=SYNC_GROUP)
    assert batch["label"].tolist() == [1.0, 0.0] * 8
    assert (batch["offset"][1::2].abs() >= SYNC_NEGATIVE_OFFSET).all() and (batch["offset"][0::2] == 0).all()
    assert (batch["clip"].view(-1, SYNC_GROUP) == batch["clip"].view(-1, SYNC_GROUP)[:, :1]).all()
    for row in range(16):
        clip, centre = clips[int(batch["clip"][row])], int(batch["centre"][row])
        assert torch.equal((batch["frames"][row] * 255).round().to(torch.uint8), clip.frames[centre - 2:centre + 3])
        assert torch.equal(batch["mel"][row], clip.mel[centre + int(batch["offset"][row])])
    # group=1 (the evaluation pairs) draws each row's clip on its own; the sampler groups
    single = make_sync_batch(clips, 16, torch.Generator().manual_seed(0))
    assert len(set(single["clip"].tolist())) > 16 // SYNC_GROUP
    assert torch.equal(SyncSampler(clips, seed=3).sample(16)["clip"],
                       make_sync_batch(clips, 16, torch.Generator().manual_seed(3), group=SYNC_GROUP)["clip"])
    with pytest.raises(ValueError, match="group"):
        make_sync_batch(clips, 4, torch.Generator(), group=0)


def test_training_windows_are_mirrored_half_the_time_and_the_held_out_pairs_never():
    clips = _clips(3, 32, seed=4)
    sampler = SyncSampler(clips, seed=5)
    batch = sampler.sample(64)
    plain = make_sync_batch(clips, 64, torch.Generator().manual_seed(5), group=SYNC_GROUP)
    assert all(torch.equal(batch[k], plain[k]) for k in ("mel", "label", "offset", "clip", "centre"))
    mirrored = batch["mirrored"]
    assert 16 < int(mirrored.sum()) < 48  # about half of 64
    # a mirrored row is its window flipped left-right, all five frames alike; the others are untouched
    assert torch.equal(batch["frames"][mirrored], plain["frames"][mirrored].flip(-1))
    assert torch.equal(batch["frames"][~mirrored], plain["frames"][~mirrored])
    assert not torch.equal(plain["frames"][mirrored].flip(-1), plain["frames"][mirrored])
    # the crop is centred, so the expert sees the mirrored crop of the same mouth
    window = plain["frames"][:1]
    assert torch.equal(mouth_crop(window.flip(-1)), mouth_crop(window).flip(-1))
    # the stream, flips included, resumes exactly from the sampler's state
    state = sampler.state_dict()
    following = sampler.sample(16)
    sampler.load_state_dict(state)
    assert all(torch.equal(following[k], v) for k, v in sampler.sample(16).items())


def test_contrastive_term_matches_a_reference_and_leaves_out_masked_candidates():
    gen = torch.Generator().manual_seed(0)
    visual = F.normalize(torch.randn(4, 8, generator=gen), dim=1)
    audio = F.normalize(torch.randn(4, 8, generator=gen), dim=1)
    anchors = torch.tensor([True, False, True, False])
    allowed = torch.ones(4, 4, dtype=torch.bool)
    allowed[0, 1] = allowed[2, 1] = False  # audio 1 is no candidate of any anchor window
    logits = visual @ audio.t() / CONTRASTIVE_TEMPERATURE
    reference = 0.0
    for i in (0, 2):  # window i picks audio i among its allowed audio; audio i picks window i among all windows
        keep = allowed[i]
        reference += -torch.log_softmax(logits[i][keep], 0)[keep[:i].sum()] / 4
        reference += -torch.log_softmax(logits[:, i][allowed[:, i]], 0)[allowed[:i, i].sum()] / 4
    assert torch.allclose(_contrastive(visual, audio, anchors, allowed), reference, atol=1e-5)
    moved = audio.clone()
    moved[1] = -moved[1]  # a masked-out, non-anchor audio window changes nothing
    assert torch.allclose(_contrastive(visual, moved, anchors, allowed), reference, atol=1e-5)


@torch.no_grad()
def _held_out(model, clips: list[ClipTensors]) -> tuple[float, float]:
    """(accuracy of P > 0.5, AUC) on 200 fixed pairs, half in sync and half shifted by >= 5 frames."""
    model.eval()
    batch = make_sync_batch(clips, 200, torch.Generator().manual_seed(99))
    prob, label = model.sync_probability(batch["mel"], batch["frames"]), batch["label"]
    auc = (prob[label > 0.5][:, None] > prob[label < 0.5][None, :]).float().mean()
    return float(((prob > 0.5).float() == label).float().mean()), float(auc)


def test_expert_trained_by_the_shared_loop_separates_sync_from_shifted_pairs():
    config = _smoke_expert_config(steps=60, lr=2e-3)
    model = build_model("syncnet", config.net, seed=0)
    untrained, _ = _held_out(build_model("syncnet", config.net, seed=0), _clips(4, 32, seed=1))
    model, state = train(model, _clips(6, 32, seed=0), config, progress=False)
    accuracy, auc = _held_out(model, _clips(4, 32, seed=1))  # other clips, other signals
    assert state["step"] == 60 and torch.isfinite(torch.tensor(state["final_logs"]["bce"]))
    # chance is 0.5 (+-0.035 over 200 pairs); 60 steps reach about 0.7 and an AUC of about 0.88
    assert accuracy >= 0.65 and accuracy > untrained + 0.1 and auc >= 0.8, (accuracy, untrained, auc)
