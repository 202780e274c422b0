"""Cost of the expert streams next to the whole preprocessing, in the same run.

Per clip: the whole preprocessing without experts (decode + face tracking + log-mel, as
``avdf preprocess`` runs it, cache writing left out), then the speaker expert's extra pass
split into audio decode and GE2E embedding + consistency, and the motion expert's extra pass
(a video decode at 112 px and frame differences), all in ms per video-second, and each
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
    from avdf.preprocess.motion import frame_motion_of
    from avdf.preprocess.pipeline import default_tracker, iter_features
    from avdf.preprocess.speaker import load_encoder, speaker_consistency
    from avdf.timebase import MediaSpec

    torch.set_num_threads(1)
    spec = MediaSpec()
    tracker = default_tracker(spec)
    load_encoder()
    rows: list[np.ndarray] = []
    total_seconds: list[float] = []
    head = ("clip", "sec", "preproc", "decode", "embed", "speaker", "share", "motion", "share")
    units = ("", "", "ms/s", "ms/s", "ms/s", "ms/s", "", "ms/s", "")
    columns = "{:42s} {:>6s} {:>9s} {:>8s} {:>8s} {:>8s} {:>6s} {:>8s} {:>6s}"
    print(columns.format(*head))
    print(columns.format(*units))
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
        start = time.perf_counter()
        frame_motion_of(path, spec).steps(spec, 0, n_steps)
        motion = time.perf_counter() - start
        row = np.array([preprocess, decode, embed, decode + embed, motion]) * 1000 / seconds
        rows.append(row * seconds)  # ms
        total_seconds.append(seconds)
        print_row(path.name[:42], seconds, row)
    if rows:
        seconds = sum(total_seconds)
        print_row("all clips", seconds, np.sum(rows, axis=0) / seconds)


def print_row(name: str, seconds: float, row: np.ndarray) -> None:
    print(
        f"{name:42s} {seconds:6.1f} {row[0]:9.0f} {row[1]:8.1f} {row[2]:8.1f} "
        f"{row[3]:8.1f} {row[3] / row[0]:6.1%} {row[4]:8.1f} {row[4] / row[0]:6.1%}"
    )


if __name__ == "__main__":
    main()
