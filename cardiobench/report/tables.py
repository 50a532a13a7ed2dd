"""Tables of a results folder: the overview matrix, the paper layout (LaTeX booktabs and
Markdown), the long CSV of every metric.

Overview: columns = tasks (headline metric), rows = encoders grouped by protocol with a trivial
baseline row per group; a cell holds the headline value with its 95 % interval, n, and marks for
the best encoder of the task (★), fewer than :data:`SMALL_N` units (‡), incomplete data (◐) and
not-applicable results with their reason. Alignment results have other headline metrics and
appear only in the per-task sections.

Label versions: when the results of one task were scored on different labels (different
``label_fingerprint``, :mod:`cardiobench.comparability`), each of its cells names its version
(``[labels ab12cd34]``), the best encoder is marked within each version only, and each version
has its own trivial-baseline row (``trivial baseline · labels ab12cd34``).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Iterable

from cardiobench.comparability import label_version, mixed_tasks, short
from cardiobench.metrics import METRICS
from cardiobench.report import task_of
from cardiobench.report.definitions import (SMALL_N, display_value, fmt_metric, incomplete_data,
                                            metric_label, metric_unit, protocol_order, tabulated)
from cardiobench.results import Result
from cardiobench.spreadsheet import safe_row

BASELINE = "trivial baseline"


@dataclass
class Cell:
    """One overview cell (display values, or a status with its reason)."""

    text: str                      # 'value [lo, hi]', 'n/a', '–'
    value: float | None = None     # display value of the headline, for ranking
    n: int | None = None
    status: str = "ok"
    reason: str | None = None
    best: bool = False
    small: bool = False
    incomplete: str | None = None
    labels: str | None = None      # short label fingerprint, set when the task's results disagree


def is_baseline_row(name: str) -> bool:
    """Whether an overview row is a trivial-baseline row (one per label version)."""
    return name == BASELINE or name.startswith(BASELINE + " · ")


def baseline_row_name(labels: str | None) -> str:
    """The trivial-baseline row of a label version (plain when the versions agree)."""
    return BASELINE if labels is None else f"{BASELINE} · labels {labels}"


def headline(task: str, results: Iterable[Result] = ()) -> str:
    """The task's headline metric name."""
    return task_of(task, results).headline


def encoder_labels(results: Iterable[Result]) -> dict[str, str]:
    """encoder_key → row label: the display name, or the key where two configurations share it."""
    keys: dict[str, set[str]] = {}
    for r in results:
        keys.setdefault(r.encoder_name, set()).add(r.encoder_key)
    return {k: (name if len(ks) == 1 else k) for name, ks in keys.items() for k in ks}


def task_order(results: Iterable[Result]) -> list[str]:
    """Tasks grouped by dataset (datasets and tasks in catalogue order), unknown tasks last."""
    from cardiobench.catalogue import default_catalogue

    names = list(default_catalogue().tasks)
    datasets = list(dict.fromkeys(t.split("/")[0] for t in names))
    present = {r.task for r in results}

    def key(t: str) -> tuple[int, int, str]:
        ds = t.split("/")[0]
        return (datasets.index(ds) if ds in datasets else len(datasets),
                names.index(t) if t in names else len(names), t)

    return sorted(present, key=key)


def _cell(r: Result, metric: str, baseline: bool = False, labels: str | None = None) -> Cell:
    if r.status != "ok":
        return Cell("n/a" if r.status == "not_applicable" else r.status, status=r.status,
                    reason=r.reason or r.status, labels=labels)
    m = (r.baseline if baseline else r.metrics).get(metric)
    if m and m.get("value") is None and m.get("na_reason"):
        # the metric is undefined on these test labels/predictions: an n/a cell with its reason
        return Cell("n/a", status="not_applicable", reason=f"{metric}: {m['na_reason']}",
                    labels=labels)
    v = display_value(metric, m.get("value")) if m else None
    return Cell(fmt_metric(metric, m), value=v, n=r.n, small=r.n < SMALL_N,
                incomplete=None if baseline else incomplete_data(r.extras), labels=labels)


def overview(results: list[Result]) -> tuple[list[str], dict[str, list[tuple[str, dict[str, Cell]]]]]:
    """``(tasks, {protocol: [(row label, {task: Cell})]})`` with the best cell per task marked."""
    results = [r for r in results if tabulated(r.protocol)]
    labels = encoder_labels(results)
    scored = [r for r in results if r.protocol != "alignment"]
    tasks = task_order(scored)
    mixed = mixed_tasks(scored)

    def version(r: Result) -> str | None:
        return short(label_version(r)) if r.task in mixed else None

    groups: dict[str, list[tuple[str, dict[str, Cell]]]] = {}
    order = protocol_order()
    for proto in sorted({r.protocol for r in results} - {"alignment"},
                        key=lambda p: (order.index(p) if p in order else len(order), p)):
        rows: dict[str, dict[str, Cell]] = {}
        base: dict[str, dict[str, Cell]] = {}
        for r in sorted((r for r in results if r.protocol == proto),
                        key=lambda r: labels[r.encoder_key]):
            h = headline(r.task, results)
            rows.setdefault(labels[r.encoder_key], {})[r.task] = _cell(r, h, labels=version(r))
            brow = base.setdefault(baseline_row_name(version(r)), {})
            if r.status == "ok" and r.baseline and r.task not in brow:
                brow[r.task] = _cell(r, h, baseline=True, labels=version(r))
        groups[proto] = [*sorted(rows.items()), *sorted((k, v) for k, v in base.items() if v)]
    for t in tasks:
        h = headline(t, results)
        cells = [row[t] for g in groups.values() for name, row in g
                 if not is_baseline_row(name) and t in row and row[t].value is not None]
        pick = max if METRICS[h].higher_is_better else min
        # the best encoder is marked within one label version: other labels are not comparable
        for version_ in {c.labels for c in cells}:
            same = [c for c in cells if c.labels == version_]
            best = pick(c.value for c in same)
            for c in same:
                c.best = c.value == best
    return tasks, groups


def cell_text(c: Cell, reasons_inline: bool = True) -> str:
    """Plain-text cell for Markdown/CSV: value, marks, n, and the n/a reason at the cell."""
    version = f" [labels {c.labels}]" if c.labels else ""
    if c.status != "ok":
        return (f"{c.text} ({c.reason})" if reasons_inline and c.reason else c.text) + version
    if c.value is None:
        return "–"
    marks = ("★" if c.best else "") + ("‡" if c.small else "") + ("◐" if c.incomplete else "")
    return f"{c.text}{' ' + marks if marks else ''} n={c.n}{version}"


def _md_escape(s: str) -> str:
    return s.replace("|", "\\|")


def overview_markdown(results: list[Result]) -> str:
    """The overview matrix as one Markdown table (protocol groups as bold separator rows)."""
    tasks, groups = overview(results)
    head = ["protocol / encoder"] + [f"{t} · {metric_label(headline(t, results), t)}" for t in tasks]
    lines = ["| " + " | ".join(map(_md_escape, head)) + " |", "|" + "---|" * len(head)]
    for proto, rows in groups.items():
        lines.append(f"| **{proto}** |" + " |" * len(tasks))
        for name, row in rows:
            cells = [cell_text(row[t]) if t in row else "–" for t in tasks]
            lines.append("| " + " | ".join(_md_escape(x) for x in [name, *cells]) + " |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- paper layout
def _datasets(tasks: list[str]) -> list[tuple[str, list[str]]]:
    out: list[tuple[str, list[str]]] = []
    for t in tasks:
        ds = t.split("/")[0]
        if out and out[-1][0] == ds:
            out[-1][1].append(t)
        else:
            out.append((ds, [t]))
    return out


def paper_tables(results: list[Result]) -> dict[str, tuple[list[tuple[str, list[str]]],
                                                           list[tuple[str, dict[str, Cell]]]]]:
    """Per protocol: (dataset column groups, rows) — the layout of the published tables."""
    tasks, groups = overview(results)
    out = {}
    for proto, rows in groups.items():
        used = [t for t in tasks if any(t in row for _, row in rows)]
        out[proto] = (_datasets(used), rows)
    return out


def _tex(s: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"),
                 ("#", r"\#"), ("$", r"\$"), ("{", r"\{"), ("}", r"\}"), ("~", r"\~{}"),
                 ("^", r"\^{}")):
        s = s.replace(a, b)
    return s.replace("²", r"\textsuperscript{2}").replace("ρ", r"$\rho$").replace("–", "--")


def _tex_cell(c: Cell | None) -> str:
    if c is None or (c.status == "ok" and c.value is None):
        return "--"
    if c.status != "ok":
        return r"n/a\tnote{" + _tex(c.reason or c.status) + "}"
    txt = _tex(c.text).replace(" [", r"\,{\scriptsize[").replace("]", "]}")
    txt = r"\textbf{" + txt + "}" if c.best else txt
    return txt + (r"$^\ddagger$" if c.small else "") + (r"$^\circ$" if c.incomplete else "")


def latex_tables(results: list[Result]) -> str:
    """One booktabs table per protocol; needs ``booktabs`` (``\\tnote`` is defined inline)."""
    parts = [r"% cardiobench tables: \usepackage{booktabs} in the preamble",
             r"\providecommand{\tnote}[1]{\textsuperscript{\dag}\footnote{#1}}"]
    for proto, (dsets, rows) in paper_tables(results).items():
        tasks = [t for _, ts in dsets for t in ts]
        parts += [r"\begin{table}[ht]", r"\centering", r"\scriptsize",
                  r"\caption{" + _tex(f"{proto}: headline metric, 95 % patient-bootstrap "
                                      "percentile interval. Best per task in bold; ") +
                  r"$^\ddagger$ " + _tex(f"fewer than {SMALL_N} evaluation units") + "; " +
                  r"$^\circ$ incomplete data.}",
                  r"\begin{tabular}{l" + "c" * len(tasks) + "}", r"\toprule"]
        heads, rules, col = [""], [], 2
        for ds, ts in dsets:
            heads.append(r"\multicolumn{%d}{c}{%s}" % (len(ts), _tex(ds)))
            rules.append(r"\cmidrule(lr){%d-%d}" % (col, col + len(ts) - 1))
            col += len(ts)
        parts += [" & ".join(heads) + r" \\", " ".join(rules)]
        sub = ["Encoder"] + [_tex(t.split("/", 1)[1] + " " + metric_label(headline(t, results), t))
                             for t in tasks]
        parts += [" & ".join(sub) + r" \\", r"\midrule"]
        in_base = False
        for name, row in rows:
            if is_baseline_row(name) and not in_base:  # one rule above the baseline rows
                in_base = True
                parts.append(r"\midrule")
            parts.append(" & ".join([_tex(name)] + [_tex_cell(row.get(t)) for t in tasks]) + r" \\")
        parts += [r"\bottomrule", r"\end{tabular}",
                  r"\label{tab:cardiobench-" + proto.replace("_", "-") + "}", r"\end{table}", ""]
    return "\n".join(parts)


def paper_markdown(results: list[Result]) -> str:
    """The paper layout in Markdown: one table per protocol, columns ``dataset · endpoint``."""
    parts = []
    for proto, (dsets, rows) in paper_tables(results).items():
        tasks = [t for _, ts in dsets for t in ts]
        head = ["encoder"] + [f"{t.split('/')[0]} · {t.split('/', 1)[1]} "
                              f"({metric_label(headline(t, results), t)})" for t in tasks]
        parts += [f"### {proto}", "", "| " + " | ".join(map(_md_escape, head)) + " |",
                  "|" + "---|" * len(head)]
        for name, row in rows:
            cells = [cell_text(row[t]) if t in row else "–" for t in tasks]
            parts.append("| " + " | ".join(_md_escape(x) for x in [name, *cells]) + " |")
        parts.append("")
    return "\n".join(parts)


def long_csv(results: list[Result]) -> str:
    """Every metric of every result (and its baseline) in display units, one row each.

    ``status``/``reason`` are the result's when it is not ok, else the metric's own
    (``ok``, ``no_interval`` or ``undefined`` with its ``na_reason``); ``label_fingerprint`` is
    the labels the result was scored on; ``variant`` tells apart the results one protocol wrote
    for one task and encoder (a transfer's source and runner: its metrics are the transferred
    ones). Text cells are spreadsheet-safe (:mod:`cardiobench.spreadsheet`).
    """
    labels = encoder_labels(results)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["task", "dataset", "protocol", "encoder", "encoder_key", "row", "metric", "unit",
                "value", "ci_low", "ci_high", "n", "status", "reason", "ci_mode", "variant",
                "label_fingerprint"])
    for r in sorted(results, key=lambda r: (r.task, r.protocol, r.encoder_key,
                                            r.variant or "")):
        base = [r.task, r.dataset, r.protocol, labels[r.encoder_key], r.encoder_key]
        ci_mode = r.config.get("ci", "patient")
        fp = label_version(r)
        if r.status != "ok":
            w.writerow(safe_row(base + ["model", "", "", "", "", "", "", r.status,
                                        r.reason or "", ci_mode, r.variant or "", fp]))
            continue
        for row, ms in (("model", r.metrics), (BASELINE, r.baseline)):
            for k, m in sorted(ms.items()):
                vals = [display_value(k, m.get(x)) for x in ("value", "ci_low", "ci_high")]
                w.writerow(safe_row(base + [row, k, metric_unit(k, r.task)]
                                    + ["" if v is None else repr(v) for v in vals]
                                    + [r.n, m.get("status") or "ok", m.get("na_reason") or "",
                                       ci_mode, r.variant or "", fp]))
    return buf.getvalue()
