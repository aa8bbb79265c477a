"""Speech-like audio and the mouth trajectory it implies.

A small formant synthesiser turns a random phoneme sequence into a 16 kHz waveform, and the
same phoneme timing drives the mouth through a viseme table, so audio and mouth motion are
related the way they are in real talking-head video: loud open vowels come with an open
mouth, bilabials (p, b, m) and pauses with a closed one.

Voiced sounds use formant-wave-function synthesis: every glottal pulse adds the sum of three
damped sinusoids at the formant frequencies current at that pulse (overlap-add, fully
vectorised). Each pulse is scaled so that a steady sound's RMS equals its ``loudness``, which
keeps the loudness table below meaningful. Fricatives are band-shaped noise, plosives a
closure (silence, or a weak voice bar for b, d, g) followed by a short burst, nasals a quiet
low hum, pauses near silence.

Per-frame labels are sampled at frame centres, ``t = (f + 0.5) / fps``: frame ``f`` covers
audio samples ``[f, f + 1) * sample_rate / fps``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from bench.api import SAMPLE_RATE
CONTROL_RATE = 1000  # articulator trajectories are computed on a 1 ms grid

# Viseme set of the common 15-class scheme: (opening, width, rounding), each in [0, 1].
VISEMES: tuple[tuple[str, float, float, float], ...] = (
    ("sil", 0.00, 0.50, 0.10),
    ("PP", 0.00, 0.50, 0.15),
    ("FF", 0.08, 0.60, 0.00),
    ("TH", 0.15, 0.60, 0.00),
    ("DD", 0.20, 0.60, 0.00),
    ("kk", 0.28, 0.55, 0.00),
    ("CH", 0.18, 0.35, 0.65),
    ("SS", 0.12, 0.80, 0.00),
    ("nn", 0.22, 0.60, 0.00),
    ("RR", 0.25, 0.40, 0.50),
    ("aa", 1.00, 0.65, 0.00),
    ("E", 0.55, 0.90, 0.00),
    ("ih", 0.28, 1.00, 0.00),
    ("oh", 0.65, 0.30, 0.80),
    ("ou", 0.22, 0.15, 1.00),
)
VISEME_NAMES: tuple[str, ...] = tuple(v[0] for v in VISEMES)


class Phone(NamedTuple):
    kind: str  # vowel, liquid, nasal, fricative, plosive, pause
    viseme: str
    formants: tuple[float, float, float]  # Hz, for an average adult voice
    loudness: float  # target RMS of the voiced part (noise part for fricatives)
    voiced: bool
    noise_band: tuple[float, float] = (0.0, 0.0)  # centre Hz, width Hz of the noise


PHONES: dict[str, Phone] = {
    "a": Phone("vowel", "aa", (730, 1090, 2440), 0.50, True),
    "ae": Phone("vowel", "aa", (660, 1720, 2410), 0.45, True),
    "o": Phone("vowel", "oh", (570, 840, 2410), 0.36, True),
    "e": Phone("vowel", "E", (530, 1840, 2480), 0.32, True),
    "i": Phone("vowel", "ih", (270, 2290, 3010), 0.17, True),
    "u": Phone("vowel", "ou", (300, 870, 2240), 0.15, True),
    "l": Phone("liquid", "nn", (360, 1300, 2900), 0.12, True),
    "r": Phone("liquid", "RR", (420, 1300, 1600), 0.12, True),
    "w": Phone("liquid", "ou", (300, 610, 2200), 0.09, True),
    "m": Phone("nasal", "PP", (250, 1000, 2200), 0.05, True),
    "n": Phone("nasal", "nn", (250, 1400, 2500), 0.06, True),
    "f": Phone("fricative", "FF", (300, 1000, 2300), 0.035, False, (6000, 3500)),
    "v": Phone("fricative", "FF", (300, 1000, 2300), 0.030, True, (6000, 3500)),
    "th": Phone("fricative", "TH", (300, 1400, 2500), 0.030, False, (5000, 4000)),
    "s": Phone("fricative", "SS", (300, 1700, 2600), 0.070, False, (6500, 1800)),
    "z": Phone("fricative", "SS", (300, 1700, 2600), 0.050, True, (6500, 1800)),
    "sh": Phone("fricative", "CH", (300, 1600, 2300), 0.080, False, (3500, 1500)),
    "p": Phone("plosive", "PP", (300, 900, 2300), 0.12, False, (1200, 1500)),
    "b": Phone("plosive", "PP", (300, 900, 2300), 0.10, True, (1000, 1200)),
    "t": Phone("plosive", "DD", (300, 1700, 2600), 0.12, False, (4500, 2500)),
    "d": Phone("plosive", "DD", (300, 1700, 2600), 0.10, True, (4000, 2500)),
    "k": Phone("plosive", "kk", (300, 1900, 2400), 0.12, False, (2200, 1200)),
    "g": Phone("plosive", "kk", (300, 1900, 2400), 0.10, True, (2000, 1200)),
    "sil": Phone("pause", "sil", (500, 1500, 2500), 0.0, False),
}
VOWELS = ("a", "ae", "o", "e", "i", "u")
ONSETS = ("p", "b", "t", "d", "k", "g", "m", "n", "f", "v", "s", "z", "sh", "th", "l", "r", "w")
CODAS = ("n", "m", "s", "t", "k", "l", "r", "p", "d", "z")
BANDWIDTHS = (80.0, 110.0, 160.0)  # formant bandwidths, Hz
FORMANT_GAINS = (1.0, 0.55, 0.3)


@dataclass(frozen=True)
class Voice:
    """What makes one identity's voice its own."""

    f0: float = 120.0  # mean pitch, Hz
    formant_scale: float = 1.0  # vocal-tract length: > 1 is a shorter tract, higher formants
    rate: float = 1.0  # speaking rate: > 1 is faster
    articulation: float = 1.0  # how wide this speaker opens the mouth (scales opening)


@dataclass(frozen=True)
class Speech:
    """A waveform with its phoneme timing and per-frame articulator labels."""

    waveform: np.ndarray  # float32, N samples in [-1, 1]
    sample_rate: int
    phonemes: tuple[tuple[str, float, float], ...]  # (phoneme, start s, end s)
    mouth_open: np.ndarray  # float32, T in [0, 1]
    width: np.ndarray  # float32, T in [0, 1] (0.5 neutral, 1 spread)
    rounding: np.ndarray  # float32, T in [0, 1]
    viseme: np.ndarray  # int16, T, index into viseme_names
    viseme_names: tuple[str, ...]


def random_voice(rng: np.random.Generator) -> Voice:
    """A plausible adult voice: lower or higher register, matching vocal-tract length."""
    high = rng.random() < 0.5
    f0 = rng.uniform(175.0, 230.0) if high else rng.uniform(95.0, 135.0)
    scale = rng.uniform(1.08, 1.18) if high else rng.uniform(0.92, 1.02)
    return Voice(f0=f0, formant_scale=scale, rate=rng.uniform(0.9, 1.12), articulation=rng.uniform(0.85, 1.0))


def phoneme_sequence(rng: np.random.Generator, seconds: float, rate: float = 1.0) -> list[tuple[str, float]]:
    """Random syllables grouped into words and phrases, as (phoneme, duration s) pairs."""
    sequence: list[tuple[str, float]] = [("sil", rng.uniform(0.08, 0.22))]
    total = sequence[0][1]
    while total < seconds + 0.3:
        for _ in range(int(rng.integers(1, 4))):  # syllables in a word
            syllable = []
            if rng.random() < 0.8:
                syllable.append(str(rng.choice(ONSETS)))
            vowel = str(rng.choice(VOWELS, p=(0.26, 0.16, 0.16, 0.16, 0.14, 0.12)))
            syllable.append(vowel)
            if rng.random() < 0.35:
                syllable.append(str(rng.choice(CODAS)))
            for phone in syllable:
                duration = _duration(rng, phone) / rate
                sequence.append((phone, duration))
                total += duration
        if rng.random() < 0.3:
            pause = rng.uniform(0.12, 0.32)
            sequence.append(("sil", pause))
            total += pause
    sequence.append(("sil", 0.3))
    return sequence


def _duration(rng: np.random.Generator, phone: str) -> float:
    kind = PHONES[phone].kind
    if kind == "vowel":
        base = 0.15 if phone in ("a", "ae", "o") else 0.11
        return base * rng.uniform(0.75, 1.35)
    if kind == "plosive":
        return rng.uniform(0.07, 0.10)
    return rng.uniform(0.055, 0.10)


def synthesize(
    rng: np.random.Generator,
    seconds: float,
    fps: float,
    voice: Voice = Voice(),
    sample_rate: int = SAMPLE_RATE,
) -> Speech:
    """Speech of the given length and its per-frame mouth labels, all from ``rng``."""
    sequence = phoneme_sequence(rng, seconds, voice.rate)
    n_samples = int(round(seconds * sample_rate))
    segments = _segments(sequence)
    wave = _voiced(rng, segments, n_samples, sample_rate, voice)
    wave += _noise(rng, segments, n_samples, sample_rate)
    wave += rng.normal(0.0, 0.0015, n_samples)  # room noise, so silence is not digital zero
    peak = np.max(np.abs(wave))
    if peak > 0.95:
        wave *= 0.95 / peak
    n_frames = int(round(seconds * fps))
    frame_times = (np.arange(n_frames) + 0.5) / fps
    opening, width, rounding = _articulation(segments, frame_times, voice)
    viseme = _frame_visemes(segments, frame_times)
    return Speech(
        waveform=wave.astype(np.float32),
        sample_rate=sample_rate,
        phonemes=tuple((p, float(s), float(e)) for p, s, e in segments),
        mouth_open=opening.astype(np.float32),
        width=width.astype(np.float32),
        rounding=rounding.astype(np.float32),
        viseme=viseme.astype(np.int16),
        viseme_names=VISEME_NAMES,
    )


def _segments(sequence: list[tuple[str, float]]) -> list[tuple[str, float, float]]:
    segments, start = [], 0.0
    for phone, duration in sequence:
        segments.append((phone, start, start + duration))
        start += duration
    return segments


def _track(segments: list[tuple[str, float, float]], rate: int, n: int, value) -> np.ndarray:
    """A per-sample piecewise-constant track of ``value(phone)`` (scalar or tuple)."""
    first = np.asarray(value(segments[0][0]), dtype=np.float64)
    out = np.zeros((n,) + first.shape)
    for phone, start, end in segments:
        a, b = int(round(start * rate)), min(int(round(end * rate)), n)
        if a < n and b > a:
            out[a:b] = value(phone)
    return out


def _smooth(track: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing along axis 0 (sigma in samples), edges held constant."""
    radius = int(np.ceil(3 * sigma))
    if radius < 1:
        return track
    x = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (x / sigma) ** 2)
    kernel /= kernel.sum()
    padded = np.concatenate([np.repeat(track[:1], radius, 0), track, np.repeat(track[-1:], radius, 0)])
    if track.ndim == 1:
        return np.convolve(padded, kernel, mode="valid")
    return np.stack([np.convolve(padded[:, i], kernel, mode="valid") for i in range(track.shape[1])], 1)


def _voiced(rng: np.random.Generator, segments, n: int, rate: int, voice: Voice) -> np.ndarray:
    """Glottal pulse train through the formants, one damped-sinusoid triple per pulse."""
    def voicing(phone: str) -> float:
        spec = PHONES[phone]
        if spec.kind in ("vowel", "liquid", "nasal"):
            return spec.loudness
        return 0.012 if spec.voiced else 0.0  # voice bar of voiced obstruents

    amplitude = _smooth(_track(segments, rate, n, voicing), 0.006 * rate)
    formants = _smooth(_track(segments, rate, n, lambda p: PHONES[p].formants), 0.018 * rate)
    formants *= voice.formant_scale
    t = np.arange(n) / rate
    # Pitch: declination over the utterance, slow wobble, and accents on a few vowels.
    f0 = voice.f0 * (1.08 - 0.12 * t / max(t[-1], 1e-6))
    f0 *= 1 + 0.04 * np.sin(2 * np.pi * rng.uniform(0.4, 0.9) * t + rng.uniform(0, 2 * np.pi))
    accent = _track(segments, rate, n, lambda p: 0.0)
    for phone, start, end in segments:
        if PHONES[phone].kind == "vowel" and rng.random() < 0.35:
            accent[int(start * rate):int(end * rate)] = rng.uniform(0.05, 0.12)
    f0 *= 1 + _smooth(accent, 0.03 * rate)
    phase = np.cumsum(f0 / rate)
    pulses = np.nonzero(np.diff(np.floor(phase)) > 0)[0] + 1
    pulses = pulses[amplitude[pulses] > 1e-4]
    if len(pulses) == 0:
        return np.zeros(n)
    length = int(0.03 * rate)
    tau = np.arange(length) / rate
    bands = np.array(BANDWIDTHS)[None, :, None]
    gains = np.array(FORMANT_GAINS)[None, :, None]
    freq = formants[pulses][:, :, None]
    shapes = gains * np.exp(-np.pi * bands * tau) * np.sin(2 * np.pi * freq * tau)
    onset = np.minimum(1.0, tau / 0.0015)
    responses = shapes.sum(1) * onset
    # Scale so a steady sound's RMS is its loudness: power = f0 * sum(g^2 / (4 pi B)).
    power = f0[pulses] * np.sum(np.array(FORMANT_GAINS) ** 2 / (4 * np.pi * np.array(BANDWIDTHS)))
    jitter = 1 + 0.03 * rng.standard_normal(len(pulses))
    responses *= (amplitude[pulses] * jitter / np.sqrt(power))[:, None]
    index = pulses[:, None] + np.arange(length)[None, :]
    keep = index < n
    return np.bincount(index[keep], weights=responses[keep], minlength=n)[:n]


def _band_noise(rng: np.random.Generator, n: int, rate: int, centre: float, width: float) -> np.ndarray:
    """White noise shaped by a Gaussian band in the spectrum, unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / rate)
    spectrum *= np.exp(-0.5 * ((freqs - centre) / max(width, 1.0)) ** 2)
    noise = np.fft.irfft(spectrum, n)
    return noise / max(float(np.sqrt(np.mean(noise**2))), 1e-9)


def _noise(rng: np.random.Generator, segments, n: int, rate: int) -> np.ndarray:
    """Fricative noise and plosive bursts."""
    out = np.zeros(n)
    for phone, start, end in segments:
        spec = PHONES[phone]
        a, b = int(round(start * rate)), min(int(round(end * rate)), n)
        if b - a < 8 or spec.kind not in ("fricative", "plosive"):
            continue
        if spec.kind == "fricative":
            length = b - a
            envelope = np.minimum(1.0, np.minimum(np.arange(length), np.arange(length)[::-1]) / (0.012 * rate))
            out[a:b] += spec.loudness * envelope * _band_noise(rng, length, rate, *spec.noise_band)
        else:
            length = min(int(0.02 * rate), b - a)
            decay = np.exp(-np.arange(length) / (0.005 * rate))
            out[b - length:b] += 2.0 * spec.loudness * decay * _band_noise(rng, length, rate, *spec.noise_band)
    return out


def _articulation(segments, frame_times: np.ndarray, voice: Voice) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mouth opening, width and rounding at frame times, smoothed for coarticulation."""
    table = {name: (o, w, r) for name, o, w, r in VISEMES}
    end = segments[-1][2]
    n = int(np.ceil(end * CONTROL_RATE)) + 1
    targets = _track(segments, CONTROL_RATE, n, lambda p: table[PHONES[p].viseme])
    smooth = _smooth(targets, 0.028 * CONTROL_RATE)
    # Lips really close for bilabials and pauses, whatever the neighbours do.
    closed = _track(segments, CONTROL_RATE, n, lambda p: float(PHONES[p].viseme in ("PP", "sil")))
    closure = np.clip(_smooth(closed, 0.012 * CONTROL_RATE) * 1.15, 0.0, 1.0)
    opening = smooth[:, 0] * (1 - closure) * voice.articulation
    grid = np.arange(n) / CONTROL_RATE
    sample = lambda track: np.interp(frame_times, grid, track)  # noqa: E731
    return (
        np.clip(sample(opening), 0.0, 1.0),
        np.clip(sample(smooth[:, 1]), 0.0, 1.0),
        np.clip(sample(smooth[:, 2]), 0.0, 1.0),
    )


def _frame_visemes(segments, frame_times: np.ndarray) -> np.ndarray:
    starts = np.array([s for _, s, _ in segments])
    index = np.clip(np.searchsorted(starts, frame_times, side="right") - 1, 0, len(segments) - 1)
    names = [PHONES[segments[i][0]].viseme for i in index]
    return np.array([VISEME_NAMES.index(v) for v in names], dtype=np.int16)
