"""One training manifest: the synthetic corpus's train/dev beside realworld-train's (re-encoded).

Usage: python scripts/make_realworld_manifest.py OUT.jsonl --realworld DIR
           [--synth DIR | --synth-manifest FOLD.jsonl] [--synth-limit N] [--hold-out K/G]
           [--force]

- ``--realworld DIR``: a labelled folder (``avdf.datasets.realworld``), normally the output of
  ``scripts/reencode_corpus.py`` over ``../shared/realworld-train``. Its ``train`` / ``dev``
  splits are by generator family (dev: FLOAT, StyleSync, DeepFaceLive and the same share of
  the reals). Within each split the real-world part is balanced: while fakes outnumber reals,
  one fake of the family with the most fakes left is dropped (so no family dominates either);
  while reals outnumber fakes, the extra re-encoded copies (``<id>~k``, highest k first) go.
- ``--synth DIR``: an ``avdf synth`` corpus (LAV-DF layout); its ``train`` and ``dev`` splits
  are kept, ``test`` is left out. Or ``--synth-manifest``: a source-disjoint fold
  (``scripts/make_folds.py``), whose train / dev rows are kept. ``--synth-limit N`` keeps the
  first N videos of each synthetic split (smoke runs). A synthetic video cut from, or borrowing
  an edit from, a real-world clip outside the train split (an extra-people corpus built from
  realworld-train's reals, ``scripts/make_folds.py --extra-train``) is left out: its person is
  in dev or held out.
- ``--hold-out K/G``: leave generators out. The real-world clips' fake families are dealt into
  G groups (``realworld.logo_folds(samples, n_groups=G)``); group K's fakes and its share of the
  reals (one re-encoded copy each) become the manifest's ``test`` split and are in neither
  train nor dev. Train on it, then score that split (``scripts/eval_realworld.py OUT.jsonl``);
  the G runs' pooled scores give a leave-generators-out AUC on realworld-train.

``realworld-dev`` must never be given here: it is for measuring only. The manifest is written
atomically; an existing one is kept unless ``--force``. Prints the counts per split and part.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from avdf.atomic import atomic_path
from avdf.datasets import load_dataset
from avdf.datasets.realworld import copy_index, logo_folds, source_file
from avdf.errors import AvdfError, InputError
from avdf.evaluation.folds import donor_names
from avdf.types import Sample, read_manifest, write_manifest

SPLITS: tuple[str, ...] = ("train", "dev")
HELD_OUT = "test"
MEASURING_ONLY = "realworld-dev"


def balance(samples: Sequence[Sample]) -> list[Sample]:
    """The samples with as many reals as fakes, dropping as the module docstring says."""
    fakes = [s for s in samples if s.label == 1]
    reals = [s for s in samples if s.label == 0]
    while len(fakes) > len(reals) > 0:
        families = Counter(str(s.extra.get("family")) for s in fakes)
        largest = max(families.items(), key=lambda item: (item[1], item[0]))[0]
        last = max((s for s in fakes if str(s.extra.get("family")) == largest), key=lambda s: s.id)
        fakes.remove(last)
    reals.sort(key=lambda s: (copy_index(s), s.id))
    reals = reals[: max(len(fakes), len(reals) - sum(copy_index(s) > 0 for s in reals))]
    kept = {s.id for s in fakes + reals}
    return [s for s in samples if s.id in kept]


def hold_out(samples: Sequence[Sample], spec: str | None) -> tuple[list[Sample], list[Sample]]:
    """(kept, held out) for ``--hold-out K/G``: the held-out clips, one copy per real, in the
    ``test`` split; every copy of a held-out real is dropped from the kept ones."""
    if spec is None:
        return list(samples), []
    k_text, _, g_text = spec.partition("/")
    if not (k_text.isdigit() and g_text.isdigit() and int(k_text) < int(g_text)):
        raise ValueError(f"--hold-out: expected K/G with 0 <= K < G, got {spec!r}")
    fold = logo_folds(samples, n_groups=int(g_text))[int(k_text)]
    held = {s.id for s in fold.test}
    kept = [s for s in samples if s.id not in held]
    test = [replace(s, split=HELD_OUT) for s in fold.test if copy_index(s) == 0]
    print(f"held out: {fold.family}")
    return kept, test


def made_from(sample: Sample) -> set[str]:
    """File names of the clips a synthetic video was cut from or borrowed an edit from."""
    extra = sample.extra
    names = {str(extra[key]) for key in ("source", "speaker") if extra.get(key)}
    return {Path(name).name for name in names | donor_names(sample)}


def without_held_people(
    synthetic: Sequence[Sample], real_world: Sequence[Sample]
) -> tuple[list[Sample], int]:
    """(kept, how many left out): a synthetic video made from a real-world clip that is
    outside the train split (e.g. an extra-people corpus built from realworld-train's reals)
    would show a dev or held-out person to training."""
    held = {source_file(s) for s in real_world if s.split != "train"}
    kept = [s for s in synthetic if not made_from(s) & held]
    return kept, len(synthetic) - len(kept)


def synthetic_part(synth: Path | None, fold: Path | None, limit: int | None) -> list[Sample]:
    if synth is None and fold is None:
        return []
    out = []
    for split in SPLITS:
        if fold is not None:
            samples = [s for s in read_manifest(str(fold)) if s.split == split]
        else:
            samples = load_dataset("lavdf", synth, split=split)
        out.extend(samples[:limit])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="manifest to write (JSONL)")
    parser.add_argument("--realworld", type=Path, required=True)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--synth", type=Path, default=None)
    group.add_argument("--synth-manifest", type=Path, default=None)
    parser.add_argument("--synth-limit", type=int, default=None, metavar="N")
    parser.add_argument(
        "--hold-out", metavar="K/G", default=None, help="test split: generator group K of G"
    )
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    try:
        if MEASURING_ONLY in args.realworld.resolve().parts:
            raise InputError(args.realworld, "realworld-dev is for measuring only, never training")
        real_world, held_out = hold_out(load_dataset("realworld", args.realworld), args.hold_out)
        real_world = [
            s for split in SPLITS for s in balance([r for r in real_world if r.split == split])
        ]
        real_world += held_out
        synthetic = synthetic_part(args.synth, args.synth_manifest, args.synth_limit)
        synthetic, left_out = without_held_people(synthetic, real_world)
        samples = synthetic + real_world
        ids = Counter(s.id for s in samples)
        clash = next((i for i, n in ids.items() if n > 1), None)
        if clash is not None:
            raise InputError(args.out, f"video id {clash!r} is in both parts")
        with atomic_path(args.out, force=args.force) as tmp:
            write_manifest(samples, str(tmp))
    except (AvdfError, OSError, ValueError) as e:
        print(f"make_realworld_manifest: {e}", file=sys.stderr)
        return 1
    print("| split | part | fake | real |")
    print("|---|---|---|---|")
    for split in (*SPLITS, HELD_OUT):
        for part, group_samples in (("synthetic", synthetic), ("real-world", real_world)):
            chosen = [s for s in group_samples if s.split == split]
            n_fake = sum(s.label == 1 for s in chosen)
            print(f"| {split} | {part} | {n_fake} | {len(chosen) - n_fake} |")
    if left_out:
        print(
            f"left out {left_out} synthetic videos made from real-world clips outside the train"
            " split (their people are in dev or held out)"
        )
    print(f"-> {args.out} ({len(samples)} videos)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
