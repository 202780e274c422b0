"""Face and mouth thumbnails of a video at a few moments, for the HTML report.

Each moment is found by seeking (PyAV, to the keyframe before it, then decoding forward), so
a still from the end of an hour-long video costs a few frames, not a second pass over the
file. The face is found with the pipeline's landmark backend and cut with the pipeline's own
crop recipe (:func:`avdf.preprocess.face.crop_transforms`), at a larger size than the model's
inputs so a person can see it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import av
import numpy as np

from avdf.timebase import MediaSpec

THUMB_FACE_SIZE = 128  # pixels; the model's face crop is 64
THUMB_MOUTH_SIZE = 96  # pixels; the model's mouth crop is 48


def frames_at(
    path: str | Path, times: Sequence[float], max_side: int = 640
) -> list[np.ndarray | None]:
    """The frame shown at each of ``times`` (seconds from the video's start) as (H, W, 3)
    uint8 RGB, upright, long side <= ``max_side``; None past the end or if decoding fails."""
    out: list[np.ndarray | None] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        base = stream.time_base
        origin = float(stream.start_time * base) if stream.start_time is not None else 0.0
        for t in times:
            out.append(_frame_at(container, stream, origin, float(t), max_side, base))
    return out


def _frame_at(
    container: Any, stream: Any, origin: float, t: float, max_side: int, base: Any
) -> np.ndarray | None:
    try:
        container.seek(int((origin + max(t, 0.0)) / base), stream=stream, backward=True)
        shown = None
        for frame in container.decode(stream):
            if frame.time is None:
                continue
            if frame.time - origin > t + 1e-6 and shown is not None:
                break  # ``shown`` is the last frame that started at or before t
            shown = frame
        if shown is None:
            return None
    except av.error.FFmpegError:
        return None
    scale = min(1.0, max_side / max(shown.width, shown.height))
    width = max(2, int(round(shown.width * scale / 2)) * 2)
    height = max(2, int(round(shown.height * scale / 2)) * 2)
    image = shown.to_ndarray(width=width, height=height, format="rgb24")
    rotation = int(round(getattr(shown, "rotation", 0) / 90.0)) * 90 % 360
    return np.ascontiguousarray(np.rot90(image, k=rotation // 90)) if rotation else image


class ThumbnailGrabber:
    """Face and mouth crops at chosen moments; one landmark backend reused across videos."""

    def __init__(self, spec: MediaSpec | None = None, max_side: int = 640) -> None:
        self.spec = replace(
            spec or MediaSpec(), face_size=THUMB_FACE_SIZE, mouth_size=THUMB_MOUTH_SIZE
        )
        self.max_side = max_side
        self._backend: Any = None  # built on first use: MediaPipe loads its models then

    def grab(
        self, path: str | Path, times: Sequence[float]
    ) -> list[tuple[np.ndarray | None, np.ndarray | None]]:
        """(face, mouth) RGB crops at each of ``times``; (None, None) where no face is seen."""
        from avdf.preprocess.face import create_backend, crop_transforms, warp_crop

        out: list[tuple[np.ndarray | None, np.ndarray | None]] = []
        for frame in frames_at(path, times, self.max_side):
            if frame is None:
                out.append((None, None))
                continue
            if self._backend is None:
                # No focus tracking: the moments are far apart, each is a fresh search.
                self._backend = create_backend("mediapipe", focus_tracking=False)
            faces = self._backend.detect(frame)
            if not faces:
                out.append((None, None))
                continue
            # The largest face: the one the pipeline starts tracking as the main face.
            main = max(faces, key=lambda f: float(np.ptp(f[:, 0]) * np.ptp(f[:, 1])))
            face_matrix, mouth_matrix = crop_transforms(main.astype(np.float64), self.spec)
            out.append(
                (
                    warp_crop(frame, face_matrix, self.spec.face_size),
                    warp_crop(frame, mouth_matrix, self.spec.mouth_size),
                )
            )
        return out

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None
