"""The Wav2Lip and DINet baselines (generator protocol, uncertainty head, training) and the SyncNet expert."""
import numpy as np
import pytest
import torch

from baselines.syncnet import MIN_SYNC_CLIP_FRAMES, SYNC_NEGATIVE_OFFSET, SyncNet, SyncSampler, make_sync_batch
from bench.api import capabilities
from bench.config import ModelConfig
from bench.data.frames import ClipTensors, mask_lower_half
from bench.models import build_model, model_class

GENERATORS = ["julnet", "wav2lip", "dinet"]
MODES = ["none", "lun1", "joint"]


def _batch(size: int, n_refs: int = 2, batch: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    target = torch.rand(batch, 3, size, size, generator=gen)
    return {
        "audio": torch.randn(batch, 80, 16, generator=gen),
        "masked": mask_lower_half(target),
        "refs": torch.rand(batch, n_refs, 3, size, size, generator=gen),
        "target": target,
    }


@pytest.mark.parametrize("name", GENERATORS)
@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("mode", MODES)
def test_generators_follow_the_protocol(name, size, mode):
    torch.manual_seed(0)
    model = build_model(name, ModelConfig(image_size=size, n_refs=2, channels=8, uncertainty=mode)).eval()
    batch = _batch(size)
    with torch.no_grad():
        pred, log_scale = model(batch["audio"], batch["masked"], batch["refs"])
    assert pred.shape == (2, 3, size, size) and pred.dtype == torch.float32
    assert log_scale.shape == (2, 1, size, size) and log_scale.dtype == torch.float32
    assert 0 <= pred.min() and pred.max() <= 1
    assert torch.isfinite(log_scale).all()
    # inpainting: the given upper half passes through bit for bit
    assert torch.equal(pred[..., : size // 2, :], batch["masked"][..., : size // 2, :])
    assert not torch.equal(pred[..., size // 2:, :], batch["masked"][..., size // 2:, :])
    if mode == "none":
        assert torch.unique(log_scale).numel() == 1


@pytest.mark.parametrize("name", GENERATORS)
@pytest.mark.parametrize("mode", MODES)
def test_generators_train_and_the_head_gets_gradients_only_when_used(name, mode):
    torch.manual_seed(0)
    model = build_model(name, ModelConfig(image_size=32, n_refs=2, channels=8, uncertainty=mode)).train()
    batch = _batch(32, batch=4)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    first, logs = model.training_loss(batch)
    first.backward()
    head = [p.grad for p in model.uncertainty.parameters()]
    if mode == "none":
        assert set(logs) == {"l1"}
        assert all(g is None or g.abs().sum() == 0 for g in head)
    else:
        assert sum(g.abs().sum().item() for g in head if g is not None) > 0
    optimizer.step()
    for _ in range(12):
        optimizer.zero_grad()
        loss, _ = model.training_loss(batch)
        loss.backward()
        optimizer.step()
    assert torch.isfinite(loss)
    drop = 0.005 if mode == "none" else 0.05  # plain L1 starts near 0.13; the weighted losses near 6
    assert loss.item() < first.item() - drop


def test_wav2lip_reads_only_the_first_reference():
    model = build_model("wav2lip", ModelConfig(image_size=32, n_refs=3, channels=8)).eval()
    batch = _batch(32, n_refs=3)
    other = batch["refs"].clone()
    other[:, 1:] = torch.rand_like(other[:, 1:])
    with torch.no_grad():
        assert torch.equal(model(batch["audio"], batch["masked"], batch["refs"])[0],
                           model(batch["audio"], batch["masked"], other)[0])


@pytest.mark.parametrize("name", GENERATORS)
def test_generators_listen_to_the_audio(name):
    torch.manual_seed(0)
    model = build_model(name, ModelConfig(image_size=32, n_refs=2, channels=8)).eval()
    if name in ("dinet", "julnet"):  # AdaAT starts at the identity warp; move it off as training would
        torch.nn.init.normal_(model.adaat.mlp[-1].weight, std=0.1)
    batch = _batch(32)
    with torch.no_grad():
        a = model(batch["audio"], batch["masked"], batch["refs"])[0]
        b = model(-batch["audio"], batch["masked"], batch["refs"])[0]
    assert not torch.equal(a, b)


# ----------------------------------------------------------------------------- SyncNet


def _sync_clips(n_clips: int = 3, frames: int = 16, size: int = 32, seed: int = 0) -> list[ClipTensors]:
    """Clips whose mouth brightness and mel energy follow the same random per-frame signal."""
    gen = torch.Generator().manual_seed(seed)
    clips = []
    for index in range(n_clips):
        signal = torch.rand(frames, generator=gen)
        video = torch.rand(frames, 3, size, size, generator=gen) * 0.1 + 0.3
        video[:, :, size // 2:, :] = signal.view(-1, 1, 1, 1) * 0.9 + 0.05
        mel = signal.view(-1, 1, 1) * 4.0 - 2.0 + 0.1 * torch.randn(frames, 80, 16, generator=gen)
        zeros = np.zeros(frames, np.float32)
        clips.append(ClipTensors(clip_id=f"s{index}", identity="id0", stratum="frontal",
                                 frames=(video * 255).round().to(torch.uint8), mel=mel,
                                 yaw=zeros, pitch=zeros, roll=zeros))
    return clips


def test_syncnet_is_registered_as_a_trainable_non_generator():
    cls = model_class("syncnet")
    declared = capabilities(cls)
    assert cls is SyncNet and declared.trainable and not declared.generator and declared.kind == "sync_expert"
    assert declared.sampler_class is SyncSampler
    assert cls.make_sync_batch is make_sync_batch


@pytest.mark.parametrize("size", [32, 64])
def test_syncnet_embeddings_are_unit_vectors(size):
    model = build_model("syncnet", ModelConfig(image_size=size, channels=8)).eval()
    gen = torch.Generator().manual_seed(0)
    mel, frames = torch.randn(3, 80, 16, generator=gen), torch.rand(3, 5, 3, size, size, generator=gen)
    with torch.no_grad():
        visual, audio = model(mel, frames)
        prob = model.sync_probability(mel, frames)
    assert visual.shape == audio.shape == (3, 128)
    assert torch.allclose(visual.norm(dim=1), torch.ones(3), atol=1e-5)
    assert torch.allclose(audio.norm(dim=1), torch.ones(3), atol=1e-5)
    assert prob.shape == (3,) and 0 <= prob.min() and prob.max() <= 1
    # only the lower half of the frames is looked at
    frames_top = frames.clone()
    frames_top[..., : size // 2, :] = 0
    with torch.no_grad():
        assert torch.allclose(model(mel, frames_top)[0], visual)
    with pytest.raises(ValueError, match="B x 5 x 3"):
        model(mel, frames[:, :4])


def test_sync_batches_pair_windows_and_shift_negatives():
    clips = _sync_clips()
    batch = make_sync_batch(clips, 12, torch.Generator().manual_seed(0))
    assert batch["mel"].shape == (12, 80, 16) and batch["frames"].shape == (12, 5, 3, 32, 32)
    assert batch["label"].tolist() == [1.0, 0.0] * 6
    offsets = batch["offset"]
    assert (offsets[0::2] == 0).all() and (offsets[1::2].abs() >= SYNC_NEGATIVE_OFFSET).all()
    assert 0 <= batch["frames"].min() and batch["frames"].max() <= 1
    for row in range(12):  # each row is a real 5-frame window, and its mel sits `offset` frames from the centre
        window = (batch["frames"][row] * 255).round().to(torch.uint8)
        found = [(clip, t) for clip in clips for t in range(2, clip.n_frames - 2)
                 if torch.equal(clip.frames[t - 2:t + 3], window)]
        assert len(found) == 1
        clip, centre = found[0]
        assert torch.equal(batch["mel"][row], clip.mel[centre + int(offsets[row])])
    short = _sync_clips(frames=MIN_SYNC_CLIP_FRAMES - 1)
    with pytest.raises(ValueError, match="at least"):
        SyncSampler(short, seed=0)


def test_sync_sampler_is_deterministic_and_its_state_round_trips():
    clips = _sync_clips()
    a, b = SyncSampler(clips, 2, seed=7), SyncSampler(clips, 2, seed=7)
    first_a, first_b = a.sample(6), b.sample(6)
    assert all(torch.equal(first_a[k], first_b[k]) for k in first_a)
    state = a.state_dict()
    following = a.sample(6)
    assert not all(torch.equal(following[k], first_a[k]) for k in following)  # the stream moves on
    a.load_state_dict(state)
    again = a.sample(6)
    assert all(torch.equal(following[k], again[k]) for k in following)
    other = SyncSampler(clips, 2, seed=8).sample(6)
    assert not all(torch.equal(other[k], first_a[k]) for k in other)


def test_syncnet_learns_a_frame_dependent_audio_signal():
    torch.manual_seed(0)
    model = build_model("syncnet", ModelConfig(image_size=32, channels=8)).train()
    sampler = model.sampler_class(_sync_clips(), 2, seed=0)  # as the training loop will build it
    batch = sampler.sample(16)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    first, logs = model.training_loss(batch)
    assert set(logs) == {"bce", "acc"}
    for _ in range(20):
        optimizer.zero_grad()
        loss, logs = model.training_loss(batch)
        loss.backward()
        optimizer.step()
    assert loss.item() < first.item() - 0.15


def test_syncnet_embedding_norm_spreads_cosines_and_handles_single_rows():
    model = build_model("syncnet", ModelConfig(image_size=32, channels=8)).train()
    gen = torch.Generator().manual_seed(0)
    mel, frames = torch.randn(8, 80, 16, generator=gen), torch.rand(8, 5, 3, 32, 32, generator=gen)
    visual, audio = model(mel, frames)
    # centred per dimension over the batch: a fresh model's embeddings no longer all point one way
    assert (visual @ visual.T).fill_diagonal_(0).abs().mean() < 0.3
    one_visual, one_audio = model(mel[:1], frames[:1])  # one row in train mode: running statistics, no error
    assert one_visual.shape == one_audio.shape == (1, 128) and torch.isfinite(one_visual).all()
