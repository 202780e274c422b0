"""``avdf synth``: build the synthetic audio-visual deepfake corpus (LAV-DF layout)."""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

from avdf.errors import AvdfError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--videos", type=int, default=200, help="number of videos (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--source-media",
        type=Path,
        default=None,
        help="folder with talking/ and speech/ (default: ../shared/media if present, "
        "else the small subset bundled with avdf)",
    )
    parser.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing corpus")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from avdf.synth import build_corpus

    def say(message: Warning | str, *_: object) -> None:  # e.g. build_corpus's missing TTS
        print(f"avdf synth: warning: {message}", file=sys.stderr)

    started = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.showwarning = say
            records = build_corpus(
                args.out,
                args.videos,
                args.seed,
                args.source_media,
                force=args.force,
                workers=args.workers,
                progress=not args.quiet,
            )
    except AvdfError as error:
        print(f"avdf synth: {error}", file=sys.stderr)
        return 1
    elapsed = time.perf_counter() - started
    splits = Counter(r["split"] for r in records)
    kinds = Counter(r["modify_type"] for r in records)
    print(
        f"wrote {len(records)} videos to {args.out} in {elapsed:.1f} s "
        f"({', '.join(f'{k} {v}' for k, v in sorted(splits.items()))}; "
        f"{', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))})"
    )
    return 0
