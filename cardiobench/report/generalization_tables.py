"""The tables of the transfer and label-efficiency results, in HTML (the report) and Markdown
(the leaderboard): every transfer pair, the generalization table and the budget × encoder table of
each learning curve. The numbers come from :mod:`cardiobench.report.generalization`.
"""

from __future__ import annotations

import html
from typing import Any, Sequence

from cardiobench.report.definitions import display_value, fmt_metric, metric_label
from cardiobench.report.generalization import (RATIO_DEFINITION, Curve, Ratio, curves, end_key,
                                               matrices, matrix_reasons, ratios, result_ends,
                                               result_headline, transfer_results)
from cardiobench.results import Result


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


# ----------------------------------------------------------------------------- every pair
def pairs_html(results: Sequence[Result], labels: dict[str, str]) -> str:
    """Every transfer result, one row each: ends, runner, encoder, n, in-dataset, transferred,
    paired difference (with p), bias beside the MAE where there is one, classes each side lacks,
    and the reason where n/a (``data-*`` attributes carry the stored numbers)."""
    rows = []
    for r in sorted(transfer_results(results), key=lambda r: (
            end_key(str(r.config.get("label_group") or r.task)), end_key(result_ends(r)[1]),
            end_key(result_ends(r)[0]), str(r.config.get("runner")), labels[r.encoder_key])):
        src, tgt = result_ends(r)
        h = result_headline(r)
        head = (f'<tr data-source="{_e(src)}" data-target="{_e(tgt)}" '
                f'data-runner="{_e(r.config.get("runner"))}" data-encoder="{_e(r.encoder_key)}" '
                f'data-status="{_e(r.status)}"><th>{_e(src)} → {_e(tgt)}</th>'
                f"<td>{_e(r.config.get('runner'))}</td><td>{_e(labels[r.encoder_key])}</td>")
        if r.status != "ok":
            rows.append(f'{head}<td></td><td class="na" colspan="5">n/a'
                        f'<div class="why">{_e(r.reason)}</div></td></tr>')
            continue
        ind = r.extras.get("in_dataset") or {}
        diff = (r.extras.get("paired_difference") or {}).get(h)
        in_txt = (fmt_metric(h, ind["metrics"].get(h)) if ind.get("status") == "ok"
                  else f"n/a ({ind.get('reason')})")
        if diff:
            f = display_value(h, 1.0) or 1.0
            dv = diff.get("diff")
            d_txt = ("n/a (" + str(diff.get("na_reason")) + ")" if dv is None else
                     f"{dv * f:.3f} [{diff['ci_low'] * f:.3f}, {diff['ci_high'] * f:.3f}] "
                     f"p={diff['p_value']:.3f}" if diff.get("status") == "ok" else
                     f"{dv * f:.3f} [CI n/a: {diff.get('na_reason')}]")
        else:
            d_txt = "n/a (" + str(ind.get("reason") or "no in-dataset comparison") + ")"
        extra = ""
        if "bias" in r.metrics:
            extra = f"bias {fmt_metric('bias', r.metrics['bias'])}"
        cls = r.extras.get("classes") or {}
        lacks = "; ".join(x for x in (
            f"target test lacks {', '.join(cls['target_lacks'])}" if cls.get("target_lacks")
            else "", f"source train+val lacks {', '.join(cls['source_lacks'])}"
            if cls.get("source_lacks") else "") if x)
        note = "; ".join(x for x in (extra, lacks) if x) or "–"
        value = (r.metrics.get(h) or {}).get("value")
        rows.append(f'{head}<td>{r.n}</td><td>{_e(in_txt)}</td>'
                    f'<td data-metric="{_e(h)}" data-stored="{value!r}">'
                    f"{_e(fmt_metric(h, r.metrics.get(h)))}</td><td>{_e(d_txt)}</td>"
                    f"<td>{_e(note)}</td></tr>")
    if not rows:
        return ""
    return ('<div class="scroll tall"><table class="transfer-pairs"><thead><tr>'
            "<th>source → target</th><th>runner</th><th>encoder</th><th>n (target units)</th>"
            "<th>in-dataset</th><th>transferred</th><th>transferred − in-dataset (paired)</th>"
            "<th>bias, classes</th></tr></thead><tbody>" + "".join(rows) +
            "</tbody></table></div>")


def ratio_table(rs: Sequence[Ratio], labels: dict[str, str]) -> tuple[list[str],
                                                                      list[list[str]]]:
    """Header and rows of the generalization table of :func:`ratios` ``rs`` (rows
    ``encoder · runner``)."""
    groups = list(dict.fromkeys(r.group for r in rs if r.group != "all")) + ["all"]
    head = ["encoder · runner"] + [f"{g} group" if g != "all" else "all groups" for g in groups]
    rows = []
    for enc, runner in dict.fromkeys((r.encoder_key, r.runner) for r in rs):
        cells = {r.group: r.text() for r in rs if (r.encoder_key, r.runner) == (enc, runner)}
        rows.append([f"{labels.get(enc, enc)} · {runner}", *[cells.get(g, "–") for g in groups]])
    return head, rows


def ratio_html(results: Sequence[Result], labels: dict[str, str],
               rs: Sequence[Ratio] | None = None) -> str:
    """The generalization table as HTML (empty without transfer results); ``rs``: the
    :func:`ratios` of ``results`` when the caller has them already."""
    if not transfer_results(results):
        return ""
    head, rows = ratio_table(ratios(results) if rs is None else rs, labels)
    body = "".join("<tr><th>" + _e(r[0]) + "</th>" + "".join(
        f'<td class="na">{_e(c)}</td>' if c.startswith("n/a") else f"<td>{_e(c)}</td>"
        for c in r[1:]) + "</tr>" for r in rows)
    return (f'<p>{_e(RATIO_DEFINITION)}</p><div class="scroll"><table class="generalization">'
            "<thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr></thead><tbody>"
            + body + "</tbody></table></div>")


def curve_table_html(cs: Sequence[Curve], labels: dict[str, str]) -> str:
    """Budgets × encoders: mean metric [interval], labelled patients, or n/a with its reason."""
    budgets = list(dict.fromkeys(p["budget"] for c in cs for p in c.points))
    head = "".join(f"<th>{_e(labels.get(c.encoder_key, c.encoder_key))}</th>" for c in cs)
    rows = []
    for b in budgets:
        tds = []
        for c in cs:
            p = next((p for p in c.points if p["budget"] == b), None)
            if c.status != "ok":
                tds.append(f'<td class="na">n/a<div class="why">{_e(c.reason)}</div></td>')
            elif p is None:
                tds.append("<td>–</td>")
            elif p["status"] != "ok":
                tds.append(f'<td class="na" data-budget="{_e(b)}">{_e(p["status"])}'
                           f'<div class="why">{_e(p["reason"])}</div></td>')
            else:
                tds.append(f'<td data-budget="{_e(b)}" data-value="{p["value"]!r}">'
                           f'{_e(fmt_metric(c.metric, p["metric"]))}'
                           f'<br><span class="n">{p["x"]:g} labelled patients</span></td>')
        rows.append(f"<tr><th>{_e(b)}</th>{''.join(tds)}</tr>")
    ref = "".join(f"<td>{c.reference:.2f}</td>" if c.reference is not None else
                  f'<td class="na">n/a<div class="why">{_e(c.reference_reason)}</div></td>'
                  for c in cs)
    rows.append(f'<tr class="baseline"><th>full data, in-dataset {_e(cs[0].runner)}</th>'
                f"{ref}</tr>")
    return (f'<div class="scroll"><table class="efficiency" data-task="{_e(cs[0].task)}" '
            f'data-runner="{_e(cs[0].runner)}"><thead><tr><th>budget · '
            f"{_e(metric_label(cs[0].metric, cs[0].task))}</th>{head}</tr></thead><tbody>"
            + "".join(rows) + "</tbody></table></div>")


def curve_markdown(cs: Sequence[Curve], labels: dict[str, str]) -> list[str]:
    """The same table in Markdown."""
    budgets = list(dict.fromkeys(p["budget"] for c in cs for p in c.points))
    head = ["budget"] + [labels.get(c.encoder_key, c.encoder_key) for c in cs]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for b in budgets:
        cells = []
        for c in cs:
            p = next((p for p in c.points if p["budget"] == b), None)
            cells.append(f"n/a ({c.reason})" if c.status != "ok" else "–" if p is None else
                         f"{p['status']} ({p['reason']})" if p["status"] != "ok" else
                         f"{fmt_metric(c.metric, p['metric'])} · {p['x']:g} patients")
        lines.append("| " + " | ".join([b, *cells]).replace("\n", " ") + " |")
    lines.append("| full data, in-dataset | " + " | ".join(
        f"{c.reference:.2f}" if c.reference is not None else f"n/a ({c.reference_reason})"
        for c in cs) + " |")
    return lines


def markdown(results: Sequence[Result], labels: dict[str, str],
             rs: Sequence[Ratio] | None = None) -> list[str]:
    """The leaderboard's sections for transfer and label efficiency (nothing without them);
    ``rs`` as for :func:`ratio_html`."""
    parts: list[str] = []
    if transfer_results(results):
        head, rows = ratio_table(ratios(results) if rs is None else rs, labels)
        parts += ["## Generalization", "", RATIO_DEFINITION, "",
                  "| " + " | ".join(head) + " |", "|" + "---|" * len(head),
                  *["| " + " | ".join(r) + " |" for r in rows], ""]
        parts += ["## Cross-dataset transfer", "",
                  "Headline metric; diagonal: in-dataset on the same target units; `*`: the "
                  "paired difference's 95 % interval excludes 0.", ""]
        for m in matrices(results):
            parts += [f"### {m.group} · {m.runner} · {labels.get(m.encoder_key, m.encoder_key)}"
                      f" ({metric_label(m.metric, m.group)})", "",
                      "| source \\ target | " + " | ".join(m.ends) + " |",
                      "|" + "---|" * (len(m.ends) + 1)]
            for s in m.ends:
                parts.append(f"| {s} | " + " | ".join(
                    (lambda c: c.text + (f" (n={c.n})" if c.n is not None else ""))(m.cell(s, t))
                    for t in m.ends) + " |")
            parts += [""] + [f"- n/a: {x}" for x in matrix_reasons(m)] + [""]
    cs = curves(results)
    if cs:
        parts += ["## Label efficiency", ""]
        for (task, runner), series in cs.items():
            parts += [f"### {task} · {runner} ({metric_label(series[0].metric, task)})", "",
                      *curve_markdown(series, labels), ""]
    return parts
