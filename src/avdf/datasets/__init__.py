"""Dataset adapters: official metadata -> ``list[Sample]``, nothing else.

>>> samples = load_dataset("lavdf", "/data/LAV-DF", split="test", subset="visual")

Each adapter module exposes ``NAME``, ``SPLITS`` (the dataset's own split names) and
``load(root, split=None, **options)``. Split names are the dataset's own (LAV-DF ``dev``,
AV-Deepfake1M ``val``, TVIL ``valid``); :func:`load_dataset` also accepts ``val``, ``dev``,
``valid`` and ``validation`` for whichever one a dataset uses, so configs can say ``val``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from avdf.datasets import avdeepfake1m, fakeavceleb, folder, lavdf, realworld, tvil
from avdf.types import Sample

_VALIDATION_ALIASES = frozenset({"val", "dev", "valid", "validation"})


@dataclass(frozen=True)
class DatasetAdapter:
    name: str
    splits: tuple[str, ...]
    load: Callable[..., list[Sample]]
    description: str

    def canonical_split(self, split: str) -> str:
        """The dataset's own name for ``split`` (``val`` -> ``dev`` on LAV-DF)."""
        if split in self.splits:
            return split
        if split in _VALIDATION_ALIASES:
            own = [s for s in self.splits if s in _VALIDATION_ALIASES]
            if own:
                return own[0]
        raise ValueError(
            f"dataset {self.name!r} has no split {split!r} (splits: {', '.join(self.splits)})"
        )


def _adapter(module: ModuleType, description: str) -> DatasetAdapter:
    return DatasetAdapter(module.NAME, module.SPLITS, module.load, description)


DATASETS: dict[str, DatasetAdapter] = {
    a.name: a
    for a in (
        _adapter(lavdf, "LAV-DF: metadata.json, per-video modality flags"),
        _adapter(avdeepfake1m, "AV-Deepfake1M: {train,val}_metadata.json + test_files.txt"),
        _adapter(fakeavceleb, "FakeAVCeleb v1.2: meta_data.csv, identity-disjoint splits"),
        _adapter(tvil, "TVIL: metadata.json keyed by video id (visual inpainting)"),
        _adapter(folder, "any folder of videos with an optional labels.csv/labels.json"),
        _adapter(realworld, "labels.tsv with whole-video labels per generator (realworld-*)"),
    )
}


def load_dataset(name: str, root: str | Path, split: str | None = None, **kw: Any) -> list[Sample]:
    """Samples of dataset ``name`` under ``root``; ``split`` None means every split.

    Extra keyword options go to the adapter (``subset=`` for lavdf / avdeepfake1m,
    ``probe_durations=`` for fakeavceleb / folder, ``labels=`` for folder). Raises
    ``InputError`` for a missing root or metadata file, ``MetadataError`` naming the record
    and field for malformed metadata, ``ValueError`` for an unknown name, split or option.
    """
    adapter = DATASETS.get(name)
    if adapter is None:
        raise ValueError(f"unknown dataset {name!r} (known: {', '.join(DATASETS)})")
    canonical = None if split is None else adapter.canonical_split(split)
    options = set(inspect.signature(adapter.load).parameters) - {"root", "split"}
    unknown = sorted(set(kw) - options)
    if unknown:
        raise ValueError(
            f"dataset {name!r} has no option {unknown[0]!r} (options: {', '.join(sorted(options))})"
        )
    return adapter.load(root, canonical, **kw)


__all__ = ["DATASETS", "DatasetAdapter", "load_dataset"]
