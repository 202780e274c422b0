"""Speaker consistency per step: GE2E speaker embeddings on sliding windows, compared with
the video's own median voice and with the voice just before and after (DESIGN §12.2).

Weights: resemblyzer 0.1.4's ``pretrained.pt`` (Apache-2.0, GE2E), reduced to the encoder's
weights (1.42 M float32, no optimizer state) in ``assets/speaker_ge2e.npz`` (see
``assets/NOTICE``). The package itself is not a dependency: it pulls librosa, numba,
llvmlite and scikit-learn (about 500 MB) and builds webrtcvad from source, all for a mel
and a VAD; the encoder is LSTM(40, 256, 3 layers) -> Linear(256, 256) -> ReLU -> L2 norm on
160 frames of a 40-band power mel (Slaney scale and area norm, 25 ms Hann window, 10 ms hop,
frames centred on their hop, 16 kHz), which is written here in torch. Checked against resemblyzer 0.1.4 with librosa 0.11 in a
throwaway venv: mel and partial embeddings agree to 2e-7; this module's median voice of a
whole utterance has cosine 0.98-0.99 with resemblyzer's ``embed_utterance`` of it, and
0.47-0.58 with other speakers'.

Cost (benchmarks/experts.py, one thread, busy 2-core machine, 167 s of 18 clips): 18.6 ms
per video-second (2.4 audio decode, 16.2 GE2E), 12.7% of the whole preprocessing.

Two passes, both streaming:

1. :class:`SpeakerEmbedder` takes the audio chunk by chunk and embeds a 1.6 s window (the
   length GE2E was trained on) every ``hop_seconds``. Each window is brought up to -30 dBFS
   (never down), as GE2E's training audio was, so loudness does not move the voice. Only the
   embeddings are kept: 256 floats per hop (about 18 MB per hour at 0.2 s).
2. :meth:`SpeakerTrack.consistency` reduces them to four numbers per window: cosine to the
   median voice (per-dimension median of every speech window, renormalised), cosine to the
   mean voice 1.6-2.4 s before and after (windows that share no audio with this one), and a
   speech flag. :meth:`SpeakerConsistency.steps` interpolates them to any range of steps.

The median needs every window, so it is computed after the first pass rather than as a
running median: a running one would give early steps a reference made of a few seconds (or
of the spliced voice itself), and the cache and the detector would have to agree on when
each step was seen. Two passes cost one more audio decode (cheap next to face tracking) and
keep both exact and equal.
"""

from __future__ import annotations

import functools
import importlib.resources
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from avdf.experts import EXPERTS
from avdf.preprocess.audio import triangular_filters
from avdf.timebase import MediaSpec

STREAM = EXPERTS["speaker"]
WEIGHTS = "assets/speaker_ge2e.npz"  # inside the avdf package

SAMPLE_RATE = 16000  # GE2E's; the MediaSpec must decode audio at this rate
N_FFT = 400  # 25 ms window, no zero padding of the FFT
HOP = 160  # 10 ms
N_MELS = 40
PARTIAL_FRAMES = 160  # 1.6 s: the partial-utterance length GE2E was trained on
EMBEDDING_DIM = 256
TARGET_DBFS = -30.0
WINDOW_SAMPLES = PARTIAL_FRAMES * HOP  # nominal span of one window
_EDGE = N_FFT // 2  # samples a frame reaches beyond its centre

# Context: windows whose centres lie this far before/after share no audio with this one.
CONTEXT_SECONDS = (1.6, 2.4)
# A window is speech when most of it is inside the audio stream and it is within this many
# dB of the loudest window (pauses, room tone) and above digital silence.
SPEECH_RANGE_DB = 30.0
SILENCE_DBFS = -60.0


# --- the encoder ----------------------------------------------------------------------------
class GE2EEncoder(nn.Module):
    """GE2E speaker encoder: power mel (B, frames, 40) -> unit embeddings (B, 256), >= 0."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(N_MELS, EMBEDDING_DIM, num_layers=3, batch_first=True)
        self.linear = nn.Linear(EMBEDDING_DIM, EMBEDDING_DIM)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        _, (hidden, _) = self.lstm(mel)  # hidden (3, B, 256): last step of every layer
        embedding = torch.relu(self.linear(hidden[-1]))
        return embedding / embedding.norm(dim=1, keepdim=True).clamp_min(1e-12)


@functools.lru_cache(maxsize=1)
def load_encoder() -> GE2EEncoder:
    """The encoder with the shipped weights, in eval mode (loaded once per process)."""
    resource = importlib.resources.files("avdf").joinpath(WEIGHTS)
    with resource.open("rb") as f, np.load(f, allow_pickle=False) as arrays:
        state = {k: torch.from_numpy(arrays[k].copy()) for k in arrays.files}
    encoder = GE2EEncoder()
    encoder.load_state_dict(state)
    return encoder.eval()


def _slaney_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear (3 mels per 200 Hz) below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, np.float64)
    log_step = math.log(6.4) / 27.0
    linear = hz * 3.0 / 200.0
    return np.where(hz < 1000.0, linear, 15.0 + np.log(np.maximum(hz, 1e-9) / 1000.0) / log_step)


def _slaney_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, np.float64)
    log_step = math.log(6.4) / 27.0
    return np.where(mel < 15.0, mel * 200.0 / 3.0, 1000.0 * np.exp(log_step * (mel - 15.0)))


@functools.lru_cache(maxsize=1)
def mel_filterbank() -> torch.Tensor:
    """(N_FFT // 2 + 1, 40) float32 triangular filters on Slaney's scale from 0 Hz to Nyquist,
    each scaled to unit area (2 / bandwidth), as GE2E's training features were."""
    fft_hz = np.linspace(0.0, SAMPLE_RATE / 2.0, N_FFT // 2 + 1)
    edges = _slaney_hz(np.linspace(0.0, _slaney_mel(SAMPLE_RATE / 2.0), N_MELS + 2))
    weights = triangular_filters(fft_hz, edges) * (2.0 / (edges[2:] - edges[:-2]))
    return torch.from_numpy(weights.astype(np.float32))


def power_mel(padded: torch.Tensor, n_frames: int) -> torch.Tensor:
    """(B, S) samples -> (B, n_frames, 40) power mel; frame j is centred on sample
    ``_EDGE + j * HOP`` of each row (so rows carry ``_EDGE`` samples of context each side)."""
    stft = torch.stft(
        padded,
        n_fft=N_FFT,
        hop_length=HOP,
        window=torch.hann_window(N_FFT),
        center=False,
        return_complex=True,
    )[..., :n_frames]  # (B, n_freqs, n_frames)
    power = stft.real.square() + stft.imag.square()
    return power.transpose(1, 2) @ mel_filterbank()


# --- pass 1: embeddings -----------------------------------------------------------------------
@dataclass
class SpeakerTrack:
    """Embeddings of the windows of one audio stream (P windows)."""

    centres: np.ndarray  # (P,) float64 seconds, the middle of each window
    embeddings: np.ndarray  # (P, 256) float32 unit vectors
    in_audio: np.ndarray  # (P,) float32 fraction of the window inside the audio stream
    level_dbfs: np.ndarray  # (P,) float32 RMS level of the window

    def speech(self) -> np.ndarray:
        """(P,) bool: windows that hold speech (see SPEECH_RANGE_DB)."""
        if not len(self.centres):
            return np.zeros(0, bool)
        inside = self.in_audio >= 0.5
        loudest = float(self.level_dbfs[inside].max()) if inside.any() else SILENCE_DBFS
        floor = max(SILENCE_DBFS, loudest - SPEECH_RANGE_DB)
        return inside & (self.level_dbfs > floor)

    def consistency(self) -> SpeakerConsistency:
        """Pass 2: the per-window channels of :data:`STREAM` (see the module docstring)."""
        speech = self.speech()
        if not speech.any():
            return SpeakerConsistency(np.zeros(0), np.zeros((0, STREAM.n_channels), np.float32))
        centres = self.centres[speech]
        voices = self.embeddings[speech].astype(np.float64)  # (Q, 256)
        median = _unit(np.median(voices, axis=0))
        to_median = voices @ median  # (Q,)
        # Context means by cumulative sums over windows sorted by time.
        totals = np.concatenate([np.zeros((1, voices.shape[1])), np.cumsum(voices, axis=0)])
        near, far = CONTEXT_SECONDS
        sides = []
        for lo, hi in ((centres - far, centres - near), (centres + near, centres + far)):
            first = np.searchsorted(centres, lo - 1e-6, side="left")
            stop = np.searchsorted(centres, hi + 1e-6, side="right")
            context = totals[stop] - totals[first]  # (Q, 256) sum of the context's voices
            cosine = np.einsum("qd,qd->q", voices, context) / np.maximum(
                np.linalg.norm(context, axis=1), 1e-12
            )
            # No context (the video's ends): as consistent as with the median voice.
            sides.append(np.where(stop > first, cosine, to_median))
        values = np.stack([to_median, *sides, np.ones_like(to_median)], axis=1)
        # Silent windows between speech read as "no speech" (0) when interpolated.
        silent = self.centres[~speech]
        all_centres = np.concatenate([centres, silent])
        order = np.argsort(all_centres, kind="stable")
        filler = np.full((len(silent), STREAM.n_channels), np.nan)
        filler[:, 3] = 0.0
        table = np.concatenate([values, filler])[order]
        return SpeakerConsistency(all_centres[order], table.astype(np.float32))


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


class SpeakerEmbedder:
    """Pass 1, streaming: push mono float32 audio at 16 kHz chunk by chunk (from the video
    clock's zero), then :meth:`finish`. Window ``p`` spans ``[p * hop, p * hop + 1.6 s)``;
    one more window ends at the audio's end so the tail is covered. Audio shorter than a
    window gets one window over all of it. ``audio_start`` (samples) marks leading zeros the
    decoder inserted (audio that starts after the video): they do not count as audio.
    Memory: the last window of samples plus the embeddings.
    """

    def __init__(
        self, hop_seconds: float = 0.2, audio_start: int = 0, batch_windows: int = 32
    ) -> None:
        self.hop = int(round(hop_seconds * SAMPLE_RATE))
        if self.hop < HOP:
            raise ValueError(f"hop_seconds must be at least {HOP / SAMPLE_RATE} s")
        self.audio_start = audio_start
        self.batch_windows = batch_windows
        # Samples from ``self._offset`` on; ``_EDGE`` zeros stand for the time before 0.
        self._buffer = np.zeros(_EDGE, np.float32)
        self._offset = -_EDGE
        self._seen = 0
        self._next_start = 0  # first sample of the next window
        self._starts: list[int] = []
        self._embeddings: list[np.ndarray] = []
        self._levels: list[np.ndarray] = []

    def push(self, samples: np.ndarray) -> None:
        self._buffer = np.concatenate([self._buffer, np.asarray(samples, np.float32).ravel()])
        self._seen += len(samples)
        ready = []
        while self._next_start + WINDOW_SAMPLES + _EDGE <= self._seen:
            ready.append(self._next_start)
            self._next_start += self.hop
        self._embed(ready, PARTIAL_FRAMES)
        # Keep what the next window, or a final one aligned to the end, may still need.
        keep_from = min(self._next_start, self._seen - WINDOW_SAMPLES) - _EDGE
        if keep_from > self._offset:
            self._buffer = self._buffer[keep_from - self._offset :].copy()
            self._offset = keep_from

    def _embed(self, starts: list[int], n_frames: int) -> None:
        """Embed windows starting at ``starts`` (samples), ``n_frames`` frames each."""
        span = (n_frames - 1) * HOP + 2 * _EDGE
        encoder = load_encoder()
        for i in range(0, len(starts), self.batch_windows):
            batch = starts[i : i + self.batch_windows]
            rows = np.zeros((len(batch), span), np.float32)
            for row, start in zip(rows, batch, strict=True):
                piece = self._buffer[start - _EDGE - self._offset :][:span]
                row[: len(piece)] = piece
            level = _dbfs(rows[:, _EDGE : _EDGE + n_frames * HOP])  # (b,)
            gain = 10.0 ** (np.maximum(TARGET_DBFS - level, 0.0) / 10.0)  # on power
            with torch.inference_mode():
                mel = power_mel(torch.from_numpy(rows), n_frames) * torch.from_numpy(
                    gain.astype(np.float32)
                ).view(-1, 1, 1)
                self._embeddings.append(encoder(mel).numpy())
            self._starts.extend(batch)
            self._levels.append(level)

    def finish(self) -> SpeakerTrack:
        last = self._seen - WINDOW_SAMPLES
        if self._seen and not self._starts:
            self._embed([0], max(1, min(PARTIAL_FRAMES, self._seen // HOP)))
        elif self._starts and last > self._starts[-1]:
            self._buffer = np.concatenate([self._buffer, np.zeros(_EDGE, np.float32)])
            self._embed([last], PARTIAL_FRAMES)
        starts = np.asarray(self._starts, np.float64)
        span = np.full(len(starts), float(min(WINDOW_SAMPLES, max(self._seen, 1))))
        covered = np.clip(
            np.minimum(starts + span, self._seen) - np.maximum(starts, self.audio_start), 0, None
        )
        return SpeakerTrack(
            centres=(starts + span / 2) / SAMPLE_RATE,
            embeddings=(
                np.concatenate(self._embeddings)
                if self._embeddings
                else np.zeros((0, EMBEDDING_DIM), np.float32)
            ),
            in_audio=(covered / span).astype(np.float32),
            level_dbfs=(
                np.concatenate(self._levels).astype(np.float32)
                if self._levels
                else np.zeros(0, np.float32)
            ),
        )


def _dbfs(rows: np.ndarray) -> np.ndarray:
    """(B, S) float samples in [-1, 1] -> (B,) RMS level in dB full scale."""
    rms = np.sqrt(np.mean(np.square(rows, dtype=np.float64), axis=1))
    return 20.0 * np.log10(np.maximum(rms, 1e-10))


# --- per step -------------------------------------------------------------------------------
@dataclass
class SpeakerConsistency:
    """Per-window channels of :data:`STREAM` (NaN where a silent window has none)."""

    centres: np.ndarray  # (P,) seconds, sorted
    values: np.ndarray  # (P, channels) float32

    def steps(self, spec: MediaSpec, first_step: int, n_steps: int) -> np.ndarray:
        """(n_steps, channels) float32 at the centres of steps ``first_step ..``: linear
        between windows, held beyond the first and last. All zero without speech."""
        out = np.zeros((n_steps, STREAM.n_channels), np.float32)
        times = (first_step + np.arange(n_steps) + 0.5) * spec.step_seconds
        for c in range(STREAM.n_channels):
            known = ~np.isnan(self.values[:, c])
            if known.any():
                out[:, c] = np.interp(times, self.centres[known], self.values[known, c])
        return out


def speaker_consistency(
    chunks: Iterable[np.ndarray], audio_start: int = 0, hop_seconds: float = 0.2
) -> SpeakerConsistency:
    """Both passes over 16 kHz mono audio chunks (see :class:`SpeakerEmbedder`)."""
    embedder = SpeakerEmbedder(hop_seconds, audio_start)
    for chunk in chunks:
        embedder.push(chunk)
    return embedder.finish().consistency()


def speaker_consistency_of(path: str | Path, spec: MediaSpec) -> SpeakerConsistency:
    """Both passes over the audio of the video at ``path``, on the video's clock (an
    audio-only decode). No audio stream: an empty result (all steps zero)."""
    from avdf.io.decode import iter_audio, probe

    if spec.sample_rate != SAMPLE_RATE:
        raise ValueError(
            f"the speaker expert needs audio at {SAMPLE_RATE} Hz, the MediaSpec has "
            f"{spec.sample_rate} Hz"
        )
    info = probe(path)
    if not info.has_audio:
        return SpeakerConsistency(np.zeros(0), np.zeros((0, STREAM.n_channels), np.float32))
    audio_start = int(max(0.0, info.audio_offset) * SAMPLE_RATE)
    return speaker_consistency(iter_audio(path, spec), audio_start)
