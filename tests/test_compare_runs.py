"""scripts/compare_runs.py: the paired bootstrap used for the README's MMMS-BA vs none claim."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from avdf.reports.challenge import write_detection, write_localization

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "compare_runs.py"

# Ten videos: five fake with one segment each, five real.
LABELS = [
    {"file": f"test/{i:03d}.mp4", "fake_periods": [[1.0 + i, 2.0 + i]] if i < 5 else []}
    for i in range(10)
]


def _run(folder: Path, proposals: dict, scores: dict) -> Path:
    folder.mkdir()
    write_localization(proposals, folder / "localization.json")
    write_detection(scores, folder / "detection.txt")
    return folder


def _table(*args: Path) -> dict[str, list[str]]:
    out = subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args), "--resamples", "200"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = [line.split("|")[1:-1] for line in out.splitlines() if line.startswith("| ")]
    return {cells[0].strip(): [c.strip() for c in cells[1:]] for cells in rows[1:]}


def test_a_perfect_run_is_ahead_of_a_wrong_one_in_every_resample(tmp_path: Path) -> None:
    labels = tmp_path / "metadata.json"
    labels.write_text(json.dumps(LABELS))
    files = [r["file"] for r in LABELS]
    exact = {f: [[1.0, *r["fake_periods"][0]]] if r["fake_periods"] else [] for f, r in
             zip(files, LABELS, strict=True)}  # fmt: skip
    # B: every proposal misses its segment by a full second (IoU 0) and scores are inverted.
    missed = {f: [[1.0, p[0][1] + 1.0, p[0][2] + 1.0]] if p else [] for f, p in exact.items()}
    truth = {f: float(bool(r["fake_periods"])) for f, r in zip(files, LABELS, strict=True)}
    a = _run(tmp_path / "a", exact, truth)
    b = _run(tmp_path / "b", missed, {f: 1.0 - s for f, s in truth.items()})

    table = _table(labels, a, b)
    # Hand-computed on the full split: A is perfect, B ranks every real video above every fake
    # one and never overlaps a segment.
    assert table["AUC"][:3] == ["100.0", "0.0", "+100.0"]
    # 80, not 100: the official AP does not count the first recall step (1 of 5 labels).
    assert table["AP@0.5"][:3] == ["80.0", "0.0", "+80.0"]
    assert table["AUC"][4] == table["AR@10"][4] == table["AR@100"][4] == "100%"
    # (a resample holding a single fake video gives A an AP of 0 too, by the same rule)
    assert all(int(table[m][4].rstrip("%")) >= 95 for m in ("AP@0.5", "AP@0.75"))

    same = _table(labels, a, a)
    assert all(row[2:] == ["+0.0", "[+0.0, +0.0]", "0%"] for row in same.values())
