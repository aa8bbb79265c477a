"""JULNet's histogram loss (Lun2): make the uncertainty map's value distribution match the error's.

Per frame, both maps are divided by the same number, s = max(q_0.99(e), 1/255), set by the error
alone and held constant (no gradient): u == e then gives identical histograms and u == 2e does not,
so the loss keeps the scale that Lun1 learns, and one outlier pixel cannot stretch the range (a
per-map max would). Histograms have B = 11 equal bins over [0, 1]; values above 1 count in the top
bin. The loss is KL(P_err || P_unc), each histogram smoothed as (p + eps) / (1 + B*eps) with
eps = 1e-4, averaged over the frames of the batch. The evaluation metric ``bench.metrics.calibration.hist_kl``
uses the same normalisation, bins and smoothing with hard bins.

Soft binning: a Gaussian kernel normalised over the bins, i.e. a pixel's membership of bin j is
softmax_j(-(x - c_j)^2 / (2 h^2)) with centres c_j and bandwidth h (default half a bin width). Each
pixel adds exactly one unit of mass (no renormalisation, no leakage at the range ends), the map is
smooth (gradients everywhere, gradcheck-clean, unlike the kinks of a triangular kernel), and as
h -> 0 the nearest centre wins, which for equal bins *is* the hard histogram. Values far outside
[low, high] saturate in the end bins with vanishing gradient: Lun1 supplies that pull.
"""
from __future__ import annotations

import torch

HIST_BINS = 11
HIST_QUANTILE = 0.99
HIST_MIN_RANGE = 1.0 / 255.0
HIST_EPS = 1e-4


def soft_histogram(x: torch.Tensor, bins: int = HIST_BINS, low: float = 0.0, high: float = 1.0,
                   bandwidth: float | None = None) -> torch.Tensor:
    """Differentiable histogram over the last dimension of ``x`` (..., N) -> (..., bins), sums to 1."""
    width = (high - low) / bins
    h = 0.5 * width if bandwidth is None else bandwidth
    centres = low + width * (torch.arange(bins, dtype=x.dtype, device=x.device) + 0.5)
    logits = -((x.unsqueeze(-1) - centres) ** 2) / (2.0 * h * h)
    return torch.softmax(logits, dim=-1).mean(dim=-2)


def _smooth(p: torch.Tensor, eps: float) -> torch.Tensor:
    return (p + eps) / (1.0 + p.shape[-1] * eps)


def histogram_kl(err: torch.Tensor, unc: torch.Tensor, bins: int = HIST_BINS, quantile: float = HIST_QUANTILE,
                 min_range: float = HIST_MIN_RANGE, eps: float = HIST_EPS,
                 bandwidth: float | None = None) -> torch.Tensor:
    """Lun2: mean over frames of KL(P_err || P_unc), differentiable w.r.t. ``unc``, >= 0.

    ``err`` and ``unc`` are B x H x W or B x 1 x H x W (the channel-mean |error| and the scale u).
    Zero when both maps have the same values (any arrangement of them).
    """
    if err.shape != unc.shape:
        raise ValueError(f"err shape {tuple(err.shape)} != unc shape {tuple(unc.shape)}")
    err = err.detach().reshape(err.shape[0], -1)
    unc = unc.reshape(unc.shape[0], -1)
    top = torch.quantile(err.float(), quantile, dim=1, keepdim=True).to(err.dtype).clamp_min(min_range)
    p = _smooth(soft_histogram(err / top, bins, bandwidth=bandwidth), eps)
    q = _smooth(soft_histogram(unc / top, bins, bandwidth=bandwidth), eps)
    kl = (p * (p.log() - q.log())).sum(dim=-1)
    return kl.clamp_min(0.0).mean()
