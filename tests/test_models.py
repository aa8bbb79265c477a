"""Model protocol, the uncertainty loss, the registry and checkpoints."""
import math

import pytest
import torch

from bench.api import capabilities
from bench.config import ModelConfig, RunConfig, TrainConfig
from bench.models import MODELS, UnknownModelError, build_model, model_class
from bench.training.loop import CheckpointError, load_checkpoint, save_checkpoint
from bench.blocks.uncertainty import uncertainty_l1


def _batch(size: int, n_refs: int, batch: int = 2) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return {
        "audio": torch.randn(batch, 80, 16, generator=gen),
        "masked": torch.rand(batch, 3, size, size, generator=gen),
        "refs": torch.rand(batch, n_refs, 3, size, size, generator=gen),
        "target": torch.rand(batch, 3, size, size, generator=gen),
    }


@pytest.mark.parametrize("name", sorted(n for n in MODELS if capabilities(model_class(n)).kind in ("generator", "reference")))
@pytest.mark.parametrize("size", [32, 64])
def test_models_follow_the_protocol(name, size):
    config = ModelConfig(image_size=size, n_refs=2, channels=8)
    model = build_model(name, config).eval()
    batch = _batch(size, 2)
    pred, log_scale = model(batch["audio"], batch["masked"], batch["refs"])
    assert pred.shape == (2, 3, size, size) and pred.dtype == torch.float32
    assert log_scale.shape == (2, 1, size, size)
    assert 0 <= pred.min() and pred.max() <= 1
    assert torch.isfinite(log_scale).all()


def test_copyref_returns_the_first_reference():
    model = build_model("copyref", ModelConfig(image_size=32, n_refs=2))
    batch = _batch(32, 2)
    pred, log_scale = model(batch["audio"], batch["masked"], batch["refs"])
    assert torch.equal(pred, batch["refs"][:, 0])
    assert torch.unique(log_scale).numel() == 1


def test_pasteref_keeps_the_given_pixels_and_pastes_the_reference_below():
    model = build_model("pasteref", ModelConfig(image_size=32, n_refs=2))
    batch = _batch(32, 2)
    masked = batch["target"].clone()
    masked[..., 16:, :] = 0
    pred, _ = model(batch["audio"], masked, batch["refs"])
    assert torch.equal(pred[..., :16, :], batch["target"][..., :16, :])
    assert torch.equal(pred[..., 16:, :], batch["refs"][:, 0, :, 16:, :])


def test_unknown_model_suggests_the_closest_name():
    with pytest.raises(UnknownModelError, match="Did you mean 'julnet'"):
        model_class("julnt")


def test_lun1_is_minimised_where_scale_equals_error():
    pred, target = torch.zeros(1, 3, 1, 1), torch.full((1, 3, 1, 1), 0.2)
    values = {s: uncertainty_l1(pred, target, torch.full((1, 1, 1, 1), math.log(s))).item()
              for s in (0.05, 0.1, 0.2, 0.4, 0.8)}
    assert min(values, key=values.get) == 0.2


def test_checkpoint_round_trip_needs_no_flags(tmp_path):
    config = RunConfig(model="julnet", net=ModelConfig(image_size=32, n_refs=2, channels=8),
                       train=TrainConfig(steps=1))
    model = build_model("julnet", config.net)
    path = tmp_path / "ck.pt"
    save_checkpoint({"model": model.state_dict(), "config": config.to_dict(), "step": 1}, path)
    loaded, loaded_config, _ = load_checkpoint(path)
    assert loaded_config == config
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)


def test_bad_checkpoints_fail_with_one_clear_message(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="garbage.pt: not a readable"):
        load_checkpoint(garbage)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
