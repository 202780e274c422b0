"""Screenshot an avdf HTML report with headless Chromium (for the README).

Usage: python scripts/render_report_screenshot.py [REPORT.html] [--out PNG] [--width PX]
       [--height PX] [--browser PATH]

Without REPORT, runs ``avdf detect`` on the bundled sample clip with the bundled checkpoint
into a temporary folder and screenshots its report. The default output is
``docs/images/report-sample.png`` at 900 px wide (``--width 390`` shows the phone layout).
The page is rendered at ``--height`` and the blank rows below its content are trimmed.
Chromium is looked up as ``chromium``, ``chromium-browser``, ``google-chrome`` (Debian:
``apt-get install chromium``); without one the script says so and exits 1.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from avdf.atomic import atomic_path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "docs" / "images" / "report-sample.png"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_browser(given: str | None) -> str | None:
    if given:
        return shutil.which(given) or (given if Path(given).is_file() else None)
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def sample_report(folder: Path) -> Path:
    """The bundled sample's HTML report, made by the real ``avdf detect``."""
    command = [sys.executable, "-m", "avdf", "detect", "-o", str(folder), "--format", "html"]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return folder / "sample.html"


def trim_bottom(image: np.ndarray, margin: int = 16) -> np.ndarray:
    """Drop the uniform rows below the page's content, keeping ``margin`` of them."""
    background = image[-1:, :, :]
    rows = np.flatnonzero(np.any(np.abs(image.astype(int) - background) > 8, axis=(1, 2)))
    last = int(rows[-1]) + 1 if len(rows) else image.shape[0]
    return image[: min(image.shape[0], last + margin)]


def screenshot(browser: str, report: Path, out: Path, width: int, height: int) -> Path:
    with tempfile.TemporaryDirectory() as profile:
        raw = Path(profile) / "shot.png"
        command = [
            browser,
            "--headless",
            "--no-sandbox",  # needed as root (containers); the page is our own file
            "--disable-gpu",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            f"--screenshot={raw}",
            report.resolve().as_uri(),
        ]
        subprocess.run(command, check=True, capture_output=True, timeout=120)
        image = cv2.imread(str(raw), cv2.IMREAD_COLOR)
        if image is None:
            raise RuntimeError(f"{browser} wrote no readable screenshot")
        with atomic_path(out) as tmp:
            # The temporary name must keep the .png suffix for OpenCV to pick the encoder.
            png = tmp.with_name(tmp.name + ".png")
            try:
                cv2.imwrite(str(png), trim_bottom(image))
                png.replace(tmp)
            finally:
                png.unlink(missing_ok=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", nargs="?", type=Path, help="an avdf HTML report")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="PNG to write")
    parser.add_argument("--width", type=int, default=900, help="window width in CSS pixels")
    parser.add_argument("--height", type=int, default=2400, help="window height before trimming")
    parser.add_argument("--browser", help="Chromium or Chrome executable")
    args = parser.parse_args(argv)
    browser = find_browser(args.browser)
    if browser is None:
        print(
            "render_report_screenshot: no Chromium found (tried "
            f"{', '.join(BROWSERS)}); install one, e.g. apt-get install chromium",
            file=sys.stderr,
        )
        return 1
    with tempfile.TemporaryDirectory() as folder:
        report = args.report or sample_report(Path(folder))
        if not report.is_file():
            print(f"{report}: report not found", file=sys.stderr)
            return 1
        try:
            screenshot(browser, report, args.out, args.width, args.height)
        except (subprocess.SubprocessError, RuntimeError, OSError) as error:
            print(f"{report}: screenshot failed ({error})", file=sys.stderr)
            return 1
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
