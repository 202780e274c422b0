"""The README table of a source-disjoint fold evaluation: every metric as mean ± sd over
folds × seeds, per variant, and a bootstrap over *sources* for the difference of two variants.

Usage: python scripts/fold_table.py FOLDS_DIR VARIANT_DIR [VARIANT_DIR ...]
           [--compare A B] [--resamples 1000] [--seed 0] [--threshold 0.5] [--per-run]
           [--seed-of VARIANT=SEED ...]

FOLDS_DIR holds the fold manifests of ``scripts/make_folds.py`` (fold<k>.jsonl; their test
split gives the labels and each video's source). Each VARIANT_DIR (its name is the column
header) holds one prediction folder per run at ``fold<k>/<seed>/``: ``localization.json`` and
``detection.txt`` from ``avdf evaluate --manifest FOLDS_DIR/fold<k>.jsonl --split test --out
...``, and optionally ``scores.json`` from its ``--json``, whose detection threshold (the
checkpoint's dev-tuned one) is used for ACC; without it ``--threshold``. ``--seed-of
VARIANT=SEED`` keeps only that variant's runs in ``fold<k>/SEED/`` (e.g. ``seed1``: to compare
an ensemble with each of its member seeds).

Metrics per run (official definitions, DESIGN §6): AP@0.5/0.75/0.95, AR@100/50/20/10, R@0.5
of fake segments shorter than 0.5 s (first 100 proposals), video AUC and ACC. The bootstrap
redraws, within each fold, the fold's test sources with replacement (all videos of a drawn
source come along, as often as it is drawn), recomputes every run of both variants on the
same draw and averages over runs; it reports A - B on the full data, its 95% percentile
interval and the share of draws in which A is ahead. Resampling sources rather than videos
keeps the many clips cut from one source from counting as independent evidence.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avdf.evaluation.folds import fold_file, source_unit
from avdf.metrics import (
    ap_ar,
    best_threshold,
    roc_auc,
    short_segment_recall,
    threshold_metrics,
)
from avdf.reports.challenge import read_detection, read_localization
from avdf.types import Sample, read_manifest

# "ACC all fake": what calling every video fake scores (the share of fakes); "ACC
# hindsight": the accuracy at the best threshold for the test split itself (a ceiling on
# what any threshold tuned elsewhere can reach with these scores).
METRICS = ("AP@0.5", "AP@0.75", "AP@0.95", "AR@100", "AR@50", "AR@20", "AR@10",
           "R@0.5 <0.5s", "AUC", "ACC", "ACC all fake", "ACC hindsight")  # fmt: skip
_FOLD = re.compile(r"^fold(\d+)$")


@dataclass
class FoldLabels:
    segments: dict[str, list[list[float]]]  # official name -> fake segments (seconds)
    labels: dict[str, int]  # official name -> 0 real / 1 fake
    sources: dict[str, list[str]]  # source unit -> official names of its test videos


@dataclass
class Run:
    variant: str
    fold: int
    seed: str
    proposals: dict[str, np.ndarray]
    scores: dict[str, float]
    threshold: float


def _name(sample: Sample) -> str:
    # The name in the challenge files (avdf.evaluation.dataset.official_name, without torch).
    file = sample.extra.get("file")
    return str(file) if file else sample.id


def load_fold_labels(folds_dir: Path, k: int) -> FoldLabels:
    test = [s for s in read_manifest(str(folds_dir / fold_file(k))) if s.split == "test"]
    out = FoldLabels({}, {}, {})
    for sample in test:
        name = _name(sample)
        out.segments[name] = [s.to_list() for s in sample.fake_segments]
        out.labels[name] = int(sample.label or 0)
        out.sources.setdefault(source_unit(sample), []).append(name)
    return out


def load_runs(variant_dir: Path, default_threshold: float) -> list[Run]:
    runs = []
    for localization in sorted(variant_dir.glob("fold*/*/localization.json")):
        folder = localization.parent
        match = _FOLD.match(folder.parent.name)
        if match is None:
            continue
        threshold = default_threshold
        scores_json = folder / "scores.json"
        if scores_json.is_file():
            detection = json.loads(scores_json.read_text()).get("detection") or {}
            threshold = float(detection.get("threshold", default_threshold))
        runs.append(
            Run(variant_dir.name, int(match.group(1)), folder.name,
                read_localization(localization), read_detection(folder / "detection.txt"),
                threshold)
        )  # fmt: skip
    if not runs:
        raise SystemExit(f"{variant_dir}: no fold<k>/<seed>/localization.json found")
    return runs


def run_metrics(run: Run, fold: FoldLabels, videos: list[str] | None = None) -> dict[str, float]:
    """The metrics of one run on ``videos`` (test names, repeats allowed; default all)."""
    videos = list(fold.labels) if videos is None else videos
    missing = [v for v in dict.fromkeys(videos) if v not in run.scores]
    if missing:
        raise SystemExit(f"{run.variant} fold{run.fold}/{run.seed}: no score for '{missing[0]}'")
    # A video drawn twice must count twice: each draw gets its own key.
    keys = [f"{v}#{i}" for i, v in enumerate(videos)]
    empty = np.zeros((0, 3))
    proposals = {k: run.proposals.get(v, empty) for k, v in zip(keys, videos, strict=True)}
    segments = {k: fold.segments[v] for k, v in zip(keys, videos, strict=True)}
    loc = ap_ar(proposals, segments)
    short = short_segment_recall(proposals, segments)
    scores = [run.scores[v] for v in videos]
    labels = [fold.labels[v] for v in videos]
    both = len(set(labels)) == 2
    # The best cut for this split itself; scores are probabilities below 1, so the search's
    # ends (0 and 1) cover "all fake" and "all real".
    hindsight = best_threshold(scores, labels)
    return {
        "AP@0.5": loc.ap[0.5], "AP@0.75": loc.ap[0.75], "AP@0.95": loc.ap[0.95],
        "AR@100": loc.ar[100], "AR@50": loc.ar[50], "AR@20": loc.ar[20], "AR@10": loc.ar[10],
        "R@0.5 <0.5s": short.recall,
        "AUC": roc_auc(scores, labels) if both else float("nan"),
        "ACC": threshold_metrics(scores, labels, run.threshold)["accuracy"],
        "ACC all fake": float(np.mean(labels)),
        "ACC hindsight": threshold_metrics(scores, labels, hindsight)["accuracy"],
    }  # fmt: skip


def mean_sd(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof 1; 0 for one value), NaN ignored."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if not len(x):
        return float("nan"), float("nan")
    return float(x.mean()), float(x.std(ddof=1)) if len(x) > 1 else 0.0


def _percent(value: float) -> str:
    return "n/a" if value != value else f"{100 * value:.1f}"


def _variant_mean(runs: list[Run], folds: dict[int, FoldLabels],
                  draw: dict[int, list[str]] | None) -> dict[str, float]:  # fmt: skip
    per_run = [run_metrics(r, folds[r.fold], None if draw is None else draw[r.fold]) for r in runs]
    return {m: mean_sd([x[m] for x in per_run])[0] for m in METRICS}


def bootstrap(
    a: list[Run],
    b: list[Run],
    folds: dict[int, FoldLabels],
    resamples: int,
    seed: int,
) -> dict[str, tuple[float, float, float, float]]:
    """metric -> (A - B on all data, 2.5th and 97.5th percentile of A - B over draws of
    sources within each fold, share of draws with A ahead)."""
    shared = {r.fold for r in a} & {r.fold for r in b}
    a = [r for r in a if r.fold in shared]
    b = [r for r in b if r.fold in shared]
    full_a, full_b = _variant_mean(a, folds, None), _variant_mean(b, folds, None)
    rng = np.random.default_rng(seed)
    diffs: dict[str, list[float]] = {m: [] for m in METRICS}
    for _ in range(resamples):
        draw = {}
        for k in sorted(shared):
            units = sorted(folds[k].sources)
            picked = rng.integers(len(units), size=len(units))
            draw[k] = [v for i in picked for v in folds[k].sources[units[i]]]
        sa, sb = _variant_mean(a, folds, draw), _variant_mean(b, folds, draw)
        for m in METRICS:
            diffs[m].append(sa[m] - sb[m])
    out = {}
    for m in METRICS:
        d = np.asarray(diffs[m])
        d = d[np.isfinite(d)]
        low, high = np.percentile(d, [2.5, 97.5]) if len(d) else (float("nan"),) * 2
        ahead = float(np.mean(d > 0)) if len(d) else float("nan")
        out[m] = (full_a[m] - full_b[m], float(low), float(high), ahead)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folds", type=Path, help="folder of fold<k>.jsonl manifests")
    parser.add_argument("variants", type=Path, nargs="+", help="one folder per variant")
    parser.add_argument("--compare", nargs=2, metavar=("A", "B"),
                        help="variants to bootstrap (default: the first two)")  # fmt: skip
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="ACC threshold for runs without scores.json (default 0.5)")  # fmt: skip
    parser.add_argument("--per-run", action="store_true",
                        help="also print every run's figures (to combine with other runs)")  # fmt: skip
    parser.add_argument("--seed-of", action="append", default=[], metavar="VARIANT=SEED",
                        help="keep only VARIANT's runs in fold<k>/SEED/ (repeatable)")  # fmt: skip
    args = parser.parse_args(argv)

    runs = {v.name: load_runs(v, args.threshold) for v in args.variants}
    for choice in args.seed_of:
        variant, _, seed = choice.partition("=")
        if variant not in runs or not seed:
            raise SystemExit(
                f"--seed-of {choice}: give VARIANT=SEED with VARIANT one of {list(runs)}"
            )
        runs[variant] = [r for r in runs[variant] if r.seed == seed]
        if not runs[variant]:
            raise SystemExit(f"--seed-of {choice}: {variant} has no run of seed {seed}")
    fold_ids = sorted({r.fold for rs in runs.values() for r in rs})
    folds = {k: load_fold_labels(args.folds, k) for k in fold_ids}

    names = list(runs)
    n_runs = " | ".join(f"{len(runs[n])} runs" for n in names)
    print("| metric (%) | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    print(f"| folds × seeds | {n_runs} |")
    per_variant = {n: [run_metrics(r, folds[r.fold]) for r in rs] for n, rs in runs.items()}
    for m in METRICS:
        cells = []
        for n in names:
            mean, sd = mean_sd([x[m] for x in per_variant[n]])
            cells.append(f"{_percent(mean)} ± {_percent(sd)}")
        print(f"| {m} | " + " | ".join(cells) + " |")
    if args.per_run:
        print()
        print("| run | " + " | ".join(METRICS) + " |")
        print("|---|" + "---|" * len(METRICS))
        for n in names:
            for run, figures in zip(runs[n], per_variant[n], strict=True):
                values = " | ".join(_percent(figures[m]) for m in METRICS)
                print(f"| {n} fold{run.fold} {run.seed} | {values} |")

    pair = args.compare or (names[:2] if len(names) >= 2 else None)
    if pair:
        a, b = pair
        if a not in runs or b not in runs:
            raise SystemExit(f"--compare: variants are {', '.join(names)}")
        result = bootstrap(runs[a], runs[b], folds, args.resamples, args.seed)
        print()
        print(f"| {a} − {b} (%) | difference | 95% interval (sources) | {a} ahead |")
        print("|---|---|---|---|")
        for m, (diff, low, high, ahead) in result.items():
            print(f"| {m} | {_percent(diff)} | [{_percent(low)}, {_percent(high)}] | "
                  f"{_percent(ahead)}% |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
