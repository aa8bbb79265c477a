"""One face track per clip: mesh points per frame -> smoothed square crop boxes, and the labels read
from the mesh on the crops (named landmarks, visibility, mouth opening).

Several faces: the mesh runs with up to ``MAX_FACES`` faces per frame (``FaceMesh.faces``); ``largest_track``
links each frame's faces to tracks by position and keeps the track with the largest mean box area over the
clip (a frame without that face counts as area 0), and reports the most faces seen in one frame.
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import median_filter, uniform_filter1d

MAX_FACES = 4  # faces looked for per frame
MIN_FOUND = 0.5  # a clip whose face is found in fewer frames than this share is skipped
CROP_SCALE = 1.7  # crop side / the mesh's extent (forehead to chin): the whole head with some margin
CROP_DROP = 0.08  # the crop centre sits this share of the extent below the mesh centre (chin and neck in view)
# The clip format's named landmarks (bench.data.frames.mouth_boxes reads the four mouth names), as mesh
# indices. "left" is the image's left in a frontal view, as in the synthetic heads.
LANDMARKS: dict[str, int] = {
    "left_eye": 33, "right_eye": 263, "nose_tip": 1, "mouth_left": 61, "mouth_right": 291,
    "upper_lip": 0, "lower_lip": 17, "chin": 152,
}
INNER_LIPS = (13, 14)  # inner upper / lower lip midpoints: the mouth's gap
MOUTH_OPEN_FULL = 0.6  # inner-lip gap / mouth width that counts as wide open (mouth_open = 1)


def face_boxes(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """... x 468 x 2 points -> (... x 2 centres, ... sizes = the larger extent); NaN where no face."""
    with np.errstate(invalid="ignore"):
        low, high = points.min(axis=-2), points.max(axis=-2)
    return (low + high) / 2, np.max(high - low, axis=-1)


def largest_track(points: np.ndarray, gap: int = 12) -> tuple[np.ndarray, int, int]:
    """T x F x 468 x 2 points of every face per frame -> (T x 468 x 2 points of the largest track, NaN where that
    face is not found; the most faces in one frame; the number of tracks).

    A face joins the track whose last centre (seen at most ``gap`` frames before) is nearest, if within half
    the face's size; otherwise it starts a track."""
    centres, sizes = face_boxes(points)
    present = np.isfinite(sizes) & np.isfinite(centres).all(axis=-1)
    faces = int(present.sum(axis=1).max()) if len(points) else 0
    tracks: list[dict] = []  # {"last": frame, "centre", "size", "faces": {frame: face index}, "area"}
    for t in range(len(points)):
        taken: set[int] = set()
        for f in sorted(np.flatnonzero(present[t]), key=lambda f: -sizes[t, f]):  # larger faces choose first
            best, best_distance = None, 0.5 * sizes[t, f]
            for k, track in enumerate(tracks):
                if k in taken or t - track["last"] > gap:
                    continue
                d = float(np.linalg.norm(centres[t, f] - track["centre"]))
                if d <= best_distance:
                    best, best_distance = k, d
            if best is None:
                tracks.append({"faces": {}, "area": 0.0})
                best = len(tracks) - 1
            track = tracks[best]
            track.update(last=t, centre=centres[t, f], size=sizes[t, f])
            track["faces"][t] = int(f)
            track["area"] += float(sizes[t, f]) ** 2
            taken.add(best)
    out = np.full(points.shape[:1] + points.shape[2:], np.nan)
    if tracks:
        chosen = max(tracks, key=lambda track: track["area"])
        for t, f in chosen["faces"].items():
            out[t] = points[t, f]
    return out, faces, len(tracks)


def fill_gaps(values: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Per-column linear interpolation over time from the frames where ``found``; the ends hold."""
    index = np.arange(len(values))
    out = np.array(values, dtype=np.float64)
    for column in range(out.shape[1]):
        out[:, column] = np.interp(index, index[found], out[found, column])
    return out


def crop_boxes(points: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """T x 468 x 2 full-size mesh points (NaN: no face) -> (T x 3 boxes (x0, y0, side), T found mask).

    Frames without a face take their box from their neighbours (interpolated); centres and sizes are
    median- then mean-filtered over time so the crop does not jitter with the mesh."""
    found = np.isfinite(points).all(axis=(1, 2))
    if not found.any():
        return np.zeros((len(points), 3)), found
    low = np.zeros((len(points), 2))
    high = np.zeros((len(points), 2))
    low[found], high[found] = points[found].min(axis=1), points[found].max(axis=1)
    extent = np.max(high - low, axis=1)
    raw = np.stack([(low[:, 0] + high[:, 0]) / 2, (low[:, 1] + high[:, 1]) / 2, extent], axis=1)
    found &= ~_jumps(raw, found)  # a detection far from the track is another face: filled like a miss
    if not found.any():
        return np.zeros((len(points), 3)), found
    track = fill_gaps(np.where(found[:, None], raw, 0.0), found)
    if len(track) >= 3:
        track[:, :2] = uniform_filter1d(median_filter(track[:, :2], size=(5, 1), mode="nearest"), 5, axis=0,
                                        mode="nearest")
        track[:, 2] = uniform_filter1d(median_filter(track[:, 2], size=9, mode="nearest"), 9, mode="nearest")
    # Never larger than the frame, and shifted inside it where it would leave it (no black borders).
    side = np.clip(track[:, 2] * CROP_SCALE, 8.0, min(height, width))
    x0 = np.clip(track[:, 0] - side / 2, 0.0, width - side)
    y0 = np.clip(track[:, 1] + CROP_DROP * track[:, 2] - side / 2, 0.0, height - side)
    return np.stack([x0, y0, side], axis=1), found


def _jumps(raw: np.ndarray, found: np.ndarray, window: int = 9) -> np.ndarray:
    """Frames whose face centre lies more than half a face from the running median of the found centres
    (over ``window`` found frames): with several faces in view the detector may switch faces for a frame."""
    jumps = np.zeros(len(raw), dtype=bool)
    index = np.flatnonzero(found)
    if len(index) < 3:
        return jumps
    centres = median_filter(raw[index, :2], size=(min(window, len(index)), 1), mode="nearest")
    size = median_filter(raw[index, 2], size=min(window, len(index)), mode="nearest")
    jumps[index] = np.linalg.norm(raw[index, :2] - centres, axis=1) > 0.5 * size
    return jumps


def named_landmarks(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """T x 468 x 2 crop-pixel mesh points -> (T x K x 2 named points, T x K visibility).

    Frames without a face are filled from their neighbours and marked not visible."""
    named = points[:, list(LANDMARKS.values())]
    found = np.isfinite(named).all(axis=(1, 2))
    visible = np.repeat(found[:, None], len(LANDMARKS), axis=1)
    if not found.any():
        return np.zeros(named.shape, np.float32), visible
    flat = fill_gaps(np.where(found[:, None, None], named, 0.0).reshape(len(named), -1), found)
    return flat.reshape(named.shape).astype(np.float32), visible


def mouth_opening(points: np.ndarray) -> np.ndarray:
    """Inner-lip gap / mouth width per frame, scaled to 0 (closed) ... 1 (wide open); 0 where no face."""
    gap = np.linalg.norm(points[:, INNER_LIPS[0]] - points[:, INNER_LIPS[1]], axis=1)
    width = np.linalg.norm(points[:, LANDMARKS["mouth_left"]] - points[:, LANDMARKS["mouth_right"]], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = gap / width / MOUTH_OPEN_FULL
    return np.nan_to_num(np.clip(ratio, 0.0, 1.0), nan=0.0).astype(np.float32)
