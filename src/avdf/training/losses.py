"""Losses of the heads (DESIGN §4.5, §12.1), each written out here with its formula.

All per-step losses take a boolean ``valid`` mask ``(B, T)`` so padded steps (and steps
whose labels are unknown) never contribute.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from avdf.models.base import ModelOutput
from avdf.models.heads import LevelOutput
from avdf.types import MODALITIES

EPS = 1e-8
BOUNDARY_FLOOR = 0.05  # steps' share added to the boundary loss normaliser


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
    """Weights of the loss terms and the focal parameters of the level classifiers.

    The dense step classifier uses plain BCE: about a fifth of the steps are positive in
    LAV-DF-like data, far from the 1e-4 of RetinaNet's anchors, and focal down-weighting
    with alpha 0.25 squashed its probabilities (measured: [0.22, 0.51]). The level
    classifiers see centre-sampled positives (a few cells per segment), which is the sparse
    regime focal loss was made for, so they keep it.
    """

    classification: float = 1.0  # dense step BCE
    level_classification: float = 1.0  # focal, per level, over cells
    regression: float = 1.0  # DIoU, each segment's positives weighted to sum to one
    boundary: float = 0.5  # start / end soft targets
    modality: float = 0.5
    video: float = 0.5
    sync: float = 0.1  # contrastive lip–audio sync on genuine steps (models with a sync stream)
    sync_temperature: float = 0.1
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0


@dataclass
class LevelTargets:
    positive: torch.Tensor  # (B, T_l) bool
    boundaries: torch.Tensor  # (B, T_l, 2) steps from the cell centre to (start, end)
    weight: torch.Tensor  # (B, T_l) regression weight: 1 / (positives of the same segment)
    valid: torch.Tensor  # (B, T_l) bool, cells whose step counts for the loss


def level_targets(
    level: LevelOutput, fake: torch.Tensor, boundaries: torch.Tensor, valid: torch.Tensor
) -> LevelTargets:
    """Cell targets of one level from the step targets.

    ``fake`` (B, T) 0/1, ``boundaries`` (B, T, 2) steps from each step centre to its
    segment's ends, ``valid`` (B, T) bool. A cell of stride ``s`` centred at ``c`` takes the
    segment of the step containing ``c``; it is positive when ``c`` lies strictly inside
    that segment, the segment's length is in the level's range, and ``c`` is within
    ``centre_radius * s`` steps of the segment centre.
    """
    b, t = fake.shape
    s = level.stride
    n_cells = level.logits.shape[1]
    centre = (torch.arange(n_cells, device=fake.device, dtype=fake.dtype) + 0.5) * s  # (T_l,)
    step = centre.floor().long().clamp(max=t - 1)  # the step containing each cell centre
    inside = fake[:, step] > 0.5  # (B, T_l)
    step_centre = (step + 0.5).to(fake.dtype)
    seg_start = step_centre - boundaries[:, step, 0]  # (B, T_l) step coordinates
    seg_end = step_centre + boundaries[:, step, 1]
    d_start, d_end = centre - seg_start, seg_end - centre
    length = seg_end - seg_start
    near_centre = (centre - 0.5 * (seg_start + seg_end)).abs() <= level.centre_radius * s
    cell_valid = valid[:, step] & level.mask
    positive = (
        cell_valid
        & inside
        & (d_start > 0)
        & (d_end > 0)
        & (length >= level.min_length)
        & (length < level.max_length)
        & near_centre
    )
    # Each segment's positives share one unit of regression weight (long segments would
    # otherwise dominate). A segment is identified by its batch row and its start.
    weight = torch.zeros_like(fake[:, :n_cells])
    if positive.any():
        rows = torch.arange(b, device=fake.device).unsqueeze(1).expand(b, n_cells)[positive]
        keys = torch.stack([rows.to(fake.dtype), torch.round(seg_start[positive] * 16)], dim=1)
        _, inverse, counts = torch.unique(keys, dim=0, return_inverse=True, return_counts=True)
        weight[positive] = 1.0 / counts[inverse].to(fake.dtype)
    targets = torch.stack([d_start, d_end], dim=-1).clamp_min(0.0)
    return LevelTargets(positive, targets, weight, cell_valid)


def seen_modalities(presence_used: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T) bools from (B, T, 3) presence: audio seen; face or lips seen."""
    audio = presence_used[..., MODALITIES.index("audio")]
    visual = (
        presence_used[..., MODALITIES.index("face")] | presence_used[..., MODALITIES.index("lips")]
    )
    return audio, visual


def visible_fake_mask(
    batch: Mapping[str, torch.Tensor], presence_used: torch.Tensor
) -> torch.Tensor:
    """(B, T) bool: steps whose labels the model could check.

    A fake step whose every manipulated modality was hidden from the model (modality
    dropout, or absent in the video) is label noise: it is left out of the localization
    losses. Needs per-modality labels; without them every step counts.
    """
    audio_seen, visual_seen = seen_modalities(presence_used)
    audio_fake, visual_fake = batch["audio_fake"] > 0.5, batch["visual_fake"] > 0.5
    checkable = (audio_fake & audio_seen) | (visual_fake & visual_seen)
    hidden = (batch["fake"] > 0.5) & ~checkable & batch["modality_known"][:, None]
    return batch["step_mask"] & ~hidden


SYNC_NEAR_STEPS = 2  # keys this close to the positive are neither positive nor negative


def sync_contrastive_loss(
    audio: torch.Tensor,
    lips: torch.Tensor,
    positive: torch.Tensor,
    temperature: float,
) -> torch.Tensor:
    """Symmetric InfoNCE between unit audio and mouth embeddings (B, T, dim).

    Queries are the ``positive`` (B, T) steps (genuine, both modalities seen); each one's
    positive key is the other modality at the same step, its negatives the other
    modality's valid steps elsewhere in the same window: shifted audio, as SyncNet trains.
    Other videos are not negatives on purpose: with a few dozen people, telling a voice
    from another person's face is learnt by heart (measured: dev loss at chance while the
    training loss fell) and says nothing about timing. Keys within ``SYNC_NEAR_STEPS``
    steps of the positive are left out: mouth shapes change slowly, so they are not wrong
    matches. An invalid step's embedding is zero (it is never a key). 0 without a positive.
    """
    b, t, _ = audio.shape
    if not positive.any():
        return audio.sum() * 0.0
    rows, steps = positive.nonzero(as_tuple=True)  # (N,)
    gap = (steps[:, None] - torch.arange(t, device=audio.device)[None, :]).abs()  # (N, T)
    near = (gap > 0) & (gap <= SYNC_NEAR_STEPS)
    losses = []
    for query, keys in ((audio, lips), (lips, audio)):
        key_valid = keys.abs().sum(-1) > 0  # (B, T)
        logits = (query[rows, steps].unsqueeze(1) * keys[rows]).sum(-1) / temperature  # (N, T)
        logits = logits.masked_fill(near | ~key_valid[rows], torch.finfo(logits.dtype).min)
        losses.append(F.cross_entropy(logits, steps))
    return 0.5 * (losses[0] + losses[1])


def detection_losses(
    out: ModelOutput, batch: Mapping[str, torch.Tensor], weights: LossWeights
) -> dict[str, torch.Tensor]:
    """All head losses for one batch and their weighted sum under ``"loss"``.

    ``batch`` holds the targets from :func:`avdf.data.dataset.collate`: ``step_mask`` (B, T)
    bool, ``fake`` (B, T), ``boundaries`` (B, T, 2), ``start`` / ``end`` (B, T) soft
    boundary targets, ``audio_fake`` / ``visual_fake`` (B, T), ``modality_known`` (B,) bool,
    ``video_target`` (B,), ``video_known`` (B,) bool.

    - classification: BCE of the step logits, mean over valid steps;
    - level_classification: focal loss over every level's valid cells, divided by the
      number of positive cells (at least 1), the RetinaNet / ActionFormer normaliser;
    - regression: DIoU per positive cell, each segment's cells summing to weight one,
      divided by the number of (segment, level) pairs;
    - boundary: BCE of the start / end logits against the soft targets, summed and divided
      by the targets' mass plus 5% of the steps, so rare seams are not drowned and a batch
      without seams stays near a mean;
    - modality: BCE of the audio- / visual-fake logits where the dataset labels them and
      the model could see that modality;
    - video: BCE of the window's video logit;
    - sync (models with a sync stream): :func:`sync_contrastive_loss` on the steps that are
      genuine (not fake) and where the model saw both audio and lips.
    """
    valid = visible_fake_mask(batch, out.presence_used)  # (B, T) bool
    fake = batch["fake"]  # (B, T)
    classification = masked_bce(out.fake_logits, fake, valid)

    level_cls, regression = [], []
    n_positive = out.fake_logits.new_zeros(())
    n_segments = out.fake_logits.new_zeros(())
    for level in out.levels:
        target = level_targets(level, fake, batch["boundaries"], valid)
        n_positive = n_positive + target.positive.sum()
        n_segments = n_segments + target.weight.sum()
        if level.classify:
            focal = sigmoid_focal_loss(
                level.logits,
                target.positive.to(fake.dtype),
                weights.focal_alpha,
                weights.focal_gamma,
            )
            level_cls.append((focal * target.valid).sum())
        if target.positive.any():
            diou = diou_loss_1d(
                level.boundaries[target.positive], target.boundaries[target.positive]
            )
            regression.append((diou * target.weight[target.positive]).sum())
        else:
            # Keep the graph connected so every rank in DDP runs the same backward.
            regression.append(level.boundaries.sum() * 0.0)
    level_classification = (
        sum(level_cls) / n_positive.clamp_min(1) if level_cls else classification * 0.0
    )
    regression_loss = sum(regression) / n_segments.clamp_min(1)

    if out.start_logits is not None and out.end_logits is not None:
        edge_valid = batch["step_mask"]
        bce_start = F.binary_cross_entropy_with_logits(
            out.start_logits, batch["start"], reduction="none"
        )
        bce_end = F.binary_cross_entropy_with_logits(out.end_logits, batch["end"], reduction="none")
        # Divided by the boundaries' mass plus a floor proportional to the steps, so a batch
        # without any seam (reals, whole-video fakes) gives a mean-like value, not a sum.
        mass = ((batch["start"] + batch["end"]) * edge_valid).sum()
        mass = mass + BOUNDARY_FLOOR * edge_valid.sum().clamp_min(1)
        boundary = ((bce_start + bce_end) * edge_valid).sum() / mass
    else:
        boundary = out.fake_logits.sum() * 0.0

    known = batch["step_mask"] & batch["modality_known"][:, None]  # (B, T)
    audio_seen, visual_seen = seen_modalities(out.presence_used)
    modality = 0.5 * (
        masked_bce(out.audio_fake_logits, batch["audio_fake"], known & audio_seen)
        + masked_bce(out.visual_fake_logits, batch["visual_fake"], known & visual_seen)
    )
    video = masked_bce(out.video_logit, batch["video_target"], batch["video_known"])
    if out.sync_audio is not None and out.sync_lips is not None:
        used = out.presence_used
        both = used[..., MODALITIES.index("audio")] & used[..., MODALITIES.index("lips")]
        genuine = both & batch["step_mask"] & (fake < 0.5)
        sync = sync_contrastive_loss(
            out.sync_audio, out.sync_lips, genuine, weights.sync_temperature
        )
    else:
        sync = out.fake_logits.sum() * 0.0

    total = (
        weights.classification * classification
        + weights.level_classification * level_classification
        + weights.regression * regression_loss
        + weights.boundary * boundary
        + weights.modality * modality
        + weights.video * video
        + weights.sync * sync
    )
    return {
        "loss": total,
        "classification": classification,
        "level_classification": level_classification,
        "regression": regression_loss,
        "boundary": boundary,
        "modality": modality,
        "video": video,
        "sync": sync,
    }
