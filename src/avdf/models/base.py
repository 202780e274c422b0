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

from avdf.models.heads import LevelOutput, levels_per_step


@dataclass
class ModelOutput:
    fake_logits: torch.Tensor  # (B, T) per-step logit "inside a fake segment"
    levels: tuple[LevelOutput, ...]  # localization levels (see avdf.models.heads)
    start_logits: torch.Tensor | None  # (B, T) boundary logits, None for the paper's head
    end_logits: torch.Tensor | None  # (B, T)
    audio_fake_logits: torch.Tensor  # (B, T) per-step logit "audio manipulated here"
    visual_fake_logits: torch.Tensor  # (B, T) per-step logit "video manipulated here"
    video_logit: torch.Tensor  # (B,) whole-window logit "this video is fake"
    # (B, T, 3) modalities the model actually used per step (after modality dropout), in
    # MODALITIES order; the losses ignore labels of a modality it could not see.
    presence_used: torch.Tensor
    # Unit lip–audio sync embeddings (B, T, dim), zero where that modality was not used;
    # None when the model has no sync stream (avdf.models.sync).
    sync_audio: torch.Tensor | None = None
    sync_lips: torch.Tensor | None = None
    # (B, 2 * sum of block dims) per window: each modality block's output (before context
    # and fusion) summarised by its mean and sd over the steps where the modality was used,
    # modalities in model order; zero for a modality unused in the whole window, which
    # ``block_summary_used`` (same shape, bool) marks False. What a video probe reads
    # (avdf.inference.probe); None for models that do not provide it.
    block_summary: torch.Tensor | None = None
    block_summary_used: torch.Tensor | None = None

    def level_steps(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Level logits (B, T, L) and distances (B, T, L, 2) on the step grid."""
        return levels_per_step(self.levels, self.fake_logits.shape[1])
