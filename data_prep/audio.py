"""Audio features for the speech tasks, in numpy: mel band energies (TIDIGITS) and MFCC (TIMIT).

Audio is read by soundfile (libsndfile), which reads NIST SPHERE (TIDIGITS, TIMIT) as well as WAV.

Band energies (paper §4.1, "30 frames and 30 bands with 50 % overlap"): the whole utterance is cut
into F frames of length L with hop L (1 - overlap), ``L = N / (1 + (F - 1)(1 - overlap))``, so they
cover all N samples; each frame is Hann-windowed, its power spectrum ``|rfft|^2`` summed by B
triangular mel filters (0 .. sr/2), and the level ``10 log10(E)`` mapped to [0, 1] against the
utterance's loudest band: ``p = clip(1 + (dB - max dB) / range_db, 0, 1)``. ``scale="l1"`` instead keeps
the linear energies and divides each band by its sum over the frames (each band's column sums to 1), as
the paper authors' code prepares TIDIGITS: small values, large only where a band peaks.

MFCC: 25 ms Hamming frames every 10 ms after pre-emphasis ``x[n] - 0.97 x[n-1]``, 26 mel filters,
``log``, DCT-II (orthonormal), the first 13 coefficients (c0 included).
"""

from __future__ import annotations

import io
import os

import numpy as np
import soundfile
from scipy.fft import dct

from data_prep.common import PrepError

AudioSource = str | os.PathLike | bytes


def read_audio(source: AudioSource, name: str | None = None) -> tuple[np.ndarray, int]:
    """Mono float64 samples and the sample rate of a file (or of encoded bytes, e.g. WAV from a
    synthesiser); :class:`PrepError` naming ``name`` (default: the path) when it cannot be read."""
    label = name or str(source)
    try:
        data, rate = soundfile.read(io.BytesIO(source) if isinstance(source, bytes) else source, dtype="float64", always_2d=True)
    except Exception as err:  # soundfile.LibsndfileError, RuntimeError, OSError
        raise PrepError(f"{label}: cannot read audio ({err})") from err
    if data.shape[0] == 0:
        raise PrepError(f"{label}: audio file holds no samples")
    return data.mean(axis=1), int(rate)


def hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    """``2595 log10(1 + f / 700)``."""
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(n_bands: int, n_fft: int, rate: int) -> np.ndarray:
    """``[n_bands, n_fft // 2 + 1]`` triangular filters with centres equally spaced in mel, 0 .. rate/2."""
    edges = mel_to_hz(np.linspace(0.0, hz_to_mel(rate / 2), n_bands + 2))
    freqs = np.fft.rfftfreq(n_fft, 1.0 / rate)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rise = (freqs - lo) / np.maximum(mid - lo, 1e-12)
    fall = (hi - freqs) / np.maximum(hi - mid, 1e-12)
    return np.clip(np.minimum(rise, fall), 0.0, None)


#: how band energies become levels in [0, 1] (see the module docstring)
SCALES = ("db", "l1")


def band_energies(
    signal: np.ndarray,
    rate: int,
    n_frames: int = 30,
    n_bands: int = 30,
    overlap: float = 0.5,
    range_db: float = 60.0,
    scale: str = "db",
) -> np.ndarray:
    """Normalised band levels in [0, 1], ``[n_frames, n_bands]`` (see the module docstring)."""
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    n = len(signal)
    length = int(n / (1 + (n_frames - 1) * (1 - overlap)))
    if length < 2:
        raise PrepError(f"utterance of {n} samples is too short for {n_frames} frames")
    starts = np.round(np.linspace(0, n - length, n_frames)).astype(np.int64)
    frames = signal[starts[:, None] + np.arange(length)] * np.hanning(length)
    n_fft = 1 << (length - 1).bit_length()
    power = np.abs(np.fft.rfft(frames, n_fft, axis=1)) ** 2
    energy = power @ mel_filterbank(n_bands, n_fft, rate).T
    if scale == "l1":
        total = energy.sum(axis=0)
        return energy / np.where(total > 0, total, 1.0)
    level = 10.0 * np.log10(energy + 1e-12)
    return np.clip(1.0 + (level - level.max()) / range_db, 0.0, 1.0)


def mfcc(
    signal: np.ndarray, rate: int, n_mfcc: int = 13, win_s: float = 0.025, hop_s: float = 0.010, n_mels: int = 26
) -> np.ndarray:
    """MFCC ``[frames, n_mfcc]`` (see the module docstring); at least one frame."""
    x = np.append(signal[:1], signal[1:] - 0.97 * signal[:-1])
    win, hop = int(round(win_s * rate)), int(round(hop_s * rate))
    if len(x) < win:
        x = np.pad(x, (0, win - len(x)))
    n = 1 + (len(x) - win) // hop
    frames = x[np.arange(n)[:, None] * hop + np.arange(win)] * np.hamming(win)
    n_fft = 1 << (win - 1).bit_length()
    power = np.abs(np.fft.rfft(frames, n_fft, axis=1)) ** 2 / n_fft
    log_mel = np.log(power @ mel_filterbank(n_mels, n_fft, rate).T + 1e-10)
    return dct(log_mel, type=2, norm="ortho", axis=1)[:, :n_mfcc]


def minmax_columns(x: np.ndarray) -> np.ndarray:
    """Each column mapped linearly to [0, 1] (a constant column becomes 0)."""
    lo, hi = x.min(axis=0), x.max(axis=0)
    return (x - lo) / np.where(hi > lo, hi - lo, 1.0)
