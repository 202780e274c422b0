"""A video probe: the video score as an L2 logistic regression on the model's block summary.

The model's own video head learned what its training fakes look like (synthetic edits); a
linear probe refitted on genuine generator outputs, over the frozen model's modality blocks
(``ModelOutput.block_summary``: each block's per-step output summarised by mean and sd over a
window, averaged over the video's windows by the Detector), carries further to generators
neither saw (docs/realworld.md). ``avdf tune --probe FOLDER`` fits one and stores it in the
checkpoint (``extra["video_probe"]``); the Detector then scores videos with it, and the
calibration (temperature, shift, threshold) applies to its score as to any raw score.

The probe reads a whole-video average, so it cannot see a short edit inside a real video,
which the model's own pooled step score (the calibration's rule) does see. The video score is
therefore a blend fitted on the dev split by ``avdf tune``:
``sigmoid(probe_weight * probe logit + rule_weight * logit(rule score) + blend_bias)``
(the defaults 1, 0, 0 are the probe alone).

Features are standardised on the probe's training videos. A modality the video lacks (no
audio track) has NaN summaries; they count as the training mean (0 after standardising), so
a silent video is scored by its other modalities rather than by the silence.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from avdf.inference.calibration import logit


@dataclass(frozen=True)
class VideoProbe:
    mean: np.ndarray  # (F,) training mean of each summary feature
    scale: np.ndarray  # (F,) training sd (1 where constant)
    weights: np.ndarray  # (F,) on the standardised features
    bias: float
    ridge: float  # the L2 strength it was fitted with
    # The blend with the model's own pooled score (module docstring); fitted on dev.
    probe_weight: float = 1.0
    rule_weight: float = 0.0
    blend_bias: float = 0.0

    @property
    def n_features(self) -> int:
        return len(self.weights)

    def logit(self, summary: np.ndarray) -> np.ndarray:
        """Logit of ``summary`` (F,) or (N, F); NaN features count as the training mean."""
        x = np.asarray(summary, dtype=np.float64)
        if x.shape[-1] != self.n_features:
            raise ValueError(
                f"the probe reads {self.n_features} summary features, the model gave {x.shape[-1]}"
            )
        z = np.nan_to_num((x - self.mean) / self.scale, nan=0.0)
        return z @ self.weights + self.bias

    def probability(self, summary: np.ndarray) -> float:
        """Probability that the video of one summary (F,) is fake."""
        return float(_sigmoid(float(self.logit(summary))))

    def score(self, summary: np.ndarray, rule_score: float) -> float:
        """The blended video score of one video: its summary (F,) and its rule score."""
        z = self.probe_weight * float(self.logit(summary)) + self.blend_bias
        if self.rule_weight:
            z += self.rule_weight * float(logit(rule_score))
        return float(_sigmoid(z))

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable (a checkpoint's ``extra`` must load under ``weights_only``)."""
        return {
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "weights": self.weights.tolist(),
            "bias": float(self.bias),
            "ridge": float(self.ridge),
            "probe_weight": float(self.probe_weight),
            "rule_weight": float(self.rule_weight),
            "blend_bias": float(self.blend_bias),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VideoProbe:
        arrays = {k: np.asarray(data[k], dtype=np.float64) for k in ("mean", "scale", "weights")}
        if len({len(a) for a in arrays.values()}) != 1:
            raise ValueError("video probe: mean, scale and weights differ in length")
        blend = {
            k: float(data[k]) for k in ("probe_weight", "rule_weight", "blend_bias") if k in data
        }
        return cls(**arrays, bias=float(data["bias"]), ridge=float(data["ridge"]), **blend)

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, ridge: float) -> VideoProbe:
        """Fit on summaries ``x`` (N, F) with labels ``y`` (N,) in {0, 1}."""
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if len(set(y.tolist())) < 2:
            raise ValueError("a video probe needs real and fake videos to fit on")
        with np.errstate(invalid="ignore"):  # all-NaN columns: a modality no video had
            mean = np.nan_to_num(np.nanmean(x, axis=0), nan=0.0)
            scale = np.nan_to_num(np.nanstd(x, axis=0), nan=1.0)
        scale[scale < 1e-12] = 1.0
        z = np.nan_to_num((x - mean) / scale, nan=0.0)
        w = fit_logistic(z, y, ridge)
        return cls(mean=mean, scale=scale, weights=w[:-1], bias=float(w[-1]), ridge=ridge)


def fit_logistic(
    x: np.ndarray,
    y: np.ndarray,
    l2: float,
    iterations: int = 50,
    sample_weight: np.ndarray | None = None,
) -> np.ndarray:
    """Weights (F + 1,), the intercept last, of an L2 logistic regression on ``x`` (N, F) by
    Newton's method (a few hundred videos and features: exact and dependency-free);
    ``sample_weight`` (N,) scales each video's loss (default 1)."""
    design = np.hstack([x, np.ones((len(x), 1))])
    v = np.ones(len(x)) if sample_weight is None else np.asarray(sample_weight, np.float64)
    w = np.zeros(design.shape[1])
    penalty = np.full(design.shape[1], float(l2))
    penalty[-1] = 0.0  # the intercept is not shrunk
    for _ in range(iterations):
        p = _sigmoid(design @ w)
        gradient = design.T @ (v * (p - y)) + penalty * w
        hessian = (design * (v * p * (1 - p))[:, None]).T @ design + np.diag(penalty)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def _sigmoid(z: Any) -> Any:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=np.float64)))
