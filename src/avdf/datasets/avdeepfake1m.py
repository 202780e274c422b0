"""AV-Deepfake1M (Cai et al., ACM MM 2024): per-split metadata lists -> samples.

Layout::

    ROOT/train_metadata.json    list of records for ROOT/train/<file>
    ROOT/val_metadata.json      list of records for ROOT/val/<file>
    ROOT/test_files.txt         one relative path per line for ROOT/test/<file> (unlabelled)

A record: ``file``, ``original``, ``split``, ``modify_type`` (``real``, ``visual_modified``,
``audio_modified``, ``both_modified``; the official loader spells the last one
``both-modified``, both are accepted), ``fake_segments``, ``audio_fake_segments``,
``visual_fake_segments``, ``video_frames``, ``audio_frames`` (and ``audio_model``, kept in
``extra``). The dataset is 25 fps, so without a ``duration`` field the duration is
``video_frames / 25``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from avdf.datasets._common import (
    RecordReader,
    read_json,
    require_dir,
    select_subset,
    strip_video_suffix,
)
from avdf.errors import InputError, MetadataError
from avdf.types import Sample

NAME = "avdeepfake1m"
SPLITS: tuple[str, ...] = ("train", "val", "test")
FPS = 25  # every AV-Deepfake1M video is 25 fps
TEST_LIST = "test_files.txt"

MODIFY_TYPES: tuple[str, ...] = (
    "real",
    "visual_modified",
    "audio_modified",
    "both_modified",
    "both-modified",
)
_CONSUMED = {
    "file",
    "split",
    "modify_type",
    "fake_segments",
    "audio_fake_segments",
    "visual_fake_segments",
    "duration",
}


def load(root: str | Path, split: str | None = None, subset: str = "full") -> list[Sample]:
    """Videos of ``split`` (None: train, val and test) in metadata order.

    Test videos are unlabelled (``label`` None, no segments). ``subset`` is the LAV-DF-style
    modality subset (``full``, ``visual``, ``audio``; see :func:`select_subset`).
    """
    root = require_dir(root)
    samples: list[Sample] = []
    for name in SPLITS if split is None else (split,):
        if name == "test":
            samples.extend(_load_test(root, required=split == "test"))
        else:
            samples.extend(_load_labelled(root, name))
    return select_subset(samples, subset)


def _load_labelled(root: Path, split: str) -> list[Sample]:
    path = root / f"{split}_metadata.json"
    records = read_json(path)
    if not isinstance(records, list):
        raise MetadataError(
            path, "-", "-", f"expected a list of records, got {type(records).__name__}"
        )
    return [parse_record(path, root, split, i, record) for i, record in enumerate(records)]


def _load_test(root: Path, required: bool) -> list[Sample]:
    path = root / TEST_LIST
    if not path.is_file():
        # Many copies ship only train/val; asking for everything should still work.
        if required:
            raise InputError(path, "test file list not found")
        return []
    samples = []
    with path.open(encoding="utf-8") as f:
        for line_number, line in enumerate(f, start=1):
            file = line.strip().replace("\\", "/")
            if not file:
                continue
            reader = RecordReader(path, {"file": file}, f"line {line_number}")
            file = reader.relative_file("file")
            samples.append(
                Sample(
                    id=f"test/{strip_video_suffix(file)}",
                    dataset=NAME,
                    split="test",
                    path=str(root / "test" / file),
                    extra={"file": file},
                )
            )
    return samples


def parse_record(path: Path, root: Path, split: str, index: int, record: Any) -> Sample:
    """One labelled record -> Sample. Segments are per modality, so nothing is inferred."""
    if not isinstance(record, Mapping):
        raise MetadataError(path, f"#{index}", "-", "expected a JSON object")
    r = RecordReader(path, record, str(record.get("file") or f"#{index}"))
    file = r.relative_file("file")
    record_split = r.string("split")
    if record_split != split:
        raise r.error("split", f"{record_split!r} in {path.name}")
    modify_type = r.choice("modify_type", MODIFY_TYPES).replace("-", "_")
    fake = r.segments("fake_segments")
    audio = r.segments("audio_fake_segments")
    visual = r.segments("visual_fake_segments")
    # The type and the per-modality lists must agree, or the modality heads learn noise.
    if (modify_type in ("audio_modified", "both_modified")) != bool(audio):
        raise r.error("audio_fake_segments", f"inconsistent with modify_type {modify_type!r}")
    if (modify_type in ("visual_modified", "both_modified")) != bool(visual):
        raise r.error("visual_fake_segments", f"inconsistent with modify_type {modify_type!r}")
    if (modify_type != "real") != bool(fake):
        raise r.error("fake_segments", f"inconsistent with modify_type {modify_type!r}")
    if r.has("duration"):
        duration = r.number("duration", positive=True)
    else:
        duration = r.integer("video_frames") / FPS
        if duration <= 0:
            raise r.error("video_frames", "is 0")

    extra = {k: v for k, v in record.items() if k not in _CONSUMED}
    extra.update(file=file, modify_type=modify_type)
    return Sample(
        id=f"{split}/{strip_video_suffix(file)}",
        dataset=NAME,
        split=split,
        path=str(root / split / file),
        duration=duration,
        label=1 if fake else 0,
        fake_segments=fake,
        audio_fake_segments=audio,
        visual_fake_segments=visual,
        extra=extra,
    )
