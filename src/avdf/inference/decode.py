"""Per-step model outputs -> scored fake-segment proposals (DESIGN §4.6).

Every step whose fake probability exceeds ``pre_threshold`` proposes the segment
``[t - d_start, t + d_end]`` (``t`` the step centre, distances predicted in steps), scored by
that probability. Near-duplicate proposals from neighbouring steps are thinned by Gaussian
soft-NMS, which decays rather than deletes overlapping proposals so that alternative
boundaries survive for the recall metrics (AR@N). Everything here works in seconds once
the step grid has been converted with :class:`avdf.timebase.MediaSpec`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from avdf.timebase import MediaSpec
from avdf.types import ScoredSegment, Segment


@dataclass(frozen=True)
class DecodeConfig:
    """Tunable post-processing parameters (named so they can be searched and reported)."""

    pre_threshold: float = 0.1  # steps below this fake probability propose nothing
    sigma: float = 0.5  # Gaussian soft-NMS width: score *= exp(-iou**2 / sigma)
    top_k: int = 100  # proposals kept per video (AR@100 needs 100)
    min_score: float = 1e-3  # proposals decayed below this are dropped

    def __post_init__(self) -> None:
        if not 0.0 <= self.pre_threshold <= 1.0:
            raise ValueError(f"pre_threshold must be in [0, 1], got {self.pre_threshold}")
        if self.sigma <= 0.0:
            raise ValueError(f"sigma must be positive, got {self.sigma}")
        if self.top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {self.top_k}")
        if self.min_score < 0.0:
            raise ValueError(f"min_score must be non-negative, got {self.min_score}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> DecodeConfig:
        """From a checkpoint's stored parameters; unknown keys (older versions) ignored."""
        known = {k: v for k, v in dict(data or {}).items() if k in cls.__dataclass_fields__}
        return cls(**known)


# Values `avdf tune` searches (the grid of every combination), per DecodeConfig field.
SEARCH_SPACE: dict[str, tuple[float, ...]] = {
    "pre_threshold": (0.05, 0.1, 0.2, 0.3, 0.5),
    "sigma": (0.25, 0.5, 1.0),
}


def pairwise_iou(start: float, end: float, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """IoU of one segment against many (official LAV-DF definition), shape of ``starts``."""
    inter = np.clip(np.minimum(end, ends) - np.maximum(start, starts), 0.0, None)
    union = np.maximum(end, ends) - np.minimum(start, starts)
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0.0)


def soft_nms(
    starts: np.ndarray,
    ends: np.ndarray,
    scores: np.ndarray,
    sigma: float = 0.5,
    top_k: int = 100,
    min_score: float = 1e-3,
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian soft-NMS over 1-D segments.

    Repeatedly keeps the highest-scoring remaining segment and multiplies the scores of
    the others by ``exp(-iou**2 / sigma)``. Inputs are (N,) arrays in seconds. Returns
    ``(indices, decayed_scores)`` of at most ``top_k`` kept segments, in the order kept,
    which is descending decayed score.
    """
    remaining = np.arange(len(scores))
    current = np.asarray(scores, dtype=np.float64).copy()
    keep: list[int] = []
    kept_scores: list[float] = []
    while len(remaining) and len(keep) < top_k:
        best = int(np.argmax(current[remaining]))
        idx = int(remaining[best])
        keep.append(idx)
        kept_scores.append(float(current[idx]))
        remaining = np.delete(remaining, best)
        if not len(remaining):
            break
        iou = pairwise_iou(starts[idx], ends[idx], starts[remaining], ends[remaining])
        current[remaining] *= np.exp(-(iou**2) / sigma)
        remaining = remaining[current[remaining] >= min_score]
    return np.asarray(keep, dtype=np.int64), np.asarray(kept_scores, dtype=np.float64)


def _mean_over_segments(
    values: np.ndarray, starts: np.ndarray, ends: np.ndarray, spec: MediaSpec
) -> np.ndarray:
    """Mean of per-step ``values`` (N,) over the steps whose centre lies in each segment.

    Same rule as :meth:`MediaSpec.segment_steps`, vectorised with a cumulative sum; a
    segment shorter than a step uses the step that contains its middle.
    """
    n = len(values)
    cumsum = np.concatenate([[0.0], np.cumsum(values, dtype=np.float64)])
    first = np.clip(np.ceil(starts * spec.steps_per_second - 0.5), 0, n).astype(np.int64)
    last = np.clip(np.ceil(ends * spec.steps_per_second - 0.5), 0, n).astype(np.int64)
    empty = last <= first
    middle = np.clip(np.floor(0.5 * (starts + ends) * spec.steps_per_second), 0, n - 1).astype(
        np.int64
    )
    first = np.where(empty, middle, first)
    last = np.where(empty, middle + 1, last)
    return (cumsum[last] - cumsum[first]) / (last - first)


def decode_proposals(
    fake_prob: np.ndarray,
    boundaries: np.ndarray,
    spec: MediaSpec,
    duration: float,
    audio_prob: np.ndarray | None = None,
    visual_prob: np.ndarray | None = None,
    config: DecodeConfig = DecodeConfig(),
) -> tuple[ScoredSegment, ...]:
    """Decode a whole video's stitched step outputs into at most ``top_k`` proposals.

    ``fake_prob`` (N,) per-step fake probability; ``boundaries`` (N, 2) non-negative
    distances in steps from each step centre to the segment's (start, end);
    ``audio_prob`` / ``visual_prob`` (N,) per-step modality probabilities (optional) give
    each proposal's attribution as their mean over the steps inside it. ``duration`` in
    seconds. Proposals are clipped to ``[0, duration]``, zero-length ones dropped, and the
    result is sorted by descending score.
    """
    fake_prob = np.asarray(fake_prob, dtype=np.float64)
    boundaries = np.asarray(boundaries, dtype=np.float64)
    n = len(fake_prob)
    if boundaries.shape != (n, 2):
        raise ValueError(f"boundaries must be ({n}, 2), got {boundaries.shape}")
    candidates = np.flatnonzero(fake_prob > config.pre_threshold)
    if not len(candidates):
        return ()
    centres = (candidates + 0.5) * spec.step_seconds  # seconds
    distances = np.clip(boundaries[candidates], 0.0, None) * spec.step_seconds  # seconds
    starts = np.clip(centres - distances[:, 0], 0.0, duration)
    ends = np.clip(centres + distances[:, 1], 0.0, duration)
    scores = fake_prob[candidates]
    valid = ends > starts
    starts, ends, scores = starts[valid], ends[valid], scores[valid]
    keep, kept_scores = soft_nms(
        starts, ends, scores, sigma=config.sigma, top_k=config.top_k, min_score=config.min_score
    )
    if not len(keep):
        return ()
    starts, ends = starts[keep], ends[keep]
    audio = None if audio_prob is None else _mean_over_segments(audio_prob, starts, ends, spec)
    visual = None if visual_prob is None else _mean_over_segments(visual_prob, starts, ends, spec)
    return tuple(
        ScoredSegment(
            Segment(float(starts[i]), float(ends[i])),
            float(kept_scores[i]),
            None if audio is None else float(audio[i]),
            None if visual is None else float(visual[i]),
        )
        for i in range(len(keep))
    )
