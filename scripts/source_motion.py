"""How still the synthetic corpus's source clips already are: the frozen-frame family's baseline.

Usage: python scripts/source_motion.py [FOLDER] [--still 0.5] [--low 1.0]

For every video in FOLDER (default ``../shared/media/talking``; every file PyAV can decode),
the mean absolute grey-level difference between consecutive frames, and the share of frame
pairs under ``--still`` (a repeated frame, up to codec noise) and under ``--low`` grey levels.
A source that already repeats frames makes ``frozen_or_repeated`` edits look like genuine
stretches of itself, which no detector can tell apart; ``avdf synth`` leaves the family out for
such sources (``TalkingSource.repeated_frame_share``, the same ``--still`` threshold on the
prepared crops). Prints a Markdown table; a file that
does not decode gets a one-line error on stderr and the exit status is 1 at the end.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import av
import numpy as np

from avdf.errors import one_line
from avdf.synth.sources import STILL_GREY_LEVELS

DEFAULT_FOLDER = Path(__file__).resolve().parents[2] / "shared" / "media" / "talking"


def frame_differences(path: Path) -> tuple[float, np.ndarray]:
    """(frame rate, mean |grey difference| of each consecutive frame pair)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        previous, diffs = None, []
        for frame in container.decode(stream):
            grey = frame.to_ndarray(format="gray").astype(np.float32)
            if previous is not None:
                diffs.append(float(np.abs(grey - previous).mean()))
            previous = grey
        rate = float(stream.average_rate or 0)
    if not diffs:
        raise ValueError("fewer than two video frames")
    return rate, np.asarray(diffs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, nargs="?", default=DEFAULT_FOLDER)
    parser.add_argument(
        "--still", type=float, default=STILL_GREY_LEVELS, help="grey levels (default %(default)s)"
    )
    parser.add_argument("--low", type=float, default=1.0, help="grey levels (default 1.0)")
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        print(f"source_motion: {args.folder}: not a folder", file=sys.stderr)
        return 1
    print(f"| clip | fps | frames | share < {args.still} | share < {args.low} | median |")
    print("|---|---|---|---|---|---|")
    failed = 0
    for path in sorted(p for p in args.folder.iterdir() if p.is_file()):
        try:
            rate, diffs = frame_differences(path)
        except (av.FFmpegError, OSError, ValueError, IndexError) as e:
            print(f"source_motion: {one_line(path, e)}", file=sys.stderr)
            failed += 1
            continue
        print(
            f"| {path.name} | {rate:.2f} | {len(diffs) + 1} | {np.mean(diffs < args.still):.2f} "
            f"| {np.mean(diffs < args.low):.2f} | {np.median(diffs):.2f} |"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
