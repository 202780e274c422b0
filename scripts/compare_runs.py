"""Paired bootstrap over test videos: is run A better than run B, or is the gap within the
noise of which videos happen to be in the test split?

Usage: python scripts/compare_runs.py LABELS PRED_A PRED_B [--resamples 2000] [--seed 0]

LABELS is the corpus metadata (e.g. data/demo/synth/metadata.json); PRED_A / PRED_B are the
``avdf evaluate --out`` folders of the two runs (localization.json + detection.txt, the same
videos). Each resample draws the scored videos with replacement, identically for both runs,
and recomputes the official metrics (DESIGN §6) on it. Prints, per metric, A and B on the
full split, the mean difference A - B, its 95% percentile interval and the share of
resamples in which A is ahead. This measures test-sampling noise only, not the spread
between training seeds.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from avdf.cli.evaluate import read_labels
from avdf.metrics.detection import roc_auc
from avdf.metrics.localization import ap_ar
from avdf.reports.challenge import read_detection, read_localization

METRICS = ("AUC", "AP@0.5", "AP@0.75", "AR@10", "AR@100")


def _load(folder: Path) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    return read_localization(folder / "localization.json"), read_detection(folder / "detection.txt")


def _scores(
    videos: list[str],
    run: tuple[dict[str, np.ndarray], dict[str, float]],
    segments: dict[str, list[list[float]]],
    labels: dict[str, int],
) -> dict[str, float]:
    proposals, detection = run
    # A video drawn twice must count twice: give each draw its own key.
    keys = [f"{v}#{i}" for i, v in enumerate(videos)]
    loc = ap_ar(
        {k: proposals[v] for k, v in zip(keys, videos, strict=True)},
        {k: segments[v] for k, v in zip(keys, videos, strict=True)},
    )
    auc = roc_auc([detection[v] for v in videos], [labels[v] for v in videos])
    return {
        "AUC": auc,
        "AP@0.5": loc.ap[0.5],
        "AP@0.75": loc.ap[0.75],
        "AR@10": loc.ar[10],
        "AR@100": loc.ar[100],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("labels", type=Path)
    parser.add_argument("run_a", type=Path)
    parser.add_argument("run_b", type=Path)
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    segments, labels = read_labels(args.labels)
    a, b = _load(args.run_a), _load(args.run_b)
    videos = sorted(a[1])
    if sorted(b[1]) != videos:
        raise SystemExit(f"{args.run_a} and {args.run_b} scored different videos")
    full_a, full_b = (_scores(videos, r, segments, labels) for r in (a, b))

    rng = np.random.default_rng(args.seed)
    diffs = {m: [] for m in METRICS}
    for _ in range(args.resamples):
        drawn = [videos[i] for i in rng.integers(len(videos), size=len(videos))]
        if len({labels[v] for v in drawn}) < 2:
            continue  # AUC needs both classes
        sa, sb = _scores(drawn, a, segments, labels), _scores(drawn, b, segments, labels)
        for m in METRICS:
            diffs[m].append(sa[m] - sb[m])

    n_fake = sum(labels[v] for v in videos)
    print(
        f"{len(videos)} test videos ({n_fake} fake), {len(diffs['AUC'])} paired resamples; "
        f"A = {args.run_a.name}, B = {args.run_b.name}; numbers in %"
    )
    print("| metric | A | B | A − B | 95% interval | A ahead in |")
    print("|---|---|---|---|---|---|")
    for m in METRICS:
        d = 100 * np.asarray(diffs[m])
        lo, hi = np.percentile(d, [2.5, 97.5])
        print(
            f"| {m} | {100 * full_a[m]:.1f} | {100 * full_b[m]:.1f} | "
            f"{100 * (full_a[m] - full_b[m]):+.1f} | [{lo:+.1f}, {hi:+.1f}] | "
            f"{100 * np.mean(d > 0):.0f}% |"
        )


if __name__ == "__main__":
    main()
