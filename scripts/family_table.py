"""Per edit family of the synthetic corpus: how well the fold runs detect it, on each fold's
source-disjoint test split (the issue-10 table).

Usage: python scripts/family_table.py WORK VARIANT [--min-videos 3] [--checkpoint model-tuned.ckpt]
           [--kinds] [--extent] [--folds 0,1]

WORK is the folder of ``scripts/run_fold.sh`` (``folds/``, ``cache/``,
``train/VARIANT/fold<k>/seed<s>/model-tuned.ckpt``, or the name given by ``--checkpoint``). For every run the test split is scored
from the cache exactly as ``avdf evaluate`` does, and per family (audio and visual families
named apart):

- video AUC: the calibrated video score of test videos containing the family against the
  real test videos;
- within-video AUC: per video containing the family, its steps inside that family's
  segments against the same video's steps outside every fake segment (the video's own
  real stretch; whole-clip edits have none and are left out), averaged over videos.

Each is averaged over runs (folds x seeds), with the spread (sd) and the number of runs.
``--kinds`` splits families by the kind the corpus records (freeze / repeat, blur / jpeg /
warp, ...). ``--extent`` adds two rows over all families: videos with an edit over the whole
clip and videos whose edits are all partial (a whole-clip fake has no real stretch of its own
to stand out against). ``--folds`` keeps only those folds' runs (to pair a variant run on
some folds with another's).
"""

from __future__ import annotations

import argparse
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from avdf.evaluation.dataset import iter_sample_steps
from avdf.evaluation.folds import fold_file
from avdf.inference.detector import Detector
from avdf.metrics import roc_auc
from avdf.types import Sample, Segment, read_manifest

_RUN = re.compile(r"fold(\d+)/(seed\d+)$")


def edit_families(sample: Sample, kinds: bool = False) -> list[tuple[str, Segment]]:
    """(family name, segment) for every manipulated modality of every edit; with ``kinds``
    the name ends with the edit's kind where it has one (``visual:frozen_or_repeated:freeze``)."""
    out = []
    for edit in sample.extra.get("edits", []):
        segment = Segment(*edit["segment"])
        for modality in ("audio", "visual"):
            details = edit.get(modality) or {}
            if details.get("family"):
                name = f"{modality}:{details['family']}"
                if kinds and details.get("kind"):
                    name += f":{details['kind']}"
                out.append((name, segment))
    return out


def extent(sample: Sample) -> str:
    """``extent:whole clip`` if any edit covers the whole clip, else ``extent:partial``."""
    whole = any(edit.get("whole_clip") for edit in sample.extra.get("edits", []))
    return "extent:whole clip" if whole else "extent:partial"


def run_figures(
    checkpoint: Path, manifest: Path, cache: Path, kinds: bool = False, extents: bool = False
) -> dict[str, dict[str, float]]:
    """Per family (and with ``extents`` per :func:`extent`): video AUC and mean
    within-video AUC on one run's test split."""
    detector = Detector.from_checkpoint(checkpoint)
    samples = [s for s in read_manifest(str(manifest)) if s.split == "test"]
    scores: dict[str, float] = {}
    within: dict[str, list[float]] = defaultdict(list)
    members: dict[str, list[str]] = defaultdict(list)
    reals: list[str] = []
    spec = detector.spec
    for sample, steps, _ in iter_sample_steps(detector, samples, cache):
        if steps is None:
            continue
        scores[sample.id] = detector.predict(steps, sample.id).score
        if sample.label == 0:
            reals.append(sample.id)
        n = steps.n_steps
        fake = spec.segments_mask(sample.fake_segments, n)
        if extents and sample.label == 1:
            key = extent(sample)
            members[key].append(sample.id)
            if fake.any() and not fake.all():
                within[key].append(roc_auc(steps.fake_prob, fake.astype(float)))
        for family, segment in edit_families(sample, kinds):
            members[family].append(sample.id)
            inside = spec.segments_mask([segment], n)
            outside = ~fake
            if inside.any() and outside.any():
                values = np.concatenate([steps.fake_prob[inside], steps.fake_prob[outside]])
                labels = np.concatenate([np.ones(inside.sum()), np.zeros(outside.sum())])
                within[family].append(roc_auc(values, labels))
    figures = {}
    for family, ids in members.items():
        ids = sorted(set(ids))
        values = [scores[i] for i in ids] + [scores[i] for i in reals]
        labels = [1] * len(ids) + [0] * len(reals)
        figures[family] = {
            "videos": len(ids),
            "video_auc": roc_auc(values, labels) if reals else float("nan"),
            "within_auc": float(np.mean(within[family])) if within[family] else float("nan"),
        }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path)
    parser.add_argument("variant")
    parser.add_argument("--min-videos", type=int, default=3, help="per run, to count it")
    parser.add_argument(
        "--checkpoint", default="model-tuned.ckpt", help="each run's tuned checkpoint, by name"
    )
    parser.add_argument("--kinds", action="store_true", help="split families by edit kind")
    parser.add_argument(
        "--extent", action="store_true", help="add rows for whole-clip and partial fakes"
    )
    parser.add_argument("--folds", help="only these folds' runs, e.g. 0,1 (default: all)")
    args = parser.parse_args()
    folds = None if args.folds is None else {int(k) for k in args.folds.split(",")}
    runs = sorted((args.work / "train" / args.variant).glob("fold*/seed*"))
    per_family: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    counted = 0
    for run in runs:
        match = _RUN.search(str(run))
        checkpoint = run / args.checkpoint
        if match is None or not checkpoint.is_file():
            continue
        if folds is not None and int(match.group(1)) not in folds:
            continue
        manifest = args.work / "folds" / fold_file(int(match.group(1)))
        counted += 1
        for family, row in run_figures(
            checkpoint, manifest, args.work / "cache", args.kinds, args.extent
        ).items():
            per_family[family]["videos"].append(row["videos"])
            if row["videos"] >= args.min_videos:
                per_family[family]["video_auc"].append(row["video_auc"])
                per_family[family]["within_auc"].append(row["within_auc"])
    print(f"{args.variant}: {counted} runs (folds x seeds), test splits only")
    print("| family | test videos per run | video AUC | within-video AUC | runs |")
    print("|---|---|---|---|---|")

    def cell(values: list[float]) -> str:
        v = np.array([x for x in values if np.isfinite(x)])
        return f"{v.mean():.2f} ± {v.std():.2f}" if len(v) else "–"

    for family in sorted(per_family):
        row = per_family[family]
        print(
            f"| {family} | {np.mean(row['videos']):.1f} | {cell(row['video_auc'])} | "
            f"{cell(row['within_auc'])} | {len(row['video_auc'])} |"
        )


if __name__ == "__main__":
    main()
