"""Log-mel features on ``torch.stft``, grouped per model step, computable in streaming chunks.

Framing: mel frame ``j`` is a ``spec.mel_window``-sample periodic Hann window centred on the
middle of hop interval ``[j * hop, (j + 1) * hop)``, i.e. it spans samples
``[j * hop + hop / 2 - window / 2, ... + window)``; samples outside the signal are zeros. So
the ``mel_frames_per_step`` frames of step ``k`` are centred inside step ``k``'s own time
span, and frame ``j`` depends only on a fixed range of samples, which makes chunked
computation equal to whole-signal computation (see :class:`StreamingLogMel`).

Filterbank: HTK mel scale (``2595 * log10(1 + f / 700)``), ``n_mels`` triangular filters
between 0 Hz and Nyquist on the power spectrum (FFT size: next power of two >= window), no
area normalisation (peak 1). Output: ``log(mel_power + 1e-6)``.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from avdf.timebase import MediaSpec

LOG_FLOOR = 1e-6


def _n_fft(spec: MediaSpec) -> int:
    return 1 << (spec.mel_window - 1).bit_length()


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + hz / 700.0)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def triangular_filters(fft_hz: np.ndarray, edges_hz: np.ndarray) -> np.ndarray:
    """(len(fft_hz), len(edges_hz) - 2) triangular filters, peak 1: filter k rises from
    ``edges_hz[k]`` to ``edges_hz[k + 1]`` and falls to ``edges_hz[k + 2]``."""
    lower, centre, upper = edges_hz[:-2], edges_hz[1:-1], edges_hz[2:]
    rising = (fft_hz[:, None] - lower) / (centre - lower)  # (n_freqs, n_mels)
    falling = (upper - fft_hz[:, None]) / (upper - centre)
    return np.clip(np.minimum(rising, falling), 0.0, None)


@functools.lru_cache(maxsize=8)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int) -> torch.Tensor:
    """(n_fft // 2 + 1, n_mels) float32 triangular HTK-mel filters, peak 1."""
    fft_hz = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    edges_hz = _mel_to_hz(np.linspace(0.0, _hz_to_mel(np.array(sample_rate / 2.0)), n_mels + 2))
    return torch.from_numpy(triangular_filters(fft_hz, edges_hz).astype(np.float32))


def _frame_offset(spec: MediaSpec) -> int:
    """Samples of zero padding before sample 0 so that frame j's n_fft-long stft frame starts
    at ``j * hop`` in the padded signal. torch.stft centres a shorter window inside n_fft,
    so the window itself then starts at ``j * hop + hop / 2 - window / 2`` as documented."""
    n_fft = _n_fft(spec)
    window_start = spec.mel_hop // 2 - spec.mel_window // 2  # relative to j * hop
    return (n_fft - spec.mel_window) // 2 - window_start


def _log_mel_frames(padded: torch.Tensor, spec: MediaSpec, n_frames: int) -> torch.Tensor:
    """log-mel of the first ``n_frames`` frames of an already padded signal -> (n_frames, n_mels)."""
    n_fft = _n_fft(spec)
    needed = (n_frames - 1) * spec.mel_hop + n_fft
    if padded.numel() < needed:
        padded = torch.nn.functional.pad(padded, (0, needed - padded.numel()))
    stft = torch.stft(
        padded[:needed],
        n_fft=n_fft,
        hop_length=spec.mel_hop,
        win_length=spec.mel_window,
        window=torch.hann_window(spec.mel_window),
        center=False,
        return_complex=True,
    )  # (n_fft // 2 + 1, n_frames) complex
    power = stft.real.square() + stft.imag.square()
    mel = power.T @ mel_filterbank(spec.sample_rate, n_fft, spec.n_mels)  # (n_frames, n_mels)
    return torch.log(mel + LOG_FLOOR)


def log_mel(samples: np.ndarray, spec: MediaSpec, n_frames: int | None = None) -> np.ndarray:
    """(n_frames, n_mels) float32 log-mel of float32 mono ``samples`` at spec.sample_rate.

    ``n_frames`` defaults to ``ceil(len(samples) / hop)``; frames past the end see zeros.
    """
    if n_frames is None:
        n_frames = -(-len(samples) // spec.mel_hop)
    if n_frames <= 0:
        return np.zeros((0, spec.n_mels), np.float32)
    signal = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))
    padded = torch.nn.functional.pad(signal, (_frame_offset(spec), 0))
    with torch.no_grad():
        return _log_mel_frames(padded, spec, n_frames).numpy()


def mel_per_step(samples: np.ndarray, spec: MediaSpec, n_steps: int) -> np.ndarray:
    """(n_steps, mel_frames_per_step, n_mels) float16: step k takes mel frames [k*F, (k+1)*F).

    Audio shorter than ``n_steps`` steps is padded with zeros (silence) at the end.
    """
    per_step = spec.mel_frames_per_step
    mel = log_mel(samples, spec, n_steps * per_step)
    return mel.reshape(n_steps, per_step, spec.n_mels).astype(np.float16)


class StreamingLogMel:
    """Log-mel per step over audio that arrives in chunks; equal to :func:`mel_per_step`
    on the whole signal (up to float rounding).

    Keeps only the samples that later frames still need (less than one FFT length) plus
    whatever has not yet filled a whole step.
    """

    def __init__(self, spec: MediaSpec) -> None:
        self.spec = spec
        self._n_fft = _n_fft(spec)
        self.reset()

    def reset(self) -> None:
        # The buffer is the padded signal from frame ``self._next_frame``'s start onwards.
        self._buffer = np.zeros(_frame_offset(self.spec), np.float32)
        self._next_frame = 0
        self.samples_seen = 0

    def push(self, samples: np.ndarray) -> None:
        self._buffer = np.concatenate([self._buffer, np.asarray(samples, np.float32)])
        self.samples_seen += len(samples)

    def ready_steps(self) -> int:
        """Whole steps whose frames can be computed from the samples pushed so far."""
        hop = self.spec.mel_hop
        complete = max(0, (len(self._buffer) - self._n_fft) // hop + 1)
        return complete // self.spec.mel_frames_per_step

    def pop_steps(self, n_steps: int) -> np.ndarray:
        """(n_steps, F, n_mels) float16 for the next ``n_steps`` steps; missing samples
        (past the end of the audio) count as zeros."""
        spec = self.spec
        n_frames = n_steps * spec.mel_frames_per_step
        if n_steps <= 0:
            return np.zeros((0, spec.mel_frames_per_step, spec.n_mels), np.float16)
        with torch.no_grad():
            mel = _log_mel_frames(torch.from_numpy(self._buffer), spec, n_frames).numpy()
        consumed = n_frames * spec.mel_hop
        self._buffer = self._buffer[consumed:].copy()
        self._next_frame += n_frames
        return mel.reshape(n_steps, spec.mel_frames_per_step, spec.n_mels).astype(np.float16)
