"""Contact sheet: a PNG grid of clips x frames, the first thing to look at for any dataset."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from bench.data.clips import Clip, ClipFormatError, Dataset
from bench.harness.rundir import RunDirError

log = logging.getLogger(__name__)

STRATUM_ORDER = {"frontal": 0, "moderate": 1, "extreme": 2}
LABEL_WIDTH = 150  # pixels left of the grid for the row labels
HEADER = 22  # pixels above the grid for column labels
GAP = 4


def _pick_clips(dataset: Dataset, max_clips: int) -> list[dict]:
    """Test clips by stratum first (the poses that matter most), then train clips."""
    def key(entry: dict) -> tuple:
        return (entry["split"] != "test", STRATUM_ORDER.get(str(entry.get("stratum")), 9), entry["id"])

    return sorted(dataset.entries, key=key)[:max_clips]


def contact_sheet(dataset: Dataset, path: Path, frames_per_clip: int = 6, max_clips: int = 12,
                  landmarks: bool = True) -> Path:
    """Write a PNG grid (rows = clips, columns = evenly spaced frames) with labels; returns path."""
    path = Path(path)
    if path.is_dir() or path.suffix.lower() != ".png":  # matplotlib would add ".png" or pick another format
        raise RunDirError(f"{path}: --out must name a .png file")
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    entries = _pick_clips(dataset, max_clips)
    if not entries:
        raise ClipFormatError(f"{dataset.root / 'manifest.json'}: the dataset has no clips")
    clips = [dataset.clip(entry) for entry in entries]
    tile = max(max(clip.frames.shape[1] for clip in clips), 128)
    width = LABEL_WIDTH + frames_per_clip * (tile + GAP)
    height = HEADER + len(clips) * (tile + GAP)
    canvas = np.full((height, width, 3), 245, dtype=np.uint8)
    marks: list[tuple[float, float, bool]] = []
    texts: list[tuple[float, float, str, dict]] = []
    for row, clip in enumerate(clips):
        top = HEADER + row * (tile + GAP)
        picks = np.unique(np.linspace(0, clip.n_frames - 1, frames_per_clip).round().astype(int))
        for col, f in enumerate(picks):
            left = LABEL_WIDTH + col * (tile + GAP)
            image, scale = _fit(clip.frames[f], tile)
            canvas[top:top + image.shape[0], left:left + image.shape[1]] = image
            texts.append((left + 3, top + tile - 4, _frame_label(clip, f), {"va": "bottom"}))
            if row == 0:
                texts.append((left + tile / 2, HEADER - 6, f"t={f / clip.fps:.2f}s", {"ha": "center"}))
            if landmarks and clip.landmarks is not None:
                seen = clip.landmark_visible[f] if clip.landmark_visible is not None else \
                    np.ones(len(clip.landmarks[f]), bool)
                for (x, y), ok in zip(clip.landmarks[f], seen):
                    marks.append((left + (x + 0.5) * scale - 0.5, top + (y + 0.5) * scale - 0.5, bool(ok)))
        label = f"{clip.clip_id}\n{clip.identity}  {clip.meta.get('stratum', '')}"
        if clip.yaw is not None:
            label += f"\nbase yaw {float(np.mean(clip.yaw)):+.0f}°"
        texts.append((6, top + tile / 2, label, {"va": "center", "fontsize": 8}))

    dpi = 100
    figure = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    axes = figure.add_axes((0, 0, 1, 1))
    axes.imshow(canvas, interpolation="nearest")
    axes.set_xlim(-0.5, width - 0.5)
    axes.set_ylim(height - 0.5, -0.5)
    axes.axis("off")
    if marks:
        x, y, ok = (np.array(v) for v in zip(*marks))
        axes.scatter(x[ok], y[ok], s=4, c="#39ff14", linewidths=0)
        axes.scatter(x[~ok], y[~ok], s=5, c="#ff2d2d", marker="x", linewidths=0.6)
    for x, y, text, style in texts:
        on_image = "fontsize" not in style and "ha" not in style
        axes.text(x, y, text, fontsize=style.pop("fontsize", 6.5), color="white" if on_image else "#222222",
                  bbox=dict(boxstyle="square,pad=0.15", fc="black", alpha=0.45, lw=0) if on_image else None,
                  **style)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi)
    log.info("contact sheet of %d clips written to %s", len(clips), path)
    return path


def _fit(frame: np.ndarray, tile: int) -> tuple[np.ndarray, float]:
    """Upscale small frames by an integer factor (nearest) so faces stay inspectable."""
    factor = max(1, tile // max(frame.shape[:2]))
    if factor > 1:
        frame = frame.repeat(factor, axis=0).repeat(factor, axis=1)
    return frame, float(factor)


def _frame_label(clip: Clip, f: int) -> str:
    parts = []
    if clip.yaw is not None:
        parts.append(f"yaw {float(clip.yaw[f]):+.0f}")
    if clip.mouth_open is not None:
        parts.append(f"open {float(clip.mouth_open[f]):.2f}")
    if clip.viseme is not None and "viseme_names" in clip.meta and clip.viseme[f] >= 0:
        parts.append(str(clip.meta["viseme_names"][int(clip.viseme[f])]))
    return " ".join(parts)
