"""The face-crop columns of one scored batch: psnr_face, ssim_face, lpips_face (with the ground truth), cpbd and
csim (reference-free), on each frame's face box ``meta[i]["face_box"]`` (x0, y0, x1, y1; see
``bench.data.face_box``).

* psnr_face, ssim_face: as psnr / ssim on the box's pixels at their own size;
* lpips_face: both crops resized to ``LPIPS_SIZE`` square (antialiased bilinear), so every face is compared at
  one scale whatever its size in the frame;
* cpbd: ``bench.metrics.cpbd`` on the generated crop in gray (PIL 'L' luma), at its own size; NaN for a crop
  smaller than one 64 x 64 block (the reference scores 0 there: a number that says nothing about blur);
* csim: cosine similarity of the generated crop's ArcFace embedding with the source identity's
  (``bench.metrics.identity``; the source is embedded once per clip by ``FrameScorer.set_source``).

A frame without a box gets NaN in every face column; a batch where no frame has a box gets no face column.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from bench.metrics import cpbd as cpbd_metric
from bench.metrics import identity
from bench.metrics import image as image_metrics
from bench.metrics.lpips import lpips_distance

LPIPS_SIZE = 128  # px: the square both face crops are resized to for lpips_face
FACE_COLUMNS = ("psnr_face", "ssim_face", "lpips_face", "cpbd", "csim")

Box = tuple[int, int, int, int]


def as_box(value: Any) -> Box | None:
    """A meta "face_box" as four ints, or None (absent, None, or any NaN coordinate)."""
    if value is None:
        return None
    coords = [float(v) for v in value]
    if len(coords) != 4 or not all(np.isfinite(coords)):
        return None
    x0, y0, x1, y1 = (int(round(v)) for v in coords)
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def _inside(box: Box | None, height: int, width: int) -> Box | None:
    """The box clipped to the frame (None when nothing of it is inside)."""
    if box is None:
        return None
    x0, y0, x1, y1 = max(box[0], 0), max(box[1], 0), min(box[2], width), min(box[3], height)
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def crop_u8(frame: torch.Tensor, box: Box) -> np.ndarray:
    """The box's pixels of a 3 x H x W frame (uint8 values as floats) as h x w x 3 uint8."""
    x0, y0, x1, y1 = box
    return frame[:, y0:y1, x0:x1].permute(1, 2, 0).round().clamp(0, 255).byte().cpu().numpy()


def source_crops(frames: np.ndarray | torch.Tensor, boxes: Sequence[Any]) -> list[np.ndarray]:
    """Face crops (h x w x 3 uint8) of the frames that have a box: N x 3 x H x W (0-255) or N x H x W x 3 uint8."""
    out = []
    for frame, value in zip(frames, boxes):
        box = as_box(value)
        if box is None:
            continue
        frame = torch.as_tensor(np.asarray(frame) if not isinstance(frame, torch.Tensor) else frame)
        if frame.shape[-1] == 3 and frame.shape[0] != 3:
            frame = frame.permute(2, 0, 1)
        box = _inside(box, int(frame.shape[-2]), int(frame.shape[-1]))
        if box is not None:
            out.append(crop_u8(frame.float(), box))
    return out


def _cpbd(crop: np.ndarray) -> float:
    if min(crop.shape[:2]) < cpbd_metric.BLOCK:
        return float("nan")
    return cpbd_metric.cpbd(cpbd_metric.to_gray(crop))


def face_columns(pred_u8: torch.Tensor, gt_u8: torch.Tensor | None, boxes: list[Box | None],
                 lpips_model: torch.nn.Module | None = None, identity_model: torch.nn.Module | None = None,
                 source: torch.Tensor | None = None) -> list[dict[str, float]]:
    """One dict of face columns per frame (empty dicts when no frame has a box)."""
    height, width = pred_u8.shape[-2:]
    boxes = [_inside(box, int(height), int(width)) for box in boxes]
    if not any(box is not None for box in boxes):
        return [{} for _ in boxes]
    names = (["psnr_face", "ssim_face"] if gt_u8 is not None else []) + \
        (["lpips_face"] if gt_u8 is not None and lpips_model is not None else []) + ["cpbd"] + \
        (["csim"] if identity_model is not None and source is not None else [])
    rows = [{name: float("nan") for name in names} for _ in boxes]
    have = [i for i, box in enumerate(boxes) if box is not None]
    crops = {i: crop_u8(pred_u8[i], boxes[i]) for i in have}
    for i in have:
        row = rows[i]
        row["cpbd"] = _cpbd(crops[i])
        if gt_u8 is None:
            continue
        x0, y0, x1, y1 = boxes[i]
        crop_pred, crop_gt = pred_u8[i:i + 1, :, y0:y1, x0:x1], gt_u8[i:i + 1, :, y0:y1, x0:x1]
        row["psnr_face"] = float(image_metrics.psnr(crop_pred, crop_gt)[0])
        row["ssim_face"] = float(image_metrics.ssim(crop_pred, crop_gt)[0])
    if "lpips_face" in names:
        pred_crops = _resized([pred_u8[i] for i in have], boxes, have)
        gt_crops = _resized([gt_u8[i] for i in have], boxes, have)
        with torch.no_grad():
            values = lpips_distance(lpips_model, pred_crops, gt_crops).cpu().numpy()
        for i, value in zip(have, values):
            rows[i]["lpips_face"] = float(value)
    if "csim" in names:
        embeddings = identity.embed(identity_model, [crops[i] for i in have])
        for i, value in zip(have, (embeddings @ source).numpy()):
            rows[i]["csim"] = float(value)
    return rows


def _resized(frames: list[torch.Tensor], boxes: list[Box | None], have: list[int]) -> torch.Tensor:
    """The crops of ``frames`` (3 x H x W, 0-255) at LPIPS_SIZE square, in [0, 1]."""
    out = []
    for frame, i in zip(frames, have):
        x0, y0, x1, y1 = boxes[i]
        crop = frame[None, :, y0:y1, x0:x1].float() / 255.0
        out.append(F.interpolate(crop, size=(LPIPS_SIZE, LPIPS_SIZE), mode="bilinear", align_corners=False,
                                 antialias=True).clamp(0, 1))
    return torch.cat(out)
