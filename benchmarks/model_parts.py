"""What the model's parts cost at detection time, measured in one run.

A real talking-face clip goes through the real pipeline once (features kept in memory, tiled
to ``--minutes`` of video); then each MMMS-BA configuration below (default sizes) scores those
features exactly as ``avdf detect`` does after preprocessing (windows, model, stitching,
decoding); the last rows are the default model with the opt-in test-time flip (``avdf tune
--flip``: a second forward pass on mirrored crops) and an ensemble of two default models
(``avdf ensemble``: a second model). The whole ``avdf detect`` of the clip
(decoding + tracking + model) with the default model gives the denominator: each part's
extra cost as a share of detect time.

A second table compares face crop sizes (the default model at ``--face-sizes``, and the
``face_3d_residual`` face block at the largest): whole detect of the clip (cropping
included) and the model alone, in the same run.

    python benchmarks/model_parts.py [--minutes 1] [--repeats 3] [--threads 1]
        [--face-sizes 64 112]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from avdf.inference.detector import Detector
from avdf.models import create_model
from avdf.models.mmms_ba import PAPER_FORM
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


# Each configuration adds one part to the one before; the last is the default model.
FIRST = {"face_block": "face_cnn", **PAPER_FORM}
CONFIGS = {
    "single-scale head, per-frame face": {**FIRST, "head": "single_scale"},
    "+ pyramid head": FIRST,
    "+ face time taps (face_3d)": {**FIRST, "face_block": "face_3d"},
    "+ temporal contrast": {**PAPER_FORM, "temporal_contrast": True},
    "+ sync stream": {**PAPER_FORM, "temporal_contrast": True, "sync_dim": 32},
    "+ scaled, banded attention (default)": {},
}


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
    parser.add_argument("--face-sizes", type=int, nargs="*", default=[64, 112])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    spec = MediaSpec()
    torch.manual_seed(0)
    detectors = {
        name: Detector(create_model("mmms_ba", spec=spec, **kwargs), spec, num_threads=None)
        for name, kwargs in CONFIGS.items()
    }
    default = detectors[list(CONFIGS)[-1]]
    detectors["+ test-time flip (opt-in)"] = Detector(
        default.model, spec, num_threads=None, flip=True
    )
    pair = [{"name": "mmms_ba", "kwargs": default.model.model_kwargs}] * 2
    detectors["+ ensemble of two (opt-in)"] = Detector(
        create_model("ensemble", members=pair), spec, num_threads=None
    )
    with native_stderr_silenced():
        _, steps = default.detect_with_steps(args.clip)  # warm-up: models load
        detect_seconds = best_time(lambda: default.detect(args.clip), args.repeats)
        features = VideoFeatures.concat(list(default._feature_chunks(args.clip, None)))
    clip_seconds = steps.duration
    n_steps = int(args.minutes * 60 * spec.steps_per_second)
    video_seconds = n_steps * spec.step_seconds
    print(f"clip {Path(args.clip).name}: {clip_seconds:.1f} s; scoring {video_seconds:.0f} s")
    detect_per_minute = detect_seconds / clip_seconds * 60
    print(
        f"whole avdf detect of the clip (default model, best of {args.repeats}): "
        f"{detect_per_minute:.2f} s per video-minute (RTF {detect_seconds / clip_seconds:.3f})\n"
    )
    print(
        "| model | params | model + stitching + decoding, s per video-minute | added, % of detect |"
    )
    print("|---|---|---|---|")
    # Configurations alternate within each repeat, so machine load drifts hit all alike.
    best = {name: float("inf") for name in detectors}
    for _ in range(args.repeats):
        for name, detector in detectors.items():
            start = time.perf_counter()
            detector.detect_features(tiled(features, n_steps), video_seconds, "x")
            best[name] = min(best[name], time.perf_counter() - start)
    # Each configuration is compared with the one before it, an opt-in part with the default.
    previous = default_cost = None
    for name, detector in detectors.items():
        params = sum(p.numel() for p in detector.model.parameters())
        per_minute = best[name] / video_seconds * 60
        base = default_cost if name.endswith("(opt-in)") else previous
        added = "" if base is None else f"{100 * (per_minute - base) / detect_per_minute:+.1f}"
        print(f"| {name} | {params:,} | {per_minute:.3f} | {added} |")
        previous = per_minute
        if detector is default:
            default_cost = per_minute
    if args.face_sizes:
        compare_face_sizes(args, n_steps)


def compare_face_sizes(args: argparse.Namespace, n_steps: int) -> None:
    """The default model at each face crop size (and with the residual face block at the
    largest): whole detect and model-only cost, configurations alternating within a repeat."""
    variants = [(f"{size} px", size, {}) for size in args.face_sizes]
    variants.append(
        (f"{max(args.face_sizes)} px, face_3d_residual", max(args.face_sizes),
         {"face_block": "face_3d_residual"})
    )  # fmt: skip
    detectors = {}
    for name, size, kwargs in variants:
        spec = MediaSpec(face_size=size)
        torch.manual_seed(0)
        model = create_model("mmms_ba", spec=spec, **kwargs)
        detectors[name] = Detector(model, spec, num_threads=None)
    detect_best = {name: float("inf") for name in detectors}
    model_best = dict(detect_best)
    step = MediaSpec().step_seconds
    video_seconds = n_steps * step
    with native_stderr_silenced():
        # One feature extraction per crop size (variants of one size share it).
        by_size: dict[int, VideoFeatures] = {}
        for name, size, _ in variants:
            if size not in by_size:
                chunks = detectors[name]._feature_chunks(args.clip, None)
                by_size[size] = VideoFeatures.concat(list(chunks))
        features = {name: by_size[size] for name, size, _ in variants}
        for _ in range(args.repeats):
            for name, detector in detectors.items():
                start = time.perf_counter()
                detector.detect(args.clip)
                detect_best[name] = min(detect_best[name], time.perf_counter() - start)
                start = time.perf_counter()
                detector.detect_features(tiled(features[name], n_steps), video_seconds, "x")
                model_best[name] = min(model_best[name], time.perf_counter() - start)
    print("\n| face crop | whole detect of the clip, RTF | model + decoding, s per video-minute |")
    print("|---|---|---|")
    for name, chunk in features.items():
        print(
            f"| {name} | {detect_best[name] / (chunk.n_steps * step):.3f} "
            f"| {model_best[name] / video_seconds * 60:.3f} |"
        )


if __name__ == "__main__":
    main()
