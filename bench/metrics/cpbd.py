"""CPBD: cumulative probability of blur detection (Narvekar & Karam, IEEE TIP 2011), higher is sharper.

A vectorised re-implementation of the registry's reference package (`cpbd` 1.0.7 / `cpbd-py312` 1.0.3,
itself a port of the authors' MATLAB code), step for step, so it returns the same number:

1. blocks: Canny edges (scikit-image's `canny` with its defaults on the float image: sigma 1, gaussian with
   constant zero padding and bleed-over correction, bilinear non-maximum suppression, hysteresis 0.1/0.2)
   decide which 64 x 64 blocks are edge blocks (more than 0.2% edge pixels); partial blocks are ignored;
2. edges to measure: the Octave-style vertical Sobel (|g|^2 above 2 sqrt(mean |g|^2), simple thinning);
3. widths (Marziliano): at each such edge whose gradient angle (np.gradient) rounds to 0 or +-180 degrees,
   the number of pixels along the row over which intensity keeps rising / falling on each side (at most 101
   each side; the image's outer rows and columns are never measured);
4. per edge block, the just noticeable width is 5 for contrast (max - min) <= 50, else 3, and each edge's
   probability of blur detection is 1 - exp(-(w / w_JNB)^3.6); CPBD is the share of edges whose probability,
   rounded to a percent, is at most 63%.

The reference's quirks are kept: an image whose every gradient angle is 0 has no widths (CPBD 0), images
smaller than one block give 0, and an edge block with no measured width still counts as an edge block.
No scikit-image at run time: the Canny steps are re-done with scipy.ndimage and checked against
scikit-image in tests/test_cpbd.py.
"""
from __future__ import annotations

import numpy as np
import scipy.ndimage as ndi

BLOCK = 64
THRESHOLD = 0.002  # share of Canny edge pixels that makes an edge block
BETA = 3.6
MAX_MARGIN = 100  # the reference scans at most 101 pixels each side of an edge
CUMULATIVE_BINS = 64  # P(blur detection) rounded to a percent, summed over 0..63 %
# scikit-image passes its 0.1 low threshold through a C float
_CANNY_LOW = float(np.float32(0.1))
_CANNY_HIGH = 0.2


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """H x W x 3 uint8 RGB -> uint8 luma as PIL's convert('L') (ITU-R 601-2, fixed point), which is how the
    reference's command line reads an image."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected H x W x 3 uint8 RGB, got {rgb.dtype} {rgb.shape}")
    r, g, b = (rgb[..., i].astype(np.uint32) for i in range(3))
    return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.uint8)


# ----------------------------------------------------------------------------------------------- Canny

def _nonmax_bilinear(isobel: np.ndarray, jsobel: np.ndarray, magnitude: np.ndarray) -> np.ndarray:
    """scikit-image's `_nonmaximum_suppression_bilinear` (interior pixels, low threshold), vectorised with the
    same arithmetic so ties resolve identically."""
    out = np.zeros_like(magnitude)
    i, j, m = isobel[1:-1, 1:-1], jsobel[1:-1, 1:-1], magnitude[1:-1, 1:-1]

    def nb(di: int, dj: int) -> np.ndarray:  # magnitude[x + di, y + dj] over the interior
        h, w = magnitude.shape
        return magnitude[1 + di: h - 1 + di, 1 + dj: w - 1 + dj]

    ai, aj = np.abs(i), np.abs(j)
    down, left = i <= 0, j <= 0
    diag = (~down & ~left) | (down & left)  # gradient in the first / third quadrant
    with np.errstate(divide="ignore", invalid="ignore"):
        w_ji, w_ij = aj / ai, ai / aj

    def interp(w: np.ndarray, n1: np.ndarray, n2: np.ndarray) -> np.ndarray:
        return (n2 * w + n1 * (1.0 - w)) <= m

    keep = np.zeros(m.shape, dtype=bool)
    cases = [  # (pixels, w, plus neighbours, minus neighbours), as the Cython branches
        (diag & (ai > aj), w_ji, (nb(1, 0), nb(1, 1)), (nb(-1, 0), nb(-1, -1))),
        (diag & (ai <= aj), w_ij, (nb(0, 1), nb(1, 1)), (nb(0, -1), nb(-1, -1))),
        (~diag & (ai < aj), w_ij, (nb(0, 1), nb(-1, 1)), (nb(0, -1), nb(1, -1))),
        (~diag & (ai >= aj), w_ji, (nb(-1, 0), nb(-1, 1)), (nb(1, 0), nb(1, -1))),
    ]
    for pixels, w, plus, minus in cases:
        with np.errstate(invalid="ignore"):
            keep |= pixels & interp(w, *plus) & interp(w, *minus)
    keep &= m >= _CANNY_LOW
    out[1:-1, 1:-1] = np.where(keep, m, 0.0)
    return out


def canny(image: np.ndarray) -> np.ndarray:
    """Boolean edge map of a float image, as `skimage.feature.canny(image)` with its defaults."""
    image = np.asarray(image, dtype=np.float64)
    gauss = dict(sigma=1.0, mode="constant", cval=0.0, truncate=4.0)
    bleed = ndi.gaussian_filter(np.ones_like(image), **gauss) + np.finfo(np.float64).eps
    smoothed = ndi.gaussian_filter(image, **gauss) / bleed
    jsobel = ndi.sobel(smoothed, axis=1)
    isobel = ndi.sobel(smoothed, axis=0)
    magnitude = isobel * isobel
    magnitude += jsobel * jsobel
    np.sqrt(magnitude, out=magnitude)
    low_masked = _nonmax_bilinear(isobel, jsobel, magnitude)
    low = low_masked > 0
    labels, count = ndi.label(low, np.ones((3, 3), bool))
    if count == 0:
        return low
    good = np.zeros(count + 1, bool)
    good[np.unique(labels[low & (low_masked >= _CANNY_HIGH)])] = True
    return good[labels]


# ----------------------------------------------------------------------------------------------- widths

def sobel_edges(image: np.ndarray) -> np.ndarray:
    """The reference's Octave-style vertical-edge Sobel: thresholded squared response, simply thinned."""
    h1 = np.array([[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]]) / 4.0  # skimage HSOBEL_WEIGHTS
    h1 /= np.sum(np.abs(h1))
    strength = np.square(ndi.convolve(image, h1.T))
    strength[strength <= 2 * np.sqrt(np.mean(strength))] = 0
    padded = np.pad(strength, 1)
    centre = padded[1:-1, 1:-1]
    x = (centre > padded[1:-1, :-2]) & (centre > padded[1:-1, 2:])
    y = (centre > padded[:-2, 1:-1]) & (centre > padded[2:, 1:-1])
    return x | y


def _scan(image: np.ndarray, rows: np.ndarray, cols: np.ndarray, step: int, rising: bool) -> np.ndarray:
    """Per edge, the reference's width on one side: from the neighbour at ``step`` onwards, count the pixels over
    which intensity keeps rising (or falling) away from the edge, +1; at most MAX_MARGIN + 1 (the reference's
    loop runs out without a break there). Vectorised over edges; loops only as far as the longest run."""
    width = np.full(rows.shape, MAX_MARGIN + 1, dtype=np.int64)
    active = np.arange(rows.size)
    for margin in range(MAX_MARGIN + 1):
        if active.size == 0:
            break
        inner = cols[active] + step * (1 + margin)
        outer = inner + step
        inside = (outer >= 0) & (outer < image.shape[1])
        diff = np.zeros(active.size)
        diff[inside] = image[rows[active][inside], outer[inside]] - image[rows[active][inside], inner[inside]]
        # left of a rising edge (and right of a falling one) the scan goes on while the next pixel is darker
        keeps = inside & ((diff < 0) if rising == (step < 0) else (diff > 0))
        width[active[~keeps]] = margin + 1
        active = active[keeps]
    return width


def marziliano_widths(edges: np.ndarray, image: np.ndarray) -> np.ndarray:
    """Edge widths (0 off the measured edges), as the reference's `marziliano_method`."""
    height, width = image.shape
    widths = np.zeros(image.shape)
    gy, gx = np.gradient(image)
    # the reference measures nothing when every angle is 0; atan2(gy, gx) (gx != 0) is 0 only for gy == 0, gx > 0
    if height < 3 or width < 3 or not np.any((gx != 0) & ((gy != 0) | (gx < 0))):
        return widths
    rows, cols = np.nonzero(edges[1:-1, 1:-1])
    rows, cols = rows + 1, cols + 1
    gx_e, gy_e = gx[rows, cols], gy[rows, cols]
    with np.errstate(invalid="ignore"):
        angle = np.where(gx_e != 0, np.arctan2(gy_e, gx_e) * (180 / np.pi), 0.0)
    quantised = 45 * np.round(angle / 45)
    for keep, rising in ((quantised == 0, True), ((quantised == 180) | (quantised == -180), False)):
        r, c = rows[keep], cols[keep]
        widths[r, c] = _scan(image, r, c, -1, rising) + _scan(image, r, c, 1, rising)
    return widths


# ----------------------------------------------------------------------------------------------- metric

def _sharpness(image: np.ndarray, edges: np.ndarray, widths: np.ndarray) -> float:
    blocks_v, blocks_h = image.shape[0] // BLOCK, image.shape[1] // BLOCK
    if blocks_v == 0 or blocks_h == 0:
        return 0.0
    crop = (slice(0, blocks_v * BLOCK), slice(0, blocks_h * BLOCK))

    def tiles(a: np.ndarray) -> np.ndarray:  # (blocks_v, blocks_h, 64, 64)
        return a[crop].reshape(blocks_v, BLOCK, blocks_h, BLOCK).swapaxes(1, 2)

    edge_block = np.count_nonzero(tiles(edges), axis=(2, 3)) > BLOCK * BLOCK * THRESHOLD
    img_t = tiles(image)
    contrast = (img_t.max(axis=(2, 3)) - img_t.min(axis=(2, 3))).astype(np.int64)
    if np.any(contrast[edge_block] > 255):
        raise ValueError("CPBD expects intensities in [0, 255]")
    jnb = np.where(contrast <= 50, 5.0, 3.0)
    w_t = tiles(widths)
    sel = edge_block[:, :, None, None] & (w_t != 0)
    block_widths = w_t[sel]
    block_jnb = np.broadcast_to(jnb[:, :, None, None], w_t.shape)[sel]
    if block_widths.size == 0:
        return 0.0
    probability = 1 - np.exp(-np.abs(block_widths / block_jnb) ** BETA)
    hist = np.bincount(np.round(probability * 100).astype(np.int64), minlength=101).astype(np.float64)
    hist = hist / block_widths.size
    return float(np.sum(hist[:CUMULATIVE_BINS]))


def cpbd(image: np.ndarray) -> float:
    """CPBD of one gray image (H x W, uint8 or floats in [0, 255]); in [0, 1], higher is sharper."""
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"CPBD takes a 2-D gray image, got shape {image.shape}")
    image = image.astype(np.float64)
    edges = canny(image)
    widths = marziliano_widths(sobel_edges(image), image)
    return _sharpness(image, edges, widths)


def cpbd_frames(frames: np.ndarray) -> np.ndarray:
    """Per-frame CPBD of T x H x W gray or T x H x W x 3 RGB uint8 frames (RGB -> PIL 'L' luma)."""
    frames = np.asarray(frames)
    if frames.ndim == 4:
        frames = np.stack([to_gray(f) for f in frames])
    if frames.ndim != 3:
        raise ValueError(f"expected T x H x W (x 3) frames, got shape {frames.shape}")
    return np.array([cpbd(f) for f in frames], dtype=np.float64)
