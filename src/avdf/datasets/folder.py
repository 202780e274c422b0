"""Any folder of videos, labelled or not -> samples.

Videos are found recursively by suffix (``.mp4 .mov .mkv .avi .webm .m4v .flv .wmv .mpg``,
any case). Labels are optional and come from ``labels.csv`` or ``labels.json`` in the folder
(or the file given as ``labels=``):

- CSV with a header: ``file,label[,fake_segments][,split]``; ``file`` relative to the
  folder, ``label`` 0/1 (or ``real``/``fake``), ``fake_segments`` JSON ``[[start, end], ...]``
  in seconds, ``split`` train/val/test.
- JSON: either ``{file: label}`` / ``{file: {"label": ..., "fake_segments": ...}}`` or a list
  of ``{"file": ..., "label": ..., ...}`` objects.

A labelled fake without segments is treated as fake over its whole length (like
FakeAVCeleb). Videos not named in the labels file are unlabelled (``label`` None); a labels
row whose video is missing is an error. Samples without a ``split`` are in ``test``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from avdf.datasets._common import (
    VIDEO_EXTENSIONS,
    RecordReader,
    container_duration,
    parse_segments,
    read_json,
    require_dir,
    strip_video_suffix,
)
from avdf.errors import InputError, MetadataError
from avdf.types import Sample, Segment

NAME = "folder"
SPLITS: tuple[str, ...] = ("train", "val", "test")
DEFAULT_SPLIT = "test"
LABEL_FILES: tuple[str, ...] = ("labels.csv", "labels.json")
_LABEL_WORDS = {"0": 0, "1": 1, "real": 0, "fake": 1}


def load(
    root: str | Path,
    split: str | None = None,
    labels: str | Path | None = None,
    probe_durations: bool = True,
) -> list[Sample]:
    """Every video under ``root`` (sorted by relative path), with labels where known."""
    root = require_dir(root)
    labels_path = _find_labels(root, labels)
    table = _read_labels(labels_path) if labels_path is not None else {}
    videos = sorted(find_videos(root))
    present = set(videos)
    for file, (row_name, _) in table.items():
        if file not in present:
            raise MetadataError(
                labels_path or root, row_name, "file", f"no video {file!r} under {root}"
            )
    samples = []
    for file in videos:
        row_name, record = table.get(file, ("-", {}))
        sample = _sample(root, file, labels_path or root, row_name, record, probe_durations)
        if split is None or sample.split == split:
            samples.append(sample)
    return samples


def find_videos(root: Path) -> Iterator[str]:
    """Relative POSIX paths of video files under ``root`` (hidden folders skipped)."""
    for path in root.rglob("*"):
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if path.suffix.lower() in VIDEO_EXTENSIONS and path.is_file():
            yield relative.as_posix()


def _find_labels(root: Path, labels: str | Path | None) -> Path | None:
    if labels is not None:
        path = Path(labels).expanduser()
        if not path.is_absolute() and (root / path).is_file():
            path = root / path  # relative to the video folder first, then to the cwd
        if not path.is_file():
            raise InputError(path, "labels file not found")
        return path.resolve()
    return next((root / n for n in LABEL_FILES if (root / n).is_file()), None)


def _read_labels(path: Path) -> dict[str, tuple[str, Mapping[str, Any]]]:
    """file -> (record name for errors, record) from a CSV or JSON labels file."""
    rows: list[tuple[str, Mapping[str, Any]]] = []
    if path.suffix.lower() == ".json":
        data = read_json(path)
        if isinstance(data, Mapping):
            for file, value in data.items():
                record = dict(value) if isinstance(value, Mapping) else {"label": value}
                rows.append((str(file), {"file": file, **record}))
        elif isinstance(data, list):
            for i, record in enumerate(data):
                if not isinstance(record, Mapping):
                    raise MetadataError(path, f"#{i}", "-", "expected a JSON object")
                rows.append((str(record.get("file") or f"#{i}"), record))
        else:
            raise MetadataError(path, "-", "-", "expected an object or a list of objects")
    else:
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None or "file" not in reader.fieldnames:
                raise MetadataError(path, "header", "file", "missing column")
            for line_number, row in enumerate(reader, start=2):
                record = {k.strip(): (v or "").strip() for k, v in row.items() if k}
                if any(record.values()):
                    rows.append((f"line {line_number} ({record.get('file', '?')})", record))
    table: dict[str, tuple[str, Mapping[str, Any]]] = {}
    for name, record in rows:
        file = RecordReader(path, record, name).relative_file("file")
        if file in table:
            raise MetadataError(path, name, "file", f"{file!r} is listed twice")
        table[file] = (name, record)
    return table


def _sample(
    root: Path,
    file: str,
    labels_path: Path,
    row_name: str,
    record: Mapping[str, Any],
    probe: bool,
) -> Sample:
    r = RecordReader(labels_path, record, row_name)
    label = _label(r) if r.has("label") and record["label"] != "" else None
    segments: tuple[Segment, ...] | None = None
    if r.has("fake_segments") and record["fake_segments"] not in ("", []):
        value = record["fake_segments"]
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as e:
                raise r.error("fake_segments", f"not JSON: {e.msg}") from e
        segments = parse_segments(value, r.error, "fake_segments")
        if label == 0:
            raise r.error("fake_segments", "given for a video labelled real")
        label = 1 if label is None else label
    split = DEFAULT_SPLIT
    if r.has("split") and record["split"] != "":
        split = r.choice("split", SPLITS)

    duration = container_duration(root / file) if probe else None
    extra: dict[str, Any] = {"file": file}
    if label == 1 and segments is None:
        # Video-level label only: fake over the whole clip.
        extra["whole_video_fake"] = True
        segments = (Segment(0.0, duration),) if duration else ()
    return Sample(
        id=strip_video_suffix(file),
        dataset=NAME,
        split=split,
        path=str(root / file),
        duration=duration,
        label=label,
        fake_segments=segments or (),
        extra=extra,
    )


def _label(r: RecordReader) -> int:
    value = r.record["label"]
    key = str(value).strip().lower() if not isinstance(value, bool) else str(int(value))
    if key not in _LABEL_WORDS:
        raise r.error("label", f"expected 0/1 or real/fake, got {value!r}")
    return _LABEL_WORDS[key]
