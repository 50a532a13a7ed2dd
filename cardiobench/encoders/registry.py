"""Encoder registry: built-ins by decorator, user encoders as ``module:Class`` or entry points."""

from __future__ import annotations

import importlib
import logging
from importlib.metadata import entry_points
from typing import Any, Callable, TypeVar

from cardiobench.encoders.base import Encoder

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "cardiobench.encoders"
_REGISTRY: dict[str, Callable[..., Encoder]] = {}
_DESCRIPTIONS: dict[str, str] = {}

F = TypeVar("F", bound=Callable[..., Encoder])


def register_encoder(name: str, description: str = "") -> Callable[[F], F]:
    """Decorator: make a factory (or Encoder class) available as ``name``."""

    def deco(factory: F) -> F:
        if name in _REGISTRY and _REGISTRY[name] is not factory:
            raise ValueError(f"encoder {name!r} is registered twice")
        _REGISTRY[name] = factory
        _DESCRIPTIONS[name] = description or (factory.__doc__ or "").strip().split("\n")[0]
        return factory

    return deco


def _load_builtins() -> None:
    # Importing the package registers every built-in wrapper.
    importlib.import_module("cardiobench.encoders")


def available_encoders() -> dict[str, str]:
    """Registered names (built-ins and entry points) with a one-line description."""
    _load_builtins()
    names = dict(_DESCRIPTIONS)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        names.setdefault(ep.name, f"plugin {ep.value}")
    return dict(sorted(names.items()))


def build_encoder(name: str, /, **kwargs: Any) -> Encoder:
    """Instantiate an encoder by registered name, entry-point name, or ``module:Class``.

    ``kwargs`` go to the factory (e.g. ``weights=PATH``, ``device=``). An unknown name raises a
    ``KeyError`` that lists what is available.
    """
    _load_builtins()
    if name in _REGISTRY:
        enc = _REGISTRY[name](**kwargs)
    elif ":" in name and not name.startswith("hf-hub:"):
        module_name, _, attr = name.partition(":")
        try:
            obj = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise KeyError(f"cannot import encoder {name!r}: {exc}") from exc
        enc = obj(**kwargs)
    else:
        eps = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
        if name not in eps:
            raise KeyError(f"unknown encoder {name!r}; available: {', '.join(available_encoders())}"
                           " (or pass module:Class)")
        enc = eps[name].load()(**kwargs)
    if not isinstance(enc, Encoder):
        raise TypeError(f"{name!r} built a {type(enc).__name__}, not a cardiobench Encoder")
    return enc
