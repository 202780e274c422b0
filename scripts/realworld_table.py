"""Mean ± sd over runs of the real-world video AUCs that ``scripts/eval_realworld.py --json``
writes: overall, per kind and per generator, one column per group of runs.

Usage: python scripts/realworld_table.py NAME=RUN.json[,RUN.json...] [NAME=...]

Each NAME is a column (e.g. a training recipe), each of its JSON files one trained model
(fold x seed). Measuring only: the numbers come from sets nothing was fitted on.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np


def cell(values: list[float]) -> str:
    v = np.array(values, dtype=float)
    v = v[np.isfinite(v)]
    return f"{v.mean():.2f} ± {v.std():.2f}" if len(v) else "–"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("groups", nargs="+", help="NAME=RUN.json[,RUN.json...]")
    args = parser.parse_args()
    columns: dict[str, dict[str, list[float]]] = {}
    fakes: dict[str, int] = {}
    for group in args.groups:
        name, _, files = group.partition("=")
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
    names = list(columns)
    print("| video AUC vs all reals | fakes | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    labels = sorted({label for rows in columns.values() for label in rows}, key=_order)
    for label in labels:
        cells = [cell(columns[n].get(label, [])) for n in names]
        print(f"| {label} | {fakes[label]} | " + " | ".join(cells) + " |")


def _order(label: str) -> tuple[int, str]:
    return (0 if label == "all clips" else 1 if label.startswith("kind") else 2, label)


if __name__ == "__main__":
    main()
