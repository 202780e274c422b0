"""The ``motion`` expert stream: how much the whole picture changes at each step.

A frozen stretch (one frame held still) is unmistakable in the decoded video: consecutive
frames differ by codec noise only (mean absolute difference ~0.1 grey levels against ~1 on
the same clip's genuine stretches). In the face crops the model reads it is not: the face
tracker's box smoothing keeps the crop drifting for several frames after every seam. On the
synthetic corpus's 23 freezes a training-free stillness score from the crops is near chance
(within-video AUC 0.59) while the smaller of this stream's two differences separates them
(0.99; ``scripts/stillness_probe.py``, 2026-12-03). This stream hands the model the
whole-frame evidence.

Per step, three channels from the picture's luma, thinned to at most ``SIDE`` px (frames
resampled to the spec's fps, as the face crops are), each ``log1p`` of a mean absolute
difference in grey levels:

- ``prev``: the step's frame against the one before; ``next``: against the one after
  (a seam where a clip was cut or spliced shows as a spike in one of them);
- ``still``: the larger of the two, minus its median over the whole video — a held frame
  is far below its own video's usual motion, while a source that repeats every other frame
  (up-sampled in frame rate) is not, because one of its two sides always moves.

Steps of ``stride`` frames take the mean over their frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avdf.io.decode import iter_video_frames
from avdf.timebase import MediaSpec

SIDE = 112  # long side of the picture compared: enough for a face's motion


@dataclass
class FrameMotion:
    """Per-frame channels (F, 3) float32 of one video at the spec's fps."""

    values: np.ndarray

    def steps(self, spec: MediaSpec, first_step: int, n_steps: int) -> np.ndarray:
        """(n_steps, 3) float32 for steps ``first_step ..``; steps past the video's last
        frame repeat its last values (zero for a video without frames)."""
        out = np.zeros((n_steps, self.values.shape[1]), np.float32)
        if len(self.values) == 0:
            return out
        frames = (first_step + np.arange(n_steps))[:, None] * spec.stride + np.arange(spec.stride)
        out[:] = self.values[np.minimum(frames, len(self.values) - 1)].mean(axis=1)
        return out


def frame_motion(diffs: np.ndarray) -> FrameMotion:
    """The channels from (F - 1,) mean absolute differences of consecutive frames."""
    if len(diffs) == 0:
        return FrameMotion(np.zeros((0, 3), np.float32))
    diff = np.log1p(diffs)
    prev = np.concatenate([diff[:1], diff])  # the first frame borrows its successor's
    after = np.concatenate([diff, diff[-1:]])
    larger = np.maximum(prev, after)
    still = larger - np.median(larger)
    return FrameMotion(np.stack([prev, after, still], axis=1).astype(np.float32))


def frame_motion_of(path: str | Path, spec: MediaSpec) -> FrameMotion:
    """Decode ``path``'s luma at most ``SIDE`` px (a pass of its own: experts run before
    tracking) and return its motion channels. Memory: one chunk of small frames and one
    float per frame, whatever the length."""
    diffs: list[np.ndarray] = []
    last: np.ndarray | None = None
    for chunk in iter_video_frames(path, spec, max_side=SIDE, reuse_buffer=True, luma=True):
        grey = chunk.astype(np.float32)  # (n, H, W)
        if last is not None:
            grey = np.concatenate([last[None], grey])
        diffs.append(np.abs(np.diff(grey, axis=0)).mean(axis=(1, 2)))
        last = grey[-1].copy()
    return frame_motion(np.concatenate(diffs) if diffs else np.zeros(0))
