"""Keyframe face tracking against the every-frame tracker: accuracy and cost, as a table.

For each clip, the default tracker (``FaceTracker(spec)``: landmarks on keyframes, interpolated
in between, every frame on fast motion) and the every-frame tracker (``landmark_every=1``,
otherwise the same options) track the same decoded frames, in the pipeline's chunks. Per clip
the table shows the share of frames the landmark model ran on, the tracking time of both, and
how far the default tracker's mouth crop sits from the every-frame tracker's (distance between
the crop centres in crop sides; the target is <= 0.05 on >= 95% of frames, issue 12).

    python benchmarks/tracking_accuracy.py                       # the shared talking clips
    python benchmarks/tracking_accuracy.py --clips DIR --max-frames 100
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from avdf.io.decode import iter_video_frames
from avdf.native_logs import native_stderr_silenced
from avdf.preprocess.face import FaceTracker, mouth_centre_offsets
from avdf.timebase import MediaSpec

SHARED_CLIPS = Path(__file__).resolve().parents[2] / "shared" / "media" / "talking"
TOLERANCE = 0.05  # crop sides
CHUNK_FRAMES = 250  # the pipeline's default chunk (preprocess/pipeline.py)


@dataclass
class ClipResult:
    name: str
    frames: int
    model_runs: int  # frames the default tracker ran the landmark model on
    seconds: float  # default tracker's wall time
    every_frame_seconds: float
    offsets: np.ndarray  # (frames,) crop sides; NaN where either tracker has no face
    mask_agreement: float  # share of frames where both agree on face present / absent

    @property
    def within(self) -> float:
        """Share of frames with a face in both whose mouth crops are within TOLERANCE."""
        valid = self.offsets[np.isfinite(self.offsets)]
        return float((valid <= TOLERANCE).mean()) if len(valid) else float("nan")


def decode_chunks(path: Path, spec: MediaSpec, max_frames: int | None) -> list[np.ndarray]:
    """The clip as the pipeline sees it: (n, H, W, 3) uint8 chunks, long side <= 640."""
    chunks, total = [], 0
    for chunk in iter_video_frames(path, spec, max_side=640, chunk_frames=CHUNK_FRAMES):
        if max_frames is not None:
            chunk = chunk[: max_frames - total]
        chunks.append(chunk.copy())
        total += len(chunk)
        if max_frames is not None and total >= max_frames:
            break
    return chunks


class _CountingBackend:
    """Wraps a tracker's backend to count landmark-model calls."""

    def __init__(self, tracker: FaceTracker) -> None:
        self.calls = 0
        backend = tracker.backend
        detect = backend.detect

        def counted(frame: np.ndarray) -> list[np.ndarray]:
            self.calls += 1
            return detect(frame)

        backend.detect = counted  # type: ignore[method-assign]


def track(
    tracker: FaceTracker, chunks: Iterable[np.ndarray]
) -> tuple[np.ndarray, np.ndarray, float, int]:
    """(landmarks (N, 468, 2) float32, face mask (N,), wall seconds, model calls)."""
    tracker.reset()
    counter = _CountingBackend(tracker)  # builds the backend: its load is not timed
    start = time.perf_counter()
    parts = [tracker.process(chunk) for chunk in chunks]
    seconds = time.perf_counter() - start
    landmarks = np.concatenate([p.landmarks for p in parts]).astype(np.float32)
    mask = np.concatenate([p.face_mask for p in parts])
    return landmarks, mask, seconds, counter.calls


def compare_clip(
    path: Path, spec: MediaSpec, max_frames: int | None = None, **options: Any
) -> ClipResult:
    """Track ``path`` with the default tracker (plus ``options``) and the every-frame one."""
    chunks = decode_chunks(path, spec, max_frames)
    with FaceTracker(spec, **options) as tracker:
        settings = tracker.settings
        landmarks, mask, seconds, runs = track(tracker, chunks)
    every_frame = {**settings, "landmark_every": 1}
    every_frame.pop("backend")
    with FaceTracker(spec, backend=settings["backend"], **every_frame) as reference:
        ref_landmarks, ref_mask, ref_seconds, _ = track(reference, chunks)
    return ClipResult(
        name=path.name,
        frames=len(mask),
        model_runs=runs,
        seconds=seconds,
        every_frame_seconds=ref_seconds,
        offsets=mouth_centre_offsets(ref_landmarks, landmarks, spec),
        mask_agreement=float((mask == ref_mask).mean()) if len(mask) else 1.0,
    )


def print_table(results: list[ClipResult]) -> None:
    header = (
        f"| {'clip':34} | frames | model runs | within {TOLERANCE} | p95 offset | max offset "
        "| mask agrees | time / every-frame time |"
    )
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for r in results:
        valid = r.offsets[np.isfinite(r.offsets)]
        p95 = np.percentile(valid, 95) if len(valid) else float("nan")
        worst = valid.max() if len(valid) else float("nan")
        print(
            f"| {r.name[:34]:34} | {r.frames:6d} | {r.model_runs / max(r.frames, 1):10.1%} "
            f"| {r.within:11.1%} | {p95:10.3f} | {worst:10.3f} | {r.mask_agreement:11.1%} "
            f"| {r.seconds:.2f} s / {r.every_frame_seconds:.2f} s |"
        )
    offsets = np.concatenate([r.offsets for r in results])
    valid = offsets[np.isfinite(offsets)]
    frames = sum(r.frames for r in results)
    runs = sum(r.model_runs for r in results)
    seconds = sum(r.seconds for r in results)
    reference = sum(r.every_frame_seconds for r in results)
    label = f"all {len(results)} clips"
    print(
        f"| {label:34} | {frames:6d} | {runs / max(frames, 1):10.1%} "
        f"| {(valid <= TOLERANCE).mean():11.1%} | {np.percentile(valid, 95):10.3f} "
        f"| {valid.max():10.3f} | {np.mean([r.mask_agreement for r in results]):11.1%} "
        f"| {seconds:.2f} s / {reference:.2f} s (x{seconds / reference:.2f}) |"
    )
    worst = min(results, key=lambda r: r.within)
    print(f"worst clip: {worst.name} ({worst.within:.1%} of frames within {TOLERANCE})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=Path, default=SHARED_CLIPS, help="folder of clips")
    parser.add_argument("--max-frames", type=int, help="track at most this many frames a clip")
    parser.add_argument("--landmark-every", type=int, help="override the default keyframe step")
    parser.add_argument("--fast-motion", type=float, help="override the default motion gate")
    args = parser.parse_args()
    options: dict[str, Any] = {}
    if args.landmark_every is not None:
        options["landmark_every"] = args.landmark_every
    if args.fast_motion is not None:
        options["fast_motion"] = args.fast_motion
    clips = sorted(p for p in args.clips.iterdir() if p.suffix in {".mp4", ".mpg", ".avi", ".mov"})
    if not clips:
        raise SystemExit(f"no clips in {args.clips}")
    spec = MediaSpec()
    print(f"tracker: {FaceTracker(spec, **options).settings}")
    with native_stderr_silenced():
        results = [compare_clip(clip, spec, args.max_frames, **options) for clip in clips]
    print_table(results)


if __name__ == "__main__":
    main()
