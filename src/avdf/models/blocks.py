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
import torch.nn.functional as F
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


def _patch_stem(cin: int, cout: int) -> nn.Sequential:
    """Non-overlapping 4x4 patches -> channels (a ConvNeXt-style stem): 4x downsampling in
    one cheap step. A 5x5 stride-2 stem plus one more stage measured ~4x slower on CPU
    for these crop sizes, which is most of a training step."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 4, stride=4, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


def _conv1d_bn_relu(cin: int, cout: int, kernel: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv1d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm1d(cout),
        nn.ReLU(inplace=True),
    )


def _run_on_valid(trunk: nn.Module, frames: torch.Tensor, valid: torch.Tensor, out_dim: int):
    """Apply ``trunk`` to the valid frames only and scatter back.

    frames (B, T, ...), valid (B, T) bool -> (B, T, out_dim), zeros where not valid.
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
    """Audio: the step's log-mel chunk (F frames x n_mels) -> vector, with 1-D convolutions
    along the mel axis and the F frames as input channels (so their order is kept).

    F is only a handful of frames (4 at 25 fps with a 10 ms hop) and the contextual GRU
    supplies the longer time context; 1-D convolutions on this shape measured ~20x faster
    on CPU than the equivalent 2-D ones. The weights depend on F = spec.mel_frames_per_step.
    """

    def __init__(self, spec: MediaSpec, out_dim: int = 64, width: int = 16) -> None:
        super().__init__()
        c1, c2, c3 = width, 2 * width, 4 * width
        self.out_dim = out_dim
        frames = spec.mel_frames_per_step
        self.trunk = nn.Sequential(
            nn.BatchNorm1d(frames),  # standardises the arbitrary dB offset of log-mel
            _conv1d_bn_relu(frames, c1, 5, 2),
            _conv1d_bn_relu(c1, c2, 3, 2),
            _conv1d_bn_relu(c2, c3, 3, 2),
            nn.AdaptiveAvgPool1d(1),
            nn.Flatten(),
            nn.Linear(c3, out_dim),
        )

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        # x (B, T, F, n_mels): each step is an (F channels, n_mels) 1-D signal
        return _run_on_valid(self.trunk, x, valid, self.out_dim)


@register_block("face_cnn")
class FaceConvBlock(nn.Module):
    """Face crop (3, S, S) in [0, 1] -> vector, one frame at a time (patch stem + 2 stages)."""

    def __init__(self, spec: MediaSpec, out_dim: int = 64, width: int = 16) -> None:
        super().__init__()
        c1, c2, c3 = width, 2 * width, 4 * width
        self.out_dim = out_dim
        self.trunk = _Trunk2d(
            [
                _patch_stem(3, c1),  # S -> S/4
                _conv_bn_relu(c1, c2, 3, 2),  # -> S/8
                _conv_bn_relu(c2, c3, 3, 2),  # -> S/16
            ],
            c3,
            out_dim,
        )

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        # x (B, T, 3, S, S)
        return _run_on_valid(self.trunk, x, valid, self.out_dim)


@register_block("face_3d")
@register_block("lip_3d")
class Conv3dFrontBlock(nn.Module):
    """Face or mouth crops: a 3-D convolution front end (kernel 3 x 4 x 4, stride 1 x 4 x 4,
    zero padding 1 in time: 3 steps of context, as in lip-reading front ends), then a 2-D
    trunk per frame. The time taps let the first layer see motion (a frame against its
    neighbours): frozen or repeated frames, seams where a clip was spliced and flicker are
    invisible to a block that looks at one frame at a time (``face_cnn``).

    The 3-D convolution is computed exactly but cheaply: one 2-D convolution per valid
    frame produces the three time slices of the kernel as output channels, and each step
    sums slice 0 of the previous frame, slice 1 of its own and slice 2 of the next. The
    shifts happen at 1/4 resolution, only valid frames are convolved, and PyTorch's CPU
    Conv3d backward (measured ~10x slower than this whole block) is avoided. Invalid
    neighbours contribute zero, exactly like the 3-D conv's own padding at a window edge,
    so padding cannot change a real step's features.
    """

    in_channels = 3

    def __init__(self, spec: MediaSpec, out_dim: int = 64, width: int = 16) -> None:
        super().__init__()
        c1, c2, c3 = width, 2 * width, 4 * width
        self.out_dim, self.front_channels = out_dim, c1
        # Output channels ordered (time offset -1, 0, +1) x c1.
        self.front = nn.Conv2d(self.in_channels, 3 * c1, 4, stride=4, bias=False)
        self.trunk = nn.Sequential(
            nn.BatchNorm2d(c1),
            nn.ReLU(inplace=True),
            _Trunk2d([_conv_bn_relu(c1, c2, 3, 2), _conv_bn_relu(c2, c3, 3, 2)], c3, out_dim),
        )

    def front_end(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """The 3-D convolution: x (B, T, 3, M, M) -> (B, T, c1, M/4, M/4), zero where invalid."""
        b, t = valid.shape
        h, w = x.shape[-2] // 4, x.shape[-1] // 4
        slices = x.new_zeros(b, t, 3, self.front_channels, h, w)
        if bool(valid.any()):
            frames = self.input_channels(x[valid])
            slices[valid] = self.front(frames).unflatten(1, (3, self.front_channels))
        out = slices[:, :, 1].clone()
        out[:, 1:] += slices[:, :-1, 0]  # kernel tap at t - 1
        out[:, :-1] += slices[:, 1:, 2]  # kernel tap at t + 1
        return out * valid[:, :, None, None, None].to(out.dtype)

    def input_channels(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, 3, M, M) crops -> what the front convolution sees (the crops themselves)."""
        return frames

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        return _run_on_valid(self.trunk, self.front_end(x, valid), valid, self.out_dim)


@register_block("face_3d_residual")
class ResidualConv3dFrontBlock(Conv3dFrontBlock):
    """``face_3d`` that also sees each crop's high-frequency residual (the crop minus its
    3x3 box blur, amplified), beside the colours. Generated faces differ from camera faces
    mostly in fine texture and noise (forensic detectors feed such residuals, e.g. SRM
    filters); a learned 4x4 stride-4 stem can represent them but, trained from scratch on a
    hundred genuine fakes, is not pushed to. Costs one extra input channel group only."""

    in_channels = 6
    residual_gain = 4.0  # residuals are a few grey levels: bring them to the colours' scale

    def input_channels(self, frames: torch.Tensor) -> torch.Tensor:
        blurred = F.avg_pool2d(frames, 3, stride=1, padding=1, count_include_pad=False)
        return torch.cat([frames, self.residual_gain * (frames - blurred)], dim=1)
