"""Facial landmarks: MediaPipe's legacy 468-point face mesh, run on every frame on its own.

LMD (``bench.metrics.lmd``) and head pose (``bench.data.head_pose``) read these points.

Choices:
* the mouth landmarks are the 40 points of MediaPipe's lip contours (outer and inner,
  ``FACEMESH_LIPS``); the eye corners are mesh points 33 and 263;
* every frame is detected on its own (``static_image_mode``): tracking would let one side's earlier
  frames steer the other's;
* frames smaller than 256 px on their shorter side are upsampled bilinearly by an integer factor
  first (the detector's face finder needs a face of some tens of pixels); coordinates are mapped back;
* ``FaceMesh.faces`` (face tracking for ``bench data prepare``) runs a third graph, built on first use, that
  returns up to ``max_faces`` faces per frame, so a preparation can count the faces and follow the largest;
* head pose (``FaceMesh.points_3d``) runs a second graph, built on first use, that also keeps MediaPipe's
  depth output and is more permissive: faces are found at detection confidence 0.1 and kept whatever the
  mesh's own face-presence score. The default graph drops most faces turned beyond ~60 degrees on that
  score (and its 0.5 detection threshold boxes them less well), which would leave extreme poses unbinned.

MediaPipe is an optional dependency (``pip install -e '.[landmarks]'``): it pins numpy < 2 and
protobuf < 5. Its models ship inside the wheel, so nothing is downloaded.
"""
from __future__ import annotations

import contextlib
import math
import os
import sys
from typing import Any, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from bench.errors import BenchError

INSTALL_HINT = "pip install -e '.[landmarks]'"
DETECT_SIDE = 256
EYE_CORNERS = (33, 263)
N_POINTS = 468
# The head-pose graph: any face the detector finds at this confidence gets a mesh (see the module docstring).
POSE_DETECTION_CONFIDENCE = 0.1
POSE_PRESENCE_CONFIDENCE = 0.0


class LandmarksUnavailableError(BenchError, RuntimeError):
    """MediaPipe is not installed (one line naming the install command)."""


def _mediapipe():
    os.environ.setdefault("GLOG_minloglevel", "2")  # MediaPipe's C++ logging: warnings and up only
    try:
        import mediapipe as mp
    except ImportError:
        raise LandmarksUnavailableError(f"lmd needs MediaPipe's face mesh, which is not installed; run: "
                                        f"{INSTALL_HINT}") from None
    return mp


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence the process's stderr file descriptor (C++ logging) for the duration; Python errors still raise."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class FaceMesh:
    """Callable: B x 3 x H x W frames (0-255, RGB) -> B x 468 x 2 pixel coordinates (NaN: no face).

    ``points_3d`` gives the head-pose graph's points with depth (see the module docstring).
    """

    def __init__(self, min_detection_confidence: float = 0.5) -> None:
        mp = _mediapipe()
        with _quiet_stderr():  # TFLite and absl print start-up chatter straight to fd 2
            self._mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1,
                                                         refine_landmarks=False,
                                                         min_detection_confidence=min_detection_confidence)
            self._mesh.process(np.zeros((64, 64, 3), dtype=np.uint8))
        self.mouth = np.array(sorted({i for edge in mp.solutions.face_mesh.FACEMESH_LIPS for i in edge}))
        self._pose_mesh: Any = None  # the head-pose graph, built on first use
        self._faces_mesh: Any = None  # the several-faces graph (``faces``), built on first use
        self._max_faces = 0
        # The last batch and its points per graph: a caller may ask for the same batch twice (e.g. LMD on the
        # ground truth of every generated batch).
        self._last: dict[str, tuple[torch.Tensor, int, np.ndarray]] = {}

    def __call__(self, frames: torch.Tensor) -> np.ndarray:
        return self._cached("lmd", frames)[..., :2].copy()

    def points_3d(self, frames: torch.Tensor) -> np.ndarray:
        """B x 468 x 3 for head pose: x, y pixels and MediaPipe's depth z (NaN: no face).

        z is relative to the face's centre, smaller is nearer the camera, in pixels of the frame's width
        (MediaPipe gives it "roughly" in x's scale). From the permissive head-pose graph, so x, y can differ
        slightly from ``__call__``'s points on the same frame.
        """
        if self._pose_mesh is None:
            with _quiet_stderr():
                self._pose_mesh = _mediapipe().solutions.face_mesh.FaceMesh(
                    static_image_mode=True, max_num_faces=1, refine_landmarks=False,
                    min_detection_confidence=POSE_DETECTION_CONFIDENCE,
                    min_tracking_confidence=POSE_PRESENCE_CONFIDENCE)
        return self._cached("pose", frames).copy()

    def faces(self, frames: torch.Tensor, max_faces: int = 4) -> np.ndarray:
        """B x max_faces x 468 x 2 pixel points of every face found, in MediaPipe's order (NaN rows: no face).

        Same detection settings as ``__call__`` (confidence 0.5), with up to ``max_faces`` faces per frame."""
        if self._faces_mesh is None or self._max_faces != max_faces:
            if self._faces_mesh is not None:
                self._faces_mesh.close()
            with _quiet_stderr():
                self._faces_mesh = _mediapipe().solutions.face_mesh.FaceMesh(
                    static_image_mode=True, max_num_faces=max_faces, refine_landmarks=False,
                    min_detection_confidence=0.5)
            self._max_faces = max_faces
        return self._detect(frames, self._faces_mesh, max_faces)[..., :2]

    def _cached(self, graph: str, frames: torch.Tensor) -> np.ndarray:
        last = self._last.get(graph)
        if last is not None and last[0] is frames and last[1] == frames._version:
            return last[2]
        points = self._detect(frames) if graph == "lmd" else self._detect(frames, self._pose_mesh)
        self._last[graph] = (frames, frames._version, points)
        return points

    def _detect(self, frames: torch.Tensor, mesh: Any = None, max_faces: int = 0) -> np.ndarray:
        """B x 468 x 3 points of the first face; with ``max_faces`` > 0, B x max_faces x 468 x 3 of all."""
        height, width = frames.shape[-2:]
        factor = max(1, math.ceil(DETECT_SIDE / min(height, width)))
        images = frames.float()
        if factor > 1:
            images = F.interpolate(images, scale_factor=factor, mode="bilinear", align_corners=False)
        images = images.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        mesh = self._mesh if mesh is None else mesh
        points = np.full((len(images), max(1, max_faces), N_POINTS, 3), np.nan)
        with _quiet_stderr():  # MediaPipe warns once per graph state straight to fd 2
            results = [mesh.process(np.ascontiguousarray(image)).multi_face_landmarks for image in images]
        for index, found in enumerate(results):
            for face, landmarks in enumerate((found or [])[:points.shape[1]]):
                marks = landmarks.landmark
                # Normalised coordinates -> pixels of the original frame (z in x's scale: the frame's width).
                points[index, face] = [(m.x * width, m.y * height, m.z * width) for m in marks[:N_POINTS]]
        return points if max_faces else points[:, 0]

    def close(self) -> None:
        self._mesh.close()
        for graph in (self._pose_mesh, self._faces_mesh):
            if graph is not None:
                graph.close()
