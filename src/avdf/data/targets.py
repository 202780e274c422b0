"""Training targets on the model's step grid, derived from a :class:`~avdf.types.Sample`.

Segments arrive in seconds; this module is where they meet the step grid, always through
:meth:`MediaSpec.segment_steps` (a step is "inside" a segment when its centre is).

Boundary distances are measured from the step *centre* ``k + 0.5`` (in steps), so the
decoder proposes ``[centre - d_start, centre + d_end]`` and a step inside a segment always
has ``d_start >= 0``, ``d_end > 0`` and ``d_start + d_end`` = the segment length in steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from avdf.timebase import MediaSpec
from avdf.types import Sample, Segment


@dataclass(frozen=True)
class StepTargets:
    """Per-step targets for ``T`` consecutive steps of one video (numpy, float32)."""

    fake: np.ndarray  # (T,) 1.0 where the step centre lies in a fake segment
    boundaries: np.ndarray  # (T, 2) steps from the centre to the (start, end) of that segment
    audio_fake: np.ndarray  # (T,) 1.0 where the audio is manipulated
    visual_fake: np.ndarray  # (T,) 1.0 where the video is manipulated
    modality_known: bool  # False: the dataset does not say which modality was faked
    video_label: int | None  # whole-video label (1 fake, 0 real), None when unlabelled
    start: np.ndarray  # (T,) soft target "a fake segment starts at this step" (see below)
    end: np.ndarray  # (T,) soft target "a fake segment ends at this step"

    @property
    def n_steps(self) -> int:
        return len(self.fake)

    def slice(self, start: int, stop: int) -> StepTargets:
        """Steps ``[start, stop)``. Boundary distances keep pointing at the true segment ends,
        which may lie outside the window (the decoder clips to the video, not the window)."""
        return StepTargets(
            self.fake[start:stop],
            self.boundaries[start:stop],
            self.audio_fake[start:stop],
            self.visual_fake[start:stop],
            self.modality_known,
            self.video_label,
            self.start[start:stop],
            self.end[start:stop],
        )


def _mark(segments: Sequence[Segment], spec: MediaSpec, n_steps: int) -> np.ndarray:
    """(n_steps,) float32 indicator of steps whose centre lies in any of ``segments``."""
    return spec.segments_mask(segments, n_steps).astype(np.float32)


# Width (steps) of the Gaussian bump marking a boundary: an edit's seam lies between two
# frames, so the two steps beside it get ~0.9 and the next ones ~0.3.
BOUNDARY_SIGMA_STEPS = 1.0


def _boundary_bumps(positions: Sequence[float], n_steps: int) -> np.ndarray:
    """(n_steps,) max over ``positions`` (step coordinates) of a Gaussian at each, evaluated
    at the step centres."""
    out = np.zeros(n_steps, np.float32)
    centres = np.arange(n_steps, dtype=np.float64) + 0.5
    for x in positions:
        bump = np.exp(-0.5 * ((centres - x) / BOUNDARY_SIGMA_STEPS) ** 2)
        np.maximum(out, bump.astype(np.float32), out=out)
    return out


def _whole_video(sample: Sample) -> bool:
    """A fake labelled per video, not per segment (e.g. FakeAVCeleb without a duration)."""
    return sample.label == 1 and not sample.fake_segments


def effective_fake_segments(sample: Sample, spec: MediaSpec, n_steps: int) -> tuple[Segment, ...]:
    """The sample's fake segments; a fake video without segments (whole-video labels)
    counts as fake over its whole length."""
    if _whole_video(sample):
        return (Segment(0.0, spec.steps_to_seconds(n_steps)),)
    return tuple(sample.fake_segments)


def fake_coverage(sample: Sample, spec: MediaSpec, n_steps: int) -> float:
    """Share of the video's ``n_steps`` steps that lie inside a fake segment (0 for a real
    video, 1 for a fake labelled per video)."""
    if n_steps <= 0:
        return 0.0
    return float(spec.segments_mask(effective_fake_segments(sample, spec, n_steps), n_steps).mean())


def step_targets(sample: Sample, spec: MediaSpec, n_steps: int) -> StepTargets:
    """Targets for all ``n_steps`` steps of ``sample``'s video.

    Where a step lies in several (overlapping) fake segments its boundaries refer to the
    shortest one, as in anchor-free temporal detectors. ``start`` / ``end`` mark the
    segments' boundaries that lie inside the video (a segment starting at 0 or ending at the
    video's end has no seam there) with Gaussian bumps. Modality targets are zeros and
    ``modality_known`` is False when ``sample.audio_fake_segments`` or
    ``sample.visual_fake_segments`` is None.
    """
    if n_steps < 0:
        raise ValueError(f"n_steps must be non-negative, got {n_steps}")
    segments = effective_fake_segments(sample, spec, n_steps)
    fake = np.zeros(n_steps, np.float32)
    boundaries = np.zeros((n_steps, 2), np.float32)
    starts: list[float] = []  # step coordinates of boundaries inside the video
    ends: list[float] = []
    best_length = np.full(n_steps, np.inf)
    centres = np.arange(n_steps, dtype=np.float64) + 0.5  # step coordinates
    for seg in segments:
        steps = spec.segment_steps(seg, n_steps)
        if len(steps) == 0:
            continue
        start = spec.seconds_to_step(seg.start)
        end = spec.seconds_to_step(seg.end)
        if start > 0.5:
            starts.append(start)
        if end < n_steps - 0.5:
            ends.append(end)
        idx = np.arange(steps.start, steps.stop)
        shorter = idx[(end - start) < best_length[idx]]
        best_length[shorter] = end - start
        fake[shorter] = 1.0
        boundaries[shorter, 0] = centres[shorter] - start
        boundaries[shorter, 1] = end - centres[shorter]

    audio_segments, visual_segments = sample.audio_fake_segments, sample.visual_fake_segments
    if _whole_video(sample) and sample.extra.get("whole_video_fake"):
        # The FakeAVCeleb adapter marks a faked modality None until the duration is known
        # and an untouched one (): here None means "this modality, all along".
        audio_segments = segments if audio_segments is None else audio_segments
        visual_segments = segments if visual_segments is None else visual_segments
    modality_known = audio_segments is not None and visual_segments is not None
    audio_fake = np.zeros(n_steps, np.float32)
    visual_fake = np.zeros(n_steps, np.float32)
    if modality_known:
        audio_fake = _mark(audio_segments or (), spec, n_steps)
        visual_fake = _mark(visual_segments or (), spec, n_steps)
    return StepTargets(
        fake,
        boundaries,
        audio_fake,
        visual_fake,
        modality_known,
        sample.label,
        _boundary_bumps(starts, n_steps),
        _boundary_bumps(ends, n_steps),
    )
