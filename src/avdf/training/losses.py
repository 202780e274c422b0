"""Losses of the four heads (DESIGN §4.5), each written out here with its formula.

All per-step losses take a boolean ``valid`` mask ``(B, T)`` so padded steps (and steps
whose labels are unknown) never contribute.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from avdf.models.base import ModelOutput

EPS = 1e-8


def sigmoid_focal_loss(
    logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0
) -> torch.Tensor:
    """Element-wise focal loss (Lin et al. 2017), no reduction.

    ``p_t = p if y == 1 else 1 - p``; ``loss = -alpha_t (1 - p_t)^gamma log(p_t)`` with
    ``alpha_t = alpha y + (1 - alpha)(1 - y)``. ``alpha < 0`` disables the class weighting;
    ``gamma = 0`` and ``alpha < 0`` give plain binary cross-entropy.
    """
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1.0 - p) * (1.0 - targets)
    loss = ce * (1.0 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1.0 - alpha) * (1.0 - targets)) * loss
    return loss


def diou_loss_1d(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1-D distance-IoU loss between segments given as distances from a shared anchor.

    ``pred``, ``target``: (N, 2) non-negative (d_start, d_end) in steps, so a segment is
    ``[anchor - d_start, anchor + d_end]``. Returns (N,)
    ``1 - IoU + (centre distance)^2 / (enclosing length)^2``.
    """
    p_start, p_end = pred[:, 0], pred[:, 1]
    t_start, t_end = target[:, 0], target[:, 1]
    # Both segments contain the anchor, so the overlap is the sum of the shorter arms.
    inter = torch.minimum(p_start, t_start) + torch.minimum(p_end, t_end)
    union = (p_start + p_end) + (t_start + t_end) - inter
    iou = inter / union.clamp_min(EPS)
    enclosing = torch.maximum(p_start, t_start) + torch.maximum(p_end, t_end)
    # Centres relative to the anchor: (d_end - d_start) / 2.
    centre_distance = 0.5 * ((p_end - p_start) - (t_end - t_start))
    return 1.0 - iou + centre_distance**2 / enclosing.clamp_min(EPS) ** 2


def masked_bce(logits: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy over the ``valid`` entries (0 when there are none)."""
    loss = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    return (loss * valid).sum() / valid.sum().clamp_min(1)


@dataclass(frozen=True)
class LossWeights:
    classification: float = 1.0
    regression: float = 1.0
    modality: float = 0.5
    video: float = 0.5
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0


def detection_losses(
    out: ModelOutput, batch: Mapping[str, torch.Tensor], weights: LossWeights
) -> dict[str, torch.Tensor]:
    """All head losses for one batch and their weighted sum under ``"loss"``.

    ``batch`` holds the targets from :func:`avdf.data.dataset.collate`: ``step_mask`` (B, T)
    bool, ``fake`` (B, T), ``boundaries`` (B, T, 2), ``audio_fake`` / ``visual_fake`` (B, T),
    ``modality_known`` (B,) bool, ``video_target`` (B,), ``video_known`` (B,) bool.

    The focal loss is summed and divided by the number of positive steps (at least 1), the
    RetinaNet / ActionFormer normaliser, so the easy negatives of long real stretches do not
    drown the few fake steps; DIoU is averaged over positive steps.
    """
    valid = batch["step_mask"]  # (B, T) bool
    fake = batch["fake"]  # (B, T)
    positive = valid & (fake > 0.5)  # (B, T)
    n_positive = positive.sum().clamp_min(1)

    focal = sigmoid_focal_loss(out.fake_logits, fake, weights.focal_alpha, weights.focal_gamma)
    classification = (focal * valid).sum() / n_positive

    if positive.any():
        regression = diou_loss_1d(out.boundaries[positive], batch["boundaries"][positive]).mean()
    else:
        # Keep the graph connected so every rank in DDP runs the same backward.
        regression = out.boundaries.sum() * 0.0

    modality_valid = valid & batch["modality_known"][:, None]  # (B, T)
    modality = 0.5 * (
        masked_bce(out.audio_fake_logits, batch["audio_fake"], modality_valid)
        + masked_bce(out.visual_fake_logits, batch["visual_fake"], modality_valid)
    )
    video = masked_bce(out.video_logit, batch["video_target"], batch["video_known"])

    total = (
        weights.classification * classification
        + weights.regression * regression
        + weights.modality * modality
        + weights.video * video
    )
    return {
        "loss": total,
        "classification": classification,
        "regression": regression,
        "modality": modality,
        "video": video,
    }
