"""Mean ± sd over runs of the real-world video AUCs that ``scripts/eval_realworld.py --json``
writes: overall, per kind and per generator, one column per group of runs.

Usage: python scripts/realworld_table.py NAME=RUN.json[,RUN.json...] [NAME=...]
           [--ensemble | --pool]

Each NAME is a column (e.g. a training recipe), each of its JSON files one trained model
(fold x seed). ``--ensemble`` adds a column per NAME that scores each clip by the mean of its
runs' calibrated scores (an ensemble of those models; the runs must have scored the same
folder, whose ``labels.tsv`` gives the kinds and generators). ``--pool`` instead treats each
NAME's runs as the folds of one leave-generators-out evaluation (each scored the held-out clips
of its own ``make_realworld_manifest.py --hold-out`` manifest): their scores are pooled into one
AUC per row. Measuring only: the numbers come from sets nothing was fitted on.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling script's AUC tables
import eval_realworld  # noqa: E402


def cell(values: list[float]) -> str:
    v = np.array(values, dtype=float)
    v = v[np.isfinite(v)]
    return f"{v.mean():.2f} ± {v.std():.2f}" if len(v) else "–"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("groups", nargs="+", help="NAME=RUN.json[,RUN.json...]")
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--ensemble", action="store_true", help="add each NAME's ensemble")
    how.add_argument("--pool", action="store_true", help="one AUC over the runs' scores")
    args = parser.parse_args()
    columns: dict[str, dict[str, list[float]]] = {}
    fakes: dict[str, int] = {}
    for group in args.groups:
        name, _, files = group.partition("=")
        if args.pool:
            pooled, counts = pooled_rows(files.split(","))
            columns[f"{name} (pooled over {len(files.split(','))} folds)"] = pooled
            fakes.update(counts)
            continue
        rows: dict[str, list[float]] = defaultdict(list)
        for file in files.split(","):
            run = json.loads(Path(file).read_text())
            rows["all clips"].append(run["auc"])
            fakes["all clips"] = run["fakes"]
            for part, key in (("per_kind", "kind"), ("per_generator", "generator")):
                for entry in run[part]:
                    label = f"{key}: {entry[key]}"
                    rows[label].append(entry["auc"])
                    fakes[label] = entry["fakes"]
        columns[f"{name} ({len(files.split(','))} runs)"] = rows
        if args.ensemble:
            columns[f"{name}, ensemble"] = ensemble_rows(files.split(","))
    names = list(columns)
    print("| video AUC vs all reals | fakes | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    labels = sorted({label for rows in columns.values() for label in rows}, key=_order)
    for label in labels:
        cells = [cell(columns[n].get(label, [])) for n in names]
        print(f"| {label} | {fakes[label]} | " + " | ".join(cells) + " |")


def ensemble_rows(files: list[str]) -> dict[str, list[float]]:
    """The AUC rows of one model scoring each clip by the mean of the runs' scores."""
    runs = [json.loads(Path(file).read_text()) for file in files]
    folders = {run["folder"] for run in runs}
    if len(folders) != 1:
        raise SystemExit(f"realworld_table: {files[0]}: runs scored different folders {folders}")
    samples = eval_realworld.load_samples(Path(folders.pop()))
    common = set.intersection(*(set(run["scores"]) for run in runs))
    scores = {i: float(np.mean([run["scores"][i] for run in runs])) for i in common}
    return auc_rows(samples, scores)[0]


def pooled_rows(files: list[str]) -> tuple[dict[str, list[float]], dict[str, int]]:
    """The AUC rows of the runs' scores taken together (disjoint held-out clips), and the
    number of fakes behind each row."""
    samples, scores = [], {}
    for file in files:
        run = json.loads(Path(file).read_text())
        samples += eval_realworld.load_samples(Path(run["folder"]))
        if set(scores) & set(run["scores"]):
            raise SystemExit(f"realworld_table: {file}: a clip is scored by two folds")
        scores.update(run["scores"])
    return auc_rows(samples, scores)


def auc_rows(
    samples: list, scores: dict[str, float]
) -> tuple[dict[str, list[float]], dict[str, int]]:
    """The AUC rows (overall, per kind, per generator) and the number of fakes behind each."""
    rows: dict[str, list[float]] = {"all clips": [eval_realworld.auc_or_none(samples, scores)]}
    counts = {"all clips": sum(s.label == 1 for s in samples)}
    for key in ("kind", "generator"):
        for entry in eval_realworld.group_table(samples, scores, key):
            rows[f"{key}: {entry[key]}"] = [entry["auc"]]
            counts[f"{key}: {entry[key]}"] = entry["fakes"]
    return rows, counts


def _order(label: str) -> tuple[int, str]:
    return (0 if label == "all clips" else 1 if label.startswith("kind") else 2, label)


if __name__ == "__main__":
    main()
