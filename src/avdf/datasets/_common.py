"""Validation helpers shared by the dataset adapters.

Every adapter reads untrusted metadata; these helpers turn a bad value into a
:class:`~avdf.errors.MetadataError` that names the file, the record and the field, so a
user can fix the one broken row instead of reading a traceback.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from avdf.errors import InputError, MetadataError
from avdf.types import Sample, Segment

# Container suffixes accepted wherever a dataset lists or discovers video files.
VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".flv", ".wmv", ".mpg"}
)

# LAV-DF evaluation subsets (Cai et al.): which clips each one keeps.
SUBSETS: tuple[str, ...] = ("full", "visual", "audio")


def require_dir(root: str | Path) -> Path:
    """The dataset root as an absolute path; InputError when it is not a directory."""
    path = Path(root).expanduser()
    if not path.is_dir():
        cause = "dataset root does not exist" if not path.exists() else "not a directory"
        raise InputError(path, cause)
    return path.resolve()


def read_json(path: Path) -> Any:
    """Parse a metadata JSON file: InputError when missing, MetadataError when not JSON."""
    if not path.is_file():
        raise InputError(path, "metadata file not found")
    try:
        with path.open(encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise MetadataError(path, "-", "-", f"not valid JSON ({e.msg} at line {e.lineno})") from e
    except UnicodeDecodeError as e:
        raise MetadataError(path, "-", "-", "not UTF-8 text") from e


def strip_video_suffix(file: str) -> str:
    """``test/000001.mp4`` -> ``test/000001`` (the id rule of every adapter)."""
    p = Path(file)
    return p.with_suffix("").as_posix() if p.suffix.lower() in VIDEO_EXTENSIONS else p.as_posix()


class RecordReader:
    """Typed, validating access to one metadata record (a JSON object or CSV row)."""

    def __init__(self, path: Path, record: Mapping[str, Any], name: str) -> None:
        self.path, self.record, self.name = path, record, name

    def error(self, field: str, cause: str) -> MetadataError:
        return MetadataError(self.path, self.name, field, cause)

    def has(self, field: str) -> bool:
        return self.record.get(field) is not None

    def _get(self, field: str) -> Any:
        if field not in self.record:
            raise self.error(field, "missing")
        value = self.record[field]
        if value is None:
            raise self.error(field, "is null")
        return value

    def string(self, field: str) -> str:
        value = self._get(field)
        if not isinstance(value, str) or not value.strip():
            raise self.error(field, f"expected a non-empty string, got {value!r}")
        return value.strip()

    def relative_file(self, field: str = "file") -> str:
        """A path relative to the dataset root; absolute paths and '..' are refused."""
        value = self.string(field).replace("\\", "/")
        parts = Path(value).parts
        if value.startswith("/") or ".." in parts:
            raise self.error(field, f"expected a path inside the dataset root, got {value!r}")
        return Path(value).as_posix()

    def boolean(self, field: str) -> bool:
        value = self._get(field)
        if isinstance(value, bool):
            return value
        # 0/1 integers appear in hand-edited copies; anything else is ambiguous.
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise self.error(field, f"expected true/false, got {value!r}")

    def number(self, field: str, *, positive: bool = False) -> float:
        value = self._get(field)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(field, f"expected a number, got {value!r}")
        value = float(value)
        if not math.isfinite(value) or value < 0 or (positive and value == 0):
            kind = "positive" if positive else "non-negative"
            raise self.error(field, f"expected a finite {kind} number, got {value!r}")
        return value

    def integer(self, field: str) -> int:
        value = self._get(field)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.error(field, f"expected a non-negative integer, got {value!r}")
        return value

    def segments(self, field: str) -> tuple[Segment, ...]:
        """A list of ``[start, end]`` pairs in seconds, sorted by start."""
        return parse_segments(self._get(field), self.error, field)

    def choice(self, field: str, allowed: Sequence[str]) -> str:
        value = self.string(field)
        if value not in allowed:
            raise self.error(
                field, f"unknown value {value!r} (expected one of {', '.join(allowed)})"
            )
        return value


def parse_segments(value: Any, error: Any, field: str) -> tuple[Segment, ...]:
    """Validate ``[[start, end], ...]`` (seconds); ``error(field, cause)`` builds the exception."""
    if not isinstance(value, list | tuple):
        raise error(field, f"expected a list of [start, end] pairs, got {value!r}")
    out = []
    for i, pair in enumerate(value):
        if (
            not isinstance(pair, list | tuple)
            or len(pair) != 2
            or not all(isinstance(x, int | float) and not isinstance(x, bool) for x in pair)
        ):
            raise error(field, f"item {i}: expected [start, end] numbers, got {pair!r}")
        start, end = float(pair[0]), float(pair[1])
        if not (math.isfinite(start) and math.isfinite(end)):
            raise error(field, f"item {i}: non-finite time in {pair!r}")
        if start < 0:
            raise error(field, f"item {i}: negative start time {start}")
        if end < start:
            raise error(field, f"item {i}: end {end} is before start {start}")
        out.append(Segment(start, end))
    return tuple(sorted(out))


def select_subset(samples: Iterable[Sample], subset: str) -> list[Sample]:
    """LAV-DF evaluation subsets.

    ``full`` keeps everything; ``visual`` drops clips where only the audio was modified;
    ``audio`` drops clips where only the video was modified. Clips whose modality is unknown
    (segments None) are kept: no evidence that they belong to the other modality only.
    """
    if subset not in SUBSETS:
        raise ValueError(f"unknown subset {subset!r} (expected one of {', '.join(SUBSETS)})")
    if subset == "full":
        return list(samples)

    def only(s: Sample, modality: str) -> bool:
        audio, visual = s.audio_fake_segments, s.visual_fake_segments
        if audio is None or visual is None:
            return False
        return bool(audio) and not visual if modality == "audio" else bool(visual) and not audio

    drop = "audio" if subset == "visual" else "visual"
    return [s for s in samples if not only(s, drop)]


def container_duration(path: Path) -> float | None:
    """Duration in seconds from the container header (PyAV; no frame is decoded).

    None when the file cannot be opened or declares no duration: the data layer then
    measures it while decoding, and a broken file is reported there, once, per video.
    """
    import av  # imported here: adapters that never probe should not pay for it

    try:
        with av.open(str(path)) as container:
            if container.duration is not None:
                return container.duration / av.time_base  # microseconds -> seconds
            stream = next(iter(container.streams.video), None)
            if stream is not None and stream.duration is not None and stream.time_base:
                return float(stream.duration * stream.time_base)
    except (av.FFmpegError, OSError):
        return None
    return None
