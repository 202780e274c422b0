"""Per-step model outputs -> scored fake-segment proposals (DESIGN §4.6, §12.1).

Inputs are a whole video's stitched step outputs: the dense step fake probability, one
(probability, distances) pair per localization level at every step, and optionally the
start / end boundary probabilities. Every (step, level) whose level probability exceeds
``pre_threshold`` proposes ``[t - d_start, t + d_end]`` (``t`` the step centre, distances
in steps). With boundary probabilities, each end is snapped to the probability-weighted
centre of the boundary peak within ``snap_steps`` (edits leave seams there). A proposal's
score is::

    level probability x (mean step probability inside) ** inside_weight
                      x (boundary evidence) ** boundary_weight

where the boundary evidence is the geometric mean of the start probability near its
start and the end probability near its end (an end at the video's edge counts as 1: there
is no seam to see). A checkpoint tuned by ``avdf tune`` may carry a
:class:`ProposalRescorer`: a logistic regression, fitted on the dev split, of "this candidate
overlaps a true fake segment at IoU >= 0.5" on what the decoder knows of it
(:data:`RESCORER_FEATURES`: the score's factors, its length, the step probability around it,
seams inside it, each modality's probability inside), which then scores it as
``score ** (1 - mix) * p ** mix``. Near-duplicates are thinned by Gaussian soft-NMS, which
decays rather than deletes overlapping proposals so alternative boundaries survive for AR@N.
Everything here works in seconds once the step grid has been converted with
:class:`avdf.timebase.MediaSpec`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from avdf.errors import AvdfError
from avdf.intervals import interval_iou_array
from avdf.timebase import MediaSpec
from avdf.types import ScoredSegment, Segment


@dataclass(frozen=True)
class DecodeConfig:
    """Tunable post-processing parameters (named so they can be searched and reported)."""

    pre_threshold: float = 0.1  # (step, level) pairs below this probability propose nothing
    sigma: float = 0.5  # Gaussian soft-NMS width: score *= exp(-iou**2 / sigma)
    top_k: int = 100  # proposals kept per video (AR@100 needs 100)
    min_score: float = 1e-3  # proposals decayed below this are dropped
    inside_weight: float = 1.0  # exponent of the mean step probability inside
    boundary_weight: float = 0.5  # exponent of the boundary evidence
    snap_steps: int = 2  # ends move to a boundary peak within this many steps (0: off)

    def __post_init__(self) -> None:
        if not 0.0 <= self.pre_threshold <= 1.0:
            raise ValueError(f"pre_threshold must be in [0, 1], got {self.pre_threshold}")
        if self.sigma <= 0.0:
            raise ValueError(f"sigma must be positive, got {self.sigma}")
        if self.top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {self.top_k}")
        if self.min_score < 0.0:
            raise ValueError(f"min_score must be non-negative, got {self.min_score}")
        if self.inside_weight < 0.0 or self.boundary_weight < 0.0 or self.snap_steps < 0:
            raise ValueError("inside_weight, boundary_weight and snap_steps must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> DecodeConfig:
        """From a checkpoint's stored parameters; unknown keys (older versions) ignored."""
        known = {k: v for k, v in dict(data or {}).items() if k in cls.__dataclass_fields__}
        return cls(**known)


# Values `avdf tune` searches (the grid of every combination), per DecodeConfig field.
SEARCH_SPACE: dict[str, tuple[float, ...]] = {
    "pre_threshold": (0.02, 0.05, 0.1, 0.2),
    "sigma": (0.25, 0.5, 1.0),
    "inside_weight": (0.0, 1.0),
    "boundary_weight": (0.0, 0.5, 1.0),
    "snap_steps": (0, 2),
}


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
        iou = interval_iou_array(
            starts[idx], ends[idx], starts[remaining], ends[remaining], empty=0.0
        )
        current[remaining] *= np.exp(-(iou**2) / sigma)
        remaining = remaining[current[remaining] >= min_score]
    return np.asarray(keep, dtype=np.int64), np.asarray(kept_scores, dtype=np.float64)


def _mean_over_segments(
    values: np.ndarray, starts: np.ndarray, ends: np.ndarray, spec: MediaSpec
) -> np.ndarray:
    """Mean of per-step ``values`` (N,) over the steps whose centre lies in each segment
    (seconds; :meth:`MediaSpec.segment_step_bounds`), vectorised with a cumulative sum; a
    segment holding no step centre uses the step that contains its middle."""
    n = len(values)
    cumsum = np.concatenate([[0.0], np.cumsum(values, dtype=np.float64)])
    first, last = spec.segment_step_bounds(starts, ends, n)
    empty = last <= first
    middle = np.clip(np.floor(0.5 * (starts + ends) * spec.steps_per_second), 0, n - 1).astype(
        np.int64
    )
    first = np.where(empty, middle, first)
    last = np.where(empty, middle + 1, last)
    return (cumsum[last] - cumsum[first]) / (last - first)


def _near_max(prob: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Max of per-step ``prob`` (N,) over the steps whose centre is within 1 step of each
    position (step coordinates), (M,)."""
    n = len(prob)
    nearest = np.floor(positions).astype(np.int64)
    idx = np.clip(nearest[:, None] + np.arange(-1, 2)[None, :], 0, n - 1)  # (M, 3)
    centres = idx + 0.5
    close = np.abs(centres - positions[:, None]) <= 1.0
    return np.where(close, prob[idx], 0.0).max(axis=1)


def _boundary_evidence(prob: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Boundary probability near each position; 1 within a step of the video's edges."""
    n = len(prob)
    at_edge = (positions < 1.0) | (positions > n - 1.0)
    return np.where(at_edge, 1.0, _near_max(prob, positions))


def _snap(prob: np.ndarray, positions: np.ndarray, radius: int) -> np.ndarray:
    """Move each position (step coordinates) to the probability-weighted centre of the
    steps within ``radius`` whose boundary probability is at least half the local peak;
    positions with no peak above 0.3 stay."""
    n = len(prob)
    nearest = np.floor(positions).astype(np.int64)
    idx = np.clip(nearest[:, None] + np.arange(-radius, radius + 1)[None, :], 0, n - 1)
    p = prob[idx]  # (M, 2r + 1)
    peak = p.max(axis=1, keepdims=True)
    w = np.where(p >= 0.5 * peak, p, 0.0)
    centre = (w * (idx + 0.5)).sum(axis=1) / np.maximum(w.sum(axis=1), 1e-12)
    # The bump straddles the seam: its weighted centre of step centres is the seam itself.
    return np.where(peak[:, 0] >= 0.3, centre, positions)


# What the rescorer reads of a candidate, in this order, then one indicator per pyramid level.
RESCORER_FEATURES: tuple[str, ...] = (
    "log level probability",
    "log mean step probability inside",
    "log start boundary evidence",
    "log end boundary evidence",
    "log length (steps)",
    "inside minus context probability",
    "log context probability",
    "strongest seam inside",
    "touches the video's edge",
    "log audio probability inside",
    "log visual probability inside",
)
_LOG_FLOOR = 1e-4  # probabilities are floored before the log (0 = modality absent)


@dataclass
class Candidates:
    """Every (step, level) proposal of one video before soft-NMS: ends in step coordinates
    and in seconds, the decoder's score and the evidence it was built from, with the
    video's per-step arrays that :func:`candidate_features` reads."""

    starts: np.ndarray  # (M,) step coordinates
    ends: np.ndarray
    starts_s: np.ndarray  # (M,) seconds
    ends_s: np.ndarray
    levels: np.ndarray  # (M,) int pyramid level
    n_levels: int
    level_prob: np.ndarray  # (M,)
    inside: np.ndarray  # (M,) mean step fake probability inside
    start_evidence: np.ndarray  # (M,) 1 without boundary probabilities
    end_evidence: np.ndarray
    score: np.ndarray  # (M,) the decoder's score (module docstring)
    spec: MediaSpec
    fake_prob: np.ndarray  # (N,) float64, the video's step arrays (decode_candidates' inputs)
    start_prob: np.ndarray | None
    end_prob: np.ndarray | None
    audio_prob: np.ndarray | None
    visual_prob: np.ndarray | None

    def __len__(self) -> int:
        return len(self.score)


def decode_candidates(
    fake_prob: np.ndarray,
    level_prob: np.ndarray,
    level_boundaries: np.ndarray,
    spec: MediaSpec,
    duration: float,
    start_prob: np.ndarray | None = None,
    end_prob: np.ndarray | None = None,
    audio_prob: np.ndarray | None = None,
    visual_prob: np.ndarray | None = None,
    config: DecodeConfig = DecodeConfig(),
) -> Candidates | None:
    """The candidates :func:`decode_proposals` thins (same arguments); None when no
    (step, level) pair passes ``pre_threshold`` or every proposal is empty."""
    fake_prob = np.asarray(fake_prob, dtype=np.float64)
    n = len(fake_prob)
    level_prob = np.asarray(level_prob, dtype=np.float64).reshape(n, -1)
    n_levels = level_prob.shape[1]
    level_boundaries = np.asarray(level_boundaries, dtype=np.float64)
    if level_boundaries.shape != (n, n_levels, 2):
        raise ValueError(
            f"level_boundaries must be ({n}, {n_levels}, 2), got {level_boundaries.shape}"
        )
    steps, levels = np.nonzero(level_prob > config.pre_threshold)
    if not len(steps):
        return None
    centres = steps + 0.5  # step coordinates
    distances = np.clip(level_boundaries[steps, levels], 0.0, None)  # (M, 2) steps
    starts = np.clip(centres - distances[:, 0], 0.0, n)
    ends = np.clip(centres + distances[:, 1], 0.0, n)
    boundary_known = start_prob is not None and end_prob is not None
    if boundary_known:
        start_prob = np.asarray(start_prob, dtype=np.float64)
        end_prob = np.asarray(end_prob, dtype=np.float64)
        if config.snap_steps > 0:
            starts = _snap(start_prob, starts, config.snap_steps)
            ends = _snap(end_prob, ends, config.snap_steps)
    starts_s = np.clip(starts * spec.step_seconds, 0.0, duration)  # seconds
    ends_s = np.clip(ends * spec.step_seconds, 0.0, duration)
    valid = ends_s > starts_s
    if not valid.any():
        return None
    starts, ends, starts_s, ends_s = starts[valid], ends[valid], starts_s[valid], ends_s[valid]
    levels, probability = levels[valid], level_prob[steps[valid], levels[valid]]
    inside = np.clip(_mean_over_segments(fake_prob, starts_s, ends_s, spec), 0.0, 1.0)
    ones = np.ones(len(starts))
    start_evidence = _boundary_evidence(start_prob, starts) if boundary_known else ones
    end_evidence = _boundary_evidence(end_prob, ends) if boundary_known else ones
    score = probability.copy()
    if config.inside_weight > 0:
        score *= inside**config.inside_weight
    if boundary_known and config.boundary_weight > 0:
        score *= np.sqrt(start_evidence * end_evidence) ** config.boundary_weight
    return Candidates(
        starts, ends, starts_s, ends_s, levels, n_levels, probability, inside,
        start_evidence, end_evidence, score, spec, fake_prob, start_prob, end_prob,
        audio_prob, visual_prob,
    )  # fmt: skip


def candidate_features(candidates: Candidates) -> np.ndarray:
    """(M, len(RESCORER_FEATURES) + n_levels) float64: what the rescorer reads of each
    candidate. The context is the mean step probability over the flanks just outside it
    (each half its length, at least 2 steps; the inside mean where it fills the video);
    the seam inside is the strongest start or end probability more than 2 steps from both
    its ends (0 without boundary probabilities); a missing modality counts as 0."""
    c = candidates
    n = len(c.fake_prob)
    cumsum = np.concatenate([[0.0], np.cumsum(c.fake_prob)])
    flank = np.maximum((c.ends - c.starts) / 2.0, 2.0)
    left_lo = np.clip(np.floor(c.starts - flank), 0, n).astype(np.int64)
    left_hi = np.clip(np.floor(c.starts), 0, n).astype(np.int64)
    right_lo = np.clip(np.ceil(c.ends), 0, n).astype(np.int64)
    right_hi = np.clip(np.ceil(c.ends + flank), 0, n).astype(np.int64)
    total = cumsum[left_hi] - cumsum[left_lo] + cumsum[right_hi] - cumsum[right_lo]
    count = (left_hi - left_lo) + (right_hi - right_lo)
    context = np.where(count > 0, total / np.maximum(count, 1), c.inside)
    seam = np.zeros(len(c))
    if c.start_prob is not None and c.end_prob is not None:
        edges = np.maximum(c.start_prob, c.end_prob)
        lo = np.clip(np.floor(c.starts).astype(np.int64) + 2, 0, n)
        hi = np.clip(np.ceil(c.ends).astype(np.int64) - 2, 0, n)
        seam = np.array([edges[a:b].max(initial=0.0) for a, b in zip(lo, hi, strict=True)])

    def log(p: np.ndarray) -> np.ndarray:
        return np.log(np.clip(p, _LOG_FLOOR, 1.0))

    def inside_of(prob: np.ndarray | None) -> np.ndarray:
        if prob is None:
            return np.zeros(len(c))
        return _mean_over_segments(np.asarray(prob, np.float64), c.starts_s, c.ends_s, c.spec)

    touches_edge = (c.starts < 1.0) | (c.ends > n - 1.0)
    return np.column_stack(
        [
            log(c.level_prob),
            log(c.inside),
            log(c.start_evidence),
            log(c.end_evidence),
            np.log(np.maximum(c.ends - c.starts, 1e-3)),
            c.inside - context,
            log(context),
            seam,
            touches_edge.astype(np.float64),
            log(inside_of(c.audio_prob)),
            log(inside_of(c.visual_prob)),
            np.eye(c.n_levels)[c.levels],
        ]
    )


@dataclass(frozen=True)
class ProposalRescorer:
    """A candidate's probability of overlapping a true fake segment at IoU >= 0.5: a
    logistic regression on its standardised :func:`candidate_features`, fitted by
    :mod:`avdf.evaluation.rescore`. It rescores a candidate as
    ``score ** (1 - mix) * probability ** mix``."""

    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float
    mix: float
    n_levels: int
    features: tuple[str, ...] = RESCORER_FEATURES

    def __post_init__(self) -> None:
        width = len(self.features) + self.n_levels
        if not len(self.mean) == len(self.scale) == len(self.weights) == width:
            raise ValueError(f"a rescorer of {width} features needs {width} weights")
        if not 0.0 <= self.mix <= 1.0:
            raise ValueError(f"mix must be in [0, 1], got {self.mix}")

    def probability(self, features: np.ndarray) -> np.ndarray:
        z = (features - np.asarray(self.mean)) / np.asarray(self.scale)
        return 0.5 * (1.0 + np.tanh(0.5 * (z @ np.asarray(self.weights) + self.bias)))

    def rescore(self, candidates: Candidates) -> np.ndarray:
        if candidates.n_levels != self.n_levels:
            raise AvdfError(
                f"the checkpoint's proposal rescorer was fitted for {self.n_levels} pyramid "
                f"levels but the model has {candidates.n_levels}: retune it with avdf tune"
            )
        probability = self.probability(candidate_features(candidates))
        return candidates.score ** (1.0 - self.mix) * probability**self.mix

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProposalRescorer:
        """From a checkpoint; one fitted on other features (another version) is an error."""
        features = tuple(data.get("features", ()))
        if features != RESCORER_FEATURES:
            raise AvdfError(
                "the checkpoint's proposal rescorer reads features this version does not "
                "compute: retune it with avdf tune"
            )
        return cls(
            tuple(map(float, data["mean"])),
            tuple(map(float, data["scale"])),
            tuple(map(float, data["weights"])),
            float(data["bias"]),
            float(data["mix"]),
            int(data["n_levels"]),
            features,
        )


def decode_proposals(
    fake_prob: np.ndarray,
    level_prob: np.ndarray,
    level_boundaries: np.ndarray,
    spec: MediaSpec,
    duration: float,
    start_prob: np.ndarray | None = None,
    end_prob: np.ndarray | None = None,
    audio_prob: np.ndarray | None = None,
    visual_prob: np.ndarray | None = None,
    config: DecodeConfig = DecodeConfig(),
    rescorer: ProposalRescorer | None = None,
) -> tuple[ScoredSegment, ...]:
    """Decode a whole video's stitched step outputs into at most ``top_k`` proposals.

    ``fake_prob`` (N,) dense step fake probability; ``level_prob`` (N, L) each level's
    probability at each step; ``level_boundaries`` (N, L, 2) distances in steps from each
    step centre to the (start, end) that level proposes; ``start_prob`` / ``end_prob`` (N,)
    boundary probabilities (optional); ``audio_prob`` / ``visual_prob`` (N,) per-step
    modality probabilities (optional) give each proposal's attribution as their mean over
    the steps inside it (and are read by ``rescorer``). ``duration`` in seconds. Proposals
    are clipped to ``[0, duration]``, zero-length ones dropped, and the result is sorted by
    descending score.
    """
    c = decode_candidates(
        fake_prob, level_prob, level_boundaries, spec, duration, start_prob, end_prob,
        audio_prob, visual_prob, config,
    )  # fmt: skip
    if c is None:
        return ()
    scores = c.score if rescorer is None else rescorer.rescore(c)
    keep, kept_scores = soft_nms(
        c.starts_s, c.ends_s, scores, sigma=config.sigma, top_k=config.top_k,
        min_score=config.min_score,
    )  # fmt: skip
    if not len(keep):
        return ()
    starts_s, ends_s = c.starts_s[keep], c.ends_s[keep]
    audio = None if audio_prob is None else _mean_over_segments(audio_prob, starts_s, ends_s, spec)
    visual = (
        None if visual_prob is None else _mean_over_segments(visual_prob, starts_s, ends_s, spec)
    )
    return tuple(
        ScoredSegment(
            Segment(float(starts_s[i]), float(ends_s[i])),
            float(kept_scores[i]),
            None if audio is None else float(audio[i]),
            None if visual is None else float(visual[i]),
        )
        for i in range(len(keep))
    )
