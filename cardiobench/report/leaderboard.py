"""Markdown leaderboard from a results folder.

Main table: rows = tasks, columns = ``encoder · protocol`` and the trivial baseline (train+val
mean or majority class), cell = the task's headline metric as ``value [ci_low, ci_high]`` (95 %
patient-bootstrap interval), ``n/a`` for a not-applicable result. Then one table per task: every metric of every (encoder, protocol), plus the trivial
baseline's, so the floor is visible beside each model.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable

import pandas as pd

from cardiobench.atomic import atomic_write_text
from cardiobench.results import Result, load_results

_FALLBACK_HEADLINES = ("mae", "auroc", "accuracy")
#: column order of the per-task tables (metrics not listed follow, alphabetically)
METRIC_ORDER = ("mae", "rmse", "mse", "nmae", "r2", "pearson", "spearman", "accuracy",
                "balanced_accuracy", "f1_macro", "auroc", "auprc", "brier", "nll", "ece", "smd",
                "margin_pos", "margin_neg", "recall@1", "recall@5", "recall@10", "mAP")


def _fmt(m: dict | None, digits: int = 2) -> str:
    if not m or m.get("value") is None:
        return "–"
    v, lo, hi = m.get("value"), m.get("ci_low"), m.get("ci_high")
    if lo is None or hi is None or (isinstance(lo, float) and math.isnan(lo)):
        return f"{v:.{digits}f}"
    return f"{v:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def headline_of(r: Result) -> str:
    """The result's headline metric name (from its config, else the first known one present)."""
    h = r.config.get("headline")
    if h and h in r.metrics:
        return h
    return next((m for m in _FALLBACK_HEADLINES if m in r.metrics), next(iter(r.metrics), ""))


def leaderboard_table(results: Iterable[Result]) -> pd.DataFrame:
    """Rows ``task (headline metric)``, columns ``encoder · protocol`` plus the trivial baseline.

    Alignment results have no headline metric and appear only in the per-task tables.
    """
    from cardiobench.protocols.tasks import get_task

    cells: dict[str, dict[str, str]] = {}
    for r in sorted(results, key=lambda x: (x.encoder_name, x.protocol)):
        if r.protocol == "alignment":
            continue
        try:
            h = get_task(r.task).headline
        except KeyError:
            h = headline_of(r)
        row = cells.setdefault(f"{r.task} ({h})", {})
        col = f"{r.encoder_name} · {r.protocol}"
        if r.status != "ok":
            row[col] = "n/a" if r.status == "not_applicable" else r.status
            continue
        row[col] = _fmt(r.metrics.get(h))
        if r.baseline and r.protocol == "linear_probe":
            row.setdefault("trivial baseline", _fmt(r.baseline.get(h)))
    df = pd.DataFrame.from_dict(cells, orient="index")
    cols = sorted(c for c in df.columns if c != "trivial baseline")
    df = df.reindex(cols + (["trivial baseline"] if "trivial baseline" in df else []), axis=1)
    df = df.sort_index().fillna("–")
    df.index.name = "task (metric)"
    return df


def task_tables(results: Iterable[Result]) -> dict[str, pd.DataFrame]:
    """Per task: rows ``encoder / protocol`` (+ ``baseline`` rows), columns every metric."""
    rows: dict[str, list[dict[str, str]]] = {}
    seen_baseline: set[tuple[str, str]] = set()
    for r in sorted(results, key=lambda x: (x.task, x.encoder_name, x.protocol)):
        if r.status != "ok":
            rows.setdefault(r.task, []).append({"model": f"{r.encoder_name} / {r.protocol}",
                                                "n": "", "note": f"{r.status}: {r.reason}"})
            continue
        row = {"model": f"{r.encoder_name} / {r.protocol}", "n": str(r.n)}
        row.update({k: _fmt(v) for k, v in r.metrics.items()})
        rows.setdefault(r.task, []).append(row)
        if r.baseline and (r.task, r.protocol) not in seen_baseline and r.protocol == "linear_probe":
            seen_baseline.add((r.task, r.protocol))
            b = {"model": f"baseline ({r.config.get('baseline', 'trivial')})", "n": str(r.n)}
            b.update({k: _fmt(v) for k, v in r.baseline.items()})
            rows[r.task].append(b)
    tables = {}
    for t, v in rows.items():
        df = pd.DataFrame(v).fillna("")
        metrics = [c for c in df.columns if c not in ("model", "n", "note")]
        rank = {m: i for i, m in enumerate(METRIC_ORDER)}
        metrics.sort(key=lambda m: (rank.get(m, len(rank)), m))
        tables[t] = df[["model", "n", *metrics, *(["note"] if "note" in df else [])]]
    return tables


def _md(df: pd.DataFrame, index: bool = True) -> str:
    """GitHub Markdown table without the optional ``tabulate`` dependency."""
    d = df.reset_index() if index else df
    head = "| " + " | ".join(map(str, d.columns)) + " |"
    sep = "|" + "|".join("---" for _ in d.columns) + "|"
    body = ["| " + " | ".join(str(x) for x in row) + " |" for row in d.itertuples(index=False)]
    return "\n".join([head, sep, *body])


def render_markdown(results: list[Result]) -> str:
    """The full leaderboard document."""
    parts = ["# cardiobench leaderboard", "",
             "Cells: headline metric, 95 % percentile interval from 1000 bootstrap replicates "
             "over patients (seed 42). Dimensionless metrics in %; MAE/RMSE in the label's unit.",
             ""]
    if not results:
        return "\n".join(parts + ["(no results)", ""])
    parts += [_md(leaderboard_table(results)), ""]
    for task, df in sorted(task_tables(results).items()):
        parts += [f"## {task}", "", _md(df, index=False), ""]
    return "\n".join(parts)


def write_leaderboard(results_dir: str | Path, out: str | Path | None = None) -> Path:
    """Render every result under ``results_dir`` into ``leaderboard.md`` (atomically)."""
    out = Path(out) if out else Path(results_dir) / "leaderboard.md"
    return atomic_write_text(out, render_markdown(load_results(results_dir)))
