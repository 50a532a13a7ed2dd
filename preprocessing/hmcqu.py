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
import re
from pathlib import Path

import pandas as pd

from cardiobench.manifest import Manifest, ManifestError, Problem
from cardiobench.preprocessing import register_dataset
from cardiobench.preprocessing.common import read_table
from cardiobench.splits import load_spec, stratified_patient_split

log = logging.getLogger(__name__)

VIEWS = ("A2C", "A4C")  # the reference concatenates A2C rows, then A4C rows
VIDEO_DIR = "HMC-QU"
_PATIENT = re.compile(r"ES\d+")


def read_sheet(path: Path, view: str) -> pd.DataFrame:
    """One label sheet → rows ``ECHO, view, patient_id, stemi, path``; bad columns raise."""
    sheet = read_table(path, dtype=str, engine="openpyxl")
    # case-sensitive like the reference: "LV Wall Ground-truth Segmentation Masks" is no SEG column
    seg_cols = [c for c in sheet.columns if "SEG" in c]
    if "ECHO" not in sheet.columns or not seg_cols:
        raise ManifestError(f"hmcqu: {path} must have an 'ECHO' column and SEG1..SEGn columns; "
                            f"found columns {list(sheet.columns)}")
    sheet = sheet[sheet["ECHO"].notna() & (sheet["ECHO"].str.strip() != "")]
    problems = []
    rows = []
    for i, rec in sheet.iterrows():
        echo = str(rec["ECHO"]).strip()
        m = _PATIENT.search(echo)
        if m is None:
            problems.append(Problem("bad_id", f"{path.name} row {i + 2}: ECHO {echo!r} has no "
                                    "ES<digits> patient id", sample_id=echo, row=int(i)))
            continue
        segs = [str(rec[c]).strip() for c in seg_cols if pd.notna(rec[c])]
        unknown = sorted({s for s in segs if s not in ("MI", "non-MI")})
        if unknown:
            problems.append(Problem("bad_label", f"{path.name} row {i + 2}: SEG values {unknown} "
                                    "are not 'MI'/'non-MI'", sample_id=echo, row=int(i)))
        rows.append({"ECHO": echo, "view": view, "patient_id": m.group(0),
                     "stemi": int(any(s == "MI" for s in segs)),
                     "path": f"{VIDEO_DIR}/{view}/{echo}.avi"})
    if problems:
        raise ManifestError(f"hmcqu: {len(problems)} bad row(s) in {path}", problems)
    return pd.DataFrame(rows, columns=["ECHO", "view", "patient_id", "stemi", "path"])


@register_dataset("hmcqu")
def harmonise(raw_root: Path) -> Manifest:
    """HMC-QU raw root (holding ``A4C.xlsx``, ``A2C.xlsx``, ``HMC-QU/``) → manifest."""
    raw_root = Path(raw_root)
    table = pd.concat([read_sheet(raw_root / f"{v}.xlsx", v) for v in VIEWS], ignore_index=True)
    table["sample_id"] = table["patient_id"] + "_" + table["view"]
    spec = load_spec("hmcqu")
    p = spec.params
    table["split"] = stratified_patient_split(table, "stemi", test_size=float(p["test_size"]),
                                              val_size=float(p["val_size"]),
                                              seed=int(p["seed"]))
    table["key_frame"] = 0  # the reference has no key frame for HMC-QU: clips start at frame 0
    table = table.drop(columns=["ECHO"])
    log.info("hmcqu: %d videos, %d patients", len(table), table["patient_id"].nunique())
    return Manifest(dataset="hmcqu", table=table, root=str(raw_root),
                    split_rule={"rule": spec.rule, **p},
                    source={"files": [f"{v}.xlsx" for v in VIEWS], "video_dir": VIDEO_DIR})
