"""Self-describing checkpoints that load with ``torch.load(weights_only=True)``.

An avdf checkpoint is a plain dict::

    {format_version, avdf_version, model_name, model_kwargs, media_spec, state_dict, extra}

``load_checkpoint`` also reads a Lightning ``.ckpt`` whose ``hyper_parameters`` hold
``model_name``, ``model_kwargs`` and ``media_spec`` and whose state-dict keys carry the
LightningModule's attribute prefix (``model.``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

import avdf
from avdf.atomic import atomic_open
from avdf.errors import InputError
from avdf.models.mmms_ba import PAPER_FORM
from avdf.models.registry import create_model
from avdf.timebase import MediaSpec

FORMAT_VERSION = 1


def save_checkpoint(
    path: str | Path, model: nn.Module, spec: MediaSpec, extra: Mapping[str, Any] | None = None
) -> Path:
    """Write ``model`` (built by :func:`create_model`) with its MediaSpec, atomically.

    ``extra`` must be JSON-serialisable (it is read back under ``weights_only=True``).
    A half-written file is never left at ``path``: the dict goes to a temporary file in the
    same folder which then replaces ``path``.
    """
    path = Path(path)
    name = getattr(model, "model_name", None)
    kwargs = getattr(model, "model_kwargs", None)
    if not isinstance(name, str) or not isinstance(kwargs, dict):
        raise ValueError("model has no model_name/model_kwargs: build it with create_model()")
    model_spec = kwargs.get("spec")
    if model_spec is not None and MediaSpec.from_dict(model_spec) != spec:
        raise ValueError(
            f"spec {spec} differs from the spec the model was built with {model_spec}; "
            "build the model with create_model(..., spec=spec)"
        )
    extra = dict(extra or {})
    json.dumps(extra)  # fail here, not when a weights_only load rejects it later
    payload = {
        "format_version": FORMAT_VERSION,
        "avdf_version": avdf.__version__,
        "model_name": name,
        "model_kwargs": kwargs,
        "media_spec": spec.to_dict(),
        # Detached CPU copies: a checkpoint saved from a GPU run loads anywhere.
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "extra": extra,
    }
    with atomic_open(path, "wb") as f:
        torch.save(payload, f)
    return path


def _strip_prefix(state: Mapping[str, torch.Tensor], expected: set[str]) -> dict[str, Any]:
    """Find the prefix (e.g. ``model.``) under which ``expected`` keys live in ``state``."""
    if expected <= set(state):
        return {k: state[k] for k in expected}
    probe = next(iter(sorted(expected)))
    for key in state:
        if key.endswith(probe):
            prefix = key[: len(key) - len(probe)]
            if all(prefix + k in state for k in expected):
                return {k: state[prefix + k] for k in expected}
    missing = sorted(expected - set(state))[:3]
    raise KeyError(f"state dict does not hold the model's weights (e.g. {missing})")


def _upgrade_head(kwargs: dict[str, Any], state: Mapping[str, Any]) -> Mapping[str, Any]:
    """Checkpoints from before the localization heads were pluggable held the paper's
    single-scale head as ``fake_head`` / ``boundary_head``: load them as that head."""
    if "head" in kwargs or not any(k.split(".")[-2:-1] == ["fake_head"] for k in state):
        return state
    kwargs["head"] = "single_scale"
    renamed = {"fake_head.": "head.fake.", "boundary_head.": "head.boundaries."}
    out = {}
    for key, value in state.items():
        for old, new in renamed.items():
            if old in key:
                key = key.replace(old, new)
        out[key] = value
    return out


def _upgrade_options(kwargs: dict[str, Any]) -> None:
    """Checkpoints from before temporal contrast, the sync stream and scaled / banded
    attention were options were built without them: spell that out, or they would get
    today's defaults and no longer match their weights."""
    for key, value in PAPER_FORM.items():
        kwargs.setdefault(key, value)


def load_checkpoint(
    path: str | Path, map_location: str | torch.device = "cpu"
) -> tuple[nn.Module, MediaSpec, dict[str, Any]]:
    """Load an avdf or Lightning checkpoint -> (model in eval mode, MediaSpec, info).

    ``info`` holds ``format`` ("avdf" or "lightning"), ``model_name``, ``model_kwargs``,
    ``avdf_version`` (None if unknown) and ``extra`` (for Lightning: ``epoch``,
    ``global_step`` when present). Failures raise :class:`InputError` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "checkpoint not found")
    try:
        # MediaSpec allow-listed in case a training run stored the object itself.
        with torch.serialization.safe_globals([MediaSpec]):
            raw = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # unpickling errors have many types; all mean "unusable"
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise InputError(
            path, f"not a loadable checkpoint ({type(error).__name__}: {first_line})"
        ) from None
    if not isinstance(raw, dict):
        raise InputError(path, "not a checkpoint (expected a dict)")

    if "format_version" in raw:
        fmt, meta, state = "avdf", raw, raw.get("state_dict")
        extra = dict(raw.get("extra") or {})
        if raw["format_version"] > FORMAT_VERSION:
            raise InputError(
                path, f"checkpoint format {raw['format_version']} is newer than this avdf"
            )
    elif isinstance(raw.get("hyper_parameters"), Mapping) and "state_dict" in raw:
        fmt, meta, state = "lightning", raw["hyper_parameters"], raw["state_dict"]
        extra = {k: raw[k] for k in ("epoch", "global_step") if k in raw}
    else:
        raise InputError(path, "not an avdf or Lightning checkpoint")

    try:
        name = str(meta["model_name"])
        kwargs = dict(meta.get("model_kwargs") or {})
        state = _upgrade_head(kwargs, state)
        if name != "ensemble":  # an ensemble's members were saved fully resolved
            _upgrade_options(kwargs)
        spec_raw = meta["media_spec"]
        spec = spec_raw if isinstance(spec_raw, MediaSpec) else MediaSpec.from_dict(spec_raw)
        model = create_model(name, **kwargs)
        model.load_state_dict(_strip_prefix(state, set(model.state_dict())))
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise InputError(path, f"checkpoint does not describe a usable model ({error})") from None
    model.to(map_location).eval()
    info = {
        "format": fmt,
        "model_name": name,
        "model_kwargs": model.model_kwargs,
        "avdf_version": meta.get("avdf_version"),
        "extra": extra,
    }
    return model, spec, info


def ensemble_checkpoint(
    members: Sequence[str | Path], path: str | Path
) -> tuple[Path, dict[str, Any]]:
    """Write an untuned ensemble (:mod:`avdf.models.ensemble`) of the trained checkpoints
    ``members`` to ``path``; returns it with the extra it stores.

    Only the members' weights are taken: decoding, calibration and video-score parts
    that ``avdf tune`` stored in them are not, because they were fitted to one member's
    outputs; tune the ensemble afresh. Members must share the MediaSpec and training
    window, else :class:`InputError` naming the first member that differs.
    """
    if len(members) < 2:
        raise ValueError("an ensemble needs at least two checkpoints")
    loaded = [(Path(m), *load_checkpoint(m)) for m in members]
    first_path, _, spec, first_info = loaded[0]
    window = trained_window_steps(first_info)
    for member_path, _, member_spec, info in loaded[1:]:
        if member_spec != spec:
            raise InputError(member_path, f"media spec {member_spec} differs from {first_path}'s")
        if trained_window_steps(info) != window:
            raise InputError(member_path, f"training window differs from {first_path}'s")
    try:
        ensemble = create_model(
            "ensemble",
            members=[
                {"name": info["model_name"], "kwargs": info["model_kwargs"]} for *_, info in loaded
            ],
        )
    except ValueError as error:
        raise InputError(first_path, f"cannot be ensembled with the others ({error})") from None
    for slot, (_, model, _, _) in zip(ensemble.members, loaded, strict=True):
        slot.load_state_dict(model.state_dict())
    extra: dict[str, Any] = {"members": [str(m) for m in members]}
    if window is not None:
        extra["window_steps"] = window
    return save_checkpoint(path, ensemble, spec, extra), extra


def trained_window_steps(info: Mapping[str, Any]) -> int | None:
    """The training window (steps) a loaded checkpoint's ``info`` records, or None."""
    window = info.get("window_steps") or (info.get("extra") or {}).get("window_steps")
    return None if window is None else int(window)
