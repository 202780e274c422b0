"""An ensemble: several trained models whose outputs are averaged, used like one model.

Retraining the same recipe with another seed moves a fold's video AUC by up to 12 points
(docs/synthetic-results.md); averaging the members' logits removes part of that spread.
Every logit and boundary distance of :class:`~avdf.models.base.ModelOutput` is the
members' mean, so the Detector, the decoder and ``avdf tune`` treat an ensemble as any
other model. Members must share the localization head's layout (levels, strides, boundary
logits); each reads the expert streams it was built with (the ensemble asks for their union).

Built from trained checkpoints by :func:`avdf.models.checkpoint.ensemble_checkpoint`
(``avdf ensemble``); an ensemble is for inference, not for training.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from avdf.models.base import ModelOutput
from avdf.models.registry import create_model, register_model


def _mean(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.stack(list(tensors)).mean(dim=0)


class Ensemble(nn.Module):
    """``members``: each ``{"name": registered model, "kwargs": its model_kwargs}``."""

    def __init__(self, members: Sequence[Mapping[str, Any]]) -> None:
        super().__init__()
        if len(members) < 2:
            raise ValueError("an ensemble needs at least two members")
        self.members = nn.ModuleList(
            create_model(str(m["name"]), **dict(m.get("kwargs") or {})) for m in members
        )
        layouts = {_head_layout(m) for m in self.members}
        if len(layouts) > 1:
            raise ValueError(f"ensemble members have different localization heads: {layouts}")
        self.experts = tuple(sorted({e for m in self.members for e in getattr(m, "experts", ())}))
        self.model_kwargs = {
            "members": [{"name": m.model_name, "kwargs": m.model_kwargs} for m in self.members]
        }

    @property
    def head(self) -> nn.Module:
        """The first member's head: its layout (``n_levels``, boundary logits) is everyone's."""
        return self.members[0].head

    def forward(self, **inputs: Any) -> ModelOutput:
        outputs = [member(**inputs) for member in self.members]
        first = outputs[0]
        levels = tuple(
            replace(
                level,
                logits=_mean([o.levels[i].logits for o in outputs]),
                boundaries=_mean([o.levels[i].boundaries for o in outputs]),
            )
            for i, level in enumerate(first.levels)
        )
        has_edges = first.start_logits is not None
        # Each member's block summary describes its own features: side by side, not averaged.
        summaries = [o.block_summary for o in outputs]
        used = [o.block_summary_used for o in outputs]
        complete = all(s is not None for s in summaries) and all(u is not None for u in used)
        return ModelOutput(
            fake_logits=_mean([o.fake_logits for o in outputs]),
            levels=levels,
            start_logits=_mean([o.start_logits for o in outputs]) if has_edges else None,
            end_logits=_mean([o.end_logits for o in outputs]) if has_edges else None,
            audio_fake_logits=_mean([o.audio_fake_logits for o in outputs]),
            visual_fake_logits=_mean([o.visual_fake_logits for o in outputs]),
            video_logit=_mean([o.video_logit for o in outputs]),
            presence_used=first.presence_used,
            block_summary=torch.cat(summaries, dim=-1) if complete else None,  # type: ignore[arg-type]
            block_summary_used=torch.cat(used, dim=-1) if complete else None,  # type: ignore[arg-type]
        )


def _head_layout(model: nn.Module) -> tuple[Any, ...]:
    head = model.head
    strides = tuple(getattr(head, "strides", ()))
    ranges = tuple(getattr(head, "ranges", ()))
    return (int(head.n_levels), bool(head.has_boundary_logits), strides, ranges)


@register_model("ensemble")
def ensemble(members: Sequence[Mapping[str, Any]]) -> Ensemble:
    """Trained models averaged (:class:`Ensemble`); made by ``avdf ensemble``."""
    return Ensemble(members)
