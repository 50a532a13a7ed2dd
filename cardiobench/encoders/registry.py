"""Encoder registry: built-ins by decorator, user encoders as ``module:Class`` or entry points."""

from __future__ import annotations

import difflib
import importlib
import inspect
import logging
from importlib.metadata import entry_points
from typing import Any, Callable, TypeVar

from cardiobench.encoders.base import Encoder

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "cardiobench.encoders"
_REGISTRY: dict[str, Callable[..., Encoder]] = {}
_DESCRIPTIONS: dict[str, str] = {}
_TARGETS: dict[str, Callable[..., Any]] = {}

F = TypeVar("F", bound=Callable[..., Encoder])


def register_encoder(name: str, description: str = "",
                     forwards_to: Callable[..., Any] | None = None) -> Callable[[F], F]:
    """Decorator: make a factory (or Encoder class) available as ``name``.

    ``forwards_to``: the class (or callable) a factory's ``**kwargs`` are passed on to; its named
    parameters count as accepted arguments, so an unknown ``--encoder-arg`` is refused up front.
    """

    def deco(factory: F) -> F:
        if name in _REGISTRY and _REGISTRY[name] is not factory:
            raise ValueError(f"encoder {name!r} is registered twice")
        _REGISTRY[name] = factory
        if forwards_to is not None:
            _TARGETS[name] = forwards_to
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


def _named_params(fn: Callable[..., Any]) -> tuple[set[str], bool]:
    """(named keyword-passable parameters, whether it takes ``**kwargs``)."""
    target = fn.__init__ if inspect.isclass(fn) else fn  # type: ignore[misc]
    params = inspect.signature(target).parameters.values()
    named = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)} - {"self"}
    return named, any(p.kind == p.VAR_KEYWORD for p in params)


def accepted_args(factory: Callable[..., Any], forwards_to: Callable[..., Any] | None = None) -> set[str] | None:
    """Keyword arguments ``factory`` accepts (through ``forwards_to`` for its ``**kwargs``), or
    None when that cannot be known (a ``**kwargs`` whose destination is not declared)."""
    named, var = _named_params(factory)
    if var:
        if forwards_to is None:
            return None
        more, var2 = _named_params(forwards_to)
        if var2:
            return None
        named |= more
    return named


def required_args(factory: Callable[..., Any]) -> list[str]:
    """Named parameters of ``factory`` without a default (in signature order)."""
    target = factory.__init__ if inspect.isclass(factory) else factory  # type: ignore[misc]
    params = inspect.signature(target).parameters.values()
    return [p.name for p in params if p.name != "self" and p.default is p.empty
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def check_encoder_args(name: str, factory: Callable[..., Any], kwargs: dict[str, Any],
                       forwards_to: Callable[..., Any] | None = None) -> None:
    """Refuse keyword arguments the encoder does not take, and a missing required one, listing
    the accepted ones (and, for a misspelling, the closest accepted name)."""
    try:
        accepted = accepted_args(factory, forwards_to)
        required = required_args(factory)
    except (TypeError, ValueError):  # no signature to read (a builtin): let the call speak
        return
    listed = f"accepted: {', '.join(sorted(accepted))}" if accepted is not None else \
        f"its named arguments: {', '.join(sorted(_named_params(factory)[0]))}"
    unknown = sorted(set(kwargs) - accepted) if accepted is not None else []
    if unknown:
        hints = [f"{u!r} (did you mean {close[0]!r}?)" if close else repr(u)
                 for u in unknown
                 for close in [difflib.get_close_matches(u, sorted(accepted), n=1)]]  # type: ignore[arg-type]
        raise ValueError(f"encoder {name!r} does not accept {', '.join(hints)} "
                         f"(--encoder-arg KEY=VALUE); {listed}")
    missing = [r for r in required if r not in kwargs]
    if missing:
        given = f"; given: {', '.join(sorted(kwargs))}" if kwargs else ""
        raise ValueError(f"encoder {name!r} needs {', '.join(map(repr, missing))} "
                         f"(--encoder-arg {missing[0]}=VALUE){given}; {listed}")


def build_encoder(name: str, /, **kwargs: Any) -> Encoder:
    """Instantiate an encoder by registered name, entry-point name, or ``module:Class``.

    ``kwargs`` go to the factory (e.g. ``weights=PATH``, ``device=``). An unknown name raises a
    ``KeyError`` that lists what is available; an argument the encoder does not take, or a
    required one missing, raises a ``ValueError`` that lists the accepted ones.
    """
    _load_builtins()
    if name in _REGISTRY:
        check_encoder_args(name, _REGISTRY[name], kwargs, _TARGETS.get(name))
        enc = _REGISTRY[name](**kwargs)
    elif ":" in name and not name.startswith("hf-hub:"):
        module_name, _, attr = name.partition(":")
        try:
            obj = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise KeyError(f"cannot import encoder {name!r}: {exc}") from exc
        check_encoder_args(name, obj, kwargs)
        enc = obj(**kwargs)
    else:
        eps = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
        if name not in eps:
            raise KeyError(f"unknown encoder {name!r}; available: {', '.join(available_encoders())}"
                           " (or pass module:Class)")
        factory = eps[name].load()
        check_encoder_args(name, factory, kwargs)
        enc = factory(**kwargs)
    if not isinstance(enc, Encoder):
        raise TypeError(f"{name!r} built a {type(enc).__name__}, not a cardiobench Encoder")
    return enc
