"""The training loop: exact resume, gradient accumulation, 2-process DDP on CPU."""
import os
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from bench.models import build_model
from bench.training.loop import CheckpointError, load_checkpoint, train
from train_fixtures import fake_clips, tiny_config, train_sync_expert


def _weights(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.state_dict().values() if p.is_floating_point()])


def _fresh(config) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(config.model, config.net)


@pytest.fixture(scope="module")
def sync_expert(tmp_path_factory) -> Path:
    """A tiny trained syncnet checkpoint (for the sync-loss paths)."""
    return train_sync_expert(tmp_path_factory.mktemp("expert"))


def _with_critics(config, expert: Path):
    return replace(config, net=replace(config.net, gan_weight=1.0, sync_weight=0.1),
                   train=replace(config.train, sync_expert=str(expert)))


@pytest.mark.parametrize("critics", [False, True], ids=["pixel-loss", "gan+sync"])
def test_kill_and_resume_is_bit_identical_to_a_straight_run(tmp_path, critics, request):
    config, clips = tiny_config(steps=6), fake_clips()
    if critics:  # the discriminator, its optimiser and the window sampler must resume exactly too
        config = _with_critics(config, request.getfixturevalue("sync_expert"))
    straight, _ = train(_fresh(config), clips, config, progress=False, out_dir=tmp_path / "a")
    train(_fresh(config), clips, config, progress=False, out_dir=tmp_path / "b", stop_after=2)
    assert not (tmp_path / "b" / "final.pt").exists() and (tmp_path / "b" / "last.pt").exists()
    other = build_model(config.model, config.net)  # different init: resume must overwrite it all
    resumed, state = train(other, clips, config, progress=False, out_dir=tmp_path / "b", resume=True)
    assert state["step"] == 6
    assert torch.equal(_weights(straight), _weights(resumed))
    if critics:
        final = torch.load(tmp_path / "a" / "final.pt", weights_only=True)
        assert {"gan_g", "gan_d", "sync"} <= set(state["final_logs"])
        for name, value in final["critics"]["discriminator"].items():
            assert torch.equal(value, state["critics"]["discriminator"][name]), name
    reloaded, saved_config, _ = load_checkpoint(tmp_path / "b" / "final.pt")
    assert saved_config == config and torch.equal(_weights(reloaded), _weights(straight))
    # a straight run that differs (other seed) is not identical: the comparison can fail
    different, _ = train(_fresh(config), clips, replace(config, seed=1), progress=False)
    assert not torch.equal(_weights(different), _weights(straight))


def test_resume_ignores_evaluation_settings_but_not_training_ones(tmp_path):
    """A training killed before an upgrade that moved an evaluation default (eval.sync_steps did) resumes: the
    cache key leaves eval out, so the interrupted last.pt sits where the new run looks for it."""
    config, clips = tiny_config(steps=4), fake_clips()
    straight, _ = train(_fresh(config), clips, config, progress=False, out_dir=tmp_path / "a")
    train(_fresh(config), clips, config, progress=False, out_dir=tmp_path / "b", stop_after=2)
    later = replace(config, preset="standard", eval=replace(config.eval, sync_steps=config.eval.sync_steps + 1))
    resumed, state = train(_fresh(config), clips, later, progress=False, out_dir=tmp_path / "b", resume=True)
    assert state["step"] == 4 and torch.equal(_weights(straight), _weights(resumed))
    train(_fresh(config), clips, config, progress=False, out_dir=tmp_path / "c", stop_after=2)
    with pytest.raises(CheckpointError, match=r"another run configuration \(train.lr differ\)"):
        train(_fresh(config), clips, replace(config, train=replace(config.train, lr=config.train.lr * 2)),
              progress=False, out_dir=tmp_path / "c", resume=True)


def test_resume_without_a_checkpoint_is_a_clear_error(tmp_path):
    config = tiny_config(steps=2)
    with pytest.raises(CheckpointError, match="no last.pt"):
        train(_fresh(config), fake_clips(), config, progress=False, out_dir=tmp_path, resume=True)


def test_gradient_accumulation_trains_and_logs(tmp_path):
    config = tiny_config(steps=3, grad_accum=2)
    model, state = train(_fresh(config), fake_clips(), config, progress=False, out_dir=tmp_path)
    assert state["step"] == 3 and set(state["final_logs"]) == {"l1", "lun1", "lun2"}
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_process_gloo_ddp_keeps_ranks_in_sync(tmp_path, sync_expert):
    worker = Path(__file__).with_name("ddp_worker.py")
    env = {**os.environ, "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()),
           "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, str(worker), str(tmp_path), str(sync_expert)],
                              env={**env, "RANK": str(r), "LOCAL_RANK": str(r)},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for r in range(2)]
    outputs = [p.communicate(timeout=240)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    rank0, rank1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    # gradients were averaged: both ranks took the same generator and discriminator steps
    assert torch.equal(rank0["generator"], rank1["generator"])
    assert torch.equal(rank0["discriminator"], rank1["discriminator"])
    assert (tmp_path / "ckpt" / "final.pt").is_file()
    # each rank drew different batches, so the DDP run differs from a single-process run
    config = _with_critics(tiny_config(steps=3), sync_expert)
    single, _ = train(_fresh(config), fake_clips(), config, progress=False)
    assert not torch.equal(torch.cat([p.detach().flatten() for p in single.parameters()]), rank0["generator"])
