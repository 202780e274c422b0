"""scripts/render_report_screenshot.py: a real Chromium screenshot of a real report, or a
one-line error when no Chromium is installed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "render_report_screenshot.py"
sys.path.insert(0, str(SCRIPT.parent))
import render_report_screenshot as script  # noqa: E402


def test_trim_bottom_keeps_the_content_and_a_margin() -> None:
    page = np.full((500, 40, 3), 255, np.uint8)
    page[100:120, 5:10] = 0  # content ends at row 120
    assert script.trim_bottom(page, margin=16).shape == (136, 40, 3)


def test_screenshot_of_a_report_or_a_clear_error(tmp_path: Path) -> None:
    report = tmp_path / "r.html"
    report.write_text(
        '<!DOCTYPE html><html><body style="margin:0"><div style="height:300px;'
        'background:#d62728"></div></body></html>'
    )
    out = tmp_path / "shot.png"
    argv = [sys.executable, str(SCRIPT), str(report), "--out", str(out), "--width", "400"]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if script.find_browser(None) is None:
        assert done.returncode == 1 and "no Chromium found" in done.stderr
        assert not out.exists()
        return
    assert done.returncode == 0, done.stderr
    image = cv2.imread(str(out))
    assert image.shape[1] == 400 and 300 <= image.shape[0] <= 300 + 16  # trimmed below
    assert tuple(image[150, 200]) == (40, 39, 214)  # the red block (BGR)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
