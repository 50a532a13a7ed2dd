"""Quiet, useful reporting of many problems: one line per kind, the full list in a CSV.

A download with 199 videos lacking a tracing should say so once -- ``no_ed_es: 199 sample(s),
e.g. a, b, c, d, e`` -- not 199 times; the full list goes to ``<manifest>.problems.csv``
(:func:`cardiobench.manifest.problems_table`).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Iterable

from cardiobench.manifest import Problem

FIRST_N = 5


def _label(p: Problem) -> str:
    if p.sample_id is not None:
        return str(p.sample_id)
    if p.file is not None:
        return f"{p.file}" + (f" line {p.line}" if p.line is not None else "")
    return p.message


def summarise(problems: Iterable[Problem], first_n: int = FIRST_N) -> list[str]:
    """One line per (severity, kind): the count, the first ``first_n`` samples, one example.

    A kind seen once is shown in full (``str(problem)``).
    """
    return [line for _, line in _summary(problems, first_n)]


def _summary(problems: Iterable[Problem], first_n: int) -> list[tuple[str, str]]:
    """``(severity, line)`` per (severity, kind), in first-seen order (see :func:`summarise`)."""
    groups: "OrderedDict[tuple[str, str], list[Problem]]" = OrderedDict()
    for p in problems:
        groups.setdefault((p.severity, p.kind), []).append(p)
    lines = []
    for (severity, kind), items in groups.items():
        if len(items) == 1:
            lines.append((severity, str(items[0])))
            continue
        names = list(dict.fromkeys(_label(p) for p in items))
        more = " ..." if len(names) > first_n else ""
        lines.append((severity, f"[{severity}] {kind}: {len(items)} occurrence(s), e.g. "
                      f"{', '.join(names[:first_n])}{more} -- first: {items[0].message}"))
    return lines


def log_summary(logger: logging.Logger, prefix: str, problems: Iterable[Problem],
                level: int | None = None) -> None:
    """Log :func:`summarise` lines once each: at ``level``, else warnings at WARNING and the
    rest at ERROR."""
    for severity, line in _summary(problems, FIRST_N):
        lvl = level if level is not None else (
            logging.WARNING if severity == "warning" else logging.ERROR)
        logger.log(lvl, "%s: %s", prefix, line)
