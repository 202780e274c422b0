"""Localization heads over the fused sequence (DESIGN §4.5, §12.1), chosen by name.

Every head returns :class:`HeadOutput`:

- ``fake_logits`` (B, T): a dense per-step logit "this step lies inside a fake segment"
  (the timeline, the video score and a proposal's "mean probability inside" use it);
- ``levels``: one :class:`LevelOutput` per pyramid level, each a grid of cells of
  ``stride`` steps that classify "a segment of my length range is centred near me" and
  regress the distances from the cell centre to that segment's start and end;
- ``start_logits`` / ``end_logits`` (B, T): per-step boundary evidence, or None.

Heads:

- ``single_scale`` — the paper's head: every step inside a fake segment regresses its
  segment (one level, stride 1, any length); the level's classifier *is* the step logit.
- ``pyramid`` (default) — ActionFormer-style: strided conv levels (strides 1/2/4) over the
  fused sequence, each owning a range of segment lengths, centre sampling for positives,
  shared classification and regression convs with a learnt scale per level, plus start and
  end boundary logits at stride 1. Short edits are owned by the stride-1 level, whose
  regression never has to represent a 3 s segment, so lengths no longer collapse to one.

Distances are in *steps* (the model grid) measured from the cell centre; a cell ``j`` of
stride ``s`` is centred at step coordinate ``(j + 0.5) * s`` (step ``k`` spans ``[k, k+1)``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class LevelOutput:
    stride: int  # steps per cell
    min_length: float  # segment lengths (steps) this level owns: [min_length, max_length)
    max_length: float
    centre_radius: float  # positives: cells within radius * stride steps of the segment centre
    logits: torch.Tensor  # (B, T_l) cell logit; T_l = ceil(T / stride)
    boundaries: torch.Tensor  # (B, T_l, 2) non-negative steps from the cell centre
    mask: torch.Tensor  # (B, T_l) bool, cells whose first step is a real step
    classify: bool = True  # False: logits are the step logits, trained by the step loss


@dataclass
class HeadOutput:
    fake_logits: torch.Tensor  # (B, T)
    levels: tuple[LevelOutput, ...]
    start_logits: torch.Tensor | None  # (B, T)
    end_logits: torch.Tensor | None  # (B, T)


HEADS: dict[str, Callable[..., nn.Module]] = {}


def register_head(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    def wrap(cls: type[nn.Module]) -> type[nn.Module]:
        HEADS[name] = cls
        return cls

    return wrap


def create_head(name: str, in_dim: int, **kwargs: object) -> nn.Module:
    if name not in HEADS:
        raise ValueError(f"unknown head {name!r}; choose from {sorted(HEADS)}")
    return HEADS[name](in_dim, **kwargs)


@register_head("single_scale")
class SingleScaleHead(nn.Module):
    """The paper's head: per-step fake logit and ``softplus`` boundary distances (linear for
    large distances, so long segments do not produce exploding gradients)."""

    def __init__(self, in_dim: int) -> None:
        super().__init__()
        self.fake = nn.Linear(in_dim, 1)
        self.boundaries = nn.Linear(in_dim, 2)
        self.n_levels = 1
        self.has_boundary_logits = False

    def forward(self, fused: torch.Tensor, step_mask: torch.Tensor) -> HeadOutput:
        """fused (B, T, C), step_mask (B, T) bool."""
        logits = self.fake(fused).squeeze(-1)  # (B, T)
        level = LevelOutput(
            stride=1,
            min_length=0.0,
            max_length=math.inf,
            centre_radius=math.inf,  # every step inside the segment is a positive
            logits=logits,
            boundaries=F.softplus(self.boundaries(fused)),
            mask=step_mask,
            classify=False,
        )
        return HeadOutput(logits, (level,), None, None)


class _Scale(nn.Module):
    """A learnt scalar per level (ActionFormer), so shared regression convs fit each range."""

    def __init__(self) -> None:
        super().__init__()
        self.value = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.value


@register_head("pyramid")
class PyramidHead(nn.Module):
    """Temporal pyramid with per-level length ranges, centre sampling and boundary logits.

    Args:
        in_dim: fused feature size C.
        width: channels of the pyramid convs.
        strides: one level per stride, each twice the previous (1, 2, 4 by default).
        length_edges: the segment lengths (steps) separating the levels, len(strides) - 1
            values: level i owns [edge[i-1], edge[i]). Default 12 and 32 steps (0.48 s and
            1.28 s at 25 steps/s).
        centre_radius: positives are cells whose centre is within radius * stride steps of
            the segment centre (ActionFormer's centre sampling, 1.5).
    """

    def __init__(
        self,
        in_dim: int,
        width: int = 64,
        strides: Sequence[int] = (1, 2, 4),
        length_edges: Sequence[float] = (12.0, 32.0),
        centre_radius: float = 1.5,
    ) -> None:
        super().__init__()
        strides = tuple(int(s) for s in strides)
        if (
            not strides
            or strides[0] != 1
            or any(b != 2 * a for a, b in zip(strides, strides[1:], strict=False))
        ):
            raise ValueError(f"strides must be 1, 2, 4, ... (doubling), got {strides}")
        if len(length_edges) != len(strides) - 1 or list(length_edges) != sorted(length_edges):
            raise ValueError("length_edges needs len(strides) - 1 increasing values")
        self.strides = strides
        self.n_levels = len(strides)
        self.has_boundary_logits = True
        edges = (0.0, *map(float, length_edges), math.inf)
        self.ranges = tuple(zip(edges[:-1], edges[1:], strict=True))
        self.centre_radius = float(centre_radius)
        self.stem = nn.Conv1d(in_dim, width, 3, padding=1)
        self.down = nn.ModuleList(
            nn.Conv1d(width, width, 3, stride=2, padding=1) for _ in strides[1:]
        )
        self.cls = nn.Conv1d(width, 1, 3, padding=1)
        self.reg = nn.Conv1d(width, 2, 3, padding=1)
        self.scales = nn.ModuleList(_Scale() for _ in strides)
        self.frame = nn.Conv1d(width, 1, 3, padding=1)
        self.edges = nn.Conv1d(width, 2, 3, padding=1)  # (start, end) boundary logits
        # Rare positives: start the cell classifier at p = 0.01 (RetinaNet prior) and the
        # boundary logits at ~0.04, about the share of steps beside a seam.
        nn.init.constant_(self.cls.bias, -math.log(99.0))
        nn.init.constant_(self.edges.bias, -math.log(24.0))

    def forward(self, fused: torch.Tensor, step_mask: torch.Tensor) -> HeadOutput:
        """fused (B, T, C), step_mask (B, T) bool."""
        mask = step_mask.unsqueeze(1).to(fused.dtype)  # (B, 1, T)
        # Zero padded steps before every conv, so padding never reaches a real step.
        x = F.relu(self.stem(fused.transpose(1, 2) * mask)) * mask  # (B, W, T)
        frame_logits = self.frame(x).squeeze(1)  # (B, T)
        start_logits, end_logits = self.edges(x).unbind(1)  # (B, T) each
        levels = []
        for i, stride in enumerate(self.strides):
            if i:
                x = F.relu(self.down[i - 1](x))  # (B, W, ceil(T_prev / 2))
                mask = mask[..., ::2]
                x = x * mask
            distances = F.softplus(self.scales[i](self.reg(x))) * stride  # (B, 2, T_l) steps
            lo, hi = self.ranges[i]
            levels.append(
                LevelOutput(
                    stride=stride,
                    min_length=lo,
                    max_length=hi,
                    centre_radius=self.centre_radius,
                    logits=self.cls(x).squeeze(1),
                    boundaries=distances.transpose(1, 2),
                    mask=mask.squeeze(1) > 0,
                )
            )
        return HeadOutput(frame_logits, tuple(levels), start_logits, end_logits)


def levels_per_step(
    levels: Sequence[LevelOutput], n_steps: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every level's outputs repeated onto the step grid, for stitching and decoding.

    Returns ``logits`` (B, T, L) and ``boundaries`` (B, T, L, 2), the distances re-measured
    from each step's own centre, so a step of any level proposes
    ``[k + 0.5 - d_start, k + 0.5 + d_end]`` like a stride-1 step does.
    """
    logits, boundaries = [], []
    steps = torch.arange(n_steps, device=levels[0].logits.device)
    for level in levels:
        cell = steps // level.stride  # (T,)
        offset = (steps + 0.5) - (cell + 0.5) * level.stride  # step centre - cell centre
        d = level.boundaries[:, cell]  # (B, T, 2)
        shift = torch.stack([offset, -offset], dim=-1).to(d.dtype)  # (T, 2)
        logits.append(level.logits[:, cell])
        boundaries.append(d + shift)
    return torch.stack(logits, dim=-1), torch.stack(boundaries, dim=2)
