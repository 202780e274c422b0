"""Training-time augmentation of one window of cached features.

A fold's training split holds about twenty people, and without augmentation the dev loss of
the step classifier rose from epoch 2 on while the training loss kept falling (measured:
BCE 0.52 -> 1.59 on unseen people against 0.64 -> 0.40 on training windows): the model
learns the people, not the edits. Each window gets one random transform, the same for all
of its steps, so nothing that varies in time is created or removed — temporal seams,
frozen frames and lip–audio timing, the evidence of the edits, survive intact:

- horizontal flip of face and mouth crops together;
- brightness, contrast and per-channel colour gains;
- a translation of a few pixels (edge-padded), scaled to each crop's size;
- a gain on the audio (a constant added to the log-mel power).

Landmarks are left as cached: the model does not read them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from avdf.preprocess.features import VideoFeatures


def _uniform(spread: float, size: int = 1) -> np.ndarray:
    """Values in [1 - spread, 1 + spread] from torch's RNG (seeded per loader worker)."""
    return (1.0 + spread * (2.0 * torch.rand(size).numpy() - 1.0)).astype(np.float32)


def _shift(frames: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """(N, H, W, C) moved by (dy, dx) pixels, the uncovered border copied from the edge."""
    if dy == 0 and dx == 0:
        return frames
    pad = ((0, 0), (max(dy, 0), max(-dy, 0)), (max(dx, 0), max(-dx, 0)), (0, 0))
    padded = np.pad(frames, pad, mode="edge")
    h, w = frames.shape[1:3]
    top, left = max(-dy, 0), max(-dx, 0)
    return padded[:, top : top + h, left : left + w]


@dataclass(frozen=True)
class Augmentation:
    flip: float = 0.5  # probability of a horizontal flip
    brightness: float = 0.2  # gain in [1 - b, 1 + b]
    contrast: float = 0.2  # around each frame's mean
    colour: float = 0.1  # per-channel gain
    shift: float = 0.06  # translation, as a fraction of the crop size
    audio_gain: float = 1.0  # added to the log-mel power, in [-g, g] (1.0 = 4.3 dB)

    def _pictures(
        self, frames: np.ndarray, flip: bool, gains: np.ndarray, contrast: float, move: np.ndarray
    ) -> np.ndarray:
        x = frames[:, :, ::-1] if flip else frames
        size = x.shape[1]
        x = _shift(x, *(int(round(m * size)) for m in move)).astype(np.float32)
        mean = x.mean(axis=(1, 2, 3), keepdims=True)
        x = (x - mean) * contrast + mean
        return np.clip(x * gains, 0, 255).astype(np.uint8)

    def __call__(self, features: VideoFeatures) -> VideoFeatures:
        flip = bool(torch.rand(()) < self.flip)
        gains = _uniform(self.brightness) * _uniform(self.colour, 3)  # (3,) RGB
        contrast = float(_uniform(self.contrast)[0])
        move = self.shift * (2.0 * torch.rand(2).numpy() - 1.0)  # (dy, dx) fractions
        audio = self.audio_gain * (2.0 * float(torch.rand(())) - 1.0)
        return replace(
            features,
            face=self._pictures(features.face, flip, gains, contrast, move),
            mouth=self._pictures(features.mouth, flip, gains, contrast, move),
            mel=(features.mel.astype(np.float32) + audio).astype(np.float16),
        )
