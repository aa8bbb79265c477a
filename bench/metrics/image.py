"""Per-frame image metrics on uint8-valued frames, batched in torch.

Both follow scikit-image's definitions so values match published tables computed with it:
PSNR with data range 255; SSIM with an 11x11 Gaussian window (sigma 1.5, truncate 3.5),
K1 = 0.01, K2 = 0.03, population covariances (``use_sample_covariance=False``), the mean taken over
the interior where the window fits (skimage crops the same border), averaged over RGB channels.
An image smaller than the window in either dimension has no such interior: scikit-image raises,
here its SSIM is NaN (PSNR is still defined), so one tiny crop or frame never stops a whole run.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

DATA_RANGE = 255.0
CPU_CHUNK = 4  # frames per SSIM pass on the CPU: five float64 maps of 4 frames stay in cache (~6 MB at 256 px)


def psnr(pred: torch.Tensor, target: torch.Tensor, data_range: float = DATA_RANGE) -> torch.Tensor:
    """B x C x H x W -> B values in dB (inf for identical frames)."""
    mse = ((pred.double() - target.double()) ** 2).flatten(1).mean(1)
    return 10.0 * torch.log10(data_range**2 / mse)


def gaussian_window(sigma: float = 1.5, truncate: float = 3.5) -> torch.Tensor:
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    weights = torch.exp(-0.5 * (x / sigma) ** 2)
    return weights / weights.sum()


def _valid_blur_matrix(size: int, window: torch.Tensor) -> torch.Tensor:
    """(size - k + 1) x size banded matrix: row i holds the window at columns i ... i + k - 1."""
    k = window.numel()
    rows = torch.arange(size - k + 1)
    matrix = torch.zeros(size - k + 1, size, dtype=window.dtype, device=window.device)
    matrix[rows[:, None], rows[:, None] + torch.arange(k)] = window
    return matrix


def _blur_valid_numpy(image: np.ndarray, window: np.ndarray) -> np.ndarray:
    """The separable valid blur with scipy.ndimage (what scikit-image runs, then crops): C loops over lines."""
    r = window.size // 2
    image = ndimage.correlate1d(image, window, axis=-1, mode="constant")[..., r:-r]
    return ndimage.correlate1d(image, window, axis=-2, mode="constant")[..., r:-r, :]


def _ssim_numpy(x: np.ndarray, y: np.ndarray, window: np.ndarray, data_range: float) -> np.ndarray:
    """SSIM of a few float64 frames (B x C x H x W) on the CPU; the same formula as ``ssim`` below."""
    mu_x, mu_y = _blur_valid_numpy(x, window), _blur_valid_numpy(y, window)
    var_x = _blur_valid_numpy(x * x, window) - mu_x**2
    var_y = _blur_valid_numpy(y * y, window) - mu_y**2
    cov = _blur_valid_numpy(x * y, window) - mu_x * mu_y
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    numerator = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    denominator = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    return (numerator / denominator).reshape(len(x), -1).mean(1)


def ssim(pred: torch.Tensor, target: torch.Tensor, data_range: float = DATA_RANGE) -> torch.Tensor:
    """B x C x H x W -> B mean SSIM values; NaN where the image is smaller than the 11x11 window."""
    window = gaussian_window().to(pred.device)
    if min(pred.shape[-2:]) < window.numel():  # no valid window position (scikit-image raises here)
        return torch.full(pred.shape[:1], float("nan"), dtype=torch.float64, device=pred.device)
    if pred.device.type == "cpu":
        # On the CPU, scipy's separable filter a few frames at a time (benchmarks/bench_metrics.py: ~3x the
        # banded matrix products below at 256 px, and ~2x scikit-image, which loops over frames in Python).
        kernel = window.numpy()
        values = [_ssim_numpy(p.double().numpy(), t.double().numpy(), kernel, data_range)
                  for p, t in zip(pred.detach().split(CPU_CHUNK), target.detach().split(CPU_CHUNK))]
        return torch.from_numpy(np.concatenate(values)) if values else torch.zeros(0, dtype=torch.float64)
    x, y = pred.double(), target.double()
    # The separable valid blur as two banded matrix products: same values as a grouped convolution,
    # several times faster than one on an accelerator.
    rows = _valid_blur_matrix(x.shape[-2], window)
    cols = _valid_blur_matrix(x.shape[-1], window).T

    def blur(image: torch.Tensor) -> torch.Tensor:
        return rows @ image @ cols

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    numerator = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    denominator = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    return (numerator / denominator).flatten(1).mean(1)
