"""Video file -> streaming chunks of per-step model inputs (:class:`VideoFeatures`).

Decoding, face tracking and log-mel run chunk by chunk, so peak memory depends on
``chunk_steps`` and the frame size, never on the video's length.

Alignment: video and audio share the decoder's clock (t = 0 at the video stream start).
The number of steps is ``spec.steps_in(decoded video duration)``, within one step of the
container's duration unless the file is truncated (then a note says so). A step has audio
when at least half of its samples exist (after the audio stream's start); missing steps get ``audio_mask`` False and zero mel.
A video without an audio stream is not an error: all steps are masked. A video in which no
face is ever found is not an error either: ``face_mask`` is all False and a note says
"no face found" (detection can still use the audio).

Audio that outlasts the picture by more than ``AUDIO_TAIL_SECONDS`` (a still or a short clip
under a long soundtrack) is analysed to its end: those steps have no face (``face_mask``
False, zero crops, NaN landmarks) and a note says where the picture ended. Timestamp
discontinuities are joined by the decoder (see :mod:`avdf.io.decode`) and noted.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from avdf.experts import EXPERTS, ExpertStream, expert_streams
from avdf.io.decode import MediaInfo, iter_audio, iter_video_frames, probe
from avdf.preprocess.audio import StreamingLogMel
from avdf.preprocess.features import N_LANDMARKS, VideoFeatures
from avdf.timebase import MediaSpec

log = logging.getLogger(__name__)

# Audio running on past the last picture by less than this is muxing slack (AAC priming and
# padding, the last frame's duration) and is dropped; more is content and is analysed.
AUDIO_TAIL_SECONDS = 1.0


class Tracker(Protocol):
    """What the pipeline needs from :class:`avdf.preprocess.face.FaceTracker`."""

    def reset(self) -> None: ...

    def process(self, frames: np.ndarray) -> Any: ...  # (N, H, W, 3) uint8 -> FaceChunk


@dataclass
class ExtractionStats:
    """Filled in while :func:`iter_features` runs; complete once the iterator is exhausted."""

    info: MediaInfo | None = None
    n_steps: int = 0
    face_steps: int = 0
    audio_steps: int = 0
    notes: list[str] = field(default_factory=list)
    step_seconds: float = 0.0

    @property
    def duration(self) -> float:
        """Seconds covered by the steps produced."""
        return self.n_steps * self.step_seconds

    @property
    def face_rate(self) -> float:
        return self.face_steps / self.n_steps if self.n_steps else 0.0

    @property
    def audio_rate(self) -> float:
        return self.audio_steps / self.n_steps if self.n_steps else 0.0


def default_tracker(spec: MediaSpec) -> Tracker:
    # Imported here: mediapipe is heavy and only needed when faces are actually tracked.
    from avdf.preprocess.face import FaceTracker

    return FaceTracker(spec)


def iter_features(
    path: str | Path,
    spec: MediaSpec | None = None,
    chunk_steps: int = 250,
    tracker: Tracker | None = None,
    max_side: int | None = 640,
    stats: ExtractionStats | None = None,
    experts: Sequence[str] = (),
) -> Iterator[VideoFeatures]:
    """Yield consecutive chunks of at most ``chunk_steps`` steps covering the whole video.

    ``tracker`` is reused across videos when given (it is reset here). With
    ``spec.stride > 1`` the face is tracked on the first frame of each step.
    ``experts`` (names in :mod:`avdf.experts`) are computed by a pass of their own over the
    file before the first chunk (they need the whole video, e.g. its median voice or motion)
    and attached to every chunk. Raises :class:`~avdf.errors.InputError` for unusable files.
    """
    spec = spec or MediaSpec()
    stats = stats if stats is not None else ExtractionStats()
    streams = {e.name: compute_expert(e, path, spec) for e in expert_streams(experts)}
    for chunk in _iter_chunks(path, spec, chunk_steps, tracker, max_side, stats):
        chunk.experts = {
            name: expert_steps(stream, spec, chunk.first_step, getattr(chunk, EXPERTS[name].mask))
            for name, stream in streams.items()
        }
        yield chunk


def expert_steps(stream: Any, spec: MediaSpec, first_step: int, mask: np.ndarray) -> np.ndarray:
    """(n, channels) float16 of an expert's result for steps ``first_step ..``, zero where
    the (n,) presence mask of the modality it describes is False."""
    values = stream.steps(spec, first_step, len(mask))
    return np.where(mask[:, None], values, 0).astype(np.float16)


def compute_expert(stream: ExpertStream, path: str | Path, spec: MediaSpec) -> Any:
    """The whole-video result of one expert (an object whose ``steps(spec, first, n)`` gives
    ``(n, channels)`` float32). Imported here: each expert loads its own model."""
    if stream.name == "speaker":
        from avdf.preprocess.speaker import speaker_consistency_of

        return speaker_consistency_of(path, spec)
    if stream.name == "motion":
        from avdf.preprocess.motion import frame_motion_of

        return frame_motion_of(path, spec)
    raise ValueError(f"no implementation for expert {stream.name!r}")


def _iter_chunks(
    path: str | Path,
    spec: MediaSpec,
    chunk_steps: int,
    tracker: Tracker | None,
    max_side: int | None,
    stats: ExtractionStats,
) -> Iterator[VideoFeatures]:
    """:func:`iter_features` without the expert streams."""
    info = probe(path)
    stats.info = info
    stats.step_seconds = spec.step_seconds
    tracker = tracker if tracker is not None else default_tracker(spec)
    tracker.reset()
    mel = StreamingLogMel(spec)
    audio_chunks = iter_audio(path, spec) if info.has_audio else iter([])
    audio_ended = not info.has_audio
    # Audio that starts after the video is zero-padded by the decoder: its lead is masked too.
    audio_start = max(0.0, info.audio_offset) * spec.sample_rate  # samples

    def pull_audio(samples: float) -> None:
        """Decode audio until ``samples`` samples are in or the audio ends."""
        nonlocal audio_ended
        while not audio_ended and mel.samples_seen < samples:
            chunk = next(audio_chunks, None)
            if chunk is None:
                audio_ended = True
            else:
                mel.push(chunk)

    def audio_steps(first: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(n, F, n_mels) float16 mel and (n,) bool mask of steps first .. first + n - 1."""
        nonlocal audio_ended
        while not audio_ended and mel.ready_steps() < n:
            pull_audio(mel.samples_seen + 1)
        step_mel = mel.pop_steps(n)
        # A step has audio when at least half of its samples were decoded.
        half_step = (first + np.arange(n) + 0.5) * spec.samples_per_step
        audio_mask = (half_step <= mel.samples_seen) & (half_step >= audio_start)
        if not info.has_audio:
            audio_mask[:] = False
        step_mel[~audio_mask] = 0
        return step_mel, audio_mask

    frames_per_chunk = chunk_steps * spec.stride
    first_step = 0
    # Each chunk is done with before the next is decoded, so one frame array serves them all.
    video = iter_video_frames(
        path,
        spec,
        max_side=max_side,
        chunk_frames=frames_per_chunk,
        reuse_buffer=True,
        notes=stats.notes,
    )
    for frames in video:
        n = len(frames) // spec.stride  # a trailing partial step is dropped
        if n == 0:
            continue
        face = tracker.process(frames[: n * spec.stride : spec.stride])
        step_mel, audio_mask = audio_steps(first_step, n)
        landmarks = _to_source_pixels(face.landmarks, frames.shape[1:3], info)
        yield VideoFeatures(
            spec=spec,
            first_step=first_step,
            face=face.face,
            mouth=face.mouth,
            mel=step_mel,
            face_mask=np.asarray(face.face_mask, bool),
            audio_mask=audio_mask,
            landmarks=landmarks,
        )
        first_step += n
        stats.n_steps = first_step
        stats.face_steps += int(np.count_nonzero(face.face_mask))
        stats.audio_steps += int(np.count_nonzero(audio_mask))

    picture_steps = first_step
    picture_end = picture_steps * spec.samples_per_step  # samples
    pull_audio(picture_end + AUDIO_TAIL_SECONDS * spec.sample_rate + 1)
    if picture_steps and mel.samples_seen - picture_end > AUDIO_TAIL_SECONDS * spec.sample_rate:
        # The audio outlasts the picture: its steps to the end, with the face absent.
        while True:
            pull_audio((first_step + chunk_steps + 1) * spec.samples_per_step)
            # Steps that have audio by the half-step rule, at most a chunk of them.
            have = int(mel.samples_seen / spec.samples_per_step + 0.5) - first_step
            n = min(chunk_steps, have)
            if n <= 0:
                break
            step_mel, audio_mask = audio_steps(first_step, n)
            yield _without_face(spec, first_step, step_mel, audio_mask)
            first_step += n
            stats.n_steps = first_step
            stats.audio_steps += int(np.count_nonzero(audio_mask))
        stats.notes.append(
            f"picture ends at {picture_steps * spec.step_seconds:.2f} s, audio at "
            f"{first_step * spec.step_seconds:.2f} s: analysed to the end, face absent after "
            "the picture"
        )
    _finish_notes(stats, spec, info)


def _without_face(
    spec: MediaSpec, first_step: int, mel: np.ndarray, audio_mask: np.ndarray
) -> VideoFeatures:
    """Steps with audio only (after the picture ended): face absent, zero crops."""
    n = len(audio_mask)
    return VideoFeatures(
        spec=spec,
        first_step=first_step,
        face=np.zeros((n, spec.face_size, spec.face_size, 3), np.uint8),
        mouth=np.zeros((n, spec.mouth_size, spec.mouth_size, 3), np.uint8),
        mel=mel,
        face_mask=np.zeros(n, bool),
        audio_mask=audio_mask,
        landmarks=np.full((n, N_LANDMARKS, 2), np.nan, np.float16),
    )


def _to_source_pixels(
    landmarks: np.ndarray, frame_hw: tuple[int, int], info: MediaInfo
) -> np.ndarray:
    """(N, 468, 2) landmarks in decoded-frame pixels -> (N, 468, 2) float16 source pixels."""
    scale = np.array([info.width / frame_hw[1], info.height / frame_hw[0]], np.float32)
    out = np.asarray(landmarks, np.float32).reshape(-1, N_LANDMARKS, 2) * scale
    return out.astype(np.float16)


def _finish_notes(stats: ExtractionStats, spec: MediaSpec, info: MediaInfo) -> None:
    decoded = stats.n_steps * spec.step_seconds
    if stats.n_steps == 0:
        stats.notes.append("shorter than one step: no features")
    if info.duration - decoded > max(1.0, 2 * spec.step_seconds):
        stats.notes.append(
            f"video decodes to {decoded:.2f} s but the container says {info.duration:.2f} s "
            "(truncated?); used what decodes"
        )
    if not info.has_audio:
        stats.notes.append("no audio stream: audio masked")
    elif stats.audio_steps < stats.n_steps:
        stats.notes.append(f"audio missing in {stats.n_steps - stats.audio_steps} steps: masked")
    if stats.n_steps and stats.face_steps == 0:
        stats.notes.append("no face found: face and lips masked")
    for note in stats.notes:
        log.info("%s: %s", info.path, note)


def extract_features(
    path: str | Path,
    spec: MediaSpec | None = None,
    tracker: Tracker | None = None,
    max_side: int | None = 640,
    stats: ExtractionStats | None = None,
    experts: Sequence[str] = (),
) -> VideoFeatures:
    """All steps of a video as one :class:`VideoFeatures` (memory grows with length)."""
    spec = spec or MediaSpec()
    chunks = list(
        iter_features(path, spec, tracker=tracker, max_side=max_side, stats=stats, experts=experts)
    )
    if not chunks:
        return empty_features(spec, experts=experts)
    return VideoFeatures.concat(chunks)


def empty_features(
    spec: MediaSpec, first_step: int = 0, experts: Sequence[str] = ()
) -> VideoFeatures:
    """A zero-step :class:`VideoFeatures` (a video shorter than one step)."""
    s = spec
    return VideoFeatures(
        spec=s,
        first_step=first_step,
        face=np.zeros((0, s.face_size, s.face_size, 3), np.uint8),
        mouth=np.zeros((0, s.mouth_size, s.mouth_size, 3), np.uint8),
        mel=np.zeros((0, s.mel_frames_per_step, s.n_mels), np.float16),
        face_mask=np.zeros(0, bool),
        audio_mask=np.zeros(0, bool),
        landmarks=np.zeros((0, N_LANDMARKS, 2), np.float16),
        experts={e.name: np.zeros((0, e.n_channels), np.float16) for e in expert_streams(experts)},
    )


@dataclass(frozen=True)
class CacheResult:
    """What :func:`cache_video` did for one video."""

    path: Path
    skipped: bool  # an up-to-date cache already existed
    n_steps: int
    duration: float  # seconds
    face_rate: float
    audio_rate: float
    notes: tuple[str, ...] = ()


def cache_video(
    video: str | Path,
    cache_file: str | Path,
    spec: MediaSpec | None = None,
    *,
    tracker: Tracker | None = None,
    max_side: int | None = 640,
    chunk_steps: int = 250,
    force: bool = False,
    extra_meta: dict[str, Any] | None = None,
    experts: Sequence[str] = (),
) -> CacheResult:
    """Preprocess ``video`` into ``cache_file`` unless a complete cache made from the same
    source (fingerprint) with the same ``spec`` exists. Streams: bounded memory.

    ``experts`` (names in :mod:`avdf.experts`) are stored with the features. A cache that is
    up to date but lacks some of them (or holds another version) gets them added without
    redoing the face tracking (streams it holds beyond ``experts`` are kept).
    """
    from avdf.preprocess.cache import (
        CacheWriter,
        add_expert_streams,
        missing_experts,
        read_meta,
        source_fingerprint,
    )

    spec = spec or MediaSpec()
    wanted = [e.name for e in expert_streams(experts)]  # unknown names fail here
    cache_file = Path(cache_file)
    fingerprint = source_fingerprint(probe(video).path)
    tracker = tracker if tracker is not None else default_tracker(spec)  # loads no model yet
    # Crops and landmarks depend on the tracker's options: a cache made with others is stale.
    tracking = getattr(tracker, "settings", None)
    meta = read_meta(cache_file) if cache_file.exists() else None
    if (
        not force
        and meta is not None
        and meta.get("spec") == spec.to_dict()
        and meta.get("source_fingerprint") == fingerprint
        and meta.get("tracking") == tracking
    ):
        missing = missing_experts(meta, wanted)
        if missing:
            results = {name: compute_expert(EXPERTS[name], video, spec) for name in missing}
            add_expert_streams(
                cache_file,
                {
                    name: functools.partial(expert_steps, result, spec)
                    for name, result in results.items()
                },
            )
        return CacheResult(
            cache_file,
            not missing,
            int(meta["n_steps"]),
            float(meta["duration"]),
            float(meta["face_rate"]),
            float(meta["audio_rate"]),
            tuple(meta.get("notes", ())),
        )
    stats = ExtractionStats()
    base = {
        "source_path": str(video),
        "source_fingerprint": fingerprint,
        "max_side": max_side,
        "tracking": tracking,
    }
    base.update(extra_meta or {})
    writer = CacheWriter(cache_file, base)
    with writer:
        for chunk in iter_features(
            video, spec, chunk_steps, tracker, max_side, stats, experts=experts
        ):
            writer.append(chunk)
        # Known only once the video is done; meta.json is written when the writer closes.
        writer.meta["source"] = stats.info.to_dict() if stats.info else None
        writer.meta["notes"] = list(stats.notes)
    return CacheResult(
        cache_file,
        False,
        stats.n_steps,
        stats.duration,
        stats.face_rate,
        stats.audio_rate,
        tuple(stats.notes),
    )
