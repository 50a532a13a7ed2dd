"""Toy dataset harmoniser: ``labels.csv`` (``clip, ef, fold``) + ``clips/<clip>.avi`` → manifest.

Declares its side-file schema and reads its split column and mapping from its own split spec,
as a real harmoniser does; missing or unreadable media are caught by ``prepare``'s media check.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cardiobench.manifest import Manifest, ManifestError
from cardiobench.schemas import Column, TableSchema, read_side_table, with_sample_ids
from cardiobench.splits import SplitSpec, map_split_column

LABELS = TableSchema("toy labels.csv", (
    Column("clip", meaning="no clip name"),
    Column("ef", "float", range=(0.0, 100.0), meaning="no ejection fraction label"),
    Column("fold", meaning="no fold"),
))


def harmonise(raw_root: Path, spec: SplitSpec) -> Manifest:
    """One row per clip; the split comes from the ``fold`` column through the spec's mapping."""
    side = read_side_table(Path(raw_root) / "labels.csv", LABELS)
    labels = side.table
    column, mapping = spec.params["column"], spec.params["mapping"]
    split, errors = map_split_column(labels[column], mapping, source="labels.csv", column=column,
                                     ids=labels["clip"], lines=side.line.tolist(),
                                     skip_rows=side.bad_rows)
    if errors:
        raise ManifestError(f"toy_echo: {len(errors)} problem(s)", errors)
    table = pd.DataFrame({"sample_id": labels["clip"], "patient_id": labels["clip"],
                          "split": split, "path": "clips/" + labels["clip"] + ".avi",
                          "view": "A4C", "ef": labels["ef"]})
    return Manifest(dataset="toy_echo", table=table, root=str(raw_root),
                    split_rule={"rule": spec.rule, "column": column},
                    source={"files": ["labels.csv"]},
                    problems=with_sample_ids(side.problems, labels["clip"]))
