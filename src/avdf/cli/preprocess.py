"""``avdf preprocess INPUT... --out DIR``: decode videos and cache their per-step inputs.

INPUT is a video file, a folder (searched recursively for common video extensions) or a
JSONL manifest (cache keyed by ``Sample.id``). Finished videos are skipped on reruns; one bad
file never stops the batch (exit status 1 at the end). Sharding follows ``--shard K/N`` or
the launcher's environment (torchrun, SLURM tasks, SLURM job arrays).

A video with no face found is a success with a warning ("no face found"): detection can
still use its audio.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from avdf.experts import EXPERTS

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv", ".ts"}
)
_SHARD_ENV = (
    ("RANK", "WORLD_SIZE"),
    ("SLURM_PROCID", "SLURM_NTASKS"),
    ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT"),
)


@dataclass(frozen=True)
class Job:
    video_id: str
    path: str


@dataclass(frozen=True)
class Outcome:
    job: Job
    status: str  # "done", "skipped" or "failed"
    message: str = ""  # the cause for failures, warnings otherwise
    seconds: float = 0.0  # video seconds


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="video files, folders or JSONL manifests"
    )
    parser.add_argument("--out", required=True, type=Path, help="cache folder (one file per video)")
    parser.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
    parser.add_argument("--force", action="store_true", help="rebuild caches that are up to date")
    parser.add_argument(
        "--shard", default=None, metavar="K/N", help="process the K-th of N shards (0-based)"
    )
    parser.add_argument(
        "--max-side",
        type=int,
        default=640,
        metavar="PX",
        help="downscale frames so the long side is <= PX before face tracking (default 640)",
    )
    parser.add_argument(
        "--chunk-steps",
        type=int,
        default=250,
        help="steps decoded and written at a time (bounds memory)",
    )
    parser.add_argument(
        "--experts",
        nargs="+",
        default=[],
        choices=sorted(EXPERTS),
        help="expert streams to store too (added to up-to-date caches that lack them)",
    )
    parser.add_argument(
        "--face-size",
        type=int,
        default=64,
        metavar="PX",
        help="side of the aligned face crop; must match the config's media.face_size (default 64)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")  # fmt: skip


# --- inputs --------------------------------------------------------------------------------


def collect_jobs(inputs: list[str]) -> list[Job]:
    """Expand files, folders and manifests into jobs sorted by video id. The same video
    listed twice under one id (overlapping manifests) is one job; different videos sharing an
    id get ``~1``, ``~2``, ... suffixes."""
    from avdf.errors import InputError
    from avdf.types import read_manifest

    jobs: list[Job] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                if f.is_file() and f.suffix.lower() in VIDEO_EXTENSIONS:
                    jobs.append(Job(f.relative_to(p).with_suffix("").as_posix(), str(f)))
        elif p.suffix.lower() in (".jsonl", ".json") and p.is_file():
            try:
                samples = read_manifest(str(p))
            except (ValueError, KeyError, TypeError) as e:
                raise InputError(p, f"not a JSONL manifest ({e})") from None
            for s in samples:
                path = Path(s.path)
                if not path.is_absolute() and not path.exists():
                    path = p.parent / path
                jobs.append(Job(s.id, str(path)))
        else:
            # A single file (missing files fail later, per video, with a one-line cause).
            jobs.append(Job(p.with_suffix("").name, str(p)))
    seen: dict[str, int] = {}
    unique = []
    for job in sorted(set(jobs), key=lambda j: (j.video_id, j.path)):
        count = seen.get(job.video_id, 0)
        seen[job.video_id] = count + 1
        unique.append(job if count == 0 else Job(f"{job.video_id}~{count}", job.path))
    return unique


def parse_shard(shard: str | None, environ: dict[str, str] | None = None) -> tuple[int, int]:
    """(index, count) from ``K/N``, else from torchrun / SLURM variables, else (0, 1)."""
    environ = dict(os.environ if environ is None else environ)
    if shard:
        try:
            k, n = (int(x) for x in shard.split("/"))
        except ValueError:
            raise ValueError(f"--shard must look like K/N, got {shard!r}") from None
    else:
        k, n = 0, 1
        for rank, size in _SHARD_ENV:
            if environ.get(rank) is not None and environ.get(size) is not None:
                k, n = int(environ[rank]), int(environ[size])
                break
    if not (n >= 1 and 0 <= k < n):
        raise ValueError(f"shard {k}/{n} is out of range")
    return k, n


# --- work ----------------------------------------------------------------------------------

_worker_tracker: object | None = None


def _process(
    job: Job,
    out: str,
    max_side: int,
    chunk_steps: int,
    force: bool,
    experts: tuple[str, ...] = (),
    face_size: int = 64,
) -> Outcome:
    """Preprocess one video (runs in a worker process; reuses its face tracker)."""
    global _worker_tracker
    from avdf.errors import one_line
    from avdf.native_logs import native_stderr_silenced
    from avdf.preprocess.cache import cache_path_for
    from avdf.preprocess.pipeline import cache_video, default_tracker
    from avdf.timebase import MediaSpec

    spec = MediaSpec(face_size=face_size)
    try:
        with native_stderr_silenced():
            if _worker_tracker is None or _worker_tracker.spec != spec:
                _worker_tracker = default_tracker(spec)
            result = cache_video(
                job.path,
                cache_path_for(out, job.video_id),
                spec,
                tracker=_worker_tracker,
                max_side=max_side,
                chunk_steps=chunk_steps,
                force=force,
                extra_meta={"video_id": job.video_id},
                experts=experts,
            )
    except Exception as e:  # noqa: BLE001 - one bad file must not stop the batch
        return Outcome(job, "failed", one_line(job.path, e))
    warnings = [n for n in result.notes if "no face" in n or "truncated" in n]
    return Outcome(
        job, "skipped" if result.skipped else "done", "; ".join(warnings), result.duration
    )


def _run_all(jobs: list[Job], args: argparse.Namespace) -> Iterator[Outcome]:
    task = (
        str(args.out),
        args.max_side,
        args.chunk_steps,
        args.force,
        tuple(args.experts),
        args.face_size,
    )
    if args.workers <= 1:
        for job in jobs:
            yield _process(job, *task)
        return
    # spawn: safe with threads (PyAV, mediapipe) and identical on every platform.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(args.workers, mp_context=context) as pool:
        yield from pool.map(_process, jobs, *([t] * len(jobs) for t in task))


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from avdf.errors import AvdfError

    try:
        shard_index, shard_count = parse_shard(args.shard)
        jobs = collect_jobs(args.inputs)
    except (ValueError, AvdfError) as e:
        print(f"avdf preprocess: {e}", file=sys.stderr)
        return 2
    jobs = jobs[shard_index::shard_count]
    args.out.mkdir(parents=True, exist_ok=True)
    counts = {"done": 0, "skipped": 0, "failed": 0}
    failures: list[str] = []
    warnings: list[str] = []
    video_seconds = 0.0
    start = time.perf_counter()
    bar = tqdm(
        total=len(jobs), unit="video", file=sys.stderr, disable=args.quiet, dynamic_ncols=True
    )
    for outcome in _run_all(jobs, args):
        counts[outcome.status] += 1
        video_seconds += outcome.seconds if outcome.status == "done" else 0.0
        if outcome.status == "failed":
            failures.append(outcome.message)
        elif outcome.message:
            warnings.append(f"{outcome.job.path}: {outcome.message}")
        bar.update(1)
        bar.set_postfix(failed=counts["failed"], refresh=False)
    bar.close()
    elapsed = time.perf_counter() - start
    shard = f" (shard {shard_index}/{shard_count})" if shard_count > 1 else ""
    print(
        f"preprocess{shard}: {counts['done']} done, {counts['skipped']} skipped, "
        f"{counts['failed']} failed in {elapsed:.1f} s"
        + (f" ({video_seconds / elapsed:.2f} video-s/s)" if counts["done"] and elapsed > 0 else ""),
        file=sys.stderr,
    )
    for line in warnings:
        print(f"warning: {line}", file=sys.stderr)
    for line in failures:
        print(f"failed: {line}", file=sys.stderr)
    return 1 if failures else 0
