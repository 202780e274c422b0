"""Lip–audio synchrony learned inside the model (DESIGN §12.2), SyncNet-style.

Audio and mouth block outputs are projected, with five steps of temporal context, to a
shared embedding space. On steps known to be genuine, the loss
(:func:`avdf.training.losses.sync_contrastive_loss`) pulls each step's audio towards the
mouth of the same step and away from the mouth at other times of the same window (shifted
audio; other videos are no negatives: they teach voice-to-face identity, not timing). The
model then reads a *sync
profile* per step — cosine similarities of the audio against the mouth at a few offsets —
so a stretch whose mouth and audio stopped matching (re-timed lips, a replaced word, a
shifted track) stands out against the genuine rest of the video. Measured caution (issue
#10): generators are trained for sync, so this is for local inconsistencies inside a video.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Offsets (steps, audio against mouth) of the profile: at 25 steps/s up to ±0.32 s, dense
# near zero where genuine speech peaks and sparse further out where shifted tracks land.
PROFILE_OFFSETS = (-8, -4, -2, -1, 0, 1, 2, 4, 8)


def shifted(x: torch.Tensor, offset: int) -> torch.Tensor:
    """x (B, T, ...) moved so out[:, t] = x[:, t + offset], zero where that is outside."""
    if offset == 0:
        return x
    out = torch.zeros_like(x)
    if offset > 0:
        out[:, :-offset] = x[:, offset:]
    else:
        out[:, -offset:] = x[:, :offset]
    return out


class SyncEmbedding(nn.Module):
    """Audio and mouth block features -> unit embeddings and the per-step sync profile.

    forward(audio (B, T, D), lips (B, T, D), audio_valid (B, T), lips_valid (B, T)) ->
    (audio embedding (B, T, dim), mouth embedding (B, T, dim), profile (B, T, P)) with
    P = len(PROFILE_OFFSETS); embeddings are zero at invalid steps, and a profile entry is
    zero unless both of its steps are valid.
    """

    def __init__(self, in_dim: int, dim: int) -> None:
        super().__init__()
        self.audio = nn.Conv1d(in_dim, dim, 5, padding=2)
        self.lips = nn.Conv1d(in_dim, dim, 5, padding=2)
        self.profile_dim = len(PROFILE_OFFSETS)

    @staticmethod
    def _embed(conv: nn.Conv1d, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        z = conv(x.transpose(1, 2)).transpose(1, 2)  # (B, T, dim)
        return F.normalize(z, dim=-1) * valid.unsqueeze(-1).to(z.dtype)

    def forward(
        self,
        audio: torch.Tensor,
        lips: torch.Tensor,
        audio_valid: torch.Tensor,
        lips_valid: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        a = self._embed(self.audio, audio, audio_valid)
        m = self._embed(self.lips, lips, lips_valid)
        # Zero embeddings at invalid steps make those similarities zero.
        profile = torch.stack([(a * shifted(m, k)).sum(-1) for k in PROFILE_OFFSETS], dim=-1)
        return a, m, profile
