"""Training schedules: the learning-rate warm-up (``train.warmup``: its schedule, exact resume, the cache keys it
leaves alone), the lip-sync expert's own schedule (``eval.sync_*``) and the ``standard`` preset."""
import math
from dataclasses import replace

import pytest
import torch

from bench.cli import main
from bench.config import preset_config, sync_expert_config
from bench.harness.experiment import _key
from bench.harness.run import checkpoint_key
from bench.models import build_model
from bench.training.loop import _optimiser, load_checkpoint, train
from train_fixtures import fake_clips, tiny_config


def _lrs(config, steps: int) -> list[float]:
    optimizer, schedule = _optimiser(torch.nn.Linear(2, 2), config)
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    return lrs


def test_warmup_rises_linearly_then_follows_the_cosine():
    config = tiny_config(steps=40, warmup=0.25)  # 10 warm-up steps
    lrs = _lrs(config, 40)
    base = config.train.lr
    cosine = [0.5 * base * (1 + math.cos(math.pi * step / 40)) for step in range(40)]
    for step in range(10):  # lr / 10, 2 lr / 10, ... times the cosine
        assert lrs[step] == pytest.approx((step + 1) / 10 * cosine[step], rel=1e-9)
    assert lrs[10:] == pytest.approx(cosine[10:], rel=1e-9)
    assert lrs[0] < lrs[5] < lrs[9]


def test_no_warmup_is_the_plain_cosine_schedule():
    config = tiny_config(steps=12)
    assert config.train.warmup == 0.0
    optimizer, schedule = _optimiser(torch.nn.Linear(2, 2), config)
    assert isinstance(schedule, torch.optim.lr_scheduler.CosineAnnealingLR)
    # a warm-up shorter than half a step rounds to none
    assert isinstance(_optimiser(torch.nn.Linear(2, 2), tiny_config(steps=4, warmup=0.1))[1],
                      torch.optim.lr_scheduler.CosineAnnealingLR)


def test_kill_and_resume_with_warmup_equals_a_straight_run(tmp_path):
    config, clips = tiny_config(steps=6, warmup=0.5), fake_clips()
    torch.manual_seed(0)
    straight, _ = train(build_model("julnet", config.net), clips, config, progress=False, out_dir=tmp_path / "a")
    torch.manual_seed(0)
    train(build_model("julnet", config.net), clips, config, progress=False, out_dir=tmp_path / "b", stop_after=2)
    resumed, state = train(build_model("julnet", config.net), clips, config, progress=False,
                           out_dir=tmp_path / "b", resume=True)
    assert state["step"] == 6
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    _, saved, _ = load_checkpoint(tmp_path / "b" / "final.pt")
    assert saved.train.warmup == 0.5


def _settings_before_blend_entropy(config):
    """(net settings, run settings) as dicts without ``net.blend_entropy`` and ``net.decoder_weight``, both added
    on 2026-12-08."""
    import dataclasses

    net = dataclasses.asdict(config.net)
    del net["blend_entropy"], net["decoder_weight"]
    return net, {**config.to_dict(), "net": net}


def test_cache_keys_without_warmup_are_those_from_before_the_setting():
    config = preset_config("quick")
    key = checkpoint_key(config, "data")
    warm = checkpoint_key(replace(config, train=replace(config.train, warmup=0.1)), "data")
    assert warm != key
    for setting in ("blend_entropy", "decoder_weight"):
        changed = replace(config, net=replace(config.net, **{setting: 0.01}))
        assert checkpoint_key(changed, "data") != key and _key(changed) != _key(config)
    # the key of a run without warm-up is the hash of the settings as they were before the field existed
    import dataclasses

    from bench.files import stable_hash

    train_settings = dataclasses.asdict(config.train)
    del train_settings["warmup"]
    net_settings, _ = _settings_before_blend_entropy(config)  # a net setting added later too
    assert key == stable_hash({"model": config.model, "net": net_settings, "train": train_settings,
                               "seed": config.seed, "data": "data"})


def test_a_model_revision_moves_its_cache_keys_and_revision_0_keeps_the_old_ones(monkeypatch):
    import dataclasses

    from baselines.syncnet import SyncNet
    from bench.files import stable_hash

    expert = sync_expert_config(preset_config("quick"))
    generator = preset_config("quick", model="wav2lip")
    new_expert, new_generator_cell = checkpoint_key(expert, "d"), _key(generator)
    generator_checkpoint = checkpoint_key(generator, "d")
    assert SyncNet.revision >= 1 and expert.train.warmup > 0
    monkeypatch.setattr(SyncNet, "revision", 0)
    old_expert = checkpoint_key(expert, "d")
    # revision 0 is the key as it was before revisions existed (cached checkpoints and experiment runs keep theirs)
    assert old_expert == stable_hash({"model": "syncnet", "net": _settings_before_blend_entropy(expert)[0],
                                      "train": dataclasses.asdict(expert.train),
                                      "seed": expert.seed, "data": "d"})
    assert _key(generator) == stable_hash(_settings_before_blend_entropy(generator)[1], length=16)
    # a new expert revision retrains the expert, and redoes every experiment run it scored
    assert new_expert != old_expert
    assert new_generator_cell != _key(generator)
    # a generator's checkpoint does not depend on the expert's code (it does not train with it at this preset)
    assert checkpoint_key(generator, "d") == generator_checkpoint


def test_the_expert_warms_up_and_generators_do_not():
    config = preset_config("quick", model="dinet", seed=2)
    assert config.train.warmup == 0.0
    expert = sync_expert_config(config)
    assert expert.model == "syncnet" and expert.seed == 2
    assert (expert.train.steps, expert.train.lr, expert.train.warmup) == (
        config.eval.sync_steps, config.eval.sync_lr, config.eval.sync_warmup)
    assert expert.train.warmup > 0
    # the expert's key ignores the generator's own switches: every generator of a seed shares it
    other = replace(config, model="julnet", net=replace(config.net, reference_path=False, uncertainty="lun1"))
    assert checkpoint_key(sync_expert_config(other), "d") == checkpoint_key(expert, "d")
    # nor any other generator setting (the bins experiment's B = 5 and 21 are judged by B = 11's expert)
    for change in ({"hist_bins": 5}, {"n_refs": 1}, {"lun2_weight": 0.5}, {"mouth_weight": 2.0}, {"gan_weight": 1.0}):
        assert sync_expert_config(replace(config, net=replace(config.net, **change))) == expert, change
    # the expert's own size settings do reach it
    wider = replace(config, net=replace(config.net, channels=2 * config.net.channels))
    assert checkpoint_key(sync_expert_config(wider), "d") != checkpoint_key(expert, "d")


def test_bench_train_trains_the_expert_with_its_own_schedule(tmp_path):
    out = tmp_path / "expert"
    assert main(["train", "--model", "syncnet", "--preset", "smoke", "--out", str(out), "--no-progress"]) == 0
    _, saved, state = load_checkpoint(out / "final.pt")
    smoke = preset_config("smoke")
    assert saved == sync_expert_config(replace(smoke, model="syncnet"))
    assert state["step"] == smoke.eval.sync_steps != smoke.train.steps


def test_the_standard_preset_is_the_quick_one_with_generators_trained_four_times_as_long():
    quick, standard = preset_config("quick", model="wav2lip", seed=1), preset_config("standard", model="wav2lip", seed=1)
    assert standard.data == quick.data and standard.net == quick.net  # same test split, same networks
    assert standard.train.steps == 4 * quick.train.steps and standard.eval == quick.eval
    assert replace(standard, preset="quick", train=quick.train) == quick
    # its generators' checkpoints are its own; its lip-sync expert is the quick preset's cached one (one judge)
    assert checkpoint_key(standard, "d") != checkpoint_key(quick, "d")
    assert checkpoint_key(sync_expert_config(standard), "d") == checkpoint_key(sync_expert_config(quick), "d")
    assert sync_expert_config(standard).train.warmup == sync_expert_config(quick).train.warmup > 0
