"""`bench score` without ground truth: a generated video alone (cross-driven dubbing, say), scored on what
needs no reference.

Per frame: the face mesh (``networks["pose"]``, MediaPipe, the same estimator the ground-truth path runs on
the ground truth) on the generated frames gives the head pose (pose bins from the generated video itself)
and the face box (``bench.data.face_box`` with its mesh rule: a square of 1.2 x the mesh's larger extent,
clipped to the frame, as on the ground-truth path), on which the scorer takes cpbd and csim (against
``--source``: ``bench.harness.external_inputs.identity_crops``); Inception and I3D features of the
generated frames make the fake side of FID / FVD, whose real side comes from ``--real DIR``
(``bench.harness.real_set``; without it they are absent and summary.json's notes say so). Per clip:
``face_found`` (share of frames with a face) and ``box_jitter`` (mean frame-to-frame displacement of the
box centre over the box diagonal, over consecutive frames that both have a face), and LSE (official
SyncNet when provisioned, ``--sync-expert`` otherwise; audio from ``--audio`` or the video's own sound; the
manifest's ``sync.skipped`` / ``sync.unavailable`` say why where there is none).

The run directory, manifest, partial states, ``--resume`` and torchrun sharding are those of the
ground-truth path (``bench.harness.external``); metrics that need ground truth (psnr, ssim, lpips, lmd,
calibration) are simply absent, and the manifest records ``ground_truth: "none"``.
"""
from __future__ import annotations

import dataclasses
import logging
import shutil
import time
from contextlib import closing
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from bench.config import EvalConfig
from bench.data import face_box, video
from bench.harness import external_partial as score_partial
from bench.harness.external import REGION, _claim, _frames_per_batch, _sync_values, add_clip_scores, merge_clips
from bench.harness.external_inputs import (Pair, ScoreError, audio_records, batch_preds, check_pred, check_real_dir,
                                           clip_id_of, identity_crops, inputs_hash, is_batch_dir, source_paths)
from bench.harness.real_set import real_set_features
from bench.harness.rundir import (check_run_dir_free, finish_run, mark_failed, new_manifest, release_run_dir,
                                  unlock_run_dir)
from bench.harness.scorer import EvalResult, FrameScorer, summarise
from bench.harness.scorer_state import export_state
from bench.harness.shard import Ranks
from bench.harness.sync_eval import sync_networks

__all__ = ["NOREF_FRAME_METRICS", "box_jitter", "mesh_bounds", "score_clip", "score_metric_noref", "score_noref",
           "score_preds"]

log = logging.getLogger(__name__)

MODEL_NAME = score_partial.MODEL_NAME
NOREF_FRAME_METRICS = ("cpbd", "csim")  # per-frame metrics `bench score --metric` prints without --gt
POSE_SOURCE = ("estimated on the generated frames: MediaPipe's 3-D face mesh fitted to its canonical face, "
               "corrected near profile (bench.data.head_pose)")
NOTES = {
    "ground_truth": "scored without ground truth: psnr, ssim, lpips, lmd and the calibration metrics need it and "
                    "are absent; pose bins come from the generated frames",
    "no_real": "fid / fvd: absent, they need a set of real videos (--real DIR)",
    "no_source": "csim: absent, it needs the identity to compare with (--source IMAGE|VIDEO|DIR)",
}


# ---------------------------------------------------------------- face boxes and their stability
def mesh_bounds(points: np.ndarray) -> np.ndarray:
    """B x K x 2+ mesh points (NaN: no face) -> B x 4 (x0, y0, x1, y1) bounds of the points, NaN where no face."""
    xy = np.asarray(points, dtype=np.float64)[..., :2]
    bounds = np.full((len(xy), 4), np.nan)
    found = np.isfinite(xy).all(axis=(1, 2))
    if found.any():
        bounds[found] = np.concatenate([xy[found].min(axis=1), xy[found].max(axis=1)], axis=1)
    return bounds


def box_jitter(boxes: np.ndarray) -> float:
    """Mean over consecutive frames that both have a face of |centre_t - centre_t-1| / mean box diagonal
    (NaN with no such pair): a still face scores 0, a box that jumps about scores high."""
    boxes = np.asarray(boxes, dtype=np.float64)
    if len(boxes) < 2:
        return float("nan")
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    diagonal = np.hypot(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    step = np.linalg.norm(centre[1:] - centre[:-1], axis=1) / ((diagonal[1:] + diagonal[:-1]) / 2)
    step = step[np.isfinite(step)]
    return float(step.mean()) if step.size else float("nan")


# ---------------------------------------------------------------- scoring
def stream_pred(pair: Pair, batch_size: int) -> Iterator[tuple[int, np.ndarray]]:
    """(first frame index, B x H x W x 3 uint8) batches of the generated video, decoded lazily."""
    with closing(video.iter_frames(pair.pred)) as frames:
        start = 0
        while batch := list(islice(frames, batch_size)):
            yield start, np.stack(batch)
            start += len(batch)


def _meta(pair: Pair, frame: int, pose: np.ndarray | None, box: tuple[int, int, int, int] | None) -> dict[str, Any]:
    yaw, pitch, roll = (float(v) for v in pose) if pose is not None else (float("nan"),) * 3
    return {"clip_id": pair.clip_id, "frame": frame, "identity": pair.clip_id, "stratum": "external",
            "yaw": yaw, "pitch": pitch, "roll": roll, "face_box": box}


def score_clip(pair: Pair, config: EvalConfig, networks: dict[str, Any], device: torch.device | str = "cpu",
               audio: dict[str, dict[str, Any]] | None = None, source: list[np.ndarray] | None = None,
               bar: tqdm | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """One generated video through a fresh FrameScorer with no ground truth; returns its state and lip-sync
    record, as ``bench.harness.external.score_clip`` does."""
    scorer = FrameScorer.with_networks(config, networks, keep_features=True)
    if source is not None:
        scorer.set_source(source)
    estimator = networks.get("pose")  # bench.data.head_pose.PoseEstimator
    yaws: list[np.ndarray] = []
    bounds: list[np.ndarray] = []  # the mesh's bounds per frame: face_found and box_jitter
    for start, pred in stream_pred(pair, _frames_per_batch(config, pair.height, pair.width)):
        pred_u8 = torch.from_numpy(pred).to(device).permute(0, 3, 1, 2).float().contiguous()
        poses, crop_boxes = None, [None] * len(pred)
        if estimator is not None:
            points = estimator.mesh.points_3d(pred_u8)[..., :2]
            poses = estimator(pred_u8)  # from the same mesh points, which the mesh keeps for this batch
            yaws.append(np.abs(poses[:, 0]))
            bounds.append(mesh_bounds(points))
            crop_boxes = face_box.face_boxes(points, pair.width, pair.height, face_box.MESH)
        scorer.update(pred_u8, None, None, None,
                      [_meta(pair, start + i, None if poses is None else poses[i], crop_boxes[i])
                       for i in range(len(pred))])
        if bar is not None:
            bar.update(len(pred))
    sync: dict[str, Any] = {}
    values = _sync_values(pair, networks, audio or {}, sync, device)
    if estimator is not None:
        found = np.concatenate(bounds)
        values.update(face_found=float(np.isfinite(found).all(axis=1).mean()), box_jitter=box_jitter(found))
    add_clip_scores(scorer, pair.clip_id, values, yaws)
    return export_state(scorer), sync


def score_preds(pairs: list[Pair], config: EvalConfig, networks: dict[str, Any] | None = None,
                device: torch.device | str = "cpu", progress: bool = True,
                audio: dict[str, dict[str, Any]] | None = None, sources: dict[str, list[np.ndarray]] | None = None,
                sync_log: dict[str, Any] | None = None, run_dir: Path | None = None,
                ranks: Ranks | None = None) -> FrameScorer | None:
    """Every generated video clip by clip, each state saved to ``partial/`` and merged in clip order, as
    ``bench.harness.external.score_pairs``; returns the merged scorer on rank 0 (None elsewhere), so the
    real set's statistics can still be added to it."""
    networks, sources = networks or {}, sources or {}

    def one(pair: Pair, bar: tqdm | None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return score_clip(pair, config, networks, device, audio, sources.get(pair.clip_id), bar)

    return merge_clips(pairs, config, one, progress, sync_log, run_dir, ranks)


# ---------------------------------------------------------------- the run
def _networks(config: EvalConfig, sync_expert: Path | None, device: torch.device,
              real: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """The reference-free networks: no LPIPS or LMD (they compare with ground truth), Inception / I3D only with a
    real set, the face mesh whenever MediaPipe is allowed (``"lmd"`` in ``config.networks``), the sync experts."""
    from bench.harness.evaluate import metric_networks

    wanted = tuple(n for n in config.networks if n not in ("lpips", "lmd") and (real or n not in ("fid", "fvd")))
    networks: dict[str, Any] = dict(metric_networks(dataclasses.replace(config, networks=wanted), device))
    if "lmd" in config.networks:
        from bench.data.head_pose import PoseEstimator

        networks["pose"] = PoseEstimator()
    # the official SyncNet takes its face boxes from the mesh it finds under "lmd": share the pose estimator's
    shared: dict[str, Any] = {"lmd": networks["pose"]} if "pose" in networks else {}
    sync = sync_networks(shared, config, sync_expert, device)
    networks.update({k: v for k, v in shared.items() if k != "lmd"})
    if sync["official"] is None and sync["local"] is None:
        sync["unavailable"] = ("no LSE: the official SyncNet weights are not registered (bench weights fetch "
                               "--from-file syncnet=PATH) and no --sync-expert was given")
    return networks, sync


def _manifest(pairs: list[Pair], inputs: dict[str, Path | None], out_dir: Path | None, config: EvalConfig,
              seed: int, batch: bool, networks: dict[str, Any], sync: dict[str, Any], audio: dict | None,
              sources: dict[str, Path], real: list[Path]) -> dict[str, Any]:
    settings = {**{k: None if v is None else str(Path(v).resolve()) for k, v in inputs.items()},
                "batch": batch, "region": REGION, "eval": dataclasses.asdict(config)}
    manifest = new_manifest(MODEL_NAME, settings, seed)
    manifest["checkpoint"] = None
    manifest["ground_truth"] = "none"
    manifest["pose"] = POSE_SOURCE if "pose" in networks else None
    manifest["sync"] = {**sync, "skipped": {}, "resampled_from_fps": {}}
    manifest["data"] = {"source": "external", "ground_truth": "none",
                        "hash": inputs_hash(inputs, exclude=out_dir), "audio": audio or None,
                        "identity_source": {k: str(v.resolve()) for k, v in sources.items()} or None,
                        "real": {"dir": str(Path(inputs["real"]).resolve()), "videos": len(real)} if real else None,
                        "clips": [{"clip_id": p.clip_id, "pred": str(p.pred.resolve()), "gt": None,
                                   "uncertainty": None, "n_frames": p.n_frames, "height": p.height,
                                   "width": p.width, "fps": p.fps} for p in pairs]}
    return manifest


def _result(merged: FrameScorer, networks: dict[str, Any], config: EvalConfig, real: list[Path],
            manifest: dict[str, Any]) -> EvalResult:
    """The merged clips' result with the real set's side of FID / FVD added (computed or read from its cache)."""
    if real and ("fid" in networks or "fvd" in networks):
        features, record = real_set_features(real, networks, config)
        manifest["data"]["real"].update(record)
        for kind, (values, groups) in features.items():
            merged.add_real_features(kind, values, groups)
    return merged.result()


def score_noref(pred: Path, out_dir: Path | None, audio: Path | None = None, source: Path | None = None,
                real: Path | None = None, config: EvalConfig = EvalConfig(), seed: int = 0,
                report: Callable[[Path], Path] | None = None, progress: bool = True,
                sync_expert: Path | None = None, resume: bool = False) -> Path | None:
    """Score a generated video (or a directory of them, clip_id = stem) without ground truth into a run
    directory; returns it (under torchrun: on rank 0, None on the others). Inputs are checked before anything
    is written; ``resume`` continues the unfinished run in ``out_dir``."""
    started = time.perf_counter()
    pred = Path(pred)
    audio, source, real = (None if p is None else Path(p) for p in (audio, source, real))
    batch = is_batch_dir(pred)
    pairs = batch_preds(pred) if batch else [check_pred(clip_id_of(pred), pred)]
    stems = [p.clip_id for p in pairs]
    source_files = source_paths(source, stems)
    real_files = check_real_dir(real)
    inputs = {"pred": pred, "gt": None, "uncertainty": None, "audio": audio, "source": source, "real": real}
    from bench.training.distributed import pick_device

    device = pick_device()
    ranks = Ranks.join(device)
    progress = progress and ranks.is_main
    if resume:
        ranks.on_main(score_partial.check_resumable, out_dir)
    elif out_dir is not None:
        ranks.on_main(check_run_dir_free, out_dir, hint=score_partial.resume_hint(out_dir))
    audio_info = ranks.together(audio_records, audio, stems)
    networks, sync = ranks.together(_networks, config, sync_expert, device, bool(real_files))
    crops: dict[str, list[np.ndarray]] = {}
    if "csim" in networks:  # the identity network is there: every source's face crops, before anything is written
        by_path = {path: ranks.together(identity_crops, path, networks.get("pose"))
                   for path in sorted(set(source_files.values()))}
        crops = {stem: by_path[path] for stem, path in source_files.items()}
    manifest = ranks.only_main(lambda: ranks.record(_manifest(pairs, inputs, out_dir, config, seed, batch, networks,
                                                                sync, audio_info, source_files, real_files)))
    default = Path("runs") / f"score-{pairs[0].clip_id if not batch else pred.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir = ranks.on_main(_claim, out_dir, manifest, default, resume)
    timings = {"check_s": time.perf_counter() - started}
    try:
        started = time.perf_counter()
        merged = score_preds(pairs, config, networks, device, progress, audio_info, crops,
                             manifest["sync"] if ranks.is_main else None, run_dir, ranks)
        if not ranks.is_main:
            return None
        result = _result(merged, networks, config, real_files, manifest)
        summary = summarise(result, MODEL_NAME, config, seed)
        notes = summary.setdefault("notes", {})
        notes["ground_truth"] = NOTES["ground_truth"]
        if not real_files and "fid" in config.networks:
            notes["fid"] = NOTES["no_real"]
        if not source_files and "csim" in networks:
            notes["csim"] = NOTES["no_source"]
        timings["score_s"] = time.perf_counter() - started
        finish_run(run_dir, manifest, result, summary, timings, report)
    except BaseException as error:
        if not ranks.is_main:
            raise
        if resume or score_partial.has_partials(run_dir):
            mark_failed(run_dir, manifest, error)  # kept for --resume
        else:
            release_run_dir(run_dir)
        raise
    finally:
        if ranks.is_main:
            unlock_run_dir(run_dir)
    shutil.rmtree(run_dir / score_partial.PARTIAL_DIR, ignore_errors=True)
    return run_dir


def score_metric_noref(name: str, pred: Path, source: Path | None = None,
                       config: EvalConfig = EvalConfig()) -> list[float]:
    """One reference-free per-frame metric of one generated video (or image), one value per frame (NaN where
    the frame has no face): ``cpbd`` on the face crop, ``csim`` against ``source``."""
    if name not in NOREF_FRAME_METRICS:
        raise ScoreError(f"unknown reference-free metric '{name}'; choose one of {', '.join(NOREF_FRAME_METRICS)}")
    if name == "csim" and source is None:
        raise ScoreError("--metric csim needs --source IMAGE|VIDEO: the identity to compare with")
    pred = Path(pred)
    pair = check_pred(clip_id_of(pred), pred)
    networks, _ = _networks(dataclasses.replace(config, networks=tuple(
        n for n in config.networks if n == "lmd" or n == name), official_sync=False), None, torch.device("cpu"), False)
    if name not in networks and name == "csim":
        raise ScoreError("--metric csim needs the ArcFace weights: bench weights fetch --from-file arcface=PATH")
    crops = {pair.clip_id: identity_crops(Path(source), networks.get("pose"))} if name == "csim" else {}
    merged = score_preds([pair], config, networks, progress=False, sources=crops)
    frames = merged.result().frames
    return [float(v) for v in frames[name]] if name in frames else [float("nan")] * len(frames)
