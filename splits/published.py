"""``published_csv`` rule: import a published split CSV, checked row by row against the raw files."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import pandas as pd

from cardiobench.hashing import sha256_file
from cardiobench.io.identity import record_identity
from cardiobench.manifest import Manifest, ManifestError, Problem
from cardiobench.splits.spec import SplitSpec

log = logging.getLogger(__name__)

#: ``importer(csv: DataFrame, raw_root: Path, csv_name: str) -> (table, problems)``: a dataset's
#: reader of its published split CSV (the catalogue binds it as the dataset's split importer)
SplitImporter = Callable[[pd.DataFrame, Path, str], "tuple[pd.DataFrame, list[Problem]]"]


def import_published(csv_path: str | Path, raw_root: str | Path, spec: SplitSpec,
                     importer: SplitImporter) -> Manifest:
    """Manifest whose splits and labels come from a published split CSV.

    Every CSV row is checked against the raw download (file present, IDs, frame counts and
    annotated frame consistent with the files; no patient in two splits); the root is stored
    absolute and each file's identity recorded, as ``prepare`` does; any mismatch raises
    :class:`ManifestError` naming the row. The CSV's SHA-256 is recorded in ``split_rule`` and
    compared with the spec's: a different file is reported as a warning problem.
    """
    csv_path, raw_root = Path(csv_path), Path(raw_root).expanduser().resolve()
    dataset = spec.dataset
    if not csv_path.is_file():
        raise ManifestError(f"{dataset}: published split CSV {csv_path} does not exist")
    try:
        csv = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except Exception as exc:  # pandas raises several types for malformed CSVs
        raise ManifestError(f"{dataset}: cannot parse {csv_path}: {exc}") from exc
    table, problems = importer(csv, raw_root, str(csv_path))
    sha = sha256_file(csv_path)
    expected_sha = spec.params.get("sha256")
    if expected_sha and sha != expected_sha:
        problems.append(Problem("published_csv_changed",
                                f"{csv_path} has SHA-256 {sha}, the published file has "
                                f"{expected_sha}; splits may differ from the benchmark",
                                severity="warning"))
    log.info("%s: imported %d rows from %s (sha256 %s)", dataset, len(table), csv_path, sha[:12])
    m = Manifest(dataset=dataset, table=table, root=str(raw_root),
                 split_rule={"rule": "published_csv", "csv": str(csv_path), "sha256": sha,
                             "published_sha256": expected_sha},
                 source={"published_csv": csv_path.name}, problems=problems)
    record_identity(m)  # what embed checks each file against (cardiobench.io.identity)
    return m
