"""Landmark backends: frame -> every face's 468 face-mesh points in pixels.

Only :class:`MediaPipeBackend` ships. It is registered under ``"mediapipe"`` when this module
is imported, which :func:`avdf.preprocess.face.create_backend` does only when that backend is
chosen, so importing :mod:`avdf.preprocess.face` never loads MediaPipe.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from avdf.preprocess.face import register_backend

# Pixel margins and limits used to cut a face out of a frame for the second mesh pass.
_CROP_SCALE = 2.0  # crop side / face box side: room for the mesh's own detector to see a face
_MIN_CROP_SIDE = 16  # pixels; smaller crops carry no usable face


def _to_pixels(normalized: Any, width: int, height: int) -> np.ndarray:
    """MediaPipe's normalised landmarks -> (468, 2) float32 pixels, origin at the centre of the
    top-left pixel (OpenCV's convention, so they feed cv2.warpAffine directly)."""
    points = np.array([(p.x, p.y) for p in normalized.landmark], dtype=np.float32)  # (468, 2)
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
    """MediaPipe face mesh (468 points, video mode) with a small-face fallback.

    The mesh runs on every whole frame and tracks faces between frames itself. When it finds no
    face at all (typically a face under ~100 px in a large frame), the full-range face detector
    (``face_detection``, ``model_selection=1``) proposes boxes and the mesh runs again on an
    enlarged crop of each box. A face found that way is then tracked by cropping around its
    last landmarks, so the detector runs only to (re)acquire a face, not on every frame.
    """

    def __init__(
        self,
        max_faces: int = 2,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
        small_face_fallback: bool = True,
    ) -> None:
        import mediapipe as mp  # imported here: only when this backend is chosen

        self._mp = mp
        self.max_faces = max_faces
        self.min_detection_confidence = min_detection_confidence
        self.small_face_fallback = small_face_fallback
        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=False,
            max_num_faces=max_faces,
            refine_landmarks=False,
            min_detection_confidence=min_detection_confidence,
            min_tracking_confidence=min_tracking_confidence,
        )
        self._crop_mesh: Any = None  # created on first use of the fallback
        self._detector: Any = None
        self._crop_tracks: list[np.ndarray] = []  # faces last found through the fallback

    def detect(self, frame: np.ndarray) -> list[np.ndarray]:
        """All faces in ``frame`` ((H, W, 3) uint8 RGB), each (468, 2) float32 pixels."""
        frame = np.ascontiguousarray(frame)
        height, width = frame.shape[:2]
        result = self._mesh.process(frame)
        faces = _distinct(
            [_to_pixels(lm, width, height) for lm in result.multi_face_landmarks or []]
        )
        if faces or not self.small_face_fallback:
            self._crop_tracks = []
            return faces
        # Track: re-run the mesh around faces found by the fallback on the previous frame.
        faces = self._mesh_on_boxes(frame, [_square_box(f, _CROP_SCALE) for f in self._crop_tracks])
        if not faces:
            faces = self._mesh_on_boxes(frame, self._detect_boxes(frame))
        self._crop_tracks = faces
        return faces

    def close(self) -> None:
        for graph in (self._mesh, self._crop_mesh, self._detector):
            if graph is not None:
                graph.close()
        self._mesh = self._crop_mesh = self._detector = None

    # --- small-face fallback -------------------------------------------------------------
    def _detect_boxes(self, frame: np.ndarray) -> list[tuple[float, float, float]]:
        if self._detector is None:
            self._detector = self._mp.solutions.face_detection.FaceDetection(
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
        boxes.sort(key=lambda b: -b[2])  # largest first
        return boxes[: self.max_faces]

    def _mesh_on_boxes(
        self, frame: np.ndarray, boxes: list[tuple[float, float, float]]
    ) -> list[np.ndarray]:
        if not boxes:
            return []
        if self._crop_mesh is None:
            # Static mode: crops of different faces alternate, so no tracking state to confuse.
            self._crop_mesh = self._mp.solutions.face_mesh.FaceMesh(
                static_image_mode=True,
                max_num_faces=1,
                refine_landmarks=False,
                min_detection_confidence=self.min_detection_confidence,
            )
        height, width = frame.shape[:2]
        faces = []
        for centre_x, centre_y, side in boxes:
            x0 = max(0, int(round(centre_x - side / 2)))
            y0 = max(0, int(round(centre_y - side / 2)))
            x1 = min(width, int(round(centre_x + side / 2)))
            y1 = min(height, int(round(centre_y + side / 2)))
            if x1 - x0 < _MIN_CROP_SIDE or y1 - y0 < _MIN_CROP_SIDE:
                continue
            crop = np.ascontiguousarray(frame[y0:y1, x0:x1])
            result = self._crop_mesh.process(crop)
            for lm in result.multi_face_landmarks or []:
                points = _to_pixels(lm, x1 - x0, y1 - y0)
                points += np.array([x0, y0], dtype=np.float32)
                faces.append(points)
        return faces
