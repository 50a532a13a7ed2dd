"""EchoNet-Dynamic: ``FileList.csv`` + ``VolumeTracings.csv`` + ``Videos/`` → manifest (§1.1).

``sample_id`` = ``FileName`` without extension (the ID the published evaluator joins on), one
video per patient, official ``Split`` (``TRAIN/VAL/TEST``, matched case-insensitively), view A4C,
label ``ef``. ED/ES frames come from ``VolumeTracings.csv``: of a video's two traced frames the
one whose outline encloses the larger area is ED (the reference loader relies on file order).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from cardiobench.manifest import Manifest, ManifestError, Problem
from cardiobench.preprocessing import register_dataset
from cardiobench.preprocessing.common import (ed_es_from_areas, missing_file_problems, read_table,
                                              traced_areas)
from cardiobench.splits import load_spec, map_split_column

log = logging.getLogger(__name__)

FILELIST = "FileList.csv"
TRACINGS = "VolumeTracings.csv"
REQUIRED = ["FileName", "EF", "FPS", "NumberOfFrames", "Split"]
TRACING_REQUIRED = ["FileName", "X1", "Y1", "X2", "Y2", "Frame"]


@register_dataset("echonet_dynamic")
def harmonise(raw_root: Path) -> Manifest:
    """Read an EchoNet-Dynamic download; raise :class:`ManifestError` naming every bad row.

    Errors: a missing required column (named with the file), a ``Split`` outside
    TRAIN/VAL/TEST, a video listed in ``FileList.csv`` but absent from ``Videos/``. Warnings
    (kept in ``Manifest.problems``): videos without a usable ED/ES tracing (their frames are NaN).
    """
    raw_root = Path(raw_root)
    fl = read_table(raw_root / FILELIST, REQUIRED, dtype={"FileName": str, "Split": str})
    sid = fl["FileName"].astype(str).str.strip().str.removesuffix(".avi")
    spec = load_spec("echonet_dynamic")
    column, mapping = str(spec.params["column"]), spec.params["mapping"]
    split, errors = map_split_column(fl[column], mapping, source=str(raw_root / FILELIST),
                                     column=column, ids=sid, lines=range(2, len(fl) + 2))
    table = pd.DataFrame({
        "sample_id": sid,
        "patient_id": sid,
        "split": split,
        "path": "Videos/" + sid + ".avi",
        "view": "A4C",
        "key_frame": np.nan,
        "fps": pd.to_numeric(fl["FPS"], errors="coerce"),
        "n_frames": pd.to_numeric(fl["NumberOfFrames"], errors="coerce"),
        "ef": pd.to_numeric(fl["EF"], errors="coerce"),
    })

    errors += missing_file_problems(raw_root, table)
    if errors:
        raise ManifestError(f"echonet_dynamic: {raw_root} has {len(errors)} problem(s)", errors)

    problems: list[Problem] = []
    trace_path = raw_root / TRACINGS
    if trace_path.is_file():
        tracings = read_table(trace_path, TRACING_REQUIRED, dtype={"FileName": str})
        tracings["FileName"] = tracings["FileName"].str.strip().str.removesuffix(".avi")
        frames = ed_es_from_areas(traced_areas(tracings)).set_index("FileName")
    else:
        problems.append(Problem("missing_tracings", f"{trace_path} not found: no ED/ES frames",
                                severity="warning"))
        frames = pd.DataFrame(columns=["ed_frame", "es_frame", "n_traced"])
    table["ed_frame"] = sid.map(frames["ed_frame"]).astype(float)
    table["es_frame"] = sid.map(frames["es_frame"]).astype(float)
    n_traced = sid.map(frames["n_traced"])
    for i in np.flatnonzero(table["ed_frame"].isna().to_numpy()):
        n = n_traced.iat[i]
        why = "no tracing" if pd.isna(n) else f"{int(n)} traced frame(s) instead of 2 distinct"
        problems.append(Problem("no_ed_es", f"{why} in {TRACINGS}; ed/es frames left empty",
                                sample_id=str(sid.iat[i]), row=i, severity="warning"))
    for p in problems:
        log.warning("echonet_dynamic: %s", p)
    return Manifest(dataset="echonet_dynamic", table=table, root=str(raw_root),
                    split_rule={"rule": spec.rule, "source": f"{FILELIST}:{column}",
                                "map": mapping},
                    source={"name": "EchoNet-Dynamic", "files": [FILELIST, TRACINGS]},
                    problems=problems)
