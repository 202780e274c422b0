"""Turn per-step features into the model's input tensors (see :mod:`avdf.models.base`).

Shared by training (collate) and detection so both feed the model identically.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from avdf.preprocess.features import VideoFeatures


def features_to_inputs(
    windows: Sequence[VideoFeatures],
    window_steps: int | None = None,
    experts: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Stack windows into a padded batch of model inputs.

    Returns ``audio`` (B, T, F, n_mels) float32, ``face`` (B, T, 3, S, S) float32 in [0, 1],
    ``lips`` (B, T, 3, M, M) float32 in [0, 1], ``step_mask`` (B, T) bool and ``presence``
    (B, T, 3) bool in (audio, face, lips) order. ``T`` is ``window_steps`` or the longest window.

    Expert streams go in ``experts``: a dict name -> (B, T, channels) float32, zero on padding,
    present only when non-empty. ``experts`` None passes every stream all windows carry; a
    list asks for exactly those (ValueError when a window lacks one).
    """
    if not windows:
        raise ValueError("empty batch")
    carried = set.intersection(*(set(w.experts) for w in windows))
    names = sorted(carried) if experts is None else list(experts)
    lacking = [name for name in names if name not in carried]
    if lacking:
        raise ValueError(f"features lack the expert stream(s) {lacking} the model needs")
    spec = windows[0].spec
    t = window_steps or max(w.n_steps for w in windows)
    b = len(windows)
    audio = np.zeros((b, t, spec.mel_frames_per_step, spec.n_mels), np.float32)
    face = np.zeros((b, t, spec.face_size, spec.face_size, 3), np.uint8)
    lips = np.zeros((b, t, spec.mouth_size, spec.mouth_size, 3), np.uint8)
    step_mask = np.zeros((b, t), bool)
    presence = np.zeros((b, t, 3), bool)
    for i, w in enumerate(windows):
        n = min(w.n_steps, t)
        audio[i, :n] = w.mel[:n]
        face[i, :n] = w.face[:n]
        lips[i, :n] = w.mouth[:n]
        step_mask[i, :n] = True
        presence[i, :n, 0] = w.audio_mask[:n]
        presence[i, :n, 1] = w.face_mask[:n]
        presence[i, :n, 2] = w.face_mask[:n]  # lips come from the face track
    streams = {}
    for name in names:
        channels = windows[0].experts[name].shape[1]
        stream = np.zeros((b, t, channels), np.float32)
        for i, w in enumerate(windows):
            stream[i, : min(w.n_steps, t)] = w.experts[name][:t]
        streams[name] = torch.from_numpy(stream)
    inputs: dict[str, Any] = {
        "audio": torch.from_numpy(audio),
        # (B, T, H, W, 3) uint8 -> (B, T, 3, H, W) float in [0, 1]
        "face": torch.from_numpy(face).permute(0, 1, 4, 2, 3).float().div_(255.0),
        "lips": torch.from_numpy(lips).permute(0, 1, 4, 2, 3).float().div_(255.0),
        "step_mask": torch.from_numpy(step_mask),
        "presence": torch.from_numpy(presence),
    }
    if streams:
        inputs["experts"] = streams
    return inputs


def inputs_on(inputs: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """``inputs`` (as :func:`features_to_inputs` returns them) moved to ``device``."""
    moved: dict[str, Any] = {}
    for key, value in inputs.items():
        if isinstance(value, dict):  # the expert streams
            moved[key] = inputs_on(value, device)
        elif isinstance(value, torch.Tensor):
            moved[key] = value.to(device)
        else:
            moved[key] = value
    return moved
