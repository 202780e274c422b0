"""Decision-threshold rules fitted on the dev people, judged by the accuracy they give the
test people, for fold runs already scored on both splits.

Usage: python scripts/threshold_rules.py WORK VARIANT [--resamples 200]

WORK is the folder of ``scripts/run_fold.sh``; each run needs the test split scored into
``WORK/eval/VARIANT/foldK/seedS/detection.txt`` (``run_fold.sh`` does) and the dev split
scored the same way, by the same tuned checkpoint, into ``WORK/eval-dev/VARIANT/foldK/seedS``
(``avdf evaluate --manifest WORK/folds/foldK.jsonl --split dev --cache WORK/cache
--checkpoint RUN/model-tuned.ckpt --out ...``). The rules:

- tuned: the threshold ``avdf tune`` stored (fitted on cross-fitted dev scores);
- dev refit: the best-accuracy threshold on the tuned detector's own dev scores;
- 0.5: the calibrated probability's one-half;
- bagged: the median of the dev-refit threshold over bootstrap draws of the dev *people*.

Prints each rule's test accuracy per run and as mean ± sd over the runs.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np

from avdf.evaluation.folds import fold_file, source_unit
from avdf.metrics import best_threshold, threshold_metrics
from avdf.reports.challenge import read_detection
from avdf.types import read_manifest

_RUN = re.compile(r"fold(\d+)/(seed\d+)$")


def _scores(folder: Path) -> dict[str, float]:
    return {
        name.removesuffix(".mp4"): p for name, p in read_detection(folder / "detection.txt").items()
    }


def rules(
    dev: dict[str, float], dev_units: dict[str, str], labels: dict[str, int], tuned: float,
    resamples: int, rng: np.random.Generator,
) -> dict[str, float]:  # fmt: skip
    """Every rule's threshold for one run (its dev scores, people and labels)."""
    ids = sorted(dev)
    s = np.array([dev[i] for i in ids])
    y = np.array([labels[i] for i in ids])
    by_person: dict[str, list[int]] = {}
    for j, i in enumerate(ids):
        by_person.setdefault(dev_units[i], []).append(j)
    people = sorted(by_person)
    draws = []
    for _ in range(resamples):
        picked = rng.integers(0, len(people), len(people))
        rows = [j for p in picked for j in by_person[people[p]]]
        if len(set(y[rows])) == 2:
            draws.append(best_threshold(s[rows], y[rows]))
    refit = best_threshold(s, y)
    return {
        "tuned": tuned,
        "dev refit": refit,
        "0.5": 0.5,
        "bagged": float(np.median(draws)) if draws else refit,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path)
    parser.add_argument("variant")
    parser.add_argument("--resamples", type=int, default=200)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    accuracy: dict[str, list[float]] = {}
    print("| run | " + " | ".join(("tuned", "dev refit", "0.5", "bagged")) + " |")
    print("|---|---|---|---|---|")
    for run in sorted((args.work / "eval" / args.variant).glob("fold*/seed*")):
        match = _RUN.search(str(run))
        dev_run = args.work / "eval-dev" / args.variant / run.relative_to(run.parents[1])
        if match is None or not (dev_run / "detection.txt").is_file():
            continue
        samples = read_manifest(str(args.work / "folds" / fold_file(int(match.group(1)))))
        labels = {s.id: int(s.label or 0) for s in samples}
        units = {s.id: source_unit(s) for s in samples}
        tuned = json.loads((run / "scores.json").read_text())["detection"]["threshold"]
        thresholds = rules(_scores(dev_run), units, labels, tuned, args.resamples, rng)
        test = _scores(run)
        s = np.array(list(test.values()))
        y = np.array([labels[i] for i in test])
        cells = []
        for name, t in thresholds.items():
            acc = threshold_metrics(s, y, t)["accuracy"]
            accuracy.setdefault(name, []).append(acc)
            cells.append(f"{100 * acc:.1f} (t {t:.2f})")
        print(f"| {args.variant} {run.parent.name} {run.name} | " + " | ".join(cells) + " |")
    cells = [f"{100 * np.mean(v):.1f} ± {100 * np.std(v, ddof=1):.1f}" for v in accuracy.values()]
    print("| mean ± sd | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
