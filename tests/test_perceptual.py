"""The VGG perceptual loss: provisioned weights only, zero on identical images, and it reaches training."""
import pytest
import torch
import torch.nn.functional as F

from bench.config import ModelConfig
from bench.models import build_model
from bench.weights.store import WeightsMissingError, load_state
from bench.blocks.perceptual import VGGPerceptual


def _images(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.interpolate(torch.rand(2, 3, 8, 8, generator=g), size=32, mode="bilinear", align_corners=False)


def test_perceptual_loss_uses_the_provisioned_vgg_and_orders_degradations(provisioned):
    loss = VGGPerceptual()
    assert torch.equal(loss.features[0].weight, load_state("vgg16_features")["0.weight"])
    x = _images()
    blurred = F.avg_pool2d(x, 3, stride=1, padding=1)
    noisy = (x + 0.2 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    assert loss(x, x).item() == pytest.approx(0.0, abs=1e-7)
    assert 0 < loss(blurred, x).item() < loss(noisy, x).item()


def test_generators_train_with_the_perceptual_term(provisioned):
    torch.manual_seed(0)
    model = build_model("julnet", ModelConfig(image_size=32, n_refs=2, channels=8, perceptual_weight=10.0))
    batch = {"audio": torch.randn(2, 80, 16), "masked": _images(1), "refs": torch.stack([_images(2), _images(3)], 1),
             "target": _images(4)}
    loss, logs = model.training_loss(batch)
    loss.backward()
    assert logs["perceptual"] > 0 and loss.item() > logs["lun2"]
    assert model.to_rgb.weight.grad.abs().sum() > 0
    assert not any(key.startswith("_vgg") for key in model.state_dict())  # frozen weights stay out of checkpoints


def test_missing_vgg_weights_stop_training_with_the_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setenv("TALKBENCH_WEIGHTS", str(tmp_path))
    model = build_model("wav2lip", ModelConfig(image_size=32, n_refs=2, channels=8, perceptual_weight=10.0))
    batch = {"audio": torch.randn(2, 80, 16), "masked": _images(1), "refs": _images(2)[:, None], "target": _images(4)}
    with pytest.raises(WeightsMissingError, match="bench weights fetch"):
        model.training_loss(batch)
