"""Preprocessing throughput over the shared clips, and peak memory on a long input.

Prints one row per clip: decode-only time (PyAV at the same max_side: the floor), full
preprocess time (decode + face tracking + log-mel + cache write), their ratio, the real-time
factor (time / video duration), video-seconds per second, and cache bytes per video-minute.
Then peak RSS of a fresh process preprocessing a long video made by looping a clip.

    python benchmarks/preprocess.py [--long-minutes 10] [--clips N]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media" / "talking"


def decode_only(path: Path, max_side: int) -> float:
    from avdf.io.decode import iter_audio, iter_video_frames
    from avdf.timebase import MediaSpec

    spec = MediaSpec()
    start = time.perf_counter()
    for _ in iter_video_frames(path, spec, max_side=max_side, chunk_frames=250):
        pass
    for _ in iter_audio(path, spec):
        pass
    return time.perf_counter() - start


def make_long_video(src: Path, dst: Path, minutes: float) -> Path:
    """Loop ``src``'s packets (no re-encode) into an mp4 of about ``minutes`` minutes."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        v_in, a_in = inp.streams.video[0], inp.streams.audio[0]
        v_out = out.add_stream_from_template(v_in)
        a_out = out.add_stream_from_template(a_in)
        packets = [p for p in inp.demux(v_in, a_in) if p.dts is not None and p.pts is not None]
        # Per stream, one loop lasts from its first dts to its last packet's end (stream units),
        # so dts keeps increasing across loops.
        span = {}
        for stream in (v_in, a_in):
            own = [p for p in packets if p.stream is stream]
            span[stream.index] = own[-1].dts + (own[-1].duration or 0) - own[0].dts
        length = float(span[v_in.index] * v_in.time_base)
        loops = int(minutes * 60 / length) + 1
        for k in range(loops):
            for p in packets:
                stream_in = p.stream
                shift = k * span[stream_in.index]
                p.pts, p.dts = p.pts + shift, p.dts + shift
                p.stream = v_out if stream_in is v_in else a_out
                out.mux(p)
                p.stream = stream_in
                p.pts, p.dts = p.pts - shift, p.dts - shift
    return dst


_RSS_CHILD = """
import sys, time
from avdf.preprocess.pipeline import cache_video
t = time.perf_counter()
r = cache_video(sys.argv[1], sys.argv[2], max_side=int(sys.argv[3]))
# VmHWM, not ru_maxrss: Linux carries the parent's ru_maxrss across fork + exec.
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]
print(r.n_steps, r.duration, time.perf_counter() - t, int(hwm) * 1024)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-side", type=int, default=640)
    parser.add_argument("--clips", type=int, default=None, help="only the first N clips")
    parser.add_argument("--long-minutes", type=float, default=10.0, help="0 skips the RSS run")
    args = parser.parse_args()

    from avdf.io.decode import probe
    from avdf.preprocess.face import FaceTracker
    from avdf.preprocess.pipeline import cache_video
    from avdf.timebase import MediaSpec

    spec = MediaSpec()
    tracker = FaceTracker(spec)
    clips = sorted(MEDIA.glob("*.mp4"))[: args.clips]
    header = f"{'clip':34} {'size':>9} {'dur s':>6} {'decode s':>8} {'full s':>7} {'ratio':>6} {'RTF':>6} {'vid-s/s':>7} {'MB/min':>7}"
    print(f"max_side={args.max_side}; face tracker mediapipe; 1 process\n{header}")
    totals = [0.0, 0.0, 0.0, 0]
    with tempfile.TemporaryDirectory() as tmp:
        for clip in clips:
            info = probe(clip)
            floor = decode_only(clip, args.max_side)
            out = Path(tmp) / f"{clip.stem}.npz"
            start = time.perf_counter()
            result = cache_video(
                clip, out, spec, tracker=tracker, max_side=args.max_side, force=True
            )
            full = time.perf_counter() - start
            per_min = out.stat().st_size / (result.duration / 60)
            totals = [
                totals[0] + result.duration,
                totals[1] + floor,
                totals[2] + full,
                totals[3] + out.stat().st_size,
            ]
            print(
                f"{clip.stem[:34]:34} {info.width}x{info.height:<5} {result.duration:6.2f} {floor:8.2f} "
                f"{full:7.2f} {full / floor:6.2f} {full / result.duration:6.3f} "
                f"{result.duration / full:7.1f} {per_min / 1e6:7.1f}"
            )
        dur, floor, full, size = totals
        if clips:
            print(
                f"{'TOTAL':34} {'':>9} {dur:6.1f} {floor:8.2f} {full:7.2f} {full / floor:6.2f} "
                f"{full / dur:6.3f} {dur / full:7.1f} {size / (dur / 60) / 1e6:7.1f}"
            )
        if args.long_minutes > 0:
            src = MEDIA / "talking-face_pc-avs_00104.mp4"
            long = make_long_video(src, Path(tmp) / "long.mp4", args.long_minutes)
            proc = subprocess.run(
                [sys.executable, "-c", _RSS_CHILD, str(long), str(Path(tmp) / "long.npz"), str(args.max_side)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            n_steps, duration, seconds, rss = proc.stdout.split()[-4:]
            print(
                f"long input ({src.name} looped, {float(duration) / 60:.1f} min, {n_steps} steps): "
                f"{float(seconds):.1f} s, RTF {float(seconds) / float(duration):.3f}, "
                f"peak RSS {int(rss) / 2**20:.0f} MiB (fresh process, VmHWM)"
            )
    print(
        f"this process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"
    )


if __name__ == "__main__":
    main()
