"""Per-modality feature blocks: raw per-step inputs -> one vector per step.

Every block maps ``x`` (B, T, ...) and ``valid`` (B, T) bool to (B, T, out_dim). Only the
valid frames go through the 2-D trunk (gathered into one (N, ...) batch), so padding and
absent steps cost nothing and never enter BatchNorm statistics; their output rows are zero.
Defaults are small (16-32-64 channels, strided convolutions, global average pooling) so a
2-core CPU can train them. Other backbones plug in with :func:`register_block`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch
from torch import nn

from avdf.timebase import MediaSpec

B = TypeVar("B", bound=type[nn.Module])

_BLOCKS: dict[str, type[nn.Module]] = {}


def register_block(name: str) -> Callable[[B], B]:
    """Class decorator: register a block built as ``cls(spec, out_dim, width)``."""

    def decorator(cls: B) -> B:
        if name in _BLOCKS and _BLOCKS[name] is not cls:
            raise ValueError(f"block {name!r} is already registered")
        _BLOCKS[name] = cls
        return cls

    return decorator


def list_blocks() -> list[str]:
    return sorted(_BLOCKS)


def create_block(name: str, spec: MediaSpec, out_dim: int, width: int = 16) -> nn.Module:
    """Build block ``name``; ``width`` is the first conv's channel count (doubles per stage)."""
    if name not in _BLOCKS:
        raise KeyError(f"unknown block {name!r}; registered: {', '.join(list_blocks())}")
    return _BLOCKS[name](spec, out_dim, width)


def _conv_bn_relu(
    cin: int, cout: int, kernel: int | tuple[int, int], stride: int | tuple[int, int]
) -> nn.Sequential:
    padding = tuple(k // 2 for k in kernel) if isinstance(kernel, tuple) else kernel // 2
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def _run_on_valid(trunk: nn.Module, frames: torch.Tensor, valid: torch.Tensor, out_dim: int):
    """Apply ``trunk`` to the valid frames only and scatter back.

    frames (B, T, C, H, W), valid (B, T) bool -> (B, T, out_dim), zeros where not valid.
    """
    b, t = valid.shape
    out = frames.new_zeros(b, t, out_dim)
    if bool(valid.any()):
        out[valid] = trunk(frames[valid])  # (N, C, H, W) -> (N, out_dim)
    return out


class _Trunk2d(nn.Module):
    """Strided conv stages + global average pooling + linear projection: (N, C, H, W) -> (N, D)."""

    def __init__(
        self, stages: list[nn.Module], channels: int, out_dim: int, first: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.first = first if first is not None else nn.Identity()
        self.stages = nn.Sequential(*stages)
        self.proj = nn.Linear(channels, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.first(x))
        return self.proj(x.mean(dim=(2, 3)))


@register_block("mel_cnn")
class MelConvBlock(nn.Module):
    """Audio: the step's log-mel chunk (F frames x n_mels) as a 1-channel image.

    Strides fall mostly on the mel axis because F is only a handful of frames (4 at 25 fps,
    10 ms hop); the contextual GRU supplies the longer time context.
    """

    def __init__(self, spec: MediaSpec, out_dim: int = 64, width: int = 16) -> None:
        super().__init__()
        c1, c2, c3 = width, 2 * width, 4 * width
        self.out_dim = out_dim
        # BatchNorm on the raw log-mel standardises its arbitrary dB offset per batch.
        self.trunk = _Trunk2d(
            [
                _conv_bn_relu(1, c1, 3, (1, 2)),
                _conv_bn_relu(c1, c2, 3, (1, 2)),
                _conv_bn_relu(c2, c3, 3, (2, 2)),
            ],
            c3,
            out_dim,
            first=nn.BatchNorm2d(1),
        )

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        # x (B, T, F, n_mels) -> (B, T, 1, F, n_mels)
        return _run_on_valid(self.trunk, x.unsqueeze(2), valid, self.out_dim)


@register_block("face_cnn")
class FaceConvBlock(nn.Module):
    """Face crop (3, S, S) in [0, 1] -> vector, one frame at a time (4 stride-2 stages)."""

    def __init__(self, spec: MediaSpec, out_dim: int = 64, width: int = 16) -> None:
        super().__init__()
        c1, c2, c3 = width, 2 * width, 4 * width
        self.out_dim = out_dim
        self.trunk = _Trunk2d(
            [
                _conv_bn_relu(3, c1, 5, 2),
                _conv_bn_relu(c1, c2, 3, 2),
                _conv_bn_relu(c2, c3, 3, 2),
                _conv_bn_relu(c3, c3, 3, 2),
            ],
            c3,
            out_dim,
        )

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        # x (B, T, 3, S, S)
        return _run_on_valid(self.trunk, x, valid, self.out_dim)


@register_block("lip_3d")
class LipConv3dBlock(nn.Module):
    """Mouth crops: a 3-D conv front end (kernel 3 in time, as in lip-reading front ends)
    over the whole window, then a 2-D trunk per frame.

    Invalid frames are zeroed before the 3-D conv, so a padded step looks exactly like the
    conv's own zero padding and cannot change its neighbours' features. The front end has
    no BatchNorm because it necessarily sees those zero frames.
    """

    def __init__(self, spec: MediaSpec, out_dim: int = 64, width: int = 16) -> None:
        super().__init__()
        c1, c2, c3 = width, 2 * width, 4 * width
        self.out_dim = out_dim
        self.front = nn.Sequential(
            nn.Conv3d(3, c1, (3, 5, 5), stride=(1, 2, 2), padding=(1, 2, 2)),
            nn.ReLU(inplace=True),
        )
        self.trunk = _Trunk2d(
            [_conv_bn_relu(c1, c2, 3, 2), _conv_bn_relu(c2, c3, 3, 2)], c3, out_dim
        )

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        # x (B, T, 3, M, M) -> zero invalid -> (B, 3, T, M, M) for Conv3d
        x = torch.where(valid[:, :, None, None, None], x, torch.zeros_like(x))
        y = self.front(x.transpose(1, 2)).transpose(1, 2)  # (B, T, c1, M/2, M/2)
        return _run_on_valid(self.trunk, y, valid, self.out_dim)
