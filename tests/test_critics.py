"""The LSGAN discriminator, the sync expert's loss and the window sampler used with it."""
from dataclasses import replace

import pytest
import torch

from bench.training.critics import Critics, load_sync_expert
from bench.api import MIN_REF_GAP, SYNC_WINDOW as WINDOW
from bench.data.frames import WindowSampler
from bench.models import build_model
from bench.training.loop import CheckpointError, train
from bench.blocks.discriminator import FrameDiscriminator, lsgan_discriminator_loss, lsgan_generator_loss
from train_fixtures import fake_clips, tiny_config, train_sync_expert


@pytest.mark.parametrize("size", [32, 64, 96])
def test_discriminator_scores_patches_of_the_generated_half_only(size):
    torch.manual_seed(0)
    disc = FrameDiscriminator(size, channels=8)
    frames = torch.rand(2, 3, size, size)
    scores = disc(frames)
    assert scores.shape[:2] == (2, 1) and 1 <= min(scores.shape[-2:]) <= 4
    changed = frames.clone()
    changed[:, :, : size // 2] = torch.rand(2, 3, size // 2, size)  # the given half: not judged
    assert torch.equal(disc(changed), scores)
    changed[:, :, -1] = 0.0  # the generated half: judged
    assert not torch.equal(disc(changed), scores)


def test_lsgan_losses_have_their_least_squares_targets():
    ones, zeros = torch.ones(4, 1, 2, 2), torch.zeros(4, 1, 2, 2)
    assert lsgan_discriminator_loss(ones, zeros).item() == 0.0
    assert lsgan_discriminator_loss(zeros, ones).item() == pytest.approx(1.0)
    assert lsgan_generator_loss(ones).item() == 0.0 and lsgan_generator_loss(zeros).item() == 1.0


@pytest.fixture(scope="module")
def expert_path(tmp_path_factory):
    return train_sync_expert(tmp_path_factory.mktemp("expert"))


def _config(expert, gan=1.0, sync=0.1):
    config = tiny_config(steps=4)
    return replace(config, net=replace(config.net, gan_weight=gan, sync_weight=sync),
                   train=replace(config.train, sync_expert=str(expert) if expert else ""))


def test_generator_terms_train_the_generator_not_the_critics(expert_path):
    config = _config(expert_path)
    torch.manual_seed(0)
    critics = Critics(config, torch.device("cpu"))
    model = build_model("julnet", config.net)
    batch = WindowSampler(fake_clips(), config.net.n_refs, seed=0).sample(10)
    loss, logs = model.training_loss(batch, critics)
    assert {"gan_g", "sync"} <= set(logs) and logs["gan_g"] > 0 and logs["sync"] > 0
    loss.backward()
    assert all(p.grad is None for p in critics.discriminator.parameters())
    assert all(p.grad is None for p in critics.expert.parameters())
    assert all(p.requires_grad for p in critics.discriminator.parameters())  # restored for its own step
    # both terms reach the generator: each alone gives its decoder a gradient
    for weights in [(1.0, 0.0), (0.0, 1.0)]:
        model.zero_grad()
        only = Critics(_config(expert_path, *weights), torch.device("cpu"))
        pred, _ = model(batch["audio"], batch["masked"], batch["refs"])
        extra, _ = only.generator_terms(pred, batch)
        extra.backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        assert grads and sum(g.abs().sum() for g in grads) > 0


def test_discriminator_steps_learn_to_tell_real_from_generated():
    config = _config(None, gan=1.0, sync=0.0)
    config = replace(config, train=replace(config.train, steps=60))  # the schedule's length
    torch.manual_seed(0)
    critics = Critics(config, torch.device("cpu"))
    assert critics.expert is None
    real = torch.rand(6, 3, 16, 16)
    fake = real.clone()
    fake[:, :, 8:] = 0.5  # a flat grey lower half
    batch = {"target": real}

    def d_loss():
        with torch.no_grad():
            return lsgan_discriminator_loss(critics.discriminator(real), critics.discriminator(fake)).item()

    before = d_loss()
    for _ in range(60):
        critics.generator_terms(fake, batch)  # remembers the pair, as a generator step does
        logs = critics.discriminator_step()
    assert set(logs) == {"gan_d"} and d_loss() < 0.5 * before
    assert critics._pairs == []


def test_window_sampler_gives_consecutive_frames_and_far_references():
    clips = fake_clips(frames=14)
    sampler = WindowSampler(clips, n_refs=2, seed=3)
    batch = sampler.sample(10)
    assert batch["target"].shape[0] == 2 * WINDOW and batch["sync_mel"].shape == (2, 80, 16)
    # recover frame indices by matching pixels against the clip frames
    frames = {c.clip_id: c.frames.float() / 255.0 for c in clips}
    for window in range(2):
        rows = batch["target"][window * WINDOW:(window + 1) * WINDOW]
        clip_id, first = next((cid, i) for cid, f in frames.items() for i in range(len(f))
                              if torch.equal(f[i], rows[0]))
        clip = next(c for c in clips if c.clip_id == clip_id)
        assert all(torch.equal(frames[clip_id][first + k], rows[k]) for k in range(WINDOW))
        assert torch.equal(batch["sync_mel"][window], clip.mel[first + WINDOW // 2])
        for ref in batch["refs"][window * WINDOW]:
            index = next(i for i in range(len(clip.frames)) if torch.equal(frames[clip_id][i], ref))
            distance = min(abs(index - t) for t in range(first, first + WINDOW))
            assert min(distance, clip.n_frames - distance) >= MIN_REF_GAP
    with pytest.raises(ValueError, match="at least"):
        WindowSampler(fake_clips(frames=8), n_refs=2, seed=0)


def test_sync_loss_needs_a_matching_syncnet_checkpoint(expert_path, tmp_path):
    with pytest.raises(ValueError, match="--sync-expert"):
        Critics(_config(None), torch.device("cpu"))
    with pytest.raises(CheckpointError, match="trained at 16 px"):
        load_sync_expert(expert_path, 32, torch.device("cpu"))
    generator = tiny_config(steps=1)
    train(build_model("julnet", generator.net), fake_clips(), generator, progress=False, out_dir=tmp_path)
    with pytest.raises(CheckpointError, match="must be a 'syncnet' checkpoint"):
        load_sync_expert(tmp_path / "final.pt", 16, torch.device("cpu"))


def test_bench_train_with_sync_loss_but_no_expert_is_one_line(tmp_path, capsys):
    from bench.cli import main

    out = tmp_path / "out"
    assert main(["train", "--model", "julnet", "--preset", "smoke", "--sync-weight", "0.1", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--sync-expert" in err[0] and not out.exists()
    missing = tmp_path / "nope.pt"
    assert main(["train", "--model", "julnet", "--preset", "smoke", "--sync-expert", str(missing)]) == 2
    assert "nope.pt" in capsys.readouterr().err


def test_bench_train_cli_trains_a_generator_against_a_trained_expert(tmp_path, monkeypatch):
    from bench.cli import main

    monkeypatch.setenv("TALKBENCH_CACHE", str(tmp_path / "cache"))
    expert, generator = tmp_path / "expert", tmp_path / "generator"
    assert main(["train", "--model", "syncnet", "--preset", "smoke", "--out", str(expert), "--no-progress"]) == 0
    assert main(["train", "--model", "wav2lip", "--preset", "smoke", "--gan-weight", "1", "--sync-weight", "0.1",
                 "--sync-expert", str(expert / "final.pt"), "--out", str(generator), "--no-progress"]) == 0
    final = torch.load(generator / "final.pt", weights_only=True)
    assert final["config"]["train"]["sync_expert"] == str((expert / "final.pt").resolve())
    assert final["config"]["net"]["gan_weight"] == 1.0 and final["critics"]["discriminator"]
    assert {"gan_g", "gan_d", "sync"} <= set(final["final_logs"])
