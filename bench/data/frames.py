"""Turn clips into model inputs: resized frames, mel windows, masked targets and references.

The model protocol these inputs follow (shapes, ranges, the generated region) is ``bench.api``'s.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from bench.api import MIN_REF_GAP, SAMPLE_RATE, SYNC_WINDOW, VIDEO_FPS
from bench.data.audio import frame_windows, log_mel
from bench.blocks.masks import mask_lower_half, mouth_mask  # re-exported: the torch side of the one mask rule
from bench.data.clips import Clip
from bench.data.face_box import clip_face_boxes


@dataclass
class ClipTensors:
    clip_id: str
    identity: str
    stratum: str
    frames: torch.Tensor  # T x 3 x S x S uint8, resized
    mel: torch.Tensor  # T x 80 x 16
    yaw: np.ndarray
    pitch: np.ndarray
    roll: np.ndarray
    mouth_boxes: np.ndarray | None = None  # T x 4 (x0, y0, x1, y1) in resized pixels, when landmarks exist
    audio: np.ndarray | None = None  # mono float32 at 16 kHz (the official SyncNet's front-end reads it)
    fps: float = VIDEO_FPS  # the frames' rate (the official SyncNet reads them resampled to VIDEO_FPS)
    affected: np.ndarray | None = None  # T uint8: scene events per frame (bench.data.synth.dynamics), when labelled
    affected_mask: np.ndarray | None = None  # T x S x S bool: their pixels at the model's resolution
    # T face boxes (x0, y0, x1, y1) or None per frame, at the model's resolution, when landmarks exist
    # (bench.data.face_box: the face-crop metrics and csim's source)
    face_boxes: list | None = None

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])


def resize_frames(frames: np.ndarray, size: int) -> torch.Tensor:
    """T x H x W x 3 uint8 -> T x 3 x size x size uint8 (area filter when shrinking)."""
    tensor = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
    if tensor.shape[-2:] == (size, size):
        return tensor.contiguous()
    mode = "area" if tensor.shape[-1] >= size else "bilinear"
    resized = F.interpolate(tensor.float(), size=(size, size), mode=mode)
    return resized.round().clamp(0, 255).to(torch.uint8)


MOUTH_POINTS = ("mouth_left", "mouth_right", "upper_lip", "lower_lip")


def mouth_boxes(clip: Clip, image_size: int) -> np.ndarray | None:
    """Square mouth boxes, T x 4 (x0, y0, x1, y1), at the model's resolution, or None without landmarks.

    Centred on the mouth landmarks; side = 1.6 x the larger of their width and height, at least 12 px
    (SSIM's 11-px window must fit), clipped to the image. Profile views shrink the mouth's width,
    hence the height term.
    """
    names = list(clip.meta.get("landmark_names", []))
    if clip.landmarks is None or not all(name in names for name in MOUTH_POINTS):
        return None
    scale = image_size / clip.frames.shape[2]
    points = clip.landmarks[:, [names.index(name) for name in MOUTH_POINTS]] * scale
    centre = (points.min(1) + points.max(1)) / 2
    side = np.maximum(1.6 * (points.max(1) - points.min(1)).max(1), 12.0)
    low = np.clip(np.round(centre - side[:, None] / 2), 0, image_size - 12)
    high = np.clip(low + np.round(side)[:, None], 12, image_size)
    return np.concatenate([low, high], axis=1).astype(np.int64)


def prepare_clip(clip: Clip, image_size: int) -> ClipTensors:
    zeros = np.zeros(clip.n_frames, dtype=np.float32)
    mel = frame_windows(log_mel(clip.audio, clip.sample_rate), clip.n_frames, clip.fps)
    return ClipTensors(
        clip_id=clip.clip_id,
        identity=clip.identity,
        stratum=str(clip.meta.get("stratum") or "unknown"),
        frames=resize_frames(clip.frames, image_size),
        mel=torch.from_numpy(mel),
        yaw=clip.yaw if clip.yaw is not None else zeros,
        pitch=clip.pitch if clip.pitch is not None else zeros,
        roll=clip.roll if clip.roll is not None else zeros,
        mouth_boxes=mouth_boxes(clip, image_size),
        audio=audio_16k(clip.audio, clip.sample_rate),
        fps=float(clip.fps),
        affected=None if clip.affected is None else np.asarray(clip.affected, dtype=np.uint8),
        affected_mask=None if clip.affected_mask is None else resize_mask(clip.affected_mask, image_size),
        face_boxes=clip_face_boxes(clip.landmarks, clip.frames.shape[1], clip.frames.shape[2], image_size),
    )


def resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """T x H x W bool -> T x size x size bool: a pixel is in when at least a quarter of its area is."""
    tensor = torch.from_numpy(np.ascontiguousarray(mask)).float()[:, None]
    if tensor.shape[-2:] == (size, size):
        return mask.astype(bool)
    mode = "area" if tensor.shape[-1] >= size else "nearest"
    return (F.interpolate(tensor, size=(size, size), mode=mode)[:, 0] >= 0.25).numpy()


def audio_16k(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mono float32 at the protocol's 16 kHz (polyphase resampling when the clip has another rate)."""
    audio = np.asarray(audio, dtype=np.float32)
    if sample_rate == SAMPLE_RATE:
        return audio
    from math import gcd

    from scipy.signal import resample_poly

    common = gcd(SAMPLE_RATE, int(sample_rate))
    return resample_poly(audio, SAMPLE_RATE // common, int(sample_rate) // common).astype(np.float32)


def eval_reference_indices(n_frames: int, n_refs: int, target: int) -> list[int]:
    """Fixed, evenly spaced references so every model sees the same ones, kept away from the target."""
    refs = []
    for index in np.linspace(0, n_frames - 1, n_refs + 2)[1:-1].round().astype(int):
        if abs(index - target) < MIN_REF_GAP:
            index = target + MIN_REF_GAP if target + MIN_REF_GAP < n_frames else target - MIN_REF_GAP
        refs.append(int(np.clip(index, 0, n_frames - 1)))
    return refs


def make_batch(clip: ClipTensors, targets: list[int] | torch.Tensor,
               refs: list[list[int]] | torch.Tensor, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    targets = torch.as_tensor(targets, dtype=torch.long)
    refs = torch.as_tensor(refs, dtype=torch.long)
    return _inputs(clip.frames[targets], clip.frames[refs], clip.mel[targets], device)


def _inputs(targets: torch.Tensor, refs: torch.Tensor, mel: torch.Tensor,
            device: torch.device | str, boxes: list[np.ndarray] | None = None) -> dict[str, torch.Tensor]:
    """The protocol's batch from gathered uint8 frames (B x 3 x S x S, B x R x 3 x S x S) and mel windows.

    The samplers gather the uint8 frames of every row first and convert once: the same values as
    converting row by row, in a few large operations (and 4x fewer bytes to move to a GPU). With the
    targets' mouth boxes (every row's, or None), the batch also holds ``mouth``: B x 1 x S x S, 1 inside.
    """
    target_frames = targets.to(device).float() / 255.0
    batch = {
        "audio": mel.to(device),
        "masked": mask_lower_half(target_frames),
        "refs": refs.to(device).float() / 255.0,
        "target": target_frames,
    }
    if boxes is not None:
        batch["mouth"] = box_masks(np.concatenate(boxes).reshape(-1, 4), target_frames.shape[-1]).to(device)
    return batch


def box_masks(boxes: np.ndarray, size: int) -> torch.Tensor:
    """N x 4 boxes (x0, y0, x1, y1; end-exclusive pixels) -> N x 1 x size x size float masks, 1 inside."""
    box = torch.as_tensor(boxes, dtype=torch.long)
    span = torch.arange(size)
    rows = (span[None, :] >= box[:, 1:2]) & (span[None, :] < box[:, 3:4])  # N x size
    cols = (span[None, :] >= box[:, 0:1]) & (span[None, :] < box[:, 2:3])
    return (rows[:, :, None] & cols[:, None, :]).float()[:, None]


def _boxes_of(clips: list[ClipTensors]) -> bool:
    """Whether every clip has mouth boxes: a batch carries its mouth masks only when all rows have them."""
    return all(clip.mouth_boxes is not None for clip in clips)


class TrainSampler:
    """Random (clip, frame) targets with references drawn from the same clip."""

    def __init__(self, clips: list[ClipTensors], n_refs: int, seed: int) -> None:
        if not clips:
            raise ValueError("the training split has no clips")
        self.clips = clips
        self.n_refs = n_refs
        self.generator = torch.Generator().manual_seed(seed)
        self.with_mouth = _boxes_of(clips)

    def sample(self, batch_size: int, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        picks = torch.randint(len(self.clips), (batch_size,), generator=self.generator)
        targets, refs, mels, boxes = [], [], [], []
        for index in picks.tolist():
            clip = self.clips[index]
            n = clip.n_frames
            target = torch.randint(n, (1,), generator=self.generator)
            # Uniform over frames at circular distance >= MIN_REF_GAP from the target.
            offsets = torch.randint(max(1, n - 2 * MIN_REF_GAP + 1), (1, self.n_refs), generator=self.generator)
            targets.append(clip.frames[target])
            refs.append(clip.frames[(target + MIN_REF_GAP + offsets) % n])
            mels.append(clip.mel[target])
            if self.with_mouth:
                boxes.append(clip.mouth_boxes[target.numpy()])
        return _inputs(torch.cat(targets), torch.cat(refs), torch.cat(mels), device,
                       boxes if self.with_mouth else None)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.generator.set_state(state["generator"])


class WindowSampler(TrainSampler):
    """Windows of five consecutive targets (t-2 ... t+2) for training with the sync expert's loss.

    ``sample(batch_size)`` draws ``max(1, batch_size // 5)`` windows and returns the usual batch with
    the windows' frames in order (window-major), plus ``sync_mel``: the mel window of each middle
    frame, which covers the same 0.2 s as the five frames (see ``baselines.syncnet``). References
    keep ``MIN_REF_GAP`` from every frame of their window.
    """

    def __init__(self, clips: list[ClipTensors], n_refs: int, seed: int) -> None:
        usable = [clip for clip in clips if clip.n_frames >= SYNC_WINDOW + 2 * MIN_REF_GAP]
        if not usable:
            raise ValueError(f"sync-loss training needs clips of at least {SYNC_WINDOW + 2 * MIN_REF_GAP} frames")
        super().__init__(usable, n_refs, seed)

    def sample(self, batch_size: int, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        half = SYNC_WINDOW // 2
        picks = torch.randint(len(self.clips), (max(1, batch_size // SYNC_WINDOW),), generator=self.generator)
        targets, refs, mels, sync_mel, boxes = [], [], [], [], []
        for index in picks.tolist():
            clip = self.clips[index]
            n = clip.n_frames
            centre = half + int(torch.randint(n - 2 * half, (1,), generator=self.generator))
            span = n - SYNC_WINDOW - 2 * MIN_REF_GAP + 1
            offsets = torch.randint(span, (1, self.n_refs), generator=self.generator)
            window = slice(centre - half, centre + half + 1)
            targets.append(clip.frames[window])
            refs.append(clip.frames[((centre + half + MIN_REF_GAP + offsets) % n).expand(SYNC_WINDOW, -1)])
            mels.append(clip.mel[window])
            sync_mel.append(clip.mel[centre])
            if self.with_mouth:
                boxes.append(clip.mouth_boxes[window])
        batch = _inputs(torch.cat(targets), torch.cat(refs), torch.cat(mels), device,
                        boxes if self.with_mouth else None)
        batch["sync_mel"] = torch.stack(sync_mel).to(device)
        return batch
