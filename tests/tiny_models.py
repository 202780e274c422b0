"""A small, randomly initialised MMMS-BA saved as avdf saves checkpoints, for tests that need
a real model but not a trained one."""

from __future__ import annotations

from pathlib import Path

import torch

from avdf.models import create_model, save_checkpoint
from avdf.timebase import MediaSpec

DEFAULT_SPEC = MediaSpec()


def tiny_checkpoint(
    path: Path,
    spec: MediaSpec = DEFAULT_SPEC,
    window_steps: int = 32,
    seed: int = 0,
    experts: tuple[str, ...] = (),
    **sizes: int,
) -> Path:
    """``sizes`` override the small sizes below (e.g. ``fusion_dim``)."""
    torch.manual_seed(seed)
    small = {"block_dim": 16, "block_width": 4, "gru_hidden": 16, "context_dim": 16, **sizes}
    model = create_model("mmms_ba", spec=spec, experts=list(experts), **small)
    return save_checkpoint(path, model, spec, extra={"window_steps": window_steps})
