"""CSIM: the ArcFace IResNet in the official layout with random weights (no registry package ships ArcFace
weights): a frame against itself is 1, and another identity (a different real clip) is clearly lower than
another frame of the same clip; the user-file path is checked by key and shape."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from bench.metrics import identity
from bench.weights import store as weights

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"


def _random_arcface(depth: int, calibrate: np.ndarray | None = None, seed: int = 0) -> identity.IResNet:
    """Random official-layout weights; BatchNorm statistics taken from ``calibrate`` so activations stay O(1)."""
    torch.manual_seed(seed)
    model = identity.IResNet(depth)
    if calibrate is not None:
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):  # the embedding BN stays (0, 1): no centring on 6 crops
                module.momentum = 1.0
        with torch.no_grad():
            model.train()(identity.preprocess(calibrate))
    return model.eval()


def _centre_crops(path: Path, indices: tuple[int, ...]) -> np.ndarray:
    """Square centre crops (the upper middle, where these clips' faces are) of the given frames, 160 x 160 RGB."""
    av = pytest.importorskip("av")
    out = []
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in indices:
                rgb = frame.to_ndarray(format="rgb24")
                h, w = rgb.shape[:2]
                side = min(h, w) // 2
                top, left = max(0, h // 3 - side // 2), (w - side) // 2
                crop = torch.from_numpy(rgb[top: top + side, left: left + side]).permute(2, 0, 1)[None].float()
                crop = torch.nn.functional.interpolate(crop, size=(160, 160), mode="bilinear", antialias=True)
                out.append(crop[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy())
            if i >= max(indices):
                break
    return np.stack(out)


@pytest.fixture(scope="module")
def clips() -> dict[str, np.ndarray]:
    paths = sorted(REAL.glob("*.mp4"))
    if len(paths) < 3:
        pytest.skip(f"needs real clips in {REAL}")
    return {p.stem: _centre_crops(p, (0, 25)) for p in paths[:3]}


def test_csim_known_answers_on_real_frames(clips):
    names = list(clips)
    model = _random_arcface(18, np.concatenate([clips[n] for n in names]))
    a, b, c = (clips[n] for n in names)
    assert identity.csim(model, a[:1], a[0]) == pytest.approx([1.0], abs=1e-6)
    same_clip = float(identity.csim(model, a[1:2], a[0])[0])
    others = [float(identity.csim(model, other[:1], a[0])[0]) for other in (b, c)]
    assert same_clip > max(others) + 0.1, (same_clip, others)
    per_frame = identity.csim(model, np.concatenate([a, b]), a[0])
    assert per_frame.shape == (4,) and np.all(per_frame <= 1 + 1e-9)
    # several source crops: the mean embedding, still most similar to its own clip
    assert identity.csim(model, a[1:2], a)[0] > identity.csim(model, b[:1], a)[0]


def test_preprocess_matches_arcface_torch_scaling():
    crop = np.zeros((112, 112, 3), np.uint8)
    crop[..., 0] = 255
    x = identity.preprocess(crop)
    assert x.shape == (1, 3, 112, 112)
    assert torch.all(x[0, 0] == 1.0) and torch.all(x[0, 1:] == -1.0)  # RGB order, (x / 255 - 0.5) / 0.5
    with pytest.raises(ValueError, match="uint8"):
        identity.preprocess(np.zeros((112, 112, 3), np.float32))


def test_depth_is_read_off_the_keys():
    for depth, blocks in identity.DEPTHS.items():
        keys = {f"layer{s + 1}.{b}.conv1.weight": None for s, n in enumerate(blocks) for b in range(n)}
        assert identity.depth_of(keys) == depth
    with pytest.raises(ValueError, match="match no IResNet depth"):
        identity.depth_of({"layer1.0.conv1.weight": None})


def test_user_file_checked_by_key_and_shape(tmp_path):
    model = _random_arcface(18, seed=1)
    official = tmp_path / "backbone.pth"
    torch.save({k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}, official)
    cache = tmp_path / "cache"
    weights.fetch(["arcface"], {"arcface": official}, directory=cache)
    assert weights.verify(cache)["arcface"] == "ok"
    loaded = identity.load_arcface(weights.require("arcface", cache))
    x = identity.preprocess(np.random.default_rng(0).integers(0, 256, (2, 112, 112, 3), dtype=np.uint8))
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    state = model.state_dict()
    state["fc.weight"] = torch.zeros(512, 10)
    torch.save(state, tmp_path / "wrong.pth")
    with pytest.raises(identity.IdentityWeightsError, match=r"wrong.pth: .*fc.weight \(512, 10\)"):
        weights.fetch(["arcface"], {"arcface": tmp_path / "wrong.pth"}, directory=tmp_path / "c2")
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(identity.IdentityWeightsError, match="junk.pth: cannot be read"):
        weights.fetch(["arcface"], {"arcface": tmp_path / "junk.pth"}, directory=tmp_path / "c3")
    assert not (tmp_path / "c2" / "arcface_backbone.pth").exists()
    assert weights.verify(tmp_path / "c3")["arcface"] == "absent (optional)"
