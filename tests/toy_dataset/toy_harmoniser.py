"""Toy dataset harmoniser: ``labels.csv`` (``clip, ef, fold``) + ``clips/<clip>.avi`` → manifest.

Reads its split column and mapping from its own split spec, as a real harmoniser does.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cardiobench.manifest import Manifest, ManifestError
from cardiobench.preprocessing import register_dataset
from cardiobench.preprocessing.common import missing_file_problems, read_table
from cardiobench.splits import load_spec, map_split_column


@register_dataset("toy_echo")
def harmonise(raw_root: Path) -> Manifest:
    """One row per clip; the split comes from the ``fold`` column through the spec's mapping."""
    labels = read_table(Path(raw_root) / "labels.csv", ("clip", "ef", "fold"), dtype={"clip": str})
    spec = load_spec("toy_echo")
    column, mapping = spec.params["column"], spec.params["mapping"]
    split, errors = map_split_column(labels[column], mapping, source="labels.csv", column=column,
                                     ids=labels["clip"], lines=range(2, len(labels) + 2))
    table = pd.DataFrame({"sample_id": labels["clip"], "patient_id": labels["clip"],
                          "split": split, "path": "clips/" + labels["clip"] + ".avi",
                          "view": "A4C", "ef": labels["ef"].astype(float)})
    errors += missing_file_problems(raw_root, table)
    if errors:
        raise ManifestError(f"toy_echo: {len(errors)} problem(s)", errors)
    return Manifest(dataset="toy_echo", table=table, root=str(raw_root),
                    split_rule={"rule": spec.rule, "column": column}, source={"files": ["labels.csv"]})
