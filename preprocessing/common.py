"""Small helpers shared by the harmonisers: ED/ES frames from EchoNet tracings.

Kept generic on purpose: nothing here knows about any one dataset.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from cardiobench.manifest import Problem

if TYPE_CHECKING:  # pragma: no cover
    from cardiobench.schemas import TableSchema

log = logging.getLogger(__name__)


def ed_es_from_tracing_file(path: str | Path, schema: "TableSchema",
                            problems: list[Problem]) -> pd.DataFrame:
    """ED/ES frames per video from an EchoNet ``VolumeTracings.csv`` read against ``schema``.

    Rows with an empty or non-numeric coordinate are dropped with one warning naming their lines
    (appended to ``problems``, with the reader's tolerated-quirk warnings); rows whose ``Frame``
    is not a number trace no frame and are skipped. Returns :func:`ed_es_from_areas`'s columns,
    ``FileName`` without a ``.avi`` suffix.
    """
    from cardiobench.schemas import read_side_table

    side = read_side_table(path, schema)
    if side.bad_rows:
        first = [int(side.line.iat[r]) for r in sorted(side.bad_rows)[:5]]
        more = " ..." if len(side.bad_rows) > 5 else ""
        problems.append(Problem(
            "bad_tracing_rows", f"{len(side.bad_rows)} tracing row(s) with an empty or "
            f"non-numeric coordinate/frame ignored (lines {first}{more})",
            file=str(path), severity="warning"))
    problems += [p for p in side.problems if p.severity == "warning"]
    tracings = side.table.drop(index=list(side.bad_rows))
    tracings["FileName"] = tracings["FileName"].str.removesuffix(".avi")
    return ed_es_from_areas(traced_areas(tracings))


def _polygon_area(x: np.ndarray, y: np.ndarray) -> float:
    """Shoelace area of a closed polygon."""
    return float(0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def traced_areas(tracings: pd.DataFrame) -> pd.DataFrame:
    """Area of every traced LV outline in an EchoNet ``VolumeTracings`` table.

    Handles both EchoNet formats: Dynamic's chords (``X1, Y1, X2, Y2``: the first row of a frame is
    the long axis, the chord endpoints form the outline, as in the EchoNet loaders) and
    Pediatric's polygon points (``X, Y``). Rows whose ``Frame`` is not a number are skipped.
    Returns columns ``FileName, Frame, area`` (pixels²), one row per traced frame.
    """
    chord = {"X1", "Y1", "X2", "Y2"}.issubset(tracings.columns)
    t = tracings.assign(Frame=pd.to_numeric(tracings["Frame"], errors="coerce"))
    t = t.dropna(subset=["Frame"])
    rows = []
    for (name, frame), pts in t.groupby(["FileName", "Frame"], sort=False):
        if chord:
            x = np.concatenate([pts["X1"].to_numpy(float)[1:], pts["X2"].to_numpy(float)[1:][::-1]])
            y = np.concatenate([pts["Y1"].to_numpy(float)[1:], pts["Y2"].to_numpy(float)[1:][::-1]])
        else:
            x, y = pts["X"].to_numpy(float), pts["Y"].to_numpy(float)
        rows.append((str(name), int(frame), _polygon_area(x, y) if len(x) >= 3 else 0.0))
    return pd.DataFrame(rows, columns=["FileName", "Frame", "area"])


def ed_es_from_areas(areas: pd.DataFrame) -> pd.DataFrame:
    """Per video, ED = the traced frame with the larger area, ES = the smaller.

    Only videos with exactly two traced frames of different area get frames; the others are
    returned with ``ed_frame``/``es_frame`` NaN and ``n_traced`` telling why. Returns columns
    ``FileName, ed_frame, es_frame, n_traced``.
    """
    rows = []
    for name, grp in areas.groupby("FileName", sort=False):
        ed = es = float("nan")
        if len(grp) == 2 and grp["area"].iloc[0] != grp["area"].iloc[1]:
            g = grp.sort_values("area")
            es, ed = float(g["Frame"].iloc[0]), float(g["Frame"].iloc[1])
        rows.append((str(name), ed, es, int(len(grp))))
    return pd.DataFrame(rows, columns=["FileName", "ed_frame", "es_frame", "n_traced"])
