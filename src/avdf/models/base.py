"""The model interface shared by every registered variant.

Inputs (one window of T steps, batch B; sizes from :class:`avdf.timebase.MediaSpec`):
    audio      (B, T, mel_frames_per_step, n_mels) float32 log-mel
    face       (B, T, 3, face_size, face_size)     float32 in [0, 1]
    lips       (B, T, 3, mouth_size, mouth_size)   float32 in [0, 1]
    step_mask  (B, T) bool   True for real (unpadded) steps
    presence   (B, T, 3) bool  per-step availability of (audio, face, lips), in MODALITIES order

A model built for a subset of modalities ignores the tensors of the others (they may be
None). ``forward`` returns :class:`ModelOutput` in training and evaluation alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class ModelOutput:
    fake_logits: torch.Tensor  # (B, T) per-step logit "inside a fake segment"
    boundaries: torch.Tensor  # (B, T, 2) non-negative distances in steps to (start, end)
    audio_fake_logits: torch.Tensor  # (B, T) per-step logit "audio manipulated here"
    visual_fake_logits: torch.Tensor  # (B, T) per-step logit "video manipulated here"
    video_logit: torch.Tensor  # (B,) whole-window logit "this video is fake"
