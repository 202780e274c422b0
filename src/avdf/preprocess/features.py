"""Per-step model inputs for a stretch of one video: the contract between preprocessing,
the cache, the data layer and detection.

Arrays are indexed by model step (see :mod:`avdf.timebase`); ``N`` is the number of steps.
A long video is produced and consumed as consecutive chunks of ``VideoFeatures`` so memory
does not grow with its length.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from avdf.timebase import MediaSpec

N_LANDMARKS = 468


@dataclass
class VideoFeatures:
    spec: MediaSpec
    first_step: int  # index of this chunk's first step within the whole video
    face: np.ndarray  # (N, face_size, face_size, 3) uint8 RGB, similarity-aligned face crop
    mouth: np.ndarray  # (N, mouth_size, mouth_size, 3) uint8 RGB, crop centred on the lips
    mel: np.ndarray  # (N, mel_frames_per_step, n_mels) float16 log-mel
    face_mask: np.ndarray  # (N,) bool: face (and so lips) available at this step
    audio_mask: np.ndarray  # (N,) bool: audio available at this step
    landmarks: (
        np.ndarray
    )  # (N, 468, 2) float16, face-mesh points in source-frame pixels (NaN if absent)
    # Expert streams by name (avdf.experts): (N, channels) float16, zero where absent.
    experts: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.face_mask)
        s = self.spec
        expected = {
            "face": ((n, s.face_size, s.face_size, 3), np.uint8),
            "mouth": ((n, s.mouth_size, s.mouth_size, 3), np.uint8),
            "mel": ((n, s.mel_frames_per_step, s.n_mels), np.float16),
            "face_mask": ((n,), np.bool_),
            "audio_mask": ((n,), np.bool_),
            "landmarks": ((n, N_LANDMARKS, 2), np.float16),
        }
        for name, (shape, dtype) in expected.items():
            value = getattr(self, name)
            if value.shape != shape or value.dtype != dtype:
                raise ValueError(
                    f"VideoFeatures.{name}: expected {shape} {np.dtype(dtype)}, "
                    f"got {value.shape} {value.dtype}"
                )
        for name, value in self.experts.items():
            if value.ndim != 2 or len(value) != n or value.dtype != np.float16:
                raise ValueError(
                    f"VideoFeatures.experts[{name!r}]: expected ({n}, channels) float16, "
                    f"got {value.shape} {value.dtype}"
                )

    @property
    def n_steps(self) -> int:
        return len(self.face_mask)

    def slice(self, start: int, stop: int) -> VideoFeatures:
        """Steps ``[start, stop)`` of this chunk (indices relative to the chunk)."""
        return VideoFeatures(
            self.spec,
            self.first_step + start,
            self.face[start:stop],
            self.mouth[start:stop],
            self.mel[start:stop],
            self.face_mask[start:stop],
            self.audio_mask[start:stop],
            self.landmarks[start:stop],
            {name: value[start:stop] for name, value in self.experts.items()},
        )

    @staticmethod
    def concat(chunks: Sequence[VideoFeatures]) -> VideoFeatures:
        if not chunks:
            raise ValueError("cannot concatenate zero chunks")
        for a, b in zip(chunks, chunks[1:], strict=False):
            if b.first_step != a.first_step + a.n_steps or b.spec != a.spec:
                raise ValueError("chunks are not consecutive steps of one video")
            if set(a.experts) != set(b.experts):
                raise ValueError("chunks carry different expert streams")
        return VideoFeatures(
            chunks[0].spec,
            chunks[0].first_step,
            *(
                np.concatenate([getattr(c, k) for c in chunks])
                for k in ("face", "mouth", "mel", "face_mask", "audio_mask", "landmarks")
            ),
            {name: np.concatenate([c.experts[name] for c in chunks]) for name in chunks[0].experts},
        )
