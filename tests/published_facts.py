"""Compact facts derived from the published CardioBench split CSVs and example predictions, so
that the tests which check our claims against the published benchmark run in any clone.

The published files (BioMedIA-MBZUAI/CardioBench, commit :data:`SOURCE_COMMIT`) are not copied
into the project. ``tests/data/published/`` holds, per published file, only what the tests need:

* split CSVs: the columns the tests read (IDs, patient, label, view, split, frame facts), with
  the shared ``data/raw/...`` prefix of path columns stripped; derivable columns (``image_name``,
  ``parent``, ``stem``, ``file_path``) are left out, and ``tmed2/per_study.csv`` (unused) too;
* example predictions: the header, the ID column and any column other than the placeholder
  predictions (``*_pred``, ``prob_*``, the unnamed index); where the ID column alone is kept and
  its IDs are the test IDs the package contract already lists (``gt_order`` in
  ``protocols/reference_contract.yaml``), the IDs are read from there instead of stored twice.

Each facts file records the SHA-256 of the published file and of its sorted, newline-joined IDs;
``index.json`` records the SHA-256 of each facts file's bytes. :func:`load` checks both, so an
edited or truncated facts file fails loudly instead of weakening a test. ``test_published_facts.py``
re-derives everything from ``../shared/reference`` where present and requires equality.

Run ``python tests/published_facts.py`` (from the repository root, with ``../shared`` beside it)
to rebuild the facts after the reference changes.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd

from helpers import PUBLISHED, REF

SOURCE_COMMIT = "e0bc185eae53a41a509f8acdd10c2481bb44facf"
SPLITS_REL = "cardiobench/data/splits"
EXAMPLES_REL = "cardiobench/evaluation/example_predictions"
INDEX = "index.json"
EXAMPLES_FACTS = "example_predictions.json.gz"
#: the ID column names of the published example files (each file has exactly one of them)
ID_COLUMNS = ("FileName", "HashedFileName", "patient_id", "unique_id", "patient_view_id",
              "query_key", "study_id")


@dataclass(frozen=True)
class SplitSource:
    """One published split CSV: which columns the tests need and which path prefix to strip."""

    name: str
    file: str
    id_column: str
    columns: tuple[str, ...]
    prefixes: dict[str, str] = field(default_factory=dict)


SPLIT_SOURCES = (
    SplitSource("hmcqu", "hmcqu_split.csv", "unique_id",
                ("path", "view", "patient_id", "STEMI", "split", "unique_id"),
                {"path": "data/raw/HMC_QU/videos/"}),
    SplitSource("cardiacnet_asd", "cardiacnet/cardiacnet_asd_split.csv", "unique_id",
                ("path", "ASD", "patient_id", "split", "unique_id"),
                {"path": "data/raw/CardiacNet/"}),
    SplitSource("cardiacnet_pah", "cardiacnet/cardiacnet_pah_split.csv", "unique_id",
                ("path", "PAH", "patient_id", "split", "unique_id"),
                {"path": "data/raw/CardiacNet/"}),
    SplitSource("tmed2", "tmed2/per_image.csv", "query_key",
                ("query_key", "view", "diagnosis_label", "split")),
    SplitSource("segrwma", "segrwma_split.csv", "path",
                ("patient_id", "path", "modality", "view", "n_frames",
                 "first_annotated_frame_index", "split", "abnormal", "patient_view_id"),
                {"path": "data/raw/Regional_wall_motion_abnormality/"}),
)
SOURCES_BY_FILE = {s.file: s for s in SPLIT_SOURCES}


class FactsError(RuntimeError):
    """A committed facts file is missing, edited, or disagrees with its recorded checksums."""


# ------------------------------------------------------------------------------- checksums
def sha256_bytes(data: bytes) -> str:
    """SHA-256 hex digest of ``data``."""
    return hashlib.sha256(data).hexdigest()


def ids_sha256(ids: list[Any]) -> str:
    """SHA-256 of the sorted IDs joined by newlines (the convention of the split specs and the
    export contract), computed here with hashlib, not with the library under test."""
    return sha256_bytes("\n".join(sorted(str(i) for i in ids)).encode())


def _json_gz(obj: Any) -> bytes:
    """Canonical JSON, gzip'd without a timestamp (the same facts give the same bytes)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return gzip.compress(text.encode(), mtime=0)


# ------------------------------------------------------------------------------- derivation
def _placeholder(column: str) -> bool:
    """A column of made-up prediction values (or pandas' index) in an example file."""
    return column == "" or column.endswith("_pred") or column.startswith("prob_")


def derive_split(ref: Path, src: SplitSource) -> dict[str, Any]:
    """The facts of one published split CSV under ``ref``."""
    path = ref / SPLITS_REL / src.file
    raw = path.read_bytes()
    df = pd.read_csv(path)
    if df[src.id_column].duplicated().any():
        raise FactsError(f"{path}: ID column {src.id_column!r} repeats a value")
    columns: list[list[Any]] = []  # [name, values] pairs: JSON objects would lose the order
    for col in src.columns:
        values = df[col]
        if values.isna().any():
            raise FactsError(f"{path}: column {col!r} has empty cells; the facts format has none")
        prefix = src.prefixes.get(col)
        if prefix is not None:
            if not values.str.startswith(prefix).all():
                raise FactsError(f"{path}: not every {col!r} starts with {prefix!r}")
            values = values.str.slice(len(prefix))
        columns.append([col, values.tolist()])
    return {"source": f"{SPLITS_REL}/{src.file}", "commit": SOURCE_COMMIT,
            "sha256": sha256_bytes(raw), "rows": len(df), "id_column": src.id_column,
            "ids_sha256": ids_sha256(df[src.id_column].tolist()), "prefixes": src.prefixes,
            "columns": columns}


def derive_examples(ref: Path, contract: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The facts of every published example prediction file under ``ref``."""
    root = ref / EXAMPLES_REL
    by_file = {e["file"].format(model="modelname"): (t, e) for t, e in contract.items()}
    files: dict[str, Any] = {}
    for path in sorted(root.rglob("*.csv")):
        rel = path.relative_to(root).as_posix()
        raw = path.read_bytes()
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
        header = raw.decode().splitlines()[0].split(",")
        id_cols = [c for c in header if c in ID_COLUMNS]
        if len(id_cols) != 1:
            raise FactsError(f"{path}: expected one ID column of {ID_COLUMNS}, found {id_cols}")
        id_col = id_cols[0]
        kept = [c for c in header if not _placeholder(c)]
        ids = df[id_col].tolist()
        entry: dict[str, Any] = {"sha256": sha256_bytes(raw), "header": header,
                                 "id_column": id_col, "n": len(df), "ids_sha256": ids_sha256(ids)}
        task_entry = by_file.get(rel)
        if kept == [id_col] and task_entry and "gt_order" in task_entry[1] \
                and sorted(task_entry[1]["gt_order"]) == sorted(ids):
            entry["ids_from_contract"] = task_entry[0]  # the package already lists these IDs
        else:
            entry["columns"] = {c: df[c].tolist() for c in kept}
        files[rel] = entry
    return {"source": EXAMPLES_REL, "commit": SOURCE_COMMIT, "files": files}


def derive_all(ref: Path = REF) -> dict[str, Any]:
    """``{facts file name: facts}`` derived afresh from the reference tree ``ref``."""
    from cardiobench.protocols.export import load_contract

    out = {f"{s.name}.json.gz": derive_split(ref, s) for s in SPLIT_SOURCES}
    out[EXAMPLES_FACTS] = derive_examples(ref, load_contract())
    return out


def write_all(facts: dict[str, Any], dest: Path = PUBLISHED) -> None:
    """Write the facts files and ``index.json`` (SHA-256 of each file's bytes) to ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    index = {"commit": SOURCE_COMMIT, "files": {}}
    for name, obj in sorted(facts.items()):
        data = _json_gz(obj)
        (dest / name).write_bytes(data)
        index["files"][name] = {"sha256": sha256_bytes(data), "source": obj["source"]}
    (dest / INDEX).write_text(json.dumps(index, indent=1, sort_keys=True) + "\n")


# ------------------------------------------------------------------------------- loading
@lru_cache(maxsize=None)
def load(name: str) -> dict[str, Any]:
    """The committed facts file ``name``, its bytes and its ID checksums verified."""
    index = json.loads((PUBLISHED / INDEX).read_text())
    if name not in index["files"]:
        raise FactsError(f"{name} is not listed in {PUBLISHED / INDEX}")
    path = PUBLISHED / name
    data = path.read_bytes()
    if sha256_bytes(data) != index["files"][name]["sha256"]:
        raise FactsError(f"{path}: SHA-256 differs from {INDEX}; rebuild with "
                         "`python tests/published_facts.py`")
    obj = json.loads(gzip.decompress(data))
    if name == EXAMPLES_FACTS:
        for rel, entry in obj["files"].items():
            got = ids_sha256(example_ids_of(entry))
            if got != entry["ids_sha256"]:
                raise FactsError(f"{path} [{rel}]: IDs hash to {got}, recorded {entry['ids_sha256']}")
    else:
        prefix = obj["prefixes"].get(obj["id_column"], "")
        ids = [prefix + i for i in dict(obj["columns"])[obj["id_column"]]]
        got = ids_sha256(ids)
        if got != obj["ids_sha256"] or len(ids) != obj["rows"]:
            raise FactsError(f"{path}: IDs hash to {got}, recorded {obj['ids_sha256']}")
    return obj


def example_ids_of(entry: dict[str, Any]) -> list[str]:
    """The ID column of one example-file entry (stored, or the package contract's test IDs)."""
    if "ids_from_contract" in entry:
        from cardiobench.protocols.export import load_contract

        return [str(i) for i in load_contract()[entry["ids_from_contract"]]["gt_order"]]
    return list(entry["columns"][entry["id_column"]])


def split_facts(file: str) -> dict[str, Any]:
    """The facts of the published split CSV ``file`` (relative to ``data/splits``)."""
    return load(f"{SOURCES_BY_FILE[file].name}.json.gz")


def published_split(file: str) -> pd.DataFrame:
    """The tests' columns of the published split CSV ``file`` (e.g. ``"hmcqu_split.csv"``),
    path prefixes restored, in published row order, with the dtypes ``pd.read_csv`` gives."""
    f = split_facts(file)
    df = pd.DataFrame(dict(f["columns"]))
    for col, prefix in f["prefixes"].items():
        df[col] = prefix + df[col]
    return df


def write_published_split(file: str, dest: Path) -> Path:
    """The tests' columns of a published split CSV written as a CSV file at ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    published_split(file).to_csv(dest, index=False)
    return dest


def example_files() -> dict[str, dict[str, Any]]:
    """``{path under example_predictions: entry}`` of every published example file."""
    return load(EXAMPLES_FACTS)["files"]


def example_table(rel: str) -> pd.DataFrame:
    """One example file's header and kept columns; placeholder predictions are empty strings."""
    entry = example_files()[rel]
    ids = example_ids_of(entry)
    kept = entry.get("columns", {entry["id_column"]: ids})
    return pd.DataFrame({c: kept.get(c, [""] * len(ids)) for c in entry["header"]})


def write_examples(dest: Path) -> Path:
    """Every example file rebuilt at ``dest`` with its published header and IDs (placeholder
    prediction cells empty): the folder layout the published evaluators and our tests read."""
    for rel in example_files():
        path = dest / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        example_table(rel).to_csv(path, index=False)
    return dest


def main(argv: list[str] | None = None) -> int:
    """Rebuild ``tests/data/published`` from the reference tree."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reference", type=Path, default=REF,
                    help=f"the reference tree (default {REF})")
    args = ap.parse_args(argv)
    if not (args.reference / SPLITS_REL).is_dir():
        ap.error(f"no published splits under {args.reference}")
    write_all(derive_all(args.reference))
    for p in sorted(PUBLISHED.iterdir()):
        print(f"{p.stat().st_size:>9}  {p}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
