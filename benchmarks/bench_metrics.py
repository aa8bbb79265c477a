"""Metric engine speed: talkbench's batched FrameScorer vs the usual PNG-folder scripts and torchmetrics.

All methods score the same N synthetic frame pairs (smooth random images plus noise, uint8, made from a seed)
and must give the same values; the script checks that and prints the largest absolute difference per metric.

* talkbench: ``FrameScorer`` (PSNR, SSIM, LPIPS-alex per frame, FID on every frame: ``fid_every=1``) fed
  batches of 32 from tensors in memory. Timed end to end: every ``update`` (the uint8 -> float conversion of
  each batch included), ``result()`` and the Fréchet distance of the "all" group (``FIDAccumulator.compute``,
  eigh method). ``summarise`` (bootstrap CIs, not a metric computation) is not timed. The per-metric split
  comes from timers wrapped around the functions FrameScorer calls, in the same run; "other" is the rest
  (per-frame rows, kept samples).
* field practice: (a) write the pred and gt frames as two PNG folders with PIL (timed: the usual scripts
  need files), (b) one loop reading each PNG pair back for scikit-image ``peak_signal_noise_ratio`` and
  ``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, channel_axis=2,
  data_range=255)``, (c) a loop reading each pair again for one ``lpips.LPIPS`` call per pair (as the
  package's ``lpips_2dirs.py`` does, with ``lpips.im2tensor``), (d) pytorch-fid on the two folders. The
  command line ``python -m pytorch_fid DIR1 DIR2 --device cpu --batch-size 32`` would download the official
  Inception weights, and these machines are offline, so this script runs what ``calculate_fid_given_paths``
  runs, minus building the model: pytorch-fid's own ``compute_statistics_of_path`` on each folder
  (its DataLoader, ``num_workers = min(cpus, 8)`` as the CLI picks) and its ``calculate_frechet_distance``
  (scipy ``sqrtm``), with pytorch-fid's ``InceptionV3`` built by ``bench.metrics.fid.build_inception()`` on the
  provisioned weights (the same network and weights talkbench uses). Its tqdm bar is switched off.
* torchmetrics (if installed; benchmark-only, not a talkbench dependency): ``PeakSignalNoiseRatio`` and
  ``StructuralSimilarityIndexMeasure`` per frame (``reduction="none"``) on the same float tensors, in
  batches of 32. Its PSNR works in float32 (inputs and constants), so it is checked to 1e-6 *relative*
  (~3e-6 dB absolute here). Its SSIM reflect-pads the frame and averages the map over every pixel, border
  windows included, where scikit-image and talkbench average only the interior where the 11x11 window fits:
  that difference is reported, not asserted, and the script shows that torchmetrics' own map cropped to the
  interior (float64, untimed) matches. Its LPIPS loads torchvision's ImageNet AlexNet, which needs a download
  unless torch.hub's cache already holds it; without it, it is skipped with the reason printed. torchmetrics
  FID needs torch-fidelity and its own downloaded weights, so it is not compared.

Networks are built and warmed up (one small batch), and the other code paths called once, before any timing.
Frames reach talkbench and torchmetrics as contiguous N x 3 x H x W float32 (the layout a model outputs);
talkbench converts each network's input to the network's layout itself.

Reading the table: each cell is frames/s (frame pairs per second; for FID each pair is two Inception
passes) and, in brackets, talkbench's speed-up over that method for that column: talkbench frames/s divided
by the method's frames/s (above 1: talkbench is faster). These machines are shared and noisy: compare only
ratios within one run, never frames/s across runs.

talkbench runs twice: from an empty ground-truth cache (a temporary directory), then again with the ground truth's
Inception features read from it, as for a second model scored on the same test set; the second table and the last
line give both speed-ups over the field, and the two runs' values must be bit-identical. talkbench's networks run
in channels-last memory as bench builds them; the field's are built in the default layout, as lpips and
pytorch-fid build theirs.

Usage: python benchmarks/bench_metrics.py [--frames N] [--size PX] [--seed S]
(weights first: TALKBENCH_CACHE=... bench weights fetch). Exit status 0: all values agree; 1: some values
that should agree do not (PSNR/SSIM vs scikit-image within 1e-4, LPIPS vs lpips within 1e-5, FID vs the
pytorch-fid path within 1e-3 relative, torchmetrics PSNR within 1e-6 relative); 2: weights missing or bad
arguments. Default run (200 pairs, 128 px): ~1m45s on 2 CPU cores, most of it Inception.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator
from unittest import mock

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import scorer as scoring
from bench.weights import store as weights  # noqa: E402
from bench.config import EvalConfig  # noqa: E402

BATCH = 32
TOLERANCES = {"psnr": 1e-4, "ssim": 1e-4, "lpips": 1e-5}  # absolute, vs scikit-image / lpips
FID_RELATIVE = 1e-3
TORCHMETRICS_PSNR = 1e-6  # relative: torchmetrics' float32 arithmetic gives ~1e-7 relative (~3e-6 dB)
GROUPS = ("write PNG", "PSNR+SSIM", "LPIPS", "FID", "other", "total")


# ----------------------------------------------------------------------------------------------- data

def make_frames(n: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(pred, gt) as N x H x W x 3 uint8: smooth random colour fields plus texture; pred = gt + noise, blur."""
    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.random((n, 3, 8, 8)))
    smooth = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False).numpy()
    gt = 30 + 195 * smooth + rng.normal(0, 10, (n, 3, size, size))
    blurred = F.avg_pool2d(torch.from_numpy(gt), 3, stride=1, padding=1, count_include_pad=False).numpy()
    pred = 0.5 * (gt + blurred) + rng.normal(0, 12, gt.shape) + rng.normal(0, 6, (n, 3, 1, 1))
    to_u8 = lambda a: np.ascontiguousarray(np.clip(np.round(a), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1))
    return to_u8(pred), to_u8(gt)


def as_float(frames_u8: torch.Tensor) -> torch.Tensor:
    """N x H x W x 3 uint8 -> contiguous N x 3 x H x W float32 holding 0..255 (the layout a model outputs; a
    bare permute would hand the networks channels-last memory, which changes CPU conv speed)."""
    return frames_u8.permute(0, 3, 1, 2).float().contiguous()


# ----------------------------------------------------------------------------------------------- timing

class Timers:
    """Seconds per group; `wrap` times every call of a function."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def time(self, group: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[group] = self.seconds.get(group, 0.0) + time.perf_counter() - start

    def wrap(self, group: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            with self.time(group):
                return fn(*args, **kwargs)
        return timed


# ----------------------------------------------------------------------------------------------- talkbench

def run_talkbench(pred: torch.Tensor, gt: torch.Tensor, lpips_model: torch.nn.Module,
                  inception: torch.nn.Module, gt_cache: Path) -> tuple[dict[str, np.ndarray], float, Timers, Any]:
    """FrameScorer over batches of 32, then result() and the FID of all frames; ground-truth Inception
    features cached in ``gt_cache`` (an empty directory: computed and stored; filled: read back)."""
    timers = Timers()
    config = EvalConfig(batch_size=BATCH, networks=("lpips", "fid"), fid_every=1)
    scorer = scoring.FrameScorer(config, lpips_model=lpips_model, inception=inception, gt_cache=gt_cache)
    metrics = scoring.image_metrics
    with mock.patch.object(metrics, "psnr", timers.wrap("PSNR+SSIM", metrics.psnr)), \
            mock.patch.object(metrics, "ssim", timers.wrap("PSNR+SSIM", metrics.ssim)), \
            mock.patch.object(scoring, "lpips_distance", timers.wrap("LPIPS", scoring.lpips_distance)), \
            mock.patch.object(scoring.FrameScorer, "_update_fid",
                              timers.wrap("FID", scoring.FrameScorer._update_fid)), \
            timers.time("total"):
        for start in range(0, len(pred), BATCH):
            p, g = as_float(pred[start:start + BATCH]), as_float(gt[start:start + BATCH])
            meta = [{"clip_id": f"clip{i // 25:03d}", "frame": i % 25, "yaw": 0.0}
                    for i in range(start, start + len(p))]
            scorer.update(p, g, None, None, meta)
        result = scorer.result()
        with timers.time("FID"), timers.time("FID distance"):
            fid = result.fid["all"].compute()
    timers.seconds["FID features"] = timers.seconds["FID"] - timers.seconds["FID distance"]
    timers.seconds["other"] = timers.seconds["total"] - sum(timers.seconds[g] for g in ("PSNR+SSIM", "LPIPS", "FID"))
    values = {name: result.frames[name].to_numpy(np.float64) for name in ("psnr", "ssim", "lpips")}
    return values, fid, timers, scorer.fid_cache


# ----------------------------------------------------------------------------------------------- field practice

def write_pngs(frames: np.ndarray, directory: Path) -> list[Path]:
    from PIL import Image

    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, frame in enumerate(frames):
        path = directory / f"{i:06d}.png"
        Image.fromarray(frame).save(path)
        paths.append(path)
    return paths


def read_png(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def run_field(pred: np.ndarray, gt: np.ndarray, lpips_model: torch.nn.Module, inception: torch.nn.Module,
              workdir: Path) -> tuple[dict[str, np.ndarray], float, Timers, list[str]]:
    """PNG folders, then scikit-image, per-pair lpips and pytorch-fid, each reading the files back.
    Also returns the warnings pytorch-fid's Fréchet distance raised (first sentence of each)."""
    import lpips
    from pytorch_fid import fid_score
    from scipy.linalg import LinAlgWarning
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    timers = Timers()
    pred_dir, gt_dir = workdir / "pred", workdir / "gt"
    with timers.time("write PNG"):
        pred_paths, gt_paths = write_pngs(pred, pred_dir), write_pngs(gt, gt_dir)

    psnr, ssim = np.empty(len(pred)), np.empty(len(pred))
    with timers.time("PSNR+SSIM"):
        for i, (p_path, g_path) in enumerate(zip(pred_paths, gt_paths)):
            p, g = read_png(p_path), read_png(g_path)
            psnr[i] = peak_signal_noise_ratio(g, p, data_range=255)
            ssim[i] = structural_similarity(g, p, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                            channel_axis=2, data_range=255)

    lp = np.empty(len(pred))
    with timers.time("LPIPS"), torch.no_grad():
        for i, (p_path, g_path) in enumerate(zip(pred_paths, gt_paths)):
            img0, img1 = lpips.im2tensor(read_png(p_path)), lpips.im2tensor(read_png(g_path))
            lp[i] = float(lpips_model(img0, img1))

    try:
        num_workers = min(len(os.sched_getaffinity(0)), 8)  # what `python -m pytorch_fid` picks
    except AttributeError:
        num_workers = min(os.cpu_count() or 1, 8)
    with timers.time("FID"), mock.patch.object(fid_score, "tqdm", lambda x, *a, **k: x):
        with timers.time("FID features"):
            m1, s1 = fid_score.compute_statistics_of_path(str(pred_dir), inception, BATCH, 2048, "cpu", num_workers)
            m2, s2 = fid_score.compute_statistics_of_path(str(gt_dir), inception, BATCH, 2048, "cpu", num_workers)
        with timers.time("FID distance"), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fid = float(fid_score.calculate_frechet_distance(m1, s1, m2, s2))
    timers.seconds["total"] = sum(timers.seconds[g] for g in ("write PNG", "PSNR+SSIM", "LPIPS", "FID"))
    notes = sorted({str(w.message).split(". ")[0] for w in caught if issubclass(w.category, LinAlgWarning)})
    return {"psnr": psnr, "ssim": ssim, "lpips": lp}, fid, timers, notes


# ----------------------------------------------------------------------------------------------- torchmetrics

def torchmetrics_lpips_unavailable() -> str | None:
    """Why torchmetrics' LPIPS cannot run offline here (None if torchvision's AlexNet is already cached)."""
    from torchvision.models import AlexNet_Weights

    url = AlexNet_Weights.DEFAULT.url
    cached = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
    if cached.is_file():
        return None
    return (f"it loads torchvision's ImageNet AlexNet ({url.rsplit('/', 1)[-1]}), not in {cached.parent}; "
            "that would need a download (offline here)")


def run_torchmetrics(pred: torch.Tensor, gt: torch.Tensor) -> tuple[dict[str, np.ndarray], Timers, str | None]:
    """PSNR and SSIM per frame (and LPIPS when its weights are cached), batches of 32 from the same tensors."""
    from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

    timers = Timers()
    psnr_metric = PeakSignalNoiseRatio(data_range=255.0, reduction="none", dim=(1, 2, 3))
    ssim_metric = StructuralSimilarityIndexMeasure(data_range=255.0, gaussian_kernel=True, sigma=1.5, kernel_size=11,
                                                   reduction="none")
    lpips_skip = torchmetrics_lpips_unavailable()
    lpips_metric = None
    if lpips_skip is None:
        from torchmetrics.image import LearnedPerceptualImagePatchSimilarity
        lpips_metric = LearnedPerceptualImagePatchSimilarity(net_type="alex", reduction="none", normalize=True)
        with torch.no_grad():
            lpips_metric(as_float(pred[:2]) / 255, as_float(gt[:2]) / 255)
        lpips_metric.reset()
    with timers.time("PSNR+SSIM"):
        for start in range(0, len(pred), BATCH):
            p, g = as_float(pred[start:start + BATCH]), as_float(gt[start:start + BATCH])
            psnr_metric.update(p, g)
            ssim_metric.update(p, g)
        values = {"psnr": psnr_metric.compute().double().numpy().ravel(),
                  "ssim": ssim_metric.compute().double().numpy().ravel()}
    if lpips_metric is not None:
        with timers.time("LPIPS"), torch.no_grad():
            for start in range(0, len(pred), BATCH):
                lpips_metric.update(as_float(pred[start:start + BATCH]) / 255, as_float(gt[start:start + BATCH]) / 255)
            values["lpips"] = lpips_metric.compute().double().numpy().ravel()
    return values, timers, lpips_skip  # no total: torchmetrics covers only some of the columns


def torchmetrics_ssim_cropped(pred: torch.Tensor, gt: torch.Tensor) -> np.ndarray:
    """torchmetrics' SSIM map in float64 cropped to the 5-pixel interior (what skimage averages): untimed, to
    show that the border windows explain the SSIM difference."""
    from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim

    out = []
    for start in range(0, len(pred), BATCH):
        p, g = as_float(pred[start:start + BATCH]).double(), as_float(gt[start:start + BATCH]).double()
        _, full = tm_ssim(p, g, gaussian_kernel=True, sigma=1.5, kernel_size=11, data_range=255.0,
                          reduction="none", return_full_image=True)
        out.append(full[..., 5:-5, 5:-5].flatten(1).mean(1))
    return torch.cat(out).numpy()


# ----------------------------------------------------------------------------------------------- report

def print_table(n: int, rows: list[tuple[str, dict[str, float]]]) -> None:
    """One row per method: frames/s per group, and talkbench's speed-up (method seconds / talkbench seconds)."""
    reference = rows[0][1]
    width = 19
    print(f"{'method':<34}" + "".join(f"{g:>{width}}" for g in GROUPS))
    for index, (name, seconds) in enumerate(rows):
        cells = []
        for group in GROUPS:
            s, ref = seconds.get(group), reference.get(group)
            if s is None:
                cells.append("-")
            elif index == 0 or ref is None:
                cells.append(f"{n / s:.1f}")
            else:
                cells.append(f"{n / s:.1f} ({s / ref:.2f}x)")
        print(f"{name:<34}" + "".join(f"{c:>{width}}" for c in cells))


def agreement(label: str, ours: np.ndarray, theirs: np.ndarray, tolerance: float | None) -> bool:
    diff = float(np.max(np.abs(ours - theirs)))
    verdict = "reported only" if tolerance is None else ("ok" if diff <= tolerance else "DISAGREE")
    limit = "" if tolerance is None else f" (tolerance {tolerance:g})"
    print(f"  {label:<44} max |diff| = {diff:.3g}{limit}: {verdict}")
    return tolerance is None or diff <= tolerance


def warm_up(lpips_model: torch.nn.Module, inception: torch.nn.Module, size: int) -> None:
    """One small forward pass per network, in its memory layout, so no method pays first-call setup inside
    its timing."""
    from bench.metrics.fid import _is_channels_last

    layout = torch.channels_last if _is_channels_last(inception) else torch.contiguous_format
    with torch.no_grad():
        x = torch.rand(2, 3, size, size).contiguous(memory_format=layout)
        lpips_model(2 * x - 1, 2 * x.flip(0) - 1)
        lpips_model(2 * x[:1] - 1, 2 * x[1:] - 1)
        inception(x)
        inception(torch.rand(BATCH, 3, size, size).contiguous(memory_format=layout))


def warm_up_light(pred: np.ndarray, gt: np.ndarray) -> None:
    """First calls of the non-network code paths (conv2d in float64, PNG codec, skimage, torchmetrics)."""
    import io

    import lpips
    from PIL import Image
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    p, g = as_float(torch.from_numpy(pred[:2])), as_float(torch.from_numpy(gt[:2]))
    scoring.image_metrics.psnr(p, g), scoring.image_metrics.ssim(p, g)
    buffer = io.BytesIO()
    Image.fromarray(pred[0]).save(buffer, format="png")
    buffer.seek(0)
    frame = np.asarray(Image.open(buffer).convert("RGB"))
    peak_signal_noise_ratio(gt[0], frame, data_range=255)
    structural_similarity(gt[0], frame, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                          channel_axis=2, data_range=255)
    lpips.im2tensor(frame)
    try:
        from torchmetrics.functional.image import peak_signal_noise_ratio as tm_psnr
        from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim
    except ImportError:
        return
    tm_psnr(p, g, data_range=255.0, reduction="none", dim=(1, 2, 3))
    tm_ssim(p, g, gaussian_kernel=True, sigma=1.5, kernel_size=11, data_range=255.0, reduction="none")


# ----------------------------------------------------------------------------------------------- main

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200, help="frame pairs (FID at 299 px is the slow part "
                                                                "on a CPU)")
    parser.add_argument("--size", type=int, default=128, help="frame side in pixels")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.frames < 2 or args.size < 16:
        print("bench_metrics: need --frames >= 2 (FID covariances) and --size >= 16 (LPIPS, 11x11 SSIM)",
              file=sys.stderr)
        return 2
    try:
        weights.require("lpips_alex")
        weights.require("fid_inception")
    except weights.WeightsMissingError as error:
        print(f"bench_metrics: {error}", file=sys.stderr)
        return 2

    from bench.metrics.fid import build_inception
    from bench.metrics.lpips import build_lpips

    n = args.frames
    pred_np, gt_np = make_frames(n, args.size, args.seed)
    pred_t, gt_t = torch.from_numpy(pred_np), torch.from_numpy(gt_np)
    # Separate instances, same weights: talkbench's as bench builds them (channels-last memory), the field's
    # as lpips and pytorch-fid build them (the default layout).
    ours_lpips, field_lpips = build_lpips("alex"), build_lpips("alex", channels_last=False)
    ours_inception, field_inception = build_inception(), build_inception(channels_last=False)
    warm_up(ours_lpips, ours_inception, args.size)
    warm_up(field_lpips, field_inception, args.size)
    warm_up_light(pred_np, gt_np)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{n} frame pairs, {args.size}x{args.size}, seed {args.seed}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs, load average {load:.1f} at the start")

    with tempfile.TemporaryDirectory(prefix="bench_metrics_") as tmp:
        # talkbench twice: from an empty ground-truth cache (it computes and stores the ground truth's
        # Inception features), then as for a second model on the same test set (it reads them back)
        ours, ours_fid, ours_t, cache = run_talkbench(pred_t, gt_t, ours_lpips, ours_inception, Path(tmp) / "cache")
        stored = cache.misses
        field, field_fid, field_t, fid_notes = run_field(pred_np, gt_np, field_lpips, field_inception, Path(tmp))
        cached, cached_fid, cached_t, cache = run_talkbench(pred_t, gt_t, ours_lpips, ours_inception,
                                                            Path(tmp) / "cache")
        if cache.hits != stored or cache.misses:
            raise RuntimeError(f"the cached run missed the cache ({cache.hits} hits, {cache.misses} misses)")

    try:
        import torchmetrics
    except ImportError:
        torchmetrics = None
    tm = tm_t = tm_lpips_skip = None
    if torchmetrics is not None:
        tm, tm_t, tm_lpips_skip = run_torchmetrics(pred_t, gt_t)

    print()
    print("frames/s (frame pairs per second); in brackets talkbench's speed-up for that column "
          "(talkbench frames/s / method frames/s)")
    rows = [("talkbench (tensors, batch 32)", ours_t.seconds),
            ("field (PNG + skimage/lpips/pfid)", field_t.seconds)]
    if tm_t is not None:
        rows.append((f"torchmetrics {torchmetrics.__version__}", tm_t.seconds))
    print_table(n, rows)
    print("  talkbench total = FrameScorer.update over all batches + result() + FID compute (summarise not timed); "
          "field total = sum of its columns")
    print()
    print("talkbench with the ground truth's Inception features cached (a second model on the same frames):")
    print_table(n, [("talkbench, ground truth cached", cached_t.seconds),
                    ("field (PNG + skimage/lpips/pfid)", field_t.seconds)])
    print()
    print("speed-up over the field, total: "
          f"{field_t.seconds['total'] / ours_t.seconds['total']:.2f}x with nothing cached, "
          f"{field_t.seconds['total'] / cached_t.seconds['total']:.2f}x with the ground truth cached; FID: "
          f"{field_t.seconds['FID'] / ours_t.seconds['FID']:.2f}x and {field_t.seconds['FID'] / cached_t.seconds['FID']:.2f}x")
    print(f"  FID split: features {ours_t.seconds['FID features']:.1f} s (talkbench) vs "
          f"{field_t.seconds['FID features']:.1f} s (pytorch-fid, PNG loading included); Fréchet distance "
          f"{ours_t.seconds['FID distance']:.1f} s (eigh) vs {field_t.seconds['FID distance']:.1f} s (scipy sqrtm)")
    for note in fid_notes:
        print(f"  pytorch-fid sqrtm warned: {note} (expected: {n} frames < 2048 features, rank-deficient covariances)")
    if torchmetrics is None:
        print("  torchmetrics: skipped (not installed; pip install torchmetrics into the venv to compare it)")
    else:
        if tm_lpips_skip:
            print(f"  torchmetrics LPIPS: skipped: {tm_lpips_skip}")
        print("  torchmetrics FID: not compared (needs torch-fidelity and its own downloaded Inception weights)")

    print()
    print("value agreement (talkbench vs ...):")
    ok = True
    for name in ("psnr", "ssim"):
        ok &= agreement(f"{name.upper()} vs scikit-image", ours[name], field[name], TOLERANCES[name])
    ok &= agreement("LPIPS vs lpips.LPIPS per pair", ours["lpips"], field["lpips"], TOLERANCES["lpips"])
    same = cached_fid == ours_fid and all(np.array_equal(cached[k], ours[k], equal_nan=True) for k in ours)
    print(f"  {'cached run vs uncached run':<44} FID {cached_fid!r} vs {ours_fid!r}: "
          f"{'bit-identical' if same else 'DIFFERENT'}")
    ok &= same
    relative = abs(ours_fid - field_fid) / max(abs(field_fid), 1e-12)
    fid_ok = relative <= FID_RELATIVE
    print(f"  {'FID vs pytorch-fid path':<44} {ours_fid:.6f} vs {field_fid:.6f}, relative diff {relative:.3g} "
          f"(tolerance {FID_RELATIVE:g}): {'ok' if fid_ok else 'DISAGREE'}")
    ok &= fid_ok
    if tm is not None:
        tm_psnr_diff = np.abs(ours["psnr"] - tm["psnr"])
        tm_psnr_ok = bool(np.all(tm_psnr_diff <= TORCHMETRICS_PSNR * np.abs(ours["psnr"])))
        print(f"  {'PSNR vs torchmetrics':<44} max |diff| = {tm_psnr_diff.max():.3g}, max relative "
              f"{np.max(tm_psnr_diff / np.abs(ours['psnr'])):.3g} (tolerance {TORCHMETRICS_PSNR:g} relative): "
              f"{'ok' if tm_psnr_ok else 'DISAGREE'}")
        print("    torchmetrics works in float32 (the inputs, and its data_range and log(10) constants are float32 "
              "tensors),\n    talkbench and scikit-image in float64: about 1e-7 relative, hence a relative "
              "tolerance.")
        ok &= tm_psnr_ok
        agreement("SSIM vs torchmetrics", ours["ssim"], tm["ssim"], None)
        agreement("SSIM vs torchmetrics map cropped, float64", ours["ssim"], torchmetrics_ssim_cropped(pred_t, gt_t),
                  TOLERANCES["ssim"])
        print("    torchmetrics reflect-pads by 5 px and averages the SSIM map over the whole frame, border windows "
              "included;\n    scikit-image and talkbench average only the interior where the 11x11 window fits "
              "(and torchmetrics\n    computes in the input dtype, float32 here). Cropped to the interior in "
              "float64 it matches.")
        if "lpips" in tm:
            ok &= agreement("LPIPS vs torchmetrics", ours["lpips"], tm["lpips"], TOLERANCES["lpips"])
    print("all values agree" if ok else "VALUES DISAGREE")
    return 0 if ok else 1


if __name__ == "__main__":
    warnings.filterwarnings("ignore", category=UserWarning, module="torchmetrics")
    try:
        sys.exit(main())
    except Exception as error:  # the benchmark must fail loudly, not print a number
        print(f"bench_metrics failed: {error!r}", file=sys.stderr)
        sys.exit(1)
