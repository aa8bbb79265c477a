"""Lip-sync scoring inside the harness: which sync networks a run uses (the official SyncNet when
provisioned, the project's own expert from a checkpoint) and LSE over an external video's frame batches.

The scores themselves are ``bench.metrics.sync`` (LSE, the project's expert) and
``bench.metrics.lse_official`` (syncnet_python's crop rule with the official network).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from bench.api import SAMPLE_RATE, VIDEO_FPS
from bench.data.audio import frame_windows, log_mel
from bench.data.frames import resize_frames
from bench.files import file_sha256
from bench.metrics.lse_official import OfficialSync, build_official_sync, smooth_track, syncnet_crops
from bench.metrics.sync import clip_sync, local_values, official_values

if TYPE_CHECKING:
    from bench.config import EvalConfig

log = logging.getLogger(__name__)


def video_sync_values(batches: Any, audio: np.ndarray, official: OfficialSync | None, local: torch.nn.Module | None,
                      device: torch.device | str = "cpu") -> dict[str, float]:
    """LSE scores of one external video. ``batches()`` yields uint8 B x H x W x 3 frame batches afresh on each call
    (the video is decoded once per pass: face boxes, then crops), so memory holds 224-px crops, not frames."""

    def tensors(batch: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(batch).permute(0, 3, 1, 2).float()

    values: dict[str, float] = {}
    if official is not None:
        track = smooth_track(np.concatenate([official.boxes(tensors(batch)) for batch in batches()]))
        if track is not None:
            crops, start = [], 0
            for batch in batches():
                crops.append(syncnet_crops(batch, track[start:start + len(batch)]))
                start += len(batch)
            result = official.score(np.concatenate(crops), audio)
            if result is not None:
                values.update(official_values(result))
    if local is not None:
        frames = torch.cat([resize_frames(batch, local.config.image_size) for batch in batches()])
        mel = torch.from_numpy(frame_windows(log_mel(audio, SAMPLE_RATE), len(frames), VIDEO_FPS))
        result = clip_sync(local.to(device), frames.to(device).float(), mel.to(device))
        if result is not None:
            values.update(local_values(result))
    return values


def sync_networks(networks: dict[str, Any], config: "EvalConfig", sync_expert: Path | None,
                   device: torch.device | str) -> dict[str, Any]:
    """Add the official SyncNet (when asked for and provisioned) and a local expert checkpoint (when given) to
    ``networks``; returns what was used, for the manifest."""
    used: dict[str, Any] = {"official": None, "local": None}
    if config.official_sync:
        from bench.weights import store as weights

        lmd = networks.get("lmd")
        official = build_official_sync(device, mesh=lmd.mesh if lmd is not None else None)
        if official is not None:
            networks["sync_official"] = official
            used["official"] = {"sha256": file_sha256(weights.where("syncnet_official"))}
    if sync_expert is not None:
        from bench.training.checkpoint import CheckpointError, load_checkpoint

        expert, saved, _ = load_checkpoint(sync_expert, device)
        if saved.model != "syncnet":
            raise CheckpointError(f"{sync_expert}: --sync-expert must be a 'syncnet' checkpoint, not '{saved.model}'")
        networks["sync"] = expert.eval()
        used["local"] = {"path": str(Path(sync_expert).resolve()), "sha256": file_sha256(Path(sync_expert))}
    return used
