"""Landmark backends: frame -> every face's 468 face-mesh points in pixels.

Only :class:`MediaPipeBackend` ships. It is registered under ``"mediapipe"`` when this module
is imported, which :func:`avdf.preprocess.face.create_backend` does only when that backend is
chosen, so importing :mod:`avdf.preprocess.face` never loads MediaPipe.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType
from typing import Any

import numpy as np

from avdf.preprocess.face import register_backend, warp_crop

_CROP_SCALE = 2.0  # crop side / face box side: room for head motion and the mesh's detector
_CROP_SIZE = 256  # pixels; crops are resampled to this (the landmark model itself sees 192)
_MIN_FACE_SIDE = 8  # pixels; smaller boxes carry no usable face


# The wire form of one NormalizedLandmark with x, y, z set: tag 0x0a, length 15, then fields
# 1, 2, 3 as little-endian float32 each behind its tag byte (0x0d, 0x15, 0x1d).
_LANDMARK_BYTES = 17
_XY_COLUMNS = [3, 4, 5, 6, 8, 9, 10, 11]  # the bytes of x and y in one landmark's 17
_TAG_COLUMNS, _TAGS = [0, 1, 2, 7, 12], np.array([0x0A, 15, 0x0D, 0x15, 0x1D], np.uint8)


def _lazy_package(name: str) -> ModuleType:
    """Register package ``name`` without running its ``__init__``; the first attribute it
    lacks (``mp.solutions``, ``mp.tasks``, ...) runs it, so later users see the whole package."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ImportError(f"no package {name!r}")
    package = importlib.util.module_from_spec(spec)

    def finish(attribute: str) -> Any:
        if package.__dict__.pop("__getattr__", None) is None:  # already run: truly missing
            raise AttributeError(f"module {name!r} has no attribute {attribute!r}")
        spec.loader.exec_module(package)
        return getattr(package, attribute)

    package.__getattr__ = finish  # type: ignore[attr-defined]  # PEP 562 module hook
    sys.modules[name] = package
    return package


def _face_solutions() -> tuple[ModuleType, ModuleType]:
    """MediaPipe's ``face_mesh`` and ``face_detection`` solution modules.

    ``import mediapipe`` runs ``mediapipe/__init__.py`` and ``mediapipe/python/solutions/
    __init__.py``, which import every solution, the Tasks API, sounddevice and matplotlib
    (for drawing): 1.2 s of a cold 1.3 s import measured here, none of it needed to track
    faces. When nothing has imported mediapipe yet, those two packages are registered
    unrun (see :func:`_lazy_package`) and only the two modules are loaded.
    """
    if "mediapipe" not in sys.modules:
        _lazy_package("mediapipe")
    python = importlib.import_module("mediapipe.python")  # the bindings; light
    if "mediapipe.python.solutions" not in sys.modules:
        python.solutions = _lazy_package("mediapipe.python.solutions")
    return (
        importlib.import_module("mediapipe.python.solutions.face_mesh"),
        importlib.import_module("mediapipe.python.solutions.face_detection"),
    )


def _normalized_xy(normalized: Any) -> np.ndarray:
    """(K, 2) float32 normalised (x, y) of a NormalizedLandmarkList.

    Reads the serialised message with numpy (~0.07 ms for 468 points, against ~0.6 ms for a
    Python loop over the landmark objects) when every landmark has exactly x, y and z in
    field order, as the face mesh writes them; anything else takes the loop.
    """
    data = np.frombuffer(normalized.SerializeToString(), np.uint8)
    count = len(normalized.landmark)
    if len(data) == count * _LANDMARK_BYTES:
        rows = data.reshape(count, _LANDMARK_BYTES)
        if (rows[:, _TAG_COLUMNS] == _TAGS).all():
            return rows[:, _XY_COLUMNS].copy().view("<f4").astype(np.float32)  # (K, 2)
    return np.array([(p.x, p.y) for p in normalized.landmark], dtype=np.float32)


def _to_pixels(normalized: Any, width: int, height: int) -> np.ndarray:
    """MediaPipe's normalised landmarks -> (468, 2) float32 pixels, origin at the centre of the
    top-left pixel (OpenCV's convention, so they feed cv2.warpAffine directly)."""
    points = _normalized_xy(normalized)  # (468, 2)
    points[:, 0] = points[:, 0] * width - 0.5
    points[:, 1] = points[:, 1] * height - 0.5
    return points


def _square_box(points: np.ndarray, scale: float) -> tuple[float, float, float]:
    """(centre x, centre y, side) of a square ``scale`` times the points' bounding box."""
    lo, hi = points.min(axis=0), points.max(axis=0)
    centre = (lo + hi) / 2
    return float(centre[0]), float(centre[1]), float((hi - lo).max() * scale)


def _distinct(faces: list[np.ndarray], max_iou: float = 0.5) -> list[np.ndarray]:
    """Drop faces whose bounding box mostly overlaps an earlier one's.

    The mesh graph merges faces it tracks from the previous frame with fresh detections, and
    on a sudden change (a cut, a new video) may report the same face twice.
    """
    kept: list[np.ndarray] = []
    boxes: list[np.ndarray] = []
    for face in faces:
        box = np.concatenate([face.min(axis=0), face.max(axis=0)])
        if all(_box_iou(box, other) <= max_iou for other in boxes):
            kept.append(face)
            boxes.append(box)
    return kept


def _box_iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = np.clip(np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]), 0, None).prod()
    union = np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2]) - inter
    return float(inter / union) if union > 0 else 0.0


@register_backend("mediapipe")
class MediaPipeBackend:
    """MediaPipe face mesh (468 points) that searches whole frames and tracks one face in crops.

    *Search* (no focus, or the focused face was lost): the mesh runs on the whole frame in video
    mode with ``max_faces`` so that several faces are seen. When it finds none (typically a face
    under ~100 px in a large frame), the full-range face detector (``face_detection``,
    ``model_selection=1``) proposes boxes and the mesh runs on an enlarged crop of each.

    *Track* (after :meth:`focus` named the main face): the mesh runs only on a crop around that
    face's last landmarks, resampled to 256 px. This costs one landmark-model pass per frame,
    whatever the frame size and however many other people are in view, keeps the identity by
    construction, and sees small faces at the crop's resolution. So the detectors run only to
    (re)acquire a face.
    """

    def __init__(
        self,
        max_faces: int = 2,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
        small_face_fallback: bool = True,
        focus_tracking: bool = True,
    ) -> None:
        # Imported here: only when this backend is chosen.
        self._face_mesh, self._face_detection = _face_solutions()
        self.max_faces = max_faces
        self.min_detection_confidence = min_detection_confidence
        self.min_tracking_confidence = min_tracking_confidence
        self.small_face_fallback = small_face_fallback
        self.focus_tracking = focus_tracking
        self._search_mesh = self._new_mesh(max_faces, static=False)
        # Created on first use: most videos never need the fallback graphs.
        self._focus_mesh: Any = None
        self._crop_mesh: Any = None
        self._detector: Any = None
        self._focus: np.ndarray | None = None  # (468, 2) main face on the previous frame

    def _new_mesh(self, max_faces: int, static: bool) -> Any:
        return self._face_mesh.FaceMesh(
            static_image_mode=static,
            max_num_faces=max_faces,
            refine_landmarks=False,
            min_detection_confidence=self.min_detection_confidence,
            min_tracking_confidence=self.min_tracking_confidence,
        )

    def focus(self, face: np.ndarray | None) -> None:
        """Track ``face`` ((468, 2) pixels, the caller's main face) on the next frame; None
        goes back to searching whole frames."""
        self._focus = face if self.focus_tracking else None

    def detect(self, frame: np.ndarray) -> list[np.ndarray]:
        """Faces in ``frame`` ((H, W, 3) uint8 RGB), each (468, 2) float32 pixels: only the
        focused face while it is tracked, else every face found."""
        frame = np.ascontiguousarray(frame)
        if self._focus is not None:
            if self._focus_mesh is None:
                self._focus_mesh = self._new_mesh(1, static=False)
            found = self._mesh_on_box(
                self._focus_mesh, frame, _square_box(self._focus, _CROP_SCALE)
            )
            if found:
                return found
        height, width = frame.shape[:2]
        result = self._search_mesh.process(frame)
        faces = _distinct(
            [_to_pixels(lm, width, height) for lm in result.multi_face_landmarks or []]
        )
        if faces or not self.small_face_fallback:
            return faces
        if self._crop_mesh is None:
            # Static mode: crops of different faces follow each other, no state to confuse.
            self._crop_mesh = self._new_mesh(1, static=True)
        for box in self._detect_boxes(frame):
            faces.extend(self._mesh_on_box(self._crop_mesh, frame, box))
        return _distinct(faces)

    def close(self) -> None:
        for graph in (self._search_mesh, self._focus_mesh, self._crop_mesh, self._detector):
            if graph is not None:
                graph.close()
        self._search_mesh = self._focus_mesh = self._crop_mesh = self._detector = None

    def _detect_boxes(self, frame: np.ndarray) -> list[tuple[float, float, float]]:
        """Full-range detector boxes as (centre x, centre y, crop side) pixels, largest first."""
        if self._detector is None:
            self._detector = self._face_detection.FaceDetection(
                model_selection=1, min_detection_confidence=self.min_detection_confidence
            )
        height, width = frame.shape[:2]
        boxes = []
        for detection in self._detector.process(frame).detections or []:
            box = detection.location_data.relative_bounding_box
            side = max(box.width * width, box.height * height) * _CROP_SCALE
            centre_x = (box.xmin + box.width / 2) * width - 0.5
            centre_y = (box.ymin + box.height / 2) * height - 0.5
            boxes.append((centre_x, centre_y, side))
        boxes.sort(key=lambda b: -b[2])
        return boxes[: self.max_faces]

    def _mesh_on_box(
        self, mesh: Any, frame: np.ndarray, box: tuple[float, float, float]
    ) -> list[np.ndarray]:
        """Run ``mesh`` on the square ``box`` of ``frame`` (resampled to _CROP_SIZE; parts
        outside the frame are black) and return the faces in frame pixels."""
        centre_x, centre_y, side = box
        if side < _MIN_FACE_SIDE * _CROP_SCALE:
            return []
        zoom = _CROP_SIZE / side
        # frame pixel (x, y) -> crop pixel: the box centre lands on the crop centre
        matrix = np.array(
            [
                [zoom, 0.0, (_CROP_SIZE - 1) / 2 - zoom * centre_x],
                [0.0, zoom, (_CROP_SIZE - 1) / 2 - zoom * centre_y],
            ]
        )
        crop = warp_crop(frame, matrix, _CROP_SIZE)
        faces = []
        for lm in mesh.process(crop).multi_face_landmarks or []:
            points = _to_pixels(lm, _CROP_SIZE, _CROP_SIZE)
            points = (points - matrix[:, 2].astype(np.float32)) / np.float32(zoom)
            faces.append(points)
        return faces
