"""The one frame-rate resampler: `bench score` streams through it, `bench run` feeds the official SyncNet with it."""
import numpy as np
import torch

from bench.data.frames import ClipTensors
from bench.data.video import resample_frames, resample_indices
from bench.harness.evaluate import clip_sync_values


def test_nearest_frame_in_time():
    assert resample_indices(10, 50.0).tolist() == [0, 2, 4, 6, 8]
    assert resample_indices(8, 20.0).tolist() == [0, 1, 2, 2, 3, 4, 5, 6, 6, 7]
    assert resample_indices(4, 25.0).tolist() == [0, 1, 2, 3]
    # the stream and the index form agree for any rate
    for n, fps in ((37, 30.0), (50, 24.0), (12, 60.0), (25, 25.0)):
        assert list(resample_frames(iter(range(n)), n, fps)) == resample_indices(n, fps).tolist()


class _Recorder:
    def __init__(self):
        self.seen = []

    def __call__(self, frames, audio):
        self.seen.append(frames[:, 0, 0, 0].tolist())
        return None


def _clip(n: int, fps: float) -> tuple[torch.Tensor, ClipTensors]:
    frames = torch.arange(n, dtype=torch.float32)[:, None, None, None].expand(n, 3, 4, 4).clone()
    zeros = np.zeros(n, dtype=np.float32)
    clip = ClipTensors("c", "id", "frontal", frames.to(torch.uint8), torch.zeros(n, 80, 16), zeros, zeros, zeros,
                       audio=np.zeros(int(n / fps * 16000), dtype=np.float32), fps=fps)
    return frames, clip


def test_bench_run_hands_the_official_syncnet_25_fps_frames():
    official = _Recorder()
    frames, clip = _clip(50, 50.0)  # 1 s at 50 fps -> 25 frames at 25 fps: every other frame
    clip_sync_values(frames, clip, None, official, "cpu")
    assert official.seen[-1] == [float(i) for i in range(0, 50, 2)]
    frames, clip = _clip(30, 25.0)  # already 25 fps: unchanged
    clip_sync_values(frames, clip, None, official, "cpu")
    assert official.seen[-1] == [float(i) for i in range(30)]
