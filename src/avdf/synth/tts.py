"""Text-to-speech for word replacement: the ``espeak-ng`` program (Debian package
``espeak-ng``), a formant synthesiser with many English voices. It is optional: without the
program the family that uses it is simply not drawn (:func:`available`), and ``build_corpus`` warns.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from math import gcd
from pathlib import Path

import numpy as np
import scipy.io.wavfile
import scipy.signal

PROGRAM = "espeak-ng"
# English voices of espeak-ng 1.51 and voice variants that change its timbre (male and female).
VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan")
VARIANTS = ("", "+m1", "+m3", "+m7", "+f1", "+f2", "+f4", "+klatt", "+Alex", "+Annie")
# Short common words: what a word-level edit in LAV-DF swaps (a name, a number, a negation...).
WORDS = (
    "never always nothing everyone nobody money million hundred twenty seven yesterday "
    "tomorrow tonight president minister doctor police company market report people "
    "country government really probably absolutely wrong right bad good better worse "
    "agree refuse approve deny accept reject stolen bought sold lost paid won failed"
).split()


@functools.lru_cache(maxsize=1)
def version() -> str | None:
    """``espeak-ng --version``'s first line, or None when the program is not installed."""
    path = shutil.which(PROGRAM)
    if path is None:
        return None
    result = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
    return result.stdout.strip().splitlines()[0] if result.returncode == 0 else None


def available() -> bool:
    return version() is not None


class MissingWarning(UserWarning):
    """Building a corpus without the program: the same seed gives another corpus."""


MISSING_MESSAGE = (
    f"{PROGRAM} is not installed, so the tts_word_replacement family is left out and this "
    f"corpus differs from one built with it (Debian package {PROGRAM})"
)


def synthesize(
    text: str, voice: str, words_per_minute: int, pitch: int, sample_rate: int
) -> np.ndarray:
    """(S,) float32 mono speech of ``text`` at ``sample_rate``, leading and trailing silence
    trimmed. Raises ValueError when espeak-ng is missing or produced no sound."""
    path = shutil.which(PROGRAM)
    if path is None:
        raise ValueError(f"{PROGRAM} is not installed")
    with tempfile.TemporaryDirectory() as folder:
        # A file, not --stdout: the streamed WAV header carries no real length.
        wav = Path(folder) / "speech.wav"
        command = [path, "-v", voice, "-s", str(words_per_minute), "-p", str(pitch), "-w", str(wav)]
        result = subprocess.run([*command, text], capture_output=True, check=False)
        if result.returncode != 0 or not wav.is_file():
            raise ValueError(f"{PROGRAM} failed: {result.stderr.decode(errors='replace').strip()}")
        rate, samples = scipy.io.wavfile.read(wav)
    speech = samples.astype(np.float32) / 32768.0
    if speech.ndim > 1:
        speech = speech.mean(axis=1)
    common = gcd(sample_rate, rate)
    speech = scipy.signal.resample_poly(speech, sample_rate // common, rate // common)
    loud = np.flatnonzero(np.abs(speech) > 0.02 * np.abs(speech).max(initial=0.0))
    if len(loud) == 0:
        raise ValueError(f"{PROGRAM} produced silence for {text!r}")
    return speech[loud[0] : loud[-1] + 1].astype(np.float32)
