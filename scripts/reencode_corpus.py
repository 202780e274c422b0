"""Re-encode a labelled real-world folder through one seeded random chain (the shortcut guard).

Usage: python scripts/reencode_corpus.py SRC OUT [--seed 0] [--real-copies 1] [--frame-face]
                                         [--extra-reals DIR] [--no-balance-audio] [--force]

SRC holds a ``labels.tsv`` (``avdf.datasets.realworld``). Every clip is decoded with avdf's
own decoder (rotation applied, 25 fps by presentation time, 16 kHz mono) and written again
with parameters drawn per clip from a generator seeded by ``(seed, file)``: codec (H.264 or
MPEG-4 Part 2), height 240-480 px (even), frame rate 24/25/30, video bitrate from 0.04-0.16
bits per pixel, crop jitter (0-6 % per side) and, one clip in four, a black pad (0-5 %);
AAC audio at 16/24/44.1 kHz and 32-96 kb/s. Real and fake then share one distribution of
everything a container says, so a detector cannot tell them apart by resolution, codec,
frame rate, bitrate or face size alone (``scripts/metadata_baseline.py`` checks).

- ``--real-copies N``: each real clip is written N times through independent chains
  (``<id>~1`` ... for the extra copies; the row's ``reencoded_from`` keeps the source file so
  splits and folds keep the copies together). realworld-train has 29 reals for 73 fakes.
- ``--extra-reals DIR``: talking clips of DIR (e.g. ``../shared/media/talking``) join as
  reals (kind real, generator none), through the same chain.
- ``--frame-face``: the framing is drawn too. The face's height as a share of the output
  frame's height is set per clip from one range (``FACE_SHARE_RANGE``), spread evenly over it
  within each class in a seeded random order (so both classes get the same shares), and the
  frame is cropped around the face (zoom in) or padded black around it (zoom out) to give
  it. Without it the chain keeps each clip's own framing, and face share (tight face crops
  among the reals, half-body shots among the fakes) and face size in pixels still separate
  the classes. The face is found by MediaPipe on a few frames (median box of the face mesh);
  a clip without a face keeps its framing (its row's ``note`` says ``frame-kept``).
- Audio balance (default on): realworld-train's reals lack audio far more often than its
  fakes (15 of 29 against 5 of 73), a label shortcut of its own; clips of the class with the
  smaller no-audio share lose their audio track (chosen by a seeded rank) until both classes
  have the same share. ``--no-balance-audio`` keeps every track.

Writes OUT/<file>.mp4 for every clip and OUT/labels.tsv (SRC's columns plus ``reencoded_from``
and ``chain``, the parameters used). Each file and the labels are written atomically; a rerun
skips files whose ``chain`` is unchanged, so it is idempotent and resumes after a kill.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from avdf.atomic import atomic_path, write_text_atomic
from avdf.datasets.realworld import LABELS_FILE, load, read_labels
from avdf.errors import AvdfError, one_line
from avdf.io.decode import iter_audio, iter_video_frames
from avdf.timebase import MediaSpec

CODECS: tuple[str, ...] = ("h264", "mpeg4")
FPS_CHOICES: tuple[int, ...] = (24, 25, 30)
HEIGHT_RANGE = (240, 480)
BITS_PER_PIXEL = (0.04, 0.16)
CROP_MAX = 0.06  # of the width / height, per side
PAD_PROBABILITY, PAD_MAX = 0.25, 0.05
AUDIO_RATES: tuple[int, ...] = (16000, 24000, 44100)
AUDIO_KBPS = (32, 96)
FACE_SHARE_RANGE = (0.2, 0.6)  # face height / frame height with --frame-face (talking-head shots)
FACE_SEARCH_FRAMES = 5
DECODE_MAX_SIDE = 960  # >= 2x the largest output height: no detail lost, decoding is cheaper
EXTRA_COLUMNS: tuple[str, ...] = ("reencoded_from", "chain")
_ENCODERS = {"h264": "libx264", "mpeg4": "mpeg4"}
_VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".mkv", ".avi", ".webm", ".mpg", ".m4v"})


@dataclass(frozen=True)
class Chain:
    """One clip's re-encoding parameters (fractions of the decoded frame for crop / pad)."""

    codec: str
    height: int
    fps: int
    bits_per_pixel: float
    crop: tuple[float, float, float, float]  # left, top, right, bottom
    pad: tuple[float, float, float, float]
    audio_rate: int
    audio_kbps: int
    keep_audio: bool = True
    face_share: float | None = None  # drawn framing (--frame-face); crop / pad then follow it

    def describe(self) -> str:
        crop = ",".join(f"{c:.3f}" for c in self.crop)
        pad = ",".join(f"{p:.3f}" for p in self.pad)
        audio = f"aac{self.audio_rate}/{self.audio_kbps}k" if self.keep_audio else "noaudio"
        framing = "" if self.face_share is None else f" face{self.face_share:.3f}"
        return (
            f"{self.codec} h{self.height} {self.fps}fps bpp{self.bits_per_pixel:.3f} "
            f"crop{crop} pad{pad}{framing} {audio}"
        )


def rng_for(seed: int, key: str) -> np.random.Generator:
    """A generator that depends only on ``seed`` and ``key`` (stable across runs and hosts)."""
    digest = hashlib.sha256(f"avdf-reencode:{seed}:{key}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big"))


def draw_chain(seed: int, key: str) -> Chain:
    """One clip's chain (with ``--frame-face``, :func:`plan` then gives it a face share from
    :func:`stratified_face_shares` and :func:`framed` sets crop and pad from the face)."""
    rng = rng_for(seed, key)
    low, high = HEIGHT_RANGE
    pad = (0.0, 0.0, 0.0, 0.0)
    crop = tuple(float(x) for x in rng.uniform(0, CROP_MAX, 4))
    if rng.random() < PAD_PROBABILITY:
        pad = tuple(float(x) for x in rng.uniform(0, PAD_MAX, 4))
    return Chain(
        codec=str(rng.choice(CODECS)),
        height=2 * int(rng.integers(low // 2, high // 2 + 1)),
        fps=int(rng.choice(FPS_CHOICES)),
        bits_per_pixel=float(rng.uniform(*BITS_PER_PIXEL)),
        crop=crop,  # type: ignore[arg-type]
        pad=pad,  # type: ignore[arg-type]
        audio_rate=int(rng.choice(AUDIO_RATES)),
        audio_kbps=int(rng.integers(AUDIO_KBPS[0], AUDIO_KBPS[1] + 1)),
    )


@dataclass(frozen=True)
class FaceBox:
    """Where a clip's face is, in the decoded frame's pixels (median over a few frames)."""

    cx: float
    cy: float
    height: float
    frame_width: int
    frame_height: int


def face_boxes(frames: list[np.ndarray]) -> list[tuple[float, float, float]]:
    """``(centre x, centre y, height)`` of the face-mesh box in each frame that shows a face
    (MediaPipe, one face; frames without one are skipped)."""
    from avdf.native_logs import native_stderr_silenced
    from avdf.preprocess.face_backends import MediaPipeBackend

    boxes = []
    with native_stderr_silenced():
        backend = MediaPipeBackend(max_faces=1)
        try:
            for frame in frames:
                faces = backend.detect(frame)
                if faces:
                    (x0, y0), (x1, y1) = faces[0].min(axis=0), faces[0].max(axis=0)
                    boxes.append((float(x0 + x1) / 2, float(y0 + y1) / 2, float(y1 - y0)))
        finally:
            backend.close()
    return boxes


def find_face(src: Path, n_frames: int = FACE_SEARCH_FRAMES) -> FaceBox | None:
    """The median face-mesh box over ``n_frames`` frames spread over ``src`` (decoded as
    :func:`reencode` decodes it), or None when no frame shows a face."""
    spec = MediaSpec()
    frames = [
        frame
        for chunk in iter_video_frames(src, spec, max_side=DECODE_MAX_SIDE)
        for frame in chunk[:: spec.fps]  # one frame a second is plenty to choose from
    ]
    if not frames:
        return None
    picks = np.unique(np.linspace(0, len(frames) - 1, n_frames).round().astype(int))
    boxes = face_boxes([frames[i] for i in picks])
    if not boxes:
        return None
    cx, cy, height = np.median(np.array(boxes, np.float64), axis=0)
    h, w = frames[0].shape[:2]
    return FaceBox(float(cx), float(cy), float(height), int(w), int(h))


def framed(chain: Chain, face: FaceBox) -> Chain:
    """``chain`` with crop and pad replaced by a window around ``face`` whose height makes
    the face ``chain.face_share`` of the frame (the source's aspect kept): a crop where the
    window lies inside the frame, black padding where it reaches past an edge."""
    assert chain.face_share is not None
    w, h = face.frame_width, face.frame_height
    win_h = face.height / chain.face_share
    win_w = win_h * w / h

    def span(centre: float, size: float, limit: int) -> tuple[float, float, float, float]:
        # Window start clamped so it stays inside the frame when smaller, covers it when larger.
        start = float(np.clip(centre - size / 2, min(0.0, limit - size), max(0.0, limit - size)))
        end = start + size
        cut_lo, cut_hi = max(0.0, start), max(0.0, limit - end)
        kept = limit - cut_lo - cut_hi
        return cut_lo / limit, cut_hi / limit, max(0.0, -start) / kept, max(0.0, end - limit) / kept

    crop_l, crop_r, pad_l, pad_r = span(face.cx, win_w, w)
    crop_t, crop_b, pad_t, pad_b = span(face.cy, win_h, h)
    return Chain(
        **{
            **chain.__dict__,
            "crop": (crop_l, crop_t, crop_r, crop_b),
            "pad": (pad_l, pad_t, pad_r, pad_b),
        }
    )


def _geometry(chain: Chain, width: int, height: int) -> tuple[slice, slice, int, int]:
    """Crop slices of a decoded (H, W) frame and the output size (even, aspect kept)."""
    left, top, right, bottom = chain.crop
    rows = slice(round(top * height), height - round(bottom * height))
    cols = slice(round(left * width), width - round(right * width))
    crop_h, crop_w = rows.stop - rows.start, cols.stop - cols.start
    pad_l, pad_t, pad_r, pad_b = chain.pad
    aspect = crop_w * (1 + pad_l + pad_r) / (crop_h * (1 + pad_t + pad_b))
    out_w = max(2, 2 * round(chain.height * aspect / 2))
    return rows, cols, out_w, chain.height


def _padded(frame: np.ndarray, chain: Chain) -> np.ndarray:
    if not any(chain.pad):
        return frame
    h, w = frame.shape[:2]
    pad_l, pad_t, pad_r, pad_b = (
        round(p * s) for p, s in zip(chain.pad, (w, h, w, h), strict=True)
    )
    return np.pad(frame, ((pad_t, pad_b), (pad_l, pad_r), (0, 0)))


def _retimed(chunks: Iterator[np.ndarray], source_fps: int, fps: int) -> Iterator[np.ndarray]:
    """Frames at ``fps`` from frames at ``source_fps``: output frame k shows the source frame
    on screen at k / fps (a frame repeated or dropped, as a player or a re-encoder does)."""
    k = 0
    first = 0  # index of the chunk's first source frame
    for chunk in chunks:
        while True:
            index = (k * source_fps) // fps
            if index >= first + len(chunk):
                break
            yield chunk[index - first]
            k += 1
        first += len(chunk)


def reencode(src: Path, dst: Path, chain: Chain) -> None:
    """Write ``src`` through ``chain`` to ``dst`` (mp4), atomically."""
    spec = MediaSpec()
    audio = (
        np.concatenate([np.zeros(0, np.float32), *iter_audio(src, spec)])
        if chain.keep_audio
        else np.zeros(0, np.float32)
    )
    with atomic_path(dst) as tmp, av.open(str(tmp), "w", format="mp4") as out:
        video_out = None
        geometry = None
        frames = iter_video_frames(src, spec, max_side=DECODE_MAX_SIDE)
        for i, frame in enumerate(_retimed(frames, spec.fps, chain.fps)):
            if geometry is None:
                geometry = _geometry(chain, frame.shape[1], frame.shape[0])
                width, height = geometry[2], geometry[3]
                video_out = out.add_stream(_ENCODERS[chain.codec], rate=chain.fps)
                video_out.width, video_out.height = width, height
                video_out.pix_fmt = "yuv420p"
                video_out.bit_rate = int(chain.bits_per_pixel * width * height * chain.fps)
                if chain.codec == "h264":
                    # mbtree off: x264 is otherwise not byte-reproducible (see avdf synth).
                    video_out.options = {"x264-params": "mbtree=0", "preset": "veryfast"}
                if len(audio):
                    audio_out = out.add_stream("aac", rate=chain.audio_rate)
                    audio_out.layout = "mono"
                    audio_out.bit_rate = chain.audio_kbps * 1000
            rows, cols, width, height = geometry
            picture = av.VideoFrame.from_ndarray(
                np.ascontiguousarray(_padded(frame[rows, cols], chain)), format="rgb24"
            )
            picture = picture.reformat(width=width, height=height, format="yuv420p")
            picture.pts, picture.time_base = i, Fraction(1, chain.fps)
            out.mux(video_out.encode(picture))
        if video_out is None:
            raise AvdfError(f"{src}: no video frame decoded")
        out.mux(video_out.encode())
        if len(audio):
            _encode_audio(out, audio_out, audio, spec.sample_rate, chain.audio_rate)


def _encode_audio(
    out: av.container.OutputContainer,
    stream: av.audio.stream.AudioStream,
    samples: np.ndarray,
    rate: int,
    out_rate: int,
) -> None:
    resampler = av.AudioResampler(format="fltp", layout="mono", rate=out_rate)
    step = 4096
    for start in range(0, len(samples), step):
        chunk = np.ascontiguousarray(samples[None, start : start + step], np.float32)
        frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
        frame.sample_rate, frame.pts = rate, start
        for resampled in resampler.resample(frame):
            out.mux(stream.encode(resampled))
    for resampled in resampler.resample(None):
        out.mux(stream.encode(resampled))
    out.mux(stream.encode())


# --- the corpus --------------------------------------------------------------------------


@dataclass
class Job:
    file: str  # output file name
    source: Path
    row: dict[str, str]
    chain: Chain


def _extra_real_rows(folder: Path) -> list[tuple[str, dict[str, str]]]:
    rows = []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in _VIDEO_SUFFIXES and path.is_file():
            row = {"file": path.name, "label": "real", "kind": "real", "generator": "none"}
            rows.append((str(path), row))
    return rows


def plan(
    src: Path,
    seed: int,
    real_copies: int,
    extra_reals: Path | None,
    balance_audio: bool,
    frame_face: bool = False,
) -> tuple[list[str], list[Job]]:
    """The output columns and one job per output clip (nothing is written)."""
    header: list[str] = []
    rows: list[tuple[Path, dict[str, str]]] = []
    load(src, split_by="none", probe_durations=False)  # every row checked: one-line errors
    for _, row in read_labels(src / LABELS_FILE):
        header = header or list(row)
        rows.append((src / row["file"], row))
    if extra_reals is not None:
        for source, row in _extra_real_rows(extra_reals):
            row = {**row, "file": f"extra-{row['file']}", "note": f"real clip from {extra_reals}"}
            rows.append((Path(source), row))
    header += [c for c in ("note", *EXTRA_COLUMNS) if c not in header]
    jobs, faces = [], {}
    for source, row in rows:
        copies = real_copies if row["label"] == "real" else 1
        stem = Path(row["file"]).stem
        face = find_face(source) if frame_face else None
        if frame_face and face is None:
            row = {**row, "note": (row.get("note", "") + " frame-kept").strip()}
        for copy in range(copies):
            file = f"{stem}.mp4" if copy == 0 else f"{stem}~{copy}.mp4"
            job = Job(file, source, {**row, "reencoded_from": row["file"]}, draw_chain(seed, file))
            jobs.append(job)
            if face is not None:  # a face share only where there is a face to frame
                faces[file] = face
    framed_jobs = [j for j in jobs if j.file in faces]
    for job, share in zip(framed_jobs, stratified_face_shares(framed_jobs, seed), strict=True):
        job.chain = framed(Chain(**{**job.chain.__dict__, "face_share": share}), faces[job.file])
    if balance_audio:
        _balance_audio(jobs, seed)
    for job in jobs:
        job.row.update(file=job.file, chain=job.chain.describe())
        if not job.chain.keep_audio:
            job.row["has_audio"] = "no"
    return header, jobs


def _has_audio(job: Job) -> bool:
    value = job.row.get("has_audio", "").lower()
    if value in ("yes", "no"):
        return value == "yes"
    with av.open(str(job.source)) as container:  # extra reals carry no has_audio column
        return bool(container.streams.audio)


def stratified_face_shares(jobs: Sequence[Job], seed: int) -> list[float]:
    """One face share per job, spread evenly over ``FACE_SHARE_RANGE`` within each label.

    Independent uniform draws left the classes apart by chance (realworld-train: mean 0.38
    for fakes against 0.42 for reals, face-share AUC 0.38); evenly spaced quantiles in a seeded
    random order give every label the same distribution, so the share tells them nothing.
    """
    low, high = FACE_SHARE_RANGE
    shares = [0.0] * len(jobs)
    by_label: dict[str, list[int]] = {}
    for i, job in enumerate(jobs):
        by_label.setdefault(job.row["label"], []).append(i)
    for members in by_label.values():
        order = sorted(members, key=lambda i: rng_for(seed, "face:" + jobs[i].file).random())
        for rank, i in enumerate(order):
            shares[i] = low + (high - low) * (rank + 0.5) / len(order)
    return shares


def _balance_audio(jobs: list[Job], seed: int) -> None:
    """Drop audio tracks until real and fake clips lack audio equally often."""
    by_label: dict[str, list[Job]] = {}
    for job in jobs:
        by_label.setdefault(job.row["label"], []).append(job)
    if len(by_label) < 2:
        return
    shares = {k: sum(not _has_audio(j) for j in v) / len(v) for k, v in by_label.items()}
    target = max(shares.values())
    for group in by_label.values():
        with_audio = [j for j in group if _has_audio(j)]
        n_drop = round(target * len(group)) - (len(group) - len(with_audio))
        ranked = sorted(with_audio, key=lambda j: rng_for(seed, "audio:" + j.file).random())
        for job in ranked[: max(0, n_drop)]:
            job.chain = Chain(**{**job.chain.__dict__, "keep_audio": False})


def _previous_chains(out: Path) -> dict[str, str]:
    try:
        return {row["file"]: row.get("chain", "") for _, row in read_labels(out / LABELS_FILE)}
    except AvdfError:
        return {}


def write_labels(path: Path, header: list[str], rows: list[dict[str, str]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_NONE)
    writer.writerow(header)
    for row in rows:
        writer.writerow([row.get(column, "") for column in header])
    write_text_atomic(path, buffer.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path, help="folder with labels.tsv")
    parser.add_argument("out", type=Path, help="output folder (created)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--real-copies", type=int, default=1, metavar="N")
    parser.add_argument("--extra-reals", type=Path, default=None, metavar="DIR")
    parser.add_argument("--no-balance-audio", action="store_true")
    parser.add_argument(
        "--frame-face", action="store_true", help="draw the face's share of the frame too"
    )
    parser.add_argument("--force", action="store_true", help="re-encode every clip")
    parser.add_argument("--limit", type=int, default=None, help="only the first N clips")
    args = parser.parse_args(argv)
    if args.src.resolve() == args.out.resolve():
        print(f"reencode_corpus: {args.out}: output folder is the source folder", file=sys.stderr)
        return 1
    try:
        header, jobs = plan(
            args.src,
            args.seed,
            args.real_copies,
            args.extra_reals,
            not args.no_balance_audio,
            args.frame_face,
        )
    except (AvdfError, OSError) as e:
        print(f"reencode_corpus: {e}", file=sys.stderr)
        return 1
    jobs = jobs[: args.limit]
    previous = _previous_chains(args.out)
    done, skipped, failed = [], 0, []
    for job in jobs:
        target = args.out / job.file
        if not args.force and target.is_file() and previous.get(job.file) == job.row["chain"]:
            skipped += 1
            done.append(job.row)
            continue
        try:
            reencode(job.source, target, job.chain)
            done.append(job.row)
        except (AvdfError, OSError, ValueError) as e:
            failed.append(one_line(job.source, e))
    # Only clips that exist go into the labels: the folder stays loadable after a failure.
    write_labels(args.out / LABELS_FILE, header, done)
    print(
        f"reencode_corpus: {len(done) - skipped} written, {skipped} unchanged, "
        f"{len(failed)} failed -> {args.out}"
    )
    for line in failed:
        print(line, file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
