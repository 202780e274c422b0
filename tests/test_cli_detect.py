"""``avdf detect`` end to end: real clips, a small untrained checkpoint, bad files in the
batch, no overwriting, stdout JSON, fast start-up."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import media_fixtures as fx
import numpy as np
import pytest
import torch

from avdf.cli import main
from avdf.inference.detector import Detector
from avdf.models import create_model, save_checkpoint
from avdf.reports.challenge import read_detection, read_localization
from avdf.reports.verdict import Verdict
from avdf.timebase import MediaSpec

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


def _report(path: Path) -> Verdict:
    return Verdict.from_dict(json.loads(path.read_text()))


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
    captured = capfd.readouterr()
    err = captured.err
    assert status == 1
    # One line per bad file, naming it; no traceback; the good files were written.
    assert sum(line.startswith(str(not_video)) for line in err.splitlines()) == 1
    assert sum(line.startswith(str(missing)) for line in err.splitlines()) == 1
    assert "Traceback" not in err
    assert "W0000" not in err and "XNNPACK" not in err  # native tracker logs silenced
    assert "note: no audio stream" in captured.out  # the human summary: stdout with -o
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        [f"{s}.{e}" for s in (CLIP.stem, "silent") for e in ("csv", "html", "json")]
        + ["summary.csv"]
    )
    good = _report(out / f"{CLIP.stem}.json").prediction()
    assert good.video_id == CLIP.stem and good.modalities_present["audio"] == 1.0
    assert all(0 <= s.start < s.end <= good.duration for s in good.segments)
    quiet = _report(out / "silent.json").prediction()
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

    # A second run without --force skips the video and leaves every report untouched.
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.name != "summary.csv"}
    status = main(["detect", str(CLIP), "-o", str(out), "--checkpoint", str(checkpoint)])
    err = capfd.readouterr().err
    assert status == 0 and "1 skipped" in err and "--force" in err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.name != "summary.csv"} == before


@pytest.mark.slow
def test_stdout_json_and_options(checkpoint: Path, capsys) -> None:
    argv = ["detect", str(CLIP), "--checkpoint", str(checkpoint), "--top-k", "3"]
    assert main([*argv, "--threshold", "0.0"]) == 0
    captured = capsys.readouterr()
    prediction = Verdict.from_dict(json.loads(captured.out)).prediction()
    assert prediction.video_id == CLIP.stem and len(prediction.segments) == 3
    assert f"{CLIP.stem}: " in captured.err and "probability fake" in captured.err  # summary


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


# --- folders, resume, shards: the bundled sample and the bundled checkpoint -----------------

SAMPLE = Path(__file__).resolve().parents[1] / "src" / "avdf" / "assets" / "sample.mp4"
SAMPLE_FAKE = (1.04, 2.24)  # the sample's one fake segment, seconds (README)


def _collection(root: Path, names: list[str]) -> Path:
    """A folder tree of copies of the sample clip (and files that are not videos)."""
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(SAMPLE.read_bytes())
    (root / "readme.txt").write_text("not a video: ignored")
    return root


def _summary(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as f:
        return {row["video"]: row for row in csv.DictReader(f)}


def _leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.name.startswith(".") or ".tmp" in p.name)


@pytest.mark.slow
def test_folder_batch_verdict_thumbnails_bad_file_and_rerun(tmp_path: Path, capfd) -> None:
    videos = _collection(tmp_path / "videos", ["a.mp4", "deeper/b/c.MOV"])
    (videos / "deeper" / "broken.mkv").write_bytes(SAMPLE.read_bytes()[:2000])
    out = tmp_path / "out"
    # A low segment threshold, so the reports hold segments and their thumbnails.
    assert main(["detect", str(videos), "-o", str(out), "--segment-threshold", "0.3"]) == 1
    captured = capfd.readouterr()
    bad = [line for line in captured.err.splitlines() if "broken.mkv" in line]
    assert len(bad) == 1 and bad[0].startswith(str(videos / "deeper" / "broken.mkv"))
    assert "Traceback" not in captured.err
    # The verdict in words on stdout (reports go to files), one block per good video.
    assert captured.out.count("probability fake") == 2 and "(tuned calibration)" in captured.out
    rows = _summary(out / "summary.csv")
    assert set(rows) == {"a", "deeper/b/c", "deeper/broken"}
    assert rows["a"]["status"] == rows["deeper/b/c"]["status"] == "done"
    # The verdict follows the bundled checkpoint's tuned calibration.
    calibration = Detector.from_checkpoint().calibration
    assert rows["a"]["verdict"] == calibration.verdict(float(rows["a"]["probability"]))
    assert rows["a"]["tuned"] == str(calibration.tuned).lower()
    assert (
        rows["deeper/broken"]["status"] == "failed"
        and "broken.mkv" in rows["deeper/broken"]["error"]
    )
    report = _report(out / "deeper_b_c.json")
    assert report.label == rows["a"]["verdict"]
    # A merged segment lies on the sample's fake stretch, and so does the top proposal.
    start, end = SAMPLE_FAKE
    assert any(r.start < end and r.end > start for r in report.segments)
    assert report.proposals[0].start < end and report.proposals[0].end > start
    assert len(report.proposals) > 5 and report.prediction().segments == report.proposals
    page = (out / "a.html").read_text()
    assert report.label.upper() in page and 'name="viewport"' in page
    # Face and mouth at the fake stretch and at a real one for comparison.
    assert page.count("data:image/png;base64,") >= 4 and "for comparison" in page
    assert _leftovers(out) == []

    # Rerun: finished videos are skipped, their reports untouched; the bad one fails again.
    before = {
        p.name: p.read_bytes() for p in out.iterdir() if p.suffix != ".csv" or p.stem != "summary"
    }
    assert main(["detect", str(videos), "-o", str(out)]) == 1
    err = capfd.readouterr().err
    assert "0 done, 2 skipped" in err and "1 failed" in err
    after = {
        p.name: p.read_bytes() for p in out.iterdir() if p.suffix != ".csv" or p.stem != "summary"
    }
    assert after == before
    assert _summary(out / "summary.csv") == rows


@pytest.mark.slow
def test_a_killed_batch_resumes_and_leaves_nothing_half_written(tmp_path: Path) -> None:
    videos = _collection(tmp_path / "videos", [f"v{i}.mp4" for i in range(4)])
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "avdf", "detect", str(videos), "-o", str(out), "--format", "all"]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while not (out / "summary.csv").exists():  # killed once the first video is finished
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    # Whatever the kill interrupted, every file under its final name is complete.
    finished = {p.stem for p in out.glob("*.json")}
    assert "v0" in finished and finished != {f"v{i}" for i in range(4)}
    for report in out.glob("*.json"):
        _report(report)  # parses
    listed = _summary(out / "summary.csv")  # written after every video: v0 is in it
    assert "v0" in listed and set(listed) <= finished
    # A temporary file the kill could have left mid-write, and a finished report to keep.
    (out / f".v3.html.{process.pid}.0123abcd.tmp").write_text("<html><body>half")
    kept = (out / "v0.json").read_bytes()

    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert f"{4 - len(finished)} done, {len(finished)} skipped" in done.stderr
    assert (out / "v0.json").read_bytes() == kept
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"v{i}.{e}" for i in range(4) for e in ("json", "csv", "html")] + ["summary.csv"]
    )
    rows = _summary(out / "summary.csv")
    assert sorted(rows) == [f"v{i}" for i in range(4)]
    assert {r["status"] for r in rows.values()} == {"done"}


@pytest.mark.slow
def test_shards_split_a_folder_without_coordination(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd
) -> None:
    videos = _collection(tmp_path / "videos", ["a.mp4", "b.mp4", "c.mp4"])
    out = tmp_path / "out"
    assert main(["detect", str(videos), "-o", str(out), "--format", "json", "--shard", "1/2"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["b.json", "summary-1-of-2.csv"]
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "0")  # an array job's task: shard 0 of 2
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "2")
    assert main(["detect", str(videos), "-o", str(out), "--format", "json"]) == 0
    assert set(_summary(out / "summary-0-of-2.csv")) == {"a", "c"}
    monkeypatch.delenv("SLURM_ARRAY_TASK_ID")
    monkeypatch.delenv("SLURM_ARRAY_TASK_COUNT")
    capfd.readouterr()
    # A plain run afterwards skips everything and writes the combined summary.
    assert main(["detect", str(videos), "-o", str(out), "--format", "json"]) == 0
    assert "0 done, 3 skipped" in capfd.readouterr().err
    assert {r["status"] for r in _summary(out / "summary.csv").values()} == {"done"}
    assert set(_summary(out / "summary.csv")) == {"a", "b", "c"}
    assert main(["detect", str(videos), "-o", str(out), "--shard", "2/2"]) == 2


@pytest.mark.slow
def test_segment_threshold_gives_merged_segments_on_the_sample(capsys) -> None:
    assert main(["detect", str(SAMPLE), "--segment-threshold", "0.3"]) == 0
    captured = capsys.readouterr()
    report = Verdict.from_dict(json.loads(captured.out))
    assert report.segment_threshold == 0.3 and 1 <= len(report.segments) <= 3
    assert all(a.end <= b.start for a, b in zip(report.segments, report.segments[1:], strict=False))
    assert all(s.modality in ("audio", "visual", "both", "unknown") for s in report.segments)
    start, end = SAMPLE_FAKE
    assert any(s.start < end and s.end > start for s in report.segments)
    assert "manipulated" in captured.err and report.strongest is None
    assert main(["detect", str(SAMPLE), "--segment-threshold", "2"]) == 2
