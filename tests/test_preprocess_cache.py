"""The streaming pipeline (real decoder, real MediaPipe) and the per-video cache file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import zipfile

import cv2
import media_fixtures as fx
import numpy as np
import pytest

from avdf.atomic import temporary_sibling
from avdf.io.decode import iter_video_frames, probe
from avdf.preprocess.cache import (
    CacheReader,
    CacheWriter,
    cache_path_for,
    is_complete,
    read_meta,
    source_fingerprint,
)
from avdf.preprocess.face import LIP_INDICES, MOUTH_SIDE_PER_EYE_DISTANCE, FaceTracker
from avdf.preprocess.pipeline import ExtractionStats, cache_video, extract_features, iter_features
from avdf.timebase import MediaSpec

SPEC = MediaSpec()
ARRAYS = ("face", "mouth", "mel", "face_mask", "audio_mask", "landmarks")


@pytest.fixture(scope="module")
def tracker() -> FaceTracker:
    return FaceTracker(SPEC)


@pytest.fixture(scope="module")
def source_features(tracker):
    stats = ExtractionStats()
    return extract_features(fx.SOURCE, SPEC, tracker=tracker, stats=stats), stats


def assert_same(a, b):
    for name in ARRAYS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


# --- pipeline ----------------------------------------------------------------------------


def test_pipeline_on_a_real_clip(source_features):
    feats, stats = source_features
    assert feats.n_steps == SPEC.steps_in(probe(fx.SOURCE).duration) == 174
    assert feats.face_mask.mean() >= 0.95 and feats.audio_mask.all()
    assert stats.notes == [] and stats.face_rate == feats.face_mask.mean()
    assert feats.face[feats.face_mask].std() > 20  # real image content
    assert np.isfinite(feats.landmarks[feats.face_mask].astype(np.float32)).all()


def test_small_chunks_give_the_same_features(tracker, source_features):
    whole, _ = source_features
    chunks = list(iter_features(fx.SOURCE, SPEC, chunk_steps=37, tracker=tracker))
    assert [c.first_step for c in chunks][:3] == [0, 37, 74] and max(
        c.n_steps for c in chunks
    ) == 37
    chunked = type(whole).concat(chunks)
    np.testing.assert_array_equal(chunked.mel, whole.mel)
    np.testing.assert_array_equal(chunked.face_mask, whole.face_mask)
    assert np.abs(chunked.face.astype(int) - whole.face).mean() < 1.0


def test_video_without_audio_is_not_an_error(tmp_path, tracker):
    stats = ExtractionStats()
    feats = extract_features(fx.video_only(tmp_path / "v.mp4"), SPEC, tracker=tracker, stats=stats)
    assert feats.n_steps == 50 and not feats.audio_mask.any() and not feats.mel.any()
    assert feats.face_mask.mean() >= 0.95
    assert any("no audio" in n for n in stats.notes)


def test_no_face_is_masked_with_a_note(tmp_path, tracker):
    stats = ExtractionStats()
    feats = extract_features(fx.no_face(tmp_path / "wall.mp4"), SPEC, tracker=tracker, stats=stats)
    assert feats.n_steps == 50 and not feats.face_mask.any() and feats.audio_mask.all()
    assert not feats.face.any() and np.isnan(feats.landmarks.astype(np.float32)).all()
    assert any("no face found" in n for n in stats.notes)


def test_late_audio_masks_the_steps_before_it(tmp_path, tracker):
    path = fx.late_audio(tmp_path / "late.mp4", offset=0.5)
    feats = extract_features(path, SPEC, tracker=tracker)
    first_audio = int(np.argmax(feats.audio_mask))
    assert 9 <= first_audio <= 12  # audio stream starts at ~0.44-0.5 s = steps 11-12
    assert feats.audio_mask[first_audio:-2].all() and not feats.mel[:first_audio].any()


def test_rotated_video_is_tracked_upright(tmp_path, tracker):
    feats = extract_features(fx.rotated(tmp_path / "rot.mp4"), SPEC, tracker=tracker)
    assert feats.face_mask.mean() >= 0.95


def test_stride_tracks_the_first_frame_of_each_step(tracker):
    spec = MediaSpec(stride=2)
    feats = extract_features(fx.SOURCE, spec, tracker=FaceTracker(spec))
    assert feats.n_steps == 87 and feats.mel.shape == (87, 8, 64)
    assert feats.face_mask.mean() >= 0.95


def test_short_clip(tmp_path, tracker):
    feats = extract_features(fx.short_clip(tmp_path / "s.mp4"), SPEC, tracker=tracker)
    assert feats.n_steps == 12 and feats.audio_mask.all()


def _mouth_offset(frame: np.ndarray, mouth: np.ndarray, landmarks: np.ndarray) -> float:
    """Distance (in mouth-crop sides) between the lips' centroid and where the mouth crop's
    content actually is in the frame (found by template matching, independent of the crop
    code's transforms)."""
    eye = np.linalg.norm(landmarks[263] - landmarks[33])
    side = int(round(MOUTH_SIDE_PER_EYE_DISTANCE * eye))
    template = cv2.resize(mouth, (side, side), interpolation=cv2.INTER_LINEAR)
    score = cv2.matchTemplate(frame, template, cv2.TM_CCOEFF_NORMED)
    y, x = np.unravel_index(score.argmax(), score.shape)
    found = np.array([x + side / 2, y + side / 2])
    lips = landmarks[list(LIP_INDICES)].mean(axis=0)
    return float(np.linalg.norm(found - lips) / side)


@pytest.mark.slow
@pytest.mark.parametrize("clip", fx.talking_clips(), ids=lambda p: p.stem)
def test_every_shared_clip(clip, tracker):
    info = probe(clip)
    stats = ExtractionStats()
    feats = extract_features(clip, SPEC, tracker=tracker, stats=stats)
    # Same number of audio and video steps by construction; duration within one step.
    assert feats.mel.shape[0] == feats.face.shape[0] == feats.n_steps
    assert abs(feats.n_steps * SPEC.step_seconds - info.duration) <= SPEC.step_seconds
    assert feats.face_mask.mean() >= 0.95, stats.face_rate
    assert feats.audio_mask.mean() >= 0.95
    # Mouth crops sit on the lips: check a few steps against the decoded frames.
    frames = next(iter_video_frames(clip, SPEC, max_side=640, chunk_frames=100))
    scale = np.array([frames.shape[2] / info.width, frames.shape[1] / info.height])
    for k in range(5, len(frames), 30):
        if feats.face_mask[k]:
            lm = feats.landmarks[k].astype(np.float32) * scale  # source -> decoded pixels
            assert _mouth_offset(frames[k], feats.mouth[k], lm) < 0.15, k


# --- cache -------------------------------------------------------------------------------


def test_cache_round_trip_and_windows(tmp_path, source_features):
    feats, _ = source_features
    path = tmp_path / "clip.npz"
    with CacheWriter(path, {"source_fingerprint": "x"}) as writer:
        for start in range(0, feats.n_steps, 50):
            writer.append(feats.slice(start, start + 50))
    reader = CacheReader(path)
    assert reader.n_steps == 174 and reader.duration == pytest.approx(6.96)
    assert reader.spec == SPEC and reader.meta["source_fingerprint"] == "x"
    assert reader.meta["face_rate"] == pytest.approx(feats.face_mask.mean())
    for start, stop in [(0, 174), (10, 40), (45, 105), (49, 51), (170, 400), (80, 80)]:
        window = reader.read(start, stop)
        assert window.first_step == start
        assert_same(window, feats.slice(start, min(stop, 174)))
    assert set(np.load(path).files) >= {"c00000/face", "c00003/mel"}  # an npz numpy can open


def test_failed_write_leaves_nothing(tmp_path, source_features):
    feats, _ = source_features
    path = tmp_path / "clip.npz"
    with pytest.raises(RuntimeError):
        with CacheWriter(path) as writer:
            writer.append(feats.slice(0, 50))
            raise RuntimeError("decoder died")
    assert list(tmp_path.iterdir()) == []


def test_partial_files_never_read_as_complete(tmp_path, source_features):
    feats, _ = source_features
    path = tmp_path / "clip.npz"
    with CacheWriter(path) as writer:
        writer.append(feats)
    assert is_complete(path) and is_complete(path, SPEC)
    assert not is_complete(path, MediaSpec(stride=2))
    data = path.read_bytes()
    for keep in (0.3, 0.9, 0.999):
        cut = tmp_path / f"cut{keep}.npz"
        cut.write_bytes(data[: int(len(data) * keep)])
        assert not is_complete(cut) and read_meta(cut) is None
    # An archive with chunks but without meta.json (a writer killed before closing).
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp_path / "nometa.npz", "w") as dst:
        for name in src.namelist():
            if name != "meta.json":
                dst.writestr(name, src.read(name))
    assert not is_complete(tmp_path / "nometa.npz")


def test_killed_writer_leaves_no_complete_file_and_a_rerun_cleans_up(tmp_path, tracker):
    # A real process killed with SIGKILL while streaming a video into the cache.
    target = tmp_path / "video.npz"
    code = (
        "import sys, time\n"
        "from avdf.preprocess.cache import CacheWriter\n"
        "from avdf.preprocess.pipeline import iter_features\n"
        "class T:\n"
        "  def reset(self): pass\n"
        "  def process(self, f):\n"
        "    import numpy as np\n"
        "    from avdf.preprocess.face import FaceChunk\n"
        "    n = len(f)\n"
        "    return FaceChunk(np.zeros((n,64,64,3),np.uint8), np.zeros((n,48,48,3),np.uint8),"
        " np.zeros(n,bool), np.full((n,468,2),np.nan,np.float16))\n"
        f"with CacheWriter({str(target)!r}) as w:\n"
        f"  for c in iter_features({str(fx.SOURCE)!r}, chunk_steps=10, tracker=T()):\n"
        "    w.append(c); print('chunk', flush=True); time.sleep(0.2)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    for _ in range(3):
        assert proc.stdout.readline().startswith("chunk")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not target.exists()
    leftovers = list(tmp_path.iterdir())
    assert len(leftovers) == 1 and f".{proc.pid}@" in leftovers[0].name  # names its writer
    assert not is_complete(leftovers[0])
    # The rerun removes what dead writers left (also the older name form), not a live one's.
    legacy = tmp_path / f"video.npz.tmp-{proc.pid}"
    legacy.write_bytes(b"half")
    live = temporary_sibling(target)  # this process: alive
    live.write_bytes(b"writing")
    cache_video(fx.short_clip(tmp_path / "s.mp4"), target, SPEC, tracker=tracker)
    assert is_complete(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, "s.mp4", "video.npz"])


def test_cache_video_skips_and_rebuilds(tmp_path, tracker):
    video = fx.short_clip(tmp_path / "s.mp4")
    out = tmp_path / "cache" / "s.npz"
    first = cache_video(video, out, SPEC, tracker=tracker)
    assert not first.skipped and first.n_steps == 12 and out.exists()
    mtime = out.stat().st_mtime_ns
    time.sleep(0.01)
    assert cache_video(video, out, SPEC, tracker=tracker).skipped
    assert out.stat().st_mtime_ns == mtime
    assert not cache_video(video, out, SPEC, tracker=tracker, force=True).skipped
    fx.short_clip(video, seconds=0.8)  # the source changed: rebuilt
    again = cache_video(video, out, SPEC, tracker=tracker)
    assert not again.skipped and again.n_steps == 20
    assert CacheReader(out).meta["source_fingerprint"] == source_fingerprint(video)
    # Made with other tracking options: stale, rebuilt, and the new options are recorded.
    with FaceTracker(SPEC, landmark_every=1) as every_frame:
        assert not cache_video(video, out, SPEC, tracker=every_frame).skipped
        assert CacheReader(out).meta["tracking"] == every_frame.settings
        assert cache_video(video, out, SPEC, tracker=every_frame).skipped


def test_cache_names_are_flat_safe_and_distinct(tmp_path):
    ids = ["test/000001", "test__000001x", "a b/ü?", "..", "x" * 300, "x" * 299 + "y", "/abs"]
    paths = [cache_path_for(tmp_path, i) for i in ids]
    assert len(set(paths)) == len(ids)
    for p in paths:
        assert p.parent == tmp_path and "/" not in p.name and len(p.name) < 255
        assert not p.name.startswith(".")
        p.write_bytes(b"")  # the file system accepts the name
