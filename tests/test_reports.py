"""JSON / CSV / HTML report writers: round trip, content, atomic no-overwrite."""

from __future__ import annotations

import csv
import io
import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from avdf.errors import OutputExistsError
from avdf.reports.writers import CsvWriter, HtmlWriter, JsonWriter, write_text_atomic
from avdf.types import Prediction, ScoredSegment, Segment

PRED = Prediction(
    video_id="test/000001",
    duration=6.96,
    score=0.83,
    modality_scores={"audio": 0.91, "visual": 0.12},
    segments=(
        ScoredSegment(Segment(1.2, 2.04), 0.88, 0.95, 0.10),
        ScoredSegment(Segment(4.0, 4.4), 0.41, 0.30, 0.70),
    ),
    modalities_present={"audio": 1.0, "face": 0.97, "lips": 0.97},
)
EMPTY = Prediction("real<clip>&", 3.0, 0.05, {"audio": 0.1, "visual": 0.2}, ())


def test_json_round_trip(tmp_path: Path) -> None:
    writer = JsonWriter()
    path = writer.write(PRED, writer.path_for(tmp_path, PRED.video_id))
    assert path.name == "test_000001.json"
    assert Prediction.from_dict(json.loads(path.read_text())) == PRED


def test_csv_rows(tmp_path: Path) -> None:
    text = CsvWriter().render_many([PRED, EMPTY])
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 3  # two segments + one row for the video without segments
    assert rows[0]["video"] == "test/000001" and rows[0]["modality"] == "audio"
    assert float(rows[0]["start"]) == pytest.approx(1.2) and float(rows[1]["end"]) == 4.4
    assert rows[1]["modality"] == "visual"
    assert rows[2]["video"] == EMPTY.video_id and rows[2]["start"] == ""
    assert float(rows[2]["video_score"]) == pytest.approx(0.05)


def test_html_is_self_contained_with_timeline_and_segments() -> None:
    probs = [0.1] * 30 + [0.9] * 21 + [0.2] * 123
    page = HtmlWriter().render(PRED, step_probs=probs, step_seconds=0.04)
    assert "<script" not in page and "http://" not in page.replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    )
    assert page.count('<tr class="segment">') == 2
    assert "1.20" in page and "2.04" in page and "0.880" in page
    svg = page[page.index("<svg") : page.index("</svg>") + len("</svg>")]
    root = ET.fromstring(svg)  # well-formed SVG
    ns = "{http://www.w3.org/2000/svg}"
    assert len(root.findall(f"{ns}polyline")[0].get("points").split()) == len(probs)
    assert len([r for r in root.findall(f"{ns}rect") if r.get("class") == "segment"]) == 2


def test_html_escapes_and_handles_no_segments() -> None:
    page = HtmlWriter().render(EMPTY)
    assert "real&lt;clip&gt;&amp;" in page and "real<clip>" not in page
    assert "no fake segment proposed" in page and "<svg" in page


def test_never_overwrites_without_force(tmp_path: Path) -> None:
    path = tmp_path / "out" / "a.json"
    JsonWriter().write(PRED, path)
    before = path.read_text()
    with pytest.raises(OutputExistsError, match="already exists"):
        JsonWriter().write(EMPTY, path)
    assert path.read_text() == before
    JsonWriter().write(EMPTY, path, force=True)
    assert Prediction.from_dict(json.loads(path.read_text())) == EMPTY
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
    probs = np.full(90_000, 0.1)  # one hour at 25 steps per second
    probs[45_000] = 0.97  # a single-step burst
    long = Prediction("long", 3600.0, 0.97)
    page = HtmlWriter(max_points=1000).render(long, step_probs=probs, step_seconds=0.04)
    svg = page[page.index("<svg") : page.index("</svg>") + len("</svg>")]
    line = ET.fromstring(svg).find("{http://www.w3.org/2000/svg}polyline")
    points = [tuple(map(float, p.split(","))) for p in line.get("points").split()]
    assert len(points) == 1000
    ys = sorted({y for _, y in points})
    assert len(ys) == 2  # 0.1 everywhere except the bin holding the burst
    xs = [x for x, _ in points]
    assert xs == sorted(xs)
