"""Model registry in the style of timm: factories register under a name, ``create_model``
builds by name, and every instance says how to rebuild itself.

A factory is any callable returning an ``nn.Module``. After building, ``create_model`` makes
sure the module carries ``model_name`` and ``model_kwargs`` (JSON-serialisable) so a
checkpoint can describe itself: ``create_model(m.model_name, **m.model_kwargs)`` rebuilds an
identical architecture.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from typing import Any, TypeVar

from torch import nn

ModelFactory = Callable[..., nn.Module]
F = TypeVar("F", bound=ModelFactory)

_MODELS: dict[str, ModelFactory] = {}


def register_model(name: str | None = None) -> Callable[[F], F]:
    """Decorator: register ``factory`` under ``name`` (default: the function's name)."""

    def decorator(factory: F) -> F:
        key = name or factory.__name__
        if key in _MODELS and _MODELS[key] is not factory:
            raise ValueError(f"model {key!r} is already registered")
        _MODELS[key] = factory
        return factory

    return decorator


def list_models() -> list[str]:
    """Names of every registered model, sorted."""
    return sorted(_MODELS)


def jsonable(value: Any) -> Any:
    """Turn kwargs into plain JSON types (dataclasses such as MediaSpec become dicts,
    tuples become lists) and fail loudly on anything that cannot be written as JSON."""
    if is_dataclass(value) and not isinstance(value, type):
        value = asdict(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"model kwarg value {value!r} is not JSON-serialisable")


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the registered model ``name`` with ``kwargs`` overriding its defaults."""
    if name not in _MODELS:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(list_models())}")
    model = _MODELS[name](**kwargs)
    model.model_name = name
    # Models that resolve their own full configuration (every default spelled out) set
    # model_kwargs themselves; that is preferred because later default changes cannot
    # then silently change a saved architecture.
    if not isinstance(getattr(model, "model_kwargs", None), dict):
        model.model_kwargs = jsonable(kwargs)
    json.dumps(model.model_kwargs)  # self-description must survive a JSON round trip
    return model
