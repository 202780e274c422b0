"""Source media for the synthetic corpus: where it is, which split each file belongs to,
and the one-time preparation of every talking clip (decode, face landmarks, square crop).

A source folder has ``talking/`` (videos of one talking face with its own speech) and
``speech/`` (speech recordings of other speakers). Each talking clip is decoded and tracked
exactly once; every output video is then cut from these in-memory arrays.
"""

from __future__ import annotations

import hashlib
import importlib.resources
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import av
import cv2
import numpy as np

from avdf.errors import InputError
from avdf.io.decode import probe, read_audio, read_clip
from avdf.native_logs import native_stderr_silenced
from avdf.preprocess.face import FaceTracker
from avdf.timebase import MediaSpec

SPLITS = ("train", "dev", "test")
OUTPUT_SIZE = 224  # pixels, square side of every output video
DECODE_MAX_SIDE = 448  # pixels; large sources are downscaled while decoding
FACE_BOX_SCALE = 2.0  # crop side = this x the face's landmark extent (head plus shoulders)
STILL_GREY_LEVELS = 0.5  # consecutive frames closer than this (mean |grey difference|) repeat

# Talking clips of the shared media that show the same person (checked by eye on a contact sheet
# of all 29 clips): they must land in the same split, or a test identity is seen in training.
# File names only; every other clip is its own person.
SAME_PERSON: tuple[frozenset[str], ...] = (
    frozenset({"lipnet_grid_id2_vcd_swwp2s.mpg", "lipnet_grid_pwij3p.mpg"}),  # GRID speaker
    frozenset({"talking-face_pc-avs_00104.mp4", "talking-face_pc-avs_741400163.mp4"}),
)


@dataclass(frozen=True)
class SourceMedia:
    """The files a corpus is built from (absolute paths, sorted by name)."""

    root: Path
    talking: tuple[Path, ...]
    speech: tuple[Path, ...]


@dataclass
class TalkingSource:
    """One talking clip, decoded once, cropped to a square around the face."""

    name: str  # path relative to the source root, e.g. "talking/x.mp4"
    person: str  # identity key (see person_of): clips of one person share it
    frames: np.ndarray  # (N, S, S, 3) uint8 RGB at spec.fps, S = OUTPUT_SIZE
    audio: np.ndarray  # (N * samples_per_frame,) float32 mono at spec.sample_rate
    landmarks: np.ndarray  # (N, 468, 2) float32 pixels in the cropped frame (NaN if absent)
    crop_box: tuple[int, int, int, int]  # x0, y0, side (in decoded pixels), decoded width

    @property
    def n_frames(self) -> int:
        return len(self.frames)

    @property
    def face_present(self) -> np.ndarray:
        """(N,) bool: landmarks found in this frame."""
        return np.isfinite(self.landmarks).all(axis=(1, 2))

    @cached_property
    def repeated_frame_share(self) -> float:
        """Share of consecutive frame pairs that are the same picture up to codec noise. Demo
        clips up-sampled from a lower frame rate repeat a third to a half of their frames."""
        if self.n_frames < 2:
            return 0.0
        grey = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in self.frames])
        steps = np.abs(np.diff(grey.astype(np.int16), axis=0)).mean(axis=(1, 2))
        return float(np.mean(steps < STILL_GREY_LEVELS))


def bundled_media_root() -> Path:
    """The small source subset shipped inside the package (works after a plain install)."""
    return Path(str(importlib.resources.files("avdf") / "assets" / "synth_media"))


def default_media_root() -> Path:
    """``../shared/media`` relative to the current directory when it exists (the full set of
    shared clips next to a checkout), else the bundled subset."""
    shared = Path.cwd().parent / "shared" / "media"
    if (shared / "talking").is_dir():
        return shared.resolve()
    return bundled_media_root()


def discover(root: str | Path | None = None) -> SourceMedia:
    """List the talking clips and speech files under ``root`` (default: see
    :func:`default_media_root`).

    Files are probed, not filtered by extension: ``talking/`` keeps every file PyAV decodes with
    a video and an audio stream (MPEG-1 ``.mpg`` GRID clips included), ``speech/`` every file
    with an audio stream. Anything else (licence tables, notes, broken files) is skipped."""
    base = Path(root) if root is not None else default_media_root()
    if not (base / "talking").is_dir():
        raise InputError(base, "source media folder has no talking/ subfolder")
    # Absolute, not resolved: a linked-in file keeps its name under the folder ("speech/x.wav"),
    # which is how folds recognise a donor voice shared by two corpora.
    base = base.absolute()
    talking = tuple(sorted(p for p in _files(base / "talking") if _is_talking_clip(p)))
    speech = tuple(sorted(p for p in _files(base / "speech") if _has_audio(p)))
    if not talking:
        raise InputError(base / "talking", "no decodable talking-face videos (video + audio)")
    return SourceMedia(base, talking, speech)


def name_in(path: Path, root: Path) -> str:
    """A source's name in the corpus metadata: its place under the media folder
    (``talking/x.mp4``, ``speech/y.wav``), or its bare name when it lies elsewhere."""
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name


def _files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]


def _is_talking_clip(path: Path) -> bool:
    try:
        info = probe(path)  # decodes the first frame, so corrupt files are caught here
    except InputError:
        return False
    return info.has_video and info.has_audio


def _has_audio(path: Path) -> bool:
    try:
        with av.open(str(path)) as container:
            return bool(container.streams.audio)
    except (av.error.FFmpegError, OSError, UnicodeDecodeError):
        return False


def person_of(path: Path) -> str:
    """Identity key of a source file: the first name of its :data:`SAME_PERSON` group, else
    its own name."""
    for group in SAME_PERSON:
        if path.name in group:
            return min(group)
    return path.name


def _stable_key(name: str) -> str:
    # Hash of the name only, so a person keeps its place whatever else is in the folder.
    return hashlib.sha1(name.encode("utf-8")).hexdigest()


def assign_splits(paths: tuple[Path, ...] | list[Path]) -> dict[str, list[Path]]:
    """Deterministic split of source files, disjoint in files and in people.

    Files of one person (:func:`person_of`) stay together. People are ordered by a hash of
    their key; test takes people until it holds ``max(1, round(0.15 k))`` of the ``k`` files,
    dev as many, train the rest (13 single-person clips -> 9 / 2 / 2; the 29 shared clips of
    27 people -> 21 / 4 / 4 or so). With fewer than three people, the first goes to train and
    the second to test, so that a one-file folder still yields a train split.
    """
    people: dict[str, list[Path]] = {}
    for path in sorted(paths):
        people.setdefault(person_of(path), []).append(path)
    ordered = [people[key] for key in sorted(people, key=_stable_key)]
    splits: dict[str, list[Path]] = {s: [] for s in SPLITS}
    if len(ordered) < 3:
        for split, files in zip(("train", "test"), ordered, strict=False):
            splits[split].extend(files)
        return splits
    n_held = max(1, round(0.15 * len(paths)))
    for files in ordered:
        # Always leave at least one person for train.
        held = ("test", "dev") if files is not ordered[-1] else ()
        target = next((s for s in held if len(splits[s]) < n_held), "train")
        splits[target].extend(files)
    return splits


def _read_clip(path: Path, spec: MediaSpec, max_side: int) -> tuple[np.ndarray, np.ndarray]:
    clip = read_clip(path, spec, max_side=max_side)
    if len(clip.audio) == 0:
        raise InputError(path, "talking clip has no audio stream")
    return clip.frames, np.asarray(clip.audio, dtype=np.float32)


def _track(frames: np.ndarray, spec: MediaSpec) -> np.ndarray:
    with native_stderr_silenced(), FaceTracker(spec) as tracker:
        chunk = tracker.process(frames)
    return np.asarray(chunk.landmarks, dtype=np.float32)  # (N, 468, 2) pixels


def _face_square(landmarks: np.ndarray, height: int, width: int) -> tuple[int, int, int]:
    """A fixed square (x0, y0, side) around the median face position of the clip."""
    found = np.isfinite(landmarks).all(axis=(1, 2))
    side_max = min(height, width)
    if not found.any():
        return (width - side_max) // 2, (height - side_max) // 2, side_max
    pts = landmarks[found]  # (M, 468, 2)
    centre = np.median(pts.mean(axis=1), axis=0)
    extent = np.median((pts.max(axis=1) - pts.min(axis=1)).max(axis=1))
    side = int(min(side_max, max(32.0, FACE_BOX_SCALE * extent)))
    x0 = int(np.clip(round(centre[0] - side / 2), 0, width - side))
    y0 = int(np.clip(round(centre[1] - side / 2), 0, height - side))
    return x0, y0, side


def prepare_talking(path: Path, root: Path, spec: MediaSpec) -> TalkingSource:
    """Decode a talking clip, find its face, and crop a fixed face-centred square resized to
    ``OUTPUT_SIZE`` (landmarks are mapped into the same pixels)."""
    frames, audio = _read_clip(path, spec, DECODE_MAX_SIDE)
    if len(frames) < spec.fps:
        raise InputError(path, "talking clip is shorter than one second")
    landmarks = _track(frames, spec)
    height, width = frames.shape[1:3]
    x0, y0, side = _face_square(landmarks, height, width)
    scale = OUTPUT_SIZE / side
    interp = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
    cropped = np.stack(
        [
            cv2.resize(
                f[y0 : y0 + side, x0 : x0 + side], (OUTPUT_SIZE, OUTPUT_SIZE), interpolation=interp
            )
            for f in frames
        ]
    )
    mapped = (landmarks - np.array([x0, y0], dtype=np.float32)) * scale
    n = len(cropped)
    need = n * spec.samples_per_frame
    audio = np.pad(audio[:need], (0, max(0, need - len(audio))))
    return TalkingSource(
        name=name_in(path, root),
        person=person_of(path),
        frames=cropped,
        audio=audio.astype(np.float32),
        landmarks=mapped.astype(np.float32),
        crop_box=(x0, y0, side, width),
    )


def load_speech(path: Path, spec: MediaSpec) -> np.ndarray:
    """(S,) float32 mono speech at ``spec.sample_rate``."""
    audio = read_audio(path, spec)
    if len(audio) < spec.sample_rate // 4:
        raise InputError(path, "speech file has less than 0.25 s of audio")
    return audio.astype(np.float32)
