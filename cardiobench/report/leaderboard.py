"""Markdown leaderboard from a results folder.

Sections: the overview matrix and the paper-layout tables (:mod:`cardiobench.report.tables`);
a summary with rows = tasks, columns = ``encoder · protocol`` and the trivial baseline (train+val
mean or majority class), cell = the task's headline metric as ``value [ci_low, ci_high]`` (95 %
patient-bootstrap interval), ``n/a (reason)`` for a not-applicable result; then one table per
task: every metric of every (encoder, protocol), plus the trivial baseline's, so the floor is
visible beside each model; then, where there are ``transfer`` and ``label_efficiency`` results,
the generalization table, the transfer matrices and the label-efficiency tables
(:mod:`cardiobench.report.generalization_tables`); last, the definition of every protocol and metric. Values are in
display units (:func:`cardiobench.report.definitions.display_value`).

A task whose results were scored on different labels (label fingerprints,
:mod:`cardiobench.comparability`) gets one summary row per label version
(``task (metric) · labels ab12cd34``), each with its own trivial baseline, and its per-task
table names each row's version: results on other labels are never ranked together.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from cardiobench.atomic import atomic_write_text
from cardiobench.comparability import label_version, mixed_tasks, short
from cardiobench.metrics import METRICS
from cardiobench.report.definitions import (AUDIT_NOTES, SMALL_N, fmt_metric, metric_label,
                                            protocol_definitions, tabulated)
from cardiobench.results import Result, ResultFileError, load_results

log = logging.getLogger(__name__)

_FALLBACK_HEADLINES = ("mae", "auroc", "accuracy")


def _fmt(m: dict | None, metric: str = "") -> str:
    """``value [lo, hi]`` of a stored metric, in display units."""
    return fmt_metric(metric, m)


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
    from cardiobench.report import task_of

    results = [r for r in results if tabulated(r.protocol)]
    mixed = mixed_tasks(r for r in results if r.protocol != "alignment")
    cells: dict[str, dict[str, str]] = {}
    for r in sorted(results, key=lambda x: (x.encoder_name, x.protocol)):
        if r.protocol == "alignment":
            continue
        try:
            h = task_of(r.task, results).headline
        except KeyError:
            h = headline_of(r)
        version = f" · labels {short(label_version(r))}" if r.task in mixed else ""
        row = cells.setdefault(f"{r.task} ({h}){version}", {})
        col = f"{r.encoder_name} · {r.protocol}"
        if r.status != "ok":
            row[col] = ("n/a" if r.status == "not_applicable" else r.status) + \
                (f" ({r.reason})" if r.reason else "")
            continue
        row[col] = _fmt(r.metrics.get(h), h) + (" ‡" if r.n < SMALL_N else "")
        if r.baseline and r.protocol == "linear_probe":
            row.setdefault("trivial baseline", _fmt(r.baseline.get(h), h))
    df = pd.DataFrame.from_dict(cells, orient="index")
    cols = sorted(c for c in df.columns if c != "trivial baseline")
    df = df.reindex(cols + (["trivial baseline"] if "trivial baseline" in df else []), axis=1)
    df = df.sort_index().fillna("–")
    df.index.name = "task (metric)"
    return df


def task_tables(results: Iterable[Result]) -> dict[str, pd.DataFrame]:
    """Per task: rows ``encoder / protocol`` (+ ``baseline`` rows), columns every metric."""
    results = [r for r in results if tabulated(r.protocol)]
    mixed = mixed_tasks(results)
    rows: dict[str, list[dict[str, str]]] = {}
    seen_baseline: set[tuple[str, str, str]] = set()
    for r in sorted(results, key=lambda x: (x.task, label_version(x), x.encoder_name,
                                            x.protocol)):
        version = f" · labels {short(label_version(r))}" if r.task in mixed else ""
        if r.status != "ok":
            rows.setdefault(r.task, []).append({"model": f"{r.encoder_name} / {r.protocol}"
                                                         f"{version}",
                                                "n": "", "note": f"{r.status}: {r.reason}"})
            continue
        row = {"model": f"{r.encoder_name} / {r.protocol}{version}",
               "n": str(r.n) + (" ‡" if r.n < SMALL_N else "")}
        row.update({k: _fmt(v, k) for k, v in r.metrics.items()})
        rows.setdefault(r.task, []).append(row)
        key = (r.task, r.protocol, label_version(r))
        if r.baseline and key not in seen_baseline and r.protocol == "linear_probe":
            seen_baseline.add(key)
            b = {"model": f"baseline ({r.config.get('baseline', 'trivial')}){version}",
                 "n": str(r.n)}
            b.update({k: _fmt(v, k) for k, v in r.baseline.items()})
            rows[r.task].append(b)
    tables = {}
    for t, v in rows.items():
        df = pd.DataFrame(v).fillna("")
        metrics = [c for c in df.columns if c not in ("model", "n", "note")]
        rank = {m: i for i, m in enumerate(METRICS)}  # metrics.yaml's order; others follow
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


def bootstrap_phrase(results: Iterable[Result]) -> str:
    """How the intervals of ``results`` were computed, read from each result's
    ``config["bootstrap"]`` (one phrase per distinct setting, so a mixed folder says so)."""
    seen: list[str] = []
    for r in results:
        b = (r.config or {}).get("bootstrap") or {}
        if not b.get("n_boot"):
            continue
        unit = "over patients (TMED-2: studies)" if b.get("unit") == "patient_id" \
            else f"over each {b.get('unit', 'unit')}"
        rounding = ", rounded per replicate as the published evaluators" if b.get("rounding") else ""
        phrase = (f"{b.get('interval', 'percentile 95%')} interval from {b['n_boot']} bootstrap "
                  f"replicates {unit}, seed {b.get('seed')}{rounding}")
        if phrase not in seen:
            seen.append(phrase)
    return "; ".join(seen) or "no bootstrap intervals in these results"


def legend(results: Iterable[Result]) -> str:
    """The legend under the leaderboard tables, with the bootstrap the results actually used."""
    return (f"Cells: headline metric, {bootstrap_phrase(results)}. Percent only for proportions "
            "(accuracy, AUROC, AUPRC, F1, R², NMAE, recall, mAP); NLL, Brier, ECE and correlation "
            "coefficients in their own units; MAE/RMSE in the label's unit. "
            f"★ best encoder of the task; ‡ fewer than {SMALL_N} evaluation units; ◐ incomplete "
            "data. A percentile interval need not contain the point estimate.")


def definitions_markdown(metrics: Iterable[str] | None = None) -> str:
    """One line per protocol and per metric (all, or those in ``metrics``), plus the audit notes."""
    keep = set(metrics) if metrics is not None else set(METRICS)
    lines = ["## Definitions", "", "Protocols:", ""]
    lines += [f"- **{k}** — {v}" for k, v in protocol_definitions().items()]
    lines += ["", "Metrics:", ""]
    lines += [f"- **{metric_label(k)}** — {v.definition}" for k, v in METRICS.items()
              if k in keep]
    lines += ["", "Notes:", ""] + [f"- {n}" for n in AUDIT_NOTES]
    return "\n".join(lines)


def render_markdown(results: list[Result], ratios: list[Any] | None = None) -> str:
    """The full leaderboard document (``ratios``: the generalization ratios of ``results``
    when the caller has computed them, :func:`cardiobench.report.generalization.ratios`)."""
    from cardiobench.report import generalization_tables
    from cardiobench.report.tables import encoder_labels, overview_markdown, paper_markdown

    parts = ["# cardiobench leaderboard", "", legend(results), ""]
    if not results:
        return "\n".join(parts + ["(no results)", ""])
    if any(tabulated(r.protocol) for r in results):
        parts += ["## Overview", "", overview_markdown(results), "",
                  "## Tables in the paper layout", "", paper_markdown(results),
                  "## Summary by task", "", _md(leaderboard_table(results)), ""]
        for task, df in sorted(task_tables(results).items()):
            parts += [f"## {task}", "", _md(df, index=False), ""]
    parts += generalization_tables.markdown(results, encoder_labels(results), ratios)
    used = {k for r in results for k in [*r.metrics, *r.baseline]}
    parts += [definitions_markdown(used), ""]
    return "\n".join(parts)


def write_leaderboard(results_dir: str | Path, out: str | Path | None = None) -> Path:
    """Render every result under ``results_dir`` into ``leaderboard.md`` (atomically)."""
    out = Path(out) if out else Path(results_dir) / "leaderboard.md"
    unread: list[tuple[Result, ResultFileError]] = []  # the generalization table bootstraps
    results = load_results(results_dir, with_predictions=True, unread=unread)
    for _, why in unread:
        log.warning("%s: the leaderboard leaves out what needs them", why)
    return atomic_write_text(out, render_markdown(results))
