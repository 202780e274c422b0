"""Audio manipulation families. Each replaces the samples of one segment of a clip and
returns the parameters it drew, so the metadata says exactly what was done.

Every family writes only inside ``[start, stop)`` (sample indices): the crossfades that hide
the seams ramp in and out *inside* the segment, so everything outside it stays untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.signal
import torch

from avdf.preprocess.audio import mel_filterbank
from avdf.synth import tts
from avdf.synth.sources import TalkingSource
from avdf.timebase import MediaSpec

MIN_SHIFT_SECONDS = 0.5  # "another moment" is at least this far from the segment
EPS = 1e-8


@dataclass
class AudioContext:
    """What an audio family may draw material from."""

    spec: MediaSpec
    source: TalkingSource  # the clip's own source (same speaker, other moments)
    clip_start_sample: int  # where the output clip starts inside ``source.audio``
    speech: list[tuple[str, np.ndarray]]  # other speakers' speech (name, (S,) float32)


AudioFamily = Callable[[np.ndarray, int, int, AudioContext, np.random.Generator], dict[str, Any]]


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)) + EPS))


def crossfade_into(audio: np.ndarray, start: int, replacement: np.ndarray, fade: int) -> None:
    """Write ``replacement`` over ``audio[start:start+len]`` with linear fades of ``fade``
    samples at both ends, both inside the segment (in place)."""
    n = len(replacement)
    fade = min(fade, n // 2)
    weight = np.ones(n, dtype=np.float32)
    ramp = np.linspace(0.0, 1.0, fade + 2, dtype=np.float32)[1:-1]
    weight[:fade] = ramp
    weight[n - fade :] = ramp[::-1]
    original = audio[start : start + n]
    audio[start : start + n] = original * (1.0 - weight) + replacement * weight


def _fade_samples(spec: MediaSpec, rng: np.random.Generator) -> tuple[int, float]:
    fade_ms = float(rng.uniform(10.0, 20.0))
    return int(round(fade_ms * spec.sample_rate / 1000.0)), round(fade_ms, 2)


def _loudest_window(x: np.ndarray, n: int, rng: np.random.Generator, tries: int = 8) -> int:
    """Offset of a window of ``n`` samples in ``x`` with speech in it (best RMS of a few draws)."""
    if len(x) <= n:
        return 0
    offsets = rng.integers(0, len(x) - n, size=tries)
    return int(max(offsets, key=lambda o: rms(x[o : o + n])))


def splice_other_speaker(
    audio: np.ndarray, start: int, stop: int, ctx: AudioContext, rng: np.random.Generator
) -> dict[str, Any]:
    """Replace the segment with another speaker's real speech, loudness (RMS) matched."""
    n = stop - start
    name, donor = ctx.speech[int(rng.integers(len(ctx.speech)))]
    if len(donor) < n:  # short donor: loop it
        donor = np.tile(donor, n // len(donor) + 1)
    offset = _loudest_window(donor, n, rng)
    piece = donor[offset : offset + n].astype(np.float32)
    piece *= rms(audio[start:stop]) / rms(piece)
    fade, fade_ms = _fade_samples(ctx.spec, rng)
    crossfade_into(audio, start, piece, fade)
    return {
        "donor": name,
        "donor_start": round(offset / ctx.spec.sample_rate, 4),
        "crossfade_ms": fade_ms,
    }


def same_speaker_other_moment(
    audio: np.ndarray, start: int, stop: int, ctx: AudioContext, rng: np.random.Generator
) -> dict[str, Any]:
    """Replace the segment with the same speaker's speech from another moment of the source
    (a time shift of at least ``MIN_SHIFT_SECONDS``)."""
    n = stop - start
    source = ctx.source.audio
    here = ctx.clip_start_sample + start
    min_shift = int(MIN_SHIFT_SECONDS * ctx.spec.sample_rate)
    candidates = np.arange(0, len(source) - n + 1, ctx.spec.samples_per_frame)
    candidates = candidates[np.abs(candidates - here) >= min_shift]
    if len(candidates) == 0:
        raise ValueError("source too short for a same-speaker time shift")
    picks = rng.choice(candidates, size=min(8, len(candidates)), replace=False)
    offset = int(max(picks, key=lambda o: rms(source[o : o + n])))
    piece = source[offset : offset + n].astype(np.float32)
    piece *= rms(audio[start:stop]) / rms(piece)
    fade, fade_ms = _fade_samples(ctx.spec, rng)
    crossfade_into(audio, start, piece, fade)
    return {
        "shift_seconds": round((offset - here) / ctx.spec.sample_rate, 4),
        "crossfade_ms": fade_ms,
    }


def _stft(x: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    window = torch.hann_window(n_fft, dtype=x.dtype)
    return torch.stft(x, n_fft, hop, window=window, return_complex=True)  # (F, T)


def _istft(spec: torch.Tensor, n_fft: int, hop: int, length: int) -> torch.Tensor:
    window = torch.hann_window(n_fft, dtype=torch.float32)
    return torch.istft(spec, n_fft, hop, window=window, length=length)


def griffin_lim(
    magnitude: torch.Tensor, n_fft: int, hop: int, length: int, n_iter: int, seed: int
) -> torch.Tensor:
    """Waveform (length,) whose STFT magnitude approximates ``magnitude`` (F, T)."""
    generator = torch.Generator().manual_seed(seed)
    phase = torch.exp(2j * torch.pi * torch.rand(magnitude.shape, generator=generator))
    for _ in range(n_iter):
        wave = _istft(magnitude * phase, n_fft, hop, length)
        rebuilt = _stft(wave, n_fft, hop)
        phase = rebuilt / rebuilt.abs().clamp_min(EPS)
    return _istft(magnitude * phase, n_fft, hop, length)


def mel_resynthesis(
    audio: np.ndarray, start: int, stop: int, ctx: AudioContext, rng: np.random.Generator
) -> dict[str, Any]:
    """Vocoder-like artefacts: STFT -> mel -> pseudo-inverse -> Griffin-Lim on the segment
    (computed with some context on both sides so the STFT edges do not fall on the seam)."""
    n_fft, hop = 512, 128
    # Coarse mel resolution and few iterations: an audible, vocoder-like smearing.
    n_mels = int(rng.choice([12, 16, 20, 24]))
    n_iter = int(rng.integers(2, 11))
    pad = n_fft
    lo, hi = max(0, start - pad), min(len(audio), stop + pad)
    piece = torch.from_numpy(audio[lo:hi].astype(np.float32))
    magnitude = _stft(piece, n_fft, hop).abs()  # (F, T)
    fb = mel_filterbank(ctx.spec.sample_rate, n_fft, n_mels).T  # (M, F), the features' filters
    mel = fb @ magnitude  # (M, T)
    approx = (torch.linalg.pinv(fb) @ mel).clamp_min(0.0)  # (F, T)
    seed = int(rng.integers(2**31))
    wave = griffin_lim(approx, n_fft, hop, hi - lo, n_iter, seed).numpy()
    segment = wave[start - lo : stop - lo].astype(np.float32)
    segment *= rms(audio[start:stop]) / rms(segment)
    fade, fade_ms = _fade_samples(ctx.spec, rng)
    crossfade_into(audio, start, segment, fade)
    return {
        "n_fft": n_fft,
        "hop": hop,
        "n_mels": n_mels,
        "griffin_lim_iters": n_iter,
        "crossfade_ms": fade_ms,
    }


def time_stretch(x: np.ndarray, rate: float, n_fft: int = 512, hop: int = 128) -> np.ndarray:
    """Phase-vocoder time stretch: output is about ``len(x) / rate`` samples, same pitch."""
    spec = _stft(torch.from_numpy(x.astype(np.float32)), n_fft, hop).numpy()  # (F, T)
    n_bins, n_steps = spec.shape
    expected_advance = 2.0 * np.pi * hop * np.arange(n_bins) / n_fft  # (F,) radians per hop
    positions = np.arange(0.0, n_steps - 1, rate)
    phase = np.angle(spec[:, 0])
    out = np.empty((n_bins, len(positions)), dtype=np.complex64)
    for k, pos in enumerate(positions):
        i = int(pos)
        frac = pos - i
        magnitude = (1.0 - frac) * np.abs(spec[:, i]) + frac * np.abs(spec[:, i + 1])
        out[:, k] = magnitude * np.exp(1j * phase)
        deviation = np.angle(spec[:, i + 1]) - np.angle(spec[:, i]) - expected_advance
        deviation -= 2.0 * np.pi * np.round(deviation / (2.0 * np.pi))  # wrap to [-pi, pi]
        phase = phase + expected_advance + deviation
    length = int(round(len(x) / rate))
    return _istft(torch.from_numpy(out), n_fft, hop, length).numpy()


def pitch_formant_shift(
    audio: np.ndarray, start: int, stop: int, ctx: AudioContext, rng: np.random.Generator
) -> dict[str, Any]:
    """Shift pitch and formants together by ``semitones``: time-stretch by the pitch ratio,
    then resample back to the original length (every frequency is scaled by the ratio)."""
    magnitude = float(rng.uniform(3.0, 7.0))
    semitones = magnitude if rng.random() < 0.5 else -magnitude
    ratio = 2.0 ** (semitones / 12.0)
    n = stop - start
    pad = 512
    lo, hi = max(0, start - pad), min(len(audio), stop + pad)
    stretched = time_stretch(audio[lo:hi], 1.0 / ratio)  # ~ (hi - lo) * ratio samples
    shifted = scipy.signal.resample(stretched, hi - lo).astype(np.float32)
    segment = shifted[start - lo : start - lo + n]
    segment *= rms(audio[start:stop]) / rms(segment)
    fade, fade_ms = _fade_samples(ctx.spec, rng)
    crossfade_into(audio, start, segment, fade)
    return {
        "semitones": round(semitones, 3),
        "method": "phase_vocoder_resample",
        "crossfade_ms": fade_ms,
    }


OUT_OF_SYNC_SECONDS = (0.2, 1.0)


def out_of_sync(
    audio: np.ndarray, start: int, stop: int, ctx: AudioContext, rng: np.random.Generator
) -> dict[str, Any]:
    """The segment's own soundtrack shifted by 0.2-1 s (earlier or later in the source): the
    right voice and words, out of sync with the lips (a dubbing or re-timing error)."""
    n = stop - start
    source = ctx.source.audio
    here = ctx.clip_start_sample + start
    step = ctx.spec.samples_per_frame  # shifts on the frame grid, like a re-timed edit
    magnitude = int(round(rng.uniform(*OUT_OF_SYNC_SECONDS) * ctx.spec.sample_rate / step)) * step
    signs = [s for s in rng.permutation([-1, 1]) if 0 <= here + s * magnitude <= len(source) - n]
    if not signs:
        raise ValueError("source too short to shift the audio by 0.2-1 s")
    offset = here + int(signs[0]) * magnitude
    piece = source[offset : offset + n].astype(np.float32)
    fade, fade_ms = _fade_samples(ctx.spec, rng)
    crossfade_into(audio, start, piece, fade)
    return {
        "shift_seconds": round((offset - here) / ctx.spec.sample_rate, 4),
        "crossfade_ms": fade_ms,
    }


def fit_length(x: np.ndarray, n: int) -> np.ndarray:
    """(n,) ``x`` time-stretched (same pitch) to ``n`` samples."""
    stretched = time_stretch(x, len(x) / n)
    return np.pad(stretched[:n], (0, max(0, n - len(stretched)))).astype(np.float32)


def tts_word_replacement(
    audio: np.ndarray, start: int, stop: int, ctx: AudioContext, rng: np.random.Generator
) -> dict[str, Any]:
    """Words replaced with text-to-speech (espeak-ng; LAV-DF replaced words with a TTS voice):
    about 2.5 random words per second of segment, a random English voice, rate and pitch,
    stretched to the segment's length and loudness-matched."""
    if not tts.available():
        raise ValueError("espeak-ng is not installed")
    n = stop - start
    seconds = n / ctx.spec.sample_rate
    n_words = max(1, int(round(2.5 * seconds)))
    text = " ".join(str(w) for w in rng.choice(tts.WORDS, size=n_words))
    voice = str(rng.choice(tts.VOICES)) + str(rng.choice(tts.VARIANTS))
    words_per_minute = int(rng.integers(130, 191))
    pitch = int(rng.integers(25, 76))
    speech = tts.synthesize(text, voice, words_per_minute, pitch, ctx.spec.sample_rate)
    # Stretch by at most 2x either way; beyond that, pad with the synthesiser's silence or cut.
    target = int(np.clip(n, len(speech) / 2, len(speech) * 2))
    piece = fit_length(speech, target)
    piece = np.pad(piece, (0, max(0, n - target)))[:n] if target != n else piece
    piece *= rms(audio[start:stop]) / rms(piece)
    fade, fade_ms = _fade_samples(ctx.spec, rng)
    crossfade_into(audio, start, piece, fade)
    return {
        "text": text,
        "voice": voice,
        "words_per_minute": words_per_minute,
        "pitch": pitch,
        "engine": tts.version(),
        "crossfade_ms": fade_ms,
    }


AUDIO_FAMILIES: dict[str, AudioFamily] = {
    "splice_other_speaker": splice_other_speaker,
    "mel_resynthesis": mel_resynthesis,
    "pitch_formant_shift": pitch_formant_shift,
    "same_speaker_other_moment": same_speaker_other_moment,
    "out_of_sync": out_of_sync,
    "tts_word_replacement": tts_word_replacement,
}
