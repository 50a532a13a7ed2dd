"""Protocols: how a task's embeddings become scored results.

Each protocol is one module of this package holding its runner and a module attribute
``PROTOCOL`` (a :class:`~cardiobench.protocols.runners.Protocol` record): ``zero_shot``,
``linear_probe``, ``retrieval`` (kNN) and ``alignment``, and beyond one dataset's split
``transfer`` (a source task's runner scoring a declared-equivalent target) and
``label_efficiency`` (learning curves over nested labelled subsets), both built on
``over_runners``. :func:`protocols` finds them, so a new protocol is one new file. Around them:
``runners`` (the runner base), ``scorers`` (bootstrap and
the scorer base), ``task_types`` (one strategy per kind of target), ``tasks`` (the task record),
``evaluate`` (the one evaluator) and ``export`` (the published evaluators' CSV format).
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from cardiobench.protocols.runners import Protocol


@lru_cache(maxsize=1)
def protocols() -> dict[str, "Protocol"]:
    """Every protocol of this package by name, in their ``order`` (tables list them so)."""
    from cardiobench.protocols.runners import Protocol

    found: dict[str, Protocol] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_") or info.ispkg:
            continue
        record = getattr(importlib.import_module(f"{__name__}.{info.name}"), "PROTOCOL", None)
        if isinstance(record, Protocol):
            if record.name in found:
                raise ValueError(f"protocol {record.name!r} is defined twice")
            found[record.name] = record
    return dict(sorted(found.items(), key=lambda kv: (kv[1].order, kv[0])))


def get_protocol(name: str) -> "Protocol":
    """The protocol called ``name``; an unknown name lists the known ones."""
    from cardiobench.protocols.runners import EvaluationError

    known = protocols()
    try:
        return known[name]
    except KeyError:
        raise EvaluationError(f"unknown protocol {name!r}; known: {tuple(known)}") from None
