"""Pooling a video's outputs into one raw video score: the fixed rules, and a stacker of
their statistics fitted by ``avdf tune``.

The fixed rules (:func:`aggregate_video_score`, the calibration's ``top_fraction``) each read
one statistic of the video: the step maximum, the mean of the top fraction of step
probabilities, the best proposal's score. Those statistics carry different evidence: on
fold 0 (four 16-epoch seeds, test people) the maximum of the *visual* step probability alone
reached video AUC 0.79-0.81 where the pool chosen on dev reached 0.61-0.74, and no fixed
rule reads it. The :class:`VideoStacker` is an L2 logistic regression of the label on the
logits of the statistics it names (``BASE_STATISTICS`` by default, all of
``VIDEO_STATISTICS`` with ``avdf tune --peak-statistics``; standardised on dev); ``avdf tune``
fits it by 2-fold cross-fitting on dev, judges it against the fixed pools on those held-out
scores (:mod:`avdf.evaluation.tune`), and stores it in the checkpoint
(``extra["video_stacker"]``) when it wins. The Detector then scores videos with it, and the
calibration (temperature, shift, threshold) applies to its probability as to any raw score.

A modality absent from the whole video has no maximum: its statistic is NaN and counts as
the dev mean (0 after standardising), so a silent video is judged by what it has.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from avdf.errors import AvdfError
from avdf.inference.calibration import logit
from avdf.inference.probe import fit_logistic

if TYPE_CHECKING:  # the detector imports this module
    from avdf.inference.detector import StepOutputs

# The statistics a stacker may read, in order (the logit of each; a peak over median is a
# difference of logits). A stacker stores the names it was fitted on, so a checkpoint tuned
# before a statistic was added keeps reading its own subset.
VIDEO_STATISTICS: tuple[str, ...] = (
    "untuned rule",  # max(mean window video probability, step maximum)
    "top 10 % of steps",
    "top 25 % of steps",
    "top 50 % of steps",
    "step mean",
    "window video mean",  # the video head alone
    "audio step maximum",  # over the steps with audio
    "visual step maximum",  # over the steps with a face
    "best proposal",  # after the proposal rescorer, when the checkpoint has one
    # Peaks relative to the video's own level: a person whose real steps all score high
    # has a high maximum but no peak. Opt-in (`avdf tune --peak-statistics`): on the four
    # synthetic folds they raised the stacker's dev AUC (fold 0: 0.75 -> 0.81) but not
    # its test AUC (default model -1.6 [-3.0, -0.5], + motion +0.5 [-0.4, +2.1]).
    "window video maximum",
    "step peak over median",
    "audio peak over median",
    "visual peak over median",
)
# What `avdf tune` fits the stacker on by default (and all it read before the peaks).
BASE_STATISTICS = VIDEO_STATISTICS[:9]
# L2 on the standardised logits. Mean dev AUC over the 2-fold cross-fit of the four fold-0
# seeds: 0.775 / 0.781 / 0.774 / 0.770 for 0.1 / 1 / 10 / 100 (dev only; test not looked at).
RIDGE = 1.0


def top_fraction_mean(values: np.ndarray, fraction: float) -> float:
    """The mean of the ``ceil(fraction * N)`` largest of N (>= 1) values."""
    k = max(1, math.ceil(fraction * len(values) - 1e-9))
    return float(np.mean(np.partition(values, len(values) - k)[-k:]))


def aggregate_video_score(
    window_video_prob: np.ndarray, fake_prob: np.ndarray, top_fraction: float | None = None
) -> float:
    """``max(mean window video probability, max step probability)``, or with
    ``top_fraction`` q the mean of the ``ceil(q * N)`` largest of the N step probabilities
    (:mod:`avdf.inference.detector`'s docstring says why)."""
    if top_fraction is not None and len(fake_prob):
        return top_fraction_mean(fake_prob, top_fraction)
    window_mean = float(np.mean(window_video_prob)) if len(window_video_prob) else 0.0
    step_max = float(np.max(fake_prob)) if len(fake_prob) else 0.0
    return max(window_mean, step_max)


def video_statistics(steps: StepOutputs, best_proposal: float) -> np.ndarray:
    """The logits of ``VIDEO_STATISTICS`` for one video's stitched outputs (S,), given its
    best proposal's score; NaN for a modality it lacks."""

    def modality_max(prob: np.ndarray, present: np.ndarray) -> float:
        return float(prob[present].max()) if present.any() else math.nan

    def peak_over_median(prob: np.ndarray) -> float:
        if not len(prob):
            return math.nan
        top, middle = logit([np.max(prob), np.median(prob)])
        return float(top - middle)

    window, fake = steps.window_video_prob, steps.fake_prob
    values = [
        aggregate_video_score(window, fake, None),
        aggregate_video_score(window, fake, 0.1),
        aggregate_video_score(window, fake, 0.25),
        aggregate_video_score(window, fake, 0.5),
        float(np.mean(fake)) if len(fake) else 0.0,
        float(np.mean(window)) if len(window) else 0.0,
        modality_max(steps.audio_prob, steps.audio_present),
        modality_max(steps.visual_prob, steps.face_present),
        float(best_proposal),
        float(np.max(window)) if len(window) else 0.0,
    ]
    peaks = [
        peak_over_median(fake),
        peak_over_median(steps.audio_prob[steps.audio_present]),
        peak_over_median(steps.visual_prob[steps.face_present]),
    ]
    return np.concatenate([logit(values), peaks])  # NaN stays NaN


@dataclass(frozen=True)
class VideoStacker:
    mean: np.ndarray  # (S,) dev mean of each statistic's logit
    scale: np.ndarray  # (S,) dev sd (1 where constant)
    weights: np.ndarray  # (S,) on the standardised logits
    bias: float
    statistics: tuple[str, ...] = VIDEO_STATISTICS  # the S it reads, a subset of those

    def logit(self, stats: np.ndarray) -> np.ndarray:
        """Logit of ``stats`` (every one of ``VIDEO_STATISTICS``: (V,) or (N, V)); NaN
        statistics count as the dev mean."""
        x = _columns(stats, self.statistics)
        z = np.nan_to_num((x - self.mean) / self.scale, nan=0.0)
        return z @ self.weights + self.bias

    def score(self, stats: np.ndarray) -> float:
        """Probability that the video of ``stats`` (S,) is fake: its raw video score."""
        return float(1.0 / (1.0 + np.exp(-np.clip(self.logit(stats), -30.0, 30.0))))

    @classmethod
    def fit(
        cls,
        stats: np.ndarray,
        labels: np.ndarray,
        sample_weight: np.ndarray | None = None,
        statistics: tuple[str, ...] = VIDEO_STATISTICS,
    ) -> VideoStacker:
        """Fitted on ``stats`` (N, V) of labelled videos (``RIDGE``), reading the named
        ``statistics``; ``sample_weight`` scales each video's loss."""
        x = _columns(stats, statistics)
        mean = np.nanmean(x, axis=0) if len(x) else np.zeros(x.shape[1])
        mean = np.nan_to_num(mean)
        scale = np.nan_to_num(np.nanstd(x, axis=0), nan=0.0)
        scale = np.where(scale > 1e-9, scale, 1.0)
        z = np.nan_to_num((x - mean) / scale, nan=0.0)
        w = fit_logistic(z, np.asarray(labels, np.float64), RIDGE, sample_weight=sample_weight)
        return cls(mean, scale, w[:-1], float(w[-1]), tuple(statistics))

    def to_dict(self) -> dict[str, Any]:
        return {
            "statistics": list(self.statistics),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "weights": self.weights.tolist(),
            "bias": self.bias,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VideoStacker:
        statistics = tuple(data.get("statistics") or ())
        unknown = sorted(set(statistics) - set(VIDEO_STATISTICS))
        if unknown or not statistics:
            raise AvdfError(
                f"the checkpoint's video stacker reads statistics this version of avdf does "
                f"not compute ({', '.join(unknown) or 'none named'}); retune it with `avdf tune`"
            )
        return cls(
            mean=np.asarray(data["mean"], np.float64),
            scale=np.asarray(data["scale"], np.float64),
            weights=np.asarray(data["weights"], np.float64),
            bias=float(data["bias"]),
            statistics=statistics,
        )


def _columns(stats: np.ndarray, statistics: tuple[str, ...]) -> np.ndarray:
    """The columns of ``statistics`` in ``stats`` (every one of ``VIDEO_STATISTICS``)."""
    index = [VIDEO_STATISTICS.index(name) for name in statistics]
    return np.asarray(stats, np.float64)[..., index]
