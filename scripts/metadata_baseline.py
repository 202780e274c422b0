"""How far metadata alone separates real from fake: the shortcut check for a training set.

Usage: python scripts/metadata_baseline.py FOLDER [FOLDER ...] [--cache DIR ...]
                                           [--resamples 1000] [--seed 0]

Each FOLDER holds a ``labels.tsv`` (``avdf.datasets.realworld``). Per clip, features a
detector could learn without looking at any face: frame height, aspect ratio, frame rate,
bitrate, duration, codec (H.264 or not), audio track present, and face size (median height of
the face-mesh landmarks in pixels and as a share of the frame height, and the share of steps
with a face) read from the clip's ``avdf preprocess`` cache in the matching ``--cache`` DIR,
or, without one, from a quick MediaPipe search on 5 frames.

A logistic regression (numpy, L2, standardised on the training side only) is scored
leave-one-generator-out (``realworld.logo_folds``: each generator family's fakes and a share of
the reals held out once; the out-of-fold scores pooled into one AUC), with a bootstrap 95 %
interval over clips. Printed: one row per folder with every feature and without the audio
flag, then each feature's own AUC (no fitting; 0.5 = no information, far from 0.5 either way
= a shortcut). At chance means the interval holds 0.5.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from avdf.datasets import load_dataset
from avdf.datasets.realworld import logo_folds
from avdf.errors import AvdfError
from avdf.inference.probe import fit_logistic
from avdf.metrics.detection import roc_auc
from avdf.types import Sample

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling script's face search
import reencode_corpus  # noqa: E402

FEATURES: tuple[str, ...] = (
    "log_height",
    "aspect",
    "fps",
    "log_bitrate",
    "duration",
    "h264",
    "has_audio",
    "log_face_px",
    "face_share",
    "face_present",
)
L2 = 1.0  # ridge on the standardised weights (sklearn's C = 1)


@dataclass(frozen=True)
class Row:
    sample: Sample
    features: np.ndarray  # (F,) in FEATURES order


def container_features(path: Path) -> dict[str, float]:
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        duration = (container.duration or 0) / av.time_base or float(
            video.duration * video.time_base
        )
        width, height = video.codec_context.width, video.codec_context.height
        return {
            "log_height": float(np.log(height)),
            "aspect": width / height,
            "fps": float(video.average_rate or 0),
            "log_bitrate": float(np.log(8 * path.stat().st_size / max(duration, 1e-3))),
            "duration": duration,
            "h264": float(video.codec_context.name == "h264"),
            "has_audio": float(bool(container.streams.audio)),
            "_height": float(height),
        }


def face_features(sample: Sample, cache: Path | None, height: float) -> dict[str, float]:
    """Face size from the cache's landmarks (source pixels), else 5 frames searched."""
    heights: list[float] = []
    present = 0.0
    cache_file = None
    if cache is not None:
        from avdf.preprocess.cache import CacheReader, cache_path_for, is_complete

        candidate = cache_path_for(cache, sample.id)
        cache_file = candidate if is_complete(candidate) else None
    if cache_file is not None:
        from avdf.preprocess.cache import CacheReader

        with CacheReader(cache_file) as reader:
            chunk = reader.read(0, reader.n_steps)
        points = chunk.landmarks.astype(np.float32)[chunk.face_mask]  # (N, 468, 2)
        heights = list(np.ptp(points[..., 1], axis=1)) if len(points) else []
        present = float(chunk.face_mask.mean()) if chunk.n_steps else 0.0
    else:
        heights, present = _quick_face_heights(Path(sample.path))
    face_px = float(np.median(heights)) if heights else 0.0
    return {
        "log_face_px": float(np.log1p(face_px)),
        "face_share": face_px / height,
        "face_present": present,
    }


def _quick_face_heights(path: Path, n_frames: int = 5) -> tuple[list[float], float]:
    from avdf.io.decode import iter_video_frames
    from avdf.timebase import MediaSpec

    frames = np.concatenate(list(iter_video_frames(path, MediaSpec(), max_side=None)))
    picks = frames[np.linspace(0, len(frames) - 1, n_frames).round().astype(int)]
    heights = [height for _, _, height in reencode_corpus.face_boxes(list(picks))]
    return heights, len(heights) / n_frames


def rows_of(folder: Path, cache: Path | None) -> list[Row]:
    rows = []
    for sample in load_dataset("realworld", folder, split_by="generator"):
        values = container_features(Path(sample.path))
        values.update(face_features(sample, cache, values["_height"]))
        rows.append(Row(sample, np.array([values[f] for f in FEATURES], np.float64)))
    return rows


def logo_scores(rows: list[Row], columns: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Pooled out-of-fold scores and labels, one per clip."""
    index = {r.sample.id: i for i, r in enumerate(rows)}
    x = np.stack([r.features for r in rows])[:, columns]
    y = np.array([r.sample.label for r in rows], np.float64)
    scores = np.full(len(rows), np.nan)
    for fold in logo_folds([r.sample for r in rows]):
        train = np.array([index[s.id] for s in fold.train])
        test = np.array([index[s.id] for s in fold.test])
        mean, std = x[train].mean(0), x[train].std(0)
        std[std == 0] = 1.0
        w = fit_logistic((x[train] - mean) / std, y[train], L2)
        scores[test] = np.hstack([(x[test] - mean) / std, np.ones((len(test), 1))]) @ w
    return scores, y


def bootstrap_interval(
    scores: np.ndarray, y: np.ndarray, resamples: int, seed: int
) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        pick = rng.integers(0, len(y), len(y))
        if 0 < y[pick].sum() < len(pick):
            values.append(roc_auc(scores[pick], y[pick]))
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument(
        "--cache", type=Path, action="append", default=[], help="cache per folder, in order"
    )
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.cache and len(args.cache) != len(args.folders):
        print("metadata_baseline: give one --cache per folder, or none", file=sys.stderr)
        return 1
    caches = args.cache or [None] * len(args.folders)
    try:
        tables = [
            (folder, rows_of(folder, cache))
            for folder, cache in zip(args.folders, caches, strict=True)
        ]
    except (AvdfError, OSError) as e:
        print(f"metadata_baseline: {e}", file=sys.stderr)
        return 1
    every = list(range(len(FEATURES)))
    no_audio = [i for i, f in enumerate(FEATURES) if f != "has_audio"]
    print("| set | clips (fake/real) | LOGO AUC, all features [95% CI] | without has_audio |")
    print("|---|---|---|---|")
    for folder, rows in tables:
        n_fake = sum(r.sample.label == 1 for r in rows)
        cells = []
        for columns in (every, no_audio):
            scores, y = logo_scores(rows, columns)
            low, high = bootstrap_interval(scores, y, args.resamples, args.seed)
            cells.append(f"{roc_auc(scores, y):.2f} [{low:.2f}, {high:.2f}]")
        print(f"| {folder} | {len(rows)} ({n_fake}/{len(rows) - n_fake}) | {' | '.join(cells)} |")
    print()
    print("| feature | " + " | ".join(str(folder) for folder, _ in tables) + " |")
    print("|---|" + "---|" * len(tables))
    for i, name in enumerate(FEATURES):
        cells = []
        for _, rows in tables:
            x = np.array([r.features[i] for r in rows])
            y = np.array([r.sample.label for r in rows])
            cells.append(f"{roc_auc(x, y):.2f}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
