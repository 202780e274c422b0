"""Time ``avdf evaluate --predictions --labels`` on a corpus-sized synthetic submission.

Generates a LAV-DF-style ``metadata.json`` (0-3 fake segments per video) and a localization JSON
with ``--proposals`` proposals per video (some near the labels, the rest random), then runs the
real command in a subprocess and prints a table. Usage::

    python benchmarks/metrics.py --videos 100000 --proposals 100 [--out DIR [--reuse]]

CPU seconds (user + system of the command) are printed beside wall seconds: on a shared
machine the wall time depends on the load, the CPU time much less.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from avdf.reports.challenge import write_detection, write_localization


def generate(out: Path, n_videos: int, n_proposals: int, seed: int = 0) -> tuple[Path, Path, Path]:
    rng = np.random.default_rng(seed)
    records, proposals, scores = [], {}, {}
    for i in range(n_videos):
        name = f"test/{i:06d}.mp4"
        duration = float(rng.uniform(5, 20))
        n_fakes = int(rng.integers(0, 4))
        starts = np.sort(rng.uniform(0, duration - 1, n_fakes))
        segments = [[round(s, 2), round(s + float(rng.uniform(0.1, 0.9)), 2)] for s in starts]
        records.append(
            {
                "file": name,
                "split": "test",
                "duration": duration,
                "n_fakes": n_fakes,
                "fake_periods": segments,
            }
        )
        start = rng.uniform(0, duration, n_proposals)  # (K,)
        end = start + rng.uniform(0.05, 1.5, n_proposals)
        for j, (s, e) in enumerate(segments):  # a few proposals near each label
            start[j], end[j] = s + rng.normal(0, 0.05), e + rng.normal(0, 0.05)
        score = rng.random(n_proposals)
        proposals[name] = np.stack([score, start, np.maximum(end, start)], axis=1)  # (K, 3)
        scores[name] = float(rng.random())
    labels_path, loc_path, det_path = out / "metadata.json", out / "loc.json", out / "det.txt"
    labels_path.write_text(json.dumps(records))
    write_localization(proposals, loc_path, decimals=3)
    write_detection(scores, det_path)
    return labels_path, loc_path, det_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=100_000)
    parser.add_argument("--proposals", type=int, default=100)
    parser.add_argument("--out", type=Path, default=None, help="keep the files here")
    parser.add_argument("--reuse", action="store_true", help="reuse the files already in --out")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        labels, loc, det = out / "metadata.json", out / "loc.json", out / "det.txt"
        if not (args.reuse and labels.exists() and loc.exists() and det.exists()):
            labels, loc, det = generate(out, args.videos, args.proposals)
        t_gen = time.perf_counter() - t0
        size = f"{loc.stat().st_size / 1e6:.0f} MB localization JSON"
        rows = [("generate files", t_gen, float("nan"), size)]
        for metric in ("official", "activitynet"):
            cmd = [
                sys.executable,
                "-m",
                "avdf",
                "evaluate",
                "--predictions",
                str(loc),
                "--predictions",
                str(det),
                "--labels",
                str(labels),
                "--metric",
                metric,
            ]
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            done = subprocess.run(cmd, capture_output=True, text=True)
            elapsed = time.perf_counter() - t0
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            if done.returncode:
                sys.exit(f"{' '.join(cmd)} failed:\n{done.stderr}")
            note = f"localization + detection, peak RSS {after.ru_maxrss / 1e6:.1f} GB"
            rows.append((f"avdf evaluate --metric {metric}", elapsed, cpu, note))
    print(f"{args.videos} videos x {args.proposals} proposals\n")
    print("| step | wall s | CPU s | note |\n|---|---|---|---|")
    for name, seconds, cpu, note in rows:
        print(f"| {name} | {seconds:.1f} | {cpu:.1f} | {note} |")


if __name__ == "__main__":
    main()
