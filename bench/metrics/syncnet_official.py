"""The official SyncNet (Chung & Zisserman 2016, joonson/syncnet_python) and its front-ends, for LSE-C/LSE-D
that are comparable with published numbers.

Network: syncnet_python's ``SyncNetModel.S``, re-expressed here. Two towers, each a conv stack then an MLP
head to a 1024-d embedding (no normalisation): ``netcnnaud``/``netfcaud`` over a 1 x 13 x 20 MFCC window and
``netcnnlip``/``netfclip`` over 3 x 5 x 224 x 224 (5 RGB frames, a 3-D conv whose first kernel spans the 5
frames). The submodule names and the positions inside each ``nn.Sequential`` (ReLU and pooling layers
included) are the official ones, so the official ``syncnet_v2.model`` keys (``netcnnaud.0.weight`` ...) load.

Front-ends, as ``SyncNetInstance.evaluate`` (and Wav2Lip's copy of it, which adds the 224 x 224 resize) does:
- audio: 16 kHz mono 16-bit PCM as read by ``scipy.io.wavfile`` (integer sample values, *not* scaled to
  [-1, 1]) -> ``python_speech_features.mfcc`` with its defaults (25 ms rectangular window, 10 ms step,
  13 cepstra, 26 filters, NFFT 512, pre-emphasis 0.97, lifter 22, c0 replaced by log frame energy):
  100 MFCC frames per second, 4 per video frame at 25 fps. Window v = MFCC frames 4v ... 4v+19.
- video: face crops (syncnet_python's pipeline crops and resizes to 224 x 224 with cv2), read by cv2 so in
  **BGR** channel order, raw 0-255 values as float (no mean/std normalisation). Window v = frames v ... v+4.
- windows: ``min(n_frames, n_samples // 640) - 5`` of them (the official loop stops one window short of the
  last complete one; reproduced on purpose).

Weights: the official file is a plain state dict (syncnet_python's ``loadParameters`` iterates
``torch.load(path).items()`` and copies each into ``S().state_dict()[name]``; ByteDance's LatentSync loads
its copy of the file with ``weights_only=True``), so it loads here with ``weights_only=True`` as is.
Reference check for users holding the weights: syncnet_python's README expects its ``data/example.avi``
(already a 224 x 224 face track) to give AV offset 3, min dist 5.353, confidence 10.021.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import pickle
import sys
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench.errors import BenchError
from bench.metrics.sync import MAX_OFFSET, SyncResult, lse

log = logging.getLogger(__name__)

# The official network's own input format, fixed by its weights (it equals bench.api's protocol values,
# but would not follow them if the protocol changed).
SAMPLE_RATE = 16000
FPS = 25
WINDOW_FRAMES = 5  # video frames per window
MFCC_PER_FRAME = 4  # 100 MFCC frames/s over 25 video frames/s
MFCC_WINDOW = WINDOW_FRAMES * MFCC_PER_FRAME  # 20
SAMPLES_PER_FRAME = SAMPLE_RATE // FPS  # 640
N_MFCC = 13
IMAGE_SIZE = 224
EMBED_DIM = 1024
BATCH_SIZE = 20  # syncnet_python's default; results do not depend on it (eval-mode BN)


class OfficialWeightsError(BenchError, ValueError):
    """The file is not a usable official SyncNet state dict; the message names the file and what is wrong."""


# ----------------------------------------------------------------------------------------------- network

def _stage(dims: int, cin: int, cout: int, kernel: Any, stride: Any = 1, padding: Any = 0,
           pool: tuple[Any, Any, Any] | None = None, inplace: bool = True) -> list[nn.Module]:
    """conv -> batch norm -> ReLU [-> max pool]: the unit both official conv towers are made of."""
    conv, norm, maxpool = ((nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d) if dims == 2
                           else (nn.Conv3d, nn.BatchNorm3d, nn.MaxPool3d))
    layers = [conv(cin, cout, kernel_size=kernel, stride=stride, padding=padding), norm(cout), nn.ReLU(inplace)]
    if pool is not None:
        layers.append(maxpool(kernel_size=pool[0], stride=pool[1], padding=pool[2]))
    return layers


def _head(embed_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, embed_dim))


class OfficialSyncNet(nn.Module):
    """syncnet_python's ``S``: same layers, same state-dict keys; ``embed_audio`` / ``embed_video``."""

    def __init__(self, embed_dim: int = EMBED_DIM) -> None:
        super().__init__()
        # Audio: 1 x 13 x 20 -> 64 -> 192 (pool 3x3 stride (1,2): 11 x 9) -> 384 -> 256 -> 256 (pool: 5 x 4)
        # -> 512 x 1 x 1 via a 5 x 4 valid conv.
        self.netcnnaud = nn.Sequential(
            *_stage(2, 1, 64, 3, 1, 1, pool=(1, 1, 0)),
            *_stage(2, 64, 192, 3, 1, 1, pool=(3, (1, 2), 0)),
            *_stage(2, 192, 384, 3, 1, 1),
            *_stage(2, 384, 256, 3, 1, 1),
            *_stage(2, 256, 256, 3, 1, 1, pool=(3, 2, 0)),
            *_stage(2, 256, 512, (5, 4), 1, 0, inplace=False),
        )
        self.netfcaud = _head(embed_dim)
        self.netfclip = _head(embed_dim)
        # Video: 3 x 5 x 224 x 224 -> (5x7x7 conv stride 2 spans time) 96 x 1 x 109 -> pool 54 -> 256 x 26
        # -> pool 13 -> 256 -> 256 -> 256 -> pool 6 -> 512 x 1 x 1 via a 6 x 6 valid conv.
        self.netcnnlip = nn.Sequential(
            *_stage(3, 3, 96, (5, 7, 7), (1, 2, 2), 0, pool=((1, 3, 3), (1, 2, 2), 0)),
            *_stage(3, 96, 256, (1, 5, 5), (1, 2, 2), (0, 1, 1), pool=((1, 3, 3), (1, 2, 2), (0, 1, 1))),
            *_stage(3, 256, 256, (1, 3, 3), 1, (0, 1, 1)),
            *_stage(3, 256, 256, (1, 3, 3), 1, (0, 1, 1)),
            *_stage(3, 256, 256, (1, 3, 3), 1, (0, 1, 1), pool=((1, 3, 3), (1, 2, 2), 0)),
            *_stage(3, 256, 512, (1, 6, 6), 1, 0),
        )

    def embed_audio(self, mfcc: torch.Tensor) -> torch.Tensor:
        """N x 1 x 13 x 20 MFCC windows -> N x 1024 (the official ``forward_aud``)."""
        return self.netfcaud(self.netcnnaud(mfcc).flatten(1))

    def embed_video(self, frames: torch.Tensor) -> torch.Tensor:
        """N x 3 x 5 x 224 x 224 BGR 0-255 float windows -> N x 1024 (the official ``forward_lip``)."""
        return self.netfclip(self.netcnnlip(frames).flatten(1))


@functools.lru_cache(maxsize=1)
def expected_shapes() -> dict[str, tuple[int, ...]]:
    """Every state-dict key of the official network and its shape."""
    return {k: tuple(v.shape) for k, v in OfficialSyncNet().state_dict().items()}


# ----------------------------------------------------------------------------------------------- weights

def _summary(names: list[str], limit: int = 4) -> str:
    more = f" (+{len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _strip_prefix(state: Mapping[str, Any]) -> dict[str, Any]:
    """Drop a wrapper prefix some forks save with (``__S__.`` from SyncNetInstance, ``module.`` from DDP)."""
    for prefix in ("__S__.", "module."):
        if state and all(isinstance(k, str) and k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return dict(state)


def normalise_state(state: Any, path: Path | str) -> dict[str, torch.Tensor]:
    """A complete, checked float32 state dict for ``OfficialSyncNet``, or one OfficialWeightsError naming ``path``.

    Only ``*.num_batches_tracked`` may be missing (older torch did not save it, and eval-mode BN never reads
    it); it is filled with 0. Any other missing key, unexpected key or wrong shape is an error.
    """
    if not isinstance(state, Mapping):
        raise OfficialWeightsError(f"{path}: expected a state dict (name -> tensor), found {type(state).__name__}")
    state = _strip_prefix(state)
    expected = expected_shapes()
    problems = []
    not_tensors = sorted(k for k, v in state.items() if not isinstance(v, torch.Tensor))
    missing = sorted(k for k in expected if k not in state and not k.endswith("num_batches_tracked"))
    unexpected = sorted(k for k in state if k not in expected)
    wrong = sorted(f"{k} {tuple(v.shape)} (expected {expected[k]})" for k, v in state.items()
                   if k in expected and isinstance(v, torch.Tensor) and tuple(v.shape) != expected[k])
    for label, names in (("not tensors", not_tensors), ("missing keys", missing),
                         ("unexpected keys", unexpected), ("wrong shapes", wrong)):
        if names:
            problems.append(f"{len(names)} {label}: {_summary(names)}")
    if problems:
        raise OfficialWeightsError(f"{path}: not the official SyncNet (syncnet_v2.model) state dict: "
                                   + "; ".join(problems))
    out = {}
    for key in expected:
        value = state.get(key)
        if value is None:  # a missing num_batches_tracked
            out[key] = torch.zeros((), dtype=torch.long)
        else:
            out[key] = value.detach().to("cpu", torch.long if key.endswith("num_batches_tracked") else torch.float32)
    return out


def _read_plain(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise OfficialWeightsError(f"{path}: no such file") from None
    # KeyError / IndexError: a file of arbitrary bytes can send the unpickler's memo lookups astray.
    except (pickle.UnpicklingError, RuntimeError, EOFError, AttributeError, ValueError, KeyError, IndexError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise OfficialWeightsError(
            f"{path}: cannot be read as a plain state dict with torch.load(weights_only=True) ({first}); "
            "if it is a whole pickled model, convert it once with "
            "bench.metrics.syncnet_official.convert_official_syncnet(path, allow_pickle=True) from a source you trust"
        ) from None


@contextlib.contextmanager
def _official_module_shim() -> Iterator[None]:
    """Let a whole pickled syncnet_python model unpickle: its class is ``SyncNetModel.S``."""
    if "SyncNetModel" in sys.modules:
        yield
        return
    shim = types.ModuleType("SyncNetModel")
    shim.S = OfficialSyncNet  # type: ignore[attr-defined]
    sys.modules["SyncNetModel"] = shim
    try:
        yield
    finally:
        sys.modules.pop("SyncNetModel", None)


def convert_official_syncnet(path: str | Path, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    """The official weights file -> a checked plain state dict (save it with torch.save to cache it).

    The genuine ``syncnet_v2.model`` is already a plain state dict and is read with
    ``torch.load(weights_only=True)``, which can only rebuild tensors and containers: reading it runs no
    code from the file. ``allow_pickle=True`` is for copies re-saved as a whole pickled model
    (``torch.save(model)``), which weights_only refuses: it falls back to full unpickling, which *can run
    arbitrary code embedded in the file*. Use it only on a file from a source you trust, once, knowingly;
    the result is a plain tensor dict, so every later load is safe again.
    """
    path = Path(path).expanduser()
    try:
        state = _read_plain(path)
    except OfficialWeightsError:
        if not allow_pickle or not path.is_file():
            raise
        log.warning("%s: not a plain state dict; unpickling it fully (allow_pickle=True): this runs code from "
                    "the file, so only do it for a file you trust", path)
        with _official_module_shim():
            try:
                state = torch.load(path, map_location="cpu", weights_only=False)
            except Exception as error:  # noqa: BLE001 -- any failure of an arbitrary pickle is the file's fault
                raise OfficialWeightsError(f"{path}: cannot be unpickled ({type(error).__name__}: {error})") from None
        if isinstance(state, nn.Module):
            state = state.state_dict()
        elif isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
            state = state["state_dict"]
    return normalise_state(state, path)


def load_official_syncnet(path: str | Path | None = None, device: str | torch.device = "cpu") -> OfficialSyncNet:
    """The official SyncNet in eval mode, from ``path`` or the weights cache (``bench weights fetch
    --from-file syncnet=PATH``); read with weights_only=True, checked key by key and shape by shape."""
    if path is None:
        from bench.weights import store as weights
        path = weights.require("syncnet_official")
    path = Path(path).expanduser()
    model = OfficialSyncNet()
    model.load_state_dict(normalise_state(_read_plain(path), path), strict=True)
    log.info("loaded official SyncNet weights from %s", path)
    return model.to(device).eval()


# ----------------------------------------------------------------------------------------------- front-ends

def to_pcm16(audio: np.ndarray) -> np.ndarray:
    """float [-1, 1] -> the int16 sample values the official code feeds to MFCC (as float64).

    Rounded to nearest (ties to even) and clipped, as ffmpeg's float -> s16 conversion does; audio decoded
    from 16-bit PCM (x / 32768) comes back exactly.
    """
    audio = np.asarray(audio, dtype=np.float64)
    if audio.ndim != 1:
        raise ValueError(f"audio must be mono 1-D, got shape {audio.shape}")
    return np.clip(np.round(audio * 32768.0), -32768, 32767)


def mfcc_features(audio: np.ndarray) -> np.ndarray:
    """13 x M float32 MFCCs (M = 1 + ceil((n - 400) / 160), 100 per second) of 16 kHz float audio."""
    import python_speech_features  # the official front-end itself, imported late: only LSE needs it

    return python_speech_features.mfcc(to_pcm16(audio), SAMPLE_RATE).T.astype(np.float32)


def prepare_frames(frames: np.ndarray, chunk: int = 64) -> torch.Tensor:
    """uint8 T x H x W x 3 RGB face crops -> uint8 T x 3 x 224 x 224 in BGR order, as cv2 would hold them.

    Other sizes are resized bilinearly with half-pixel centres and no antialiasing (cv2.resize's default
    INTER_LINEAR), rounded back to uint8; cv2's fixed-point arithmetic can differ by one grey level.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 T x H x W x 3, got {frames.dtype} {frames.shape}")
    x = torch.from_numpy(np.ascontiguousarray(frames[..., ::-1])).permute(0, 3, 1, 2)  # BGR, T x 3 x H x W
    if x.shape[-2:] == (IMAGE_SIZE, IMAGE_SIZE):
        return x.contiguous()
    out = [F.interpolate(x[i:i + chunk].float(), size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear",
                         align_corners=False, antialias=False).round_().clamp_(0, 255).to(torch.uint8)
           for i in range(0, x.shape[0], chunk)]
    return torch.cat(out)


def window_count(n_frames: int, n_samples: int) -> int:
    """Windows the official evaluation scores: min(frames, samples // 640) - 5 (one fewer than fit)."""
    return min(n_frames, n_samples // SAMPLES_PER_FRAME) - WINDOW_FRAMES


def official_embeddings(model: OfficialSyncNet, frames: np.ndarray, audio: np.ndarray,
                        device: str | torch.device = "cpu", batch_size: int = BATCH_SIZE,
                        max_windows: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(video_emb, audio_emb), each N x 1024 float32 on the CPU, one row per 5-frame window.

    ``frames``: uint8 T x H x W x 3 RGB face crops at 25 fps; ``audio``: float32 mono 16 kHz in [-1, 1]
    covering the same span. ``max_windows`` keeps only the first windows (tests, quick looks).
    """
    crops = prepare_frames(frames)
    mfcc = torch.from_numpy(mfcc_features(audio))
    n = window_count(len(crops), len(audio))
    if max_windows is not None:
        n = min(n, max_windows)
    if n < 1:
        raise ValueError(f"too short for SyncNet: {len(crops)} frames and {len(audio)} samples give no "
                         f"{WINDOW_FRAMES}-frame window (need at least {WINDOW_FRAMES + 1} frames of both)")
    model.eval()
    video_out, audio_out = [], []
    offsets = torch.arange(WINDOW_FRAMES)
    with torch.inference_mode():
        for start in range(0, n, batch_size):
            starts = torch.arange(start, min(n, start + batch_size))
            clips = crops[starts[:, None] + offsets]  # B x 5 x 3 x 224 x 224
            clips = clips.permute(0, 2, 1, 3, 4).to(device, torch.float32)
            cols = (starts[:, None] * MFCC_PER_FRAME + torch.arange(MFCC_WINDOW)).reshape(-1)
            windows = mfcc[:, cols].reshape(N_MFCC, len(starts), MFCC_WINDOW).permute(1, 0, 2)[:, None]
            video_out.append(model.embed_video(clips).float().cpu())
            audio_out.append(model.embed_audio(windows.to(device)).float().cpu())
    return torch.cat(video_out), torch.cat(audio_out)


def official_lse(model: OfficialSyncNet, frames: np.ndarray, audio: np.ndarray,
                 device: str | torch.device = "cpu", batch_size: int = BATCH_SIZE,
                 max_offset: int = MAX_OFFSET) -> SyncResult:
    """LSE-D / LSE-C / AV offset of one clip with the official network (syncnet_python's ``evaluate``)."""
    video_emb, audio_emb = official_embeddings(model, frames, audio, device, batch_size)
    return lse(video_emb, audio_emb, max_offset)
