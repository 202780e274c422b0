"""The verdict for people: real / uncertain / fake, and where, and which modality.

A :class:`Verdict` is built from a :class:`~avdf.types.Prediction` (calibrated video score and
the ranked proposals), the stitched per-step curves (:class:`StepCurves`, plain arrays) and the
decision rule stored in the checkpoint. Two lists answer two different questions:

* ``segments`` (for people): non-overlapping regions where the step fake probability is above
  the rule's ``segment_threshold``, gaps shorter than ``max_gap_seconds`` merged, regions
  shorter than ``min_steps`` steps dropped, in time order. A region names a modality (audio,
  visual, both) only when that modality's mean evidence over it is above
  ``modality_threshold``; otherwise it says "unknown".
* ``proposals`` (for metrics and the challenge formats): the decoder's full ranked top-K list,
  overlapping by design, exactly as :class:`Prediction` holds it.

Reports import only :mod:`avdf.types` (docs/architecture.md), so the curves come as arrays and
the rule as any object with :class:`avdf.inference.calibration.Calibration`'s fields
(:class:`DecisionRule`, a structural type): no import from ``inference``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from avdf.types import Prediction, ScoredSegment

NO_SEGMENT = "no manipulated segment found"
MAX_GAP_SECONDS = 0.2  # a dip shorter than this inside a fake stretch does not split it
MIN_STEPS = 2  # a lone step above the threshold is noise, not a segment
VERDICT_WORDS = {
    "fake": "likely FAKE",
    "real": "likely REAL",
    "uncertain": "UNCERTAIN",
}


class DecisionRule(Protocol):
    """What a verdict needs from the checkpoint's calibration (``Calibration`` fits)."""

    threshold: float
    uncertain_band: float
    segment_threshold: float
    modality_threshold: float
    tuned: bool

    def verdict(self, probability: float) -> str: ...


@dataclass(frozen=True)
class StepCurves:
    """Per-step outputs of one whole video: N steps of ``step_seconds`` each.

    ``audio_present`` / ``face_present`` (bool) say where a modality existed; None means
    everywhere. Where a modality is absent its evidence counts as 0: it cannot be blamed.
    """

    step_seconds: float
    fake: np.ndarray  # (N,) step fake probability
    audio: np.ndarray  # (N,) audio-fake probability
    visual: np.ndarray  # (N,) visual-fake probability
    audio_present: np.ndarray | None = None  # (N,) bool
    face_present: np.ndarray | None = None  # (N,) bool

    def __post_init__(self) -> None:
        if self.step_seconds <= 0:
            raise ValueError(f"step_seconds must be positive, got {self.step_seconds}")
        n = len(self.fake)
        for name in ("fake", "audio", "visual", "audio_present", "face_present"):
            value = getattr(self, name)
            if value is None:
                continue
            dtype = bool if name.endswith("present") else np.float64
            array = np.asarray(value, dtype=dtype).reshape(-1)
            if len(array) != n:
                raise ValueError(f"StepCurves.{name} has {len(array)} steps, fake has {n}")
            object.__setattr__(self, name, array)

    @property
    def n_steps(self) -> int:
        return len(self.fake)

    def evidence(self, modality: str) -> np.ndarray:
        """(N,) the modality's fake probability, 0 where the modality is absent."""
        values, present = (
            (self.audio, self.audio_present)
            if modality == "audio"
            else (self.visual, self.face_present)
        )
        return values if present is None else np.where(present, values, 0.0)

    def present(self, modality: str) -> np.ndarray:
        """(N,) bool: where the modality (audio, or the face for visual) was available."""
        mask = self.audio_present if modality == "audio" else self.face_present
        return np.ones(self.n_steps, bool) if mask is None else mask


@dataclass(frozen=True)
class ManipulatedSegment:
    """A merged region for people: seconds, mean and peak step fake probability, modality."""

    start: float
    end: float
    score: float  # mean step fake probability over the region
    peak: float  # its maximum
    audio_score: float | None  # mean audio evidence; None when audio is absent throughout
    visual_score: float | None  # mean visual evidence; None when no face throughout
    modality: str  # "audio", "visual", "both" or "unknown"

    @property
    def duration(self) -> float:
        return self.end - self.start

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "score": self.score,
            "peak": self.peak,
            "modality": self.modality,
            "audio_score": self.audio_score,
            "visual_score": self.visual_score,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ManipulatedSegment:
        def opt(key: str) -> float | None:
            return None if d.get(key) is None else float(d[key])

        return cls(
            float(d["start"]),
            float(d["end"]),
            float(d["score"]),
            float(d.get("peak", d["score"])),
            opt("audio_score"),
            opt("visual_score"),
            str(d.get("modality") or "unknown"),
        )


def fake_regions(
    fake: np.ndarray, threshold: float, max_gap_steps: int, min_steps: int
) -> list[tuple[int, int]]:
    """``[first, stop)`` step ranges where ``fake > threshold``; runs separated by fewer than
    ``max_gap_steps`` steps are merged, then runs shorter than ``min_steps`` dropped."""
    above = np.asarray(fake) > threshold  # (N,)
    edges = np.diff(np.concatenate([[0], above.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    merged: list[tuple[int, int]] = []
    for first, stop in zip(starts.tolist(), stops.tolist(), strict=True):
        if merged and first - merged[-1][1] < max_gap_steps:
            merged[-1] = (merged[-1][0], stop)
        else:
            merged.append((first, stop))
    return [(a, b) for a, b in merged if b - a >= min_steps]


def manipulated_segments(
    curves: StepCurves,
    segment_threshold: float,
    modality_threshold: float,
    duration: float | None = None,
    max_gap_seconds: float = MAX_GAP_SECONDS,
    min_steps: int = MIN_STEPS,
) -> tuple[ManipulatedSegment, ...]:
    """Merged non-overlapping regions above ``segment_threshold``, in time order."""
    step = curves.step_seconds
    end_of_video = curves.n_steps * step if duration is None else duration
    # round() so that 0.2 s at 0.04 s per step is 5 steps, not 4.999...
    max_gap_steps = int(round(max_gap_seconds / step))
    regions = fake_regions(curves.fake, segment_threshold, max_gap_steps, min_steps)
    return tuple(_segment(curves, a, b, modality_threshold, end_of_video) for a, b in regions)


def _segment(
    curves: StepCurves, first: int, stop: int, modality_threshold: float, end_of_video: float
) -> ManipulatedSegment:
    """Steps ``[first, stop)`` as a segment: mean and peak score, modality evidence."""
    scores: dict[str, float | None] = {}
    for modality in ("audio", "visual"):
        if curves.present(modality)[first:stop].any():
            scores[modality] = float(curves.evidence(modality)[first:stop].mean())
        else:
            scores[modality] = None
    blamed = [m for m, s in scores.items() if s is not None and s > modality_threshold]
    region = curves.fake[first:stop]
    step = curves.step_seconds
    return ManipulatedSegment(
        start=first * step,
        end=min(stop * step, max(end_of_video, first * step)),
        score=float(region.mean()),
        peak=float(region.max()),
        audio_score=scores["audio"],
        visual_score=scores["visual"],
        modality="both" if len(blamed) == 2 else blamed[0] if blamed else "unknown",
    )


def strongest_stretch(
    curves: StepCurves,
    modality_threshold: float,
    duration: float | None = None,
    min_steps: int = MIN_STEPS,
) -> ManipulatedSegment | None:
    """Where the evidence is strongest when no step passes the segment threshold: the steps
    above half-way between the curve's median (its baseline) and its peak, around the peak.
    A pointer for people, not a detection; None for a flat curve."""
    fake = curves.fake
    if not len(fake):
        return None
    peak_index = int(np.argmax(fake))
    baseline, peak = float(np.median(fake)), float(fake[peak_index])
    if peak - baseline < 0.05:  # flat: nowhere stands out
        return None
    level = 0.5 * (baseline + peak)
    for first, stop in fake_regions(fake, level, max_gap_steps=0, min_steps=1):
        if first <= peak_index < stop and stop - first >= min_steps:
            end = curves.n_steps * curves.step_seconds if duration is None else duration
            return _segment(curves, first, stop, modality_threshold, end)
    return None


@dataclass(frozen=True)
class Verdict:
    """What a report says about one video (JSON: :meth:`to_dict`)."""

    video_id: str
    duration: float  # seconds
    label: str  # "real", "uncertain" or "fake"
    probability: float  # calibrated probability that the video is fake
    tuned: bool  # the calibration was fitted on a dev split (``avdf tune``)
    threshold: float
    uncertain_band: float
    segment_threshold: float
    modality_threshold: float
    modalities_present: Mapping[str, float] = field(default_factory=dict)
    modality_scores: Mapping[str, float] = field(default_factory=dict)
    segments: tuple[ManipulatedSegment, ...] = ()
    proposals: tuple[ScoredSegment, ...] = ()  # ranked, overlapping: for metrics
    notes: tuple[str, ...] = ()
    # When no segment passes the threshold but the video is not judged real: where the
    # evidence peaks (see :func:`strongest_stretch`).
    strongest: ManipulatedSegment | None = None

    @property
    def words(self) -> str:
        return VERDICT_WORDS[self.label]

    def headline(self) -> str:
        """One sentence in plain words."""
        low = self.threshold - self.uncertain_band
        high = self.threshold + self.uncertain_band
        if self.label == "uncertain":
            text = (
                f"UNCERTAIN: the probability that this video is fake is {self.probability:.2f}, "
                f"between {low:.2f} and {high:.2f}, too close to call."
            )
        elif self.label == "fake":
            text = (
                f"Likely FAKE: the probability that this video is fake is "
                f"{self.probability:.2f} (fake from {high:.2f})."
            )
        else:
            text = (
                f"Likely REAL: the probability that this video is fake is "
                f"{self.probability:.2f} (real below {low:.2f})."
            )
        if not self.tuned:
            text += (
                " The calibration was not tuned on labelled videos, so read it as a rough score."
            )
        return text

    def where(self) -> str:
        """The segments in plain words (or :data:`NO_SEGMENT`)."""
        if not self.segments:
            if self.strongest is None:
                return NO_SEGMENT
            st = self.strongest
            return (
                f"{NO_SEGMENT} above {self.segment_threshold:.2f}; the evidence is strongest at "
                f"{st.start:.2f}-{st.end:.2f} s (peak {st.peak:.2f}, {st.modality})"
            )
        return "; ".join(f"{s.start:.2f}-{s.end:.2f} s ({s.modality})" for s in self.segments)

    def prediction(self) -> Prediction:
        """The proposals as a :class:`Prediction` (what metrics and challenge formats read)."""
        return Prediction(
            video_id=self.video_id,
            duration=self.duration,
            score=self.probability,
            modality_scores=dict(self.modality_scores),
            segments=self.proposals,
            modalities_present=dict(self.modalities_present),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "video_id": self.video_id,
            "duration": self.duration,
            "verdict": self.label,
            "probability": self.probability,
            # "score" is the same number under the name the metrics readers use.
            "score": self.probability,
            "calibration": {
                "tuned": self.tuned,
                "threshold": self.threshold,
                "uncertain_band": self.uncertain_band,
                "segment_threshold": self.segment_threshold,
                "modality_threshold": self.modality_threshold,
            },
            "summary": self.headline(),
            "where": self.where(),
            "modalities_present": dict(self.modalities_present),
            "modality_scores": dict(self.modality_scores),
            "segments": [s.to_dict() for s in self.segments],
            "strongest": None if self.strongest is None else self.strongest.to_dict(),
            "proposals": [p.to_dict() for p in self.proposals],
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Verdict:
        calibration = d.get("calibration") or {}
        return cls(
            video_id=str(d["video_id"]),
            duration=float(d["duration"]),
            label=str(d["verdict"]),
            probability=float(d["probability"]),
            tuned=bool(calibration.get("tuned", False)),
            threshold=float(calibration.get("threshold", 0.5)),
            uncertain_band=float(calibration.get("uncertain_band", 0.0)),
            segment_threshold=float(calibration.get("segment_threshold", 0.5)),
            modality_threshold=float(calibration.get("modality_threshold", 0.5)),
            modalities_present={
                k: float(v) for k, v in (d.get("modalities_present") or {}).items()
            },
            modality_scores={k: float(v) for k, v in (d.get("modality_scores") or {}).items()},
            segments=tuple(ManipulatedSegment.from_dict(s) for s in d.get("segments") or []),
            proposals=tuple(ScoredSegment.from_dict(p) for p in d.get("proposals") or []),
            notes=tuple(str(n) for n in d.get("notes") or []),
            strongest=(
                None if d.get("strongest") is None else ManipulatedSegment.from_dict(d["strongest"])
            ),
        )


def build_verdict(
    prediction: Prediction,
    curves: StepCurves | None,
    rule: DecisionRule,
    notes: Sequence[str] = (),
    max_gap_seconds: float = MAX_GAP_SECONDS,
    min_steps: int = MIN_STEPS,
) -> Verdict:
    """The verdict of one video. ``prediction.score`` must already be calibrated (the
    Detector's is); ``curves`` None (no steps) gives no segments."""
    segments: tuple[ManipulatedSegment, ...] = ()
    strongest = None
    label = rule.verdict(prediction.score)
    if curves is not None and curves.n_steps:
        segments = manipulated_segments(
            curves,
            rule.segment_threshold,
            rule.modality_threshold,
            prediction.duration,
            max_gap_seconds,
            min_steps,
        )
        if not segments and label != "real":
            strongest = strongest_stretch(
                curves, rule.modality_threshold, prediction.duration, min_steps
            )
    return Verdict(
        video_id=prediction.video_id,
        duration=prediction.duration,
        label=label,
        probability=prediction.score,
        tuned=bool(rule.tuned),
        threshold=rule.threshold,
        uncertain_band=rule.uncertain_band,
        segment_threshold=rule.segment_threshold,
        modality_threshold=rule.modality_threshold,
        modalities_present=dict(prediction.modalities_present),
        modality_scores=dict(prediction.modality_scores),
        segments=segments,
        proposals=prediction.segments,
        notes=tuple(notes),
        strongest=strongest,
    )


def still_times(verdict: Verdict, curves: StepCurves | None) -> list[tuple[str, float]]:
    """(label, seconds) of the moments a report illustrates: the middle of each segment
    ("segment 1", ...) and, for comparison, the middle of the longest stretch the model
    finds clearly real ("real stretch": step fake probability below half the segment
    threshold, face present), when there is one."""
    out = [(f"segment {i + 1}", 0.5 * (s.start + s.end)) for i, s in enumerate(verdict.segments)]
    if verdict.strongest is not None:
        out.append(("strongest", 0.5 * (verdict.strongest.start + verdict.strongest.end)))
    if curves is None or not curves.n_steps:
        return out
    calm = (curves.fake < 0.5 * verdict.segment_threshold) & curves.present("visual")
    runs = fake_regions(calm.astype(np.float64), 0.5, max_gap_steps=0, min_steps=1)
    if runs:
        first, stop = max(runs, key=lambda r: r[1] - r[0])
        out.append(("real stretch", 0.5 * (first + stop) * curves.step_seconds))
    return out
