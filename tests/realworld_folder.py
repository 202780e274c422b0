"""A tiny labelled folder in the realworld layout (``labels.tsv``), cut from the bundled
talking-face clips: three fakes of three generator families and two reals, one of them
silent. Shared by the real-world script tests and ``avdf tune --probe``'s."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import media_fixtures as fx

# (file, label, kind, generator, has_audio, source clip)
CLIPS = [
    ("a.mp4", "fake", "talking-head", "FLOAT", "yes", "talking-face_pc-avs_00067.mp4"),
    ("b.mp4", "fake", "lip-sync", "Wav2Lip", "yes", "talking-face_pc-avs_00473.mp4"),
    ("c.mp4", "fake", "talking-head", "Loopy", "yes", "talking-face_pc-avs_00015.mp4"),
    ("d.mp4", "real", "real", "none", "no", "talking-face_pc-avs_517600055.mp4"),
    ("e.mp4", "real", "real", "none", "yes", "talking-face_pc-avs_00104.mp4"),
]


def cut(source: Path, out: Path, seconds: float, audio: bool) -> None:
    """The first ``seconds`` of ``source`` at 25 fps, 160 px high (with its audio or none)."""
    with av.open(str(source)) as src, av.open(str(out), "w") as dst:
        video = dst.add_stream("libx264", rate=25)
        video.width = video.height = 160
        video.pix_fmt = "yuv420p"
        sound = dst.add_stream("aac", rate=16000) if audio else None  # streams before muxing
        if sound is not None:
            sound.layout = "mono"
        for i, frame in enumerate(src.decode(src.streams.video[0])):
            if i >= seconds * 25:
                break
            small = frame.reformat(width=160, height=160, format="yuv420p")
            small.pts, small.time_base = i, Fraction(1, 25)
            dst.mux(video.encode(small))
        dst.mux(video.encode())
        if sound is None:
            return
        src.seek(0)
        resampler = av.AudioResampler(format="fltp", layout="mono", rate=16000)
        for frame in src.decode(src.streams.audio[0]):
            if frame.time is not None and frame.time >= seconds:
                break
            for piece in resampler.resample(frame):
                dst.mux(sound.encode(piece))
        dst.mux(sound.encode())


def make_realworld_folder(root: Path) -> Path:
    """Write the clips of :data:`CLIPS` (1.2 s each) and their ``labels.tsv`` under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    lines = ["file\tlabel\tkind\tgenerator\thas_audio"]
    for file, label, kind, generator, audio, source in CLIPS:
        cut(fx.talking(source), root / file, 1.2, audio == "yes")
        lines.append("\t".join((file, label, kind, generator, audio)))
    (root / "labels.tsv").write_text("\n".join(lines) + "\n")
    return root
