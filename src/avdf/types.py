"""Core value types shared by every layer. All times are in seconds.

Metrics, writers and the CLI only ever see these types; frames and steps live
behind :mod:`avdf.timebase`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from avdf.intervals import interval_iou

MODALITIES: tuple[str, ...] = ("audio", "face", "lips")


@dataclass(frozen=True, order=True)
class Segment:
    """A half-open time interval ``[start, end)`` in seconds."""

    start: float
    end: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.start) and math.isfinite(self.end)):
            raise ValueError(f"segment bounds must be finite, got [{self.start}, {self.end}]")
        if self.end < self.start:
            raise ValueError(f"segment end {self.end} is before its start {self.start}")

    @property
    def duration(self) -> float:
        return self.end - self.start

    @property
    def middle(self) -> float:
        return 0.5 * (self.start + self.end)

    def intersection(self, other: Segment) -> float:
        """Length of the overlap with ``other`` in seconds (0 when disjoint)."""
        return max(0.0, min(self.end, other.end) - max(self.start, other.start))

    def iou(self, other: Segment) -> float:
        """Temporal IoU as the official LAV-DF / AV-Deepfake1M code defines it.

        ``max(0, min(ends) - max(starts)) / (max(ends) - min(starts))``; two
        zero-length segments at the same instant have IoU 0 by convention.
        """
        return interval_iou(self.start, self.end, other.start, other.end)

    def contains(self, t: float) -> bool:
        return self.start <= t < self.end

    def clip(self, start: float, end: float) -> Segment:
        lo = min(max(self.start, start), end)
        hi = min(max(self.end, start), end)
        return Segment(lo, hi)

    def to_list(self) -> list[float]:
        return [self.start, self.end]

    @classmethod
    def from_list(cls, pair: Iterable[float]) -> Segment:
        start, end = (float(x) for x in pair)
        return cls(start, end)


@dataclass(frozen=True)
class ScoredSegment:
    """A proposed fake segment with its confidence and optional modality attribution."""

    segment: Segment
    score: float
    audio_score: float | None = None
    visual_score: float | None = None

    @property
    def start(self) -> float:
        return self.segment.start

    @property
    def end(self) -> float:
        return self.segment.end

    @property
    def modality(self) -> str | None:
        """'audio', 'visual', 'both' (each attribution score >= 0.5) or None when unknown."""
        if self.audio_score is None or self.visual_score is None:
            return None
        audio, visual = self.audio_score >= 0.5, self.visual_score >= 0.5
        if audio and visual:
            return "both"
        if audio:
            return "audio"
        if visual:
            return "visual"
        # Neither head is confident: name the more likely one.
        return "audio" if self.audio_score > self.visual_score else "visual"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"start": self.start, "end": self.end, "score": self.score}
        if self.audio_score is not None:
            out["audio_score"] = self.audio_score
        if self.visual_score is not None:
            out["visual_score"] = self.visual_score
        if self.modality is not None:
            out["modality"] = self.modality
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ScoredSegment:
        return cls(
            Segment(float(d["start"]), float(d["end"])),
            float(d["score"]),
            None if d.get("audio_score") is None else float(d["audio_score"]),
            None if d.get("visual_score") is None else float(d["visual_score"]),
        )


def _segments_to_json(segments: tuple[Segment, ...] | None) -> list[list[float]] | None:
    return None if segments is None else [s.to_list() for s in segments]


def _segments_from_json(value: Any) -> tuple[Segment, ...] | None:
    return None if value is None else tuple(Segment.from_list(p) for p in value)


@dataclass(frozen=True)
class Sample:
    """One manifest row: a video and what is known about it.

    ``label`` is 1 for fake, 0 for real, None when unlabelled. ``audio_fake_segments`` /
    ``visual_fake_segments`` are None when the dataset does not say which modality was
    manipulated (the modality heads are then masked for this video).
    """

    id: str
    dataset: str
    split: str
    path: str
    duration: float | None = None
    label: int | None = None
    fake_segments: tuple[Segment, ...] = ()
    audio_fake_segments: tuple[Segment, ...] | None = None
    visual_fake_segments: tuple[Segment, ...] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "dataset": self.dataset,
            "split": self.split,
            "path": self.path,
            "duration": self.duration,
            "label": self.label,
            "fake_segments": _segments_to_json(self.fake_segments),
            "audio_fake_segments": _segments_to_json(self.audio_fake_segments),
            "visual_fake_segments": _segments_to_json(self.visual_fake_segments),
            "extra": dict(self.extra),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Sample:
        return cls(
            id=str(d["id"]),
            dataset=str(d["dataset"]),
            split=str(d["split"]),
            path=str(d["path"]),
            duration=None if d.get("duration") is None else float(d["duration"]),
            label=None if d.get("label") is None else int(d["label"]),
            fake_segments=_segments_from_json(d.get("fake_segments") or []) or (),
            audio_fake_segments=_segments_from_json(d.get("audio_fake_segments")),
            visual_fake_segments=_segments_from_json(d.get("visual_fake_segments")),
            extra=dict(d.get("extra") or {}),
        )


def write_manifest(samples: Iterable[Sample], path: str) -> None:
    """Write samples as JSON lines (one row per video)."""
    with open(path, "w", encoding="utf-8") as f:
        for s in samples:
            f.write(json.dumps(s.to_dict()) + "\n")


def read_manifest(path: str) -> list[Sample]:
    with open(path, encoding="utf-8") as f:
        return [Sample.from_dict(json.loads(line)) for line in f if line.strip()]


@dataclass(frozen=True)
class Prediction:
    """What avdf says about one video. Segments are sorted by descending score."""

    video_id: str
    duration: float
    score: float
    modality_scores: Mapping[str, float] = field(default_factory=dict)
    segments: tuple[ScoredSegment, ...] = ()
    modalities_present: Mapping[str, float] = field(default_factory=dict)
    """Fraction of steps in which each modality ('audio', 'face', 'lips') was available."""

    def __post_init__(self) -> None:
        scores = [s.score for s in self.segments]
        if any(a < b for a, b in zip(scores, scores[1:], strict=False)):
            raise ValueError("Prediction.segments must be sorted by descending score")

    def to_dict(self) -> dict[str, Any]:
        return {
            "video_id": self.video_id,
            "duration": self.duration,
            "score": self.score,
            "modality_scores": dict(self.modality_scores),
            "modalities_present": dict(self.modalities_present),
            "segments": [s.to_dict() for s in self.segments],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Prediction:
        return cls(
            video_id=str(d["video_id"]),
            duration=float(d["duration"]),
            score=float(d["score"]),
            modality_scores={k: float(v) for k, v in (d.get("modality_scores") or {}).items()},
            segments=tuple(ScoredSegment.from_dict(s) for s in d.get("segments") or []),
            modalities_present={
                k: float(v) for k, v in (d.get("modalities_present") or {}).items()
            },
        )
