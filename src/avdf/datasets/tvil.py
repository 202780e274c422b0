"""TVIL (temporal video inpainting localization): ``metadata.json`` -> samples.

Layout::

    ROOT/metadata.json      {video_id: record, ...}
    ROOT/<file>             the video each record names (relative to ROOT)

A record: ``file``, ``split`` (``train``/``valid``/``test``), ``duration`` (seconds),
``fake_periods`` ([[start, end], ...] seconds), ``n_fakes`` and ``fps`` or ``video_frames``.
TVIL manipulates the visual stream only (inpainting), so audio is labelled real and the
visual segments are the fake periods.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from avdf.datasets._common import RecordReader, read_json, require_dir
from avdf.errors import MetadataError
from avdf.types import Sample

NAME = "tvil"
SPLITS: tuple[str, ...] = ("train", "valid", "test")
METADATA_FILE = "metadata.json"
_CONSUMED = {"file", "split", "duration", "fake_periods", "n_fakes"}


def load(root: str | Path, split: str | None = None) -> list[Sample]:
    """TVIL videos of ``split`` (None: all) in the metadata file's key order."""
    root = require_dir(root)
    path = root / METADATA_FILE
    records = read_json(path)
    if not isinstance(records, Mapping):
        raise MetadataError(
            path, "-", "-", f"expected an object keyed by video id, got {type(records).__name__}"
        )
    samples = []
    for video_id, record in records.items():
        if not isinstance(record, Mapping):
            raise MetadataError(path, str(video_id), "-", "expected a JSON object")
        r = RecordReader(path, record, str(video_id))
        record_split = r.choice("split", SPLITS)
        if split is not None and record_split != split:
            continue
        file = r.relative_file("file")
        fake = r.segments("fake_periods")
        n_fakes = r.integer("n_fakes")
        if n_fakes != len(fake):
            raise r.error("n_fakes", f"{n_fakes} but fake_periods lists {len(fake)}")
        if r.has("duration"):
            duration = r.number("duration", positive=True)
        elif r.has("video_frames") and r.has("fps"):
            duration = r.integer("video_frames") / r.number("fps", positive=True)
        else:
            raise r.error("duration", "missing (and no video_frames + fps to derive it)")
        if not (r.has("fps") or r.has("video_frames")):
            raise r.error("fps", "missing (TVIL records carry fps or video_frames)")
        extra = {k: v for k, v in record.items() if k not in _CONSUMED}
        extra["file"] = file
        samples.append(
            Sample(
                id=str(video_id),
                dataset=NAME,
                split=record_split,
                path=str(root / file),
                duration=duration,
                label=1 if fake else 0,
                fake_segments=fake,
                audio_fake_segments=(),
                visual_fake_segments=fake,
                extra=extra,
            )
        )
    return samples
