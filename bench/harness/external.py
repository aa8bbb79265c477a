"""`bench score`: score any model's output videos against ground truth into a standard run directory.

External outputs are scored with the same ``FrameScorer`` as `bench run`, so the run directory
(manifest.json, frames.parquet, summary.json, curves.npz, samples.npz, report.html) reads the same in
the report, `bench compare` and notebooks. Differences from `bench run`, and why:

* region: the whole frame. An external video carries no mask of the pixels its model generated,
  so calibration metrics use every pixel (`bench run` uses the generated mouth region).
* pose: estimated per ground-truth frame from MediaPipe's face mesh (``bench.data.head_pose``) whenever LMD
  is on (it loads the same mesh); without it (``--no-networks``), or where no face is found, yaw/pitch/
  roll are NaN and pose_bin is "unknown". A clip's LSE goes to the bin of its mean |yaw|.
* lip sync, per clip: ``lse_c``/``lse_d`` with the official SyncNet when its weights are provisioned, and
  ``lse_c_local``/``lse_d_local`` with ``--sync-expert CKPT`` (a ``bench train --model syncnet``
  checkpoint, e.g. trained on the user's own dataset). The audio is ``--audio`` or else the generated
  video's own sound track; clips without audio get no LSE and the manifest says why (``sync.skipped``).
  Both experts read 25 fps: other rates are resampled to 25 fps by nearest frame in time, as
  syncnet_python's ffmpeg step does (``sync.resampled_from_fps``); frame directories are taken as 25 fps.

Inputs are checked (readable, frame counts, sizes, frame rates and colour agree, uncertainty shapes)
before anything is written, so bad input leaves no directory. Then the run directory is claimed
(created exclusively, manifest status "running") and the clips are scored one at a time, each into a
fresh ``FrameScorer`` whose state goes to ``partial/<clip_id>.npz`` as soon as the clip is done
(``bench.harness.external_partial``); the summary is built from those states, so a failure or a kill loses only the
clip under way and ``--resume`` scores only the clips still missing, to the same summary.json. FID
takes every ``fid_every``-th frame of each clip (frame index within the clip), so the pick does not
depend on where a run was resumed. Frames stream in batches, so memory does not grow with the number
of frames; clips may differ in resolution and frame rate. Under torchrun the ranks share the clips
(``bench.harness.shard``): rank 0 alone checks and claims the directory, writes every partial state and
merges them in clip order, so the run and its ``--resume`` are one process's.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import shutil
import time
from contextlib import ExitStack, closing
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from bench.harness import external_partial as score_partial
from bench.api import VIDEO_FPS
from bench.data import video
from bench.data.video import resample_frames
from bench.metrics.specs import FRAME_METRICS
from bench.config import EvalConfig
from bench.harness.evaluate import metric_networks
from bench.harness.sync_eval import sync_networks
from bench.harness.rundir import (check_run_dir_free, claim_new_run_dir, claim_run_dir, finish_run, lock_run_dir,
                          mark_failed, new_manifest, release_run_dir, unlock_run_dir, write_json)
from bench.harness.external_inputs import (Pair, ScoreError, audio_records, batch_pairs, check_pair, clip_id_of,
                                identity_crops, source_paths,
                                inputs_hash, is_batch_dir)
from bench.harness.scorer_state import export_state, merge_state
from bench.harness.scorer import EvalResult, FrameScorer, summarise
from bench.harness.scorer_face import source_crops
from bench.data.face_box import MESH, face_boxes
from bench.harness.recalibrate import add_recalibration
from bench.harness.shard import Ranks

__all__ = ["Pair", "ScoreError", "check_pair", "inputs_hash", "resample_frames", "score", "score_batch",
           "score_clip", "score_metric", "score_pairs"]

log = logging.getLogger(__name__)

MODEL_NAME = score_partial.MODEL_NAME  # "external"
POSE_SOURCE = ("estimated on the ground truth: MediaPipe's 3-D face mesh fitted to its canonical face, corrected near "
               "profile (bench.data.head_pose)")
REGION = "full frame (external outputs carry no mask of generated pixels)"
PIXEL_BUDGET = 1 << 21  # pixels per batch: 32 frames at 256 px, 1 at 1080p; bounds SSIM's scratch memory


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


def _meta(pair: Pair, frame: int, pose: np.ndarray | None = None, face_box: Any = None) -> dict[str, Any]:
    """Frame labels; the pose is estimated on the ground truth (NaN without an estimator: pose_bin "unknown"), the
    face box (x0, y0, x1, y1) from the same face mesh (absent without one, None where no face is found)."""
    yaw, pitch, roll = (float(v) for v in pose) if pose is not None else (float("nan"),) * 3
    meta = {"clip_id": pair.clip_id, "frame": frame, "identity": pair.clip_id, "stratum": "external",
            "yaw": yaw, "pitch": pitch, "roll": roll}
    if face_box is not None:
        meta["face_box"] = face_box
    return meta


def _face_boxes(estimator: Any, frames: torch.Tensor) -> list:
    """Face boxes of B x 3 x H x W frames from the face mesh the pose estimator has just run on these very frames
    (``FaceMesh`` keeps the last batch's points: no second pass), 1.2 x the mesh's extent (``face_box.MESH``)."""
    points = estimator.mesh.points_3d(frames)[..., :2]
    return face_boxes(points, int(frames.shape[-1]), int(frames.shape[-2]), MESH)


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


def _sync_values(pair: Pair, networks: dict[str, Any], audio: dict[str, dict[str, Any]], sync_log: dict[str, Any],
                 device: torch.device | str) -> dict[str, float]:
    """The clip's LSE scores; ``sync_log["skipped"]`` / ``["resampled_from_fps"]`` record what was not plain."""
    from bench.harness.sync_eval import video_sync_values

    official, local = networks.get("sync_official"), networks.get("sync")
    if official is None and local is None:
        return {}
    wave, reason = _sync_audio(pair, audio)
    if wave is None:
        sync_log.setdefault("skipped", {})[pair.clip_id] = reason
        return {}

    # Frame directories carry no rate: taken as 25 fps. Other rates are resampled to 25 fps first, by
    # nearest frame in time (as ffmpeg's -r 25, which syncnet_python's pipeline applies).
    fps = pair.fps or VIDEO_FPS
    if abs(fps - VIDEO_FPS) > 0.01:
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


def score_clip(pair: Pair, config: EvalConfig, networks: dict[str, Any], device: torch.device | str = "cpu",
               audio: dict[str, dict[str, Any]] | None = None, bar: tqdm | None = None,
               source: np.ndarray | list[np.ndarray] | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """One pair through a fresh FrameScorer (region None: the whole frame), plus its LSE.

    Face boxes (the face-crop metrics) come from the face mesh of the pose estimate on the ground truth. csim's
    source identity is ``source`` (face crops, h x w x 3 uint8: ``--source``), else the face crop of the first
    ground-truth frame with a face. Returns the scorer's state (``bench.harness.scorer_state``) and the clip's
    lip-sync record (``{"skipped": {clip: why}, "resampled_from_fps": {clip: fps}}`` entries, as in the manifest).
    """
    scorer = FrameScorer.with_networks(config, networks, keep_features=True)
    estimator = networks.get("pose")  # bench.data.head_pose.PoseEstimator
    has_source = source is not None and len(source) > 0
    if has_source:
        scorer.set_source(source)
    clip_yaws: list[np.ndarray] = []
    for start, pred, gt, u in stream_pair(pair, _frames_per_batch(config, pair.height, pair.width)):
        pred_u8 = torch.from_numpy(pred).to(device).permute(0, 3, 1, 2).float().contiguous()  # NCHW: faster SSIM
        gt_u8 = torch.from_numpy(gt).to(device).permute(0, 3, 1, 2).float().contiguous()
        scale = None if u is None else torch.from_numpy(u).to(device)
        poses = estimator(gt_u8) if estimator is not None else None
        boxes = _face_boxes(estimator, gt_u8) if estimator is not None else [None] * len(pred)
        if poses is not None:
            clip_yaws.append(np.abs(poses[:, 0]))
        first = next((i for i, box in enumerate(boxes) if box is not None), None)
        if not has_source and first is not None:
            scorer.set_source(source_crops(gt_u8[first:first + 1], boxes[first:first + 1]))
            has_source = True
        scorer.update(pred_u8, gt_u8, scale, None,
                      [_meta(pair, start + i, None if poses is None else poses[i], boxes[i]) for i in range(len(pred))])
        if bar is not None:
            bar.update(len(pred))
    sync: dict[str, Any] = {}
    values = _sync_values(pair, networks, audio or {}, sync, device)
    add_clip_scores(scorer, pair.clip_id, values, clip_yaws)
    return export_state(scorer), sync


def add_clip_scores(scorer: FrameScorer, clip_id: str, values: dict[str, float], abs_yaws: list[np.ndarray]) -> None:
    """The clip's own scores (LSE, face tracking), in the pose bin of its frames' mean |yaw| (unknown without one)."""
    if not values:
        return
    yaws = np.concatenate(abs_yaws) if abs_yaws else np.array([np.nan])
    mean_yaw = float(np.nanmean(yaws)) if np.isfinite(yaws).any() else float("nan")
    scorer.add_clip({"clip_id": clip_id, "yaw": mean_yaw}, values)


def score_pairs(pairs: list[Pair], config: EvalConfig, networks: dict[str, Any] | None = None,
                device: torch.device | str = "cpu", progress: bool = True,
                audio: dict[str, dict[str, Any]] | None = None, sync_log: dict[str, Any] | None = None,
                run_dir: Path | None = None, ranks: Ranks | None = None,
                sources: dict[str, list[np.ndarray]] | None = None) -> EvalResult | None:
    """Score every pair clip by clip (``score_clip``) and add the clips' states up in order.

    With ``run_dir``, each clip's state is saved to ``partial/<clip_id>.npz`` as soon as it is scored, and
    clips saved there before are read back instead of scored again (``--resume``). The result comes from
    the clips' states either way, so it does not depend on where a run was interrupted. Under torchrun
    (``ranks``) each rank scores its share of the clips and rank 0 alone saves and merges them (one round of
    clips at a time, in clip order), so the result is one process's; it is returned on rank 0, None elsewhere.
    """
    networks, sources = networks or {}, sources or {}

    def one(pair: Pair, bar: tqdm | None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return score_clip(pair, config, networks, device, audio, bar, source=sources.get(pair.clip_id))

    merged = merge_clips(pairs, config, one, progress, sync_log, run_dir, ranks)
    return None if merged is None else merged.result()


def merge_clips(pairs: list[Pair], config: EvalConfig,
                score_one: Callable[[Pair, tqdm | None], tuple[dict[str, np.ndarray], dict[str, Any]]],
                progress: bool = True, sync_log: dict[str, Any] | None = None, run_dir: Path | None = None,
                ranks: Ranks | None = None) -> FrameScorer | None:
    """``score_one(pair, bar)`` on every clip not saved before, each state saved to ``partial/`` as it is done
    and every state merged in clip order; the merged scorer on rank 0, None on the other ranks."""
    ranks = ranks or Ranks()
    sync_log = {} if sync_log is None else sync_log
    # rank 0 decides which clips were saved before; a rank reads only those, which nobody writes any more
    saved = ranks.on_main(lambda: {pair.clip_id for pair in pairs if run_dir is not None
                                   and score_partial.partial_path(run_dir, pair.clip_id).is_file()})
    if saved and ranks.is_main:
        log.info("%d of %d clip(s) already scored in %s; scoring the rest", len(saved), len(pairs), run_dir)
    bar = tqdm(total=sum(p.n_frames for p in pairs if p.clip_id not in saved), desc="score", unit="frame",
               disable=not (progress and ranks.is_main), leave=False)

    def work(pair: Pair) -> tuple[tuple[dict[str, np.ndarray], dict[str, Any]], bool]:
        loaded = score_partial.read_partial(run_dir, pair.clip_id) if pair.clip_id in saved else None
        if loaded is not None:
            return loaded, False
        return score_one(pair, bar if ranks.is_main else None), True

    merged = FrameScorer(config)
    for index, ((state, sync), fresh) in ranks.map_ordered(pairs, work):
        if fresh and run_dir is not None:
            score_partial.write_partial(run_dir, pairs[index].clip_id, state, sync)
        if fresh and ranks.owner(index) != 0:
            bar.update(pairs[index].n_frames)
        merge_state(merged, state)
        for key, entries in sync.items():
            sync_log.setdefault(key, {}).update(entries)
    bar.close()
    return merged if ranks.is_main else None


def _claim(out_dir: Path | None, manifest: dict[str, Any], default: Path, resume: bool) -> Path:
    """The run directory, held (flock) for this process: claimed afresh, or the unfinished run to resume."""
    if not resume:
        if out_dir is None:
            return claim_new_run_dir(default, manifest, lock=True)
        return claim_run_dir(out_dir, manifest, hint=score_partial.resume_hint(out_dir), lock=True)
    run_dir = Path(out_dir)
    lock_run_dir(run_dir)  # a live run still holds it: refused
    try:
        recorded = score_partial.check_resumable(run_dir)  # again, now that no other process writes there
        score_partial.check_same_run(run_dir, recorded, manifest)
    except BaseException:
        unlock_run_dir(run_dir)
        raise
    manifest["created"] = recorded.get("created", manifest["created"])
    manifest["resumed"] = [*recorded.get("resumed", []), dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")]
    score_partial.clean_temporary(run_dir)
    write_json(run_dir / "manifest.json", manifest)
    return run_dir


def _run(pairs: list[Pair], inputs: dict[str, Path | None], out_dir: Path | None, config: EvalConfig, seed: int,
         report: Callable[[Path], Path] | None, progress: bool, batch: bool, sync_expert: Path | None = None,
         resume: bool = False) -> Path | None:
    started = time.perf_counter()
    sources = source_paths(inputs.get("source"), [p.clip_id for p in pairs])  # bad input fails before any work
    from bench.training.distributed import pick_device

    device = pick_device()
    ranks = Ranks.join(device)  # under torchrun: rank 0 checks, claims and writes; every rank scores
    progress = progress and ranks.is_main
    # The output is checked before the networks load, and claimed before any scoring.
    if resume:
        ranks.on_main(score_partial.check_resumable, out_dir)
    elif out_dir is not None:
        ranks.on_main(check_run_dir_free, out_dir, hint=score_partial.resume_hint(out_dir))
    audio = ranks.together(audio_records, inputs.get("audio"), [p.clip_id for p in pairs])
    networks, sync = ranks.together(_networks, config, sync_expert, device)
    crops: dict[str, list[np.ndarray]] = {}
    if "csim" in networks and sources:  # --source: csim against it instead of the ground truth's first face
        by_path = {path: ranks.together(identity_crops, path, networks.get("pose"))
                   for path in sorted(set(sources.values()))}
        crops = {stem: by_path[path] for stem, path in sources.items()}
    manifest = ranks.only_main(lambda: ranks.record(_manifest(pairs, inputs, out_dir, config, seed, batch, networks,
                                                                sync, audio, sources)))
    stem = pairs[0].clip_id if not batch else Path(inputs["pred"]).name
    default = Path("runs") / f"score-{stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir = ranks.on_main(_claim, out_dir, manifest, default, resume)
    timings = {"check_s": time.perf_counter() - started}
    if ranks.is_main:
        log.info("scoring %d frames of %d clip(s) into %s%s", sum(p.n_frames for p in pairs), len(pairs), run_dir,
                 " with uncertainty" if pairs[0].uncertainty else "")
    try:
        started = time.perf_counter()
        result = score_pairs(pairs, config, networks, device, progress, audio,
                             manifest["sync"] if ranks.is_main else None, run_dir, ranks, crops)
        if not ranks.is_main:
            return None
        summary = add_recalibration(summarise(result, MODEL_NAME, config, seed), result)  # cross-fitted: no val split
        timings["score_s"] = time.perf_counter() - started
        finish_run(run_dir, manifest, result, summary, timings, report)
    except BaseException as error:
        if not ranks.is_main:
            raise
        if resume or score_partial.has_partials(run_dir):
            mark_failed(run_dir, manifest, error)  # kept for --resume
        else:
            release_run_dir(run_dir)  # nothing scored: leave nothing behind
        raise
    finally:
        if ranks.is_main:
            unlock_run_dir(run_dir)
    shutil.rmtree(run_dir / score_partial.PARTIAL_DIR, ignore_errors=True)  # complete: every result is written
    return run_dir


def _networks(config: EvalConfig, sync_expert: Path | None, device: torch.device) -> tuple[dict[str, Any], dict]:
    """The metric networks, the lip-sync ones (and their manifest record) and, with LMD, the pose estimator."""
    networks: dict[str, Any] = dict(metric_networks(config, device))
    sync = sync_networks(networks, config, sync_expert, device)
    if "lmd" in networks:  # MediaPipe is loaded: estimate the ground truth's head pose for the pose bins
        from bench.data.head_pose import PoseEstimator

        networks["pose"] = PoseEstimator(networks["lmd"].mesh)
    return networks, sync


def _manifest(pairs: list[Pair], inputs: dict[str, Path | None], out_dir: Path | None, config: EvalConfig, seed: int,
              batch: bool, networks: dict[str, Any], sync: dict[str, Any], audio: dict | None,
              sources: dict[str, Path]) -> dict[str, Any]:
    settings = {**{k: None if v is None else str(Path(v).resolve()) for k, v in inputs.items()},
                "batch": batch, "region": REGION, "eval": dataclasses.asdict(config)}
    manifest = new_manifest(MODEL_NAME, settings, seed)
    manifest["checkpoint"] = None
    manifest["pose"] = POSE_SOURCE if "pose" in networks else None
    manifest["sync"] = {**sync, "skipped": {}, "resampled_from_fps": {}}
    manifest["data"] = {"source": "external", "hash": inputs_hash(inputs, exclude=out_dir), "audio": audio or None,
                        "clips": [{"clip_id": p.clip_id, "pred": str(p.pred.resolve()), "gt": str(p.gt.resolve()),
                                   "uncertainty": None if p.uncertainty is None else str(p.uncertainty.resolve()),
                                   "n_frames": p.n_frames, "height": p.height, "width": p.width, "fps": p.fps}
                                  for p in pairs]}
    if inputs.get("source") is not None:
        manifest["data"]["identity_source"] = {stem: str(path.resolve()) for stem, path in sources.items()}
    return manifest


def score(pred: Path, gt: Path, out_dir: Path | None, uncertainty: Path | None = None, audio: Path | None = None,
          config: EvalConfig = EvalConfig(), seed: int = 0, report: Callable[[Path], Path] | None = None, progress: bool = True,
          sync_expert: Path | None = None, resume: bool = False, source: Path | None = None) -> Path | None:
    """Score one output (video, frame directory or image) against its ground truth; returns the run directory
    (under torchrun: on rank 0; None on the other ranks, which scored their share of the clips).

    Two directories of videos are scored as a batch (see ``score_batch``). ``resume``: continue the
    unfinished run in ``out_dir`` (same inputs and settings), scoring only the clips it lacks.
    """
    pred, gt = Path(pred), Path(gt)
    uncertainty = None if uncertainty is None else Path(uncertainty)
    audio = None if audio is None else Path(audio)
    if is_batch_dir(pred) or is_batch_dir(gt):
        return score_batch(pred, gt, out_dir, uncertainty, audio, config, seed, report, progress, sync_expert,
                           resume, source)
    pair = check_pair(clip_id_of(pred), pred, gt, uncertainty)
    inputs = {"pred": pred, "gt": gt, "uncertainty": uncertainty, "audio": audio,
              "source": None if source is None else Path(source)}
    return _run([pair], inputs, out_dir, config, seed, report, progress, batch=False, sync_expert=sync_expert,
                resume=resume)


def score_batch(pred_dir: Path, gt_dir: Path, out_dir: Path | None, uncertainty_dir: Path | None = None,
                audio: Path | None = None, config: EvalConfig = EvalConfig(), seed: int = 0, report: Callable[[Path], Path] | None = None,
                progress: bool = True, sync_expert: Path | None = None, resume: bool = False,
                source: Path | None = None) -> Path | None:
    """Pair two directories of videos by file stem (clip_id = stem) and score all pairs into one run."""
    pred_dir, gt_dir = Path(pred_dir), Path(gt_dir)
    for path in (pred_dir, gt_dir):
        if not is_batch_dir(path):
            raise ScoreError(f"{path}: expected a directory of videos to pair with "
                             f"{gt_dir if path == pred_dir else pred_dir}")
    uncertainty_dir = None if uncertainty_dir is None else Path(uncertainty_dir)
    pairs = batch_pairs(pred_dir, gt_dir, uncertainty_dir)
    inputs = {"pred": pred_dir, "gt": gt_dir, "uncertainty": uncertainty_dir,
              "audio": None if audio is None else Path(audio), "source": None if source is None else Path(source)}
    return _run(pairs, inputs, out_dir, config, seed, report, progress, batch=True, sync_expert=sync_expert,
                resume=resume)


def score_metric(name: str, pred: Path, gt: Path, config: EvalConfig = EvalConfig()) -> list[float]:
    """One per-frame metric for one pair of images or videos, one value per frame (PSNR inf when identical)."""
    if name not in FRAME_METRICS:
        raise ScoreError(f"unknown metric '{name}'; choose one of {', '.join(FRAME_METRICS)}")
    pair = check_pair(clip_id_of(Path(pred)), Path(pred), Path(gt))
    config = dataclasses.replace(config, networks=(name,) if name in ("lpips", "lmd") else ())
    networks = metric_networks(config, torch.device("cpu"))
    result = score_pairs([pair], config, networks, progress=False)
    return [float(v) for v in result.frames[name]]
