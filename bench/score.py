"""`bench score`: score any model's output videos against ground truth into a standard run directory.

External outputs are scored with the same ``FrameScorer`` as `bench run`, so the run directory
(manifest.json, frames.parquet, summary.json, curves.npz, samples.npz, report.html) reads the same in
the report, `bench compare` and notebooks. Differences from `bench run`, and why:

* region: the whole frame. An external video carries no mask of the pixels its model generated,
  so calibration metrics use every pixel (`bench run` uses the generated mouth region).
* pose: estimated per ground-truth frame from MediaPipe's face mesh (``bench.head_pose``) whenever LMD
  is on (it loads the same mesh); without it (``--no-networks``), or where no face is found, yaw/pitch/
  roll are NaN and pose_bin is "unknown". A clip's LSE goes to the bin of its mean |yaw|.
* lip sync, per clip: ``lse_c``/``lse_d`` with the official SyncNet when its weights are provisioned, and
  ``lse_c_local``/``lse_d_local`` with ``--sync-expert CKPT`` (a ``bench train --model syncnet``
  checkpoint, e.g. trained on the user's own dataset). The audio is ``--audio`` or else the generated
  video's own sound track; clips without audio get no LSE and the manifest says why (``sync.skipped``).
  Both experts read 25 fps: other rates are resampled to 25 fps by nearest frame in time, as
  syncnet_python's ffmpeg step does (``sync.resampled_from_fps``); frame directories are taken as 25 fps.

Inputs are checked (readable, frame counts and sizes agree, uncertainty shapes) before anything is
written, and scoring runs before the run directory is created, so bad input leaves no directory.
Frames stream in batches, so memory does not grow with the number of frames.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import logging
import time
from contextlib import ExitStack, closing
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from bench import video
from bench.config import POSE_BINS, EvalConfig
from bench.evaluate import metric_networks
from bench.lip_sync import sync_networks
from bench.rundir import (check_run_dir_free, file_sha256, finish_run, new_manifest, prepare_run_dir,
                          read_summary, write_json)
from bench.scoring import EvalResult, FrameScorer, stack_samples, summarise

log = logging.getLogger(__name__)

MODEL_NAME = "external"
SYNC_FPS = 25.0  # the rate both sync experts read
POSE_SOURCE = "estimated on the ground truth: MediaPipe face mesh + solvePnP (bench.head_pose)"
REGION = "full frame (external outputs carry no mask of generated pixels)"
PIXEL_BUDGET = 1 << 21  # pixels per batch: 32 frames at 256 px, 1 at 1080p; bounds SSIM's scratch memory
FRAME_METRICS = ("psnr", "ssim", "err_mean", "lpips", "lmd")  # per-frame image metrics `--metric` can print


class ScoreError(ValueError):
    """Inputs that do not pair up (frame counts, sizes, stems); one line naming the files."""


@dataclass(frozen=True)
class Pair:
    """One generated video and its ground truth, checked to agree."""

    clip_id: str
    pred: Path
    gt: Path
    uncertainty: Path | None
    n_frames: int
    height: int
    width: int
    fps: float | None


# ---------------------------------------------------------------- inputs
def _has_frames(path: Path) -> bool:
    return any(q.is_file() and q.suffix.lower() in video.IMAGE_SUFFIXES for q in path.iterdir())


def _is_batch_dir(path: Path) -> bool:
    """A directory of videos (or of per-clip frame directories), as opposed to a directory of frames."""
    if not path.is_dir() or _has_frames(path):
        return False
    return any((p.is_file() and p.suffix.lower() in video.VIDEO_SUFFIXES) or (p.is_dir() and _has_frames(p))
               for p in path.iterdir())


def _stems(directory: Path, what: str) -> dict[str, Path]:
    """clip id (file stem, or directory name) -> video file or frame directory inside a batch directory."""
    out: dict[str, Path] = {}
    for path in sorted(directory.iterdir(), key=lambda p: video.natural_key(p.name)):
        if (path.is_file() and path.suffix.lower() in video.VIDEO_SUFFIXES) or (path.is_dir() and _has_frames(path)):
            stem = _clip_id(path)
            if stem in out:
                raise ScoreError(f"{directory}: two {what} inputs share the stem '{stem}' "
                                 f"({out[stem].name}, {path.name})")
            out[stem] = path
    if not out:
        raise ScoreError(f"{directory}: directory holds no videos")
    return out


def _clip_id(path: Path) -> str:
    return path.name if path.is_dir() else path.stem


def check_pair(clip_id: str, pred: Path, gt: Path, uncertainty: Path | None = None) -> Pair:
    """Probe both sources and the uncertainty maps; mismatches raise one line naming the files."""
    p, g = video.probe(pred), video.probe(gt)
    if p.n_frames != g.n_frames:  # packet counts can disagree with decoding in odd files: decode to be sure
        p, g = video.probe(pred, exact=True), video.probe(gt, exact=True)
    if p.n_frames != g.n_frames:
        raise ScoreError(f"{pred} has {p.n_frames} frames but {gt} has {g.n_frames}")
    if (p.height, p.width) != (g.height, g.width):
        raise ScoreError(f"{pred} is {p.width}x{p.height} but {gt} is {g.width}x{g.height}: sizes must match")
    if uncertainty is not None:
        video.check_uncertainty(uncertainty, p.n_frames, p.height, p.width)
    return Pair(clip_id, Path(pred), Path(gt), None if uncertainty is None else Path(uncertainty),
                p.n_frames, p.height, p.width, p.fps if p.fps is not None else g.fps)


def _batch_pairs(pred_dir: Path, gt_dir: Path, uncertainty_dir: Path | None) -> list[Pair]:
    preds, gts = _stems(pred_dir, "pred"), _stems(gt_dir, "gt")
    only_pred, only_gt = sorted(set(preds) - set(gts)), sorted(set(gts) - set(preds))
    if only_pred or only_gt:
        raise ScoreError(f"{pred_dir} and {gt_dir} do not pair up by file stem: "
                         f"only in pred: {', '.join(only_pred) or '-'}; only in gt: {', '.join(only_gt) or '-'}")
    maps: dict[str, Path] = {}
    if uncertainty_dir is not None:
        if not uncertainty_dir.is_dir():
            raise ScoreError(f"{uncertainty_dir}: with directories of videos, --uncertainty must be a directory "
                             "holding <stem>.npy or <stem>/ per video")
        for stem in preds:
            found = [p for p in (uncertainty_dir / f"{stem}.npy", uncertainty_dir / stem) if p.exists()]
            if found:
                maps[stem] = found[0]
        missing = [stem for stem in preds if stem not in maps]
        if missing:
            raise ScoreError(f"{uncertainty_dir}: no uncertainty (<stem>.npy or <stem>/) for {', '.join(missing)}")
    return [check_pair(stem, preds[stem], gts[stem], maps.get(stem)) for stem in preds]


def _audio_records(audio: Path | None, stems: list[str]) -> dict[str, dict[str, Any]]:
    """Decode the audio once to prove it is usable; record path, hash and length per clip.

    ``audio`` is one file (for every clip) or a directory holding ``<stem>.*`` per clip.
    """
    if audio is None:
        return {}
    paths = {stem: audio for stem in stems}
    if audio.is_dir():
        files = {p.stem: p for p in sorted(audio.iterdir(), reverse=True) if p.is_file()}
        missing = [stem for stem in stems if stem not in files]
        if missing:
            raise ScoreError(f"{audio}: no audio file <stem>.* for {', '.join(missing)}")
        paths = {stem: files[stem] for stem in stems}
    records = {}
    for stem, path in paths.items():
        wave = video.read_audio(path)
        records[stem] = {"path": str(path.resolve()), "sha256": file_sha256(path), "sample_rate": 16000,
                         "samples": int(wave.size), "duration_s": wave.size / 16000}
    return records


def inputs_hash(inputs: dict[str, Path | None]) -> str:
    """sha256 over every input file (directories: every file inside, by relative path)."""
    digest = hashlib.sha256()
    for role, root in inputs.items():
        if root is None:
            continue
        root = Path(root)
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for path in files:
            name = path.relative_to(root).as_posix() if root.is_dir() else path.name
            digest.update(f"{role}/{name}:{file_sha256(path)}\n".encode())
    return digest.hexdigest()


# ---------------------------------------------------------------- scoring
def _frames_per_batch(config: EvalConfig, height: int, width: int) -> int:
    return max(1, min(config.batch_size, PIXEL_BUDGET // max(height * width, 1)))


def _rest(frames: Iterator) -> int:
    return sum(1 for _ in frames)


def stream_pair(pair: Pair, batch_size: int) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray | None]]:
    """(first frame index, pred B x H x W x 3, gt, u B x H x W or None) batches, decoded lazily.

    Frame counts are re-checked while decoding, since probing counts packets.
    """
    with ExitStack() as stack:
        preds = stack.enter_context(closing(video.iter_frames(pair.pred)))
        gts = stack.enter_context(closing(video.iter_frames(pair.gt)))
        maps = None
        if pair.uncertainty is not None:
            maps = stack.enter_context(closing(video.iter_uncertainty(
                pair.uncertainty, pair.n_frames, pair.height, pair.width)))
        start = 0
        while True:
            pred, gt = list(islice(preds, batch_size)), list(islice(gts, batch_size))
            if len(pred) != len(gt):
                n_pred, n_gt = start + len(pred) + _rest(preds), start + len(gt) + _rest(gts)
                raise ScoreError(f"{pair.pred} has {n_pred} frames but {pair.gt} has {n_gt}")
            if not pred:
                return
            if pred[0].shape != gt[0].shape:
                raise ScoreError(f"{pair.pred} is {pred[0].shape[1]}x{pred[0].shape[0]} but {pair.gt} is "
                                 f"{gt[0].shape[1]}x{gt[0].shape[0]}: sizes must match")
            u = None
            if maps is not None:
                u = list(islice(maps, len(pred)))
                if len(u) != len(pred):
                    raise ScoreError(f"{pair.uncertainty} has {pair.n_frames} maps but {pair.pred} decodes to more "
                                     "frames")
            yield start, np.stack(pred), np.stack(gt), None if u is None else np.stack(u)
            start += len(pred)


def _meta(pair: Pair, frame: int, pose: np.ndarray | None = None) -> dict[str, Any]:
    """Frame labels; the pose is estimated on the ground truth (NaN without an estimator: pose_bin "unknown")."""
    yaw, pitch, roll = (float(v) for v in pose) if pose is not None else (float("nan"),) * 3
    return {"clip_id": pair.clip_id, "frame": frame, "identity": pair.clip_id, "stratum": "external",
            "yaw": yaw, "pitch": pitch, "roll": roll}


def _sync_audio(pair: Pair, audio: dict[str, dict[str, Any]]) -> tuple[np.ndarray | None, str | None]:
    """The clip's driving audio at 16 kHz, or None and why not."""
    if pair.clip_id in audio:
        return video.read_audio(audio[pair.clip_id]["path"]), None
    if pair.pred.is_file():
        try:
            return video.read_audio(pair.pred), None
        except video.VideoError:
            pass
    return None, "no audio: pass --audio, or a generated video with its sound track"


def resample_frames(frames: Iterator[np.ndarray], n_frames: int, fps: float,
                    target: float = SYNC_FPS) -> Iterator[np.ndarray]:
    """Frames at ``target`` fps from ``n_frames`` at ``fps``: output k shows the input nearest to time k / target."""
    if abs(fps - target) <= 0.01:
        yield from frames
        return
    count = int(n_frames * target / fps)
    sources = [min(n_frames - 1, int(round(k * fps / target))) for k in range(count)]
    position = 0
    for index, frame in enumerate(frames):
        while position < count and sources[position] == index:
            yield frame
            position += 1


def _sync_values(pair: Pair, networks: dict[str, Any], audio: dict[str, dict[str, Any]], sync_log: dict[str, Any],
                 device: torch.device | str) -> dict[str, float]:
    """The clip's LSE scores; ``sync_log["skipped"]`` / ``["resampled_from_fps"]`` record what was not plain."""
    from bench.lip_sync import video_sync_values

    official, local = networks.get("sync_official"), networks.get("sync")
    if official is None and local is None:
        return {}
    wave, reason = _sync_audio(pair, audio)
    if wave is None:
        sync_log.setdefault("skipped", {})[pair.clip_id] = reason
        return {}

    # Frame directories carry no rate: taken as 25 fps. Other rates are resampled to 25 fps first, by
    # nearest frame in time (as ffmpeg's -r 25, which syncnet_python's pipeline applies).
    fps = pair.fps or SYNC_FPS
    if abs(fps - SYNC_FPS) > 0.01:
        sync_log.setdefault("resampled_from_fps", {})[pair.clip_id] = fps

    def batches() -> Iterator[np.ndarray]:
        with closing(video.iter_frames(pair.pred)) as frames:
            frames = resample_frames(frames, pair.n_frames, fps)
            while batch := list(islice(frames, 32)):
                yield np.stack(batch)

    values = video_sync_values(batches, wave, official, local, device)
    if not values:
        sync_log.setdefault("skipped", {})[pair.clip_id] = "no face found, or too short for one 5-frame window"
    return values


def score_pairs(pairs: list[Pair], config: EvalConfig, networks: dict[str, Any] | None = None,
                device: torch.device | str = "cpu", progress: bool = True,
                audio: dict[str, dict[str, Any]] | None = None, sync_log: dict[str, Any] | None = None) -> EvalResult:
    """Stream every pair through one FrameScorer (region None: the whole frame), plus per-clip LSE."""
    networks = networks or {}
    sync_log = {} if sync_log is None else sync_log
    scorer = FrameScorer.with_networks(config, networks)
    bar = tqdm(total=sum(p.n_frames for p in pairs), desc="score", unit="frame", disable=not progress, leave=False)
    estimator = networks.get("pose")  # bench.head_pose.PoseEstimator
    for pair in pairs:
        clip_yaws: list[np.ndarray] = []
        for start, pred, gt, u in stream_pair(pair, _frames_per_batch(config, pair.height, pair.width)):
            pred_u8 = torch.from_numpy(pred).to(device).permute(0, 3, 1, 2).float().contiguous()  # NCHW: faster SSIM
            gt_u8 = torch.from_numpy(gt).to(device).permute(0, 3, 1, 2).float().contiguous()
            scale = None if u is None else torch.from_numpy(u).to(device)
            poses = estimator(gt_u8) if estimator is not None else None
            if poses is not None:
                clip_yaws.append(np.abs(poses[:, 0]))
            scorer.update(pred_u8, gt_u8, scale, None,
                          [_meta(pair, start + i, None if poses is None else poses[i]) for i in range(len(pred))])
            bar.update(len(pred))
        values = _sync_values(pair, networks, audio or {}, sync_log, device)
        if values:
            yaws = np.concatenate(clip_yaws) if clip_yaws else np.array([np.nan])
            mean_yaw = float(np.nanmean(yaws)) if np.isfinite(yaws).any() else float("nan")
            scorer.add_clip({"clip_id": pair.clip_id, "yaw": mean_yaw}, values)
    bar.close()
    result = scorer.result()
    if not result.samples:  # every frame is in the "unknown" pose bin, which FrameScorer does not sample
        pool = {"any": [item for group in scorer.sample_pool.values() for item in group]}
        result.samples = stack_samples(pool, config.samples_per_bin * len(POSE_BINS), ["any"])
    return result


def _run(pairs: list[Pair], inputs: dict[str, Path | None], out_dir: Path | None, config: EvalConfig, seed: int,
         report: bool, progress: bool, batch: bool, sync_expert: Path | None = None) -> Path:
    started = time.perf_counter()
    stem = pairs[0].clip_id if not batch else Path(inputs["pred"]).name
    run_dir = check_run_dir_free(out_dir or Path("runs") / f"score-{stem}-{time.strftime('%Y%m%d-%H%M%S')}")
    audio = _audio_records(inputs.get("audio"), [p.clip_id for p in pairs])
    from bench.train import pick_device

    device = pick_device()
    networks: dict[str, Any] = dict(metric_networks(config, device))
    sync = sync_networks(networks, config, sync_expert, device)
    if "lmd" in networks:  # MediaPipe is loaded: estimate the ground truth's head pose for the pose bins
        from bench.head_pose import PoseEstimator

        networks["pose"] = PoseEstimator(networks["lmd"].mesh)
    settings = {**{k: None if v is None else str(Path(v).resolve()) for k, v in inputs.items()},
                "batch": batch, "region": REGION, "eval": dataclasses.asdict(config)}
    manifest = new_manifest(MODEL_NAME, settings, seed)
    manifest["checkpoint"] = None
    manifest["pose"] = POSE_SOURCE if "pose" in networks else None
    manifest["sync"] = {**sync, "skipped": {}, "resampled_from_fps": {}}
    manifest["data"] = {"source": "external", "hash": inputs_hash(inputs), "audio": audio or None,
                        "clips": [{"clip_id": p.clip_id, "pred": str(p.pred.resolve()), "gt": str(p.gt.resolve()),
                                   "uncertainty": None if p.uncertainty is None else str(p.uncertainty.resolve()),
                                   "n_frames": p.n_frames, "height": p.height, "width": p.width, "fps": p.fps}
                                  for p in pairs]}
    timings = {"check_s": time.perf_counter() - started}
    log.info("scoring %d frames of %d clip(s)%s", sum(p.n_frames for p in pairs), len(pairs),
             " with uncertainty" if pairs[0].uncertainty else "")

    started = time.perf_counter()
    result = score_pairs(pairs, config, networks, device, progress, audio, manifest["sync"])
    summary = summarise(result, MODEL_NAME, config, seed)
    timings["score_s"] = time.perf_counter() - started
    prepare_run_dir(run_dir)  # only now: a failure above leaves no directory behind
    write_json(run_dir / "manifest.json", manifest)
    finish_run(run_dir, manifest, result, summary, timings, report)
    return run_dir


def score(pred: Path, gt: Path, out_dir: Path | None, uncertainty: Path | None = None, audio: Path | None = None,
          config: EvalConfig = EvalConfig(), seed: int = 0, report: bool = True, progress: bool = True,
          sync_expert: Path | None = None) -> Path:
    """Score one output (video, frame directory or image) against its ground truth; returns the run directory.

    Two directories of videos are scored as a batch (see ``score_batch``).
    """
    pred, gt = Path(pred), Path(gt)
    uncertainty = None if uncertainty is None else Path(uncertainty)
    audio = None if audio is None else Path(audio)
    if _is_batch_dir(pred) or _is_batch_dir(gt):
        return score_batch(pred, gt, out_dir, uncertainty, audio, config, seed, report, progress, sync_expert)
    pair = check_pair(_clip_id(pred), pred, gt, uncertainty)
    inputs = {"pred": pred, "gt": gt, "uncertainty": uncertainty, "audio": audio}
    return _run([pair], inputs, out_dir, config, seed, report, progress, batch=False, sync_expert=sync_expert)


def score_batch(pred_dir: Path, gt_dir: Path, out_dir: Path | None, uncertainty_dir: Path | None = None,
                audio: Path | None = None, config: EvalConfig = EvalConfig(), seed: int = 0, report: bool = True,
                progress: bool = True, sync_expert: Path | None = None) -> Path:
    """Pair two directories of videos by file stem (clip_id = stem) and score all pairs into one run."""
    pred_dir, gt_dir = Path(pred_dir), Path(gt_dir)
    for path in (pred_dir, gt_dir):
        if not _is_batch_dir(path):
            raise ScoreError(f"{path}: expected a directory of videos to pair with "
                             f"{gt_dir if path == pred_dir else pred_dir}")
    uncertainty_dir = None if uncertainty_dir is None else Path(uncertainty_dir)
    pairs = _batch_pairs(pred_dir, gt_dir, uncertainty_dir)
    inputs = {"pred": pred_dir, "gt": gt_dir, "uncertainty": uncertainty_dir,
              "audio": None if audio is None else Path(audio)}
    return _run(pairs, inputs, out_dir, config, seed, report, progress, batch=True, sync_expert=sync_expert)


def score_metric(name: str, pred: Path, gt: Path, config: EvalConfig = EvalConfig()) -> list[float]:
    """One per-frame metric for one pair of images or videos, one value per frame (PSNR inf when identical)."""
    if name not in FRAME_METRICS:
        raise ScoreError(f"unknown metric '{name}'; choose one of {', '.join(FRAME_METRICS)}")
    pair = check_pair(_clip_id(Path(pred)), Path(pred), Path(gt))
    config = dataclasses.replace(config, networks=(name,) if name in ("lpips", "lmd") else ())
    networks = metric_networks(config, torch.device("cpu"))
    result = score_pairs([pair], config, networks, progress=False)
    return [float(v) for v in result.frames[name]]


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "score", help="score any model's output videos against ground truth; write a run directory and report",
        description="Score generated videos (or frame directories) against ground truth with every metric "
                    "`bench run` reports. Two directories of videos are paired by file stem.")
    parser.add_argument("--pred", type=Path, required=True, metavar="VIDEO|DIR",
                        help="generated video, frame directory, or directory of videos")
    parser.add_argument("--gt", type=Path, required=True, metavar="VIDEO|DIR", help="ground truth, same form as --pred")
    parser.add_argument("--uncertainty", type=Path, metavar="NPY|DIR", help="per-pixel scale u: T x H x W .npy or "
                        "a directory of H x W .npy (batch: <stem>.npy or <stem>/ per video)")
    parser.add_argument("--audio", type=Path, metavar="WAV", help="driving audio (.wav or a video with sound; "
                        "batch: a directory of <stem>.*); checked and recorded in the manifest")
    parser.add_argument("--sync-expert", type=Path, metavar="CKPT",
                        help="a `bench train --model syncnet` checkpoint: adds lse_c_local / lse_d_local")
    parser.add_argument("--metric", metavar="NAME",
                        help=f"print this metric per frame, one line each ({', '.join(FRAME_METRICS)})")
    parser.add_argument("--out", type=Path, metavar="DIR", help="run directory (default runs/score-STEM-TIME)")
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="bootstrap seed")
    parser.add_argument("--no-networks", action="store_true", help="skip LPIPS, FID and LMD (no pretrained weights)")
    parser.add_argument("--no-report", action="store_true", help="skip the HTML report")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run_cli(args: argparse.Namespace) -> int:
    if args.metric:
        extra = [flag for flag, value in (("--uncertainty", args.uncertainty), ("--audio", args.audio),
                                          ("--out", args.out), ("--sync-expert", args.sync_expert))
                 if value is not None]
        if extra:
            raise ScoreError(f"--metric prints per-frame values only; drop {', '.join(extra)}")
        for value in score_metric(args.metric, args.pred, args.gt):
            print(repr(value))
        return 0
    config = EvalConfig(networks=(), official_sync=False) if args.no_networks else EvalConfig()
    run_dir = score(args.pred, args.gt, args.out, args.uncertainty, args.audio, config=config, seed=args.seed,
                    report=not args.no_report, progress=not args.no_progress, sync_expert=args.sync_expert)
    from bench.cli import print_report_status, results_table

    summary = read_summary(run_dir)
    pose = "unknown" if args.no_networks else "estimated on the ground truth"  # with LMD's face mesh
    print(f"\n{args.pred} scored against {args.gt} (region: whole frame; pose: {pose}):")
    print(results_table(summary))
    print(f"\nrun directory: {run_dir}")
    print_report_status(run_dir)
    return 0

