"""Training-free stillness per edit family: what the face crops show of a held frame against
what the whole picture shows (the ``motion`` expert stream).

Usage: python scripts/stillness_probe.py CORPUS CACHE [--splits dev,test]

CORPUS is an ``avdf synth`` folder, CACHE its ``avdf preprocess --experts motion`` cache. Per
fake video and edit (family and kind, e.g. ``visual:frozen_or_repeated:freeze``), the
within-video AUC of a stillness score — the edit's steps against the same video's steps
outside every fake segment — for two scores:

- ``crops``: minus the mean absolute grey difference of consecutive 64 px face crops (what
  the model's face block reads);
- ``still``: minus the motion stream's ``still`` channel (whole picture at 112 px, the
  larger of the differences to the previous and next frame, against the video's median);
- ``sides``: minus the smaller of the stream's ``prev`` and ``next`` channels (a held
  segment's first and last frames differ from one neighbour only).

Averaged over videos per family; 0.5 is chance, 1.0 a held frame always stiller.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from family_table import edit_families  # noqa: E402
from feature_probe import grey_faces  # noqa: E402

from avdf.datasets import load_dataset  # noqa: E402
from avdf.experts import EXPERTS  # noqa: E402
from avdf.metrics import roc_auc  # noqa: E402
from avdf.preprocess.cache import CacheReader, cache_path_for  # noqa: E402

PREV, NEXT, STILL = (EXPERTS["motion"].channels.index(c) for c in ("prev", "next", "still"))


def crop_motion(face: np.ndarray) -> np.ndarray:
    """(T,) mean absolute grey difference of each crop to the one before (the first copies
    the second's)."""
    grey = grey_faces(face)
    diff = np.abs(np.diff(grey, axis=0)).mean(axis=(1, 2))
    return np.concatenate([diff[:1], diff]) if len(diff) else np.zeros(len(face))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("cache", type=Path)
    parser.add_argument("--splits", default="dev,test", help="corpus splits to read")
    args = parser.parse_args()
    splits = set(args.splits.split(","))
    auc: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for sample in load_dataset("lavdf", args.corpus.resolve()):
        path = cache_path_for(args.cache, sample.id)
        if sample.split not in splits or sample.label != 1 or not path.is_file():
            continue
        with CacheReader(path) as reader:
            features = reader.read()
        spec, n = features.spec, features.n_steps
        motion = features.experts["motion"].astype(np.float32)
        scores = {
            "crops": -crop_motion(features.face),
            "still": -motion[:, STILL],
            "sides": -np.minimum(motion[:, PREV], motion[:, NEXT]),
        }
        genuine = ~spec.segments_mask(sample.fake_segments, n) & features.face_mask
        for name, segment in edit_families(sample, kinds=True):
            inside = spec.segments_mask([segment], n) & features.face_mask
            if not inside.any() or not genuine.any():
                continue
            labels = np.r_[np.ones(inside.sum()), np.zeros(genuine.sum())]
            for score, values in scores.items():
                auc[name][score].append(roc_auc(np.r_[values[inside], values[genuine]], labels))
    print("| edit (family:kind) | edits | within-video AUC: face crops | stream `still` | sides |")
    print("|---|---|---|---|---|")
    for name in sorted(auc):
        row = auc[name]
        print(
            f"| {name} | {len(row['crops'])} | {np.mean(row['crops']):.2f} | "
            f"{np.mean(row['still']):.2f} | {np.mean(row['sides']):.2f} |"
        )


if __name__ == "__main__":
    main()
