"""TMED-2 (aortic stenosis, still images): labels CSV + the official DEV479 fold-0 split.

Layout (raw root)::

    labels_per_image.csv                        query_key, view_label, diagnosis_label, ...
    DEV479/TMED2_fold0_labeledpart.csv          query_key, SourceFolder, diagnosis_classifier_split, ...
    view_and_diagnosis_labeled_set/labeled/<query_key>     PNG stills (SourceFolder)

``Not_Provided`` diagnoses are dropped (reported as one warning with the count); AS is
binarised (no_AS 0, any grade 1); ``sample_id`` = ``query_key`` (with ``.png``), ``study_id`` =
``patient_id`` = query_key without ``_<n>.png``; ``A4CorA2CorOther`` → view ``Other``.
Split = fold-0 ``diagnosis_classifier_split`` (``splits/tmed2.yaml``).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path, PurePosixPath

import pandas as pd

from cardiobench.manifest import Manifest, ManifestError, Problem
from cardiobench.schemas import (TMED2_LABELS, TableSchema, read_side_table, tmed2_fold_schema,
                                 with_sample_ids)
from cardiobench.splits import SplitSpec, official_split

log = logging.getLogger(__name__)

LABELS_CSV = "labels_per_image.csv"
SPLIT_CSV = "DEV479/TMED2_fold0_labeledpart.csv"
DIAGNOSES = {"no_AS": 0, "mild_AS": 1, "mildtomod_AS": 1, "moderate_AS": 1, "severe_AS": 1}
NOT_PROVIDED = "Not_Provided"
VIEW_MAP = {"A2C": "A2C", "A4C": "A4C", "PLAX": "PLAX", "PSAX": "PSAX",
            "A4CorA2CorOther": "Other"}
_KEY = re.compile(r"^(?P<study>.+)_\d+\.png$")


def _read_csv(path: Path, schema: TableSchema) -> tuple[pd.DataFrame, list[Problem]]:
    """Read a side CSV against ``schema`` (declared columns only) and refuse repeated query_keys.

    Returns the table (rows with an unusable cell dropped) and those cells' problems, each naming
    its ``query_key``.
    """
    side = read_side_table(path, schema)
    df = side.table
    dup = df["query_key"].notna() & df["query_key"].duplicated(keep=False)
    if dup.any():
        problems = [Problem("duplicate_query_key", "query_key repeated",
                            sample_id=str(df.at[i, "query_key"]), row=int(i), file=str(path),
                            line=int(side.line.iat[i]))
                    for i in df.index[dup]]
        raise ManifestError(f"tmed2: {path} repeats {int(dup.sum())} query_key row(s)", problems)
    problems = with_sample_ids(side.problems, df["query_key"])
    return df.drop(index=list(side.bad_rows)).reset_index(drop=True), problems


def harmonise(raw_root: Path, spec: SplitSpec) -> Manifest:
    """TMED-2 raw root → per-image manifest with the DEV479 fold-0 diagnosis split."""
    raw_root = Path(raw_root)
    split_col = str(spec.params["column"])
    labels, problems = _read_csv(raw_root / LABELS_CSV, TMED2_LABELS)
    fold, fold_problems = _read_csv(raw_root / SPLIT_CSV, tmed2_fold_schema(
        split_col, tuple(str(k) for k in spec.params["mapping"])))
    problems += fold_problems
    bad_key = ~labels["query_key"].str.match(_KEY).fillna(False).astype(bool)
    for i in labels.index[bad_key]:
        problems.append(Problem("bad_id", f"query_key {labels.at[i, 'query_key']!r} is not "
                                "<study>_<n>.png", sample_id=labels.at[i, "query_key"],
                                row=int(i), file=str(raw_root / LABELS_CSV),
                                severity="unusable"))
    labels = labels[~bad_key].reset_index(drop=True)
    # a label row whose fold row is unusable is unusable too (it has no split): drop it here,
    # the fold problem names it
    fold_bad = {p.sample_id for p in fold_problems if p.severity == "unusable"}
    labels = labels[~labels["query_key"].isin(fold_bad)].reset_index(drop=True)

    dropped = labels["diagnosis_label"] == NOT_PROVIDED
    kept = labels[~dropped]
    warnings: list[Problem] = list(problems)
    if dropped.any():
        warnings.append(Problem("not_provided_dropped", f"{int(dropped.sum())} image(s) with "
                                f"diagnosis_label == {NOT_PROVIDED} dropped (no AS label)",
                                severity="warning"))
    merged = kept.merge(fold, on="query_key",
                        how="left", validate="1:1", indicator=True)
    unsplit = merged["_merge"] == "left_only"
    if unsplit.any():
        # the reference's left join leaves these without a file path and drops them; we do the
        # same but say so, naming the first few
        first = merged.loc[unsplit, "query_key"].head(5).tolist()
        warnings.append(Problem("missing_split", f"{int(unsplit.sum())} labelled image(s) absent "
                                f"from {SPLIT_CSV} dropped, e.g. {first}", severity="warning"))
        merged = merged[~unsplit].reset_index(drop=True)
    split = official_split(merged[split_col], spec.params["mapping"],
                           source=str(raw_root / SPLIT_CSV), ids=merged["query_key"])
    study = merged["query_key"].str.extract(_KEY)["study"]
    folders = merged["SourceFolder"].str.strip().str.strip("/")
    table = pd.DataFrame({
        "sample_id": merged["query_key"],
        "patient_id": study,
        "study_id": study,
        "split": split,
        "path": [str(PurePosixPath(f) / q) for f, q in zip(folders, merged["query_key"])],
        "view": merged["view_label"].map(VIEW_MAP),
        "key_frame": 0,
        "n_frames": 1,
        "aortic_stenosis": merged["diagnosis_label"].map(DIAGNOSES).astype(int),
    })
    log.info("tmed2: %d images, %d studies (%d Not_Provided dropped)", len(table),
             table["study_id"].nunique(), int(dropped.sum()))
    return Manifest(dataset="tmed2", table=table, root=str(raw_root),
                    split_rule={"rule": spec.rule, "file": SPLIT_CSV, **spec.params},
                    source={"labels": LABELS_CSV, "split_file": SPLIT_CSV}, problems=warnings)
