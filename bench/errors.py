"""The failures the CLI reports as one line (bad input, missing files), as opposed to bugs."""
from __future__ import annotations

from bench.clips import ClipFormatError
from bench.compare import CompareError
from bench.landmarks import LandmarksUnavailableError
from bench.models import UnknownModelError
from bench.rundir import RunDirError
from bench.run import RunError
from bench.score import ScoreError
from bench.syncnet_official import OfficialWeightsError
from bench.train import CheckpointError
from bench.video import VideoError
from bench.weights import WeightsMissingError


def _report_error() -> type[Exception]:
    try:
        from bench.report import ReportError
    except ImportError:  # the report module is optional at import time
        return RunError
    return ReportError


EXPECTED_ERRORS: tuple[type[Exception], ...] = (
    ClipFormatError, UnknownModelError, RunDirError, RunError, CheckpointError, CompareError,
    WeightsMissingError, OfficialWeightsError, _report_error(), VideoError, ScoreError, LandmarksUnavailableError,
)
