"""Source-disjoint folds of the synthetic corpus (DESIGN §12.4).

The corpus's own train / dev / test split puts two or three people in test, too few to tell
models apart. Here every video of the corpus (all splits) is re-split into K folds over its
*source*: for fold k, ``test`` = the videos of fold k's sources, ``dev`` = those of fold
k + 1 (mod K), ``train`` = the rest, so every source is in exactly one test fold.

Rules, in order:

* **Unit = person.** A video's unit is its source's person (``extra["speaker"]``, which groups
  clips of one person; else ``extra["source"]``, else ``original``, else the video's own
  id). Two clips of one person never sit on both sides of a fold.
* **Balanced.** Units are dealt to folds largest first (by number of videos), each to the
  fold with the fewest videos so far; ties by a hash of the unit name, so the assignment
  depends on the corpus only, not on file order.
* **Donors.** An edit may borrow material from another clip or speech file: a face swap's
  donor face, a spliced voice (``extra["edits"][i]["audio" | "visual"]["donor"]``). A donor
  that is a talking clip of the corpus counts as its person; any other donor (a speech file)
  is a unit of its own, dealt to a fold the same way. A **train or dev** video with a donor
  unit in the **test** fold is left out of that fold, so the test people's faces and voices
  are unseen in training and tuning. A test video keeps its donors from other folds (its
  main identity is unseen; the borrowed material is only inside its fake segment).

**Extra training people.** Videos of another corpus whose people are in no fold (e.g. a corpus
``avdf synth`` made from other real clips) may be added to every fold's ``train`` split
(``extra_train``): more people to learn from, the same dev and test people. Their ids carry a
prefix so they cannot collide with the corpus's own; one of them is left out of fold k when it
borrowed a voice that is one of fold k's test units.

Each fold is written as a JSONL manifest (``fold<k>.jsonl``, Samples with ``split`` rewritten
to train / dev / test) that ``data.manifest`` of a training config, ``avdf evaluate
--manifest`` and ``avdf tune --manifest`` read; sample ids are the corpus's own, so one
``avdf preprocess`` cache serves every fold. ``folds.json`` lists the units of each fold and
what was left out.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from avdf.types import Sample

FOLD_SPLITS = ("train", "dev", "test")
SUMMARY_FILE = "folds.json"


def fold_file(k: int) -> str:
    return f"fold{k}.jsonl"


def source_unit(sample: Sample) -> str:
    """The person (or source clip) a video was made from: the fold unit."""
    extra = sample.extra
    for key in ("speaker", "source", "original"):
        value = extra.get(key)
        if value:
            return str(value)
    return sample.id


def donor_names(sample: Sample) -> set[str]:
    """Names of the clips / speech files an edit of this video borrowed from."""
    names: set[str] = set()
    for edit in sample.extra.get("edits") or ():
        if not isinstance(edit, Mapping):
            continue
        for modality in ("audio", "visual"):
            part = edit.get(modality)
            if isinstance(part, Mapping) and part.get("donor"):
                names.add(str(part["donor"]))
    return names


def donor_units(sample: Sample, unit_of_source: Mapping[str, str]) -> set[str]:
    """Fold units of the video's donors, its own unit excluded."""
    units = {unit_of_source.get(name, name) for name in donor_names(sample)}
    units.discard(source_unit(sample))
    return units


def _stable(name: str) -> str:
    return hashlib.sha1(name.encode("utf-8")).hexdigest()


def assign_units(weights: Mapping[str, int], k: int) -> dict[str, int]:
    """unit -> fold: largest first, each to the lightest fold (ties: lowest fold index)."""
    load = [0] * k
    fold_of: dict[str, int] = {}
    for unit in sorted(weights, key=lambda u: (-weights[u], _stable(u))):
        target = min(range(k), key=lambda f: (load[f], f))
        fold_of[unit] = target
        load[target] += weights[unit]
    return fold_of


@dataclass
class Fold:
    index: int
    samples: list[Sample]  # split rewritten to train / dev / test
    test_units: list[str]
    dev_units: list[str]
    left_out: list[str] = field(default_factory=list)  # ids dropped for a test-fold donor
    extra_train: int = 0  # videos of extra people added to train

    def split(self, name: str) -> list[Sample]:
        return [s for s in self.samples if s.split == name]


def make_folds(
    samples: Sequence[Sample], k: int = 5, extra_train: Sequence[Sample] = ()
) -> list[Fold]:
    """K source-disjoint folds of ``samples`` (every split of the corpus), with the videos of
    ``extra_train`` (people in no fold, ids distinct from ``samples``') added to each fold's
    train split; see the module docstring for the rules."""
    if k < 3:
        raise ValueError(f"need at least 3 folds (train, dev and test each get one), got {k}")
    units = {s.id: source_unit(s) for s in samples}
    main_units = set(units.values())
    if len(main_units) < k:
        raise ValueError(f"{len(main_units)} sources cannot fill {k} folds")
    # A talking clip's name -> its person, so a donor clip counts as its person.
    unit_of_source = {str(s.extra["source"]): units[s.id] for s in samples if s.extra.get("source")}
    donors = {s.id: donor_units(s, unit_of_source) for s in samples}
    weights: dict[str, int] = {}
    for unit in units.values():
        weights[unit] = weights.get(unit, 0) + 1
    fold_of = assign_units(weights, k)
    # Donor-only units (speech files) get folds of their own, dealt by how often they are used.
    donor_weights: dict[str, int] = {}
    for used in donors.values():
        for unit in used - main_units:
            donor_weights[unit] = donor_weights.get(unit, 0) + 1
    fold_of.update(assign_units(donor_weights, k))

    folds = []
    for index in range(k):
        dev_index = (index + 1) % k
        kept, left_out = [], []
        for sample in samples:
            home = fold_of[units[sample.id]]
            role = "test" if home == index else "dev" if home == dev_index else "train"
            if role != "test" and any(fold_of[u] == index for u in donors[sample.id]):
                left_out.append(sample.id)
                continue
            kept.append(replace(sample, split=role, extra={**sample.extra, "fold": index}))
        added = 0
        for sample in extra_train:
            if any(fold_of.get(u) == index for u in donor_units(sample, unit_of_source)):
                left_out.append(sample.id)
                continue
            kept.append(replace(sample, split="train", extra={**sample.extra, "fold": index}))
            added += 1
        test_units = sorted(u for u in main_units if fold_of[u] == index)
        dev_units = sorted(u for u in main_units if fold_of[u] == dev_index)
        folds.append(Fold(index, kept, test_units, dev_units, left_out, added))
    return folds


def write_folds(folds: Iterable[Fold], out_dir: str | Path, force: bool = False) -> list[Path]:
    """``fold<k>.jsonl`` per fold and ``folds.json`` (units, counts, left-out ids) under
    ``out_dir``, each written atomically; existing files are kept unless ``force``."""
    from avdf.atomic import write_text_atomic

    out = Path(out_dir)
    folds = list(folds)
    paths = [out / fold_file(f.index) for f in folds] + [out / SUMMARY_FILE]
    if not force:
        from avdf.errors import OutputExistsError

        for path in paths:
            if path.exists():
                raise OutputExistsError(path)
    summary: dict[str, Any] = {"k": len(folds), "folds": []}
    for fold, path in zip(folds, paths, strict=False):
        rows = "".join(json.dumps(s.to_dict()) + "\n" for s in fold.samples)
        write_text_atomic(path, rows)
        counts = {name: len(fold.split(name)) for name in FOLD_SPLITS}
        summary["folds"].append(
            {"fold": fold.index, "manifest": path.name, "videos": counts,
             "test_units": fold.test_units, "dev_units": fold.dev_units,
             "left_out": fold.left_out, "extra_train": fold.extra_train}
        )  # fmt: skip
    write_text_atomic(paths[-1], json.dumps(summary, indent=1) + "\n")
    return paths


def folds_of_corpus(
    root: str | Path, k: int = 5, dataset: str = "lavdf", extra_train: str | Path | None = None
) -> list[Fold]:
    """Every video of the corpus at ``root`` (all splits, paths absolute) in K folds; with
    ``extra_train``, every video of that corpus (same dataset kind) added to each fold's train
    split, its ids prefixed with the folder's name."""
    from avdf.datasets import load_dataset

    extra: list[Sample] = []
    if extra_train is not None:
        extra_root = Path(extra_train).resolve()
        extra = [
            replace(s, id=f"{extra_root.name}/{s.id}") for s in load_dataset(dataset, extra_root)
        ]
    return make_folds(load_dataset(dataset, Path(root).resolve()), k, extra)
