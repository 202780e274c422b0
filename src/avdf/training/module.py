"""The LightningModule: one model from the registry, the head losses, AdamW with a linear
warm-up and cosine decay, an exponential moving average (EMA) of the weights, and the
window-level validation losses and frame AUC (the detect-path metrics that select
checkpoints are logged by :class:`avdf.training.validation.DetectionValidation`).

The module holds the network as ``self.model`` and saves ``model_name``, ``model_kwargs``
and ``media_spec`` as hyper-parameters, so a Lightning ``.ckpt`` describes itself too;
:meth:`AVDFModule.export` writes the plain checkpoint that ``avdf detect`` loads.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.optim.swa_utils import AveragedModel
from torchmetrics.classification import BinaryAUROC

from avdf.models import create_model
from avdf.models.base import ModelOutput
from avdf.models.checkpoint import save_checkpoint
from avdf.timebase import MediaSpec
from avdf.training.losses import LossWeights, detection_losses

INPUT_KEYS = ("audio", "face", "lips", "step_mask", "presence")


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, min_ratio: float) -> float:
    """Learning-rate factor: linear from ~0 to 1 over ``warmup_steps``, then a cosine down to
    ``min_ratio`` at ``total_steps`` (and flat after)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def ema_update(
    averaged: torch.Tensor, current: torch.Tensor, num_averaged: torch.Tensor, decay: float
) -> torch.Tensor:
    """One EMA step with warm-up: the decay is ``min(decay, (1 + n) / (10 + n))`` after ``n``
    updates, so the average forgets the random initial weights within the first few hundred
    steps (a plain 0.998 would still hold 64% of them after 220 steps)."""
    n = float(num_averaged)
    rate = min(decay, (1.0 + n) / (10.0 + n))
    return averaged * rate + current * (1.0 - rate)


class AVDFModule(L.LightningModule):
    def __init__(
        self,
        model_name: str,
        model_kwargs: Mapping[str, Any] | None = None,
        media_spec: Mapping[str, Any] | None = None,
        loss: Mapping[str, Any] | None = None,
        optim: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.spec = MediaSpec.from_dict(media_spec or {})
        # The model follows the config's MediaSpec unless its kwargs name one.
        self.model = create_model(
            model_name, **{"spec": self.spec.to_dict(), **(model_kwargs or {})}
        )
        # The model's own fully resolved kwargs, so a Lightning .ckpt rebuilds it exactly.
        self.save_hyperparameters(
            {
                "model_name": model_name,
                "model_kwargs": dict(self.model.model_kwargs),
                "media_spec": self.spec.to_dict(),
                "loss": dict(loss or {}),
                "optim": dict(optim or {}),
            }
        )
        self.loss_weights = LossWeights(**dict(loss or {}))
        optim = dict(optim or {})
        self.lr = float(optim.get("lr", 1e-3))
        self.weight_decay = float(optim.get("weight_decay", 1e-2))
        self.warmup_steps = int(optim.get("warmup_steps", 100))
        self.min_lr_ratio = float(optim.get("min_lr_ratio", 0.01))
        # EMA of the weights: validation, checkpoint selection and export use it (0: off).
        self.ema_decay = float(optim.get("ema_decay", 0.0))
        self.ema = (
            AveragedModel(self.model, avg_fn=partial(ema_update, decay=self.ema_decay))
            if self.ema_decay > 0
            else None
        )
        # Binned AUROC: constant memory however many validation steps there are.
        self.frame_auroc = BinaryAUROC(thresholds=200)

    def evaluation_model(self) -> torch.nn.Module:
        """The weights validation and export use: the EMA when enabled."""
        return self.model if self.ema is None else self.ema.module

    def forward(self, batch: Mapping[str, torch.Tensor]) -> ModelOutput:
        network = self.model if self.training else self.evaluation_model()
        # Expert streams (when the batch carries them) by keyword: models without any ignore them.
        streams = {"experts": batch["experts"]} if "experts" in batch else {}
        return network(*(batch[k] for k in INPUT_KEYS), **streams)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.ema is not None:
            self.ema.update_parameters(self.model)
            # BatchNorm running statistics are buffers, which AveragedModel leaves at their
            # initial values: take the live model's (already a running average).
            for averaged, live in zip(self.ema.module.buffers(), self.model.buffers(), strict=True):
                averaged.copy_(live)

    # --- training ----------------------------------------------------------------------
    def training_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        losses = detection_losses(self(batch), batch, self.loss_weights)
        batch_size = batch["step_mask"].shape[0]
        self.log_dict(
            {f"train/{k}": v.detach() for k, v in losses.items()},
            batch_size=batch_size,
            prog_bar=False,
        )
        self.log("train/lr", self.optimizers().param_groups[0]["lr"], batch_size=batch_size)
        return losses["loss"]

    # --- validation --------------------------------------------------------------------
    def validation_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> None:
        out = self(batch)
        losses = detection_losses(out, batch, self.loss_weights)
        self.log_dict(
            {f"val/{k}": v for k, v in losses.items()},
            batch_size=batch["step_mask"].shape[0],
            sync_dist=True,
            prog_bar=True,
        )
        valid = batch["step_mask"]
        self.frame_auroc.update(torch.sigmoid(out.fake_logits[valid]), batch["fake"][valid].long())

    def on_validation_epoch_end(self) -> None:
        self.log("val/frame_auc", self.frame_auroc.compute(), sync_dist=False)
        self.frame_auroc.reset()

    # --- optimisation ------------------------------------------------------------------
    def configure_optimizers(self) -> dict[str, Any]:
        # No weight decay on biases and normalisation scales.
        decay = [p for p in self.model.parameters() if p.requires_grad and p.ndim >= 2]
        no_decay = [p for p in self.model.parameters() if p.requires_grad and p.ndim < 2]
        optimizer = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": self.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=self.lr,
        )
        total = self.trainer.estimated_stepping_batches
        total_steps = int(total) if math.isfinite(total) else 10**9
        warmup = min(self.warmup_steps, max(0, total_steps - 1))
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            lambda step: warmup_cosine(step, max(1, warmup), total_steps, self.min_lr_ratio),
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    # --- export ------------------------------------------------------------------------
    def export(self, path: str | Path, extra: Mapping[str, Any] | None = None) -> None:
        """Write the plain self-describing checkpoint that ``avdf detect`` loads (the EMA
        weights when enabled)."""
        save_checkpoint(path, self.evaluation_model(), self.spec, dict(extra or {}))
