"""LightningDataModule over cached videos: samples from a dataset adapter (name + root) or
a JSONL manifest, filtered by split, windowed by :class:`WindowDataset`.

Samplers are left to Lightning, so the same module works on one CPU and under DDP.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path

import lightning as L
from torch.utils.data import DataLoader

from avdf.data.augment import Augmentation
from avdf.data.dataset import WindowDataset, collate
from avdf.timebase import MediaSpec
from avdf.types import Sample, read_manifest


def load_samples(
    dataset: str | None, root: str | Path | None, manifest: str | Path | None, split: str
) -> list[Sample]:
    """The samples of ``split`` from a dataset adapter or from a manifest."""
    if manifest is not None:
        return [s for s in read_manifest(str(manifest)) if s.split == split]
    if dataset is None or root is None:
        raise ValueError("give a dataset name and root, or a manifest")
    from avdf.datasets import load_dataset

    return list(load_dataset(dataset, root, split=split))


class AVDFDataModule(L.LightningDataModule):
    def __init__(
        self,
        cache_dir: str | Path,
        spec: MediaSpec,
        dataset: str | None = None,
        root: str | Path | None = None,
        manifest: str | Path | None = None,
        train_split: str = "train",
        val_split: str | None = "dev",
        window_steps: int = 64,
        batch_size: int = 8,
        num_workers: int = 0,
        windows_per_video: int = 4,
        fake_window_fraction: float = 0.5,
        whole_fake_factor: float = 1.0,
        val_hop_steps: int | None = None,
        in_memory: bool = False,
        augment: bool = False,
        experts: Sequence[str] = (),
        train_samples: Sequence[Sample] | None = None,
        val_samples: Sequence[Sample] | None = None,
    ) -> None:
        """``train_samples`` / ``val_samples`` bypass the dataset lookup (already loaded)."""
        super().__init__()
        self.cache_dir = Path(cache_dir)
        self.spec = spec
        self.dataset, self.root, self.manifest = dataset, root, manifest
        self.train_split, self.val_split = train_split, val_split
        self.window_steps = window_steps
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.windows_per_video = windows_per_video
        self.fake_window_fraction = fake_window_fraction
        self.whole_fake_factor = whole_fake_factor
        self.val_hop_steps = val_hop_steps
        self.in_memory = in_memory
        self.augment = augment
        self.experts = tuple(experts)  # expert streams the model needs from the cache
        self._train_samples = None if train_samples is None else list(train_samples)
        self._val_samples = None if val_samples is None else list(val_samples)
        self.train_set: WindowDataset | None = None
        self.val_set: WindowDataset | None = None

    def samples(self, split: str) -> list[Sample]:
        return load_samples(self.dataset, self.root, self.manifest, split)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None and stage in (None, "fit"):
            samples = self._train_samples
            if samples is None:
                samples = self.samples(self.train_split)
            self.train_set = WindowDataset(
                samples,
                self.cache_dir,
                self.spec,
                self.window_steps,
                train=True,
                windows_per_video=self.windows_per_video,
                fake_window_fraction=self.fake_window_fraction,
                whole_fake_factor=self.whole_fake_factor,
                in_memory=self.in_memory,
                augment=Augmentation() if self.augment else None,
                experts=self.experts,
            )
        if self.val_set is None and stage in (None, "fit", "validate"):
            samples = self._val_samples
            if samples is None and self.val_split is not None:
                samples = self.samples(self.val_split)
            if samples:
                self.val_set = WindowDataset(
                    samples,
                    self.cache_dir,
                    self.spec,
                    self.window_steps,
                    train=False,
                    hop_steps=self.val_hop_steps,
                    in_memory=self.in_memory,
                    experts=self.experts,
                )

    def _loader(self, dataset: WindowDataset, shuffle: bool) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            collate_fn=partial(collate, window_steps=self.window_steps),
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        assert self.train_set is not None, "call setup('fit') first"
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        if self.val_set is None or len(self.val_set) == 0:
            return []
        return self._loader(self.val_set, shuffle=False)
