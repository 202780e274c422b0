"""Run a checkpoint over a dataset split and score it with the official metrics.

    samples (avdf.datasets.load_dataset, or a JSONL manifest such as a fold)
      -> per video: features from the cache when a complete one made with the model's
         MediaSpec exists (cache_path_for(cache_dir, sample.id), the id `avdf preprocess`
         uses), else the streaming pipeline on the video
      -> Detector -> Prediction keyed by the official file name (Sample.extra["file"])
      -> localization AP/AR (datasets with temporal labels), video-level detection
         metrics, FakeAVCeleb per-category metrics; optional challenge-format files.

A video that cannot be read is reported as one "path: cause" line in ``failed`` and the
others are still scored (the metrics then cover only the videos that were scored).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from avdf.errors import AvdfError, InputError, OutputExistsError, one_line
from avdf.inference.detector import Detector, StepOutputs
from avdf.metrics import DetectionMetrics, detection_metrics, evaluate_localization
from avdf.native_logs import native_stderr_silenced
from avdf.preprocess.features import VideoFeatures
from avdf.types import Prediction, Sample

# Datasets whose labels are whole-video only: no localization numbers for them.
_VIDEO_LEVEL_DATASETS = frozenset({"fakeavceleb"})
# Prediction file names inside ``predictions_out``.
LOCALIZATION_FILE = "localization.json"
DETECTION_FILE = "detection.txt"
# FakeAVCeleb: each fake category is scored against the real videos (category A).
REAL_CATEGORY = "A"


def default_preset(dataset: str) -> str:
    """The threshold preset a dataset's papers report (LAV-DF's for everything but 1M)."""
    return "avdeepfake1m" if dataset == "avdeepfake1m" else "lavdf"


def official_name(sample: Sample) -> str:
    """The name the dataset's label files and the challenge formats use for a video."""
    file = sample.extra.get("file")
    return str(file) if file else sample.id


def cached_chunks(path: str | Path, chunk_steps: int) -> Iterator[VideoFeatures]:
    """Consecutive chunks of at most ``chunk_steps`` steps read from a cache file."""
    from avdf.preprocess.cache import CacheReader

    with CacheReader(path) as reader:
        for start in range(0, reader.n_steps, chunk_steps):
            yield reader.read(start, start + chunk_steps)


def _cache_file(detector: Detector, cache_dir: Path | None, sample: Sample) -> Path | None:
    """The sample's cache when it is complete, made with the model's MediaSpec (and the
    same ``max_side`` and tracking settings a fresh run would use) and, if the video is
    here, from this very file."""
    if cache_dir is None:
        return None
    from avdf.preprocess.cache import cache_path_for, is_complete, read_meta, source_fingerprint

    path = cache_path_for(cache_dir, sample.id)
    if not path.is_file():
        return None
    video = Path(sample.path)
    fingerprint = source_fingerprint(video) if video.is_file() else None
    if not is_complete(path, detector.spec, fingerprint):
        return None
    meta = read_meta(path) or {}
    # Face crops depend on the frame size tracking ran at: a different max_side is stale.
    if meta.get("max_side", detector.max_side) != detector.max_side:
        return None
    # So do the tracker's options (keyframe interval, motion rule): other ones are stale.
    from avdf.preprocess.pipeline import default_tracker

    if meta.get("tracking") != default_tracker(detector.spec).settings:
        return None
    # A cache without the model's expert streams is not used: the video is run instead.
    from avdf.preprocess.cache import missing_experts

    if missing_experts(meta, detector.experts):
        return None
    return path


def _steps_from_cache(detector: Detector, path: Path) -> StepOutputs:
    from avdf.preprocess.cache import read_meta, video_duration

    meta = read_meta(path) or {}
    return detector.steps_from_features(
        cached_chunks(path, detector.chunk_steps), video_duration(meta), path, meta.get("notes", ())
    )


def iter_sample_steps(
    detector: Detector,
    samples: Sequence[Sample],
    cache_dir: str | Path | None = None,
    progress: bool = False,
    desc: str = "avdf evaluate",
) -> Iterator[tuple[Sample, StepOutputs | None, bool | str]]:
    """Per sample: ``(sample, stitched steps, True if read from the cache)``, or
    ``(sample, None, "path: cause")`` for a video that cannot be read."""
    cache = Path(cache_dir) if cache_dir is not None else None
    items: Any = samples
    if progress:
        from tqdm import tqdm

        items = tqdm(samples, unit="video", desc=desc, file=sys.stderr)
    for sample in items:
        try:
            cached = _cache_file(detector, cache, sample)
            if cached is not None:
                yield sample, _steps_from_cache(detector, cached), True
                continue
            if not Path(sample.path).is_file():
                raise InputError(sample.path, "video file not found")
            # MediaPipe's native log lines would break up the progress bar and the table;
            # failures still reach ``failed`` as exceptions.
            with native_stderr_silenced():
                steps = detector.detect_steps(sample.path)
        except (AvdfError, OSError, ValueError) as e:
            # OSError / ValueError: decoder and container errors (PyAV raises both kinds).
            yield sample, None, one_line(sample.path, e)
            continue
        yield sample, steps, False


def predict_samples(
    detector: Detector,
    samples: Sequence[Sample],
    cache_dir: str | Path | None = None,
    progress: bool = False,
) -> tuple[list[tuple[Sample, Prediction]], list[str], int]:
    """Predictions for every readable sample, ``"path: cause"`` lines for the others, and
    how many videos came from the cache."""
    done: list[tuple[Sample, Prediction]] = []
    failed: list[str] = []
    from_cache = 0
    for sample, steps, status in iter_sample_steps(detector, samples, cache_dir, progress):
        if steps is None:
            failed.append(str(status))
            continue
        from_cache += status is True
        done.append((sample, detector.predict(steps, official_name(sample))))
    return done, failed, from_cache


def load_split(
    dataset: str | None,
    root: str | Path | None,
    split: str,
    manifest: str | Path | None = None,
    subset: str = "full",
) -> tuple[str, list[Sample]]:
    """``(dataset name, samples of split)`` from a dataset adapter or a JSONL manifest (e.g.
    a source-disjoint fold, :mod:`avdf.evaluation.folds`); the name picks the metrics."""
    if manifest is not None:
        from avdf.types import read_manifest

        try:
            samples = [s for s in read_manifest(str(manifest)) if s.split == split]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise InputError(manifest, f"cannot read the manifest ({e})") from None
        if not samples:
            raise InputError(manifest, f"no sample in split {split!r}")
        return dataset or samples[0].dataset, samples
    if dataset is None or root is None:
        raise ValueError("give a dataset name and root, or a manifest")
    from avdf.datasets import load_dataset

    options: dict[str, Any] = {"subset": subset} if dataset == "lavdf" else {}
    return dataset, load_dataset(dataset, root, split, **options)


def per_category_metrics(
    scored: Sequence[tuple[Sample, float]], threshold: float = 0.5
) -> dict[str, DetectionMetrics]:
    """FakeAVCeleb: detection metrics of each fake category (B, C, D) against the real
    videos (A), from ``(sample, video score)`` pairs with ``extra["category"]``."""
    by_category: dict[str, list[float]] = {}
    for sample, score in scored:
        category = sample.extra.get("category")
        if category is not None:
            by_category.setdefault(str(category), []).append(score)
    real = by_category.get(REAL_CATEGORY, [])
    out: dict[str, DetectionMetrics] = {}
    for category in sorted(by_category):
        if category == REAL_CATEGORY or not real:
            continue
        fake = by_category[category]
        out[category] = detection_metrics(real + fake, [0] * len(real) + [1] * len(fake), threshold)
    return out


def score_predictions(
    dataset: str,
    done: Sequence[tuple[Sample, Prediction]],
    metric: str = "official",
    preset: str | None = None,
    threshold: float = 0.5,
) -> dict[str, Any]:
    """The metrics of the labelled predictions (keys as :func:`evaluate_dataset`)."""
    from avdf.reports.challenge import detection_from_predictions, localization_from_predictions

    labelled = [(s, p) for s, p in done if s.label is not None]
    results: dict[str, Any] = {}
    if not labelled:
        return results  # e.g. the AV-Deepfake1M test split: predictions only
    predictions = [p for _, p in labelled]
    if dataset not in _VIDEO_LEVEL_DATASETS and any(s.fake_segments for s, _ in labelled):
        segments = {official_name(s): [g.to_list() for g in s.fake_segments] for s, _ in labelled}
        results["localization"] = evaluate_localization(
            localization_from_predictions(predictions),
            segments,
            preset or default_preset(dataset),
            metric,
        )
    labels = {official_name(s): int(s.label or 0) for s, _ in labelled}
    results["detection"] = detection_metrics(
        detection_from_predictions(predictions), labels, threshold
    )
    if dataset == "fakeavceleb":
        results["per_category"] = per_category_metrics(
            [(s, p.score) for s, p in labelled], threshold
        )
    return results


def write_predictions(
    predictions: Sequence[Prediction], out_dir: str | Path, force: bool = False
) -> tuple[Path, Path]:
    """``localization.json`` and ``detection.txt`` in the challenge formats under
    ``out_dir``; existing files are kept unless ``force``."""
    from avdf.reports.challenge import (
        detection_from_predictions,
        localization_from_predictions,
        write_detection,
        write_localization,
    )

    out = Path(out_dir)
    paths = (out / LOCALIZATION_FILE, out / DETECTION_FILE)
    if not force:
        for path in paths:
            if path.exists():
                raise OutputExistsError(path)
    out.mkdir(parents=True, exist_ok=True)
    write_localization(localization_from_predictions(predictions), paths[0])
    write_detection(detection_from_predictions(predictions), paths[1])
    return paths


def evaluate_dataset(
    dataset: str | None,
    root: str | Path | None,
    checkpoint: str | Path | None,
    split: str,
    metric: str = "official",
    preset: str | None = None,
    threshold: float | None = None,
    cache_dir: str | Path | None = None,
    subset: str = "full",
    predictions_out: str | Path | None = None,
    progress: bool = True,
    force: bool = False,
    detector: Detector | None = None,
    manifest: str | Path | None = None,
) -> dict[str, Any]:
    """Score ``checkpoint`` on ``split`` of ``dataset`` under ``root``.

    Returns ``localization`` (LocalizationMetrics, datasets with temporal labels),
    ``detection`` (DetectionMetrics), ``per_category`` (FakeAVCeleb: {category:
    DetectionMetrics} against category A), ``failed`` (``"path: cause"`` lines),
    ``n_videos`` (videos in the split), ``n_scored`` and ``n_cached``. ``subset`` is LAV-DF's
    full / visual / audio. ``preset`` None picks the dataset's own. ``predictions_out``
    receives the challenge-format files (never overwritten unless ``force``). ``threshold``
    None is the checkpoint's decision threshold (``avdf tune``; 0.5 untuned). ``detector``
    overrides the one built from ``checkpoint`` (e.g. to change its batch size). ``manifest``
    (a JSONL manifest, e.g. a fold) replaces ``dataset`` / ``root``.
    """
    dataset, samples = load_split(dataset, root, split, manifest, subset)
    if predictions_out is not None and not force:
        for name in (LOCALIZATION_FILE, DETECTION_FILE):
            if (Path(predictions_out) / name).exists():  # fail before hours of inference
                raise OutputExistsError(Path(predictions_out) / name)
    detector = detector or Detector.from_checkpoint(checkpoint)
    done, failed, from_cache = predict_samples(detector, samples, cache_dir, progress)
    if threshold is None:
        threshold = detector.calibration.threshold
    if predictions_out is not None:
        write_predictions([p for _, p in done], predictions_out, force=force)
    results = score_predictions(dataset, done, metric, preset, threshold)
    results.update(failed=failed, n_videos=len(samples), n_scored=len(done), n_cached=from_cache)
    return results
