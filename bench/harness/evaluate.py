"""Evaluate a generator on a split: run it over every test frame and score with ``FrameScorer``.

Generated frames are quantised to uint8 before scoring, as they would be in a saved video, and
scored at the model's resolution against the ground truth resized the same way. Image metrics use
the full frame; calibration metrics use the pixels the model had to generate (the protocol's mask),
since pixels passed through from the input have zero error and would make any map look calibrated.
"""
from __future__ import annotations

import logging
from typing import Any, Iterable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from bench.config import EvalConfig
from bench.data.video import resample_indices
from bench.data.frames import ClipTensors, eval_reference_indices, make_batch, mouth_mask
from bench.harness.scorer import EvalResult, FrameScorer, summarise
from bench.harness.scorer_face import source_crops
from bench.harness.scorer_state import export_state, merge_state
from bench.harness.shard import Ranks
from bench.metrics.sync import clip_sync, local_values, official_values, shifted_mel
from bench.metrics.dynamics import region_means

__all__ = ["EvalResult", "clip_sync", "evaluate", "metric_networks", "score_clip", "summarise"]

log = logging.getLogger(__name__)


def clip_sync_values(frames: torch.Tensor, clip: ClipTensors, local: nn.Module | None, official: Any,
                     device: torch.device | str) -> dict[str, float]:
    """The clip's LSE scores: ``*_local`` from the project's expert, ``lse_c``/``lse_d`` from the official one."""
    values: dict[str, float] = {}
    if local is not None:
        result = clip_sync(local, frames, clip.mel.to(device))
        if result is not None:
            values.update(local_values(result))
    if official is not None and clip.audio is not None:
        # the official network reads 25 fps video: frames at another rate are resampled by time first
        result = official(frames[torch.from_numpy(resample_indices(len(frames), clip.fps))], clip.audio)
        if result is not None:
            values.update(official_values(result))
    return values


def expert_reference(local: nn.Module, clip: ClipTensors, device: torch.device | str) -> dict[str, float]:
    """The local expert's ceiling and floor on this clip: LSE-C on the ground truth with its own audio, and
    with the audio moved beyond the offset search (``bench.metrics.sync.shifted_mel``)."""
    mel = clip.mel.to(device)
    values = {}
    for key, audio in (("lse_c_local_gt", mel), ("lse_c_local_shifted", shifted_mel(mel))):
        result = clip_sync(local, clip.frames.to(device), audio)
        if result is not None:
            values[key] = result.lse_c
    return values


# Networks whose weights may be missing: the metric is then left out (summary.json's notes say why) instead of
# stopping the run. No package ships ArcFace weights, and FVD's I3D is a 47 MB download of its own.
OPTIONAL_NETWORKS = {"fvd": "fvd_i3d", "csim": "arcface"}


def metric_networks(config: EvalConfig, device: torch.device | str = "cpu") -> dict[str, nn.Module]:
    """The networks ``config.networks`` asks for; missing weights raise one line naming `bench weights fetch`,
    except for ``OPTIONAL_NETWORKS``, which are then left out (logged)."""
    from bench.metrics.fid import build_inception
    from bench.metrics.fvd import build_i3d
    from bench.metrics.identity import load_arcface
    from bench.metrics.lmd import build_landmarks
    from bench.metrics.lpips import build_lpips
    from bench.weights import store as weights

    builders = {"lpips": build_lpips, "fid": build_inception, "lmd": build_landmarks, "fvd": build_i3d,
                "csim": lambda device: load_arcface(device=device)}
    unknown = set(config.networks) - set(builders)
    if unknown:
        raise ValueError(f"unknown metric networks {sorted(unknown)}; known: {sorted(builders)}")
    networks = {}
    for name in config.networks:
        entry = OPTIONAL_NETWORKS.get(name)
        if entry is not None and not weights.provisioned(entry):
            log.warning("%s: weights '%s' are not provisioned; %s is left out", name, entry, name)
            continue
        networks[name] = builders[name](device=device)
    return networks


@torch.no_grad()
def score_clip(model: nn.Module, clip: ClipTensors, n_refs: int, config: EvalConfig, device: torch.device | str,
               networks: dict[str, nn.Module], first_frame: int = 0,
               bar: tqdm | None = None) -> tuple[dict[str, np.ndarray], list[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """One clip through the model into a fresh ``FrameScorer``: its state (``bench.harness.scorer_state``) and its
    FID features per batch. ``first_frame``: the clip's first frame's index in the split (FID's every-n-th pick)."""
    scorer = FrameScorer.with_networks(config, networks, keep_features=True)
    scorer.frames_seen = first_frame  # FID picks every fid_every-th frame of the split, as one scorer would
    face_boxes = clip_face_boxes(clip)
    if face_boxes is not None:  # csim's source identity: the face in the references of the clip's first frame
        refs = eval_reference_indices(clip.n_frames, n_refs, 0)
        scorer.set_source(source_crops(clip.frames[refs], [face_boxes[r] for r in refs]))
    sync_model = networks.get("sync")
    official = networks.get("sync_official")  # bench.metrics.lse_official.OfficialSync
    keep_frames = sync_model is not None or official is not None
    generated = []
    for start in range(0, clip.n_frames, config.batch_size):
        targets = list(range(start, min(start + config.batch_size, clip.n_frames)))
        refs = [eval_reference_indices(clip.n_frames, n_refs, t) for t in targets]
        batch = make_batch(clip, targets, refs, device)
        pred, log_scale = model(batch["audio"], batch["masked"], batch["refs"])
        pred_u8 = (pred.float().clamp(0, 1) * 255).round()
        gt_u8 = batch["target"] * 255
        region = mouth_mask(*pred.shape[-2:])[0, 0].bool().numpy()
        meta = [{"clip_id": clip.clip_id, "frame": t, "identity": clip.identity, "stratum": clip.stratum,
                 "yaw": float(clip.yaw[t]), "pitch": float(clip.pitch[t]), "roll": float(clip.roll[t]),
                 **({"mouth_box": clip.mouth_boxes[t]} if clip.mouth_boxes is not None else {}),
                 **({"face_box": face_boxes[t]} if face_boxes is not None else {})}
                for t in targets]
        scale = torch.exp(log_scale[:, 0].float())
        if clip.affected is not None:  # scene events (synthetic conditions): u and error on their pixels
            _add_event_columns(meta, clip, targets, scale, pred_u8, gt_u8, region)
        scorer.update(pred_u8, gt_u8, scale, region, meta)
        if keep_frames:
            generated.append(pred_u8)
        if bar is not None:
            bar.update(len(targets))
    if keep_frames:
        values = clip_sync_values(torch.cat(generated), clip, sync_model, official, device)
        if sync_model is not None:
            values.update(expert_reference(sync_model, clip, device))
        if values:
            scorer.add_clip({"clip_id": clip.clip_id, "yaw": float(abs(clip.yaw).mean())}, values)
    # FID's features travel per batch, outside the state, so that the merged sums add up batch by batch
    fid_batches, scorer.fid_features = scorer.fid_features, []
    return export_state(scorer), fid_batches


def clip_face_boxes(clip: ClipTensors) -> list | None:
    """The clip's face box per frame at the model's resolution ((x0, y0, x1, y1) or None), from its landmarks
    (``bench.data.face_box``); None for a clip without landmarks."""
    # ClipTensors.face_boxes is filled by bench.data.frames.prepare_clip; clips built without it have none
    boxes = getattr(clip, "face_boxes", None)
    return None if boxes is None else list(boxes)


def _add_event_columns(meta: list[dict[str, Any]], clip: ClipTensors, targets: list[int], scale: torch.Tensor,
                       pred_u8: torch.Tensor, gt_u8: torch.Tensor, region: np.ndarray) -> None:
    """Each frame's event bits and mean u / error on the event's pixels and on the rest of the region."""
    error = (pred_u8 - gt_u8).abs().mean(1).cpu() / 255.0  # as the scorer's per-pixel error
    mask = torch.from_numpy(np.ascontiguousarray(clip.affected_mask[targets]))
    means = region_means(scale.cpu(), error, mask, torch.from_numpy(region))
    for i, t in enumerate(targets):
        meta[i]["affected"] = int(clip.affected[t])
        meta[i].update({key: float(values[i]) for key, values in means.items()})


@torch.no_grad()
def evaluate(model: nn.Module, clips: Iterable[ClipTensors], n_refs: int, config: EvalConfig,
             device: torch.device | str = "cpu", progress: bool = True, total: int | None = None,
             networks: dict[str, nn.Module] | None = None, ranks: Ranks | None = None) -> EvalResult | None:
    """Score the model on every clip; under torchrun (``ranks``) each rank scores its share of the clips.

    Each clip is scored into its own ``FrameScorer`` and the clips' states are merged in clip order
    (``bench.harness.scorer_state``), FID's sums batch by batch: the result depends on the clips and their
    order only, so K ranks give what one process gives. Returns the result on rank 0, None on the others.
    """
    model.eval()
    networks = networks or {}
    ranks = ranks or Ranks()
    clips = list(clips)
    starts = np.concatenate([[0], np.cumsum([clip.n_frames for clip in clips])]).astype(int)
    merged = FrameScorer(config)
    bar = tqdm(total=total, desc="evaluate", unit="frame", disable=not (progress and ranks.is_main), leave=False)
    mine = bar if ranks.is_main else None

    def work(index: int) -> tuple[dict[str, np.ndarray], list]:
        return score_clip(model, clips[index], n_refs, config, device, networks, int(starts[index]), mine)

    for index, (state, fid_batches) in ranks.map_ordered(range(len(clips)), work):
        merge_state(merged, state)
        for real, fake, groups in fid_batches:
            merged.add_fid_features(real, fake, groups)
        if ranks.owner(index) != 0:
            bar.update(clips[index].n_frames)
    bar.close()
    return merged.result() if ranks.is_main else None
