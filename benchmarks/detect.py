"""Benchmark ``avdf detect`` on this machine and print a table (DESIGN §8).

Measures, in one run:
  * real-time factor (processing seconds / video seconds) of Detector.detect at 360p and
    1080p, and its ratio to PyAV decoding alone of the same file (the floor), in wall and
    in CPU time (the CPU ratio moves less when other processes share the cores);
  * model-only forward time per minute of video (windows with half-window overlap);
  * proposal decoding of the 360p clip's steps with the decoder's own score and with a
    proposal rescorer (``avdf tune``), and the rescorer's share of detect time;
  * start-up time: a fresh interpreter importing avdf and loading the checkpoint, and the
    same up to the first tracked frame (the face model loaded and run once);
  * peak RSS of a fresh process detecting a 1-minute and a 10-minute video (memory
    should not grow with length).

Test clips are made here with PyAV from the shared talking-face clips (looped, scaled and
letterboxed to 16:9, re-encoded H.264 + AAC). Without --checkpoint the bundled demo model
is used, or else an untrained default-size ``mmms_ba`` (timings do not depend on weights).

    python benchmarks/detect.py                 # full run (~10 minutes on 2 cores)
    python benchmarks/detect.py --long-minutes 2 --quick
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media" / "talking"
SOURCE = MEDIA / "video-retalking_1.mp4"  # 700x700, 6.1 s, with speech
NATIVE_1080 = MEDIA / "latentsync_demo2_video.mp4"  # 1080x1920 HEVC, as shot


def make_clip(src: Path, dst: Path, seconds: float, width: int, height: int, fps: int = 25) -> Path:
    """Loop ``src`` for ``seconds``, scaled to fit ``height`` and letterboxed to width x height."""
    if dst.exists():
        return dst
    with av.open(str(src)) as probe:
        rate = probe.streams.audio[0].rate
    tmp = dst.with_suffix(".part.mp4")
    with av.open(str(tmp), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"preset": "veryfast", "crf": "23"}
        audio = out.add_stream("aac", rate=rate)
        audio.layout = "mono"
        resampler = av.AudioResampler(format="fltp", layout="mono", rate=rate)
        fifo = av.AudioFifo()
        n_frames, n_samples = int(seconds * fps), int(seconds * rate)
        frame_index = sample_index = 0
        while frame_index < n_frames or sample_index < n_samples:
            with av.open(str(src)) as source:
                for frame in source.decode(video=0, audio=0):
                    if isinstance(frame, av.VideoFrame) and frame_index < n_frames:
                        side = height  # square sources: scale to the frame height
                        rgb = frame.reformat(width=side, height=side, format="rgb24").to_ndarray()
                        canvas = np.zeros((height, width, 3), np.uint8)
                        left = (width - side) // 2
                        canvas[:, left : left + side] = rgb
                        new = av.VideoFrame.from_ndarray(canvas, format="rgb24")
                        new.pts, new.time_base = frame_index, Fraction(1, fps)
                        out.mux(video.encode(new))
                        frame_index += 1
                    elif isinstance(frame, av.AudioFrame) and sample_index < n_samples:
                        frame.pts = None
                        for piece in resampler.resample(frame):
                            fifo.write(piece)
                        while fifo.samples >= 1024 and sample_index < n_samples:
                            chunk = fifo.read(1024)
                            chunk.pts, chunk.time_base = sample_index, Fraction(1, rate)
                            out.mux(audio.encode(chunk))
                            sample_index += 1024
        out.mux(video.encode(None))
        out.mux(audio.encode(None))
    os.replace(tmp, dst)
    return dst


def decode_only_seconds(path: Path, repeats: int = 3) -> tuple[float, float]:
    """(wall, CPU) seconds to decode every video and audio frame with PyAV (no conversion),
    best of ``repeats`` (the floor: other load only ever adds)."""
    best = (float("inf"), float("inf"))
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        with av.open(str(path)) as container:
            streams = [*container.streams.video[:1], *container.streams.audio[:1]]
            for _ in container.decode(*streams):
                pass
        best = min(best, (time.perf_counter() - start, time.process_time() - cpu))
    return best


def model_seconds_per_minute(detector, repeats: int = 1) -> tuple[float, float]:
    """(wall, CPU) seconds of the forwards covering one minute of video (random inputs)."""
    import torch

    spec, window = detector.spec, detector.window_steps
    n_windows = int(np.ceil((spec.steps_in(60.0) - window) / detector.hop_steps)) + 1
    b = detector.batch_size
    inputs = {
        "audio": torch.randn(b, window, spec.mel_frames_per_step, spec.n_mels),
        "face": torch.rand(b, window, 3, spec.face_size, spec.face_size),
        "lips": torch.rand(b, window, 3, spec.mouth_size, spec.mouth_size),
        "step_mask": torch.ones(b, window, dtype=torch.bool),
        "presence": torch.ones(b, window, 3, dtype=torch.bool),
    }
    with torch.inference_mode():
        detector.model(**inputs)  # warm-up
        start, cpu = time.perf_counter(), time.process_time()
        for _ in range(repeats):
            for _ in range(int(np.ceil(n_windows / b))):
                detector.model(**inputs)
    return (time.perf_counter() - start) / repeats, (time.process_time() - cpu) / repeats


def detector_time(detector, clip: Path) -> float:
    start = time.perf_counter()
    detector.detect(clip)
    return time.perf_counter() - start


def decoding_seconds(detector, steps, rescorer, repeats: int = 20) -> float:
    """Best-of wall seconds of Detector.predict (proposal decoding, calibration) on one
    video's stitched steps, with ``rescorer`` (None: the decoder's own score)."""
    import copy

    tuner = copy.copy(detector)
    tuner.rescorer = rescorer
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        tuner.predict(steps, "bench")
        best = min(best, time.perf_counter() - start)
    return best


def random_rescorer(n_levels: int, seed: int = 0):
    """A rescorer of the right width with random weights (the cost does not depend on them)."""
    from avdf.inference.decode import RESCORER_FEATURES, ProposalRescorer

    width = len(RESCORER_FEATURES) + n_levels
    w = np.random.default_rng(seed).normal(size=width)
    return ProposalRescorer((0.0,) * width, (1.0,) * width, tuple(w), 0.0, 0.5, n_levels)


def _child(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip().splitlines()[-1])
    return out.stdout.strip().splitlines()[-1]


def startup_seconds(checkpoint: Path, face_model: bool = False) -> tuple[float, float]:
    """(wall, CPU) seconds for a fresh interpreter to import avdf detect and load the
    checkpoint (interpreter start included), best of two. ``face_model`` adds what happens
    before the first chunk is tracked: building the default tracker's face model and running
    it on one frame."""
    code = (
        "import avdf.cli.detect; from avdf.inference.detector import Detector;"
        f"d = Detector.from_checkpoint({str(checkpoint)!r})"
    )
    if face_model:
        code += (
            "\nimport numpy as np; from avdf.preprocess.pipeline import default_tracker;"
            "default_tracker(d.spec).process(np.zeros((1, 360, 640, 3), np.uint8))"
        )
    best = (float("inf"), float("inf"))
    for _ in range(2):
        before = os.times()
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
        after = os.times()
        cpu = (after.children_user + after.children_system) - (
            before.children_user + before.children_system
        )
        best = min(best, (after.elapsed - before.elapsed, cpu))
    return best


def peak_rss_mb(checkpoint: Path, video: Path) -> tuple[float, float]:
    """(peak RSS in MiB, wall seconds) of a fresh process detecting ``video``."""
    code = (
        "import resource, time; from avdf.inference.detector import Detector;"
        f"d = Detector.from_checkpoint({str(checkpoint)!r}); t = time.perf_counter();"
        f"d.detect({str(video)!r}); w = time.perf_counter() - t;"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, w)"
    )
    rss, wall = _child(code).split()
    return float(rss), float(wall)


class _Rows:
    """Prints each table row as soon as it is measured (a long run shows progress)."""

    def append(self, row: tuple[str, str]) -> None:
        print(f"| {row[0]:40} | {row[1]} |", flush=True)


def resolve_checkpoint(path: Path | None, work: Path) -> tuple[Path, str]:
    if path is not None:
        return path, str(path)
    from avdf.errors import InputError
    from avdf.inference.detector import bundled_checkpoint_path

    try:
        return bundled_checkpoint_path(), "bundled demo"
    except InputError:
        from avdf.models import create_model, save_checkpoint
        from avdf.timebase import MediaSpec

        spec = MediaSpec()
        target = work / "untrained_mmms_ba.ckpt"
        save_checkpoint(target, create_model("mmms_ba", spec=spec), spec)
        return target, "untrained mmms_ba (default sizes)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--work", type=Path, help="folder for generated clips (kept)")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the RTF clips")
    parser.add_argument("--long-minutes", type=float, default=10.0)
    parser.add_argument("--quick", action="store_true", help="skip the 1080p and RSS rows")
    parser.add_argument("--repeats", type=int, default=2, help="detect runs per clip (best of)")
    parser.add_argument(
        "--threads", type=int, help="torch intra-op threads (Detector num_threads; default torch's)"
    )
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="avdf-bench-"))
    work.mkdir(parents=True, exist_ok=True)

    from avdf.inference.detector import Detector

    checkpoint, checkpoint_name = resolve_checkpoint(args.checkpoint, work)
    detector = Detector.from_checkpoint(checkpoint, num_threads=args.threads)
    import torch

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}, torch threads {torch.get_num_threads()}; "
        f"checkpoint: {checkpoint_name}"
    )
    print(f"| {'measure':40} | value |")
    print(f"|{'-' * 42}|-------|", flush=True)
    rows = _Rows()

    clips = {
        "360p (640x360, H.264)": make_clip(
            SOURCE, work / f"c360_{args.seconds:g}s.mp4", args.seconds, 640, 360
        )
    }
    if not args.quick:
        clips["1080p (1920x1080, H.264)"] = make_clip(
            SOURCE, work / f"c1080_{args.seconds:g}s.mp4", args.seconds, 1920, 1080
        )
        clips["1080x1920 HEVC (shared clip)"] = NATIVE_1080
    detector.detect(make_clip(SOURCE, work / "warm.mp4", 2.0, 640, 360))  # loads face models
    for name, clip in clips.items():
        decode, decode_cpu = decode_only_seconds(clip)
        wall = cpu = float("inf")
        for _ in range(args.repeats):  # best of: other people's load only ever adds
            start, cpu_start = time.perf_counter(), time.process_time()
            prediction = detector.detect(clip)
            wall = min(wall, time.perf_counter() - start)
            cpu = min(cpu, time.process_time() - cpu_start)
        rtf, floor = wall / prediction.duration, decode / prediction.duration
        rows.append(
            (
                f"detect RTF, {name}",
                f"{rtf:.3f} (decode-only {floor:.3f}, x{rtf / floor:.1f}; "
                f"CPU s per video s {cpu / prediction.duration:.3f}, "
                f"x{cpu / decode_cpu:.1f} decode-only CPU)",
            )
        )

    clip360 = clips["360p (640x360, H.264)"]
    steps = detector.detect_steps(clip360)
    detect_wall = min(detector_time(detector, clip360) for _ in range(args.repeats))
    plain = decoding_seconds(detector, steps, None)
    rescored = decoding_seconds(detector, steps, random_rescorer(detector.n_levels))
    rows.append(
        (
            "proposal decoding, 360p clip",
            f"{1e3 * plain:.1f} ms decoder score alone, {1e3 * rescored:.1f} ms with a proposal "
            f"rescorer (+{100 * (rescored - plain) / detect_wall:.2f}% of detect's "
            f"{detect_wall:.2f} s)",
        )
    )
    per_minute, per_minute_cpu = model_seconds_per_minute(detector)
    rows.append(
        (
            "model forward per video-minute",
            f"{per_minute:.2f} s (CPU {per_minute_cpu:.2f} s; window {detector.window_steps}, "
            f"hop {detector.hop_steps}, batch {detector.batch_size})",
        )
    )
    startup, startup_cpu = startup_seconds(checkpoint)
    rows.append(("start-up (import + model load)", f"{startup:.2f} s (CPU {startup_cpu:.2f} s)"))
    startup, startup_cpu = startup_seconds(checkpoint, face_model=True)
    rows.append(
        ("start-up + face model, first frame tracked", f"{startup:.2f} s (CPU {startup_cpu:.2f} s)")
    )
    if not args.quick:
        for minutes in (1.0, args.long_minutes):
            clip = make_clip(SOURCE, work / f"long{minutes:g}.mp4", 60 * minutes, 640, 360)
            rss, wall = peak_rss_mb(checkpoint, clip)
            rows.append(
                (
                    f"peak RSS, {minutes:g} min 360p video",
                    f"{rss:.0f} MiB (RTF {wall / (60 * minutes):.3f})",
                )
            )


if __name__ == "__main__":
    main()
