"""``avdf detect``: say whether videos are fake, where and in which modality; write reports.

Inputs are video files and folders (searched recursively for video extensions, as
``avdf preprocess`` does). With ``-o OUT`` each video gets ``OUT/<name>.json|csv|html`` and the
batch a ``summary.csv`` (one row per video), rewritten atomically after every video, so a
killed run loses nothing: a rerun skips videos whose reports exist (``--force`` redoes them)
and writes only the missing ones of a partly reported video; the temporary file a kill left
behind is removed when its target is written (:mod:`avdf.atomic`). ``--shard K/N`` (or
torchrun / SLURM variables) splits a collection over independent processes; each shard writes ``summary-K-of-N.csv``, and a plain rerun after all
shards finished writes the combined ``summary.csv`` (everything is skipped).

The human summary goes to stdout with ``-o`` and to stderr without it (stdout then carries
the JSON). Heavy imports (torch, mediapipe) happen inside :func:`run`, so ``--help`` is
instant. One bad file prints one line ``path: cause`` on stderr and the batch goes on; the
exit status is 1 if any video failed. Existing reports are never replaced without ``--force``.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from avdf.cli.preprocess import Job, collect_jobs, parse_shard
from avdf.errors import one_line
from avdf.native_logs import native_stderr_silenced

FORMATS = ("json", "csv", "html")
SAMPLE_CLIP = "assets/sample.mp4"  # inside the avdf package


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "videos",
        nargs="*",
        metavar="VIDEO",
        help="video files or folders (searched recursively) to check "
        "(default: the bundled sample clip)",
    )
    parser.add_argument(
        "-o",
        "--output-dir",
        type=Path,
        help="write one report per video and format here, plus summary.csv; videos whose "
        "reports exist are skipped. Without it the JSON goes to stdout "
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
    parser.add_argument("--force", action="store_true", help="redo videos and overwrite outputs")
    parser.add_argument(
        "--shard", default=None, metavar="K/N", help="check the K-th of N shards (0-based)"
    )
    parser.add_argument(
        "--segment-threshold",
        type=float,
        default=None,
        metavar="P",
        help="steps with fake probability above P form the report's segments "
        "(default: the checkpoint's calibration)",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=None,
        metavar="P",
        help="steps with fake probability above P seed ranked proposals (default: 0.1)",
    )
    parser.add_argument(
        "--top-k", type=int, default=None, metavar="K", help="proposals kept per video (100)"
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


def summary_text(verdict: Any, max_segments: int = 5) -> str:
    """A few human-readable lines: the verdict, where, modalities, what the JSON adds."""
    v = verdict
    calibration = "tuned calibration" if v.tuned else "calibration not tuned"
    lines = [
        f"{v.video_id}: {v.words}, probability fake {v.probability:.2f} ({calibration}), "
        f"{v.duration:.1f} s"
    ]
    for s in v.segments[:max_segments]:
        lines.append(
            f"  manipulated {s.start:6.2f}-{s.end:6.2f} s  score {s.score:.2f}  {s.modality}"
        )
    if len(v.segments) > max_segments:
        lines.append(f"  ... {len(v.segments) - max_segments} more segments in the report")
    if not v.segments:
        lines.append(f"  {v.where()}")
    present = ", ".join(f"{k} {100 * x:.0f}%" for k, x in v.modalities_present.items())
    lines.append(f"  present: {present}; {len(v.proposals)} ranked proposals in the JSON")
    lines.extend(f"  note: {note}" for note in v.notes)
    return "\n".join(lines)


@dataclass
class _Batch:
    """The state of one ``avdf detect`` run: summary rows and counts."""

    summary_path: Path | None
    rows: dict[str, dict[str, str]] = field(default_factory=dict)  # by video id, in order
    counts: dict[str, int] = field(default_factory=lambda: {"done": 0, "skipped": 0, "failed": 0})
    last_write: float = 0.0
    write_seconds: float = 0.0
    dirty: bool = False

    def load(self) -> None:
        """Rows of an earlier run's summary (kept, so a rerun over part of a folder or a
        resumed run still lists every video); an unreadable one is rebuilt from reports."""
        if self.summary_path is None or not self.summary_path.is_file():
            return
        try:
            with open(self.summary_path, encoding="utf-8", newline="") as f:
                for row in csv.DictReader(f):
                    self.rows[row["video"]] = dict(row)
        except (OSError, KeyError, csv.Error, UnicodeDecodeError):
            self.rows.clear()

    def add(self, video_id: str, row: dict[str, str], write_now: bool) -> None:
        self.rows[video_id] = row
        self.dirty = True
        if write_now:
            self.write()

    def write(self, final: bool = False) -> None:
        from avdf.atomic import write_text_atomic
        from avdf.reports.writers import render_summary

        if self.summary_path is None or not self.dirty:
            return
        # A huge collection makes each rewrite slow: then rewrite at most once per ten times
        # the rewrite takes, so the summary costs <= ~10% (the reports hold everything anyway).
        now = time.perf_counter()
        if not final and now - self.last_write < 10 * self.write_seconds:
            return
        try:
            write_text_atomic(self.summary_path, render_summary(list(self.rows.values())))
        except OSError:
            if final:
                raise
            return  # a full disk mid-batch: the reports still count; retried after the next
        self.last_write = time.perf_counter()
        self.write_seconds = self.last_write - now
        self.dirty = False


def _write_challenge(args: argparse.Namespace, done: list[tuple[Job, Any]]) -> None:
    """AV-Deepfake1M formats for the videos that succeeded (existence checked up front)."""
    from avdf.reports.challenge import (
        detection_from_predictions,
        localization_from_predictions,
        write_detection,
        write_localization,
    )

    # Keys are the paths as given: run from the dataset root to get its relative names.
    renamed = [replace(p, video_id=job.path) for job, p in done]
    if args.challenge_json:
        write_localization(localization_from_predictions(renamed), args.challenge_json)
    if args.challenge_txt:
        write_detection(detection_from_predictions(renamed), args.challenge_txt)


def _stills(grabber: Any, job: Job, verdict: Any, curves: Any, verbose: bool) -> list[Any]:
    """Face and mouth thumbnails for the HTML report; none (not a failure) if grabbing fails."""
    from avdf.reports.verdict import still_times
    from avdf.reports.writers import Still

    moments = still_times(verdict, curves)
    try:
        with native_stderr_silenced(not verbose):
            crops = grabber.grab(job.path, [t for _, t in moments])
    except Exception:  # noqa: BLE001 - a report without thumbnails beats no report
        return []
    return [Still(t, label, f, m) for (label, t), (f, m) in zip(moments, crops, strict=True)]


def _verdict(prediction: Any, steps: Any, calibration: Any) -> tuple[Any, Any]:
    """The report's verdict and curves from the Detector's prediction and step outputs."""
    from avdf.reports.verdict import StepCurves, build_verdict

    curves = StepCurves(
        steps.spec.step_seconds,
        steps.fake_prob,
        steps.audio_prob,
        steps.visual_prob,
        steps.audio_present,
        steps.face_present,
    )
    return build_verdict(prediction, curves, calibration, steps.notes), curves


def _skip(
    job: Job, report: Path | None, batch: _Batch, done: list[tuple[Job, Any]], want: bool
) -> None:
    """A video whose reports all exist: count it, keep (or rebuild) its summary row, and read
    its proposals back when the challenge files need them."""
    from avdf.reports.verdict import Verdict
    from avdf.reports.writers import summary_row

    batch.counts["skipped"] += 1
    known = batch.rows.get(job.video_id, {}).get("status") == "done"
    if known and not want:
        return
    verdict = None
    if report is not None:
        try:
            verdict = Verdict.from_dict(json.loads(report.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError):
            verdict = None  # another tool's file, or an older report layout
    if verdict is None:
        if not known:
            row = {"video": job.video_id, "path": job.path, "status": "skipped"}
            batch.add(job.video_id, row, write_now=False)
        return
    if not known:
        batch.add(job.video_id, summary_row(job.path, verdict, report), write_now=False)
    if want:
        done.append((job, verdict.prediction()))


def _jobs_and_decoding(args: argparse.Namespace) -> tuple[list[Job], str, Any]:
    """This shard's jobs, its summary file name and the decoding settings; raises AvdfError
    (bad input, an existing challenge file) or ValueError (a bad option value)."""
    from avdf.errors import OutputExistsError
    from avdf.inference.decode import DecodeConfig

    shard_index, shard_count = parse_shard(args.shard)
    jobs = (
        collect_jobs([str(v) for v in args.videos])
        if args.videos
        else [Job("sample", str(_sample_clip()))]
    )
    for target in (args.challenge_json, args.challenge_txt):
        if target is not None and target.exists() and not args.force:
            raise OutputExistsError(target)
    overrides = {
        k: v for k, v in (("pre_threshold", args.threshold), ("top_k", args.top_k)) if v is not None
    }
    if args.segment_threshold is not None and not 0 <= args.segment_threshold <= 1:
        raise ValueError(f"--segment-threshold must be in [0, 1], got {args.segment_threshold}")
    summary_name = (
        "summary.csv" if shard_count == 1 else f"summary-{shard_index}-of-{shard_count}.csv"
    )
    return jobs[shard_index::shard_count], summary_name, DecodeConfig(**overrides)


class _Reporter:
    """Runs the detector on one job at a time and writes its missing reports."""

    def __init__(self, args: argparse.Namespace, detector: Any, batch: _Batch) -> None:
        from avdf.reports.writers import WRITERS

        formats = FORMATS if args.format == "all" else (args.format,)
        self.args = args
        self.detector = detector
        self.batch = batch
        self.writers = {name: WRITERS[name]() for name in formats}
        self.want_challenge = bool(args.challenge_json or args.challenge_txt)
        self.done: list[tuple[Job, Any]] = []  # (job, Prediction) for the challenge files
        self.seen: dict[str, Job] = {}  # report stem -> job, to refuse two videos per name
        self.grabber: Any = None  # thumbnails for HTML reports, made on first need

    def process(self, job: Job) -> tuple[Any, Path | None] | None:
        """The job's verdict and JSON report path (None without one) once its reports are
        written; None if they all existed."""
        from avdf.errors import AvdfError
        from avdf.reports.writers import report_stem, write_text_atomic

        args, out = self.args, self.args.output_dir
        stem = report_stem(job.video_id)
        if stem in self.seen:
            raise AvdfError(f"{job.path}: same report name as {self.seen[stem].path} in this batch")
        self.seen[stem] = job
        targets = (
            {}
            if out is None
            else {n: w.path_for(out, job.video_id) for n, w in self.writers.items()}
        )
        missing = {n: t for n, t in targets.items() if args.force or not t.exists()}
        if targets and not missing:
            _skip(job, targets.get("json"), self.batch, self.done, self.want_challenge)
            return None
        with native_stderr_silenced(not args.verbose):
            prediction, steps = self.detector.detect_with_steps(job.path, job.video_id)
        verdict, curves = _verdict(prediction, steps, self.detector.calibration)
        stills: list[Any] = []
        if "html" in missing:
            if self.grabber is None:
                from avdf.inference.thumbnails import ThumbnailGrabber

                self.grabber = ThumbnailGrabber(self.detector.spec)
            stills = _stills(self.grabber, job, verdict, curves, args.verbose)
        # Render everything first, then write; the JSON last: the summary reads it back.
        texts = {n: self.writers[n].render(verdict, curves, stills) for n in missing}
        for name in sorted(texts, key=lambda n: n == "json"):
            write_text_atomic(missing[name], texts[name], force=args.force)
        self.done.append((job, prediction))
        return verdict, targets.get("json")

    def close(self) -> None:
        if self.grabber is not None:
            self.grabber.close()


def _finish(args: argparse.Namespace, reporter: _Reporter) -> int:
    """Final summary, challenge files and the closing line; the number of failures."""
    from avdf.errors import AvdfError

    batch = reporter.batch
    failed = batch.counts["failed"]
    try:
        batch.write(final=True)
    except (AvdfError, OSError) as error:
        failed += 1
        print(one_line(batch.summary_path, error), file=sys.stderr)
    if reporter.want_challenge:
        try:
            _write_challenge(args, reporter.done)
        except (AvdfError, OSError, ValueError) as error:
            failed += 1
            print(one_line(args.challenge_json or args.challenge_txt, error), file=sys.stderr)
    if args.output_dir is not None:
        c = batch.counts
        skipped = (
            f", {c['skipped']} skipped (reports exist; --force redoes)" if c["skipped"] else ""
        )
        print(
            f"detect: {c['done']} done{skipped}, {c['failed']} failed; summary: {batch.summary_path}",
            file=sys.stderr,
        )
    return failed


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from avdf.errors import AvdfError

    try:
        jobs, summary_name, decode = _jobs_and_decoding(args)
    except (AvdfError, ValueError) as error:
        print(f"avdf detect: {error}", file=sys.stderr)
        return 1 if isinstance(error, AvdfError) else 2

    from avdf.inference.detector import Detector
    from avdf.reports.writers import summary_row

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
    if args.segment_threshold is not None:
        detector.calibration = replace(
            detector.calibration, segment_threshold=args.segment_threshold
        )

    out = args.output_dir
    batch = _Batch(None if out is None else out / summary_name)
    batch.load()
    reporter = _Reporter(args, detector, batch)
    human = sys.stdout if out is not None else sys.stderr  # without -o stdout is the JSON
    progress = tqdm(jobs, desc="detect", unit="video", file=sys.stderr, disable=len(jobs) < 2)
    for job in progress:
        try:
            processed = reporter.process(job)
        except Exception as error:  # one bad file must not stop the batch
            batch.counts["failed"] += 1
            line = one_line(job.path, error)
            tqdm.write(line, file=sys.stderr)
            row = summary_row(job.path, None, error=line, video_id=job.video_id)
            batch.add(job.video_id, row, write_now=True)
            continue
        if processed is None:
            continue  # skipped: its reports exist
        verdict, report = processed
        batch.counts["done"] += 1
        tqdm.write(summary_text(verdict), file=human)
        if out is None:
            indent = 2 if len(jobs) == 1 else None
            print(json.dumps(verdict.to_dict(), indent=indent), flush=True)
        else:
            batch.add(job.video_id, summary_row(job.path, verdict, report), True)
    progress.close()
    reporter.close()
    return 1 if _finish(args, reporter) else 0
