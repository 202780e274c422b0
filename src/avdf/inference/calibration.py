"""Video-score calibration and the decision rule, stored in a checkpoint by ``avdf tune``.

How the raw video score pools a video's outputs is part of it (``top_fraction``, see
:func:`avdf.inference.detector.aggregate_video_score`): ``None``, the untuned rule, suits
short edits inside long real videos; the mean of the top fraction of step probabilities also
suits whole-video fakes; ``from_proposals`` scores a video by its best proposal (after the
proposal rescorer, when the checkpoint has one); ``avdf tune`` picks between them on dev.

The detector's raw video score ``s`` (a probability from the model) becomes a calibrated
probability ``p = sigmoid((logit(s) - shift) / temperature)`` (Platt scaling written as a
temperature and a shift, both fitted on a dev split). The verdict is "fake" when ``p`` is at
least ``threshold + uncertain_band``, "real" below ``threshold - uncertain_band`` and
"uncertain" in between. Untuned checkpoints get the identity map and 0.5.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

VERDICTS = ("real", "uncertain", "fake")
_EPS = 1e-6


def logit(scores: Any) -> np.ndarray:
    """``log(s / (1 - s))`` of raw scores clipped to [eps, 1 - eps], as :meth:`Calibration.calibrate`
    clips them."""
    s = np.clip(np.asarray(scores, dtype=np.float64), _EPS, 1.0 - _EPS)
    return np.log(s / (1.0 - s))


@dataclass(frozen=True)
class Calibration:
    temperature: float = 1.0
    shift: float = 0.0  # in logits, subtracted before dividing by the temperature
    threshold: float = 0.5  # on the calibrated probability
    uncertain_band: float = 0.1  # half-width of the "uncertain" band around the threshold
    segment_threshold: float = 0.5  # on step fake probability: merged segments for people
    modality_threshold: float = 0.5  # on a segment's audio / visual evidence
    top_fraction: float | None = None  # raw video score pooling (module docstring)
    from_proposals: bool = False  # raw video score = the best proposal's (top_fraction unused)
    tuned: bool = False  # True once fitted on a dev split (``avdf tune``)

    def __post_init__(self) -> None:
        if self.temperature <= 0.0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        for name in ("threshold", "segment_threshold", "modality_threshold"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if self.top_fraction is not None and not 0.0 < self.top_fraction <= 1.0:
            raise ValueError(f"top_fraction must be in (0, 1] or None, got {self.top_fraction}")
        if not 0.0 <= self.uncertain_band < 0.5:
            raise ValueError(f"uncertain_band must be in [0, 0.5), got {self.uncertain_band}")

    def calibrate(self, raw_score: float) -> float:
        """Calibrated probability of a raw video score in [0, 1]."""
        s = min(max(float(raw_score), _EPS), 1.0 - _EPS)
        z = (math.log(s / (1.0 - s)) - self.shift) / self.temperature
        return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))

    def verdict(self, probability: float) -> str:
        """ "real", "uncertain" or "fake" for a calibrated probability."""
        if probability >= self.threshold + self.uncertain_band:
            return "fake"
        if probability < self.threshold - self.uncertain_band:
            return "real"
        return "uncertain"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Calibration:
        known = {k: v for k, v in dict(data or {}).items() if k in cls.__dataclass_fields__}
        return cls(**known)
