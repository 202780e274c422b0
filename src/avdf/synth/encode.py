"""Write one finished clip as MP4 (H.264 video + AAC audio) with PyAV, atomically.

Every output of the corpus, real or fake, goes through here once with the same settings, so
codec statistics say nothing about the label.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from avdf.atomic import atomic_path
from avdf.timebase import MediaSpec


@dataclass(frozen=True)
class EncodeSettings:
    crf: int = 23  # x264 constant-rate factor (lower = better quality, larger files)
    preset: str = "veryfast"
    audio_bit_rate: int = 64_000  # bits per second, AAC mono
    audio_block: int = 1024  # samples per audio frame handed to the encoder


def write_mp4(
    path: str | Path,
    frames: np.ndarray,
    audio: np.ndarray,
    spec: MediaSpec,
    settings: EncodeSettings = EncodeSettings(),
) -> None:
    """Encode ``frames`` (N, H, W, 3) uint8 RGB at ``spec.fps`` and ``audio`` (S,) float32 mono
    at ``spec.sample_rate`` into ``path``. Written to a temporary name first and renamed, so a
    killed run never leaves a truncated file under the final name."""
    height, width = frames.shape[1:3]
    with atomic_path(path) as tmp:
        with av.open(str(tmp), "w", format="mp4") as container:
            video = container.add_stream("libx264", rate=spec.fps)
            video.width, video.height, video.pix_fmt = width, height, "yuv420p"
            # One thread and no macroblock tree: identical bytes for identical input. The x264
            # in PyAV 18.1's wheel gives different bytes run to run with mbtree on (measured:
            # 3 of 3 encodes of one input differed; with mbtree=0 all equal).
            video.options = {
                "crf": str(settings.crf),
                "preset": settings.preset,
                "threads": "1",
                "x264-params": "mbtree=0",
            }
            sound = container.add_stream("aac", rate=spec.sample_rate)
            sound.layout = "mono"
            sound.bit_rate = settings.audio_bit_rate
            for index, frame in enumerate(frames):
                picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
                picture.pts = index
                container.mux(video.encode(picture))
            container.mux(video.encode(None))
            samples = np.clip(audio, -1.0, 1.0).astype(np.float32)
            for start in range(0, len(samples), settings.audio_block):
                block = samples[start : start + settings.audio_block]
                chunk = av.AudioFrame.from_ndarray(block[None, :], format="flt", layout="mono")
                chunk.sample_rate, chunk.pts = spec.sample_rate, start
                container.mux(sound.encode(chunk))
            container.mux(sound.encode(None))
