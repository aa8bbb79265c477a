"""`bench data prepare`: real talking-face videos -> a dataset in the clip format (``bench.data.clips``).

Modules by concern: ``layouts`` (where the videos are, who is in them), ``decode`` (PyAV video and audio,
25 fps by time stamps, 16 kHz), ``track`` (one smoothed face track, crop boxes, mesh labels), ``process``
(one file -> one clip archive and a QA row), ``split`` (train/test by identity or clip, pose-stratified),
``dataset`` (the whole folder: workers, resume, QA table, manifest last).
"""
from .dataset import QA_FILE, STATE_FILE, PrepareResult, prepare_dataset
from .layouts import LAYOUTS, PrepareError

__all__ = ["LAYOUTS", "QA_FILE", "STATE_FILE", "PrepareError", "PrepareResult", "prepare_dataset"]
