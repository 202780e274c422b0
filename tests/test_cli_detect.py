"""``avdf detect`` end to end: real clips, a small untrained checkpoint, bad files in the
batch, no overwriting, stdout JSON, fast start-up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import av
import media_fixtures as fx
import numpy as np
import pytest
import torch

from avdf.cli import main
from avdf.models import create_model, save_checkpoint
from avdf.reports.challenge import read_detection, read_localization
from avdf.timebase import MediaSpec
from avdf.types import Prediction

CLIP = fx.talking("talking-face_pc-avs_517600055.mp4")  # 4.48 s, 224x224, with audio


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    spec = MediaSpec()
    model = create_model(
        "mmms_ba", spec=spec, block_dim=16, block_width=4, gru_hidden=16, context_dim=16
    )
    path = tmp_path_factory.mktemp("ckpt") / "tiny.ckpt"
    return save_checkpoint(path, model, spec, extra={"window_steps": 32})


def _silent_copy(src: Path, dst: Path) -> Path:
    """Remux only the video stream (a clip without audio)."""
    with av.open(str(src)) as source, av.open(str(dst), "w") as out:
        stream_out = out.add_stream_from_template(source.streams.video[0])
        for packet in source.demux(source.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream_out
                out.mux(packet)
    return dst


@pytest.mark.slow
def test_batch_with_bad_files(checkpoint: Path, tmp_path: Path, capfd) -> None:
    silent = _silent_copy(CLIP, tmp_path / "silent.mp4")
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("hello")
    missing = tmp_path / "missing.mp4"
    out = tmp_path / "reports"
    argv = ["detect", str(CLIP), str(not_video), str(silent), str(missing), "-o", str(out)]
    loc, det = tmp_path / "loc.json", tmp_path / "det.txt"
    challenge = ["--challenge-json", str(loc), "--challenge-txt", str(det)]
    status = main([*argv, "--checkpoint", str(checkpoint), *challenge])
    err = capfd.readouterr().err
    assert status == 1
    # One line per bad file, naming it; no traceback; the good files were written.
    assert sum(line.startswith(str(not_video)) for line in err.splitlines()) == 1
    assert sum(line.startswith(str(missing)) for line in err.splitlines()) == 1
    assert "Traceback" not in err
    assert "W0000" not in err and "XNNPACK" not in err  # native tracker logs silenced
    assert "note: no audio stream" in err
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        f"{s}.{e}" for s in (CLIP.stem, "silent") for e in ("csv", "html", "json")
    )
    good = Prediction.from_dict(json.loads((out / f"{CLIP.stem}.json").read_text()))
    assert good.video_id == CLIP.stem and good.modalities_present["audio"] == 1.0
    assert all(0 <= s.start < s.end <= good.duration for s in good.segments)
    quiet = Prediction.from_dict(json.loads((out / "silent.json").read_text()))
    assert quiet.modalities_present["audio"] == 0.0
    html = (out / "silent.html").read_text()
    assert "<svg" in html and "<polyline" in html
    # Challenge formats hold the good videos only, keyed by the paths as given.
    scores = read_detection(det)
    assert scores == pytest.approx({str(CLIP): good.score, str(silent): quiet.score})
    proposals = read_localization(loc)
    assert set(proposals) == set(scores)
    expected = [[s.score, s.start, s.end] for s in good.segments]
    np.testing.assert_allclose(proposals[str(CLIP)], np.reshape(expected, (-1, 3)))

    # A second run without --force leaves every earlier output untouched.
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    status = main(["detect", str(CLIP), "-o", str(out), "--checkpoint", str(checkpoint)])
    err = capfd.readouterr().err
    assert status == 1 and "already exists" in err and "--force" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


@pytest.mark.slow
def test_stdout_json_and_options(checkpoint: Path, capsys) -> None:
    argv = ["detect", str(CLIP), "--checkpoint", str(checkpoint), "--top-k", "3"]
    assert main([*argv, "--threshold", "0.0"]) == 0
    captured = capsys.readouterr()
    prediction = Prediction.from_dict(json.loads(captured.out))
    assert prediction.video_id == CLIP.stem and len(prediction.segments) == 3
    assert f"{CLIP.stem}: fake score" in captured.err  # human summary on stderr


def test_bad_options_and_checkpoint(checkpoint: Path, tmp_path: Path, capsys) -> None:
    assert main(["detect", str(CLIP), "--checkpoint", str(tmp_path / "none.ckpt")]) == 1
    assert "none.ckpt" in capsys.readouterr().err
    assert main(["detect", str(CLIP), "--checkpoint", str(checkpoint), "--top-k", "0"]) == 2
    existing = tmp_path / "loc.json"
    existing.write_text("{}")
    argv = ["detect", str(CLIP), "--checkpoint", str(checkpoint)]
    assert main([*argv, "--challenge-json", str(existing)]) == 1
    assert "already exists" in capsys.readouterr().err and existing.read_text() == "{}"


def test_default_video_is_the_bundled_sample_or_a_clear_error(checkpoint: Path, capsys) -> None:
    import importlib.resources

    sample = importlib.resources.files("avdf").joinpath("assets/sample.mp4")
    status = main(["detect", "--checkpoint", str(checkpoint), "--top-k", "5"])
    captured = capsys.readouterr()
    if sample.is_file():
        assert status == 0 and json.loads(captured.out)["video_id"] == "sample"
    else:
        assert status == 1 and "sample clip is missing" in captured.err


def test_start_up_imports_nothing_heavy() -> None:
    code = (
        "import sys; from avdf.cli import build_parser; build_parser(['detect']);"
        "print(sorted(m for m in ('torch', 'mediapipe', 'cv2', 'av') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_an_unreadable_file_prints_one_line_and_nothing_at_exit(
    checkpoint: Path, tmp_path: Path
) -> None:
    # A separate process: MediaPipe graphs that were built but never fed a frame print their
    # model-loading lines when closed or collected, which could happen after main() returned.
    bad = tmp_path / "notes.mp4"
    bad.write_text("hello")
    argv = [sys.executable, "-m", "avdf", "detect", str(bad), "--checkpoint", str(checkpoint)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert done.returncode == 1 and done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{bad}: not a readable media file"), lines
