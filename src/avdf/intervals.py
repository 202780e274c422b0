"""Temporal IoU of ``[start, end]`` intervals in seconds: the one definition every layer uses.

As the official LAV-DF / AV-Deepfake1M code defines it:
``max(0, min(ends) - max(starts)) / (max(ends) - min(starts))``. The union is the enclosing
span, which equals the true union for overlapping intervals and makes disjoint ones score 0.
A zero-length union (two zero-length intervals at the same instant) has no IoU: the scalar
form says 0, the array form fills in ``empty`` (NaN by default, never above a threshold).
"""

from __future__ import annotations

import numpy as np


def interval_iou(start_a: float, end_a: float, start_b: float, end_b: float) -> float:
    """IoU of one interval with another (0 for a zero-length union)."""
    union = max(end_a, end_b) - min(start_a, start_b)
    if union <= 0.0:
        return 0.0
    return max(0.0, min(end_a, end_b) - max(start_a, start_b)) / union


def interval_iou_array(
    start_a: np.ndarray | float,
    end_a: np.ndarray | float,
    start_b: np.ndarray | float,
    end_b: np.ndarray | float,
    empty: float = np.nan,
) -> np.ndarray:
    """Element-wise IoU of broadcast intervals, in the inputs' float dtype (float32 stays
    float32, as the reference computes). One against many: scalars for ``a``; every pair:
    ``a[:, None]`` against ``b[None, :]``. ``empty`` fills zero-length unions and NaN input."""
    inter = np.maximum(np.minimum(end_a, end_b) - np.maximum(start_a, start_b), 0.0)
    union = np.maximum(end_a, end_b) - np.minimum(start_a, start_b)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = inter / union
    return np.where(union > 0.0, ratio, np.asarray(empty, dtype=ratio.dtype))
