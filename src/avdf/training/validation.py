"""Validation that scores dev videos exactly as ``avdf detect`` does.

At the end of each validation epoch, every labelled dev video's cached features go through
:meth:`avdf.inference.detector.Detector.detect_features` (the same sliding windows,
stitching, decoding and video score as detection) with the module's evaluation weights (the
EMA when enabled). Logged: ``val/ap50`` and ``val/ar100`` (official LAV-DF definitions),
``val/ap50_ar100`` (their mean, the default checkpoint-selection metric: frame AUC is blind
to boundaries) and ``val/video_auc`` (the detect-path video score).

The dev videos' features are read from the cache once and kept in memory (about 2.2 MB per
100 steps), because re-reading them each epoch costs as much as the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import lightning as L
import numpy as np

from avdf.inference.detector import Detector
from avdf.metrics import evaluate_localization, roc_auc
from avdf.preprocess.features import VideoFeatures
from avdf.types import Prediction, Sample


def _read_cached(path: Path) -> tuple[VideoFeatures, float]:
    """A cached video's features and the duration it is scored over (as `avdf evaluate`)."""
    from avdf.preprocess.cache import CacheReader, video_duration

    with CacheReader(path) as reader:
        return reader.read(0, reader.n_steps), video_duration(reader.meta)


def localization_scores(
    predictions: Sequence[Prediction], samples: Sequence[Sample]
) -> dict[str, float]:
    """AP@0.5, AR@100, their mean and the video AUC of predictions for labelled samples
    (in %, NaN where undefined)."""
    labels = {s.id: list(s.fake_segments) for s in samples}
    proposals = {p.video_id: list(p.segments) for p in predictions}
    out = {"ap50": float("nan"), "ar100": float("nan"), "ap50_ar100": float("nan")}
    if any(labels.values()):
        metrics = evaluate_localization(proposals, labels, "lavdf")
        out["ap50"] = 100.0 * metrics.ap[0.5]
        out["ar100"] = 100.0 * metrics.ar[100]
        out["ap50_ar100"] = 0.5 * (out["ap50"] + out["ar100"])
    y = np.array([int(s.label or 0) for s in samples])
    scores = np.array([p.score for p in predictions])
    out["video_auc"] = 100.0 * roc_auc(scores, y) if 0 < y.sum() < len(y) else float("nan")
    return out


class DetectionValidation(L.Callback):
    """Logs detect-path metrics on ``samples`` (labelled, cached in ``cache_dir``)."""

    def __init__(self, samples: Sequence[Sample], cache_dir: str | Path, window_steps: int):
        self.samples = [s for s in samples if s.label is not None]
        self.cache_dir = Path(cache_dir)
        self.window_steps = window_steps
        self._features: dict[str, tuple[VideoFeatures, float]] = {}

    def _features_of(self, sample: Sample) -> tuple[VideoFeatures, float]:
        from avdf.preprocess.cache import cache_path_for

        if sample.id not in self._features:
            self._features[sample.id] = _read_cached(cache_path_for(self.cache_dir, sample.id))
        return self._features[sample.id]

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not self.samples:
            return
        network = pl_module.evaluation_model()
        was_training = network.training
        detector = Detector(
            network, pl_module.spec, window_steps=self.window_steps, num_threads=None
        )
        predictions = []
        for sample in self.samples:
            features, duration = self._features_of(sample)
            predictions.append(detector.detect_features([features], duration or None, sample.id))
        network.train(was_training)
        scores = localization_scores(predictions, self.samples)
        for key, value in scores.items():
            if np.isfinite(value):
                pl_module.log(f"val/{key}", float(value), sync_dist=False)
