"""Face and lip tracking on the real talking-face clips, through PyAV and the real MediaPipe."""

from __future__ import annotations

import subprocess
import sys
from functools import cache
from pathlib import Path

import av
import cv2
import media_fixtures as fx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from avdf.preprocess.face import (
    ALIGN_INDICES,
    FACE_TEMPLATE,
    LIP_INDICES,
    FaceChunk,
    FaceTracker,
    available_backends,
    create_backend,
    crop_transforms,
    mouth_centre_offsets,
    register_backend,
    similarity_transform,
)
from avdf.timebase import MediaSpec

CLIPS = fx.talking_clips()
SPEC = MediaSpec()
SMALL_CLIP = fx.talking("talking-face_pc-avs_00015.mp4")  # 224x224
OTHER_SMALL_CLIP = fx.talking("talking-face_pc-avs_00104.mp4")  # 224x224, another person
PORTRAIT_CLIP = fx.talking("real3dportrait_May_5s.mp4")  # 512x512


@cache
def decode(path: Path, n_frames: int, long_side: int = 640) -> np.ndarray:
    """First ``n_frames`` frames as (N, H, W, 3) uint8 RGB, long side scaled down to ``long_side``."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        scale = min(1.0, long_side / max(stream.width, stream.height))
        width = int(round(stream.width * scale / 2)) * 2
        height = int(round(stream.height * scale / 2)) * 2
        frames = []
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format="rgb24", width=width, height=height))
            if len(frames) == n_frames:
                break
    out = np.stack(frames)
    out.flags.writeable = False  # cached: shared between tests
    return out


@pytest.fixture(scope="module")
def tracker() -> FaceTracker:
    with FaceTracker(SPEC) as t:
        yield t


def track(tracker: FaceTracker, frames: np.ndarray, chunk: int = 16) -> FaceChunk:
    """Reset, then feed ``frames`` in chunks; returns the concatenated result."""
    tracker.reset()
    parts = [tracker.process(frames[i : i + chunk]) for i in range(0, len(frames), chunk)]
    return FaceChunk(
        *(np.concatenate([getattr(p, k) for p in parts]) for k in FaceChunk.__dataclass_fields__)
    )


def test_lip_indices_are_mediapipe_lip_contours() -> None:
    import mediapipe as mp

    lips = {i for edge in mp.solutions.face_mesh.FACEMESH_LIPS for i in edge}
    assert len(LIP_INDICES) == 40 and set(LIP_INDICES) == lips


def test_importing_face_does_not_load_mediapipe() -> None:
    code = "import sys, avdf.preprocess.face; assert 'mediapipe' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_backend_loads_only_the_face_solutions_of_mediapipe() -> None:
    """Building the backend skips mediapipe's package imports (matplotlib, the Tasks API),
    yet a later ``import mediapipe`` in the same process gets the whole package."""
    code = (
        "import sys\n"
        "from avdf.preprocess.face import create_backend\n"
        "create_backend('mediapipe').close()\n"
        "assert 'matplotlib' not in sys.modules and 'mediapipe.tasks' not in sys.modules\n"
        "import mediapipe as mp\n"
        "assert len(mp.solutions.face_mesh.FACEMESH_LIPS) == 40 and mp.__version__\n"
        "assert mp.solutions.drawing_utils and mp.tasks.__name__ == 'mediapipe.tasks.python'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_similarity_transform_recovers_a_known_transform() -> None:
    rng = np.random.default_rng(0)
    points = rng.uniform(0, 100, size=(7, 2))
    angle, scale, shift = 0.3, 0.7, np.array([5.0, -3.0])
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = points @ (scale * rotation).T + shift
    matrix = similarity_transform(points, moved)
    np.testing.assert_allclose(matrix[:, :2], scale * rotation, atol=1e-9)
    np.testing.assert_allclose(matrix[:, 2], shift, atol=1e-9)


def test_unknown_backend_is_refused() -> None:
    assert "mediapipe" in available_backends()
    with pytest.raises(ValueError, match="unknown face backend"):
        create_backend("no-such-backend")


@pytest.mark.parametrize("clip", CLIPS, ids=lambda p: p.stem)
def test_face_found_on_every_clip(tracker: FaceTracker, clip: Path) -> None:
    frames = decode(clip, 30)
    result = track(tracker, frames)
    n = len(frames)
    assert result.face.shape == (n, SPEC.face_size, SPEC.face_size, 3)
    assert result.mouth.shape == (n, SPEC.mouth_size, SPEC.mouth_size, 3)
    assert result.landmarks.shape == (n, 468, 2) and result.landmarks.dtype == np.float16
    assert result.face_mask.mean() >= 0.95
    found = result.landmarks[result.face_mask]
    assert np.isfinite(found).all()
    # Landmarks are pixels of the given frames: the face lies inside the frame.
    height, width = frames.shape[1:3]
    centre = found.astype(np.float32).mean(axis=1)  # (n_found, 2)
    assert (centre >= 0).all() and (centre[:, 0] < width).all() and (centre[:, 1] < height).all()


@pytest.mark.parametrize(
    "clip", [SMALL_CLIP, PORTRAIT_CLIP, *fx.shared_talking("latentsync_demo2_video.mp4")]
)
def test_crops_are_aligned(tracker: FaceTracker, clip: Path) -> None:
    """An independent mesh run finds the eyes on the template in the face crop, and the lips at
    the centre of the mouth crop."""
    import mediapipe as mp

    frames = decode(clip, 30)
    result = track(tracker, frames)
    eyes, mouth_offsets = [], []
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1) as mesh:
        for i in range(0, len(frames), 3):
            assert result.face_mask[i]
            # Face crop: the mesh on the (upscaled) crop puts the eye corners on the template.
            big = cv2.resize(result.face[i], (256, 256), interpolation=cv2.INTER_CUBIC)
            found = mesh.process(big).multi_face_landmarks
            assert found, f"no face in the face crop of frame {i}"
            points = np.array([(p.x, p.y) for p in found[0].landmark])
            eyes.append(points[list(ALIGN_INDICES[:4])])  # (4, 2) crop sides
            # Mouth crop: the lips' centroid, measured on the original frame by an independent
            # run, maps to the crop centre through the crop transform.
            raw = mesh.process(np.ascontiguousarray(frames[i])).multi_face_landmarks[0]
            height, width = frames.shape[1:3]
            lips = np.array([(raw.landmark[k].x, raw.landmark[k].y) for k in LIP_INDICES])
            lips = lips * [width, height] - 0.5
            _, mouth_matrix = crop_transforms(result.landmarks[i].astype(np.float64), SPEC)
            centre = mouth_matrix[:, :2] @ lips.mean(axis=0) + mouth_matrix[:, 2]
            mouth_offsets.append(np.abs(centre - (SPEC.mouth_size / 2 - 0.5)).max())
    eyes = np.array(eyes)  # (n, 4, 2)
    # Near the template (a turned head leaves a residual of a few % of the crop side) ...
    assert np.abs(eyes - FACE_TEMPLATE[:4]).max() < 0.1
    assert np.median(np.abs(eyes - FACE_TEMPLATE[:4])) < 0.03
    # ... and steady from frame to frame.
    assert eyes.std(axis=0).max() < 0.02
    assert max(mouth_offsets) < 0.1 * SPEC.mouth_size


@pytest.mark.parametrize(
    "frame",
    [
        np.full((360, 640, 3), 128, np.uint8),
        np.random.default_rng(0).integers(0, 256, (360, 640, 3), dtype=np.uint8),
        np.full((32, 32, 3), 200, np.uint8),
        np.zeros((1, 1, 3), np.uint8),
        np.random.default_rng(1).integers(0, 256, (2160, 3840, 3), dtype=np.uint8),
    ],
    ids=["uniform", "noise", "tiny", "one-pixel", "4k-noise"],
)
def test_no_face_gives_an_empty_mask(tracker: FaceTracker, frame: np.ndarray) -> None:
    result = track(tracker, np.stack([frame, frame]))
    assert not result.face_mask.any()
    assert np.isnan(result.landmarks).all()
    assert not result.face.any() and not result.mouth.any()


def test_tiny_frames_of_a_face_do_not_crash(tracker: FaceTracker) -> None:
    frames = np.stack(
        [cv2.resize(f, (32, 32), interpolation=cv2.INTER_AREA) for f in decode(SMALL_CLIP, 5)]
    )
    result = track(tracker, frames)
    assert result.face.shape == (5, SPEC.face_size, SPEC.face_size, 3)


def test_main_face_keeps_its_identity_among_two(tracker: FaceTracker) -> None:
    """Two people side by side: the larger one is chosen first and kept throughout."""
    small = decode(SMALL_CLIP, 30)  # (30, 224, 224, 3)
    large = np.stack([cv2.resize(f, (320, 320)) for f in decode(PORTRAIT_CLIP, 30)])
    padded = np.zeros((30, 320, 224, 3), np.uint8)
    padded[:, 48:272] = small
    frames = np.ascontiguousarray(np.concatenate([padded, large], axis=2))  # (30, 320, 544, 3)
    tracker.reset()
    assert len(tracker.backend.detect(frames[0])) == 2  # the backend sees both faces
    result = track(tracker, frames, chunk=7)
    assert result.face_mask.mean() >= 0.95
    x = result.landmarks[result.face_mask][:, :, 0].astype(np.float32)
    assert (x > 224).all(), "the main face must stay the large one on the right"


def test_short_gap_is_interpolated_and_long_gap_masked(tracker: FaceTracker) -> None:
    frames = decode(SMALL_CLIP, 75).copy()
    gap_limit = tracker.max_gap_steps  # 10 steps = 0.4 s at 25 fps
    short = slice(10, 13)  # 3 blank frames: filled
    long = slice(30, 30 + 2 * gap_limit + 5)  # 25 blank frames: masked beyond the hold
    frames[short] = 127
    frames[long] = 127
    # Chunks of 16 put a chunk boundary inside each gap (16 and 32, 48).
    result = track(tracker, frames, chunk=16)
    mask = result.face_mask
    assert mask[:30].all(), "a 3-frame gap must be interpolated"
    interpolated = result.landmarks[11].astype(np.float32)
    before, after = result.landmarks[9].astype(np.float32), result.landmarks[13].astype(np.float32)
    # Linear fill lies between its neighbours (the smoother only pulls it further inside).
    assert np.all(interpolated >= np.minimum(before, after) - 2.0)
    assert np.all(interpolated <= np.maximum(before, after) + 2.0)
    assert result.face[11].any()
    # Long gap: masked except frames held at a chunk end within the gap limit of the last face.
    masked = ~mask[long]
    assert masked.sum() >= long.stop - long.start - gap_limit
    assert not result.face[~mask].any() and np.isnan(result.landmarks[~mask]).all()
    assert mask[long.stop + 2 :].all(), "the face is found again after the gap"


def test_chunking_changes_only_the_look_ahead() -> None:
    """Every-frame tracking is chunk-independent; with keyframes, chunk ends add keyframes and
    cut the look-ahead, which moves the mouth crop by a tiny fraction of its side."""
    frames = decode(OTHER_SMALL_CLIP, 24)
    with FaceTracker(SPEC, landmark_every=1) as every_frame:
        whole = track(every_frame, frames, chunk=24)
        pieces = track(every_frame, frames, chunk=5)
    np.testing.assert_array_equal(whole.landmarks, pieces.landmarks)
    np.testing.assert_array_equal(whole.face, pieces.face)
    with FaceTracker(SPEC, landmark_every=4) as keyframes:
        whole = track(keyframes, frames, chunk=24)
        pieces = track(keyframes, frames, chunk=5)
    np.testing.assert_array_equal(whole.face_mask, pieces.face_mask)
    assert np.nanmax(mouth_centre_offsets(whole.landmarks, pieces.landmarks, SPEC)) < 0.03


def test_a_registered_backend_is_used() -> None:
    """A backend that reports one fixed face: crops come out where its landmarks say."""
    real = FaceTracker(SPEC)
    frame = decode(SMALL_CLIP, 1)[0]
    points = real.backend.detect(frame)[0]
    real.close()

    @register_backend("fixed-test-face")
    class FixedFace:
        def __init__(self, points: np.ndarray) -> None:
            self.points = points

        def detect(self, frame: np.ndarray) -> list[np.ndarray]:
            return [self.points.copy()]

        def close(self) -> None:
            pass

    with FaceTracker(SPEC, backend="fixed-test-face", points=points) as fixed:
        result = fixed.process(np.stack([frame, np.zeros_like(frame)]))
    assert result.face_mask.all()
    np.testing.assert_allclose(result.landmarks[0].astype(np.float32), points, atol=0.5)
    assert result.face[0].any() and not result.face[1].any()  # same place, black frame


def test_small_face_is_found_through_the_detector_fallback() -> None:
    """A ~50 px face in a 360x640 frame: the whole-frame mesh misses it, the full-range
    detector + mesh on the enlarged crop finds and then tracks it."""
    portrait = decode(PORTRAIT_CLIP, 20)
    rng = np.random.default_rng(0)
    background = cv2.GaussianBlur(rng.integers(0, 256, (360, 640, 3), dtype=np.uint8), (0, 0), 5)
    frames = np.repeat(background[None], len(portrait), axis=0)
    for i, frame in enumerate(portrait):
        frames[i, 200:270, 400:470] = cv2.resize(frame, (70, 70), interpolation=cv2.INTER_AREA)
    results = {}
    for fallback in (False, True):
        with FaceTracker(SPEC, small_face_fallback=fallback) as tracker:
            results[fallback] = tracker.process(frames)
    assert results[False].face_mask.mean() < 0.5  # the reason the fallback exists
    found = results[True]
    assert found.face_mask.mean() >= 0.9
    centre = found.landmarks[found.face_mask].astype(np.float32).mean(axis=1)  # (n, 2)
    assert ((centre > [400, 200]) & (centre < [470, 270])).all()


# --- gap filling, checked against its rule on scripted detections ---------------------------
@register_backend("test-replay")
class ReplayBackend:
    """Replays scripted detections. Frame ``k`` carries ``k`` in its first pixel, so the script
    is indexed by frame, not by call (the tracker skips calls during long absences)."""

    def __init__(self, faces: dict[int, np.ndarray]) -> None:
        self.faces = faces

    def detect(self, frame: np.ndarray) -> list[np.ndarray]:
        index = int(frame[0, 0, 0])
        return [self.faces[index].copy()] if index in self.faces else []

    def close(self) -> None:
        pass


@register_backend("test-lifecycle")
class LifecycleBackend(ReplayBackend):
    """ReplayBackend that logs its constructions and closes into ``events``."""

    def __init__(self, events: list[str]) -> None:
        super().__init__({})
        self.events = events
        events.append("built")

    def close(self) -> None:
        self.events.append("closed")


def test_the_backend_is_built_on_the_first_frame_and_closed_once_per_video() -> None:
    """No frame, no model (MediaPipe graphs that never ran print log lines whenever they are
    closed); each video gets a fresh backend; closing twice is harmless."""
    events: list[str] = []
    tracker = FaceTracker(SPEC, backend="test-lifecycle", events=events)
    tracker.reset()
    tracker.close()
    assert events == []
    frames = np.zeros((3, 8, 8, 3), np.uint8)
    for _ in range(2):  # two videos
        tracker.reset()
        tracker.process(frames)
    tracker.close()
    tracker.close()
    assert events == ["built", "closed", "built", "closed"]
    with pytest.raises(ValueError, match="unknown face backend"):
        FaceTracker(SPEC, backend="no-such-backend")  # still refused up front


def expected_mask(detected: list[bool], chunk_sizes: list[int], gap_limit: int) -> np.ndarray:
    """The documented rule: detections, gaps of <= gap_limit frames between detections, and
    frames held at a chunk's end within gap_limit frames of the last detection."""
    mask = np.array(detected)
    found = np.flatnonzero(mask)
    for a, b in zip(found, found[1:], strict=False):
        if b - a - 1 <= gap_limit:
            mask[a + 1 : b] = True
    end = 0
    for size in chunk_sizes:
        end += size
        before = found[found < end]
        if len(before):
            mask[before[-1] + 1 : min(end, before[-1] + gap_limit + 1)] = True
    return mask


@settings(max_examples=60, deadline=None)
@given(
    detected=st.lists(st.booleans(), min_size=1, max_size=60),
    chunk_size=st.integers(1, 25),
)
def test_gap_filling_follows_its_rule(detected: list[bool], chunk_size: int) -> None:
    rng = np.random.default_rng(len(detected))
    base = rng.uniform(20, 60, size=(468, 2))
    faces = {k: base + [k * 0.5, 0.0] for k, hit in enumerate(detected) if hit}
    frames = np.zeros((len(detected), 4, 4, 3), np.uint8)
    frames[:, 0, 0, 0] = np.arange(len(detected))
    # landmark_every=1: gaps count from held frames too, which this rule leaves out (holds
    # have their own test below).
    options = dict(faces=faces, smoothing=False, search_every=1, landmark_every=1)
    tracker = FaceTracker(SPEC, backend="test-replay", **options)
    result = track(tracker, frames, chunk=chunk_size)
    sizes = [len(frames[i : i + chunk_size]) for i in range(0, len(frames), chunk_size)]
    mask = expected_mask(detected, sizes, tracker.max_gap_steps)
    np.testing.assert_array_equal(result.face_mask, mask)
    landmarks = result.landmarks.astype(np.float64)
    assert np.isnan(landmarks[~mask]).all() and np.isfinite(landmarks[mask]).all()
    for k, points in faces.items():  # detections pass through unchanged (no smoothing)
        np.testing.assert_allclose(landmarks[k], points, atol=0.05)
    # Filled frames lie between the detections around them (linear fill or hold).
    shift = landmarks[mask][:, 0, 0] - base[0, 0]  # x offset = 0.5 * (a frame index)
    known = np.flatnonzero(detected)
    for k, offset in zip(np.flatnonzero(mask), shift, strict=True):
        a = known[known <= k].max()
        later = known[known >= k]
        b = later.min() if len(later) else a
        assert 0.5 * a - 0.05 <= offset <= 0.5 * b + 0.05


def test_smoothing_reduces_jitter_without_lagging(tracker: FaceTracker) -> None:
    frames = decode(PORTRAIT_CLIP, 40)
    smooth = track(tracker, frames).landmarks.astype(np.float64)
    with FaceTracker(SPEC, smoothing=False) as raw_tracker:
        raw = track(raw_tracker, frames).landmarks.astype(np.float64)
    eyes = list(ALIGN_INDICES[:4])
    eye_distance = np.linalg.norm(raw[:, 263] - raw[:, 33], axis=1).mean()

    def jitter(x: np.ndarray) -> float:  # mean second difference of the eye corners, pixels
        return float(np.abs(np.diff(x[:, eyes], n=2, axis=0)).mean())

    assert jitter(smooth) < 0.8 * jitter(raw)
    assert np.abs(smooth - raw).mean() < 0.03 * eye_distance  # follows the face closely


def test_empty_chunk_and_bad_shapes(tracker: FaceTracker) -> None:
    tracker.reset()
    empty = tracker.process(np.zeros((0, 64, 64, 3), np.uint8))
    assert empty.face.shape == (0, SPEC.face_size, SPEC.face_size, 3)
    assert empty.landmarks.shape == (0, 468, 2) and empty.face_mask.shape == (0,)
    with pytest.raises(ValueError, match="RGB"):
        tracker.process(np.zeros((2, 64, 64), np.uint8))


# --- keyframes: landmarks on a subset of frames, interpolated in between -------------------
@register_backend("test-counting-replay")
class CountingReplay(ReplayBackend):
    """ReplayBackend that records which frames the tracker ran it on."""

    def __init__(self, faces: dict[int, np.ndarray], calls: list[int]) -> None:
        super().__init__(faces)
        self.calls = calls

    def detect(self, frame: np.ndarray) -> list[np.ndarray]:
        self.calls.append(int(frame[0, 0, 0]))
        return super().detect(frame)


def scripted_face(seed: int) -> np.ndarray:
    """(468, 2) random points with an outer eye distance of 30 px (the motion unit)."""
    base = np.random.default_rng(seed).uniform(20, 60, size=(468, 2))
    base[263] = base[33] + [30.0, 0.0]
    return base


def numbered_frames(n: int) -> np.ndarray:
    frames = np.zeros((n, 4, 4, 3), np.uint8)
    frames[:, 0, 0, 0] = np.arange(n)  # ReplayBackend reads the frame index here
    return frames


def expected_calls(detected: list[bool], chunk_sizes: list[int], every: int) -> list[int]:
    """The documented schedule for a still face: while the last measured frame had the face,
    only keyframes ((i + 1) % every == 0) and chunk ends; a keyframe that misses the face
    after one that had it sends the model back over the frames in between."""
    calls: list[int] = []
    ends = set(np.cumsum(chunk_sizes) - 1)
    tracked, last = False, -1
    for i, hit in enumerate(detected):
        if tracked and (i + 1) % every != 0 and i not in ends:
            continue
        calls.append(i)
        if tracked and not hit:
            calls.extend(range(last + 1, i))
        tracked, last = hit, i
    return calls


@settings(max_examples=40, deadline=None)
@given(
    detected=st.lists(st.booleans(), min_size=1, max_size=50),
    chunk_size=st.integers(1, 20),
    every=st.integers(2, 5),
)
def test_keyframe_schedule_and_gap_rule(detected: list[bool], chunk_size: int, every: int) -> None:
    """A still face is measured on keyframes only; a miss sends the model back over the
    skipped frames; the face mask follows the every-frame gap rule whatever the schedule."""
    base = scripted_face(len(detected))
    faces = {k: base.copy() for k, hit in enumerate(detected) if hit}
    frames = numbered_frames(len(detected))
    calls: list[int] = []
    options = dict(faces=faces, calls=calls, smoothing=False, search_every=1)
    tracker = FaceTracker(SPEC, backend="test-counting-replay", landmark_every=every, **options)
    result = track(tracker, frames, chunk=chunk_size)
    sizes = [len(frames[i : i + chunk_size]) for i in range(0, len(frames), chunk_size)]
    assert sorted(calls) == sorted(expected_calls(detected, sizes, every))
    assert len(calls) == len(set(calls)), "no frame is measured twice"
    np.testing.assert_array_equal(
        result.face_mask, expected_mask(detected, sizes, tracker.max_gap_steps)
    )
    landmarks = result.landmarks[result.face_mask].astype(np.float64)
    np.testing.assert_allclose(landmarks, np.broadcast_to(base, landmarks.shape), atol=0.05)


def test_slow_motion_is_interpolated_and_fast_motion_measured() -> None:
    """A face gliding at 0.02 eye distances per frame is measured on keyframes only, and the
    cubic fill puts the skipped frames where the face was; at 0.1 per frame (above
    fast_motion) every frame is measured."""
    base = scripted_face(0)
    for speed, every_frame in ((0.02, False), (0.1, True)):
        faces = {k: base + [k * speed * 30.0, k * speed * 10.0] for k in range(40)}
        calls: list[int] = []
        with FaceTracker(
            SPEC, backend="test-counting-replay", faces=faces, calls=calls, smoothing=False,
            landmark_every=4, fast_motion=0.05,
        ) as tracker:  # fmt: skip
            result = track(tracker, numbered_frames(40), chunk=20)
        if every_frame:
            assert sorted(calls) == list(range(40))
        else:
            assert calls == [0, 3, 7, 11, 15, 19, 23, 27, 31, 35, 39]
        truth = np.stack([faces[k] for k in range(40)])
        np.testing.assert_allclose(result.landmarks.astype(np.float64), truth, atol=0.1)


def test_keyframe_tracking_matches_every_frame_tracking_on_a_bundled_clip() -> None:
    """The accuracy check of benchmarks/tracking_accuracy.py on one clip shipped in the
    package: the mouth crop stays within 0.05 crop sides of the every-frame tracker's on
    >= 95% of frames, for well under half the landmark-model runs."""
    clip = fx.BUNDLED_MEDIA / "talking" / "talking-face_pc-avs_517600055.mp4"
    frames = decode(clip, 100)
    counts, landmarks = [], []
    for every in (1, 4):
        with FaceTracker(SPEC, landmark_every=every) as tracker:
            calls = [0]
            detect = tracker.backend.detect  # built here, so the wrapper below stays

            def counted(frame: np.ndarray, detect=detect, calls=calls) -> list[np.ndarray]:
                calls[0] += 1
                return detect(frame)

            tracker.backend.detect = counted
            parts = [tracker.process(frames[i : i + 50]) for i in (0, 50)]
        assert all(p.face_mask.all() for p in parts)
        counts.append(calls[0])
        landmarks.append(np.concatenate([p.landmarks for p in parts]))
    offsets = mouth_centre_offsets(landmarks[0], landmarks[1], SPEC)
    assert (offsets <= 0.05).mean() >= 0.95
    assert counts[0] == len(frames) and counts[1] < 0.4 * len(frames)


def test_tracking_accuracy_benchmark_prints_its_table(tmp_path: Path) -> None:
    clips = tmp_path / "clips"
    clips.mkdir()
    (clips / SMALL_CLIP.name).symlink_to(SMALL_CLIP)
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "tracking_accuracy.py"
    out = subprocess.run(
        [sys.executable, str(script), "--clips", str(clips), "--max-frames", "30"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rows = [line for line in out.splitlines() if line.startswith("| ")]
    assert rows[1].startswith(f"| {SMALL_CLIP.name}") and rows[-1].startswith("| all 1 clips")
    assert int(rows[1].split("|")[2]) == 30  # frames tracked


def test_fast_landmark_parsing_matches_the_messages() -> None:
    """The serialised-bytes reader equals reading the landmark objects, and a message in
    another layout (visibility set) takes the loop."""
    import mediapipe as mp
    from mediapipe.framework.formats import landmark_pb2

    from avdf.preprocess.face_backends import _normalized_xy

    frame = np.ascontiguousarray(decode(SMALL_CLIP, 1)[0])
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True) as mesh:
        message = mesh.process(frame).multi_face_landmarks[0]
    loop = np.array([(p.x, p.y) for p in message.landmark], np.float32)
    np.testing.assert_array_equal(_normalized_xy(message), loop)
    other = landmark_pb2.NormalizedLandmarkList()
    other.CopyFrom(message)
    other.landmark[5].visibility = 0.5
    np.testing.assert_array_equal(_normalized_xy(other), loop)
