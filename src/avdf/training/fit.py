"""Run a training from a :class:`TrainConfig`: data, module, Lightning Trainer, and the export
of the best weights as a plain checkpoint.

Output folder layout::

    OUT/config.yaml          the resolved configuration
    OUT/checkpoints/*.ckpt   Lightning checkpoints (best + last; --resume takes these)
    OUT/logs/version_N/metrics.csv   losses and validation metrics (one version per run)
    OUT/model.ckpt           best weights, self-describing (avdf detect --checkpoint)

Nothing here assumes one process: under DDP every rank runs this code, only rank 0 writes
files, and the samplers come from Lightning.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from avdf.data.datamodule import AVDFDataModule, load_samples
from avdf.data.dataset import missing_from_cache
from avdf.errors import AvdfError, OutputExistsError
from avdf.training.config import TrainConfig, save_config
from avdf.training.module import AVDFModule
from avdf.training.validation import DetectionValidation
from avdf.types import Sample, write_manifest

log = logging.getLogger(__name__)

MISSING_MANIFEST = "missing_from_cache.jsonl"


class MissingCacheError(AvdfError):
    """Videos of the training data have no (complete) cache entry."""

    def __init__(self, cache_dir: Path, n_missing: int, n_total: int, manifest: Path) -> None:
        super().__init__(
            f"{cache_dir}: {n_missing} of {n_total} videos are not preprocessed; run "
            f"`avdf preprocess {manifest} --out {cache_dir}` first"
        )


@dataclass(frozen=True)
class FitResult:
    is_rank_zero: bool  # False in the other processes of a DDP run
    out_dir: Path
    model_path: Path  # the exported plain checkpoint
    best_checkpoint: Path  # the Lightning checkpoint it came from
    best_score: float | None  # value of the monitored metric there (None without validation)


def _is_rank_zero() -> bool:
    # Set by Lightning from RANK / SLURM_PROCID / LOCAL_RANK before any process group exists,
    # so it is right even in the processes DDP re-launches.
    return getattr(rank_zero_only, "rank", 0) == 0


def _check_cache(config: TrainConfig, samples: Sequence[Sample], out_dir: Path) -> None:
    labelled = list({s.id: s for s in samples if s.label is not None}.values())  # unique ids
    missing = missing_from_cache(labelled, config.data.cache_dir)
    if missing:
        manifest = out_dir / MISSING_MANIFEST
        if _is_rank_zero():
            out_dir.mkdir(parents=True, exist_ok=True)
            write_manifest(missing, str(manifest))
        raise MissingCacheError(Path(config.data.cache_dir), len(missing), len(labelled), manifest)


def fit(
    config: TrainConfig,
    out_dir: str | Path,
    *,
    accelerator: str = "auto",
    devices: int | str = "auto",
    strategy: str = "auto",
    num_nodes: int = 1,
    resume: str | Path | None = None,
    force: bool = False,
    callbacks: Sequence[Callback] = (),
    enable_progress_bar: bool = True,
    trainer_overrides: dict[str, Any] | None = None,
) -> FitResult:
    """Train with ``config`` and write everything under ``out_dir`` (see module docstring).

    Refuses an existing non-empty ``out_dir`` unless ``force`` or ``resume`` is given.
    ``trainer_overrides`` are passed to ``lightning.Trainer`` last (tests, profiling).
    """
    out_dir = Path(out_dir)
    if _is_rank_zero() and resume is None and not force:
        # The missing-cache list of an earlier refused run is not an output.
        if out_dir.exists() and any(p.name != MISSING_MANIFEST for p in out_dir.iterdir()):
            raise OutputExistsError(out_dir)
    if _is_rank_zero() and resume is None and force:
        # A forced fresh run must not leave the old run's checkpoints beside its own.
        shutil.rmtree(out_dir / "checkpoints", ignore_errors=True)

    d, t = config.data, config.trainer
    L.seed_everything(t.seed, workers=True, verbose=False)
    train_samples = load_samples(d.dataset, d.root, d.manifest, d.train_split)
    val_samples = load_samples(d.dataset, d.root, d.manifest, d.val_split) if d.val_split else []
    if not [s for s in train_samples if s.label is not None]:
        raise AvdfError(f"{d.manifest or d.root}: no labelled videos in split '{d.train_split}'")
    _check_cache(config, [*train_samples, *val_samples], out_dir)
    if _is_rank_zero():
        out_dir.mkdir(parents=True, exist_ok=True)
        save_config(config, out_dir / "config.yaml")

    datamodule, module = _data_and_module(config, train_samples, val_samples)

    has_val = bool(val_samples)
    extra_callbacks = list(callbacks)
    if has_val and d.detect_validation:
        extra_callbacks.append(DetectionValidation(val_samples, d.cache_dir, d.window_steps))
    trainer, checkpoint = _build_trainer(
        config,
        out_dir,
        has_val,
        extra_callbacks,
        dict(
            accelerator=accelerator,
            devices=devices,
            strategy=strategy,
            num_nodes=num_nodes,
            enable_progress_bar=enable_progress_bar,
            **(trainer_overrides or {}),
        ),
    )
    trainer.fit(module, datamodule=datamodule, ckpt_path=None if resume is None else str(resume))
    # ModelCheckpoint writes last.ckpt at epoch ends; a run stopped by max_steps mid-epoch
    # would otherwise leave a stale one. Every rank calls this (it is a collective). A full
    # checkpoint (optimizer and loop state) so that --resume continues the run.
    trainer.save_checkpoint(out_dir / "checkpoints" / "last.ckpt", weights_only=False)

    best = Path(checkpoint.best_model_path or out_dir / "checkpoints" / "last.ckpt")
    score = checkpoint.best_model_score
    model_path = out_dir / "model.ckpt"
    if trainer.is_global_zero:
        _export_best(config, best, score, model_path, has_val)
    score_value = None if score is None else float(score)
    return FitResult(trainer.is_global_zero, out_dir, model_path, best, score_value)


def _build_trainer(
    config: TrainConfig,
    out_dir: Path,
    has_val: bool,
    callbacks: Sequence[Callback],
    overrides: dict[str, Any],
) -> tuple[L.Trainer, ModelCheckpoint]:
    """The Lightning Trainer (checkpointing on the monitored metric, early stopping, CSV
    logs) and its checkpoint callback; ``overrides`` are passed last."""
    t = config.trainer
    checkpoint = ModelCheckpoint(
        dirpath=out_dir / "checkpoints",
        filename="best-{epoch}-{step}",
        monitor=t.monitor if has_val else None,
        mode=t.monitor_mode,
        save_top_k=1,
        save_last=True,
    )
    # The checkpoint callback runs after the callbacks that log the metric it monitors.
    all_callbacks: list[Callback] = [*callbacks, checkpoint]
    if has_val and t.early_stopping_patience is not None:
        all_callbacks.append(
            EarlyStopping(
                monitor=t.monitor, mode=t.monitor_mode, patience=t.early_stopping_patience
            )
        )
    trainer_kwargs: dict[str, Any] = dict(
        max_epochs=t.max_epochs,
        max_steps=t.max_steps,
        gradient_clip_val=t.gradient_clip_val,
        accumulate_grad_batches=t.accumulate_grad_batches,
        precision=t.precision,
        deterministic=t.deterministic,
        log_every_n_steps=t.log_every_n_steps,
        limit_train_batches=t.limit_train_batches,
        limit_val_batches=t.limit_val_batches if has_val else 0,
        callbacks=all_callbacks,
        # a new logs/version_N per run, so a resumed run keeps the earlier metrics
        logger=CSVLogger(out_dir, name="logs"),
        default_root_dir=out_dir,
        enable_model_summary=False,
    )
    trainer_kwargs.update(overrides)
    return L.Trainer(**trainer_kwargs), checkpoint


def _export_best(
    config: TrainConfig, best: Path, score: Any, model_path: Path, has_val: bool
) -> None:
    """Export the best Lightning checkpoint's evaluation weights as a plain checkpoint."""
    d, t = config.data, config.trainer
    best_module = AVDFModule.load_from_checkpoint(best, map_location="cpu", weights_only=True)
    best_module.export(
        model_path,
        extra={
            "window_steps": d.window_steps,
            "trained_on": d.dataset or str(d.manifest),
            "best_checkpoint": best.name,
            "monitor": t.monitor if has_val else None,
            "best_score": None if score is None else float(score),
            "config": config.to_dict(),
        },
    )


def _data_and_module(
    config: TrainConfig, train_samples: Sequence[Sample], val_samples: Sequence[Sample]
) -> tuple[AVDFDataModule, AVDFModule]:
    """The LightningDataModule over the cached windows and the LightningModule to train."""
    d = config.data
    datamodule = AVDFDataModule(
        d.cache_dir,
        config.media,
        window_steps=d.window_steps,
        batch_size=d.batch_size,
        num_workers=d.num_workers,
        windows_per_video=d.windows_per_video,
        fake_window_fraction=d.fake_window_fraction,
        whole_fake_factor=d.whole_fake_factor,
        val_hop_steps=d.val_hop_steps,
        in_memory=d.in_memory,
        augment=d.augment,
        experts=tuple(config.model.kwargs.get("experts") or ()),
        train_samples=train_samples,
        val_samples=val_samples,
    )
    module = AVDFModule(
        config.model.name,
        config.model.kwargs,
        config.media.to_dict(),
        config.to_dict()["loss"],
        config.to_dict()["optim"],
    )
    return datamodule, module
