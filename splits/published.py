"""``published_csv`` rule: import a published split CSV, checked row by row against the raw files."""

from __future__ import annotations

import hashlib
import importlib
import logging
from pathlib import Path

import pandas as pd

from cardiobench.manifest import Manifest, ManifestError, Problem
from cardiobench.splits.spec import load_spec

log = logging.getLogger(__name__)

#: dataset → module (under cardiobench.preprocessing) providing
#: ``from_published(csv: DataFrame, raw_root: Path, csv_name: str) -> (table, problems)``
IMPORTERS: dict[str, str] = {"segrwma": "segrwma"}


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def import_published(csv_path: str | Path, raw_root: str | Path,
                     dataset: str = "segrwma") -> Manifest:
    """Manifest whose splits and labels come from a published split CSV.

    Every CSV row is checked against the raw download (file present, IDs, frame counts and
    annotated frame consistent with the files; no patient in two splits); the root is stored
    absolute and each file's identity recorded, as ``prepare`` does; any mismatch raises
    :class:`ManifestError` naming the row. The CSV's SHA-256 is recorded in ``split_rule`` and
    compared with the spec's: a different file is reported as a warning problem.
    """
    csv_path, raw_root = Path(csv_path), Path(raw_root).expanduser().resolve()
    if dataset not in IMPORTERS:
        raise KeyError(f"no published-CSV importer for {dataset!r}; known: {sorted(IMPORTERS)}")
    if not csv_path.is_file():
        raise ManifestError(f"{dataset}: published split CSV {csv_path} does not exist")
    try:
        csv = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except Exception as exc:  # pandas raises several types for malformed CSVs
        raise ManifestError(f"{dataset}: cannot parse {csv_path}: {exc}") from exc
    module = importlib.import_module(f"cardiobench.preprocessing.{IMPORTERS[dataset]}")
    table, problems = module.from_published(csv, raw_root, str(csv_path))
    sha = file_sha256(csv_path)
    spec = load_spec(dataset)
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
    from cardiobench.preprocessing.media import record_identity

    record_identity(m)  # what embed checks each file against (cardiobench.io.identity)
    return m
