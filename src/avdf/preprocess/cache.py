"""One cache file per video: per-step features written chunk by chunk, read by window.

Format: a zip archive that ``numpy.load`` also opens (an ``.npz``). Each chunk ``c`` of
:class:`VideoFeatures` is stored as members ``c00000/face.npy``, ``c00000/mouth.npy``, ... and
``meta.json`` is written *last*; it holds the MediaSpec, the source fingerprint, the avdf
version, the duration, the step count, the chunk table, the source MediaInfo and the
face-detection rate. A file is complete only if ``meta.json`` is present and agrees with the
members, and the writer only makes files complete by ``os.replace`` from a temporary sibling
(:func:`avdf.atomic.temporary_sibling`), so a killed run never leaves a file that reads as
complete; the next write of the same file removes what a killed run left.

Expert streams (:mod:`avdf.experts`) are members ``c00000/experts/<name>.npy`` beside the
chunk's arrays, and ``meta.json`` lists them with their versions (``{"experts": {"speaker":
"ge2e-resemblyzer-0.1.4/v1"}}``). A cache without them still reads (for models that do not
use them); :func:`require_experts` turns a missing or outdated stream into one line naming
the file, and :func:`add_expert_streams` adds streams to an existing cache without
redoing the face tracking.

Compression: crops and landmarks are stored with zlib level 1 (measured on the shared clips:
see benchmarks/preprocess.py; face/mouth crops shrink to about half, reading stays fast);
``mel`` and the masks are small and stored as is.

Source fingerprint: sha256 over the file size, the first MiB and the last MiB. Measured here,
a full sha256 of a 20 s 1080p clip costs about as much as reading it, and on reruns of a
large corpus every file would be read again just to be skipped; the fingerprint is O(1) per
file and catches replaced or re-encoded files (not a same-size edit confined to the middle).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import warnings
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from avdf import __version__
from avdf.atomic import remove_stale_temporaries, temporary_sibling
from avdf.errors import InputError
from avdf.experts import EXPERTS
from avdf.preprocess.features import N_LANDMARKS, VideoFeatures
from avdf.timebase import MediaSpec

FORMAT_VERSION = 1
ARRAYS = ("face", "mouth", "mel", "face_mask", "audio_mask", "landmarks")
_COMPRESSED = {"face", "mouth", "landmarks"}
_FINGERPRINT_BLOCK = 1 << 20  # bytes
SUFFIX = ".npz"


def _expert_member(chunk: int, name: str) -> str:
    return f"c{chunk:05d}/experts/{name}.npy"


def source_fingerprint(path: str | Path) -> str:
    """sha256 of (size, first MiB, last MiB) of a file, as hex."""
    size = os.path.getsize(path)
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        digest.update(f.read(_FINGERPRINT_BLOCK))
        if size > _FINGERPRINT_BLOCK:
            f.seek(max(_FINGERPRINT_BLOCK, size - _FINGERPRINT_BLOCK))
            digest.update(f.read(_FINGERPRINT_BLOCK))
    return digest.hexdigest()


def cache_path_for(cache_dir: str | Path, video_id: str) -> Path:
    """Flat, filesystem-safe cache file name for ``video_id`` (ids may contain '/').

    Safe characters are kept, '/' becomes '__' and anything else is percent-encoded; an id
    whose name would be too long is shortened and made unique with a hash.
    """
    name = video_id.replace("%", "%25").replace("/", "__")
    name = re.sub(r"[^A-Za-z0-9._\-%]", lambda m: "".join(f"%{b:02X}" for b in m[0].encode()), name)
    if name.startswith("."):
        name = "%2E" + name[1:]
    if len(name) > 180:
        name = name[:160] + "-" + hashlib.sha256(video_id.encode()).hexdigest()[:16]
    return Path(cache_dir) / f"{name}{SUFFIX}"


def _write_array(archive: zipfile.ZipFile, name: str, array: np.ndarray, compress: bool) -> None:
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    if compress:
        # zlib level 1: most of the gain at a fraction of the time (attribute renamed in 3.13).
        for attribute in ("compress_level", "_compresslevel"):
            if hasattr(info, attribute):
                setattr(info, attribute, 1)
                break
    with archive.open(info, "w", force_zip64=True) as f:
        np.lib.format.write_array(f, np.ascontiguousarray(array), allow_pickle=False)


class CacheWriter:
    """Write one video's features chunk by chunk; the file appears only on success.

    ``meta`` is any JSON-serialisable dict (source path, fingerprint, MediaInfo, ...); the
    writer adds the MediaSpec, avdf version, step count, duration and chunk table.
    """

    def __init__(self, path: str | Path, meta: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        self.meta = dict(meta or {})
        self._tmp = temporary_sibling(self.path)
        self._archive: zipfile.ZipFile | None = None
        self._chunks: list[list[int]] = []  # [first_step, n_steps] per chunk
        self._spec: MediaSpec | None = None
        self._n_steps = 0
        self._face_steps = 0
        self._audio_steps = 0
        self._experts: list[str] | None = None  # names, fixed by the first chunk

    def __enter__(self) -> CacheWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(self.path)
        self._archive = zipfile.ZipFile(self._tmp, "w", allowZip64=True)
        return self

    def append(self, features: VideoFeatures) -> None:
        """Add the next consecutive chunk of steps."""
        if self._archive is None:
            raise RuntimeError("CacheWriter must be used as a context manager")
        if self._spec is None:
            self._spec = features.spec
        elif features.spec != self._spec:
            raise ValueError("all chunks of one cache must share one MediaSpec")
        if features.first_step != self._n_steps:
            raise ValueError(
                f"chunk starts at step {features.first_step}, expected {self._n_steps}"
            )
        if features.n_steps == 0:
            return
        if self._experts is None:
            self._experts = sorted(features.experts)
        elif sorted(features.experts) != self._experts:
            raise ValueError("all chunks of one cache must carry the same expert streams")
        prefix = f"c{len(self._chunks):05d}"
        for name in ARRAYS:
            _write_array(
                self._archive, f"{prefix}/{name}.npy", getattr(features, name), name in _COMPRESSED
            )
        for name in self._experts:
            _write_array(
                self._archive,
                _expert_member(len(self._chunks), name),
                features.experts[name],
                False,
            )
        self._chunks.append([features.first_step, features.n_steps])
        self._n_steps += features.n_steps
        self._face_steps += int(features.face_mask.sum())
        self._audio_steps += int(features.audio_mask.sum())

    def _final_meta(self) -> dict[str, Any]:
        spec = self._spec or MediaSpec.from_dict(self.meta.get("spec") or {})
        meta = dict(self.meta)
        meta.update(
            format_version=FORMAT_VERSION,
            avdf_version=__version__,
            spec=spec.to_dict(),
            n_steps=self._n_steps,
            duration=self._n_steps * spec.step_seconds,
            chunks=self._chunks,
            face_rate=self._face_steps / self._n_steps if self._n_steps else 0.0,
            audio_rate=self._audio_steps / self._n_steps if self._n_steps else 0.0,
            complete=True,
        )
        if self._experts:
            meta["experts"] = {name: EXPERTS[name].version for name in self._experts}
        return meta

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        archive, self._archive = self._archive, None
        if archive is None:
            return
        try:
            if exc_type is None:
                # meta.json last: its presence is what makes the file read as complete.
                archive.writestr("meta.json", json.dumps(self._final_meta(), indent=1))
            archive.close()
            if exc_type is None:
                with open(self._tmp, "rb") as f:
                    os.fsync(f.fileno())
                os.replace(self._tmp, self.path)
        finally:
            if self._tmp.exists():
                self._tmp.unlink()


def read_meta(path: str | Path) -> dict[str, Any] | None:
    """The metadata of a complete cache file, or None if it is missing, partial or unreadable."""
    try:
        with zipfile.ZipFile(path) as archive:
            meta = json.loads(archive.read("meta.json"))
            names = set(archive.namelist())
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    if not meta.get("complete") or meta.get("format_version") != FORMAT_VERSION:
        return None
    n_chunks = len(meta.get("chunks", []))
    wanted = {f"c{i:05d}/{a}.npy" for i in range(n_chunks) for a in ARRAYS}
    wanted |= {_expert_member(i, e) for i in range(n_chunks) for e in meta.get("experts", {})}
    return meta if wanted <= names else None


def video_duration(meta: dict[str, Any]) -> float:
    """The duration a cached video is scored over: the container's, as a pipeline run uses,
    else the cached steps' span (evaluation and training validation share this rule)."""
    source = meta.get("source") or {}
    return float(source.get("duration") or 0.0) or float(meta.get("duration") or 0.0)


def missing_experts(meta: dict[str, Any], experts: Iterable[str]) -> list[str]:
    """Which of ``experts`` a cache's ``meta`` lacks or holds in another version."""
    held = meta.get("experts") or {}
    return [name for name in experts if held.get(name) != EXPERTS[name].version]


def require_experts(path: str | Path, meta: dict[str, Any], experts: Iterable[str]) -> None:
    """:class:`InputError` (one line naming ``path``) unless the cache holds ``experts``
    in their current versions."""
    missing = missing_experts(meta, experts)
    if missing:
        held = meta.get("experts") or {}
        found = ", ".join(f"{k} {v}" for k, v in held.items()) or "none"
        wanted = ", ".join(f"{name} {EXPERTS[name].version}" for name in missing)
        raise InputError(
            path,
            f"cache lacks the expert stream(s) the model needs ({wanted}; it holds {found}): "
            f"rerun avdf preprocess with --experts {' '.join(missing)}",
        )


def add_expert_streams(
    path: str | Path, streams: dict[str, Callable[[int, np.ndarray], np.ndarray]]
) -> None:
    """Add expert streams to a complete cache, keeping everything else.

    ``streams[name](first_step, mask)`` gives that expert's ``(n, channels)`` values for a
    chunk of ``n`` steps, given the chunk's ``(n,)`` presence mask of the modality the expert
    describes. The file is copied, the new members and a new ``meta.json`` are appended to
    the copy (a zip keeps the last of two members of one name), and the copy replaces the
    file: a killed run leaves the old cache as it was.
    """
    path = Path(path)
    meta = read_meta(path)
    if meta is None:
        raise ValueError(f"{path}: not a complete avdf cache file")
    tmp = temporary_sibling(path)
    try:
        shutil.copyfile(path, tmp)
        with zipfile.ZipFile(tmp, "a", allowZip64=True) as archive:
            for index, (first, n) in enumerate(meta["chunks"]):
                masks = {}
                for mask in {EXPERTS[name].mask for name in streams}:
                    with archive.open(f"c{index:05d}/{mask}.npy") as f:
                        masks[mask] = np.lib.format.read_array(f, allow_pickle=False)
                for name, values in streams.items():
                    array = np.asarray(values(first, masks[EXPERTS[name].mask]), np.float16)
                    if array.shape != (n, EXPERTS[name].n_channels):
                        raise ValueError(f"expert {name!r} gave {array.shape} for {n} steps")
                    if _expert_member(index, name) not in archive.NameToInfo:
                        _write_array(archive, _expert_member(index, name), array, False)
            held = dict(meta.get("experts") or {})
            held.update({name: EXPERTS[name].version for name in streams})
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "Duplicate name: 'meta.json'"
                archive.writestr("meta.json", json.dumps({**meta, "experts": held}, indent=1))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def is_complete(
    path: str | Path, spec: MediaSpec | None = None, fingerprint: str | None = None
) -> bool:
    """True if ``path`` is a complete cache (made with ``spec`` / from a source with
    ``fingerprint`` when these are given)."""
    meta = read_meta(path)
    if meta is None:
        return False
    if spec is not None and meta.get("spec") != spec.to_dict():
        return False
    return fingerprint is None or meta.get("source_fingerprint") == fingerprint


class CacheReader:
    """Read windows of steps from a cache file; only the chunks a window touches are read."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        meta = read_meta(self.path)
        if meta is None:
            raise ValueError(f"{self.path}: not a complete avdf cache file")
        self.meta: dict[str, Any] = meta
        self.spec = MediaSpec.from_dict(meta["spec"])
        self.n_steps: int = int(meta["n_steps"])
        self.duration: float = float(meta["duration"])
        self._starts = np.array([c[0] for c in meta["chunks"]] + [self.n_steps], np.int64)
        # Expert streams held, by name -> version (read() returns every one of them).
        self.experts: dict[str, str] = dict(meta.get("experts") or {})
        self._archive: zipfile.ZipFile | None = None

    def _zip(self) -> zipfile.ZipFile:
        # Opened lazily so a reader can be created in one process and used in a worker.
        if self._archive is None:
            self._archive = zipfile.ZipFile(self.path)
        return self._archive

    def close(self) -> None:
        if self._archive is not None:
            self._archive.close()
            self._archive = None

    def __enter__(self) -> CacheReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_archive"] = None
        return state

    def _chunk(self, index: int, member: str) -> np.ndarray:
        with self._zip().open(f"c{index:05d}/{member}") as f:
            return np.lib.format.read_array(f, allow_pickle=False)

    def read(self, start: int = 0, stop: int | None = None) -> VideoFeatures:
        """Steps ``[start, stop)`` (clipped to the video) as one :class:`VideoFeatures`."""
        stop = self.n_steps if stop is None else min(stop, self.n_steps)
        start = max(0, min(start, stop))
        if start == stop:
            s = self.spec
            return VideoFeatures(
                s,
                start,
                np.zeros((0, s.face_size, s.face_size, 3), np.uint8),
                np.zeros((0, s.mouth_size, s.mouth_size, 3), np.uint8),
                np.zeros((0, s.mel_frames_per_step, s.n_mels), np.float16),
                np.zeros(0, bool),
                np.zeros(0, bool),
                np.zeros((0, N_LANDMARKS, 2), np.float16),
                {e: np.zeros((0, EXPERTS[e].n_channels), np.float16) for e in self.experts},
            )
        first = int(np.searchsorted(self._starts, start, side="right") - 1)
        last = int(np.searchsorted(self._starts, stop, side="left"))  # exclusive
        parts = []
        members = [f"{name}.npy" for name in ARRAYS] + [f"experts/{e}.npy" for e in self.experts]
        for c in range(first, last):
            lo = max(start, self._starts[c]) - self._starts[c]
            hi = min(stop, self._starts[c + 1]) - self._starts[c]
            parts.append([self._chunk(c, member)[lo:hi] for member in members])
        arrays = [np.concatenate([p[i] for p in parts]) for i in range(len(parts[0]))]
        experts = dict(zip(self.experts, arrays[len(ARRAYS) :], strict=True))
        return VideoFeatures(self.spec, start, *arrays[: len(ARRAYS)], experts)
