"""Decoding real clips and odd files made from them (see media_fixtures)."""

from __future__ import annotations

import logging

import media_fixtures as fx
import numpy as np
import pytest

from avdf.errors import InputError
from avdf.io.decode import iter_audio, iter_video_frames, probe, read_clip
from avdf.timebase import MediaSpec

SPEC = MediaSpec()
# The 1080x1920 HEVC clip takes ~15 s to decode here: it runs in the slow pipeline test.
SMALL_CLIPS = [p for p in fx.talking_clips() if "latentsync" not in p.name]


@pytest.fixture(scope="module")
def source25() -> np.ndarray:
    """The source clip's first 3 s, decoded by plain PyAV (25 fps native)."""
    frames, fps = fx.source_frames(seconds=3.0)
    assert fps == 25
    return frames


@pytest.mark.parametrize("clip", fx.talking_clips(), ids=lambda p: p.stem)
def test_probe_real_clips(clip):
    info = probe(clip)
    assert info.has_video and info.has_audio
    assert 4.0 <= info.duration <= 21.0
    assert min(info.width, info.height) >= 224
    assert info.rotation == 0 and info.video_codec in ("h264", "hevc")


@pytest.mark.parametrize("clip", SMALL_CLIPS, ids=lambda p: p.stem)
def test_frame_count_matches_container_and_chunks_are_bounded(clip):
    info = probe(clip)
    chunks = list(iter_video_frames(clip, SPEC, max_side=320, chunk_frames=40))
    assert all(len(c) <= 40 and c.dtype == np.uint8 and c.shape[-1] == 3 for c in chunks)
    assert all(max(c.shape[1:3]) <= 320 for c in chunks)
    n = sum(len(c) for c in chunks)
    assert abs(n - SPEC.frames_in(info.duration)) <= 1
    audio = np.concatenate(list(iter_audio(clip, SPEC)))
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) / SPEC.sample_rate - n / SPEC.fps) < 0.1
    assert 0.005 < np.abs(audio).mean() < 0.5  # real speech, not silence or garbage


@pytest.mark.parametrize(
    "make",
    [
        lambda d: fx.reencode(d / "30.mp4", fps=30),
        lambda d: fx.reencode(d / "60.mp4", fps=60),
        lambda d: fx.reencode(d / "24.mp4", fps=24),
        lambda d: fx.variable_frame_rate(d / "vfr.mp4"),
    ],
    ids=["30fps", "60fps", "24fps", "vfr"],
)
def test_resampled_by_presentation_time(tmp_path, source25, make):
    path = make(tmp_path)
    frames = np.concatenate(list(iter_video_frames(path, SPEC, chunk_frames=16)))
    assert abs(len(frames) - 75) <= 2
    # Output frame i shows the source frame that was on screen at i / 25 s: for every
    # re-encode that is (VFR frames last up to 67 ms, so up to two source frames earlier) source frame i.
    for i in range(0, min(len(frames), 74), 7):
        err = [
            np.abs(frames[i].astype(int) - source25[j]).mean() for j in range(max(0, i - 2), i + 2)
        ]
        assert min(err) < 6.0, (i, err)


def test_rotation_metadata_is_applied(tmp_path, source25):
    path = fx.rotated(tmp_path / "rot.mp4", rotation=90)
    info = probe(path)
    assert info.rotation == 90
    clip = read_clip(path, SPEC)
    # Stored sideways, displayed upright: equals the upright source.
    assert clip.frames.shape[1:] == source25.shape[1:]
    assert np.abs(clip.frames[10].astype(int) - source25[10]).mean() < 6.0


@pytest.mark.parametrize("rotation", [0, 90])
def test_luma_is_the_upright_picture_thinned(tmp_path, rotation):
    path = (
        fx.rotated(tmp_path / "rot.mp4", rotation=rotation)
        if rotation
        else fx.reencode(tmp_path / "v.mp4", seconds=2.0)
    )
    rgb = np.concatenate(list(iter_video_frames(path, SPEC, max_side=None)))
    luma = np.concatenate(list(iter_video_frames(path, SPEC, max_side=112, luma=True)))
    assert luma.dtype == np.uint8 and len(luma) == len(rgb)
    step = -(-max(rgb.shape[1:3]) // 112)
    grey = rgb[:, ::step, ::step] @ np.array([0.299, 0.587, 0.114])
    assert luma.shape == grey.shape and max(luma.shape[1:]) <= 112
    # BT.601 luma of the same pixels (up to limited-range scaling, and a one-pixel offset of
    # the thinning grid when it is taken before the rotation), and not of a turned picture.
    upright = np.corrcoef(luma.ravel(), grey.ravel())[0, 1]
    turned = np.corrcoef(luma.ravel(), np.rot90(grey, axes=(1, 2)).ravel())[0, 1]
    assert upright > 0.97 and upright > turned + 0.1


def test_4k_is_downscaled_before_numpy(tmp_path):
    path = fx.upscaled_4k(tmp_path / "4k.mp4")
    info = probe(path)
    assert (info.width, info.height) == (3840, 2160)
    frames = np.concatenate(list(iter_video_frames(path, SPEC, max_side=640)))
    assert frames.shape[1:] == (360, 640, 3)


def test_short_clip(tmp_path):
    clip = read_clip(fx.short_clip(tmp_path / "short.mp4"), SPEC)
    assert len(clip.frames) == 12 and abs(clip.duration - 0.48) < 1e-9


def test_video_only_has_no_audio(tmp_path):
    path = fx.video_only(tmp_path / "silent.mp4")
    assert not probe(path).has_audio
    assert list(iter_audio(path, SPEC)) == []
    assert len(read_clip(path, SPEC).frames) == 50


def test_late_audio_is_padded_on_the_video_clock(tmp_path):
    path = fx.late_audio(tmp_path / "late.mp4", offset=0.5)
    info = probe(path)
    assert 0.4 < info.audio_offset <= 0.5  # AAC priming puts the stream start a bit earlier
    audio = np.concatenate(list(iter_audio(path, SPEC)))
    lead = int(info.audio_offset * SPEC.sample_rate)
    assert np.all(audio[: lead - 10] == 0)
    # Speech resumes at 0.5 s: compare with the source audio at the same time.
    source, rate = fx.source_audio(seconds=3.0)
    assert rate == SPEC.sample_rate
    a = audio[8000 + 2000 : 8000 + 10000]
    b = source[8000 + 2000 : 8000 + 10000]
    assert np.corrcoef(a, b)[0, 1] > 0.9


@pytest.mark.parametrize(
    "make, cause",
    [
        (lambda d: d / "missing.mp4", "not found"),
        (lambda d: fx.zero_bytes(d / "zero.mp4"), "empty"),
        (lambda d: fx.text_as_mp4(d / "text.mp4"), "not a readable media file"),
        (lambda d: fx.audio_only(d / "audio.mp4"), "no video stream"),
        (lambda d: fx.truncated(d / "cut.mp4", faststart=False), "not a readable media file"),
    ],
    ids=["missing", "zero-bytes", "text", "audio-only", "truncated-no-index"],
)
def test_bad_files_raise_one_line_input_error(tmp_path, make, cause):
    path = make(tmp_path)
    with pytest.raises(InputError) as info:
        probe(path)
    message = str(info.value)
    assert message.startswith(str(path)) and cause in message and "\n" not in message
    with pytest.raises(InputError):
        read_clip(path, SPEC)


def test_truncated_with_index_decodes_the_part_that_is_there(tmp_path, caplog):
    path = fx.truncated(tmp_path / "cut.mp4", keep=0.5, faststart=True, seconds=4.0)
    assert probe(path).duration == pytest.approx(4.0, abs=0.05)  # the index still says 4 s
    with caplog.at_level(logging.WARNING, logger="avdf.io.decode"):
        frames = np.concatenate(list(iter_video_frames(path, SPEC)))
    assert 10 < len(frames) < 90


@pytest.mark.parametrize("rotation", [0, 90])
def test_reused_chunk_buffer_gives_the_same_frames(tmp_path, rotation):
    """reuse_buffer overwrites one array chunk after chunk; each chunk, read before the next
    is asked for, equals the fresh-array chunks (a 60 fps source also exercises duplicates
    and drops)."""
    path = (
        fx.rotated(tmp_path / "rot.mp4", rotation=rotation)
        if rotation
        else fx.reencode(tmp_path / "60.mp4", fps=60)
    )
    fresh = list(iter_video_frames(path, SPEC, chunk_frames=7))
    reused = []
    previous = None
    for chunk in iter_video_frames(path, SPEC, chunk_frames=7, reuse_buffer=True):
        if previous is not None and len(chunk) == 7:
            assert np.shares_memory(chunk, previous)
        previous = chunk
        reused.append(chunk.copy())
    assert [c.shape for c in reused] == [c.shape for c in fresh]
    np.testing.assert_array_equal(np.concatenate(reused), np.concatenate(fresh))
    assert not any(np.shares_memory(a, b) for a, b in zip(fresh, fresh[1:], strict=False))
