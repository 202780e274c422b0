"""Where the tests' real media lives, and odd and broken files made from it with PyAV only.

Core tests read only files inside the repository: the package's bundled talking clips and
speech (``src/avdf/assets/synth_media``) and a few more clips kept for the tests
(``tests/media``); both folders list origin and licence of each file in ``SOURCES.tsv``.
``../shared/media``, when it sits next to the checkout, only adds clips to the tests that run
over every clip they can find.

Every file-making function writes into a folder the caller owns (a pytest ``tmp_path``) and
returns the path. Clips are kept short so the whole set encodes in a few seconds on two cores.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

REPO = Path(__file__).resolve().parents[1]
BUNDLED_MEDIA = REPO / "src" / "avdf" / "assets" / "synth_media"
TEST_MEDIA = REPO / "tests" / "media"
MEDIA_ROOTS = (BUNDLED_MEDIA, TEST_MEDIA)
SHARED_MEDIA = REPO.parent / "shared" / "media"  # optional: extra clips when present


def media_file(kind: str, name: str) -> Path:
    """``talking/<name>`` or ``speech/<name>`` from the repository's own media folders."""
    for root in MEDIA_ROOTS:
        if (root / kind / name).is_file():
            return root / kind / name
    raise FileNotFoundError(f"{kind}/{name} is in none of {[str(r) for r in MEDIA_ROOTS]}")


def talking(name: str) -> Path:
    return media_file("talking", name)


def speech(name: str) -> Path:
    return media_file("speech", name)


# A 224x224 25 fps H.264 clip with 16 kHz AAC (6.96 s): small and fast to re-encode.
SOURCE = talking("talking-face_pc-avs_00015.mp4")


def talking_clips() -> list[Path]:
    """Every talking clip in the repository, then those only ``../shared`` has (if present)."""
    by_name: dict[str, Path] = {}
    for root in (*MEDIA_ROOTS, SHARED_MEDIA):  # the first folder holding a name wins
        for path in sorted(root.glob("talking/*.mp4")):
            by_name.setdefault(path.name, path)
    return list(by_name.values())


def shared_talking(name: str) -> list[Path]:
    """``[path]`` of a clip only ``../shared`` has, or ``[]`` without it: for parametrizing
    extended tests, which then are not collected (rather than skipped) in a plain clone."""
    path = SHARED_MEDIA / "talking" / name
    return [path] if path.is_file() else []


def source_frames(src: Path = SOURCE, seconds: float | None = None) -> tuple[np.ndarray, float]:
    """(N, H, W, 3) uint8 RGB frames of ``src`` at its native rate, and that rate (fps)."""
    with av.open(str(src)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate)
        frames = []
        for frame in container.decode(stream):
            if seconds is not None and frame.time >= seconds:
                break
            frames.append(frame.to_ndarray(format="rgb24"))
    return np.stack(frames), fps


def source_audio(src: Path = SOURCE, seconds: float | None = None) -> tuple[np.ndarray, int]:
    """(S,) float32 mono samples of ``src``'s audio at its own rate."""
    with av.open(str(src)) as container:
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        chunks = [
            out.to_ndarray().reshape(-1)
            for frame in container.decode(stream)
            for out in resampler.resample(frame)
        ]
    samples = np.concatenate(chunks).astype(np.float32)
    return (samples if seconds is None else samples[: int(seconds * rate)]), rate


def write_video(
    dst: Path,
    frames: np.ndarray | None,
    times: list[float] | None = None,
    fps: int = 25,
    audio: tuple[np.ndarray, int] | None = None,
    audio_start: float = 0.0,
    rotation: int = 0,
    faststart: bool = False,
    codec: str = "libx264",
) -> Path:
    """Encode RGB ``frames`` (N, H, W, 3) shown at ``times`` seconds (default i / fps), with
    optional mono ``audio`` (samples, rate) starting at ``audio_start`` seconds."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(dst), "w", options=options) as container:
        if frames is not None:
            vstream = container.add_stream(codec, rate=fps)
            vstream.width, vstream.height = frames.shape[2], frames.shape[1]
            vstream.pix_fmt = "yuv420p"
            vstream.time_base = Fraction(1, 1000 if times is not None else fps)
            if times is not None:  # millisecond timestamps reach the encoder unrounded
                vstream.codec_context.time_base = Fraction(1, 1000)
            vstream.options = {"preset": "ultrafast", "crf": "14"} if codec == "libx264" else {}
            if rotation:
                vstream.set_display_rotation(rotation)
        if audio is not None:
            samples, rate = audio
            astream = container.add_stream("aac", rate=rate)
            astream.layout = "mono"
            astream.time_base = Fraction(1, rate)
        if frames is not None:
            for i, image in enumerate(frames):
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
                if times is not None:
                    frame.pts, frame.time_base = int(round(times[i] * 1000)), Fraction(1, 1000)
                else:
                    frame.pts, frame.time_base = i, Fraction(1, fps)
                container.mux(vstream.encode(frame))
            container.mux(vstream.encode(None))
        if audio is not None:
            resampler = av.AudioResampler(format="fltp", layout="mono", rate=rate)
            first = int(round(audio_start * rate))
            for offset in range(0, len(samples), 1024):
                block = samples[None, offset : offset + 1024].astype(np.float32)
                frame = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(block), format="flt", layout="mono"
                )
                frame.sample_rate = rate
                frame.pts = first + offset
                frame.time_base = Fraction(1, rate)
                for out in resampler.resample(frame):
                    container.mux(astream.encode(out))
            container.mux(astream.encode(None))
    return dst


def resample(frames: np.ndarray, src_fps: float, times: list[float]) -> np.ndarray:
    """The frames shown at ``times`` (seconds) by a source of ``src_fps``."""
    index = np.minimum((np.asarray(times) * src_fps + 1e-6).astype(int), len(frames) - 1)
    return frames[index]


# --- the odd files ---------------------------------------------------------------------------


def reencode(dst: Path, fps: int = 25, seconds: float = 3.0, **kwargs: object) -> Path:
    """The source clip re-encoded at ``fps`` (frames duplicated/dropped), with its audio."""
    frames, src_fps = source_frames(seconds=seconds)
    n = int(round(seconds * fps))
    times = [i / fps for i in range(n)]
    return write_video(
        dst,
        resample(frames, src_fps, times),
        fps=fps,
        audio=source_audio(seconds=seconds),
        **kwargs,
    )


def variable_frame_rate(dst: Path, seconds: float = 3.0) -> Path:
    """Frame intervals alternating 20 / 33 / 67 ms (a phone-style VFR file), millisecond pts."""
    frames, src_fps = source_frames(seconds=seconds)
    times, t, pattern = [], 0.0, (0.020, 0.033, 0.067)
    while t < seconds - 0.02:
        times.append(round(t, 3))
        t += pattern[len(times) % 3]
    return write_video(
        dst,
        resample(frames, src_fps, times),
        times=times,
        fps=30,
        audio=source_audio(seconds=seconds),
    )


def rotated(dst: Path, rotation: int = 90, seconds: float = 2.0) -> Path:
    """Frames stored turned clockwise by ``rotation`` degrees, with display-matrix metadata
    saying to turn them back counter-clockwise (a phone video): displayed upright."""
    frames, _ = source_frames(seconds=seconds)
    stored = np.rot90(frames, k=-(rotation // 90), axes=(1, 2))
    return write_video(dst, stored, rotation=rotation, audio=source_audio(seconds=seconds))


def upscaled_4k(dst: Path, seconds: float = 0.4) -> Path:
    """A 3840x2160 clip (the face upscaled and centred on a grey canvas)."""
    frames, _ = source_frames(seconds=seconds)
    big = frames.repeat(8, axis=1).repeat(8, axis=2)  # (N, 1792, 1792, 3)
    canvas = np.full((len(frames), 2160, 3840, 3), 128, np.uint8)
    y0, x0 = (2160 - big.shape[1]) // 2, (3840 - big.shape[2]) // 2
    canvas[:, y0 : y0 + big.shape[1], x0 : x0 + big.shape[2]] = big
    return write_video(dst, canvas, audio=source_audio(seconds=seconds))


def short_clip(dst: Path, seconds: float = 0.5) -> Path:
    return reencode(dst, fps=25, seconds=seconds)


def video_only(dst: Path, seconds: float = 2.0) -> Path:
    frames, _ = source_frames(seconds=seconds)
    return write_video(dst, frames)


def audio_only(dst: Path, seconds: float = 2.0) -> Path:
    return write_video(dst, None, audio=source_audio(seconds=seconds))


def late_audio(dst: Path, offset: float = 0.5, seconds: float = 3.0) -> Path:
    """Audio stream starting ``offset`` seconds after the video (its first samples missing)."""
    frames, _ = source_frames(seconds=seconds)
    samples, rate = source_audio(seconds=seconds)
    return write_video(dst, frames, audio=(samples[int(offset * rate) :], rate), audio_start=offset)


def no_face(dst: Path, seconds: float = 2.0, seed: int = 0) -> Path:
    """A blurred-noise 'wall' with speech audio: nothing a face detector should find."""
    rng = np.random.default_rng(seed)
    n = int(seconds * 25)
    coarse = rng.integers(90, 170, size=(n, 14, 14, 3), dtype=np.uint8)
    frames = coarse.repeat(16, axis=1).repeat(16, axis=2)  # (n, 224, 224, 3) blocky wall
    return write_video(dst, frames, audio=source_audio(seconds=seconds))


def zero_bytes(dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(b"")
    return dst


def text_as_mp4(dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text("this is a text file, not a video\n" * 20)
    return dst


def truncated(dst: Path, keep: float = 0.5, faststart: bool = True, seconds: float = 4.0) -> Path:
    """The first ``keep`` fraction of a clip's bytes. With ``faststart`` the index is at the
    front, so the part that is there still decodes; without, the index is lost."""
    full = reencode(dst.with_name(dst.stem + "-full.mp4"), seconds=seconds, faststart=faststart)
    data = full.read_bytes()
    dst.write_bytes(data[: int(len(data) * keep)])
    full.unlink()
    return dst
