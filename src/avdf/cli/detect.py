"""``avdf detect``: score videos, localise fake segments, write JSON / CSV / HTML reports.

Heavy imports (torch, mediapipe) happen inside :func:`run`, so ``avdf detect --help`` is
instant. One bad file prints one line ``path: cause`` on stderr and the batch goes on;
the exit status is 1 if any video failed. Existing outputs are never replaced without
``--force``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from avdf.errors import one_line
from avdf.native_logs import native_stderr_silenced

FORMATS = ("json", "csv", "html")
SAMPLE_CLIP = "assets/sample.mp4"  # inside the avdf package


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "videos",
        nargs="*",
        metavar="VIDEO",
        help="video files to check (default: the bundled sample clip)",
    )
    parser.add_argument(
        "-o",
        "--output-dir",
        type=Path,
        help="write one report per video and format here; without it the JSON goes to stdout "
        "(one object per line when several videos are given)",
    )
    parser.add_argument(
        "--format",
        choices=(*FORMATS, "all"),
        default="all",
        help="report format(s) written to --output-dir (default: all)",
    )
    parser.add_argument(
        "--checkpoint", type=Path, help="model checkpoint (default: the bundled demo model)"
    )
    parser.add_argument("--force", action="store_true", help="overwrite existing outputs")
    parser.add_argument(
        "--threshold",
        type=float,
        default=None,
        metavar="P",
        help="steps with fake probability above P propose segments (default: 0.1)",
    )
    parser.add_argument(
        "--top-k", type=int, default=None, metavar="K", help="segments kept per video (100)"
    )
    parser.add_argument(
        "--window-steps", type=int, default=None, help="window length in steps (checkpoint's)"
    )
    parser.add_argument("--batch-size", type=int, default=8, help="windows per model call")
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="keep the native face-tracker (MediaPipe/TFLite) log lines on stderr",
    )
    parser.add_argument(
        "--challenge-json",
        type=Path,
        metavar="FILE",
        help="also write AV-Deepfake1M localization JSON {file: [[score, start, end], ...]}",
    )
    parser.add_argument(
        "--challenge-txt",
        type=Path,
        metavar="FILE",
        help="also write AV-Deepfake1M detection lines 'file;score'",
    )


def _sample_clip() -> Path:
    import importlib.resources

    from avdf.errors import InputError

    resource = importlib.resources.files("avdf").joinpath(SAMPLE_CLIP)
    if not resource.is_file():
        raise InputError(str(resource), "the bundled sample clip is missing; give a VIDEO")
    return Path(str(resource))


def _summary(prediction: Any, notes: Sequence[str] = (), max_segments: int = 5) -> str:
    """A few human-readable lines: verdict, modality scores, the top segments."""
    p = prediction
    verdict = "likely FAKE" if p.score >= 0.5 else "likely real"
    lines = [f"{p.video_id}: fake score {p.score:.3f} ({verdict}), {p.duration:.1f} s"]
    modality = ", ".join(f"{k} {v:.2f}" for k, v in p.modality_scores.items())
    present = ", ".join(f"{k} {100 * v:.0f}%" for k, v in p.modalities_present.items())
    lines.append(f"  modality scores: {modality}; present: {present}")
    for s in p.segments[:max_segments]:
        lines.append(
            f"  {s.start:7.2f} s - {s.end:7.2f} s  score {s.score:.3f}  {s.modality or ''}"
        )
    if len(p.segments) > max_segments:
        lines.append(f"  ... {len(p.segments) - max_segments} more segments")
    if not p.segments:
        lines.append("  no fake segment proposed")
    lines.extend(f"  note: {note}" for note in notes)
    return "\n".join(lines)


def _write_challenge(args: argparse.Namespace, done: list[tuple[Path, Any]]) -> None:
    """AV-Deepfake1M formats for the videos that succeeded (existence checked up front)."""
    from avdf.reports.challenge import (
        detection_from_predictions,
        localization_from_predictions,
        write_detection,
        write_localization,
    )

    # Keys are the paths as given: run from the dataset root to get its relative names.
    renamed = [replace(p, video_id=str(path)) for path, p in done]
    if args.challenge_json:
        write_localization(localization_from_predictions(renamed), args.challenge_json)
    if args.challenge_txt:
        write_detection(detection_from_predictions(renamed), args.challenge_txt)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from avdf.errors import AvdfError, OutputExistsError
    from avdf.inference.decode import DecodeConfig
    from avdf.reports.writers import WRITERS

    def fail(message: str) -> None:
        tqdm.write(message, file=sys.stderr)

    try:
        videos = [Path(v) for v in args.videos] or [_sample_clip()]
        for target in (args.challenge_json, args.challenge_txt):
            if target is not None and target.exists() and not args.force:
                raise OutputExistsError(target)
        overrides = {
            k: v
            for k, v in (("pre_threshold", args.threshold), ("top_k", args.top_k))
            if v is not None
        }
        decode = DecodeConfig(**overrides)
    except (AvdfError, ValueError) as error:
        print(f"avdf detect: {error}", file=sys.stderr)
        return 1 if isinstance(error, AvdfError) else 2

    from avdf.inference.detector import Detector

    try:
        detector = Detector.from_checkpoint(
            args.checkpoint,
            decode=decode,
            window_steps=args.window_steps,
            batch_size=args.batch_size,
        )
    except AvdfError as error:
        print(str(error), file=sys.stderr)
        return 1

    formats = FORMATS if args.format == "all" else (args.format,)
    writers = {name: WRITERS[name]() for name in formats}
    failed = 0
    done: list[tuple[Path, Any]] = []
    seen_ids: dict[str, Path] = {}
    progress = tqdm(videos, desc="detect", unit="video", file=sys.stderr, disable=len(videos) < 2)
    for video in progress:
        video_id = video.stem
        try:
            if video_id in seen_ids:
                raise AvdfError(f"{video}: same name as {seen_ids[video_id]} in this batch")
            seen_ids[video_id] = video
            targets = {}
            if args.output_dir is not None:
                targets = {n: w.path_for(args.output_dir, video_id) for n, w in writers.items()}
                for target in targets.values():  # check before the slow part
                    if target.exists() and not args.force:
                        raise OutputExistsError(target)
            with native_stderr_silenced(not args.verbose):
                prediction, steps = detector.detect_with_steps(video, video_id)
        except Exception as error:  # one bad file must not stop the batch
            failed += 1
            fail(one_line(video, error))
            continue
        done.append((video, prediction))
        fail(_summary(prediction, notes=steps.notes))
        if args.output_dir is None:
            indent = 2 if len(videos) == 1 else None
            print(json.dumps(prediction.to_dict(), indent=indent), flush=True)
            continue
        for name, writer in writers.items():
            try:
                writer.write(
                    prediction,
                    targets[name],
                    force=args.force,
                    step_probs=steps.fake_prob,
                    step_seconds=steps.spec.step_seconds,
                )
            except (AvdfError, OSError) as error:
                failed += 1
                fail(one_line(targets[name], error))
    if args.challenge_json or args.challenge_txt:
        try:
            _write_challenge(args, done)
        except (AvdfError, OSError, ValueError) as error:
            failed += 1
            fail(one_line(args.challenge_json or args.challenge_txt, error))
    return 1 if failed else 0
