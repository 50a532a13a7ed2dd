"""Which results may be ranked or compared together: the same labels of the same task.

A result records two fingerprints in its ``provenance``: ``manifest_fingerprint`` (the split:
which sample is in which split, :func:`cardiobench.manifest.split_fingerprint`) and
``label_fingerprint`` (the labels it was scored on, :func:`label_fingerprint`). Two results of
one task scored on different label versions of the same split -- a corrected EF file, a
re-measured LVH table -- share the split fingerprint but not the label fingerprint: their numbers
are not comparable, so the leaderboard groups them apart (one trivial baseline per label version,
the version named at the cell) and ``compare`` refuses to pair them.

**Label fingerprint** (exact definition): the task's selected rows (``task.select`` on the
manifest table: every split, before embeddings are looked up, so a sample that failed to embed
does not change it) give one line per row, ``<sample_id> TAB <label>``, where ``<label>`` is the
task's label column written as ``repr(float(x))`` for a number (so ``55``, ``55.0`` and
``"55.0"`` read from a CSV agree), the stripped text otherwise, and the empty string for a
missing value. The lines are sorted, joined with ``\\n`` (no trailing newline), UTF-8 encoded
and hashed with SHA-256 (hex). Results written before this field existed have none; they form
one group of their own ("labels not recorded").
"""

from __future__ import annotations

import hashlib
import math
import numbers
from typing import Any, Iterable, TypeVar

import pandas as pd

#: the group of results that carry no label fingerprint (written before it was recorded)
UNRECORDED = "not recorded"

R = TypeVar("R")


def _label_text(value: Any) -> str:
    """Canonical text of one label value (see the module docstring)."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    if isinstance(value, numbers.Number) and not isinstance(value, bool):
        f = float(value)  # type: ignore[arg-type]
        return "" if math.isnan(f) else repr(f)
    text = str(value).strip()
    try:
        f = float(text)
    except ValueError:
        return text
    return repr(f) if math.isfinite(f) else text


def label_fingerprint(rows: pd.DataFrame, label: str) -> str:
    """SHA-256 of the sorted ``(sample_id, label)`` lines of ``rows`` (a task's selected rows,
    all splits); see the module docstring for the exact text hashed."""
    if label not in rows:
        raise KeyError(f"label column {label!r} not in the task's rows")
    lines = sorted(f"{sid}\t{_label_text(v)}"
                   for sid, v in zip(rows["sample_id"].astype(str), rows[label].tolist()))
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


def label_version(result: Any) -> str:
    """The result's label fingerprint, or :data:`UNRECORDED`."""
    return str((getattr(result, "provenance", None) or {}).get("label_fingerprint")
               or UNRECORDED)


def short(fingerprint: str) -> str:
    """Short form shown at a cell: the first 8 hex digits (or ``not recorded``)."""
    return fingerprint if fingerprint == UNRECORDED else fingerprint[:8]


def label_versions(results: Iterable[R]) -> dict[str, list[str]]:
    """Per task, its distinct label fingerprints in order of first appearance (only tasks whose
    results disagree need a word at the cell: those with more than one)."""
    out: dict[str, list[str]] = {}
    for r in results:
        fps = out.setdefault(getattr(r, "task"), [])
        fp = label_version(r)
        if fp not in fps:
            fps.append(fp)
    return out


def mixed_tasks(results: Iterable[R]) -> dict[str, list[str]]:
    """Tasks whose results were scored on more than one label version, with those versions."""
    return {t: fps for t, fps in label_versions(results).items() if len(fps) > 1}


def same_labels(a: Any, b: Any) -> str | None:
    """None when ``a`` and ``b`` were scored on the same labels, else why not (in words)."""
    fa, fb = label_version(a), label_version(b)
    if fa == fb:
        return None
    return (f"{a.task}: the two results were scored on different labels (label fingerprint "
            f"{short(fa)} vs {short(fb)}); their numbers are not comparable -- score both on "
            "the same manifest")
