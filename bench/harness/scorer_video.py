"""FVD's windows while frames stream through ``FrameScorer``: each clip's frames are kept at I3D's input size
(224 x 224, [-1, 1]: ``bench.metrics.fvd.preprocess_frames``) until a 16-frame window is complete.

Windows are non-overlapping and follow the clip's frames in order from its first frame: frames 0-15, 16-31, ...
A partial last window is dropped, as is a clip shorter than 16 frames. A new clip, or a frame that does not
follow the previous one, starts a new window. ``cap`` > 0 keeps at most that many windows per clip (its first
ones). Memory: at most 15 frames per side plus one batch, whatever the clip's length or resolution.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch

from bench.metrics import fvd


class Window(NamedTuple):
    pred: torch.Tensor  # 3 x 16 x 224 x 224 in [-1, 1]
    gt: torch.Tensor | None  # the same frames of the ground truth (None: scored without one)
    abs_yaw: float  # the frames' mean |yaw| (NaN: no pose for any of them)


class ClipWindows:
    """The windows of the frames given to ``add``, clip by clip (see the module docstring)."""

    def __init__(self, length: int = fvd.WINDOW, cap: int = 0) -> None:
        self.length, self.cap = length, cap
        self.clip: Any = None
        self.next_frame: int | None = None
        self.emitted = 0  # windows of the current clip so far
        self.pending = 0  # frames of the window under way
        self.pred: list[torch.Tensor] = []
        self.gt: list[torch.Tensor] = []
        self.yaw: list[float] = []

    def add(self, pred_u8: torch.Tensor, gt_u8: torch.Tensor | None, meta: list[dict[str, Any]]) -> list[Window]:
        """A batch (B x 3 x H x W, uint8 values) and its frames' labels ("clip_id", "frame", "yaw") -> the windows
        it completes."""
        plan: list[tuple[int, bool]] = []  # (frame in the batch, whether a new window starts before it)
        for i, info in enumerate(meta):
            clip, frame = info.get("clip_id"), int(info.get("frame", -1))
            restart = clip != self.clip or frame != self.next_frame
            if clip != self.clip:
                self.clip, self.emitted = clip, 0
            self.next_frame = frame + 1
            if restart:
                self.pending = 0
            if self.cap and self.emitted >= self.cap:
                continue
            plan.append((i, restart))
            self.pending += 1
            if self.pending == self.length:
                self.emitted, self.pending = self.emitted + 1, 0
        if not plan:
            return []
        index = [i for i, _ in plan]
        pred = fvd.preprocess_frames(pred_u8[index])  # only the frames a window may use
        gt = fvd.preprocess_frames(gt_u8[index]) if gt_u8 is not None else None
        out = []
        for k, (i, restart) in enumerate(plan):
            if restart:
                self.pred, self.gt, self.yaw = [], [], []
            self.pred.append(pred[k])
            if gt is not None:
                self.gt.append(gt[k])
            self.yaw.append(abs(float(meta[i].get("yaw", 0.0))))
            if len(self.pred) == self.length:
                yaws = np.array(self.yaw)
                abs_yaw = float(np.mean(yaws[np.isfinite(yaws)])) if np.isfinite(yaws).any() else float("nan")
                out.append(Window(torch.stack(self.pred, 1), torch.stack(self.gt, 1) if len(self.gt) == self.length else None, abs_yaw))
                self.pred, self.gt, self.yaw = [], [], []
        return out
