"""The training configuration: a YAML file with the sections data, model, loss, optim,
trainer and media, plus ``key.sub=value`` overrides from the command line.

Every key is checked against the dataclasses below, so a typo fails with one line naming
it; ``model.kwargs`` is free-form (the model factory validates it). Relative paths are
taken relative to the working directory.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from avdf.errors import AvdfError
from avdf.timebase import MediaSpec
from avdf.training.losses import LossWeights


class ConfigError(AvdfError):
    """A bad training configuration: names the file and the offending key."""

    def __init__(self, source: str, key: str, cause: str) -> None:
        self.source, self.key, self.cause = source, key, cause
        super().__init__(f"{source}: '{key}': {cause}")


@dataclass(frozen=True)
class DataConfig:
    cache_dir: str = "cache"
    dataset: str | None = None  # a name known to avdf.datasets.load_dataset ...
    root: str | None = None  # ... and its root folder
    manifest: str | None = None  # or a JSONL manifest (avdf.types.read_manifest) instead
    train_split: str = "train"
    val_split: str | None = "dev"
    window_steps: int = 64  # 2.56 s at 25 steps/s
    batch_size: int = 8
    num_workers: int = 0
    windows_per_video: int = 4  # random training windows per video per epoch
    fake_window_fraction: float = 0.5  # share of training windows placed over a fake step
    # windows of a whole-clip fake (>= 90% fake steps) per epoch, as a multiple of
    # windows_per_video: their evidence cannot be a seam or a contrast within the window.
    # 3 was worse on every figure on folds 0-1 (docs/synthetic-results.md)
    whole_fake_factor: float = 1.0
    val_hop_steps: int | None = None  # evaluation tiling hop (default: window_steps)
    # Keep each video's decompressed features in RAM after its first read (per loader
    # process; ~2.2 MB per 100 steps at the default sizes). Reading and decompressing a
    # batch's windows cost nearly as much as the training step itself on a 2-core CPU.
    in_memory: bool = False
    # Random per-window flips, colour, translation and audio gain on the training windows
    # (avdf.data.augment); validation never sees them.
    augment: bool = True
    # Score the dev videos as `avdf detect` does each validation epoch (val/ap50_ar100,
    # val/video_auc); needs their cache files.
    detect_validation: bool = True


@dataclass(frozen=True)
class ModelConfig:
    name: str = "mmms_ba"
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 1e-3
    weight_decay: float = 1e-2
    warmup_steps: int = 100
    min_lr_ratio: float = 0.01  # the cosine decays to lr * min_lr_ratio
    ema_decay: float = 0.0  # EMA of the weights for validation and export (0: off)


@dataclass(frozen=True)
class TrainerConfig:
    max_epochs: int = 30
    max_steps: int = -1
    gradient_clip_val: float = 1.0
    accumulate_grad_batches: int = 1
    seed: int = 0
    precision: str = "32-true"
    deterministic: bool = True
    monitor: str = "val/loss"  # or val/video_auc, val/frame_auc
    monitor_mode: str = "min"  # "max" for the AUCs
    early_stopping_patience: int | None = 5  # None: no early stopping
    log_every_n_steps: int = 10
    limit_train_batches: float = 1.0
    limit_val_batches: float = 1.0


@dataclass(frozen=True)
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossWeights = field(default_factory=LossWeights)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    media: MediaSpec = field(default_factory=MediaSpec)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def validate(self, source: str = "config") -> None:
        d, t = self.data, self.trainer
        if (d.dataset is None) == (d.manifest is None):
            raise ConfigError(
                source, "data.dataset", "give exactly one of data.dataset or data.manifest"
            )
        if d.dataset is not None and d.root is None:
            raise ConfigError(source, "data.root", "data.dataset needs data.root")
        if t.monitor_mode not in ("min", "max"):
            raise ConfigError(source, "trainer.monitor_mode", "must be 'min' or 'max'")
        for key, value in (
            ("data.window_steps", d.window_steps),
            ("data.batch_size", d.batch_size),
            ("data.windows_per_video", d.windows_per_video),
        ):
            if value < 1:
                raise ConfigError(source, key, f"must be positive, got {value}")
        if not 0.0 <= d.fake_window_fraction <= 1.0:
            raise ConfigError(source, "data.fake_window_fraction", "must be in [0, 1]")
        if d.whole_fake_factor <= 0:
            raise ConfigError(source, "data.whole_fake_factor", "must be positive")


def _check_value(value: Any, annotation: Any, source: str, key: str) -> Any:
    """Check (and gently coerce: int -> float) a leaf value against its annotation."""
    hint = annotation
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        hint = next(a for a in options if a is not type(None))
        origin = typing.get_origin(hint)
    if origin is dict or hint is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(source, key, f"expected a mapping, got {value!r}")
        return dict(value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool):
        if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
            raise ConfigError(source, key, f"expected {hint.__name__}, got {value!r}")
    return value


def _build(cls: type, data: Any, source: str, prefix: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(source, prefix.rstrip("."), f"expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            raise ConfigError(source, f"{prefix}{key}", "unknown key")
    values = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            values[name] = _build(hint, value, source, f"{prefix}{name}.")
        else:
            values[name] = _check_value(value, hint, source, f"{prefix}{name}")
    try:
        return cls(**values)
    except (TypeError, ValueError) as e:
        raise ConfigError(source, prefix.rstrip(".") or "config", str(e)) from None


def apply_overrides(data: dict[str, Any], overrides: Sequence[str], source: str) -> dict[str, Any]:
    """Return a copy of ``data`` with ``a.b.c=value`` overrides applied (values parsed as YAML)."""
    out = _deep_copy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(source, item, "an override must look like key.sub=value")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as e:
            raise ConfigError(source, key, f"cannot parse value {raw!r}: {e}") from None
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(source, key, f"'{part}' is not a section")
            node = child
        node[parts[-1]] = value
    return out


def _deep_copy(data: Any) -> Any:
    if isinstance(data, Mapping):
        return {k: _deep_copy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_deep_copy(v) for v in data]
    return data


def config_from_dict(data: Mapping[str, Any] | None, source: str = "config") -> TrainConfig:
    config = _build(TrainConfig, data or {}, source, "")
    config.validate(source)
    return config


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read a YAML training config, apply overrides, validate."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(source, "-", f"cannot read: {e.strerror}") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise ConfigError(source, "-", f"not valid YAML: {e}".replace("\n", " ")) from None
    if not isinstance(data, dict):
        raise ConfigError(source, "-", "the top level must be a mapping of sections")
    return config_from_dict(apply_overrides(data, overrides, source), source)


def save_config(config: TrainConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False), encoding="utf-8")
