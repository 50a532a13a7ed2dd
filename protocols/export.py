"""Export predictions in the published evaluators' CSV formats (docs/published_benchmark.md §5).

One directory per task, one file per model, the evaluator's ID column name and spelling, hard
0/1 integers for binary predictions, ``prob_*`` columns. View files carry the five
``prob_<view>`` columns the evaluators read (plus ``prob_Other`` for TMED-2, whose example has
it); the evaluators recompute ``prob_Other = 1 − Σ`` anyway, which equals ours because our
six probabilities sum to 1.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cardiobench.atomic import atomic_write_text
from cardiobench.protocols.tasks import Task, get_task
from cardiobench.results import Result


def export_frame(result: Result, task: Task | None = None) -> pd.DataFrame:
    """The evaluator-ready table for one ``ok`` result with predictions."""
    task = task or get_task(result.task)
    spec = task.export
    if spec is None:
        raise ValueError(f"task {task.name} has no reference export format")
    if result.status != "ok" or result.predictions is None:
        raise ValueError(f"{task.name}/{result.protocol}: no predictions to export "
                         f"(status {result.status})")
    p = result.predictions
    out = {}
    for col in spec.columns:
        if col == spec.id_column:
            if spec.id_source not in p:
                raise KeyError(f"{task.name}: predictions lack id column {spec.id_source!r}")
            out[col] = p[spec.id_source].astype(str)
        elif col == "view_pred":
            out[col] = p["y_pred"].astype(str)
        elif col.endswith("_pred"):
            out[col] = p["y_pred"].astype(int) if task.type == "binary" else p["y_pred"].astype(float)
        elif col.startswith("prob_"):
            out[col] = p[col] if task.type == "multiclass" else p["prob"]
        elif col == "view":
            out[col] = p["view"] if "view" in p else pd.NA
        else:
            raise KeyError(f"{task.name}: no rule to fill export column {col!r}")
    return pd.DataFrame(out, columns=list(spec.columns))


def export_result(result: Result, root: str | Path, model: str | None = None) -> Path:
    """Write ``<root>/<task dir>/<file>`` for ``result``; returns the path."""
    task = get_task(result.task)
    name = model or result.encoder_name
    path = Path(root) / task.export.directory / task.export.filename.format(model=name)
    atomic_write_text(path, export_frame(result, task).to_csv(index=False))
    return path
