"""What the localization head costs at detection time, measured in one run.

A real talking-face clip goes through the real pipeline once (features kept in memory, tiled
to ``--minutes`` of video); then, for each head, an MMMS-BA of the default size scores those
features exactly as ``avdf detect`` does after preprocessing (windows, model, stitching,
decoding). The whole ``avdf detect`` of the clip (decoding + tracking + model) with the
default head gives the denominator: the head's extra cost as a share of detect time.

    python benchmarks/heads.py [--minutes 1] [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from avdf.inference.detector import Detector
from avdf.models import create_model
from avdf.native_logs import native_stderr_silenced
from avdf.preprocess.features import VideoFeatures
from avdf.timebase import MediaSpec

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / "src" / "avdf" / "assets" / "synth_media" / "talking"


def tiled(features: VideoFeatures, n_steps: int) -> list[VideoFeatures]:
    """Chunks of ``features`` repeated until ``n_steps`` steps, as a cache would give them."""
    chunks, first = [], 0
    while first < n_steps:
        part = features.slice(0, min(features.n_steps, n_steps - first))
        part.first_step = first
        chunks.append(part)
        first += part.n_steps
    return chunks


def best_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clip", default=str(sorted(CLIP.glob("*.mp4"))[0]))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    spec = MediaSpec()
    torch.manual_seed(0)
    detectors = {
        head: Detector(create_model("mmms_ba", spec=spec, head=head), spec, num_threads=None)
        for head in ("single_scale", "pyramid")
    }
    with native_stderr_silenced():
        _, steps = detectors["pyramid"].detect_with_steps(args.clip)  # warm-up: models load
        detect_seconds = best_time(lambda: detectors["pyramid"].detect(args.clip), args.repeats)
        features = VideoFeatures.concat(list(detectors["pyramid"]._feature_chunks(args.clip, None)))
    clip_seconds = steps.duration
    n_steps = int(args.minutes * 60 * spec.steps_per_second)
    video_seconds = n_steps * spec.step_seconds
    print(f"clip {Path(args.clip).name}: {clip_seconds:.1f} s; scoring {video_seconds:.0f} s")
    print("| head | params | model + stitching + decoding, s per video-minute |")
    print("|---|---|---|")
    # Heads alternate within each repeat, so machine load drifts hit both alike.
    best = {head: float("inf") for head in detectors}
    for _ in range(args.repeats):
        for head, detector in detectors.items():
            start = time.perf_counter()
            detector.detect_features(tiled(features, n_steps), video_seconds, "x")
            best[head] = min(best[head], time.perf_counter() - start)
    per_minute = {}
    for head, detector in detectors.items():
        params = sum(p.numel() for p in detector.model.parameters())
        per_minute[head] = best[head] / video_seconds * 60
        print(f"| {head} | {params:,} | {per_minute[head]:.3f} |")
    detect_per_minute = detect_seconds / clip_seconds * 60
    extra = per_minute["pyramid"] - per_minute["single_scale"]
    print(
        f"\nwhole avdf detect of the clip (pyramid head, best of {args.repeats}): "
        f"{detect_per_minute:.2f} s per video-minute (RTF {detect_seconds / clip_seconds:.3f}); "
        f"the pyramid head's extra cost is {extra:.3f} s per video-minute = "
        f"{100 * extra / detect_per_minute:.1f}% of detect time"
    )


if __name__ == "__main__":
    main()
