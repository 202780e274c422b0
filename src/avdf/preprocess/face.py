"""Face and lip tracking: frames -> main-face landmarks -> aligned face and mouth crops.

The recipe follows the lip-reading practice (auto_avsr's landmark -> crop preparation):

1. a :class:`LandmarkBackend` finds every face's 468 mesh points in each frame (while the main
   face is tracked and slow, only on keyframes: frames in between are interpolated from the
   measured frames on both sides, see :class:`FaceTracker`);
2. the *main face* is the track closest to the previous main face (bounding-box IoU), starting
   with the largest face;
3. short gaps (<= ``max_gap_seconds``, counted from the last detection) are filled by linear
   interpolation between known landmarks; longer gaps are masked (``face_mask`` False, zero
   crops);
4. landmarks are smoothed with a one-euro filter (causal);
5. a similarity transform maps stable points (eye corners, nose tip, mouth corners) onto a fixed
   template for the face crop; the mouth crop is centred on the lips' centroid, its side a fixed
   multiple of the outer eye-corner distance, rotated with the face.

:class:`FaceTracker` is stateful across :meth:`FaceTracker.process` calls of one video, so a long
video is tracked chunk by chunk in bounded memory. Chunking changes two things only: missing
frames at the end of a chunk cannot see whether the face comes back, so they *hold* the last
landmarks for up to ``max_gap_seconds`` after the last detection (mask True; the next chunk
interpolates from the held landmarks if the face returns in time); and keyframe interpolation
looks ahead only within its chunk.
"""

from __future__ import annotations

import functools
import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import cv2
import numpy as np

from avdf.preprocess.features import N_LANDMARKS
from avdf.timebase import MediaSpec

# The 40 distinct points of MediaPipe's FACEMESH_LIPS contour set (outer and inner lip lines).
LIP_INDICES: tuple[int, ...] = (
    0, 13, 14, 17, 37, 39, 40, 61, 78, 80, 81, 82, 84, 87, 88, 91, 95, 146, 178, 181,
    185, 191, 267, 269, 270, 291, 308, 310, 311, 312, 314, 317, 318, 321, 324, 375, 402, 405,
    409, 415,
)  # fmt: skip

# Points that barely move while speaking, for the similarity alignment: outer and inner eye
# corners (image left to right), nose tip, mouth corners.
ALIGN_INDICES: tuple[int, ...] = (33, 133, 362, 263, 1, 61, 291)
# Where ALIGN_INDICES land in the face crop, in units of the crop side (0 = left/top edge).
# Measured: Procrustes mean of the mesh on the shared talking-face clips, eye line levelled,
# mirror pairs averaged, scaled so the face oval (forehead to chin) spans 90% of the crop.
FACE_TEMPLATE = np.array(
    [
        [0.270, 0.335],
        [0.411, 0.335],
        [0.589, 0.335],
        [0.730, 0.335],
        [0.500, 0.525],
        [0.367, 0.694],
        [0.633, 0.694],
    ]
)  # (7, 2)
_OUTER_EYE_CORNERS = (33, 263)
# Mouth crop side / outer eye-corner distance. The resting mouth is ~0.58 eye distances wide,
# so 1.0 leaves room for an open mouth or a smile. The eye distance, unlike the mouth width,
# does not change with speech, so the mouth's scale in the crop is stable.
MOUTH_SIDE_PER_EYE_DISTANCE = 1.0


# --- backends --------------------------------------------------------------------------------
class LandmarkBackend(Protocol):
    """Finds faces in one frame.

    ``detect`` takes an (H, W, 3) uint8 RGB frame and returns every face found, each a
    (468, 2) array of (x, y) pixels with the origin at the centre of the top-left pixel.
    Backends may keep tracking state between consecutive frames of one video. A backend may
    also define ``focus(face: np.ndarray | None) -> None``: :class:`FaceTracker` then names the
    main face it chose on each frame (None when it has none), so the backend can track just
    that face on the next frame.
    """

    def detect(self, frame: np.ndarray) -> list[np.ndarray]: ...

    def close(self) -> None: ...


_BACKENDS: dict[str, Callable[..., LandmarkBackend]] = {}
# Built-in backends live in their own module and are imported only when chosen.
_BUILTIN_BACKEND_MODULES = {"mediapipe": "avdf.preprocess.face_backends"}


def register_backend(name: str) -> Callable[[Callable[..., LandmarkBackend]], Any]:
    """Class decorator: make a backend available to ``FaceTracker(spec, backend=name)``."""

    def register(factory: Callable[..., LandmarkBackend]) -> Any:
        _BACKENDS[name] = factory
        return factory

    return register


def available_backends() -> list[str]:
    return sorted(set(_BACKENDS) | set(_BUILTIN_BACKEND_MODULES))


def backend_factory(name: str) -> Callable[..., LandmarkBackend]:
    """The registered constructor of backend ``name`` (ValueError if there is none)."""
    if name not in _BACKENDS and name in _BUILTIN_BACKEND_MODULES:
        importlib.import_module(_BUILTIN_BACKEND_MODULES[name])
    if name not in _BACKENDS:
        raise ValueError(f"unknown face backend {name!r}; available: {available_backends()}")
    return _BACKENDS[name]


def create_backend(name: str, **options: Any) -> LandmarkBackend:
    return backend_factory(name)(**options)


# --- geometry --------------------------------------------------------------------------------
def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least-squares rotation + uniform scale + translation mapping ``source`` onto ``target``
    (Umeyama's closed form). Points are (..., K, 2) (``target`` (K, 2) or matching ``source``);
    returns the (..., 2, 3) matrices for cv2.warpAffine, one per leading index (batched so a
    chunk's frames cost one numpy call, not one per frame)."""
    source_mean = source.mean(axis=-2, keepdims=True)  # (..., 1, 2)
    target_mean = target.mean(axis=-2, keepdims=True)
    src, dst = source - source_mean, target - target_mean
    covariance = np.swapaxes(dst, -1, -2) @ src / source.shape[-2]  # (..., 2, 2)
    u, singular, vt = np.linalg.svd(covariance)
    # Forbid reflections: flip the smaller singular direction when det(u) det(vt) < 0.
    sign = np.ones(singular.shape)  # (..., 2)
    sign[..., 1] = np.where(np.linalg.det(u) * np.linalg.det(vt) < 0, -1.0, 1.0)
    rotation = (u * sign[..., None, :]) @ vt  # (..., 2, 2)
    variance = (src**2).sum(axis=(-1, -2)) / source.shape[-2]  # (...)
    trace = (singular * sign).sum(axis=-1)
    scale = np.where(variance > 0, trace / np.where(variance > 0, variance, 1.0), 1.0)
    linear = scale[..., None, None] * rotation  # (..., 2, 2)
    shift = target_mean[..., 0, :] - (linear @ source_mean[..., 0, :, None])[..., 0]  # (..., 2)
    return np.concatenate([linear, shift[..., None]], axis=-1)


def crop_transforms(landmarks: np.ndarray, spec: MediaSpec) -> tuple[np.ndarray, np.ndarray]:
    """Frame -> face-crop and frame -> mouth-crop (2, 3) affine matrices for one face.

    ``landmarks`` is (468, 2) pixels, or (N, 468, 2) for N frames at once (then both results
    are (N, 2, 3)). Both crops share the face's similarity transform, so the mouth crop rotates
    and scales with the face.
    """
    to_unit = similarity_transform(
        landmarks[..., list(ALIGN_INDICES), :].astype(np.float64), FACE_TEMPLATE
    )  # (..., 2, 3) frame pixels -> template units (crop side = 1)
    face = to_unit * spec.face_size
    face[..., 2] -= 0.5  # template units measure from the crop's edge, pixels from pixel centres

    # Mouth crop: centred on the lips, side fixed in template units (the template fixes the
    # eye distance, so this side is MOUTH_SIDE_PER_EYE_DISTANCE eye distances of the face).
    eye_distance = FACE_TEMPLATE[3, 0] - FACE_TEMPLATE[0, 0]
    side = MOUTH_SIDE_PER_EYE_DISTANCE * eye_distance  # template units
    lips = landmarks[..., list(LIP_INDICES), :].astype(np.float64).mean(axis=-2)  # (..., 2)
    lips_unit = (to_unit[..., :2] @ lips[..., None])[..., 0] + to_unit[..., 2]  # (..., 2)
    zoom = spec.mouth_size / side
    mouth = to_unit * zoom
    mouth[..., 2] += spec.mouth_size / 2 - 0.5 - zoom * lips_unit
    return face, mouth


def mouth_centre_offsets(
    reference: np.ndarray, landmarks: np.ndarray, spec: MediaSpec
) -> np.ndarray:
    """How far the mouth crop of ``landmarks`` sits from the mouth crop of ``reference``.

    Both are (N, 468, 2) pixels of the same N frames. Returns (N,) distances from the centre
    of the reference's mouth crop to where the other crop's centre lands in it, in crop sides
    (0.05 = a twentieth of the crop); NaN where either has no face.
    """
    reference = np.asarray(reference, np.float64)
    landmarks = np.asarray(landmarks, np.float64)
    out = np.full(len(reference), np.nan)
    both = np.isfinite(reference).all(axis=(1, 2)) & np.isfinite(landmarks).all(axis=(1, 2))
    if not both.any():
        return out
    _, ref_mouth = crop_transforms(reference[both], spec)  # (n, 2, 3) frame -> crop pixels
    _, mouth = crop_transforms(landmarks[both], spec)
    centre = np.full(2, spec.mouth_size / 2 - 0.5)  # crop pixels
    # The other crop's centre in frame pixels: solve mouth @ [x, 1] = centre for x.
    in_frame = np.linalg.solve(mouth[:, :, :2], (centre - mouth[:, :, 2])[..., None])  # (n, 2, 1)
    in_reference = (ref_mouth[:, :, :2] @ in_frame)[..., 0] + ref_mouth[:, :, 2]  # (n, 2)
    out[both] = np.linalg.norm(in_reference - centre, axis=1) / spec.mouth_size
    return out


def warp_crop(frame: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """Cut a ``size`` x ``size`` crop through the affine ``matrix`` (frame -> crop pixels).

    When the crop shrinks the frame by more than 2x, the needed region is first reduced by
    area averaging over whole f x f blocks (f = the integer part of the shrink factor, OpenCV's
    fast path: 0.11 ms against 0.27 ms for a fractional factor on a face region here), so the
    bilinear warp that follows shrinks by less than 2x and does not alias.
    """
    scale = math.sqrt(abs(matrix[0, 0] * matrix[1, 1] - matrix[0, 1] * matrix[1, 0]))
    if scale < 0.5:
        factor = int(1.0 / scale)  # >= 2
        inverse = cv2.invertAffineTransform(matrix)
        corners = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], float)
        region = corners @ inverse.T  # (4, 2) frame pixels under the crop's corners
        height, width = frame.shape[:2]
        x0, y0 = np.maximum(np.floor(region.min(axis=0)).astype(int) - 1, 0)
        x1 = min(width, int(np.ceil(region[:, 0].max())) + 2)
        y1 = min(height, int(np.ceil(region[:, 1].max())) + 2)
        # Whole blocks: grow the region where the frame allows, else drop the partial block
        # (at most factor - 1 pixels at the frame's edge).
        x1 = x0 + (min(width, x0 + -(-(x1 - x0) // factor) * factor) - x0) // factor * factor
        y1 = y0 + (min(height, y0 + -(-(y1 - y0) // factor) * factor) - y0) // factor * factor
        if x1 - x0 >= factor and y1 - y0 >= factor:
            small_size = ((x1 - x0) // factor, (y1 - y0) // factor)
            small = cv2.resize(frame[y0:y1, x0:x1], small_size, interpolation=cv2.INTER_AREA)
            # small pixel u covers frame pixels x0 + f u .. x0 + f u + f - 1: centre below
            to_frame = np.array(
                [
                    [factor, 0, x0 + (factor - 1) / 2],
                    [0, factor, y0 + (factor - 1) / 2],
                    [0, 0, 1],
                ]
            )
            return cv2.warpAffine(
                small, matrix @ to_frame, (size, size), flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_CONSTANT,
            )  # fmt: skip
    return cv2.warpAffine(
        frame, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
    )


def _box(points: np.ndarray) -> np.ndarray:
    """(x0, y0, x1, y1) bounding box of (K, 2) points."""
    return np.concatenate([points.min(axis=0), points.max(axis=0)])


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = np.clip(np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]), 0, None).prod()
    union = np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2]) - inter
    return float(inter / union) if union > 0 else 0.0


# --- smoothing -------------------------------------------------------------------------------
class _OneEuroFilter:
    """One-euro filter (Casiez et al., CHI 2012) on (468, 2) landmark arrays.

    A low-pass filter whose cut-off rises with the landmarks' speed: still faces lose their
    jitter, moving ones (and moving lips) keep up. Speeds are measured in outer eye distances
    per second, so the parameters do not depend on the face's size in pixels.
    """

    def __init__(self, rate: float, min_cutoff: float, beta: float, d_cutoff: float = 1.0):
        self.rate, self.min_cutoff, self.beta, self.d_cutoff = rate, min_cutoff, beta, d_cutoff
        self.value: np.ndarray | None = None  # (468, 2) last filtered landmarks
        self.speed: np.ndarray | None = None  # (468, 2) last filtered derivative, px/s

    def _alpha(self, cutoff: np.ndarray | float) -> np.ndarray | float:
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau * self.rate)

    def reset(self) -> None:
        self.value = self.speed = None

    def __call__(self, points: np.ndarray) -> np.ndarray:
        if self.value is None or self.speed is None:
            self.value, self.speed = points.copy(), np.zeros_like(points)
            return self.value
        speed = (points - self.value) * self.rate
        self.speed = self.speed + self._alpha(self.d_cutoff) * (speed - self.speed)
        scale = max(
            float(np.linalg.norm(points[_OUTER_EYE_CORNERS[1]] - points[_OUTER_EYE_CORNERS[0]])),
            1.0,
        )
        cutoff = (
            self.min_cutoff + self.beta * np.linalg.norm(self.speed, axis=1, keepdims=True) / scale
        )
        self.value = self.value + self._alpha(cutoff) * (points - self.value)
        return self.value


# --- the tracker -----------------------------------------------------------------------------
@dataclass
class FaceChunk:
    face: np.ndarray  # (N, face_size, face_size, 3) uint8 RGB, similarity-aligned
    mouth: np.ndarray  # (N, mouth_size, mouth_size, 3) uint8 RGB, centred on the lips
    face_mask: np.ndarray  # (N,) bool: face detected or interpolated over a short gap
    landmarks: np.ndarray  # (N, 468, 2) float16 (x, y) pixels of the given frames; NaN if absent


class FaceTracker:
    """Main-face landmarks and crops for the consecutive frames of one video.

    ``frames`` passed to :meth:`process` are one per model step (already resampled to the
    step rate of ``spec``); consecutive calls continue the same video until :meth:`reset`.
    Options: ``max_gap_seconds`` (longest gap filled by interpolation), ``smoothing_min_cutoff``
    (Hz) and ``smoothing_beta`` for the one-euro filter (``smoothing=False`` turns it off),
    ``min_iou`` to keep the main face, ``search_every`` (once the face has been gone longer than
    the gap limit, look for it only on every n-th frame: a faceless stretch then costs 1/n of
    the detector runs, and a returning face is picked up at most n - 1 frames late, inside
    what is a masked gap anyway), ``landmark_every`` and ``fast_motion`` (see below); every
    other keyword goes to the backend.

    *Keyframes.* While the main face is tracked, the landmark model runs only on keyframes:
    frames whose video-level index i has (i + 1) % k == 0 for ``landmark_every = k``, and the
    last frame of each chunk, so every skipped frame has a measured frame on both sides
    within its chunk (the look-ahead is free: the chunk's frames are already decoded). Frames
    between two keyframes are interpolated with a cubic Hermite curve whose tangents come
    from the neighbouring measured frames (Catmull-Rom style), unless

    * the face moved fast between the two keyframes: the alignment points or the lips'
      centroid moved more than ``fast_motion`` outer eye distances per frame; or
    * the face was lost at the later keyframe;

    then the model runs on every frame in between, which is as exact as ``k = 1``. Found or
    lost, gaps and holds follow the same rules as with ``k = 1``; the identity check compares
    each frame with its nearest measured neighbour. ``k = 1`` measures every frame.

    Trade-off, measured with benchmarks/tracking_accuracy.py on the 29 shared talking clips:
    k = 4, fast_motion = 0.05 runs the model on ~30% of frames (~2.5 ms of CPU each, most of
    face tracking) and keeps the mouth-crop centre within 0.05 crop sides of the every-frame
    tracker's on 98.9% of frames (>= 91% on each clip); an offline replay of every-frame
    landmarks put k = 5 at 98.1% with one clip at 88%, and k = 3 (ungated) at 99.7% for 34%
    of frames.
    Crops always cut each frame's own pixels, so lip motion within a crop is measured, not
    interpolated; what is interpolated is where the crop sits.
    Chunking changes only the interpolation next to a chunk boundary (look-ahead stops there)
    and adds a keyframe at each chunk end.
    """

    def __init__(
        self,
        spec: MediaSpec,
        backend: str = "mediapipe",
        *,
        max_gap_seconds: float = 0.4,
        smoothing: bool = True,
        smoothing_min_cutoff: float = 2.0,
        smoothing_beta: float = 1.0,
        min_iou: float = 0.2,
        search_every: int = 5,
        landmark_every: int = 4,
        fast_motion: float = 0.05,
        **options: Any,
    ) -> None:
        self.spec = spec
        self.backend_name = backend
        self.max_gap_steps = int(math.floor(max_gap_seconds * spec.steps_per_second + 1e-9))
        self.smoothing = smoothing
        self.min_iou = min_iou
        self.search_every = max(1, search_every)
        # Never skip more frames than a gap that would be interpolated anyway.
        self.landmark_every = max(1, min(landmark_every, self.max_gap_steps + 1))
        self.fast_motion = fast_motion
        self._settings = {
            "backend": backend,
            "max_gap_seconds": max_gap_seconds,
            "smoothing": smoothing,
            "smoothing_min_cutoff": smoothing_min_cutoff,
            "smoothing_beta": smoothing_beta,
            "min_iou": min_iou,
            "search_every": self.search_every,
            "landmark_every": self.landmark_every,
            "fast_motion": fast_motion,
            **options,
        }
        self._filter = _OneEuroFilter(spec.steps_per_second, smoothing_min_cutoff, smoothing_beta)
        self._new_backend = functools.partial(backend_factory(backend), **options)
        # Built on the first frame: a tracker that never sees one (only unreadable files came)
        # loads no model, and MediaPipe graphs that never ran print their model-loading log
        # lines when closed or garbage-collected, outside any silencing.
        self._built: LandmarkBackend | None = None
        self._start_state()

    @property
    def settings(self) -> dict[str, Any]:
        """Every option that changes the output (JSON-ready): caches record it."""
        return dict(self._settings)

    @property
    def backend(self) -> LandmarkBackend:
        """The landmark backend, built on first use."""
        if self._built is None:
            self._built = self._new_backend()
        return self._built

    def _start_state(self) -> None:
        self._next_index = 0  # video-level index of the next frame to arrive
        # Last detected main face: its raw landmarks (468, 2) and frame index.
        self._last_detected: np.ndarray | None = None
        self._last_detected_index = -1
        # The measured frame before it in the same track (index, (468, 2)), for the tangent
        # of the first interpolated stretch of the next chunk.
        self._tangent_anchor: tuple[int, np.ndarray] | None = None
        self._last_run_found = False  # the model found the face on the last frame it ran on
        self._search_phase = 0  # sparse search looks at frames phase, phase + n, ...
        # Last frame emitted with landmarks (detected, interpolated or held), pre-smoothing.
        self._last_emitted: np.ndarray | None = None
        self._last_emitted_index = -1
        self._filter.reset()

    def reset(self) -> None:
        """Start a new video: drop tracks, filters and the backend's own tracking state."""
        self.close()
        self._start_state()

    def close(self) -> None:
        """Release the backend (a later frame builds a new one)."""
        if self._built is not None:
            self._built.close()
            self._built = None

    def __enter__(self) -> FaceTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- main-face selection ------------------------------------------------------------------
    def _match(self, faces: list[np.ndarray], reference: np.ndarray) -> np.ndarray | None:
        """The face in ``faces`` that overlaps ``reference`` best, if it overlaps enough."""
        faces = [f for f in faces if np.isfinite(f).all()]
        if not faces:
            return None
        previous = _box(reference)
        overlaps = [_iou(previous, _box(f)) for f in faces]
        best = int(np.argmax(overlaps))
        return faces[best] if overlaps[best] >= self.min_iou else None

    def _select(self, faces: list[np.ndarray], index: int) -> np.ndarray | None:
        """The main face among ``faces`` (each (468, 2)), or None when it is not among them."""
        faces = [f for f in faces if np.isfinite(f).all()]
        if not faces:
            return None
        if (
            self._last_detected is not None
            and index - self._last_detected_index <= self.max_gap_steps + 1
        ):
            # Keep the identity: best overlap with the previous main face, or nothing (another
            # person in the frame must not take over while the main face is briefly lost).
            return self._match(faces, self._last_detected)
        areas = [np.prod(b[2:] - b[:2]) for b in map(_box, faces)]
        return faces[int(np.argmax(areas))]

    def _focus(self, face: np.ndarray | None) -> None:
        focus = getattr(self.backend, "focus", None)
        if focus is not None:
            focus(face)

    def _detect_main(self, frame: np.ndarray, index: int) -> np.ndarray | None:
        """The main face's raw landmarks ((468, 2) float64 pixels) on frame ``index``, or None."""
        gone = index - self._last_detected_index - 1  # frames since the last detection
        recent = self._last_detected is not None and gone <= self.max_gap_steps
        if recent or (index - self._search_phase) % self.search_every == 0:
            main = self._select(self.backend.detect(frame), index)
        else:
            main = None  # a long absence: search only every search_every-th frame
        self._focus(main)
        if main is not None:
            main = main.astype(np.float64)
            self._last_detected, self._last_detected_index = main, index
        elif self._last_detected is not None and gone == self.max_gap_steps:
            self._search_phase = index + 1  # sparse search starts right after the gap limit
        self._last_run_found = main is not None
        return main

    def _too_fast(self, start: np.ndarray, end: np.ndarray, frames: int) -> bool:
        """Did the face move more than ``fast_motion`` outer eye distances per frame between
        two measured frames ``frames`` apart (alignment points on average, or the lips)?"""
        eyes = max(
            float(np.linalg.norm(start[_OUTER_EYE_CORNERS[1]] - start[_OUTER_EYE_CORNERS[0]])), 1.0
        )
        align, lips = list(ALIGN_INDICES), list(LIP_INDICES)
        moved = max(
            float(np.linalg.norm(end[align] - start[align], axis=1).mean()),
            float(np.linalg.norm(end[lips].mean(axis=0) - start[lips].mean(axis=0))),
        )
        return moved > self.fast_motion * eyes * frames

    def _measure_between(
        self, frames: np.ndarray, start: int, stop: int, near: np.ndarray,
        detected: list[np.ndarray | None],
    ) -> None:  # fmt: skip
        """Run the model on chunk frames ``start`` .. ``stop - 1`` (after a measured frame
        with face ``near``), each matched to the face found on the frame before it."""
        for i in range(start, stop):
            self._focus(near)
            main = self._match(self.backend.detect(frames[i]), near)
            if main is not None:
                detected[i] = near = main.astype(np.float64)
        self._focus(detected[stop])  # back to the latest frame in time

    # --- per chunk ----------------------------------------------------------------------------
    def process(self, frames: np.ndarray) -> FaceChunk:
        """Track the main face over ``frames`` ((N, H, W, 3) uint8 RGB) -> a :class:`FaceChunk`."""
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames must be (N, H, W, 3) RGB, got shape {frames.shape}")
        frames = frames.astype(np.uint8, copy=False)
        n = len(frames)
        first = self._next_index
        self._next_index += n

        detected_before = self._last_detected_index  # last detection in earlier chunks
        detected = self._detect_chunk(frames, first)
        filled = self._fill_gaps(detected, first, detected_before)  # (N, 468, 2), NaN if absent
        mask = np.isfinite(filled[:, 0, 0])
        spec = self.spec
        face = np.zeros((n, spec.face_size, spec.face_size, 3), np.uint8)
        mouth = np.zeros((n, spec.mouth_size, spec.mouth_size, 3), np.uint8)
        for i in range(n):  # the filter is sequential: one frame at a time
            if not mask[i]:
                self._filter.reset()  # a long gap: start afresh when the face returns
            elif self.smoothing:
                filled[i] = self._filter(filled[i])
        found = np.flatnonzero(mask)
        face_matrices, mouth_matrices = crop_transforms(filled[found], spec)  # (n_found, 2, 3)
        for i, face_matrix, mouth_matrix in zip(found, face_matrices, mouth_matrices, strict=True):
            face[i] = warp_crop(frames[i], face_matrix, spec.face_size)
            mouth[i] = warp_crop(frames[i], mouth_matrix, spec.mouth_size)
        return FaceChunk(face, mouth, mask, filled.astype(np.float16))

    def _detect_chunk(self, frames: np.ndarray, first: int) -> list[np.ndarray | None]:
        """Raw main-face landmarks of each chunk frame (None where absent): measured on
        keyframes (and on every frame around a fast or lost face), interpolated in between."""
        n = len(frames)
        detected: list[np.ndarray | None] = [None] * n
        # Measured frames with the face, in time order: (chunk position, landmarks); the
        # last two of earlier chunks lead (negative positions) when the track continues.
        measured: list[tuple[int, np.ndarray]] = []
        if self._last_run_found and self._last_detected is not None:
            if self._tangent_anchor is not None:
                measured.append((self._tangent_anchor[0] - first, self._tangent_anchor[1]))
            measured.append((self._last_detected_index - first, self._last_detected))
        stretches: list[tuple[int, int]] = []  # (a, b): frames a+1 .. b-1 to interpolate
        k = self.landmark_every
        for i in range(n):
            index = first + i
            tracked = self._last_run_found
            if tracked and (index + 1) % k != 0 and i != n - 1:
                continue  # a skipped frame: filled once the next keyframe is measured
            previous = measured[-1] if tracked and measured else None
            detected[i] = main = self._detect_main(frames[i], index)
            if previous is not None and i - previous[0] > 1:
                a, start = previous
                if main is None or self._too_fast(start, main, i - a):
                    self._measure_between(frames, a + 1, i, start, detected)
                    # The latest detection may now lie between the keyframes.
                    found = [j for j in range(a + 1, i + 1) if detected[j] is not None]
                    if main is None and found:
                        self._last_detected = detected[found[-1]]
                        self._last_detected_index = first + found[-1]
                    measured.extend((j, detected[j]) for j in found if j != i)
                else:
                    stretches.append((a, i))
            if main is not None:
                measured.append((i, main))
        self._interpolate(detected, stretches, measured)
        if len(measured) >= 2 and self._last_run_found:
            position, points = measured[-2]
            self._tangent_anchor = (first + position, points)
        else:
            self._tangent_anchor = None
        return detected

    def _interpolate(
        self,
        detected: list[np.ndarray | None],
        stretches: list[tuple[int, int]],
        measured: list[tuple[int, np.ndarray]],
    ) -> None:
        """Fill each stretch between measured frames a and b with a cubic Hermite curve; the
        tangent at a (at b) is the slope from the measured frame before a to b (from a to the
        one after b), or the chord where that neighbour is missing or far."""
        positions = [m[0] for m in measured]
        order = {p: j for j, p in enumerate(positions)}
        reach = 2 * self.landmark_every  # a neighbour further away says little about the curve
        for a, b in stretches:
            ja, jb = order[a], order[b]
            start, end = measured[ja][1], measured[jb][1]
            before = measured[ja - 1] if ja > 0 and a - positions[ja - 1] <= reach else (a, start)
            after = (
                measured[jb + 1]
                if jb + 1 < len(measured) and positions[jb + 1] - b <= reach
                else (b, end)
            )
            tangent_a = (end - before[1]) / (b - before[0])  # per frame
            tangent_b = (after[1] - start) / (after[0] - a)
            h = b - a
            for j in range(a + 1, b):
                t = (j - a) / h
                t2, t3 = t * t, t * t * t
                detected[j] = (
                    (2 * t3 - 3 * t2 + 1) * start
                    + (t3 - 2 * t2 + t) * h * tangent_a
                    + (-2 * t3 + 3 * t2) * end
                    + (t3 - t2) * h * tangent_b
                )

    def _fill_gaps(
        self, detected: list[np.ndarray | None], first: int, detected_before: int
    ) -> np.ndarray:
        """Interpolate short gaps, hold at the chunk end, leave long gaps NaN. (N, 468, 2)."""
        n = len(detected)
        filled = np.full((n, N_LANDMARKS, 2), np.nan)
        # Anchor: the last frame with landmarks before the current gap (may be in an earlier chunk).
        anchor, anchor_index = self._last_emitted, self._last_emitted_index
        # The last *detection*: gaps are measured from it (the anchor may be a held frame).
        last_seen_index = detected_before
        for i, points in enumerate(detected):
            index = first + i
            if points is None:
                continue
            gap_start = anchor_index + 1
            if anchor is not None and index - last_seen_index - 1 <= self.max_gap_steps:
                for j in range(max(gap_start, first), index):
                    w = (j - anchor_index) / (index - anchor_index)
                    filled[j - first] = (1 - w) * anchor + w * points
            filled[i] = points
            anchor, anchor_index, last_seen_index = points, index, index
        # Trailing frames without a detection: hold the last landmarks within the gap limit.
        if anchor is not None:
            for j in range(max(anchor_index + 1, first), first + n):
                if j - last_seen_index <= self.max_gap_steps:
                    filled[j - first] = anchor
                    anchor_index = j
        self._last_emitted, self._last_emitted_index = anchor, anchor_index
        return filled
