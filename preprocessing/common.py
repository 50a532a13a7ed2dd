"""Small helpers shared by the harmonisers: read a native table, ED/ES from traced areas.

Kept generic on purpose: nothing here knows about any one dataset.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from cardiobench.manifest import ManifestError

log = logging.getLogger(__name__)


def read_table(path: str | Path, required: Iterable[str] = (), *,
               dtype: dict[str, str] | str | None = None, **kwargs: object) -> pd.DataFrame:
    """Read a CSV (or, for ``.xlsx``/``.xls``, the first sheet) and require columns.

    Column names are stripped of surrounding whitespace (native side files sometimes carry
    ``" EF"``). Raises :class:`ManifestError` naming the file when it is absent or unparsable,
    and naming the file and every missing column when ``required`` columns are absent.
    ``dtype`` and further keyword arguments go to :func:`pandas.read_csv` / ``read_excel``.
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"required file {path} does not exist")
    try:
        if path.suffix.lower() in (".xlsx", ".xls"):
            table = pd.read_excel(path, dtype=dtype, **kwargs)  # type: ignore[arg-type]
        else:
            table = pd.read_csv(path, dtype=dtype, **kwargs)  # type: ignore[arg-type]
    except Exception as exc:  # pandas raises many types for malformed files
        raise ManifestError(f"cannot parse {path}: {exc}") from exc
    table.columns = [str(c).strip() for c in table.columns]
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise ManifestError(f"{path} lacks required column(s) {missing}; "
                            f"it has {list(table.columns)}")
    return table


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
