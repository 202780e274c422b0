"""Official localization metrics (LAV-DF / AV-Deepfake1M), ActivityNet mode, detection."""

from avdf.metrics.detection import (
    DetectionMetrics,
    average_precision,
    best_threshold,
    detection_metrics,
    equal_error_rate,
    roc_auc,
    threshold_metrics,
)
from avdf.metrics.localization import (
    AR_IOU_THRESHOLDS,
    AVDEEPFAKE1M,
    LAVDF,
    PRESETS,
    LocalizationMetrics,
    Preset,
    ShortSegmentRecall,
    activitynet_map,
    ap_ar,
    evaluate_localization,
    interpolated_ap,
    short_segment_recall,
    temporal_iou,
)

__all__ = [
    "AR_IOU_THRESHOLDS",
    "AVDEEPFAKE1M",
    "LAVDF",
    "PRESETS",
    "DetectionMetrics",
    "LocalizationMetrics",
    "Preset",
    "ShortSegmentRecall",
    "activitynet_map",
    "ap_ar",
    "average_precision",
    "best_threshold",
    "detection_metrics",
    "equal_error_rate",
    "evaluate_localization",
    "interpolated_ap",
    "roc_auc",
    "short_segment_recall",
    "temporal_iou",
    "threshold_metrics",
]
