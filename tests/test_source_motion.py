"""scripts/source_motion.py: repeated frames of a real clip are counted; a bad file is one line."""

from __future__ import annotations

import sys
from pathlib import Path

import media_fixtures as fx
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import source_motion  # noqa: E402


def test_counts_the_repeated_frames_of_a_real_clip(tmp_path: Path) -> None:
    frames, _ = fx.source_frames(fx.talking("talking-face_pc-avs_00067.mp4"), seconds=1.2)
    frames = frames[:20]
    held = frames.copy()
    held[5:15] = frames[5]  # 9 of 19 consecutive pairs repeat a frame
    moving = fx.write_video(tmp_path / "clips" / "moving.mp4", frames)
    frozen = fx.write_video(tmp_path / "clips" / "frozen.mp4", held)

    _, still_diffs = source_motion.frame_differences(frozen)
    _, moving_diffs = source_motion.frame_differences(moving)
    assert len(still_diffs) == 19
    assert np.mean(still_diffs < 0.5) == pytest.approx(9 / 19, abs=1 / 19)
    assert np.mean(moving_diffs < 0.5) < 0.2


def test_bad_file_is_one_line_and_the_rest_still_listed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frames, _ = fx.source_frames(fx.talking("talking-face_pc-avs_00067.mp4"), seconds=0.5)
    fx.write_video(tmp_path / "good.mp4", frames)
    fx.text_as_mp4(tmp_path / "bad.mp4")
    assert source_motion.main([str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert "| good.mp4 |" in out and "bad.mp4" not in out
    assert err.count("\n") == 1 and "bad.mp4" in err and "Traceback" not in err
