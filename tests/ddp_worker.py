"""Run by test_train.py as one process of a 2-rank gloo DDP job (env: RANK, WORLD_SIZE, MASTER_*)."""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_fixtures import fake_clips, tiny_config  # noqa: E402

from bench.models import build_model  # noqa: E402
from bench.train import train  # noqa: E402

out = Path(sys.argv[1])
config = tiny_config(steps=3)
torch.manual_seed(0)
model = build_model("julnet", config.net)
model, state = train(model, fake_clips(), config, "cpu", progress=False, out_dir=out / "ckpt")
flat = torch.cat([p.detach().flatten() for p in model.parameters()])
torch.save(flat, out / f"rank{torch.distributed.get_rank()}.pt")
torch.distributed.destroy_process_group()
