"""Does uncertainty notice a changing scene? Scores for frames and pixels labelled by a scene event.

Data made with scene dynamics (``bench data synth --conditions``, bench.data.synth.dynamics) label
each frame with the events it shows (``affected``, a bit per condition) and each pixel of those frames
(``affected_mask``). Two questions, per condition:

- frames: is a frame's mean u higher on affected frames than on the same clips' other frames?
  ``fail_auroc`` of frame-mean u for "affected" within the clips showing that condition (0.5: no
  signal). The same AUROC of frame-mean error says whether the event made the frames harder at all.
- pixels: within affected frames and the scored region, is u higher on the event's pixels than on
  the rest? The paired per-frame ratio mean u inside / mean u outside, and the same for the error;
  averaged over frames, with a clip-bootstrap CI (frames of one clip are not independent).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from bench.data.synth.dynamics import CONDITION_BITS  # the labels' bits, defined with the events
from bench.metrics.quality import fail_auroc
from bench.metrics.stats import clip_bootstrap_ci

FRAME_COLUMNS = ("affected", "unc_in_event", "unc_out_event", "err_in_event", "err_out_event", "unc_event_lift",
                 "err_event_lift")


def region_means(uncertainty: torch.Tensor, error: torch.Tensor, mask: torch.Tensor,
                 region: torch.Tensor) -> dict[str, np.ndarray]:
    """Per frame (B), the mean u and error on the event's pixels inside the scored region, and on the rest
    of the region. ``uncertainty``/``error``: B x H x W; ``mask``: B x H x W bool; ``region``: H x W bool.
    NaN where a side has no pixels."""
    inside = mask & region
    outside = ~mask & region
    n_in = inside.sum(dim=(1, 2)).double()
    n_out = outside.sum(dim=(1, 2)).double()

    def mean(values: torch.Tensor, where: torch.Tensor, count: torch.Tensor) -> np.ndarray:
        total = (values.double() * where).sum(dim=(1, 2))
        return torch.where(count > 0, total / count.clamp(min=1), torch.nan).numpy()

    means = {"unc_in_event": mean(uncertainty, inside, n_in), "unc_out_event": mean(uncertainty, outside, n_out),
             "err_in_event": mean(error, inside, n_in), "err_out_event": mean(error, outside, n_out)}
    with np.errstate(divide="ignore", invalid="ignore"):
        for side in ("unc", "err"):  # the per-frame lift the claims test: > 0 when the event's pixels read higher
            ratio = means[f"{side}_in_event"] / means[f"{side}_out_event"]
            means[f"{side}_event_lift"] = np.where(ratio > 0, np.log(ratio), np.nan)
    return means


def _ratio_entry(frames: pd.DataFrame, numerator: str, denominator: str, seed: int) -> dict[str, Any]:
    rows = frames[np.isfinite(frames[numerator]) & np.isfinite(frames[denominator]) & (frames[denominator] > 0)]
    if rows.empty:
        return {"value": float("nan"), "ci95": None, "n_frames": 0}
    ratio = (rows[numerator] / rows[denominator]).to_numpy(dtype=np.float64)
    ci = clip_bootstrap_ci(ratio, rows["clip_id"].to_numpy(), seed=seed)  # None with fewer than 2 clips
    return {"value": float(ratio.mean()), "ci95": ci, "n_frames": int(len(rows))}


def dynamics_block(frames: pd.DataFrame, seed: int = 0) -> dict[str, dict[str, Any]]:
    """Per condition present in ``frames`` (the scorer's per-frame rows with ``unc_mean``, ``err_mean``,
    ``clip_id`` and :data:`FRAME_COLUMNS`): the frame AUROCs of u and error for "affected", and the
    in/out-of-event ratios of u and error on affected frames. Empty without labelled frames."""
    if "affected" not in frames or not (frames["affected"] > 0).any():
        return {}
    block: dict[str, dict[str, Any]] = {}
    bits = frames["affected"].astype(int)
    for name, bit in CONDITION_BITS.items():
        clips = frames.loc[(bits & bit) > 0, "clip_id"].unique()
        if len(clips) == 0:
            continue
        rows = frames[frames["clip_id"].isin(clips)]
        hit = ((rows["affected"].astype(int) & bit) > 0).to_numpy()
        entry: dict[str, Any] = {"clips": int(len(clips)), "frames": int(len(rows)), "affected_frames": int(hit.sum())}
        if "unc_mean" in rows:
            entry["auroc_u"] = fail_auroc(rows["unc_mean"].to_numpy(), hit)
        entry["auroc_error"] = fail_auroc(rows["err_mean"].to_numpy(), hit)
        affected = rows[hit]
        if "unc_in_event" in affected:
            entry["u_ratio"] = _ratio_entry(affected, "unc_in_event", "unc_out_event", seed)
        entry["error_ratio"] = _ratio_entry(affected, "err_in_event", "err_out_event", seed)
        block[name] = entry
    return block
