"""Decoding, soft-NMS, sliding windows and stitching (by hand), then the Detector end to end
on real shared clips with a small untrained model."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import av
import media_fixtures as fx
import numpy as np
import pytest
import tiny_models
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from avdf.data.batch import features_to_inputs
from avdf.errors import InputError
from avdf.inference.decode import DecodeConfig, decode_proposals, soft_nms
from avdf.inference.detector import Detector, aggregate_video_score
from avdf.inference.sliding import OverlapStitcher, iter_windows, window_weights
from avdf.preprocess.features import N_LANDMARKS, VideoFeatures
from avdf.timebase import MediaSpec

SPEC = MediaSpec()  # 25 fps, stride 1: one step = 0.04 s


# --- soft-NMS and decoding -------------------------------------------------------------


def test_soft_nms_decays_overlap_as_computed() -> None:
    starts, ends = np.array([0.0, 1.0, 5.0]), np.array([2.0, 3.0, 6.0])
    keep, scores = soft_nms(starts, ends, np.array([0.9, 0.8, 0.3]), sigma=0.5)
    # [0, 2] vs [1, 3]: IoU = 1 / 3, so 0.8 decays by exp(-(1/9) / 0.5); [5, 6] is disjoint.
    assert keep.tolist() == [0, 1, 2]
    assert scores == pytest.approx([0.9, 0.8 * math.exp(-(1 / 9) / 0.5), 0.3])


def test_soft_nms_reorders_after_decay() -> None:
    # The near-duplicate of the best proposal decays below a weaker disjoint one.
    starts, ends = np.array([0.0, 0.0, 4.0]), np.array([2.0, 2.1, 5.0])
    keep, scores = soft_nms(starts, ends, np.array([0.9, 0.85, 0.5]), sigma=0.5)
    assert keep.tolist() == [0, 2, 1]
    assert list(scores) == sorted(scores, reverse=True)


def _steps(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros(n), np.zeros((n, 2))


# Scores are the level probabilities alone: no inside / boundary factors, no snapping.
PLAIN = DecodeConfig(inside_weight=0.0, boundary_weight=0.0, snap_steps=0)


def _decode(prob, bounds, duration, audio=None, visual=None, config=PLAIN, **kwargs):
    """One-level decoding, as the paper's single-scale head feeds it."""
    prob = np.asarray(prob)
    return decode_proposals(
        prob,
        prob[:, None],
        np.asarray(bounds)[:, None, :],
        SPEC,
        duration,
        audio_prob=audio,
        visual_prob=visual,
        config=config,
        **kwargs,
    )


def test_decode_two_overlapping_proposals_in_seconds() -> None:
    prob, bounds = _steps(100)
    # Step 24 (centre 0.98 s) proposes [0.98 - 0.48, 0.98 + 0.52] = [0.5, 1.5];
    # step 37 (centre 1.50 s) proposes [1.5 - 0.5, 1.5 + 0.5] = [1.0, 2.0].
    prob[24], bounds[24] = 0.9, (12, 13)
    prob[37], bounds[37] = 0.8, (12.5, 12.5)
    audio = np.zeros(100)
    audio[12:38] = 1.0  # audio-fake on steps 12..37; [0.5, 1.5) holds steps 12..36
    segments = _decode(prob, bounds, 4.0, audio, 1 - audio)
    bounds_seconds = [t for s in segments for t in (s.start, s.end)]
    assert bounds_seconds == pytest.approx([0.5, 1.5, 1.0, 2.0])
    iou = 0.5 / 1.5
    assert [s.score for s in segments] == pytest.approx([0.9, 0.8 * math.exp(-(iou**2) / 0.5)])
    assert segments[0].audio_score == pytest.approx(1.0)  # steps 12..36 all audio-fake
    assert segments[0].modality == "audio"
    # [1.0, 2.0) holds steps 25..49; audio-fake on 25..37 = 13 of 25.
    assert segments[1].audio_score == pytest.approx(13 / 25)


def test_decode_clips_drops_zero_length_and_sorts() -> None:
    prob, bounds = _steps(50)
    prob[0], bounds[0] = 0.7, (30, 5)  # starts before 0 s -> clipped to 0
    prob[49], bounds[49] = 0.95, (5, 40)  # ends after 2 s -> clipped to duration
    prob[10], bounds[10] = 0.6, (0, 0)  # zero length -> dropped
    segments = _decode(prob, bounds, 2.0)
    assert [s.score for s in segments] == sorted((s.score for s in segments), reverse=True)
    assert len(segments) == 2
    assert all(0.0 <= s.start < s.end <= 2.0 for s in segments)
    assert segments[0].end == pytest.approx(2.0) and segments[1].start == 0.0
    assert segments[0].audio_score is None and segments[0].modality is None


def test_decode_keeps_exactly_top_k() -> None:
    rng = np.random.default_rng(0)
    prob = rng.uniform(0.2, 1.0, 500)
    bounds = rng.uniform(1, 30, (500, 2))
    segments = _decode(prob, bounds, 20.0, config=replace(PLAIN, top_k=7))
    assert len(segments) == 7
    assert segments[0].score == pytest.approx(prob.max())
    assert not _decode(prob, bounds, 20.0, config=replace(PLAIN, pre_threshold=1.0))


def test_ends_snap_to_boundary_peaks_and_evidence_ranks_proposals() -> None:
    n = 60
    prob, bounds = _steps(n)
    # Two equally confident proposals: step 20 proposes [17.5, 24.5] (steps), step 40
    # proposes [36.5, 43.5]. Seams were seen at 17.0 and 25.0 only.
    prob[20], bounds[20] = 0.8, (3.0, 4.0)
    prob[40], bounds[40] = 0.8, (4.0, 3.0)
    start, end = np.zeros(n), np.zeros(n)
    start[16:18] = 0.9  # bump straddling the seam at step coordinate 17
    end[24:26] = 0.9  # seam at 25
    step = SPEC.step_seconds
    plain = _decode(prob, bounds, 3.0, start_prob=start, end_prob=end)
    assert sorted((s.start, s.end) for s in plain)[0] == pytest.approx((17.5 * step, 24.5 * step))
    config = DecodeConfig(inside_weight=0.0, boundary_weight=1.0, snap_steps=2)
    snapped = _decode(prob, bounds, 3.0, start_prob=start, end_prob=end, config=config)
    # The proposal with seams at its ends snaps onto them and ranks first.
    assert (snapped[0].start, snapped[0].end) == pytest.approx((17 * step, 25 * step))
    assert snapped[0].score == pytest.approx(0.8 * 0.9)
    # No seam near the other one: its boundary evidence is 0, and so is its score (dropped).
    assert len(snapped) == 1
    start[35:38] = end[43:45] = 0.4  # weak seams: it comes back, ranked second, unsnapped
    snapped = _decode(prob, bounds, 3.0, start_prob=start, end_prob=end, config=config)
    assert len(snapped) == 2 and snapped[1].score == pytest.approx(0.8 * 0.4)


def test_every_level_proposes_and_inside_probability_scales_scores() -> None:
    n = 40
    fake = np.zeros(n)
    fake[10:20] = 1.0
    fake[25:35] = 0.5
    level_prob = np.zeros((n, 2))
    level_bounds = np.zeros((n, 2, 2))
    level_prob[15, 0], level_bounds[15, 0] = 0.9, (5.5, 4.5)  # [10, 20]: fake inside
    level_prob[30, 1], level_bounds[30, 1] = 0.9, (5.5, 4.5)  # [25, 35]: half as fake
    config = DecodeConfig(inside_weight=1.0, boundary_weight=0.0, snap_steps=0)
    segments = decode_proposals(fake, level_prob, level_bounds, SPEC, 2.0, config=config)
    assert [t for s in segments for t in (s.start, s.end)] == pytest.approx([0.4, 0.8, 1.0, 1.4])
    assert [s.score for s in segments] == pytest.approx([0.9, 0.45])


# --- sliding windows and stitching -----------------------------------------------------


def _features(first_step: int, n: int, spec: MediaSpec = SPEC) -> VideoFeatures:
    """Synthetic chunk whose mel carries the step index, to check window contents."""
    mel = np.broadcast_to(
        np.arange(first_step, first_step + n, dtype=np.float16)[:, None, None],
        (n, spec.mel_frames_per_step, spec.n_mels),
    ).copy()
    return VideoFeatures(
        spec,
        first_step,
        np.zeros((n, spec.face_size, spec.face_size, 3), np.uint8),
        np.zeros((n, spec.mouth_size, spec.mouth_size, 3), np.uint8),
        mel,
        np.ones(n, bool),
        np.ones(n, bool),
        np.zeros((n, N_LANDMARKS, 2), np.float16),
    )


def _chunks(total: int, size: int) -> list[VideoFeatures]:
    return [_features(s, min(size, total - s)) for s in range(0, total, size)]


@pytest.mark.parametrize("total", [1, 10, 16, 17, 40, 47])
def test_windows_cover_every_step_with_padded_tail(total: int) -> None:
    windows = list(iter_windows(_chunks(total, 7), window_steps=16))
    starts = [w.first_step for w in windows]
    assert starts == list(range(0, 8 * len(windows), 8))
    assert all(w.n_steps == 16 for w in windows[:-1])
    assert windows[-1].first_step + windows[-1].n_steps == total  # tail kept, not truncated
    for w in windows:  # contents match their position in the video
        assert w.mel[:, 0, 0].tolist() == list(range(w.first_step, w.first_step + w.n_steps))


def _stitch(values: np.ndarray, window: int, chunk: int, weighting: str = "triangular"):
    stitcher = OverlapStitcher(window, n_channels=values.shape[1], weighting=weighting)
    out = []
    for w in iter_windows(_chunks(len(values), chunk), window_steps=window):
        out.append(stitcher.add(w.first_step, values[w.first_step : w.first_step + w.n_steps]))
    out.append(stitcher.finish())
    return np.concatenate(out)


@pytest.mark.parametrize("weighting", ["triangular", "uniform"])
def test_stitching_a_constant_gives_the_constant(weighting: str) -> None:
    values = np.full((101, 3), 0.37)
    np.testing.assert_allclose(_stitch(values, 16, 9, weighting), values)


def test_stitching_weights_overlaps_by_hand() -> None:
    # Window 4, hop 2, 6 steps: windows at 0 and 2 (the second ends exactly at 6).
    stitcher = OverlapStitcher(4, 1)
    w = window_weights(4)  # [1, 2, 2, 1]
    assert w.tolist() == [1, 2, 2, 1]
    first = stitcher.add(0, np.ones((4, 1)))
    second = stitcher.add(2, np.full((4, 1), 3.0))
    rest = stitcher.finish()
    got = np.concatenate([first, second, rest])[:, 0]
    # Steps 2 and 3: window 0 (weights 2, 1, value 1) and window 2 (weights 1, 2, value 3).
    expected = [1, 1, (2 * 1 + 1 * 3) / 3, (1 * 1 + 2 * 3) / 3, 3, 3]
    np.testing.assert_allclose(got, expected)


def test_stitching_is_independent_of_chunk_size() -> None:
    # Each window contributes its own values, so the stitched result must not depend on
    # how the stream was chunked.
    rng = np.random.default_rng(1)
    values = rng.uniform(size=(203, 2))

    def per_window(chunk: int) -> np.ndarray:
        stitcher = OverlapStitcher(32, 2)
        out = []
        for w in iter_windows(_chunks(203, chunk), window_steps=32):
            # Window-dependent outputs: value + window start.
            v = values[w.first_step : w.first_step + w.n_steps] + w.first_step
            out.append(stitcher.add(w.first_step, v))
        out.append(stitcher.finish())
        return np.concatenate(out)

    reference = per_window(203)
    assert reference.shape == (203, 2)
    for chunk in (1, 5, 31, 32, 64, 250):
        np.testing.assert_allclose(per_window(chunk), reference)


def test_short_video_is_one_padded_window() -> None:
    windows = list(iter_windows(_chunks(5, 3), window_steps=64))
    assert len(windows) == 1 and windows[0].n_steps == 5
    stitcher = OverlapStitcher(64, 1)
    done = stitcher.add(0, np.arange(5.0)[:, None])
    assert len(done) == 0
    np.testing.assert_allclose(stitcher.finish()[:, 0], np.arange(5.0))


# --- Detector end to end: real clips, real pipeline, a small untrained model ------------

CLIP = fx.talking("talking-face_pc-avs_517600055.mp4")  # 4.48 s, 224x224, with audio


def tiny_checkpoint(path: Path, window_steps: int = 32) -> Path:
    """A real MMMS-BA, randomly initialised and small, saved as avdf saves checkpoints."""
    return tiny_models.tiny_checkpoint(path, window_steps=window_steps, fusion_dim=16)


def video_without_audio(src: Path, dst: Path) -> Path:
    """Remux only the video stream of ``src`` (no re-encoding)."""
    with av.open(str(src)) as source, av.open(str(dst), "w") as out:
        stream_in = source.streams.video[0]
        stream_out = out.add_stream_from_template(stream_in)
        for packet in source.demux(stream_in):
            if packet.dts is None:
                continue
            packet.stream = stream_out
            out.mux(packet)
    return dst


@pytest.fixture(scope="module")
def detector(tmp_path_factory: pytest.TempPathFactory) -> Detector:
    path = tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.ckpt")
    # Untrained, the level classifiers sit at their 0.01 prior: let every step propose.
    return Detector.from_checkpoint(path, decode=DecodeConfig(pre_threshold=0.0))


@pytest.mark.slow
def test_detect_real_clip(detector: Detector) -> None:
    assert detector.window_steps == 32  # taken from the checkpoint
    prediction, steps = detector.detect_with_steps(CLIP)
    assert prediction.video_id == CLIP.stem
    assert prediction.duration == pytest.approx(4.48, abs=0.05)
    assert abs(steps.n_steps - detector.spec.steps_in(prediction.duration)) <= 1
    # 112 steps, window 32, hop 16: windows start at 0, 16, ..., 80.
    assert len(steps.window_video_prob) == (steps.n_steps - 32 + 15) // 16 + 1
    n_levels = detector.n_levels
    assert steps.level_boundaries.shape == (steps.n_steps, n_levels, 2)
    assert (steps.level_boundaries >= 0).all()
    for probs in (steps.fake_prob, steps.audio_prob, steps.visual_prob):
        assert probs.shape == (steps.n_steps,) and ((probs > 0) & (probs < 1)).all()
    assert 0.0 <= prediction.score <= 1.0
    assert prediction.score == pytest.approx(
        aggregate_video_score(steps.window_video_prob, steps.fake_prob)
    )
    assert set(prediction.modality_scores) == {"audio", "visual"}
    assert prediction.modalities_present["audio"] == 1.0
    assert prediction.modalities_present["face"] > 0.9
    segments = prediction.segments
    assert 0 < len(segments) <= detector.decode_config.top_k
    assert all(0.0 <= s.start < s.end <= prediction.duration for s in segments)
    assert all(s.modality in ("audio", "visual", "both") for s in segments)


def test_test_time_flip_averages_the_outputs_of_the_mirrored_crops(detector: Detector) -> None:
    """With ``flip`` every window also runs with its face and mouth crops mirrored: the
    stitched outputs are the mean of the plain detector's on the crops and on their mirror
    image (the model itself is not mirror-invariant, so the flip changes them)."""
    rng = np.random.default_rng(0)
    plain = _features(0, 50)
    plain.face[:] = rng.integers(0, 256, plain.face.shape, np.uint8)
    plain.mouth[:] = rng.integers(0, 256, plain.mouth.shape, np.uint8)
    mirror = replace(
        plain, face=plain.face[:, :, ::-1].copy(), mouth=plain.mouth[:, :, ::-1].copy()
    )
    assert not detector.flip  # the checkpoint does not ask for it
    one, other = detector.steps_from_features([plain]), detector.steps_from_features([mirror])
    flipping = Detector(detector.model, detector.spec, info=detector.info, flip=True)
    both = flipping.steps_from_features([plain])
    for name in ("fake_prob", "audio_prob", "visual_prob", "window_video_prob"):
        mean = (getattr(one, name) + getattr(other, name)) / 2
        np.testing.assert_allclose(getattr(both, name), mean, atol=1e-6)
    np.testing.assert_allclose(
        both.level_boundaries, (one.level_boundaries + other.level_boundaries) / 2, atol=1e-5
    )
    assert not np.array_equal(one.fake_prob, other.fake_prob)
    # A checkpoint tuned with `avdf tune --flip` switches it on by itself.
    tuned = {**detector.info, "extra": {**detector.info["extra"], "test_time_flip": True}}
    assert Detector(detector.model, detector.spec, info=tuned).flip


@pytest.mark.slow
def test_predict_pools_the_video_score_as_the_calibration_says(detector: Detector) -> None:
    import copy

    from avdf.inference.calibration import Calibration

    _, steps = detector.detect_with_steps(CLIP)
    pooled = copy.copy(detector)  # shares the model; only the video score's pooling differs
    pooled.calibration = Calibration(top_fraction=0.25)
    k = math.ceil(0.25 * steps.n_steps)
    top_quarter = float(np.sort(steps.fake_prob)[-k:].mean())
    assert pooled.predict(steps, "clip").score == pytest.approx(top_quarter, abs=1e-6)
    assert detector.predict(steps, "clip").score == pytest.approx(
        max(float(steps.window_video_prob.mean()), float(steps.fake_prob.max())), abs=1e-6
    )


@pytest.mark.slow
def test_single_window_matches_direct_forward(tmp_path: Path) -> None:
    # A window longer than the clip: stitching must hand back the model's own outputs.
    detector = Detector.from_checkpoint(tiny_checkpoint(tmp_path / "w.ckpt", window_steps=128))
    steps = detector.detect_steps(CLIP)
    features = VideoFeatures.concat(list(detector._feature_chunks(CLIP, None)))
    with torch.inference_mode():
        out = detector.model(**features_to_inputs([features], 128))
    n = features.n_steps
    assert steps.n_steps == n and len(steps.window_video_prob) == 1
    np.testing.assert_allclose(steps.fake_prob, torch.sigmoid(out.fake_logits[0, :n]), atol=1e-5)
    level_logits, level_boundaries = out.level_steps()
    np.testing.assert_allclose(steps.level_prob, torch.sigmoid(level_logits[0, :n]), atol=1e-5)
    np.testing.assert_allclose(
        steps.level_boundaries, level_boundaries[0, :n].clamp(min=0), atol=1e-4
    )


@pytest.mark.slow
def test_clip_without_audio_is_scored(detector: Detector, tmp_path: Path) -> None:
    silent = video_without_audio(CLIP, tmp_path / "silent.mp4")
    prediction, steps = detector.detect_with_steps(silent, video_id="silent")
    assert "no audio stream: audio masked" in steps.notes
    assert not steps.audio_present.any()
    assert prediction.modalities_present["audio"] == 0.0
    # Audio cannot be blamed when there is none.
    assert set(prediction.modality_scores) == {"visual"}
    assert all(s.audio_score == 0.0 and s.modality == "visual" for s in prediction.segments)
    assert prediction.modalities_present["face"] > 0.9
    assert 0.0 <= prediction.score <= 1.0
    assert prediction.duration == pytest.approx(4.48, abs=0.05)


def test_bad_files_raise_one_line_input_errors(detector: Detector, tmp_path: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n")
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(CLIP.read_bytes()[:4000])
    for bad in (tmp_path / "missing.mp4", text, truncated):
        with pytest.raises(InputError) as caught:
            detector.detect(bad)
        assert str(caught.value).startswith(str(bad)) and "\n" not in str(caught.value)


def test_missing_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        Detector.from_checkpoint(tmp_path / "nope.ckpt")


# --- invariants on random inputs (hypothesis) -------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 300),
    seed=st.integers(0, 2**32 - 1),
    duration=st.floats(0.5, 20.0),
    top_k=st.integers(1, 30),
    sigma=st.floats(0.05, 2.0),
)
def test_decode_invariants(n: int, seed: int, duration: float, top_k: int, sigma: float) -> None:
    rng = np.random.default_rng(seed)
    prob, audio, visual = rng.uniform(size=(3, n))
    bounds = rng.exponential(10.0, (n, 2))
    config = DecodeConfig(pre_threshold=0.2, sigma=sigma, top_k=top_k)
    segments = _decode(prob, bounds, duration, audio, visual, replace(config, inside_weight=0.0))
    scores = [s.score for s in segments]
    assert len(segments) <= top_k and scores == sorted(scores, reverse=True)
    assert all(0.0 <= s.start < s.end <= duration for s in segments)
    assert all(0.0 <= s.score <= prob.max() for s in segments)
    assert all(0.0 <= s.audio_score <= 1.0 and 0.0 <= s.visual_score <= 1.0 for s in segments)


@settings(max_examples=40, deadline=None)
@given(
    total=st.integers(1, 200),
    window=st.integers(1, 48),
    chunk=st.integers(1, 64),
    hop_fraction=st.floats(0.1, 1.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_stitching_covers_each_step_once_within_bounds(
    total: int, window: int, chunk: int, hop_fraction: float, seed: int
) -> None:
    hop = max(1, int(window * hop_fraction))
    rng = np.random.default_rng(seed)
    stitcher = OverlapStitcher(window, 1)
    lows, highs = np.full(total, np.inf), np.full(total, -np.inf)
    out = []
    for w in iter_windows(_chunks(total, chunk), window_steps=window, hop_steps=hop):
        values = rng.uniform(size=(w.n_steps, 1))
        span = slice(w.first_step, w.first_step + w.n_steps)
        lows[span] = np.minimum(lows[span], values[:, 0])
        highs[span] = np.maximum(highs[span], values[:, 0])
        out.append(stitcher.add(w.first_step, values))
    out.append(stitcher.finish())
    stitched = np.concatenate(out)[:, 0]
    assert stitched.shape == (total,)  # every step exactly once, in order
    # A weighted average lies between the smallest and largest contribution.
    assert (stitched >= lows - 1e-12).all() and (stitched <= highs + 1e-12).all()


def test_bundled_checkpoint_loads_or_is_a_clear_error() -> None:
    import importlib.resources

    bundled = importlib.resources.files("avdf").joinpath("assets/demo.ckpt")
    if bundled.is_file():
        assert Detector.from_checkpoint().window_steps >= 1
    else:
        with pytest.raises(InputError, match="bundled demo checkpoint is missing"):
            Detector.from_checkpoint()
