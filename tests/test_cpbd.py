"""CPBD against the registry's reference package (`cpbd-py312`, the `cpbd` 1.0.7 algorithm) on real frames
and synthetic images, its Canny against scikit-image's, and the known answer that blur lowers it."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.ndimage as ndi

from bench.metrics import cpbd

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"


def _real_gray_frames(per_clip: int = 1, clips: int = 6) -> list[np.ndarray]:
    av = pytest.importorskip("av")
    paths = sorted(REAL.glob("*.mp4"))
    if not paths:
        pytest.skip(f"no real clips in {REAL}")
    frames = []
    for path in paths[:clips]:
        with av.open(str(path)) as container:
            for i, frame in enumerate(container.decode(video=0)):
                if i % 20 == 0:
                    frames.append(frame.to_ndarray(format="rgb24"))
                if len(frames) % per_clip == 0 and i % 20 == 0:
                    break
    return [cpbd.to_gray(f) for f in frames]


def _crops(frames: list[np.ndarray]) -> list[np.ndarray]:
    """A 1-block crop of the upper middle of each frame, and one odd-sized crop (partial blocks)."""
    out = []
    for g in frames:
        h, w = g.shape
        side = min(h, w) // 2
        top, left = max(0, h // 3 - side // 2), (w - side) // 2
        out.append(g[top: top + side, left: left + side])
        out.append(g[: 2 * 64 + 7, : 3 * 64 + 33])
    return out


def _synthetic(seed: int, shape: tuple[int, int]) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = ndi.zoom(rng.uniform(0, 255, (shape[0] // 8 + 1, shape[1] // 8 + 1)), 8, order=1)[: shape[0], : shape[1]]
    img[shape[0] // 3:, : shape[1] // 2] = rng.integers(0, 256)  # a flat patch and hard edges
    return np.clip(img + rng.normal(0, 4, shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return _real_gray_frames()  # these clips are 224 x 224 face crops


@pytest.fixture(scope="module")
def images(frames) -> list[np.ndarray]:
    return frames + _crops(frames) + [_synthetic(s, (150 + 20 * s, 190)) for s in range(3)]


def test_matches_reference_package(images):
    reference = pytest.importorskip("cpbd")  # cpbd-py312 (dev extra), the cpbd 1.0.7 algorithm
    diffs = [abs(cpbd.cpbd(img) - reference.compute(img)) for img in images]
    assert max(diffs) < 1e-12, diffs
    values = [cpbd.cpbd(img) for img in images]
    assert len(set(np.round(values, 6))) > len(values) // 2  # not a degenerate constant


def test_canny_matches_scikit_image(images):
    feature = pytest.importorskip("skimage.feature")
    for img in images:
        assert np.array_equal(cpbd.canny(img), feature.canny(img.astype(np.float64)))


def test_reference_quirks_kept():
    reference = pytest.importorskip("cpbd")
    flat = np.full((128, 128), 90, np.uint8)
    small = _synthetic(7, (60, 200))  # shorter than one block
    ramp = np.tile(np.arange(128, dtype=np.uint8)[:, None], (1, 128))  # vertical gradient only: every angle 0
    for img in (flat, small, ramp):
        assert cpbd.cpbd(img) == reference.compute(img)
    assert cpbd.cpbd(small) == 0.0


def test_blur_lowers_cpbd(frames):
    for frame in frames:
        image = frame.astype(np.float64)
        values = [cpbd.cpbd(np.clip(np.round(ndi.gaussian_filter(image, s) if s else image), 0, 255).astype(np.uint8))
                  for s in (0, 0.5, 1.0, 1.5, 3.0)]
        assert all(a > b for a, b in zip(values[:4], values[1:4])), values
        assert values[0] > 0.1 and values[-1] < 0.01, values


def test_to_gray_is_pils_luma():
    image = pytest.importorskip("PIL.Image")
    rgb = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    assert np.array_equal(cpbd.to_gray(rgb), np.asarray(image.fromarray(rgb).convert("L")))
    frames = np.stack([rgb, rgb[::-1]])
    assert np.array_equal(cpbd.cpbd_frames(frames), [cpbd.cpbd(cpbd.to_gray(f)) for f in frames])
    with pytest.raises(ValueError, match="2-D gray"):
        cpbd.cpbd(rgb)
