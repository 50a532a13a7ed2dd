"""EchoNet-Pediatric: ``A4C/`` and ``PSAX/`` folders → one manifest (PUBLISHED_BENCHMARK.md §1.2).

Native layout, per view folder: ``FileList.csv`` (``FileName`` *with* ``.avi``, ``EF, Sex, Age,
Weight, Height, Split`` where ``Split`` is an integer fold 0–9), ``VolumeTracings.csv`` and
``Videos/<FileName>``. The official split is fold 0 = test, fold 1 = val, folds 2–9 = train.

``sample_id`` is ``FileName`` with ``.avi`` (the ID the published evaluator joins on); the patient is
the part of the name before the first ``-`` (``<patient>-<accession>-<instance>.avi``). The ED and
ES frames come from the two traced frames of ``VolumeTracings.csv``: the frame whose LV tracing
encloses the larger area is ED. The reference loaders instead rely on file order ("largest trace
last"), which silently breaks if a file is re-sorted, so we use the area itself.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from cardiobench.manifest import Manifest, ManifestError, Problem
from cardiobench.preprocessing.common import ed_es_from_tracing_file
from cardiobench.schemas import (ECHONET_PEDIATRIC_FILELIST, ECHONET_PEDIATRIC_TRACINGS,
                                 read_side_table, with_sample_ids)
from cardiobench.splits import SplitSpec, map_split_column

log = logging.getLogger(__name__)

VIEW_FOLDERS = ("A4C", "PSAX")
FILELIST_COLUMNS = ("FileName", "EF", "Sex", "Age", "Weight", "Height", "Split")


def patient_of(file_name: str) -> str:
    """``CR32a7559-CR32a9980-000045.avi`` → ``CR32a7559`` (the part before the first ``-``)."""
    return str(file_name).split("-", 1)[0]


def _read_view(raw_root: Path, view: str, spec: SplitSpec, errors: list[Problem]
               ) -> pd.DataFrame:
    folder = raw_root / view
    filelist = folder / "FileList.csv"
    side = read_side_table(filelist, ECHONET_PEDIATRIC_FILELIST)
    table = side.table
    out = pd.DataFrame({
        "sample_id": table["FileName"],
        "view": view,
        "ef": table["EF"],
        "sex": table["Sex"].str.upper(),
        "age": table["Age"],
    })
    weight = table["Weight"]
    height_m = table["Height"] / 100.0
    # Missing or zero height gives NaN, never inf.
    out["bmi"] = (weight / height_m.where(height_m > 0) ** 2).astype(float)
    # kept as recorded (kg, cm): the published evaluator computes its BMI groups from them
    out["weight"] = weight.astype(float)
    out["height"] = table["Height"].astype(float)
    params = spec.params
    folds = table[params["column"]]
    splits, split_problems = map_split_column(
        folds, params["mapping"], source=str(filelist), column=params["column"], ids=out["sample_id"],
        lines=side.line.tolist(), severity="unusable", skip_rows=side.bad_rows)
    for p in with_sample_ids(side.problems + split_problems, out["sample_id"]):
        # the same file name exists in both view folders' lists: say which view
        sid = p.sample_id if p.sample_id is not None or p.severity == "warning" \
            else f"{view} {filelist.name} line {p.line}"
        errors.append(replace(p, sample_id=sid))
    out["fold"] = folds.astype("Int64")
    out["split"] = splits
    out["patient_id"] = out["sample_id"].map(patient_of)
    out["path"] = f"{view}/Videos/" + out["sample_id"].astype("string")
    out["filelist_row"] = np.arange(len(out)) + 2  # 1-based line number incl. header
    # a row without a FileName names no video: its empty cell is recorded above (under the
    # view and line), and it is no sample of the table
    out = out[out["sample_id"].notna()].reset_index(drop=True)

    tracings = folder / "VolumeTracings.csv"
    if tracings.exists():
        edes = ed_es_from_tracing_file(tracings, ECHONET_PEDIATRIC_TRACINGS, errors)
        # tracing names may or may not carry ".avi" (ed_es_from_tracing_file drops it)
        edes["stem"] = edes["FileName"]
        out["stem"] = out["sample_id"].str.replace(r"\.avi$", "", regex=True)
        out = out.merge(edes[["stem", "ed_frame", "es_frame"]], on="stem", how="left")
        out = out.drop(columns="stem")
    else:
        log.warning("echonet_pediatric: %s not found; no ED/ES frames for %s", tracings, view)
    return out


def _fold_problems(table: pd.DataFrame) -> tuple[list[Problem], list[Problem]]:
    """(errors, warnings): a patient across splits is an error, across train folds a warning."""
    errors: list[Problem] = []
    warnings: list[Problem] = []
    valid = table.dropna(subset=["fold"])
    for pid, grp in valid.groupby("patient_id", sort=True):
        folds = sorted(set(int(f) for f in grp["fold"]))
        if len(folds) < 2:
            continue
        files = [f"{v}/{s} (fold {int(f)})" for v, s, f in
                 zip(grp["view"], grp["sample_id"], grp["fold"])]
        splits = sorted(set(grp["split"].astype(str)))
        kind, sink = (("patient_in_two_splits", errors) if len(splits) > 1
                      else ("patient_in_two_folds", warnings))
        sink.append(Problem(kind, f"patient {pid!r} spans folds {folds} (splits {splits}): "
                            + ", ".join(files), sample_id=str(grp["sample_id"].iat[0]),
                            severity="error" if sink is errors else "warning"))
    return errors, warnings


def harmonise(raw_root: Path, spec: SplitSpec) -> Manifest:
    """Read ``<raw_root>/{A4C,PSAX}/FileList.csv`` (+ tracings) into one manifest, fold 0 = test."""
    raw_root = Path(raw_root)
    present = [v for v in VIEW_FOLDERS if (raw_root / v).is_dir()]
    if not present:
        raise ManifestError(f"echonet_pediatric: neither A4C/ nor PSAX/ found under {raw_root}")
    errors: list[Problem] = []
    warnings: list[Problem] = []
    for v in VIEW_FOLDERS:
        if v not in present:
            warnings.append(Problem("missing_view_folder", f"{raw_root / v} not found; "
                                    f"manifest holds only {present}", severity="warning"))
    table = pd.concat([_read_view(raw_root, v, spec, errors) for v in present], ignore_index=True)
    fold_errors, fold_warnings = _fold_problems(table)
    warnings += [p for p in errors if p.severity != "error"]
    errors = [p for p in errors if p.severity == "error"] + fold_errors
    warnings += fold_warnings
    if errors:
        raise ManifestError(f"echonet_pediatric: {len(errors)} problem(s) in {raw_root}", errors)
    n_no_trace = int(table["ed_frame"].isna().sum()) if "ed_frame" in table else len(table)
    if n_no_trace:
        warnings.append(Problem("no_ed_es", f"{n_no_trace} video(s) lack two traced frames "
                                "in VolumeTracings.csv; their ed_frame/es_frame are empty",
                                severity="warning"))
    table = table.drop(columns=["filelist_row"])
    return Manifest(
        dataset="echonet_pediatric", table=table, root=str(raw_root),
        split_rule={"rule": "official", "column": "Split",
                    "mapping": {str(k): v for k, v in
                                spec.params["mapping"].items()}},
        source={"files": [f"{v}/FileList.csv" for v in present]},
        problems=warnings)


def ground_truth(manifest: Manifest) -> dict[str, pd.DataFrame]:
    """The FileList the published evaluator reads (``data/splits/echonet_pediatric_filelist.csv``),
    from a manifest: fold 0 test, 1 val, 2 train."""
    t = manifest.table.reset_index(drop=True)
    fold = t["split"].map({"test": 0, "val": 1, "train": 2})
    # the evaluator computes its BMI groups from Weight (kg) and Height (cm): carried from the
    # FileList through the manifest (empty for a manifest written before they were kept)
    return {"echonet_pediatric_filelist.csv": pd.DataFrame({
        "FileName": t["sample_id"], "EF": t["ef"], "Sex": t["sex"], "Age": t["age"],
        "Weight": t.get("weight", np.nan), "Height": t.get("height", np.nan),
        "BMI": t.get("bmi", np.nan), "Split": fold,
        "view": t["view"]})}
