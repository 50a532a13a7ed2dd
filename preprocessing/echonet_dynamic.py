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

from cardiobench.manifest import Manifest, Problem
from cardiobench.preprocessing.common import ed_es_from_tracing_file
from cardiobench.schemas import (ECHONET_DYNAMIC_FILELIST, ECHONET_TRACINGS, read_side_table,
                                 with_sample_ids)
from cardiobench.splits import SplitSpec, map_split_column

log = logging.getLogger(__name__)

FILELIST = "FileList.csv"
TRACINGS = "VolumeTracings.csv"


def harmonise(raw_root: Path, spec: SplitSpec) -> Manifest:
    """Read an EchoNet-Dynamic download against its declared schemas.

    Raises :class:`ManifestError` for a file-level fault (a missing or misspelled column, named
    with the columns expected and found). Cell faults (``EF`` = ``abc``/``55%``/blank, a
    ``Split`` outside TRAIN/VAL/TEST) make their sample unusable (a problem naming file, line and
    value; ``prepare`` stops or sets the sample aside). Warnings: videos without a usable ED/ES
    tracing (their frames are empty).
    """
    raw_root = Path(raw_root)
    side = read_side_table(raw_root / FILELIST, ECHONET_DYNAMIC_FILELIST)
    fl = side.table
    sid = fl["FileName"].str.removesuffix(".avi").str.removesuffix(".AVI")
    column, mapping = str(spec.params["column"]), spec.params["mapping"]
    split, split_problems = map_split_column(
        fl[column], mapping, source=str(raw_root / FILELIST), column=column, ids=sid,
        lines=side.line.tolist(), severity="unusable", skip_rows=side.bad_rows)
    table = pd.DataFrame({
        "sample_id": sid,
        "patient_id": sid,
        "split": split,
        "path": "Videos/" + sid + ".avi",
        "view": "A4C",
        "key_frame": np.nan,
        "fps": fl["FPS"],
        "n_frames": fl["NumberOfFrames"],
        "ef": fl["EF"],
    })
    problems: list[Problem] = with_sample_ids(side.problems, sid) + split_problems

    trace_path = raw_root / TRACINGS
    if trace_path.is_file():
        frames = ed_es_from_tracing_file(trace_path, ECHONET_TRACINGS, problems).set_index(
            "FileName")
    else:
        problems.append(Problem("missing_tracings", f"{trace_path} not found: no ED/ES frames",
                                severity="warning"))
        frames = pd.DataFrame(columns=["ed_frame", "es_frame", "n_traced"])
    table["ed_frame"] = sid.map(frames["ed_frame"]).astype(float)
    table["es_frame"] = sid.map(frames["es_frame"]).astype(float)
    n_traced = sid.map(frames["n_traced"])
    for i in np.flatnonzero(table["ed_frame"].isna().to_numpy()):
        n = n_traced.iat[i]
        if pd.isna(n):
            why = "no traced frame"
        elif int(n) == 2:
            why = "its 2 traced frames enclose the same area, so ED cannot be told from ES"
        else:
            why = f"{int(n)} traced frame(s) where ED and ES need exactly 2"
        problems.append(Problem("no_ed_es", f"{why} in {TRACINGS}; ed/es frames left empty",
                                sample_id=str(sid.iat[i]), row=int(i), severity="warning"))
    return Manifest(dataset="echonet_dynamic", table=table, root=str(raw_root),
                    split_rule={"rule": spec.rule, "source": f"{FILELIST}:{column}",
                                "map": mapping},
                    source={"name": "EchoNet-Dynamic", "files": [FILELIST, TRACINGS]},
                    problems=problems)


def ground_truth(manifest: Manifest) -> dict[str, pd.DataFrame]:
    """The FileList the published evaluator reads (``data/splits/EchoNet-Dynamic/FileList.csv``),
    written from a manifest in manifest order. ``Split`` is written **lower-case**: the evaluator
    filters ``Split == "test"`` and selects nothing on the native upper-case FileList."""
    t = manifest.table.reset_index(drop=True)
    return {"EchoNet-Dynamic/FileList.csv": pd.DataFrame({
        "FileName": t["sample_id"], "EF": t["ef"], "FPS": t["fps"],
        "NumberOfFrames": t["n_frames"], "Split": t["split"].astype(str).str.lower()})}
