"""Verdict, merged segments and the JSON / CSV / HTML / summary writers: content, round trip,
self-contained HTML, atomic no-overwrite."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest

from avdf.errors import OutputExistsError
from avdf.inference.calibration import Calibration
from avdf.reports.verdict import (
    NO_SEGMENT,
    StepCurves,
    Verdict,
    build_verdict,
    fake_regions,
    manipulated_segments,
    still_times,
)
from avdf.reports.writers import (
    SUMMARY_COLUMNS,
    CsvWriter,
    HtmlWriter,
    JsonWriter,
    Still,
    png_bytes,
    render_summary,
    summary_row,
    write_text_atomic,
)
from avdf.types import Prediction, ScoredSegment, Segment

STEP = 0.04  # seconds per step (25 steps per second)
N = 175  # 7.0 s


def _curves() -> StepCurves:
    """Two fake stretches: 1.2-2.0 s blamed on audio (with a 0.12 s dip inside, which must not
    split it), 4.0-4.4 s on both modalities; a single-step blip at 6.0 s (too short)."""
    fake, audio, visual = np.full(N, 0.1), np.full(N, 0.1), np.full(N, 0.1)
    fake[30:50], audio[30:50] = 0.9, 0.8
    fake[38:41] = 0.3  # the dip: 3 steps < 0.2 s
    fake[100:110], audio[100:110], visual[100:110] = 0.7, 0.9, 0.6
    fake[150] = 0.95
    return StepCurves(STEP, fake, audio, visual)


PRED = Prediction(
    video_id="test/000001",
    duration=N * STEP,
    score=0.83,
    modality_scores={"audio": 0.91, "visual": 0.6},
    segments=(
        ScoredSegment(Segment(1.2, 2.04), 0.88, 0.95, 0.10),
        ScoredSegment(Segment(1.0, 2.2), 0.5, 0.6, 0.10),
        ScoredSegment(Segment(4.0, 4.4), 0.41, 0.30, 0.70),
    ),
    modalities_present={"audio": 1.0, "face": 0.97, "lips": 0.97},
)
RULE = Calibration()  # untuned: threshold 0.5, band 0.1, segment and modality thresholds 0.5


def test_fake_regions_merge_short_gaps_and_drop_tiny_runs() -> None:
    fake = np.zeros(40)
    fake[2:6] = fake[8:12] = 1.0  # gap of 2 steps: merged
    fake[20:24] = 1.0  # gap of 8 steps: separate
    fake[30] = 1.0  # one step: dropped
    assert fake_regions(fake, 0.5, max_gap_steps=5, min_steps=2) == [(2, 12), (20, 24)]
    assert fake_regions(fake, 0.5, max_gap_steps=0, min_steps=1) == [
        (2, 6),
        (8, 12),
        (20, 24),
        (30, 31),
    ]
    assert fake_regions(np.zeros(5), 0.5, 5, 2) == []


def test_segments_are_merged_non_overlapping_with_their_modality() -> None:
    segments = manipulated_segments(_curves(), 0.5, 0.5)
    assert [(s.start, s.end) for s in segments] == [
        pytest.approx((1.2, 2.0)),
        pytest.approx((4.0, 4.4)),
    ]
    assert [s.modality for s in segments] == ["audio", "both"]
    assert segments[0].peak == pytest.approx(0.9)
    assert segments[0].score == pytest.approx((17 * 0.9 + 3 * 0.3) / 20)
    assert all(a.end <= b.start for a, b in zip(segments, segments[1:], strict=False))
    # A modality's evidence below its threshold is not blamed: "unknown".
    assert [s.modality for s in manipulated_segments(_curves(), 0.5, 0.95)] == ["unknown"] * 2


def test_an_absent_modality_is_never_blamed() -> None:
    c = _curves()
    no_audio = StepCurves(STEP, c.fake, c.audio, c.visual, audio_present=np.zeros(N, bool))
    segments = manipulated_segments(no_audio, 0.5, 0.5)
    assert segments[0].audio_score is None and segments[0].modality == "unknown"
    assert segments[1].modality == "visual"


def test_verdict_labels_follow_the_calibration() -> None:
    tuned = Calibration(threshold=0.3, uncertain_band=0.05, tuned=True)
    for score, untuned_label, tuned_label in ((0.83, "fake", "fake"), (0.55, "uncertain", "fake"),
                                              (0.32, "real", "uncertain"), (0.1, "real", "real")):  # fmt: skip
        p = Prediction("v", 7.0, score)
        assert build_verdict(p, None, RULE).label == untuned_label
        assert build_verdict(p, None, tuned).label == tuned_label
    verdict = build_verdict(PRED, _curves(), RULE, notes=["no audio stream"])
    assert verdict.label == "fake" and not verdict.tuned
    assert "Likely FAKE" in verdict.headline() and "not tuned" in verdict.headline()
    assert verdict.where() == "1.20-2.00 s (audio); 4.00-4.40 s (both)"
    assert "not tuned" not in build_verdict(PRED, None, tuned).headline()


def test_strongest_stretch_only_when_no_segment_and_not_real() -> None:
    fake = np.full(N, 0.2)
    fake[60:75] = 0.45  # below the segment threshold
    curves = StepCurves(STEP, fake, np.full(N, 0.1), np.full(N, 0.1))
    fake_video = build_verdict(Prediction("v", 7.0, 0.7), curves, RULE)
    assert fake_video.segments == () and fake_video.strongest is not None
    assert (fake_video.strongest.start, fake_video.strongest.end) == pytest.approx((2.4, 3.0))
    assert fake_video.where().startswith(NO_SEGMENT) and "2.40-3.00 s" in fake_video.where()
    real_video = build_verdict(Prediction("v", 7.0, 0.1), curves, RULE)
    assert real_video.strongest is None and real_video.where() == NO_SEGMENT
    labels = [label for label, _ in still_times(fake_video, curves)]
    assert labels == ["strongest", "real stretch"]


def test_json_round_trip_keeps_the_ranked_proposals(tmp_path: Path) -> None:
    verdict = build_verdict(PRED, _curves(), RULE)
    writer = JsonWriter()
    path = writer.write(verdict, writer.path_for(tmp_path, PRED.video_id))
    assert path.name == "test_000001.json"
    data = json.loads(path.read_text())
    assert data["verdict"] == "fake" and data["calibration"]["tuned"] is False
    assert len(data["segments"]) == 2 and len(data["proposals"]) == 3
    back = Verdict.from_dict(data)
    assert back == verdict
    assert back.prediction() == PRED  # what metrics and challenge formats read


def test_csv_rows_and_summary() -> None:
    verdict = build_verdict(PRED, _curves(), RULE)
    empty = build_verdict(Prediction("quiet", 3.0, 0.05), None, RULE)
    rows = list(csv.DictReader(io.StringIO(CsvWriter().render_many([verdict, empty]))))
    assert len(rows) == 3  # two merged segments + one row for the video without segments
    assert [r["modality"] for r in rows] == ["audio", "both", ""]
    assert rows[0]["verdict"] == "fake" and float(rows[0]["start"]) == pytest.approx(1.2)
    assert rows[2]["verdict"] == "real" and rows[2]["start"] == ""
    text = render_summary(
        [
            summary_row("a/b.mp4", verdict, "out/b.json"),
            summary_row("bad.mp4", None, error="bad.mp4: not a video"),
        ]
    )
    summary = list(csv.DictReader(io.StringIO(text)))
    assert tuple(summary[0]) == SUMMARY_COLUMNS
    assert summary[0]["status"] == "done" and summary[0]["segments"] == "2"
    assert summary[1]["status"] == "failed" and summary[1]["error"] == "bad.mp4: not a video"


def test_png_encoder_decodes_to_the_same_pixels() -> None:
    image = np.random.default_rng(0).integers(0, 256, (17, 23, 3), dtype=np.uint8)
    decoded = cv2.imdecode(np.frombuffer(png_bytes(image), np.uint8), cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(decoded[..., ::-1], image)  # OpenCV decodes to BGR


def _svg(page: str) -> ET.Element:
    return ET.fromstring(page[page.index("<svg") : page.index("</svg>") + len("</svg>")])


def test_html_is_self_contained_readable_on_a_phone_with_curves_and_thumbnails() -> None:
    curves = _curves()
    verdict = build_verdict(PRED, curves, RULE)
    face = np.full((128, 128, 3), 200, np.uint8)
    stills = [
        Still(1.6, "segment 1", face, face[:96, :96]),
        Still(4.2, "segment 2", None, None),
        Still(6.5, "real stretch", face, face[:96, :96]),
    ]
    page = HtmlWriter().render(verdict, curves, stills)
    assert "<script" not in page and "http" not in page.replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    )
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert "likely FAKE" in page and "1.20-2.00 s" in page and "manipulated: <b>both</b>" in page
    assert page.count('src="data:image/png;base64,') == 4 and "no face" in page
    assert "for comparison" in page and page.count('<tr class="proposal">') == 3
    root = _svg(page)
    ns = "{http://www.w3.org/2000/svg}"
    lines = {p.get("class"): p.get("points").split() for p in root.findall(f"{ns}polyline")}
    assert set(lines) == {"fake", "audio", "visual"} and len(lines["fake"]) == N
    assert len([r for r in root.findall(f"{ns}rect") if r.get("class") == "segment"]) == 2
    assert len([p for p in root.findall(f"{ns}path") if p.get("class") == "still"]) == 3
    assert root.get("width") is None  # scales to the screen through CSS and the viewBox


def test_html_escapes_and_says_when_nothing_was_found() -> None:
    verdict = build_verdict(Prediction("real<clip>&", 3.0, 0.05), None, RULE)
    page = HtmlWriter().render(verdict)
    assert "real&lt;clip&gt;&amp;" in page and "real<clip>" not in page
    assert NO_SEGMENT in page and "likely REAL" in page and "<svg" in page


def test_never_overwrites_without_force(tmp_path: Path) -> None:
    first = build_verdict(PRED, _curves(), RULE)
    second = build_verdict(Prediction("quiet", 3.0, 0.05), None, RULE)
    path = tmp_path / "out" / "a.json"
    JsonWriter().write(first, path)
    before = path.read_text()
    with pytest.raises(OutputExistsError, match="already exists"):
        JsonWriter().write(second, path)
    assert path.read_text() == before
    JsonWriter().write(second, path, force=True)
    assert Verdict.from_dict(json.loads(path.read_text())) == second
    assert [p.name for p in path.parent.iterdir()] == ["a.json"]  # no temp files left
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's private 0600


def test_failed_write_leaves_no_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "r.txt"
    with pytest.raises(TypeError):
        write_text_atomic(target, 123)  # type: ignore[arg-type]  # f.write(int) fails
    assert list(tmp_path.iterdir()) == []


def test_html_timeline_of_a_long_video_is_binned_keeping_peaks() -> None:
    fake = np.full(90_000, 0.1)  # one hour at 25 steps per second
    fake[45_000] = 0.97  # a single-step burst
    curves = StepCurves(STEP, fake, np.zeros_like(fake), np.zeros_like(fake))
    verdict = build_verdict(Prediction("long", 3600.0, 0.97), curves, RULE)
    page = HtmlWriter(max_points=1000).render(verdict, curves)
    line = next(p for p in _svg(page).iter() if p.get("class") == "fake")
    points = [tuple(map(float, p.split(","))) for p in line.get("points").split()]
    assert len(points) == 1000
    assert len({y for _, y in points}) == 2  # 0.1 everywhere except the bin with the burst
    xs = [x for x, _ in points]
    assert xs == sorted(xs)
    assert not re.search(r"\bnan\b", page)
