"""Source-disjoint folds of a synthetic corpus, as manifests a training config can read.

Usage: python scripts/make_folds.py CORPUS OUT_DIR [--k 5] [--extra-train CORPUS2] [--force]

CORPUS is an ``avdf synth`` folder (LAV-DF layout, metadata.json). Writes OUT_DIR/fold<k>.jsonl
(every video of the corpus with split train / dev / test for that fold) and OUT_DIR/folds.json
(the people in each fold, video counts, videos left out because a donor face or voice belongs
to the test fold); the rules are in ``avdf.evaluation.folds``. ``--extra-train CORPUS2`` adds
every video of a second corpus (other people, e.g. ``avdf synth --source-media`` over other real
clips) to each fold's train split, ids prefixed with CORPUS2's folder name: preprocess the
fold manifest itself (``avdf preprocess OUT_DIR/fold0.jsonl --out CACHE``) to cache them.
Then, per fold::

    data.manifest: OUT_DIR/fold0.jsonl   (train_split: train, val_split: dev)
    avdf tune CKPT --manifest OUT_DIR/fold0.jsonl --split dev --cache CACHE
    avdf evaluate --manifest OUT_DIR/fold0.jsonl --split test --checkpoint TUNED --cache CACHE \
        --out RUNS/<variant>/fold0/seed<s> --json RUNS/<variant>/fold0/seed<s>/scores.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from avdf.errors import AvdfError
from avdf.evaluation.folds import folds_of_corpus, write_folds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--k", type=int, default=5, help="number of folds (default 5)")
    parser.add_argument(
        "--extra-train", type=Path, help="a corpus of other people added to every fold's train"
    )
    parser.add_argument("--force", action="store_true", help="overwrite existing fold files")
    args = parser.parse_args(argv)
    try:
        folds = folds_of_corpus(args.corpus, args.k, extra_train=args.extra_train)
        write_folds(folds, args.out, force=args.force)
    except (AvdfError, ValueError) as e:
        print(f"make_folds: {e}", file=sys.stderr)
        return 1
    print("| fold | test people | train (extra people) | dev | test | left out |")
    print("|---|---|---|---|---|---|")
    for f in folds:
        train, dev, test = (len(f.split(s)) for s in ("train", "dev", "test"))
        print(f"| {f.index} | {len(f.test_units)} | {train} ({f.extra_train}) | {dev} | {test}"
              f" | {len(f.left_out)} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
