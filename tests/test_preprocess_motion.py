"""Tests for the ``motion`` expert (avdf.preprocess.motion): real clips through the real
decoder, with frames held still the way the synthetic corpus's freezes are, and the stream
through the cache and a model that reads it."""

from __future__ import annotations

import media_fixtures as fx
import numpy as np
import pytest
import torch

from avdf.experts import EXPERTS
from avdf.preprocess.cache import CacheReader, read_meta
from avdf.preprocess.motion import frame_motion, frame_motion_of
from avdf.preprocess.pipeline import cache_video
from avdf.timebase import MediaSpec

SPEC = MediaSpec()
PREV, NEXT, STILL = range(3)


def clip_with_a_freeze(dst, first: int, stop: int, fps: int = 25, seconds: float = 3.0):
    """The talking clip at ``fps`` with frame ``first`` held over frames ``[first, stop)``."""
    frames, src_fps = fx.source_frames(seconds=seconds)
    shown = fx.resample(frames, src_fps, [i / fps for i in range(int(seconds * fps))])
    shown[first:stop] = shown[first]
    return fx.write_video(dst, shown, fps=fps, audio=fx.source_audio(seconds=seconds))


def test_a_held_frame_is_far_stiller_than_the_clip_around_it(tmp_path) -> None:
    video = clip_with_a_freeze(tmp_path / "freeze.mp4", 30, 45)
    channels = frame_motion_of(video, SPEC).steps(SPEC, 0, 75)
    assert channels.shape == (75, 3)
    held, around = channels[31:44, STILL], np.r_[channels[:29, STILL], channels[46:, STILL]]
    # Every held step is below every genuine one: a separation the face crops do not give.
    assert held.max() < around.min()
    assert np.median(around) == pytest.approx(0.0, abs=0.15)  # relative to the video's own
    # The seam where the clip resumes is a spike in the difference to the previous frame.
    assert channels[45, PREV] > np.quantile(channels[:29, PREV], 0.9)


def test_a_source_repeating_every_other_frame_is_not_still(tmp_path) -> None:
    # 12.5 distinct pictures a second shown at 25 fps (a demo input up-sampled in frame rate):
    # one side of every step moves, so no step looks held.
    frames, src_fps = fx.source_frames(seconds=3.0)
    doubled = fx.resample(frames, src_fps, [i // 2 * 2 / 25 for i in range(75)])
    video = fx.write_video(tmp_path / "doubled.mp4", doubled)
    still = frame_motion_of(video, SPEC).steps(SPEC, 0, 75)[:, STILL]
    assert np.quantile(still, 0.1) > -0.7


def test_steps_of_several_frames_and_past_the_end() -> None:
    motion = frame_motion(np.array([1.0, 3.0, 0.0, 0.0, 7.0]))  # 6 frames
    assert motion.values.shape == (6, 3)
    np.testing.assert_allclose(motion.values[:, PREV], np.log1p([1, 1, 3, 0, 0, 7]))
    np.testing.assert_allclose(motion.values[:, NEXT], np.log1p([1, 3, 0, 0, 7, 7]))
    spec = MediaSpec(stride=2)
    steps = motion.steps(spec, 1, 3)  # frames 2-3, 4-5, then past the end
    np.testing.assert_allclose(steps[0], motion.values[2:4].mean(axis=0))
    np.testing.assert_allclose(steps[2], motion.values[5])
    assert not frame_motion(np.zeros(0)).steps(SPEC, 0, 4).any()


@pytest.fixture(scope="module")
def tracker():
    from avdf.preprocess.face import FaceTracker

    return FaceTracker(SPEC)


def test_the_stream_reaches_the_cache_and_a_model_that_reads_it(tmp_path, tracker) -> None:
    from avdf.inference.detector import Detector
    from avdf.models import create_model

    video = clip_with_a_freeze(tmp_path / "freeze.mp4", 20, 35, seconds=2.0)
    cache = tmp_path / "v.npz"
    cache_video(video, cache, SPEC, tracker=tracker, chunk_steps=20, experts=["motion"])
    assert read_meta(cache)["experts"] == {"motion": EXPERTS["motion"].version}
    features = CacheReader(cache).read()
    stream = features.experts["motion"]
    assert stream.shape == (50, 3) and stream.dtype == np.float16
    assert not stream[~features.face_mask].any()  # zero where the face (its modality) is absent
    # The same values as the stream computed on its own, across the chunk seams.
    direct = frame_motion_of(video, SPEC).steps(SPEC, 0, 50).astype(np.float16)
    np.testing.assert_array_equal(stream[features.face_mask], direct[features.face_mask])

    torch.manual_seed(0)
    model = create_model("mmms_ba", spec=SPEC, experts=["motion"], block_dim=16, gru_hidden=16)
    assert model.encoders["face"].gru.input_size == model.encoders["audio"].gru.input_size + 3
    detector = Detector(model.eval(), SPEC, window_steps=32, chunk_steps=20)
    from_cache = detector.steps_from_features([features], source=cache)
    detector._tracker = tracker
    from_video = detector.detect_steps(video)
    np.testing.assert_allclose(from_cache.fake_prob, from_video.fake_prob, atol=1e-5)
