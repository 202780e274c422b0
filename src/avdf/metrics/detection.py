"""Video-level detection metrics (fake = positive class), plain numpy.

Scores are any real numbers where larger means "more likely fake"; labels are 0 (real) or
1 (fake). Tied scores are handled as a group everywhere: AUC uses average ranks
(Mann-Whitney U), AP and the ROC step over distinct score values only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class DetectionMetrics:
    """Video-level numbers as fractions in [0, 1]; threshold-dependent ones at ``threshold``."""

    auc: float
    ap: float
    eer: float
    accuracy: float
    precision: float
    recall: float
    f1: float
    threshold: float
    n_videos: int
    n_fake: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).reshape(-1)  # (N,)
    y = np.asarray(labels).reshape(-1)  # (N,)
    if s.shape != y.shape:
        raise ValueError(f"{len(s)} scores but {len(y)} labels")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("labels must be 0 (real) or 1 (fake)")
    return s, y.astype(bool)


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks with ties sharing the mean of their positions."""
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    # Group boundaries of equal values; each group gets the mean of its 1-based positions.
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]
    group_rank = 0.5 * (starts + 1 + ends)  # mean of positions starts+1 .. ends
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(group_rank, ends - starts)
    return ranks


def roc_auc(scores: Any, labels: Any) -> float:
    """Area under the ROC curve, ties counted as half (NaN without both classes)."""
    s, y = _check(scores, labels)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    rank_sum = _average_ranks(s)[y].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _roc_points(s: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds) at each distinct score, descending, starting at (0, 0)."""
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    last_of_group = np.r_[s[1:] != s[:-1], True]
    tp = np.cumsum(y)[last_of_group]
    fp = np.cumsum(~y)[last_of_group]
    tpr = np.r_[0.0, tp / max(int(y.sum()), 1)]
    fpr = np.r_[0.0, fp / max(int((~y).sum()), 1)]
    return fpr, tpr, np.r_[np.inf, s[last_of_group]]


def average_precision(scores: Any, labels: Any) -> float:
    """AP = sum over distinct thresholds of (recall step) x precision (no interpolation)."""
    s, y = _check(scores, labels)
    n_pos = int(y.sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    last_of_group = np.r_[s[1:] != s[:-1], True]
    tp = np.cumsum(y)[last_of_group]
    predicted = (np.flatnonzero(last_of_group) + 1).astype(np.float64)
    precision, recall = tp / predicted, tp / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def equal_error_rate(scores: Any, labels: Any) -> float:
    """Rate where false-positive and false-negative rates meet, linearly interpolated on ROC."""
    s, y = _check(scores, labels)
    if y.all() or not y.any():
        return float("nan")
    fpr, tpr, _ = _roc_points(s, y)
    fnr = 1.0 - tpr
    diff = fnr - fpr  # starts at 1 (fnr 1, fpr 0) and ends at -1: it changes sign once
    i = int(np.flatnonzero(diff <= 0)[0])
    if diff[i] == 0 or i == 0:
        return float(fpr[i])
    # Crossing between point i-1 (diff > 0) and i (diff < 0) along the ROC segment.
    w = diff[i - 1] / (diff[i - 1] - diff[i])
    return float(fpr[i - 1] + w * (fpr[i] - fpr[i - 1]))


def threshold_metrics(scores: Any, labels: Any, threshold: float = 0.5) -> dict[str, float]:
    """Accuracy, precision, recall and F1 with "fake" meaning ``score >= threshold``."""
    s, y = _check(scores, labels)
    predicted = s >= threshold
    tp = int((predicted & y).sum())
    fp = int((predicted & ~y).sum())
    fn = int((~predicted & y).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    accuracy = float((predicted == y).mean()) if len(y) else float("nan")
    return {"accuracy": accuracy, "precision": precision, "recall": recall, "f1": f1}


def best_threshold(
    scores: Any, labels: Any, figure: str = "accuracy", prefer: float = 0.5
) -> float:
    """The threshold of best ``figure`` ("accuracy" or "f1") with "fake" meaning
    ``score >= threshold``. Candidates are the midpoints between consecutive distinct scores
    and the two ends (0 and 1); ties go to the candidate nearest ``prefer``."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels).astype(bool)
    if s.shape != y.shape:
        raise ValueError("need one label per score")
    values = np.unique(s)
    candidates = np.concatenate([[0.0], 0.5 * (values[1:] + values[:-1]), [1.0]])
    positives, negatives = np.sort(s[y]), np.sort(s[~y])
    # For each candidate: positives at or above it (TP) and negatives below it (TN).
    tp = len(positives) - np.searchsorted(positives, candidates, side="left")
    tn = np.searchsorted(negatives, candidates, side="left")
    fp = len(negatives) - tn
    fn = len(positives) - tp
    if figure == "accuracy":
        value = (tp + tn) / max(len(s), 1)
    elif figure == "f1":
        denominator = 2 * tp + fp + fn
        value = np.divide(2.0 * tp, denominator, out=np.zeros(len(tp)), where=denominator > 0)
    else:
        raise ValueError(f"unknown figure {figure!r}; choose 'accuracy' or 'f1'")
    best = value.max()
    tied = candidates[value >= best - 1e-12]
    return float(tied[np.argmin(np.abs(tied - prefer))])


def detection_metrics(
    scores: Mapping[str, float] | Sequence[float],
    labels: Mapping[str, int] | Sequence[int],
    threshold: float = 0.5,
) -> DetectionMetrics:
    """All detection numbers. With mappings, every labelled video must have a score."""
    if isinstance(labels, Mapping):
        if not isinstance(scores, Mapping):
            raise TypeError("scores must be a mapping when labels are")
        missing = [v for v in labels if v not in scores]
        if missing:
            raise ValueError(f"{len(missing)} labelled videos have no score, e.g. '{missing[0]}'")
        s = np.array([scores[v] for v in labels], dtype=np.float64)
        y = np.array([labels[v] for v in labels])
    else:
        s, y = np.asarray(scores, dtype=np.float64), np.asarray(labels)
    at_threshold = threshold_metrics(s, y, threshold)
    return DetectionMetrics(
        auc=roc_auc(s, y),
        ap=average_precision(s, y),
        eer=equal_error_rate(s, y),
        threshold=float(threshold),
        n_videos=int(len(y)),
        n_fake=int(np.sum(y)),
        **at_threshold,
    )
