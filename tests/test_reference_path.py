"""The full-resolution reference path (bench.blocks.reference_path) and its use by every generator."""
from __future__ import annotations

import math

import pytest
import torch

from bench.api import ModelConfig
from bench.blocks.masks import mouth_mask
from bench.blocks.reference_path import ReferencePixelPath
from bench.models import build_model

GENERATORS = ("julnet", "dinet", "wav2lip")


def test_starts_as_a_blend_of_the_unwarped_references():
    torch.manual_seed(0)
    path = ReferencePixelPath(in_channels=6, n_refs=3, generated_share=0.1)
    features, refs, rgb = torch.randn(2, 6, 16, 16), torch.rand(2, 3, 3, 16, 16), torch.rand(2, 3, 16, 16)
    blended, weights = path(features, refs, rgb)
    assert torch.allclose(weights[:, -1], torch.full((2, 16, 16), 0.1), atol=1e-6)
    expected = 0.9 * refs.mean(1) + 0.1 * rgb
    assert torch.allclose(blended, expected, atol=1e-5)


def test_a_constant_flow_shifts_the_chosen_reference_by_a_whole_pixel():
    size = 16
    path = ReferencePixelPath(in_channels=1, n_refs=2)
    with torch.no_grad():
        # all weight on reference 1; its flow moves the sampling point 1 pixel right (2 / size normalised)
        path.blend.bias.copy_(torch.tensor([-30.0, 30.0, -30.0]))
        shift = 2.0 / size
        path.flow.bias.copy_(torch.tensor([0.0, 0.0, math.atanh(shift / path.max_shift), 0.0]))
    refs = torch.rand(1, 2, 3, size, size)
    blended, _ = path(torch.zeros(1, 1, size, size), refs, torch.zeros(1, 3, size, size))
    # output pixel x samples reference pixel x + 1 (the border repeats the last column)
    assert torch.allclose(blended[..., :-1], refs[:, 1, :, :, 1:], atol=1e-5)
    assert torch.allclose(blended[..., -1:], refs[:, 1, :, :, -1:], atol=1e-5)


def test_gradients_reach_the_flow_and_the_blend():
    torch.manual_seed(1)
    path = ReferencePixelPath(in_channels=4, n_refs=2)
    features = torch.randn(2, 4, 12, 12)
    refs = torch.rand(2, 2, 3, 12, 12)  # textured, so a flow changes the output
    blended, _ = path(features, refs, torch.rand(2, 3, 12, 12))
    (blended - torch.rand_like(blended)).abs().mean().backward()
    assert path.flow.weight.grad.abs().sum() > 0
    assert path.blend.weight.grad.abs().sum() > 0


def test_refuses_another_number_of_references():
    path = ReferencePixelPath(in_channels=4, n_refs=3)
    with pytest.raises(ValueError, match="3 references, got 2"):
        path(torch.zeros(1, 4, 8, 8), torch.zeros(1, 2, 3, 8, 8), torch.zeros(1, 3, 8, 8))


@pytest.mark.parametrize("name", GENERATORS)
def test_a_new_generator_starts_near_the_paste_floor(name):
    """With the path on, an untrained generator's generated rows are mostly the references' pixels: when the
    references equal the target, the output is within the decoder's small share of the target."""
    torch.manual_seed(0)
    config = ModelConfig(image_size=32, n_refs=2, channels=8)
    model = build_model(name, config).eval()
    target = torch.rand(2, 3, 32, 32)
    mask = mouth_mask(32, 32)
    with torch.no_grad():
        pred, _ = model(torch.randn(2, 80, 16), target * (1 - mask), target[:, None].expand(-1, 2, -1, -1, -1))
    region = mask.bool().expand_as(pred)
    error = (pred - target).abs()[region]
    assert error.max() <= 0.1 + 1e-5  # at most the decoder's share (0.1) of a [0, 1] difference
    off = build_model(name, ModelConfig(image_size=32, n_refs=2, channels=8, reference_path=False)).eval()
    assert off.reference_path is None and model.reference_path is not None
    with torch.no_grad():
        painted, _ = off(torch.randn(2, 80, 16), target * (1 - mask), target[:, None].expand(-1, 2, -1, -1, -1))
    assert (painted - target).abs()[region].mean() > 5 * error.mean()  # without it, the decoder paints everything


def _batch(size: int = 32, n_refs: int = 2) -> dict[str, torch.Tensor]:
    target = torch.rand(2, 3, size, size)
    mask = mouth_mask(size, size)
    return {"audio": torch.randn(2, 80, 16), "masked": target * (1 - mask), "target": target,
            "refs": torch.rand(2, n_refs, 3, size, size)}


def _off_and_on(name: str, **setting: float) -> tuple:
    """The same generator without and with one loss setting, the same batch, and both (loss, logs) on it."""
    models = []
    for settings in ({}, setting):
        torch.manual_seed(0)
        models.append(build_model(name, ModelConfig(image_size=32, n_refs=2, channels=8, **settings)).train())
    batch = _batch()
    return (*models, batch, *[model.training_loss(batch) for model in models])


@pytest.mark.parametrize("name", GENERATORS)
def test_blend_entropy_term_is_the_blend_s_mean_entropy_and_sharpens_it(name):
    """``blend_entropy``: the loss gains weight x the blend's mean entropy over the generated pixels (at the
    start, that of the path's initial weights), its gradient reaches the blend, and a few steps on
    it alone make the blend more peaked. Off (0), no term and no logged entropy."""
    off, on, batch, (loss_off, logs_off), (loss_on, logs_on) = _off_and_on(name, blend_entropy=0.5)
    assert "blend_entropy" not in logs_off
    n_refs = on.reference_path.n_refs  # the path's references (wav2lip: 1) share 0.9, the decoder 0.1
    start = torch.tensor([0.9 / n_refs] * n_refs + [0.1])
    assert logs_on["blend_entropy"] == pytest.approx(float(-(start * start.log()).sum()), abs=1e-4)
    assert float((loss_on - loss_off).detach()) == pytest.approx(0.5 * logs_on["blend_entropy"], rel=1e-4)
    optimiser = torch.optim.SGD(on.reference_path.blend.parameters(), lr=0.5)
    for _ in range(5):  # the entropy term alone (the batch's pixel loss also moves the blend, so isolate it)
        on.training_loss(batch)
        optimiser.zero_grad()
        on._blend_entropy[:, mouth_mask(32, 32)[0, 0].bool()].mean().backward()
        optimiser.step()
    assert on.training_loss(batch)[1]["blend_entropy"] < logs_on["blend_entropy"] - 0.05
    # with mouth boxes the term leaves the box out: the decoder may still be mixed in where no reference is right
    box = torch.zeros(2, 1, 32, 32)
    box[:, :, 18:30, 8:24] = 1.0
    logs_box = on.training_loss({**batch, "mouth": box})[1]
    outside = mouth_mask(32, 32)[0, 0].bool() & (box[:, 0] < 0.5)
    assert logs_box["blend_entropy"] == pytest.approx(on._blend_entropy[outside].mean().item(), rel=1e-6)
    assert logs_box["blend_entropy"] != pytest.approx(on._blend_entropy[:, 16:].mean().item(), rel=1e-3)
    on.eval()
    with torch.no_grad():
        on(batch["audio"], batch["masked"], batch["refs"])
    assert on._blend_entropy is None  # evaluation computes no term


@pytest.mark.parametrize("name", GENERATORS)
def test_decoder_weight_trains_the_decoder_s_own_rgb(name):
    """``decoder_weight``: the loss gains weight x the L1 of the decoder's RGB (before the blend) on the generated
    pixels, so the decoder's gradient no longer scales with its share of the blend."""
    off, on, batch, (loss_off, logs_off), (loss_on, logs_on) = _off_and_on(name, decoder_weight=2.0)
    assert "decoder_l1" not in logs_off
    region = mouth_mask(32, 32)[0, 0].bool()
    want = (on._decoder_rgb - batch["target"]).abs()[..., region].mean()
    assert logs_on["decoder_l1"] == pytest.approx(want.item(), rel=1e-6)
    assert float((loss_on - loss_off).detach()) == pytest.approx(2.0 * logs_on["decoder_l1"], rel=1e-4)
    # the decoder's gradient: with the term it is far larger than through its 10% share of the blend alone
    grads = []
    for model, loss in ((off, loss_off), (on, loss_on)):
        model.zero_grad()
        loss.backward()
        grads.append(sum(p.grad.abs().sum() for p in model.to_rgb.parameters()))  # every generator's RGB layer
    assert grads[1] > grads[0]
