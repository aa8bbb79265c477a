"""Audio front-end: log-mel spectrogram and per-video-frame mel windows.

Parameters follow Wav2Lip's (16 kHz, pre-emphasis 0.97, n_fft 800, hop 200 = 80 mel frames per
second, Hann window 800, 80 mels over 55-7600 Hz, dB scaled and mapped to [-4, 4]). One choice of
ours: the 16-frame (0.2 s) window is centred on the video frame's time rather than starting at it,
because the mouth at time t shows coarticulation with sounds on both sides of t.
"""
from __future__ import annotations

import functools

import numpy as np
import torch

from bench.api import SAMPLE_RATE

N_FFT = 800
HOP = 200
N_MELS = 80
MEL_FPS = SAMPLE_RATE / HOP  # 80 mel frames per second
WINDOW = 16


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    # Slaney's scale: linear below 1 kHz, logarithmic above (as librosa's default).
    hz = np.asarray(hz, dtype=np.float64)
    mel = hz / (200.0 / 3)
    log_region = hz >= 1000.0
    mel[log_region] = 15.0 + np.log(hz[log_region] / 1000.0) / (np.log(6.4) / 27.0)
    return mel


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    hz = mel * (200.0 / 3)
    log_region = mel >= 15.0
    hz[log_region] = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel[log_region] - 15.0))
    return hz


@functools.lru_cache(maxsize=4)
def mel_filterbank(n_mels: int = N_MELS, n_fft: int = N_FFT, sr: int = SAMPLE_RATE,
                   fmin: float = 55.0, fmax: float = 7600.0) -> np.ndarray:
    """Triangular Slaney-normalised filters, n_mels x (n_fft // 2 + 1)."""
    bins_hz = np.linspace(0, sr / 2, n_fft // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(np.array([fmin]))[0], _hz_to_mel(np.array([fmax]))[0], n_mels + 2))
    lower = (bins_hz[None, :] - edges[:-2, None]) / (edges[1:-1, None] - edges[:-2, None])
    upper = (edges[2:, None] - bins_hz[None, :]) / (edges[2:, None] - edges[1:-1, None])
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32)


def log_mel(wave: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Normalised log-mel spectrogram, n_mels x frames, values in [-4, 4]."""
    if sr != SAMPLE_RATE:
        raise ValueError(f"audio must be {SAMPLE_RATE} Hz, got {sr} Hz")
    signal = torch.from_numpy(np.asarray(wave, dtype=np.float32))
    signal = torch.cat([signal[:1], signal[1:] - 0.97 * signal[:-1]])
    spec = torch.stft(signal, N_FFT, HOP, N_FFT, window=torch.hann_window(N_FFT), center=True,
                      return_complex=True).abs()
    mel = torch.from_numpy(mel_filterbank()) @ spec
    db = 20.0 * torch.log10(mel.clamp_min(1e-5)) - 20.0
    normalised = ((db + 100.0) / 100.0).clamp(0.0, 1.0) * 8.0 - 4.0
    return normalised.numpy()


def frame_windows(mel: np.ndarray, n_frames: int, fps: float) -> np.ndarray:
    """One n_mels x WINDOW slice per video frame, centred on the frame time (edges padded)."""
    pad = WINDOW
    padded = np.pad(mel, ((0, 0), (pad, pad)), mode="edge")
    starts = np.round(np.arange(n_frames) * MEL_FPS / fps).astype(int) - WINDOW // 2 + pad
    starts = np.clip(starts, 0, padded.shape[1] - WINDOW)
    return np.stack([padded[:, s:s + WINDOW] for s in starts]).astype(np.float32)
