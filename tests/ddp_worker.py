"""Run by test_train.py as one process of a 2-rank gloo DDP job (env: RANK, WORLD_SIZE, MASTER_*).

argv: OUT [SYNC_EXPERT]. Trains JULNet with the LSGAN discriminator on (and the sync expert's loss
when a checkpoint is given), so both DDP wrappers, the generator's and the discriminator's, are used.
"""
import sys
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_fixtures import fake_clips, tiny_config  # noqa: E402

from bench.models import build_model  # noqa: E402
from bench.training.loop import train  # noqa: E402

out = Path(sys.argv[1])
config = tiny_config(steps=3)
config = replace(config, net=replace(config.net, gan_weight=1.0))
if len(sys.argv) > 2:
    config = replace(config, net=replace(config.net, sync_weight=0.1),
                     train=replace(config.train, sync_expert=sys.argv[2]))
torch.manual_seed(0)
model = build_model("julnet", config.net)
model, state = train(model, fake_clips(), config, "cpu", progress=False, out_dir=out / "ckpt")
flat = torch.cat([p.detach().flatten() for p in model.parameters()])
critic = torch.cat([p.detach().flatten() for p in state["critics"]["discriminator"].values()])
torch.save({"generator": flat, "discriminator": critic}, out / f"rank{torch.distributed.get_rank()}.pt")
torch.distributed.destroy_process_group()
