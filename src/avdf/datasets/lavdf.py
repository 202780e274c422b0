"""LAV-DF (Cai et al., DICTA 2022): ``metadata.json`` -> samples.

Layout::

    ROOT/metadata.json          list of records, one per video
    ROOT/{train,dev,test}/NNNNNN.mp4

A record: ``file`` (``test/000001.mp4``), ``split``, ``fake_periods`` ([[start, end], ...]
seconds), ``n_fakes``, ``duration``, ``original``, ``modify_video``, ``modify_audio``,
``video_frames``, ``audio_frames``, ``audio_channels`` and optionally ``timestamps`` /
``transcript``. LAV-DF says which modality was modified per video, not per segment, so a
modified modality is labelled fake over every fake period. The avdf synthetic corpus uses
this layout and adds per-modality ``audio_fake_segments`` / ``visual_fake_segments``, which
take precedence over the flags when present.
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
from avdf.errors import MetadataError
from avdf.types import Sample

NAME = "lavdf"
SPLITS: tuple[str, ...] = ("train", "dev", "test")
METADATA_FILE = "metadata.json"

# Fields this adapter interprets; everything else is passed through in Sample.extra.
_CONSUMED = {
    "file",
    "split",
    "fake_periods",
    "n_fakes",
    "duration",
    "modify_video",
    "modify_audio",
    "audio_fake_segments",
    "visual_fake_segments",
    "extra",
}
# Word-level alignments are large and unused by the models: kept out of manifests.
_DROPPED = {"timestamps", "transcript"}


def load(root: str | Path, split: str | None = None, subset: str = "full") -> list[Sample]:
    """All LAV-DF videos of ``split`` (None: every split) in metadata order.

    ``subset`` selects a published evaluation subset: ``full``, ``visual`` (clips where only
    the audio was modified are dropped) or ``audio`` (clips where only the video was
    modified are dropped).
    """
    root = require_dir(root)
    path = root / METADATA_FILE
    records = read_json(path)
    if not isinstance(records, list):
        raise MetadataError(
            path, "-", "-", f"expected a list of records, got {type(records).__name__}"
        )
    samples = []
    for index, record in enumerate(records):
        sample = parse_record(path, root, index, record)
        if split is None or sample.split == split:
            samples.append(sample)
    return select_subset(samples, subset)


def parse_record(path: Path, root: Path, index: int, record: Any) -> Sample:
    """One metadata record -> Sample; MetadataError names the record and field on failure."""
    if not isinstance(record, Mapping):
        raise MetadataError(path, f"#{index}", "-", "expected a JSON object")
    name = str(record.get("file") or f"#{index}")
    r = RecordReader(path, record, name)
    file = r.relative_file("file")
    split = r.choice("split", SPLITS)
    duration = r.number("duration", positive=True)
    fake_segments = r.segments("fake_periods")
    n_fakes = r.integer("n_fakes")
    if n_fakes != len(fake_segments):
        raise r.error("n_fakes", f"{n_fakes} but fake_periods lists {len(fake_segments)}")
    modify_video, modify_audio = r.boolean("modify_video"), r.boolean("modify_audio")
    if fake_segments and not (modify_video or modify_audio):
        raise r.error("modify_video", "fake periods given but neither modality is modified")

    # Per-video flags -> per-modality segments; explicit per-modality lists win.
    audio = r.segments("audio_fake_segments") if r.has("audio_fake_segments") else None
    visual = r.segments("visual_fake_segments") if r.has("visual_fake_segments") else None
    if audio is None:
        audio = fake_segments if modify_audio else ()
    if visual is None:
        visual = fake_segments if modify_video else ()

    extra = {k: v for k, v in record.items() if k not in _CONSUMED | _DROPPED}
    nested = record.get("extra")
    if isinstance(nested, Mapping):
        extra.update(nested)
    extra.update(file=file, modify_video=modify_video, modify_audio=modify_audio)
    return Sample(
        id=strip_video_suffix(file),
        dataset=NAME,
        split=split,
        path=str(root / file),
        duration=duration,
        label=1 if fake_segments else 0,
        fake_segments=fake_segments,
        audio_fake_segments=audio,
        visual_fake_segments=visual,
        extra=extra,
    )
