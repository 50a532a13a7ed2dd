"""EchoNet-LVH: ``MeasurementsList.csv`` + ``Batch1..4/*.avi`` → one row per video (§1.3).

``MeasurementsList.csv`` is long format: one row per (video, caliper measurement) with columns
``(unnamed index), HashedFileName, Calc, CalcValue, Frame, X1, X2, Y1, Y2, Frames, FPS, Width,
Height, split``; ``CalcValue`` is in cm. We pivot the diastolic measures IVSd, LVIDd and LVPWd to
the manifest columns ``ivsd``, ``lvidd``, ``lvpwd`` (NaN where a video was not measured).

**Duplicate-measurement rule.** Some videos carry the same ``Calc`` more than once. We keep the
*first* row per (HashedFileName, Calc) in file order -- exactly what the published evaluator does
(``drop_duplicates(keep="first")`` per target), so scores computed on our manifest match its
scores -- and record how many rows were dropped as a warning problem.

``key_frame`` is the ``Frame`` of the first diastolic (IVSd/LVIDd/LVPWd) row of the video. The
reference loader takes the first row of *any* ``Calc``, which may be a systolic LVIDs frame.

Videos are found in whichever ``Batch*`` folder holds them (the reference assumed one flat
folder); a video in two batches or in none is an error naming it. No patient key is public, so
``patient_id`` = ``HashedFileName``.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from cardiobench.manifest import LABEL_RANGES, Manifest, ManifestError, Problem
from cardiobench.schemas import (ECHONET_LVH_MEASUREMENTS, SideTable, read_side_table,
                                 with_sample_ids)
from cardiobench.splits import SplitSpec, map_split_column

log = logging.getLogger(__name__)

MEASUREMENTS_COLUMNS = ("HashedFileName", "Calc", "CalcValue", "Frame", "Frames", "FPS", "split")
#: ``Calc`` value → manifest column
TARGETS = {"IVSd": "ivsd", "LVIDd": "lvidd", "LVPWd": "lvpwd"}
#: columns that describe the video rather than the row's measurement: a fault in one of them
#: costs the video, whichever ``Calc`` its row holds
VIDEO_COLUMNS = frozenset({"HashedFileName", "split"})


def find_videos(raw_root: Path) -> dict[str, list[str]]:
    """``HashedFileName`` → every relative ``Batch*/<name>.avi`` path that holds it (the
    extension matched in any letter case: ``.AVI`` too)."""
    found: dict[str, list[str]] = {}
    for batch in sorted(p for p in raw_root.glob("Batch*") if p.is_dir()):
        for video in sorted(batch.iterdir()):
            if video.suffix.lower() == ".avi":
                found.setdefault(video.stem, []).append(f"{batch.name}/{video.name}")
    return found


def _split_per_video(m: pd.DataFrame, source: Path, spec: SplitSpec
                     ) -> tuple[pd.Series, list[Problem]]:
    """One split per video (column and mapping from ``splits/echonet_lvh.yaml``); a video whose
    rows disagree, or whose split value is unknown, is an error naming it."""
    p = spec.params
    splits, errors = map_split_column(m[p["column"]], p["mapping"], source=str(source),
                                      column=p["column"], ids=m["HashedFileName"],
                                      lines=None)
    per_video = splits.groupby(m["HashedFileName"], sort=False).agg(
        lambda s: sorted(set(s.dropna())))
    out = {}
    for vid, values in per_video.items():
        if len(values) > 1:
            rows = [int(i) + 2 for i in m.index[m["HashedFileName"] == vid]]
            errors.append(Problem("inconsistent_split",
                                  f"{source}: rows {rows} give splits {values}", sample_id=vid))
        elif values:
            out[vid] = values[0]
    return pd.Series(out, dtype="string"), errors


def harmonise(raw_root: Path, spec: SplitSpec) -> Manifest:
    """Pivot ``MeasurementsList.csv`` to one row per video with IVSd/LVIDd/LVPWd in cm."""
    raw_root = Path(raw_root)
    source = raw_root / "MeasurementsList.csv"
    side = read_side_table(source, ECHONET_LVH_MEASUREMENTS)
    unusable, warnings = _cell_problems(side, source)
    bad_videos = {p.sample_id for p in unusable}
    m = side.table.assign(source_line=side.line.to_numpy())
    m = m[m["HashedFileName"].notna() & ~m["HashedFileName"].isin(bad_videos)]
    m = m.reset_index(drop=True)

    split, errors = _split_per_video(m, source, spec)
    videos = list(dict.fromkeys(m["HashedFileName"]))  # file order
    table = pd.DataFrame({"sample_id": videos})
    table["patient_id"] = table["sample_id"]
    table["split"] = table["sample_id"].map(split)
    table["view"] = "PLAX"
    measures, out_of_range, duplicates = _measures(m, table["sample_id"], source)
    for column, values in measures.items():
        table[column] = values
    paths, in_two_batches, missing = _video_paths(table["sample_id"], raw_root)
    table["path"] = paths
    errors += in_two_batches
    if errors:
        raise ManifestError(f"echonet_lvh: {len(errors)} problem(s) in {raw_root}", errors)
    problems = unusable + out_of_range + missing + warnings + duplicates
    unmeasured = table[list(TARGETS.values())].isna().all(axis=1)
    if unmeasured.any():
        problems.append(Problem("no_diastolic_measure", f"{int(unmeasured.sum())} video(s) have "
                                "no IVSd/LVIDd/LVPWd row", severity="warning"))
    return Manifest(
        dataset="echonet_lvh", table=table, root=str(raw_root),
        split_rule={"rule": "official", "column": "split", "case_insensitive": True},
        source={"files": ["MeasurementsList.csv"], "duplicate_rule": "keep first per (video, Calc)"},
        problems=problems)


def _cell_problems(side: SideTable, source: Path) -> tuple[list[Problem], list[Problem]]:
    """What each fault of ``MeasurementsList.csv`` costs: ``(unusable, warnings)``.

    A bad or empty cell costs its video when it is on a row we use (an IVSd/LVIDd/LVPWd row) or
    in a column that belongs to the video whatever the row measures (:data:`VIDEO_COLUMNS`); on
    a row of another ``Calc`` it costs nothing and is kept as a warning. A blank ``CalcValue``
    is legal in the schema but unknown on a row we use. A row naming no video is named by its
    line.
    """
    m = side.table
    target = m["Calc"].isin(list(TARGETS)).to_numpy()
    cell_rows = {p.row for p in side.problems if p.severity == "unusable"}
    found: list[Problem] = []
    for i in np.flatnonzero(target & m["CalcValue"].isna().to_numpy()):
        if int(i) not in cell_rows:  # blank value on a row we use: the measure is unknown
            found.append(Problem("empty_cell", f"CalcValue is empty on a {m.at[i, 'Calc']} "
                                 "row; the measurement is unknown", row=int(i),
                                 file=str(source), line=int(side.line.iat[i]),
                                 severity="unusable", column="CalcValue"))
    for p in side.problems:
        if p.severity == "warning":
            continue
        used = p.row is not None and (target[p.row] or p.column in VIDEO_COLUMNS)
        found.append(p if used else replace(p, severity="warning"))
    found = with_sample_ids(found, m["HashedFileName"])
    warnings = ([p for p in side.problems if p.severity == "warning"]
                + [p for p in found if p.severity == "warning"])
    unusable = [p if p.sample_id is not None
                else replace(p, sample_id=f"{source.name} line {p.line}")
                for p in found if p.severity == "unusable"]
    return unusable, warnings


def _measures(m: pd.DataFrame, videos: pd.Series, source: Path
              ) -> tuple[dict[str, pd.Series], list[Problem], list[Problem]]:
    """The measures of each of ``videos``: ``(columns, unusable, warnings)``.

    ``columns``: ``ivsd``, ``lvidd``, ``lvpwd`` from the first row per (video, ``Calc``) in
    file order (a duplicate row is dropped, as the published evaluator does, and counted in a
    warning), ``key_frame`` of the first diastolic row, ``fps`` and ``n_frames`` of the video's
    first row. A measure outside its physically possible range makes its video unusable.
    """
    wanted = m[m["Calc"].isin(TARGETS)]
    dup = wanted.duplicated(["HashedFileName", "Calc"], keep="first")
    warnings: list[Problem] = []
    if dup.any():
        n_videos = wanted.loc[dup, "HashedFileName"].nunique()
        warnings.append(Problem(
            "duplicate_measurement",
            f"{source}: {int(dup.sum())} duplicate (HashedFileName, Calc) row(s) in {n_videos} "
            "video(s) resolved by keeping the first row in file order (as the published "
            "evaluator does)", severity="warning"))
    first = wanted[~dup]
    unusable: list[Problem] = []
    for row in first.itertuples():
        lo, hi = LABEL_RANGES[TARGETS[row.Calc]]
        if pd.notna(row.CalcValue) and not lo <= row.CalcValue <= hi:  # not a heart's size
            unusable.append(Problem(
                "label_out_of_range", f"{row.Calc} CalcValue = {row.CalcValue:g} cm is outside "
                f"[{lo:g}, {hi:g}] cm", sample_id=str(row.HashedFileName), file=str(source),
                line=int(row.source_line), severity="unusable", column="CalcValue"))
    columns: dict[str, pd.Series] = {}
    for calc, col in TARGETS.items():
        values = first[first["Calc"] == calc].set_index("HashedFileName")["CalcValue"]
        columns[col] = videos.map(values).astype(float)
    per_video = m.drop_duplicates("HashedFileName", keep="first").set_index("HashedFileName")
    key = first.drop_duplicates("HashedFileName", keep="first").set_index("HashedFileName")
    columns["key_frame"] = pd.to_numeric(videos.map(key["Frame"]), errors="coerce")
    columns["fps"] = pd.to_numeric(videos.map(per_video["FPS"]), errors="coerce")
    columns["n_frames"] = pd.to_numeric(videos.map(per_video["Frames"]), errors="coerce")
    return columns, unusable, warnings


def _video_paths(videos: pd.Series, raw_root: Path
                 ) -> tuple[list[object], list[Problem], list[Problem]]:
    """Each video's file in whichever ``Batch*/`` folder holds it:
    ``(paths, errors, unusable)``; a video in two batches is an error, one in none unusable."""
    found = find_videos(raw_root)
    paths: list[object] = []
    errors: list[Problem] = []
    unusable: list[Problem] = []
    for vid in videos:
        hits = found.get(vid, [])
        if len(hits) == 1:
            paths.append(hits[0])
            continue
        paths.append(pd.NA)
        if hits:
            errors.append(Problem("video_in_two_batches", f"{vid}.avi is in {hits}; "
                                  "cannot tell which copy is the dataset's", sample_id=vid))
        else:
            unusable.append(Problem("missing_file", f"{vid}.avi is in no Batch*/ folder "
                                    f"under {raw_root}", sample_id=vid, severity="unusable"))
    return paths, errors, unusable


def ground_truth(manifest: Manifest) -> dict[str, pd.DataFrame]:
    """The per-target split files the published evaluator reads
    (``data/splits/echonet_lvh/{LVIDd,IVSd,LVPWd}_split.csv``), from a manifest."""
    t = manifest.table.reset_index(drop=True)
    out = {}
    for calc, col in (("LVIDd", "lvidd"), ("IVSd", "ivsd"), ("LVPWd", "lvpwd")):
        rows = t[t[col].notna()]
        out[f"echonet_lvh/{calc}_split.csv"] = pd.DataFrame({
            "Calc": calc, "CalcValue": rows[col], "HashedFileName": rows["sample_id"],
            "Frame": rows.get("key_frame", np.nan), "split": rows["split"]})
    return out
