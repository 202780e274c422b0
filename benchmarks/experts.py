"""Cost of the expert streams next to the whole preprocessing, in the same run.

Per clip: the whole preprocessing without experts (decode + face tracking + log-mel, as
``avdf preprocess`` runs it, cache writing left out), then the speaker expert's extra pass
split into audio decode and GE2E embedding + consistency, all in ms per video-second, and the
expert's share of the preprocessing. One torch thread, as the Detector runs. Warm-up: the
face tracker's and the encoder's models are loaded before timing.

    python benchmarks/experts.py [--clips N] [--hop 0.2]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
CLIP_FOLDERS = (
    REPO / "tests" / "media" / "talking",
    REPO / "src" / "avdf" / "assets" / "synth_media" / "talking",
    REPO.parent / "shared" / "media" / "talking",
)


def clips(limit: int | None) -> list[Path]:
    by_name: dict[str, Path] = {}
    for folder in CLIP_FOLDERS:
        for path in sorted(folder.glob("*.mp4")):
            by_name.setdefault(path.name, path)
    return list(by_name.values())[:limit]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=None, help="only the first N clips")
    parser.add_argument("--hop", type=float, default=0.2, help="seconds between GE2E windows")
    args = parser.parse_args()

    from avdf.io.decode import iter_audio, probe
    from avdf.preprocess.pipeline import default_tracker, iter_features
    from avdf.preprocess.speaker import load_encoder, speaker_consistency
    from avdf.timebase import MediaSpec

    torch.set_num_threads(1)
    spec = MediaSpec()
    tracker = default_tracker(spec)
    load_encoder()
    rows: list[np.ndarray] = []
    total_seconds: list[float] = []
    print(
        f"{'clip':42s} {'sec':>6s} {'preproc':>9s} {'decode':>8s} {'embed':>8s} {'expert':>8s} {'share':>6s}"
    )
    print(f"{'':42s} {'':>6s} {'ms/s':>9s} {'ms/s':>8s} {'ms/s':>8s} {'ms/s':>8s} {'':>6s}")
    for i, path in enumerate(clips(args.clips)):
        if i == 0:  # warm-up: tracker models
            for _ in iter_features(path, spec, tracker=tracker):
                pass
        start = time.perf_counter()
        n_steps = sum(c.n_steps for c in iter_features(path, spec, tracker=tracker))
        preprocess = time.perf_counter() - start
        seconds = n_steps * spec.step_seconds
        if not probe(path).has_audio or seconds == 0:
            continue
        start = time.perf_counter()
        audio = list(iter_audio(path, spec))
        decode = time.perf_counter() - start
        start = time.perf_counter()
        speaker_consistency(audio, hop_seconds=args.hop).steps(spec, 0, n_steps)
        embed = time.perf_counter() - start
        row = np.array([preprocess, decode, embed, decode + embed]) * 1000 / seconds
        rows.append(row * seconds)  # ms
        total_seconds.append(seconds)
        print(
            f"{path.name[:42]:42s} {seconds:6.1f} {row[0]:9.0f} {row[1]:8.1f} {row[2]:8.1f} "
            f"{row[3]:8.1f} {row[3] / row[0]:6.1%}"
        )
    if rows:
        times, seconds = np.sum(rows, axis=0), sum(total_seconds)
        row = times / seconds
        print(
            f"{'all clips':42s} {seconds:6.1f} {row[0]:9.0f} {row[1]:8.1f} {row[2]:8.1f} "
            f"{row[3]:8.1f} {row[3] / row[0]:6.1%}"
        )


if __name__ == "__main__":
    main()
