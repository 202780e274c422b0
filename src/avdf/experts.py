"""Expert streams: per-step features from pretrained parts, appended to the modality they
describe (DESIGN §12.2). This module only *describes* them (name, version, channels,
modality) so that the cache, the data layer and the models agree on sizes without importing
the code that computes them (:mod:`avdf.preprocess.speaker`, ...); it imports nothing heavy.

A stream is a ``(N, channels)`` float16 array per video, zero where its modality is absent;
its presence mask is that modality's (``audio_mask`` for audio experts, ``face_mask`` for
face experts).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class ExpertStream:
    name: str
    version: str  # recorded in caches: a cache made with another version is stale
    channels: tuple[str, ...]  # per-step values, in order
    modality: str  # "audio" or "face"

    @property
    def n_channels(self) -> int:
        return len(self.channels)

    @property
    def mask(self) -> str:
        """The features' presence mask the stream is zeroed outside of."""
        return "audio_mask" if self.modality == "audio" else "face_mask"


EXPERTS: dict[str, ExpertStream] = {
    "speaker": ExpertStream(
        name="speaker",
        version="ge2e-resemblyzer-0.1.4/v1",
        # cosine of the step's voice to the video's median voice, to the voice 1.6-2.4 s
        # before and after it, and whether the step's window holds speech (0..1)
        channels=("median", "before", "after", "speech"),
        modality="audio",
    ),
    "motion": ExpertStream(
        name="motion",
        version="luma-difference-112/v1",
        # log mean absolute luma difference of the whole picture to the previous and the
        # next frame, and the larger of the two relative to the video's median
        # (avdf.preprocess.motion): held frames and seams, which the face crops hide
        channels=("prev", "next", "still"),
        modality="face",
    ),
}


def expert_streams(names: Iterable[str]) -> list[ExpertStream]:
    """The descriptions of ``names``, in the order given; unknown names raise ValueError."""
    names = list(names)
    unknown = [n for n in names if n not in EXPERTS]
    if unknown or len(set(names)) != len(names):
        raise ValueError(f"experts must be distinct names from {sorted(EXPERTS)}, got {names}")
    return [EXPERTS[n] for n in names]
