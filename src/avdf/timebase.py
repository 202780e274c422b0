"""The one place that converts between seconds, video frames, audio samples, mel frames
and model steps.

A *step* is the model's time unit ("sequence" in the MMMS-BA paper): ``stride`` video
frames at ``fps``. Step ``k`` covers ``[k * step_seconds, (k + 1) * step_seconds)``.
Derived sizes are computed with :func:`exact_div` so a configuration that does not divide
evenly fails loudly instead of drifting.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from avdf.types import Segment


def exact_div(numerator: int, denominator: int) -> int:
    """Integer division that refuses remainders."""
    if numerator % denominator != 0:
        raise ValueError(f"{numerator} is not divisible by {denominator}")
    return numerator // denominator


@dataclass(frozen=True)
class MediaSpec:
    """How a video is turned into model inputs. Saved in every cache and checkpoint."""

    fps: int = 25
    sample_rate: int = 16000
    mel_hop: int = 160  # samples (10 ms at 16 kHz)
    mel_window: int = 400  # samples (25 ms at 16 kHz)
    n_mels: int = 64
    face_size: int = 64  # pixels, square RGB face crop
    mouth_size: int = 48  # pixels, square RGB mouth crop
    stride: int = 1  # video frames per model step

    def __post_init__(self) -> None:
        # Touch every derived size once so an inconsistent spec fails at construction.
        _ = self.samples_per_frame, self.mel_frames_per_frame, self.samples_per_step
        if self.stride < 1 or self.fps < 1 or self.face_size < 8 or self.mouth_size < 8:
            raise ValueError(f"invalid MediaSpec {self}")

    # --- derived sizes -------------------------------------------------------------
    @property
    def samples_per_frame(self) -> int:
        return exact_div(self.sample_rate, self.fps)

    @property
    def mel_frames_per_frame(self) -> int:
        return exact_div(self.samples_per_frame, self.mel_hop)

    @property
    def samples_per_step(self) -> int:
        return self.samples_per_frame * self.stride

    @property
    def mel_frames_per_step(self) -> int:
        return self.mel_frames_per_frame * self.stride

    @property
    def step_seconds(self) -> float:
        return self.stride / self.fps

    @property
    def steps_per_second(self) -> float:
        return self.fps / self.stride

    # --- conversions -------------------------------------------------------------------
    def frame_time(self, frame: int) -> float:
        """Presentation time in seconds of resampled frame ``frame``."""
        return frame / self.fps

    def frames_in(self, duration: float) -> int:
        """Number of resampled frames in ``duration`` seconds (rounded to the nearest frame,
        so 6.96 s at 25 fps is 174 frames despite float error)."""
        return max(0, int(math.floor(duration * self.fps + 0.5)))

    def steps_in(self, duration: float) -> int:
        """Number of whole model steps in ``duration`` seconds."""
        return self.frames_in(duration) // self.stride

    def step_start(self, step: int) -> float:
        return step * self.step_seconds

    def step_center(self, step: int) -> float:
        return (step + 0.5) * self.step_seconds

    def seconds_to_step(self, t: float) -> float:
        """Continuous step coordinate of time ``t`` (step k starts at k)."""
        return t * self.steps_per_second

    def steps_to_seconds(self, steps: float) -> float:
        return steps * self.step_seconds

    def sample_index(self, t: float) -> int:
        return int(math.floor(t * self.sample_rate + 0.5))

    def segment_steps(self, segment: Segment, n_steps: int) -> range:
        """Steps whose centre lies inside ``segment`` (clipped to ``[0, n_steps)``).

        The one rule that turns seconds into steps for labels, targets and decoding: step
        ``k`` belongs to ``[start, end)`` when ``start <= (k + 0.5) * step_seconds < end``.
        """
        first = math.ceil(self.seconds_to_step(segment.start) - 0.5)
        last = math.ceil(self.seconds_to_step(segment.end) - 0.5)  # exclusive
        return range(max(0, first), min(n_steps, max(first, last)))

    def segments_mask(self, segments: Iterable[Segment], n_steps: int) -> np.ndarray:
        """(n_steps,) bool: the steps :meth:`segment_steps` puts inside any of ``segments``."""
        mask = np.zeros(n_steps, bool)
        for segment in segments:
            steps = self.segment_steps(segment, n_steps)
            mask[steps.start : steps.stop] = True
        return mask

    def segment_step_bounds(
        self, starts: np.ndarray, ends: np.ndarray, n_steps: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`segment_steps` for many segments at once: ``(first, stop)`` int64 arrays of
        the shape of ``starts`` / ``ends`` (seconds), so segment ``i`` covers steps
        ``first[i] .. stop[i] - 1``; ``stop == first`` when no step centre lies inside."""
        first = np.ceil(np.asarray(starts, np.float64) * self.steps_per_second - 0.5)
        last = np.ceil(np.asarray(ends, np.float64) * self.steps_per_second - 0.5)
        lo = np.clip(first, 0, n_steps)
        hi = np.maximum(lo, np.minimum(n_steps, np.maximum(first, last)))
        return lo.astype(np.int64), hi.astype(np.int64)

    # --- serialisation -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MediaSpec:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown MediaSpec fields: {sorted(unknown)}")
        return cls(**{k: int(v) for k, v in d.items()})
