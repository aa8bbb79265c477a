"""LSE-D / LSE-C (lip-sync error distance / confidence) as syncnet_python computes them.

The published numbers (Wav2Lip and its successors) come from joonson/syncnet_python's
``SyncNetInstance.evaluate`` (Wav2Lip ships it as ``SyncNetInstance_calc_scores.py``). Given one
embedding per 5-frame video window and one per matching 0.2 s audio window, it does:

1. pad the audio embeddings with ``max_offset`` (15) all-zero rows at both ends;
2. for every video window t, the L2 distance to the padded audio rows t ... t + 2*max_offset, i.e. to
   the audio windows t + d for d = -max_offset ... +max_offset (a zero vector where t + d is outside
   the clip, so edge frames still contribute a distance, to the zero vector). The distance is
   ``torch.nn.functional.pairwise_distance``'s ``||v - a + 1e-6||_2`` (note the eps inside the norm:
   identical embeddings are sqrt(D) * 1e-6 apart, not 0);
3. ``mean_dists[k]`` = the mean over t of those distances for column k (d = k - max_offset);
4. LSE-D = min(mean_dists); LSE-C = median(mean_dists) - min(mean_dists); AV offset = max_offset - argmin.

Sign convention (syncnet_python's): column k compares video window t with audio window t + k - max_offset,
and offset = max_offset - k. So ``offset = o`` means video window t matches audio window t - o best:
o > 0, the audio is *ahead* of the video by o frames (the sound comes before the mouth moves;
delaying the audio by o frames fixes it); o < 0, the audio lags. At 25 fps one frame is 40 ms.

Per-frame confidence (syncnet_python's ``fconfm``, printed as "Framewise conf"): for each t,
median(mean_dists) - (distance of window t at the argmin column) -- the *clip's* median against the
frame's distance at the clip's best offset, not a per-frame median - min -- then
``scipy.signal.medfilt(kernel_size=9)`` (zero-padded at the ends).

Embeddings are used raw, without L2 normalisation, exactly as the official code does.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import signal
from torch import nn

from bench.api import SYNC_WINDOW

MAX_OFFSET = 15  # syncnet_python's --vshift default, used for every published LSE number
PAIRWISE_EPS = 1e-6  # torch.nn.functional.pairwise_distance's default eps
FRAME_CONF_KERNEL = 9  # syncnet_python's medfilt kernel for the per-frame confidence
_CHUNK = 256  # video windows per distance block (bounds memory at chunk x (2K+1) x D floats)


@dataclass(frozen=True)
class SyncResult:
    """One clip's sync scores. ``mean_dists[k]`` is for offset ``max_offset - k`` (see module doc)."""

    lse_d: float  # min over offsets of the mean distance (lower is better)
    lse_c: float  # median - min of the mean distances (higher is better)
    offset: int  # AV offset in frames, syncnet_python's sign: > 0 means the audio leads the video
    mean_dists: np.ndarray  # (2*max_offset+1,) float32
    per_frame_conf: np.ndarray  # (T,) float, median-filtered per-window confidence

    @property
    def offsets(self) -> np.ndarray:
        """The AV offset each entry of ``mean_dists`` stands for (max_offset ... -max_offset)."""
        k = (len(self.mean_dists) - 1) // 2
        return k - np.arange(len(self.mean_dists))


def _as_tensor(x: np.ndarray | torch.Tensor, what: str) -> torch.Tensor:
    t = torch.as_tensor(x).detach().to("cpu", torch.float32)
    if t.ndim != 2 or t.shape[0] == 0:
        raise ValueError(f"{what} embeddings must be T x D with T >= 1, got shape {tuple(t.shape)}")
    return t


def offset_distances(video_emb: np.ndarray | torch.Tensor, audio_emb: np.ndarray | torch.Tensor,
                     max_offset: int = MAX_OFFSET) -> tuple[np.ndarray, np.ndarray]:
    """(mean_dists (2K+1,), per-frame distances T x (2K+1)), syncnet_python's ``calc_pdist`` + mean.

    Column k of the per-frame matrix holds ||video[t] - audio[t + k - K] + eps||, with a zero audio
    vector outside 0..T-1 (the official zero padding). Computed in float32 with the same torch op and
    the same reduction layout (mean over t of a (2K+1) x T block) so values match the official code.
    """
    video, audio = _as_tensor(video_emb, "video"), _as_tensor(audio_emb, "audio")
    if video.shape != audio.shape:
        raise ValueError(f"video and audio embeddings differ in shape: {tuple(video.shape)} vs {tuple(audio.shape)}")
    if max_offset < 0:
        raise ValueError(f"max_offset must be >= 0, got {max_offset}")
    n, width = video.shape[0], 2 * max_offset + 1
    padded = F.pad(audio, (0, 0, max_offset, max_offset))  # (T + 2K) x D, zero rows at both ends
    windows = padded.unfold(0, width, 1).transpose(1, 2)  # T x (2K+1) x D (a view)
    blocks = []
    for start in range(0, n, _CHUNK):
        v = video[start:start + _CHUNK, None, :]
        a = windows[start:start + _CHUNK]
        blocks.append(F.pairwise_distance(v.expand_as(a), a, p=2.0, eps=PAIRWISE_EPS))
    per_frame = torch.cat(blocks)  # T x (2K+1)
    mean_dists = per_frame.t().contiguous().mean(dim=1)
    return mean_dists.numpy(), per_frame.numpy()


def frame_confidence(mean_dists: np.ndarray, per_frame: np.ndarray,
                     kernel_size: int = FRAME_CONF_KERNEL) -> np.ndarray:
    """syncnet_python's framewise confidence: median(mean_dists) - per_frame[:, argmin], median-filtered."""
    md = torch.from_numpy(np.ascontiguousarray(mean_dists, dtype=np.float32))
    best = int(torch.argmin(md))
    raw = (torch.median(md) - torch.from_numpy(np.asarray(per_frame, np.float32)[:, best])).numpy()
    with warnings.catch_warnings():  # medfilt warns when the clip is shorter than the kernel; it zero-pads
        warnings.simplefilter("ignore", UserWarning)
        return signal.medfilt(raw, kernel_size=kernel_size)


def lse(video_emb: np.ndarray | torch.Tensor, audio_emb: np.ndarray | torch.Tensor,
        max_offset: int = MAX_OFFSET) -> SyncResult:
    """LSE-D, LSE-C, AV offset and per-frame confidence of one clip (see the module doc for the rules).

    The median is torch's (lower middle for even counts; 2K+1 is always odd, so it is the median), and
    the argmin takes the first minimum on ties, as torch.min on CPU does in the official code.
    """
    mean_dists, per_frame = offset_distances(video_emb, audio_emb, max_offset)
    md = torch.from_numpy(mean_dists)
    best = int(torch.argmin(md))
    return SyncResult(lse_d=float(md[best]), lse_c=float(torch.median(md) - md[best]), offset=max_offset - best,
                      mean_dists=mean_dists, per_frame_conf=frame_confidence(mean_dists, per_frame))


SYNC_CHUNK = 64


@torch.no_grad()
def clip_sync(sync_model: nn.Module, frames_u8: torch.Tensor, mel: torch.Tensor) -> SyncResult | None:
    """LSE of one clip with a protocol-level expert: windows of 5 frames centred on t vs mel window t.

    The offset search and the LSE-C / LSE-D definitions are syncnet_python's (above);
    the embeddings are the project's own expert's, hence the ``_local`` names.
    """
    n = frames_u8.shape[0]
    if n < SYNC_WINDOW + 1:
        return None
    centres = torch.arange(SYNC_WINDOW // 2, n - SYNC_WINDOW // 2)
    video, audio = [], []
    for chunk in centres.split(SYNC_CHUNK):
        windows = torch.stack([frames_u8[t - SYNC_WINDOW // 2: t + SYNC_WINDOW // 2 + 1] for t in chunk.tolist()])
        v, a = sync_model(mel[chunk], windows / 255.0)
        video.append(v.float().cpu())
        audio.append(a.float().cpu())
    return lse(torch.cat(video), torch.cat(audio))


def shifted_mel(mel: torch.Tensor) -> torch.Tensor:
    """The clip's mel windows moved circularly by half the clip: from clips of 2 x (``max_offset`` + 1) frames
    on, every frame's audio lies beyond the offset search, so no offset can line it up (the expert's floor);
    a shorter clip cannot move its audio farther than half its length."""
    return mel.roll(mel.shape[0] // 2, dims=0)


def official_values(result: SyncResult) -> dict[str, float]:
    return {"lse_c": result.lse_c, "lse_d": result.lse_d, "av_offset": result.offset}


def local_values(result: SyncResult) -> dict[str, float]:
    return {"lse_c_local": result.lse_c, "lse_d_local": result.lse_d, "av_offset_local": result.offset}
