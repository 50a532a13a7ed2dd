"""HMC-QU (STEMI, A4C + A2C): the Kaggle download's ``A4C.xlsx``/``A2C.xlsx`` + AVI videos.

Layout (raw root)::

    A4C.xlsx, A2C.xlsx            ECHO, SEG1..SEG6/7 ("MI" / "non-MI"), frame/mask columns
    HMC-QU/A4C/<ECHO>.avi         e.g. "ES0001 _4CH_1.avi" (a space in A4C stems)
    HMC-QU/A2C/<ECHO>.avi         e.g. "ES0001_CH2_1.avi"

Per video: STEMI = 1 if any SEG* cell is "MI"; ``patient_id`` = first ``ES\\d+`` in ECHO;
``sample_id`` = ``<patient_id>_<view>`` (the published ``unique_id``). Split: the reference's
patient-level stratified draw (``splits/hmcqu.yaml``, docs/published_benchmark.md Appendix A).
"""

from __future__ import annotations

import logging
from dataclasses import replace
import re
from pathlib import Path

import pandas as pd

from cardiobench.manifest import Manifest, ManifestError, Problem
from cardiobench.schemas import HMCQU_SHEET, read_side_table, with_sample_ids
from cardiobench.splits import SplitSpec, stratified_patient_split

log = logging.getLogger(__name__)

VIEWS = ("A2C", "A4C")  # the reference concatenates A2C rows, then A4C rows
VIDEO_DIR = "HMC-QU"
_PATIENT = re.compile(r"ES\d+")


def read_sheet(path: Path, view: str) -> tuple[pd.DataFrame, list[Problem]]:
    """One label sheet → rows ``ECHO, view, patient_id, stemi, path`` and its problems.

    The sheet is read against :data:`cardiobench.schemas.HMCQU_SHEET`: ``ECHO`` and SEG1..SEGn
    (n ≥ 6, exact spelling; ``Seg 2`` is an error naming it), each SEG cell ``MI`` or ``non-MI``
    (any case). A blank or unknown SEG cell makes its video unusable -- the STEMI label is
    unknown, never "non-MI" by default. An ECHO without an ``ES<digits>`` patient id is an error.
    """
    side = read_side_table(path, HMCQU_SHEET)
    sheet = side.table
    seg_cols = side.family_columns["SEG"]
    errors: list[Problem] = []
    rows = []
    for i in range(len(sheet)):
        echo = sheet.at[i, "ECHO"]
        line = int(side.line.iat[i])
        if pd.isna(echo):
            continue  # a row without a video name: reported as an empty ECHO cell below
        echo = str(echo)
        m = _PATIENT.search(echo)
        if m is None:
            errors.append(Problem("bad_id", f"ECHO {echo!r} has no ES<digits> patient id",
                                  sample_id=echo, row=i, file=str(path), line=line))
            continue
        segs = [sheet.at[i, c] for c in seg_cols]
        rows.append({"ECHO": echo, "view": view, "patient_id": m.group(0),
                     "stemi": int(any(s == "MI" for s in segs if pd.notna(s))),
                     "path": f"{VIDEO_DIR}/{view}/{echo}.avi", "_row": i})
    if errors:
        raise ManifestError(f"hmcqu: {len(errors)} bad row(s) in {path}", errors)
    out = pd.DataFrame(rows, columns=["ECHO", "view", "patient_id", "stemi", "path", "_row"])
    ids = pd.Series({r["_row"]: f"{r['patient_id']}_{view}" for r in rows}, dtype="string")
    problems = with_sample_ids(side.problems, ids)
    # a blank ECHO cell names no video: the whole sheet row is unusable and has no sample id
    problems = [p if p.sample_id is not None or p.severity == "warning"
                else replace(p, sample_id=f"{path.name} line {p.line}", row=None)
                for p in problems]
    return out.drop(columns="_row"), problems


def harmonise(raw_root: Path, spec: SplitSpec) -> Manifest:
    """HMC-QU raw root (holding ``A4C.xlsx``, ``A2C.xlsx``, ``HMC-QU/``) → manifest."""
    raw_root = Path(raw_root)
    sheets = [read_sheet(raw_root / f"{v}.xlsx", v) for v in VIEWS]
    table = pd.concat([t for t, _ in sheets], ignore_index=True)
    problems = [p for _, ps in sheets for p in ps]
    table["sample_id"] = table["patient_id"] + "_" + table["view"]
    # An unusable video must not shape the split of the others: the stratified draw runs on the
    # intact videos only, exactly as if the download had not listed the unusable ones.
    bad = table["sample_id"].isin({p.sample_id for p in problems if p.severity == "unusable"})
    table = table[~bad].reset_index(drop=True)
    p = spec.params
    table["split"] = stratified_patient_split(table, "stemi", test_size=float(p["test_size"]),
                                              val_size=float(p["val_size"]),
                                              seed=int(p["seed"]))
    table["key_frame"] = 0  # the reference has no key frame for HMC-QU: clips start at frame 0
    table = table.drop(columns=["ECHO"])
    log.info("hmcqu: %d videos, %d patients", len(table), table["patient_id"].nunique())
    return Manifest(dataset="hmcqu", table=table, root=str(raw_root),
                    split_rule={"rule": spec.rule, **p},
                    source={"files": [f"{v}.xlsx" for v in VIEWS], "video_dir": VIDEO_DIR},
                    problems=problems)
