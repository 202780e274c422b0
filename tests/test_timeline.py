"""Timelines seen in the wild: audio that outlasts the picture, MPEG-TS clocks that restart.

The files are made here with PyAV from the repository's clips, then run through the real
decoder, the real preprocessing pipeline, the real ``Detector`` and ``avdf detect``.
"""

from __future__ import annotations

import json
from pathlib import Path

import media_fixtures as fx
import numpy as np
import pytest
from tiny_models import tiny_checkpoint

from avdf.cli import main
from avdf.inference.detector import Detector
from avdf.io.decode import iter_audio, iter_video_frames
from avdf.preprocess.face import FaceTracker
from avdf.preprocess.pipeline import AUDIO_TAIL_SECONDS, ExtractionStats, extract_features
from avdf.timebase import MediaSpec

SPEC = MediaSpec()
RATE = SPEC.sample_rate
SEGMENT_FRAMES = 63  # 2.52 s per MPEG-TS segment


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Test files (each built once): see the names."""
    out = tmp_path_factory.mktemp("timeline")
    frames, _ = fx.source_frames(seconds=5.04)  # (126, 224, 224, 3)
    audio, rate = fx.source_audio()  # 6.96 s of speech at 16 kHz
    assert rate == RATE
    long_audio = np.tile(audio, 3)[: 20 * RATE]
    split = int(SEGMENT_FRAMES / SPEC.fps * RATE)
    first, second = frames[:SEGMENT_FRAMES], frames[SEGMENT_FRAMES : 2 * SEGMENT_FRAMES]
    files = {
        # 2 s of picture under 20 s of speech.
        "long_audio": fx.write_video(out / "long_audio.mp4", frames[:50], audio=(long_audio, rate)),
        # Audio 0.5 s longer than the picture: muxing slack, not analysed.
        "slack_audio": fx.write_video(
            out / "slack_audio.mp4", frames[:50], audio=(audio[: int(2.5 * rate)], rate)
        ),
        "segment1": fx.write_video(out / "seg1.ts", first, audio=(audio[:split], rate)),
        # The same second segment with a clock that restarts at 0, and one that jumps ahead.
        "segment2": fx.write_video(out / "seg2.ts", second, audio=(audio[split : 2 * split], rate)),
        "segment2_later": fx.write_video(
            out / "seg2-later.ts",
            second,
            times=[100.0 + i / SPEC.fps for i in range(SEGMENT_FRAMES)],
            audio=(audio[split : 2 * split], rate),
            audio_start=100.0,
        ),
    }
    for name, parts in (("restart", "segment2"), ("jump", "segment2_later")):
        joined = out / f"{name}.ts"  # two segments concatenated byte for byte, as `cat` does
        joined.write_bytes(files["segment1"].read_bytes() + files[parts].read_bytes())
        files[name] = joined
    return files


@pytest.fixture(scope="module")
def tracker() -> FaceTracker:
    with FaceTracker(SPEC) as t:
        yield t


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.ckpt", SPEC)


@pytest.mark.parametrize("name", ["restart", "jump"])
def test_ts_discontinuity_decodes_the_whole_picture(media: dict[str, Path], name: str) -> None:
    notes: list[str] = []
    frames = np.concatenate(list(iter_video_frames(media[name], SPEC, notes=notes)))
    assert abs(len(frames) - 2 * SEGMENT_FRAMES) <= 1  # 5.04 s, not 2.6 s (or 100 s of stills)
    assert len(notes) == 1 and "joined" in notes[0]
    # The second segment follows the first: output frame i shows source frame i.
    source, _ = fx.source_frames(seconds=5.04)
    for i in (10, SEGMENT_FRAMES - 2, SEGMENT_FRAMES + 2, 2 * SEGMENT_FRAMES - 5):
        assert np.abs(frames[i].astype(int) - source[i]).mean() < 6.0, i
    audio = np.concatenate(list(iter_audio(media[name], SPEC)))
    assert abs(len(audio) / RATE - len(frames) / SPEC.fps) < 0.2
    # One segment alone has no discontinuity.
    single: list[str] = []
    assert sum(len(c) for c in iter_video_frames(media["segment1"], SPEC, notes=single)) == 63
    assert single == []


def test_audio_outlasting_the_picture_is_analysed_to_its_end(
    media: dict[str, Path], tracker: FaceTracker
) -> None:
    stats = ExtractionStats()
    feats = extract_features(media["long_audio"], SPEC, tracker=tracker, stats=stats)
    picture = 50  # steps: 2 s at 25 fps
    assert abs(feats.n_steps - SPEC.steps_in(20.0)) <= 1  # AAC pads the end a little
    assert feats.face_mask[:picture].mean() > 0.9 and not feats.face_mask[picture:].any()
    assert not feats.face[picture:].any() and np.isnan(feats.landmarks[picture:]).all()
    assert feats.audio_mask.all()
    # Real speech goes on after the picture: the mel there is not the masked zero.
    assert (np.abs(feats.mel[picture:].astype(np.float32)).sum(axis=(1, 2)) > 0).mean() > 0.9
    assert any("picture ends at 2.00 s" in note for note in stats.notes)
    # Half a second more audio is slack: the video keeps its 50 steps and no note.
    slack = ExtractionStats()
    feats = extract_features(media["slack_audio"], SPEC, tracker=tracker, stats=slack)
    assert AUDIO_TAIL_SECONDS > 0.5 and feats.n_steps == picture
    assert not any("picture ends" in note for note in slack.notes)


def test_detector_reports_the_whole_timeline(media: dict[str, Path], checkpoint: Path) -> None:
    detector = Detector.from_checkpoint(checkpoint)
    prediction, steps = detector.detect_with_steps(media["long_audio"])
    assert prediction.duration == pytest.approx(20.0, abs=0.05)
    assert abs(steps.n_steps - 500) <= 1 and not steps.face_present[50:].any()
    assert any("picture ends" in note for note in steps.notes)
    prediction, steps = detector.detect_with_steps(media["restart"])
    assert prediction.duration == pytest.approx(5.04, abs=0.05)
    assert any("joined" in note for note in steps.notes)


def test_avdf_detect_reports_the_whole_timeline(
    media: dict[str, Path], checkpoint: Path, tmp_path: Path
) -> None:
    out = tmp_path / "reports"
    videos = [str(media["long_audio"]), str(media["restart"])]
    assert main(["detect", *videos, "--checkpoint", str(checkpoint), "-o", str(out)]) == 0
    long_audio = json.loads((out / "long_audio.json").read_text())
    restart = json.loads((out / "restart.json").read_text())
    assert long_audio["duration"] == pytest.approx(20.0, abs=0.05)
    assert any("face absent after the picture" in n for n in long_audio["notes"])
    assert restart["duration"] == pytest.approx(5.04, abs=0.05)
    assert any("segments joined" in n for n in restart["notes"])
