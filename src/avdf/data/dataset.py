"""Windows of cached videos as a torch Dataset, and the collate function that turns them
into model inputs plus padded targets.

Training draws ``windows_per_video`` random windows per video per epoch, half of them (by
default) placed so that they contain a fake step, because fake segments are short and a
uniformly placed window would mostly see real steps. Evaluation tiles every video
deterministically. Only the steps of a window are read from the cache.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from avdf.data.batch import features_to_inputs
from avdf.data.targets import (
    StepTargets,
    effective_fake_segments,
    fake_coverage,
    step_targets,
)
from avdf.errors import InputError
from avdf.preprocess.cache import CacheReader, cache_path_for, is_complete, require_experts
from avdf.preprocess.features import VideoFeatures
from avdf.timebase import MediaSpec
from avdf.types import Sample

# A fake whose fake steps cover at least this share of it counts as a whole-clip fake.
WHOLE_FAKE_COVERAGE = 0.9

log = logging.getLogger(__name__)


def missing_from_cache(samples: Sequence[Sample], cache_dir: str | Path) -> list[Sample]:
    """Samples whose cache file is absent or incomplete."""
    return [s for s in samples if not is_complete(cache_path_for(cache_dir, s.id))]


@dataclass(frozen=True)
class WindowItem:
    features: VideoFeatures  # the window's inputs (n <= window_steps steps)
    targets: StepTargets  # the same steps' targets
    video_index: int  # position of the video in the dataset's ``samples``


class WindowDataset(Dataset):
    """Windows of ``window_steps`` steps over the cached videos of ``samples``.

    ``train=True``: each video gives ``windows_per_video`` items, a whole-clip fake (fake
    steps cover at least ``WHOLE_FAKE_COVERAGE`` of it) ``round(windows_per_video *
    whole_fake_factor)``; each item is a random window of its video (redrawn at every
    access, from torch's RNG, which Lightning seeds per worker). The factor oversamples
    whole-clip fakes, whose evidence cannot be a seam or a contrast within the window.
    ``train=False``: windows start every ``hop_steps`` (default ``window_steps``) steps and
    cover each video exactly; the item list is fixed.

    Videos missing from the cache and unlabelled videos are skipped with one warning line.
    A cache made with another MediaSpec is an :class:`InputError`.

    ``in_memory=True`` reads each video whole on its first access and serves later windows
    from RAM (one copy per loader process), instead of decompressing every window again.
    ``augment`` (training only) transforms each window's inputs (:mod:`avdf.data.augment`).
    ``experts``: expert streams (:mod:`avdf.experts`) the model needs; a cache without them
    is an :class:`InputError` naming the file (never zeros in their place).
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        cache_dir: str | Path,
        spec: MediaSpec,
        window_steps: int = 64,
        train: bool = True,
        windows_per_video: int = 1,
        fake_window_fraction: float = 0.5,
        whole_fake_factor: float = 1.0,
        hop_steps: int | None = None,
        in_memory: bool = False,
        augment: Callable[[VideoFeatures], VideoFeatures] | None = None,
        experts: Sequence[str] = (),
    ) -> None:
        if window_steps < 1 or windows_per_video < 1 or whole_fake_factor <= 0:
            raise ValueError(
                "window_steps, windows_per_video and whole_fake_factor must be positive"
            )
        self.cache_dir = Path(cache_dir)
        self.spec = spec
        self.window_steps = window_steps
        self.train = train
        self.fake_window_fraction = fake_window_fraction
        self.hop_steps = hop_steps or window_steps
        self.in_memory = in_memory
        self.augment = augment if train else None
        self.experts = tuple(experts)
        self._memory: dict[int, VideoFeatures] = {}  # video index -> whole video

        labelled = [s for s in samples if s.label is not None]
        missing = missing_from_cache(labelled, self.cache_dir)
        missing_ids = {s.id for s in missing}
        if missing or len(labelled) < len(samples):
            log.warning(
                "skipping %d of %d videos: %d not in the cache %s, %d unlabelled",
                len(missing) + len(samples) - len(labelled),
                len(samples),
                len(missing),
                self.cache_dir,
                len(samples) - len(labelled),
            )
        kept = [s for s in labelled if s.id not in missing_ids]
        steps = [self._check_cache(s) for s in kept]
        # A video shorter than one step has nothing to learn from.
        self.samples: list[Sample] = [s for s, n in zip(kept, steps, strict=True) if n > 0]
        self.n_steps: list[int] = [n for n in steps if n > 0]
        # the video of every training item
        self._item_videos: list[int] = []
        if train:
            whole_windows = max(1, round(windows_per_video * whole_fake_factor))
            for v, (sample, n) in enumerate(zip(self.samples, self.n_steps, strict=True)):
                whole = fake_coverage(sample, spec, n) >= WHOLE_FAKE_COVERAGE
                self._item_videos.extend([v] * (whole_windows if whole else windows_per_video))
        # (video index, first step) of every evaluation window
        self._tiles: list[tuple[int, int]] = []
        if not train:
            for v, n in enumerate(self.n_steps):
                starts = range(0, max(1, n - self.window_steps + self.hop_steps), self.hop_steps)
                self._tiles.extend((v, s) for s in starts)

    def _check_cache(self, sample: Sample) -> int:
        path = cache_path_for(self.cache_dir, sample.id)
        reader = CacheReader(path)
        if reader.spec != self.spec:
            raise InputError(
                path,
                f"cached with {reader.spec}, the config asks for {self.spec}; "
                "rerun avdf preprocess --force with the config's media settings",
            )
        require_experts(path, reader.meta, self.experts)
        return int(reader.n_steps)

    @property
    def video_labels(self) -> list[int]:
        return [int(s.label) for s in self.samples]  # type: ignore[arg-type]

    def __len__(self) -> int:
        return len(self._item_videos) if self.train else len(self._tiles)

    def _random_start(self, video: int) -> int:
        n = self.n_steps[video]
        last_start = max(0, n - self.window_steps)
        if last_start == 0:
            return 0
        sample = self.samples[video]
        if float(torch.rand(())) < self.fake_window_fraction:
            fake_steps = [
                r
                for seg in effective_fake_segments(sample, self.spec, n)
                if len(r := self.spec.segment_steps(seg, n))
            ]
            if fake_steps:
                # A random fake step, then a random window position that contains it.
                rng = fake_steps[int(torch.randint(len(fake_steps), ()))]
                step = rng[int(torch.randint(len(rng), ()))]
                lo, hi = max(0, step - self.window_steps + 1), min(step, last_start)
                return int(torch.randint(lo, hi + 1, ()))
        return int(torch.randint(last_start + 1, ()))

    def _read(self, video: int, start: int, stop: int) -> VideoFeatures:
        path = cache_path_for(self.cache_dir, self.samples[video].id)
        if not self.in_memory:
            return CacheReader(path).read(start, stop)
        whole = self._memory.get(video)
        if whole is None:
            whole = self._memory[video] = CacheReader(path).read()
        return whole.slice(start, stop)

    def __getitem__(self, index: int) -> WindowItem:
        if self.train:
            video = self._item_videos[index]
            start = self._random_start(video)
        else:
            video, start = self._tiles[index]
        sample = self.samples[video]
        stop = min(start + self.window_steps, self.n_steps[video])
        features = self._read(video, start, stop)
        if self.augment is not None:
            features = self.augment(features)
        targets = step_targets(sample, self.spec, self.n_steps[video]).slice(start, stop)
        return WindowItem(features, targets, video)


def collate(
    items: Sequence[WindowItem], window_steps: int | None = None
) -> dict[str, torch.Tensor]:
    """Model inputs (see :func:`avdf.data.batch.features_to_inputs`) plus padded targets.

    Adds ``fake`` (B, T), ``boundaries`` (B, T, 2), ``audio_fake`` / ``visual_fake`` /
    ``start`` / ``end`` (B, T)
    float32 (zero on padding), ``modality_known`` (B,) bool, ``video_target`` (B,) float32
    (1 when the window contains a fake step), ``video_known`` (B,) bool, ``video_label``
    (B,) long (the whole video's label) and ``video_index`` (B,) long.
    """
    batch = features_to_inputs([it.features for it in items], window_steps)
    b, t = batch["step_mask"].shape
    fake = np.zeros((b, t), np.float32)
    boundaries = np.zeros((b, t, 2), np.float32)
    audio_fake = np.zeros((b, t), np.float32)
    visual_fake = np.zeros((b, t), np.float32)
    start = np.zeros((b, t), np.float32)
    end = np.zeros((b, t), np.float32)
    for i, it in enumerate(items):
        n = min(it.targets.n_steps, t)
        fake[i, :n] = it.targets.fake[:n]
        boundaries[i, :n] = it.targets.boundaries[:n]
        audio_fake[i, :n] = it.targets.audio_fake[:n]
        visual_fake[i, :n] = it.targets.visual_fake[:n]
        start[i, :n] = it.targets.start[:n]
        end[i, :n] = it.targets.end[:n]
    # A window of a fake video that misses every fake segment is a real window.
    video_target = fake.max(axis=1) if t else np.zeros(b, np.float32)
    batch.update(
        fake=torch.from_numpy(fake),
        boundaries=torch.from_numpy(boundaries),
        audio_fake=torch.from_numpy(audio_fake),
        visual_fake=torch.from_numpy(visual_fake),
        start=torch.from_numpy(start),
        end=torch.from_numpy(end),
        modality_known=torch.tensor([it.targets.modality_known for it in items]),
        video_target=torch.from_numpy(np.ascontiguousarray(video_target)),
        video_known=torch.tensor([it.targets.video_label is not None for it in items]),
        video_label=torch.tensor([int(it.targets.video_label or 0) for it in items]),
        video_index=torch.tensor([it.video_index for it in items]),
    )
    return batch
