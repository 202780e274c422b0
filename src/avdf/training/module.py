"""The LightningModule: one model from the registry, the head losses, AdamW with a linear
warm-up and cosine decay, and validation metrics (frame-level and video-level AUC).

The module holds the network as ``self.model`` and saves ``model_name``, ``model_kwargs``
and ``media_spec`` as hyper-parameters, so a Lightning ``.ckpt`` describes itself too;
:meth:`AVDFModule.export` writes the plain checkpoint that ``avdf detect`` loads.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torchmetrics.classification import BinaryAUROC
from torchmetrics.functional.classification import binary_auroc

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
        # Binned AUROC: constant memory however many validation steps there are.
        self.frame_auroc = BinaryAUROC(thresholds=200)
        self._video_scores: torch.Tensor | None = None  # (N_videos,) max window probability

    def forward(self, batch: Mapping[str, torch.Tensor]) -> ModelOutput:
        return self.model(*(batch[k] for k in INPUT_KEYS))

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
    def on_validation_epoch_start(self) -> None:
        labels = self._val_video_labels()
        n = 0 if labels is None else len(labels)
        self._video_scores = torch.full((n,), -1.0, device=self.device)

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
        if self._video_scores is not None and len(self._video_scores):
            # A video's score is its most confident window, as at detection time.
            self._video_scores.scatter_reduce_(
                0, batch["video_index"], torch.sigmoid(out.video_logit), reduce="amax"
            )

    def on_validation_epoch_end(self) -> None:
        self.log("val/frame_auc", self.frame_auroc.compute(), sync_dist=False)
        self.frame_auroc.reset()
        labels = self._val_video_labels()
        if self._video_scores is None or labels is None or not len(labels):
            return
        scores = self.all_gather(self._video_scores)  # (world, N) or (N,)
        if scores.dim() == 2:
            scores = scores.max(dim=0).values
        target = torch.tensor(labels, device=scores.device)
        seen = scores >= 0  # videos that had at least one window (limit_val_batches)
        scores, target = scores[seen], target[seen]
        if target.numel() and 0 < int(target.sum()) < target.numel():
            auc = binary_auroc(scores, target)
        else:
            auc = torch.tensor(0.5)  # one class only: AUC undefined, report chance
        self.log("val/video_auc", auc.to(self.device), sync_dist=False)

    def _val_video_labels(self) -> list[int] | None:
        loaders = getattr(self.trainer, "val_dataloaders", None)
        dataset = getattr(loaders, "dataset", None)
        return getattr(dataset, "video_labels", None)

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
        """Write the plain self-describing checkpoint that ``avdf detect`` loads."""
        save_checkpoint(path, self.model, self.spec, dict(extra or {}))
