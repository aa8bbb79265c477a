"""What each metric is: the one table the scorer, summary.json, `bench compare`, the CLI tables and every
notebook read, and nothing else.

One row per metric name as it appears in summary.json, frames.parquet or clips.parquet:

* ``level``: how the reported value is formed. ``frame``: a per-frame value averaged over frames;
  ``clip``: a per-clip value averaged over clips; ``pooled``: one statistic over the pixels of every
  frame pooled (on a fixed subsample); ``set``: one statistic of the whole set of frames (FID, the
  per-frame quality indicators).
* ``higher_is_better``: the direction (None: a descriptive quantity with no better side).
* ``group``: ``image quality``, ``identity`` (the generated face against the source identity, and whether a
  face is found and tracked steadily), ``lip sync``, ``uncertainty`` (calibration of the per-pixel map) or
  ``quality indicator`` (the map's mean as a per-frame predictor of quality).
* ``note``: one line for tables and reports; ``reference``: the implementation or paper it follows.
* ``cap``: means are taken after clipping values to this (PSNR of identical frames is +inf).
* ``in_summary``: summary.json averages it (False: a per-frame / per-clip column only tables and
  comparisons show). The scorer writes summary.json's metrics in this table's order.
* ``headline``: one of the few metrics a report shows first in its group (the rest are folded) and the
  reports index lists per model (``HEADLINE``).

Imports nothing: the command line reads it without loading torch.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

Level = Literal["frame", "clip", "pooled", "set"]
GROUPS = ("image quality", "identity", "lip sync", "uncertainty", "quality indicator")


@dataclass(frozen=True)
class MetricSpec:
    name: str
    level: Level
    higher_is_better: bool | None
    group: str
    note: str
    reference: str
    cap: float | None = None
    in_summary: bool = True
    headline: bool = False


PSNR_CAP = 100.0  # dB: identical frames (PSNR = inf) count as 100 dB in every mean


def _spec(name: str, level: Level, higher: bool | None, group: str, note: str, reference: str,
          cap: float | None = None, in_summary: bool = True) -> MetricSpec:
    return MetricSpec(name, level, higher, group, note, reference, cap, in_summary)


# In the order summary.json lists them (and every table and report shows them).
_TABLE = (
    _spec("psnr", "frame", True, "image quality", "peak signal-to-noise ratio on uint8 frames (dB)",
          "skimage.metrics.peak_signal_noise_ratio, data_range=255", PSNR_CAP),
    _spec("ssim", "frame", True, "image quality", "structural similarity, 11x11 Gaussian window, sigma 1.5",
          "skimage.metrics.structural_similarity (gaussian_weights, use_sample_covariance=False)"),
    _spec("psnr_mouth", "frame", True, "image quality", "PSNR on the mouth box from the landmarks",
          "as psnr", PSNR_CAP),
    _spec("ssim_mouth", "frame", True, "image quality", "SSIM on the mouth box from the landmarks", "as ssim"),
    _spec("psnr_face", "frame", True, "image quality", "PSNR on the face box from the landmarks", "as psnr",
          PSNR_CAP),
    _spec("ssim_face", "frame", True, "image quality", "SSIM on the face box from the landmarks", "as ssim"),
    _spec("lpips", "frame", False, "image quality", "learned perceptual distance, AlexNet backbone",
          "lpips package v0.1 (Zhang et al. 2018)"),
    _spec("lpips_face", "frame", False, "image quality", "LPIPS on the face box, both crops resized to 128 x 128",
          "as lpips"),
    _spec("cpbd", "frame", True, "image quality", "sharpness: cumulative probability of blur detection on the "
          "generated face crop, gray (no ground truth needed)", "Narvekar & Karam 2011; the cpbd package 1.0.7"),
    _spec("csim", "frame", True, "identity", "cosine similarity of ArcFace embeddings, generated face crop vs the "
          "source identity (unaligned crops)", "InsightFace arcface_torch IResNet (Deng et al. 2019)"),
    _spec("lmd", "frame", False, "lip sync", "lip-landmark distance / inter-ocular distance (MediaPipe face mesh)",
          "Chen et al. 2018"),
    _spec("ause", "frame", False, "uncertainty", "area between the sparsification curve and the oracle's",
          "Ilg et al. 2018; per-frame raw-MAE variant (Poggi et al. 2020)"),
    _spec("aurg", "frame", True, "uncertainty", "area between the random curve and the sparsification curve",
          "Poggi et al. 2020"),
    _spec("nll", "frame", False, "uncertainty", "Laplace negative log-likelihood of the error",
          "mean(log 2u + |e|/u)"),
    _spec("nll_gaussian", "frame", False, "uncertainty", "Gaussian negative log-likelihood with sigma = u",
          "mean(0.5 log 2 pi u^2 + e^2 / 2u^2)"),
    _spec("crps", "frame", False, "uncertainty", "CRPS of Laplace(0, u) at the error",
          "Gneiting & Raftery 2007, Laplace closed form"),
    _spec("hist_kl", "frame", False, "uncertainty", "KL between error and uncertainty histograms (Lun2, hard bins)",
          "JULNet (arXiv 2504.18810)"),
    # lower is sharper: better only together with good calibration, but summary.json has always said so
    _spec("sharpness", "frame", False, "uncertainty", "mean predicted scale u (lower is sharper)",
          "uncertainty-toolbox's sharpness"),
    _spec("unc_spearman", "pooled", True, "uncertainty", "rank correlation of u and e over generated pixels",
          "scipy.stats.spearmanr"),
    _spec("unc_pearson", "pooled", True, "uncertainty", "linear correlation of u and e over generated pixels",
          "numpy.corrcoef"),
    _spec("ause_pooled", "pooled", False, "uncertainty", "AUSE over all generated pixels at once", "Ilg et al. 2018"),
    _spec("miscal_area", "pooled", False, "uncertainty", "mean |observed - expected| coverage of central intervals",
          "uncertainty-toolbox's mean absolute calibration error"),
    _spec("rms_cal_error", "pooled", False, "uncertainty", "RMS of observed - expected coverage",
          "uncertainty-toolbox's root-mean-squared calibration error"),
    _spec("unc_frame_spearman", "set", True, "quality indicator", "rank correlation of mean u and mean e across frames",
          "scipy.stats.spearmanr"),
    _spec("unc_psnr_spearman", "set", True, "quality indicator", "minus the rank correlation of mean u and PSNR",
          "scipy.stats.spearmanr"),
    _spec("unc_lpips_spearman", "set", True, "quality indicator", "rank correlation of mean u and LPIPS",
          "scipy.stats.spearmanr"),
    _spec("fail_auroc", "set", True, "quality indicator", "AUROC of mean u for the worst 10% of frames by PSNR",
          "sklearn.metrics.roc_auc_score"),
    _spec("fail_auprc", "set", True, "quality indicator", "average precision of mean u for the worst 10% by PSNR",
          "sklearn.metrics.average_precision_score"),
    _spec("psnr_r2", "set", True, "quality indicator", "R^2 of PSNR ~ a + b ln(mean u)", "least squares"),
    _spec("fid", "set", False, "image quality", "Frechet distance of InceptionV3 pool3 features (every frame unless "
          "--fid-every N; summary.json's frame_stride says which)",
          "pytorch-fid"),
    _spec("fvd", "set", False, "image quality", "Frechet distance of I3D Kinetics-400 logits of non-overlapping "
          "16-frame windows (n counts windows)", "Unterthiner et al. 2018 (TF-Hub i3d-kinetics-400)"),
    _spec("lse_c", "clip", True, "lip sync", "lip-sync confidence, official SyncNet",
          "syncnet_python (official syncnet_v2 weights)"),
    _spec("lse_d", "clip", False, "lip sync", "lip-sync distance, official SyncNet",
          "syncnet_python (official syncnet_v2 weights)"),
    _spec("lse_c_local", "clip", True, "lip sync", "lip-sync confidence, talkbench's own expert (not comparable "
          "with published LSE-C)", "syncnet_python's offset search on the project's expert"),
    _spec("lse_d_local", "clip", False, "lip sync", "lip-sync distance, talkbench's own expert (not comparable "
          "with published LSE-D)", "syncnet_python's offset search on the project's expert"),
    # The local expert's own ceiling and floor on the same clips (reference rows: they say whether the judge
    # discriminates at all; no direction, they rank no model)
    _spec("lse_c_local_gt", "clip", None, "lip sync", "reference: the local expert's LSE-C on the ground-truth "
          "frames with their own audio (its ceiling on this data)", "bench.metrics.sync.clip_sync"),
    _spec("lse_c_local_shifted", "clip", None, "lip sync", "reference: the local expert's LSE-C on the ground "
          "truth with the audio moved by half the clip, beyond the offset search (its floor)",
          "bench.metrics.sync.clip_sync"),
    # Without ground truth too: is there one face, and does its box stay put (a box that jumps is a failure)
    _spec("face_found", "clip", True, "identity", "share of the clip's generated frames where a face is found",
          "MediaPipe face mesh"),
    _spec("box_jitter", "clip", False, "identity", "stability of the tracked face box: mean frame-to-frame "
          "displacement of its centre / its diagonal", "talkbench"),
    # per-frame / per-clip columns that summary.json does not average but tables and comparisons show
    _spec("err_mean", "frame", False, "image quality", "mean absolute error on [0, 1] over the scored region",
          "mean |pred - gt|", in_summary=False),
    _spec("unc_mean", "frame", None, "uncertainty", "mean predicted scale u over the scored region", "mean u",
          in_summary=False),
    _spec("av_offset", "clip", None, "lip sync", "audio-video offset in frames at the best sync (official SyncNet)",
          "syncnet_python", in_summary=False),
    _spec("av_offset_local", "clip", None, "lip sync", "audio-video offset in frames, talkbench's own expert",
          "syncnet_python's offset search", in_summary=False),
    # Scene dynamics (synthetic data with conditions; bench.metrics.dynamics): frames that show an event only
    _spec("unc_event_lift", "frame", True, "uncertainty", "log(mean u on a scene event's pixels / mean u on the rest "
          "of the scored region), frames showing the event", "bench.metrics.dynamics", in_summary=False),
    _spec("err_event_lift", "frame", None, "image quality", "log(mean error on a scene event's pixels / mean error "
          "on the rest of the scored region), frames showing the event", "bench.metrics.dynamics", in_summary=False),
)
# The metrics reports lead with: what papers report (image quality, lip sync) and the main calibration and
# quality-indicator figures; every other metric is folded under them. The local expert's ceiling and floor
# (its LSE-C on the ground truth, and on the ground truth with the audio shifted) stand beside its LSE-C, so a
# reader sees at once whether the judge separates sync from no sync.
_HEADLINE = frozenset({"psnr", "ssim", "lpips", "cpbd", "fid", "fvd", "csim", "lmd", "lse_c", "lse_d", "lse_c_local", "lse_d_local",
                       "lse_c_local_gt", "lse_c_local_shifted", "ause", "aurg", "unc_spearman", "miscal_area", "nll", "fail_auroc"})
METRICS: dict[str, MetricSpec] = {spec.name: replace(spec, headline=spec.name in _HEADLINE) for spec in _TABLE}
ORDER: tuple[str, ...] = tuple(METRICS)
HEADLINE: tuple[str, ...] = tuple(name for name, row in METRICS.items() if row.headline)  # in table order

FRAME_METRICS = ("psnr", "ssim", "err_mean", "lpips", "lmd")  # per-frame metrics `bench score --metric` prints

# Notes summary.json carries when the run has these metrics (their wording is part of the results).
SUMMARY_NOTES = {
    "lmd": ("lmd: mean distance between the 40 lip-contour points of MediaPipe's face mesh on the generated "
            "and the ground-truth frame, divided by the ground truth's inter-ocular distance; frames where "
            "either side has no face are left out (n counts the frames scored)"),
    "csim": ("csim: cosine similarity of ArcFace embeddings (the provisioned arcface weights) of the generated "
             "face crop and the source identity's crops, resized to 112 x 112 without 5-point alignment: "
             "comparable within talkbench, not with published CSIM"),
    "csim_missing": ("csim: not computed: it needs the ArcFace weights (bench weights fetch --from-file "
                     "arcface=PATH) and face boxes from landmarks"),
    "fvd": ("fvd: I3D (TF-Hub i3d-kinetics-400) logits of non-overlapping 16-frame windows of each clip, "
            "Frechet distance of real and generated windows; n counts windows, FVD is biased by their number"),
    "fvd_missing": ("fvd: not computed: it needs the I3D weights (bench weights fetch) and clips of at least "
                    "16 frames"),
    "lse_local": ("lse_c_local / lse_d_local use talkbench's own SyncNet expert trained on this dataset, "
                  "not the official syncnet_v2 weights: not comparable with published LSE-C / LSE-D"),
    "lse_local_blind": ("lse_local: this expert does not tell sync from no sync on these clips: its LSE-C on the "
                        "ground truth (lse_c_local_gt, its ceiling) is not clear of that with the audio shifted "
                        "(lse_c_local_shifted, its floor; overlapping 95% CIs), so lse_c_local / lse_d_local say "
                        "nothing about this model's lip sync; train the expert longer or use the official weights"),
    "lse": ("lse_c / lse_d: the official SyncNet weights and front-end with syncnet_python's crop rule, on "
            "face boxes from MediaPipe's face mesh instead of S3FD detections"),
    # a template: {how} is the dataset manifest's "pose_labels"
    "real": ("real footage: the pose bins rest on pose labels {how}, not on a known ground-truth pose; "
             "frames without an estimate are in the 'unknown' bin"),
}


def spec(name: str) -> MetricSpec | None:
    """The row of ``name``, or None for a column that is not a metric (clip_id, yaw, ...)."""
    return METRICS.get(name)


def names(level: Level | None = None, group: str | None = None) -> tuple[str, ...]:
    """Metric names in table order, optionally of one level and/or group."""
    return tuple(n for n, s in METRICS.items() if (level is None or s.level == level)
                 and (group is None or s.group == group))


def is_headline(name: str) -> bool:
    """Whether reports show ``name`` first in its group (False for names the table does not know)."""
    row = METRICS.get(name)
    return row is not None and row.headline


def higher_is_better(name: str) -> bool | None:
    row = METRICS.get(name)
    return None if row is None else row.higher_is_better


def capped(name: str, values: Any) -> Any:
    """``values`` (an array or a Series) clipped to the metric's ``cap`` as every mean takes them (PSNR of
    identical frames is +inf and counts as the cap); unchanged for metrics without one or unknown names."""
    row = METRICS.get(name)
    if row is None or row.cap is None:
        return values
    import numpy as np  # here, not at the top: the command line reads this table without numpy

    return np.minimum(values, row.cap)


def sort_key(name: str) -> tuple[int, str]:
    """Table order first; names the table does not know after them, alphabetically."""
    return (ORDER.index(name), "") if name in METRICS else (len(ORDER), name)
