"""Training throughput on this CPU: steps/s and samples/s of full training steps (forward,
the four head losses, backward, gradient clipping, AdamW) for the batch size and window
length of a training config, the data rate of the window dataset (cache read + targets +
collate; from the cache file and with ``data.in_memory``), and the peak resident memory.

Inputs are real: one real talking-face clip through the real preprocessing into a
temporary cache; the batch is made of windows of it.

    python benchmarks/train.py [--config configs/synth_mmms_ba.yaml] [--steps 10]
        [--models mmms_ba,none,mmus_sa,ms_sa] [--threads N] [--first-wave]

``--first-wave`` adds, per model, a row built with the first wave's parts (per-frame face
block, no temporal contrast or sync stream, unscaled attention over the whole window).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from pathlib import Path

import torch

from avdf.data.dataset import WindowDataset, collate
from avdf.models.mmms_ba import PAPER_FORM
from avdf.native_logs import native_stderr_silenced
from avdf.preprocess.cache import cache_path_for
from avdf.preprocess.pipeline import cache_video
from avdf.training.config import load_config
from avdf.training.losses import detection_losses
from avdf.training.module import AVDFModule
from avdf.types import Sample, Segment

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT.parent / "shared" / "media" / "talking" / "talking-face_pc-avs_00098.mp4"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "synth_mmms_ba.yaml"))
    parser.add_argument("--steps", type=int, default=10, help="timed steps (after 2 warm-up)")
    parser.add_argument("--models", help="comma-separated model names (default: the config's)")
    parser.add_argument(
        "--first-wave", action="store_true", help="also time each model with the first parts"
    )
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--clip", default=str(CLIP))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    config = load_config(args.config)
    spec, d = config.media, config.data
    b, t = d.batch_size, d.window_steps

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        with native_stderr_silenced():  # MediaPipe's log lines would split the table
            result = cache_video(args.clip, cache_path_for(tmp, "clip"), spec)
        prep = time.perf_counter() - t0
        sample = Sample(
            "clip", "bench", "train", args.clip, result.duration, 1, (Segment(1.0, 2.0),)
        )
        data_rates = {}
        for in_memory in (False, True):
            dataset = WindowDataset(
                [sample], tmp, spec, t, windows_per_video=b, in_memory=in_memory
            )
            dataset[0]  # an in-memory dataset reads the video whole on its first access
            t0 = time.perf_counter()
            batches = [collate([dataset[i] for i in range(len(dataset))], t) for _ in range(3)]
            data_rates[in_memory] = 3 * b / (time.perf_counter() - t0)
        batch = batches[0]

        rows = []
        runs = []
        for name in (args.models or config.model.name).split(","):
            kwargs = dict(config.model.kwargs) if name == config.model.name else {}
            if args.first_wave:
                runs.append((f"{name}/first", {**kwargs, "face_block": "face_cnn", **PAPER_FORM}))
            runs.append((name, kwargs))
        for label, kwargs in runs:
            torch.manual_seed(0)
            name = label.split("/")[0]
            module = AVDFModule(name, kwargs, spec.to_dict())
            module.train()
            params = sum(p.numel() for p in module.parameters())
            optimizer = torch.optim.AdamW(module.parameters(), lr=config.optim.lr)
            times = []
            for step in range(args.steps + 2):
                t0 = time.perf_counter()
                optimizer.zero_grad(set_to_none=True)
                loss = detection_losses(module(batch), batch, module.loss_weights)["loss"]
                loss.backward()
                torch.nn.utils.clip_grad_norm_(
                    module.parameters(), config.trainer.gradient_clip_val
                )
                optimizer.step()
                if step >= 2:  # first steps pay for allocations and kernel selection
                    times.append(time.perf_counter() - t0)
            median = statistics.median(times)
            rows.append((label, params, median, 1 / median, b / median))

    print(
        f"config {Path(args.config).name}: B={b} T={t} steps ({t * spec.step_seconds:.2f} s), "
        f"torch threads {torch.get_num_threads()}"
    )
    print(
        f"preprocessing of the {result.duration:.1f} s clip: {prep:.1f} s; "
        "window data (cache read + targets + collate): "
        f"{data_rates[False]:.1f} samples/s from the cache file, "
        f"{data_rates[True]:.1f} with data.in_memory"
    )
    print(f"{'model':<20}{'params':>10}{'step s':>9}{'steps/s':>9}{'samples/s':>11}")
    for name, params, median, sps, samples in rows:
        print(f"{name:<20}{params:>10,}{median:>9.3f}{sps:>9.2f}{samples:>11.1f}")
    print(f"peak RSS: {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
