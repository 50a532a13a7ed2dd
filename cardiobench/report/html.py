"""The offline report: ``index.html`` with its figures beside it, plus the leaderboard files.

``build_report(results, out)`` writes ``out/index.html``, ``out/fig/*.png`` and
``out/leaderboard.{md,csv,tex}``. The page is static HTML with inline CSS: no server, CDN, font
or script, so it opens from disk offline. Cells carry ``data-*`` attributes (task, protocol,
encoder key, metric, display value) so tests can check every number against the result JSONs.

Layout: each task's figures share one size and sit in one even grid (two 640 px columns in a
1400 px window, shown at their natural size); the overview table scrolls inside its own box, its
header row and first column sticky, so a suite of twenty tasks never widens the page. Results of
protocols that are not one cell per task (``transfer``, ``label_efficiency``) have their own
section, "Beyond one dataset" (:mod:`cardiobench.report.generalization`): transfer matrices, the
generalization table, every pair, and the learning curves with their tables; its figures share
one size per kind. A figure
that cannot be drawn is an n/a placeholder of the same size with the reason
(:func:`figures.unusable`); an ok result whose headline is null is an n/a cell.

Writing: the whole report is built in a temporary folder beside ``out`` and swapped in when
complete (:mod:`cardiobench.atomic_folder`), so ``index.html`` never describes other figures or
leaderboards than the ones beside it, whatever interrupts the run.

The module is longer than ~400 lines on purpose: it is one page, built section by section
(overview, tasks, maps, comparisons, provenance) by small functions sharing one escaping and
layout vocabulary; the figures and tables it embeds live in ``figures.py`` and ``tables.py``.
"""

from __future__ import annotations

import datetime as _dt
import html
import logging
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd
from tqdm.auto import tqdm

from cardiobench.atomic import atomic_write_text
from cardiobench.atomic_folder import atomic_folder
from cardiobench.manifest import manifest_csvs
from cardiobench.report import figures, tables, task_of
from cardiobench.metrics import METRICS
from cardiobench.report.definitions import (AUDIT_NOTES, SMALL_N, display_value, fmt_metric,
                                            incomplete_data, metric_label,
                                            protocol_definitions, protocol_order, tabulated)
from cardiobench.results import Result, ResultFileError, load_results

log = logging.getLogger(__name__)

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1.5em auto;
max-width:1400px;padding:0 1em;color:#1b1b1b;line-height:1.4}
h1{font-size:1.6em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
h3{margin-top:1.5em}
table{border-collapse:collapse;font-size:12px;margin:.5em 0}
th,td{border:1px solid #ccc;padding:3px 5px;vertical-align:top}
th{background:#f3f3f3;text-align:left}
.scroll{overflow-x:auto;max-width:100%}.scroll.tall{overflow-y:auto;max-height:32em}
.overview-box{overflow:auto;max-width:100%;max-height:85vh;border:1px solid #ccc;margin:.5em 0}
#overview{border-collapse:separate;border-spacing:0;margin:0}
#overview th,#overview td{border:0;border-right:1px solid #ccc;border-bottom:1px solid #ccc}
#overview td{background:#fff}#overview td.best{background:#e3f4e1}
#overview td.na{background:#fafafa}
#overview thead th{position:sticky;top:0;z-index:2}
#overview tbody th{position:sticky;left:0;z-index:1;min-width:8em}
#overview thead th:first-child{left:0;z-index:3}
#overview tr.group th{position:static;background:#dde6f0}
#overview tr.group th span{position:sticky;left:5px}
td.best{background:#e3f4e1;font-weight:600}
td.small{color:#6b6b6b}td.na{background:#fafafa;color:#888}
td .ci{font-size:11px;color:#555;white-space:nowrap}td .n{font-size:10px;color:#777}
td .why{font-size:10px;color:#8a4b00;max-width:14em}
tr.group th{background:#dde6f0;font-size:13px}tr.baseline td,tr.baseline th{font-style:italic}
.mark{color:#b35900;font-weight:700}
.figs{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(var(--w),100%),var(--w)));
gap:1em 1.5em;margin:.8em 0}
figure{margin:0;min-width:0}
figure img{display:block;max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:12px;color:#444;margin-top:.3em}
figure.na .na-box{box-sizing:border-box;max-width:100%;border:1px dashed #bbb;background:#fafafa;
color:#8a4b00;display:flex;align-items:center;justify-content:center;text-align:center;
padding:1em;font-size:13px}
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:.4em .8em;font-size:13px}
footer{margin-top:3em;border-top:2px solid #ddd;font-size:12px;color:#333}
dl.defs dt{font-weight:600}dl.defs dd{margin:0 0 .4em 1.5em}
"""


@dataclass
class ReportFiles:
    """What :func:`build_report` wrote."""

    index: Path
    figures: list[Path] = field(default_factory=list)
    tables: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)   # sections left out and why

    def summary(self) -> str:
        """What a terminal shows: the notes, the counts and where to open the report."""
        return "\n".join([f"note: {n}" for n in self.notes] + [
            f"{len(self.figures)} figure(s), tables {', '.join(p.name for p in self.tables)}",
            f"report: {self.index.resolve()}  (open in a browser; works offline)"])


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _slug(task: str) -> str:
    return task.replace("/", "__")


def _cell_html(c: tables.Cell, attrs: dict[str, str], n_foot: list[str]) -> str:
    a = " ".join(f'data-{k}="{_e(v)}"' for k, v in attrs.items())
    if c.status != "ok":
        why = c.reason or c.status
        if why not in n_foot:  # one footnote per distinct reason
            n_foot.append(why)
        return (f'<td class="na" {a}>{_e(c.text)}<sup>{n_foot.index(why) + 1}</sup>'
                f'<div class="why">{_e(c.reason or c.status)}</div></td>')
    if c.value is None:  # an ok result whose headline is null: undefined on its test labels
        why = "headline metric undefined on these test labels (null in the result)"
        if why not in n_foot:
            n_foot.append(why)
        return (f'<td class="na" {a}>n/a<sup>{n_foot.index(why) + 1}</sup>'
                f'<div class="why">{_e(why)}</div></td>')
    cls = " ".join(k for k, on in (("best", c.best), ("small", c.small)) if on)
    val, _, ci = c.text.partition(" ")
    marks = ("★" if c.best else "") + ("‡" if c.small else "") + ("◐" if c.incomplete else "")
    title = f' title="{_e(c.incomplete)}"' if c.incomplete else ""
    return (f'<td class="{cls}" {a} data-value="{c.value!r}"{title}>{_e(val)}'
            f'{f" <span class=mark>{marks}</span>" if marks else ""}'
            f'<br><span class="ci">{_e(ci)}</span> <span class="n">n={c.n}</span></td>')


def overview_html(results: list[Result]) -> str:
    """The overview matrix as an HTML table (id ``overview``)."""
    tasks, groups = tables.overview(results)
    if not tasks:  # e.g. a folder of transfer or label-efficiency results only
        return ('<p class="note" id="overview">No in-dataset result to tabulate here (transfer, '
                'label-efficiency and alignment results are in the sections below).</p>')
    keys = {label: key for key, label in tables.encoder_labels(results).items()}
    head = "".join(f"<th>{_e(t)}<br><small>{_e(metric_label(tables.headline(t, results), t))}</small></th>"
                   for t in tasks)
    out = ['<div class="overview-box" id="overview-box"><table id="overview">',
           f"<thead><tr><th>protocol / encoder</th>{head}</tr></thead><tbody>"]
    foot: list[str] = []
    for proto, rows in groups.items():
        out.append(f'<tr class="group"><th colspan="{len(tasks) + 1}"><span>{_e(proto)}</span>'
                   "</th></tr>")
        for name, row in rows:
            base = tables.is_baseline_row(name)
            tds = "".join(_cell_html(row[t], {"task": t, "protocol": proto,
                                              "encoder": "baseline" if base else keys.get(name, name),
                                              "metric": tables.headline(t, results)}, foot)
                          if t in row else "<td>–</td>" for t in tasks)
            out.append(f'<tr class="{"baseline" if base else "model"}" data-row="{_e(name)}">'
                       f"<th>{_e(name)}</th>{tds}</tr>")
    out.append("</tbody></table></div>")
    if foot:
        out.append("<ol class=\"foot\">" + "".join(f"<li>{_e(f)}</li>" for f in foot) + "</ol>")
    return "\n".join(out)


def _metrics_table(results: list[Result], task: str, labels: dict[str, str]) -> str:
    names: list[str] = []
    for r in results:
        for k in [*r.metrics, *r.baseline]:
            if k not in names:
                names.append(k)
    order = {m: i for i, m in enumerate(METRICS)}
    names.sort(key=lambda m: (order.get(m, len(order)), m))
    head = "".join(f"<th>{_e(metric_label(m, task))}</th>" for m in names)
    out = [f'<div class="scroll"><table class="metrics" data-task="{_e(task)}">',
           f"<thead><tr><th>model</th><th>n</th>{head}</tr></thead><tbody>"]
    seen_base: set[str] = set()
    for r in results:
        row = f"{labels[r.encoder_key]} · {r.protocol}"
        if r.status != "ok":
            out.append(f"<tr><th>{_e(row)}</th><td></td><td class=\"na\" colspan=\"{len(names)}\">"
                       f"{_e(r.status)}: {_e(r.reason)}</td></tr>")
            continue
        small = " ‡" if r.n < SMALL_N else ""
        tds = "".join(
            f'<td data-task="{_e(task)}" data-protocol="{_e(r.protocol)}" '
            f'data-encoder="{_e(r.encoder_key)}" data-metric="{_e(m)}" '
            f'data-value="{display_value(m, r.metrics[m].get("value"))!r}">'
            f"{_e(fmt_metric(m, r.metrics[m]))}</td>" if m in r.metrics else "<td>–</td>"
            for m in names)
        out.append(f"<tr><th>{_e(row)}</th><td>{r.n}{small}</td>{tds}</tr>")
        if r.baseline and r.protocol not in seen_base and r.protocol != "alignment":
            seen_base.add(r.protocol)
            tds = "".join(f"<td>{_e(fmt_metric(m, r.baseline.get(m)))}</td>" for m in names)
            out.append(f'<tr class="baseline"><th>{_e(tables.BASELINE)} · {_e(r.protocol)} '
                       f"({_e(r.config.get('baseline', ''))})</th><td>{r.n}{small}</td>{tds}</tr>")
    out.append("</tbody></table></div>")
    return "\n".join(out)


def _subgroup_table(results: list[Result], name: str, metric: str,
                    labels: dict[str, str]) -> str:
    models = [r for r in results if name in r.extras.get("subgroups", {})]
    levels: list[str] = []
    for r in models:
        for g in r.extras["subgroups"][name]:
            if g["group"] not in levels:
                levels.append(g["group"])
    head = "".join(f"<th>{_e(labels[r.encoder_key])} · {_e(r.protocol)}</th>" for r in models)
    out = [f'<div class="scroll"><table><thead><tr><th>{_e(name)}</th>{head}</tr></thead><tbody>']
    for lv in levels:
        tds = []
        for r in models:
            g = next((g for g in r.extras["subgroups"][name] if g["group"] == lv), None)
            v = display_value(metric, g.get(metric)) if g else None
            tds.append("<td>–</td>" if v is None else f"<td>{v:.2f} <span class=n>n={g['n']}</span></td>")
        out.append(f"<tr><th>{_e(lv)}</th>{''.join(tds)}</tr>")
    out.append("</tbody></table></div>")
    return "\n".join(out)


def _png_size(path: Path) -> tuple[int, int]:
    """Width and height of a PNG from its IHDR chunk."""
    with path.open("rb") as f:
        head = f.read(24)
    return struct.unpack(">II", head[16:24])


def _fig(path: Path, out: Path, caption: str) -> str:
    w, h = _png_size(path)
    rel = path.relative_to(out).as_posix()
    return (f'<figure><img src="{_e(rel)}" width="{w}" height="{h}" alt="{_e(caption)}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def _na_fig(why: str, caption: str, canvas: figures.Canvas) -> str:
    """The place of a figure that cannot be drawn: its size, the reason, its caption."""
    w, h = canvas.pixels
    return (f'<figure class="na"><div class="na-box" style="width:{w + 2}px;height:{h + 2}px">'
            f"n/a: {_e(why)}</div><figcaption>{_e(caption)}</figcaption></figure>")


def _grid(figs: list[str], width_px: int) -> str:
    """Figures of one section in one even grid (columns of the figures' width)."""
    if not figs:
        return ""
    return f'<div class="figs" style="--w:{width_px + 2}px">' + "".join(figs) + "</div>"


@dataclass
class _Figures:
    """Figures of one section: the folder they go to, their canvas, what was written, and why
    a result's predictions could not be read."""

    stage: Path
    canvas: figures.Canvas
    written: list[Path]
    missing: dict[tuple[str, str, str], str]
    html: list[str] = field(default_factory=list)

    def add(self, draw: Callable[[Path], Path], name: str, caption: str) -> None:
        """Draw into ``fig/name``; a :class:`figures.NotDrawable` becomes an n/a placeholder."""
        try:
            p = draw(self.stage / "fig" / name)
        except figures.NotDrawable as exc:
            log.info("figure %s not drawn: %s", name, exc)
            self.html.append(_na_fig(str(exc), caption, self.canvas))
            return
        self.written.append(p)
        self.html.append(_fig(p, self.stage, caption))

    def per_sample(self, kind: str, draw: Callable[[Sequence[Result], Path], Path],
                   results: Sequence[Result], labels: dict[str, str], name: str,
                   caption: str) -> None:
        """A figure of per-sample predictions: results it cannot show are named in the caption
        with their reason; with none left, the whole figure is an n/a placeholder."""
        why = {id(r): figures.unusable(r, kind, self.missing.get(_key(r))) for r in results}
        na = [f"{figures.label_of(r, labels)}: {why[id(r)]}" for r in results if why[id(r)]]
        if len(na) == len(results):
            self.html.append(_na_fig("; ".join(na), caption, self.canvas))
            return
        if na:
            caption += " Not shown — " + "; ".join(na) + "."
        self.add(lambda path: draw([r for r in results if not why[id(r)]], path), name, caption)


def _key(r: Result) -> tuple[str, str, str]:
    return r.task, r.protocol, r.encoder_key


def _threshold_text(r: Result) -> str:
    thr = (r.config.get("protocol_record") or {}).get("threshold")
    if r.config.get("decision") == "threshold" and thr and thr.get("value") is not None:
        return f"p > {thr['value']:.3f} (fitted on train units, F1 of the positive class)"
    return "p ≥ 0.5 (argmax of [1 − p, p])"


#: figure kinds a task type asks for (``TaskType.figures``): how to draw one from the results of
#: one protocol on a canvas of ``size``, its caption, and whether the caption names the threshold
_FIGURES = {
    "scatter": (lambda rs, t, p, lab, size: figures.scatter(rs, t.name, p, lab, size=size),
                "predicted vs true, identity line", False),
    "bland_altman": (lambda rs, t, p, lab, size: figures.bland_altman(rs, t.name, p, lab,
                                                                      size=size),
                     "Bland–Altman: bias and 95 % limits of agreement", False),
    "roc": (lambda rs, t, p, lab, size: figures.roc(rs, t.name, p, labels=lab, size=size),
            "ROC curves, AUROC with 95 % interval", True),
    "pr": (lambda rs, t, p, lab, size: figures.pr(rs, t.name, p, labels=lab, size=size),
           "precision–recall, AUPRC with 95 % interval", True),
    "reliability": (lambda rs, t, p, lab, size: figures.reliability(rs, t.name, p, labels=lab,
                                                                    size=size),
                    "reliability diagram of P(positive), 10 equal-width bins", True),
    "confusion": (lambda rs, t, p, lab, size: figures.confusion(rs, t.name, t.classes, p, lab,
                                                                size=size),
                  "row-normalised confusion matrix", False),
}


def _source_html(results: list[Result]) -> str:
    """A cohort described by its user: its YAML's description, licence and citation."""
    src = next((r.provenance.get("dataset_source") for r in results
                if r.provenance.get("dataset_source")), None)
    if not src:
        return ""
    parts = [f"<b>{_e(src.get('title') or '')}</b>: {_e(src.get('description') or '')}",
             f"licence: {_e(src.get('licence') or 'not stated')}"]
    if src.get("citation"):
        parts.append(f"cite: {_e(src['citation'])}")
    if src.get("cohort_sha256"):
        parts.append(f"cohort YAML sha256 {_e(str(src['cohort_sha256'])[:12])}")
    return f'<p class="source">{" · ".join(parts)}</p>'


def _task_section(task: str, results: list[Result], stage: Path, labels: dict[str, str],
                  written: list[Path], missing: dict[tuple[str, str, str], str]) -> str:
    t = task_of(task, results)
    h = t.headline
    parts = [f'<section id="task-{_e(_slug(task))}"><h3>{_e(task)}</h3>',
             f"<p>{_e(t.type.name)} task · unit: {_e(t.unit)} · aggregation: {_e(t.aggregate)} · "
             f"headline: {_e(metric_label(h, task))}</p>",
             _source_html(results),
             _metrics_table(results, task, labels)]
    ok = [r for r in results if r.status == "ok" and r.protocol != "alignment"]
    sg_names: list[str] = []
    for r in ok:
        for name in r.extras.get("subgroups", {}):
            if name not in sg_names:
                sg_names.append(name)
    n_series = max((sum(name in r.extras.get("subgroups", {}) for r in ok) for name in sg_names),
                   default=0)
    figs = _Figures(stage, figures.task_canvas(ok, n_series), written, missing)
    size = figs.canvas
    if ok:
        figs.add(lambda path: figures.forest(ok, h, task, path, labels, size=size),
                 f"{_slug(task)}__forest.png",
                 f"{task}: {metric_label(h, task)} with 95 % percentile interval per encoder "
                 "and protocol; dashed: trivial baseline.")
    for proto in protocol_order():
        rs = [r for r in ok if r.protocol == proto]
        if not rs:
            continue
        stem = f"{_slug(task)}__{proto}"
        for kind in t.type.figures:
            draw, cap, threshold = _FIGURES[kind]
            if threshold:
                thr = "; ".join(f"{labels[r.encoder_key]}: {_threshold_text(r)}" for r in rs)
                cap = f"{cap}. Threshold used — {thr}"
            figs.per_sample(kind, lambda sel, path, draw=draw: draw(sel, t, path, labels, size),
                            rs, labels, f"{stem}__{kind}.png", f"{task} · {proto}: {cap}.")
    subgroup_tables = []
    for name in sg_names:
        models = [r for r in ok if name in r.extras.get("subgroups", {})]
        subgroup_tables.append(f"<h4>{_e(task)}: {_e(metric_label(h, task))} by {_e(name)} "
                               "(no bootstrap; delta = max − min)</h4>")
        subgroup_tables.append(_subgroup_table(models, name, h, labels))
        figs.add(lambda path, models=models, name=name: figures.subgroups(
                     models, name, h, task, path, labels, size=size),
                 f"{_slug(task)}__subgroup_{name}.png",
                 f"{task}: {metric_label(h, task)} by {name}.")
    parts.append(_grid(figs.html, size.pixels[0]))
    parts += subgroup_tables
    parts.append("</section>")
    return "\n".join(parts)


def _embedding_section(results: list[Result], out: Path, labels: dict[str, str],
                       cache: Path | None, manifests: Sequence[Path] | None,
                       written: list[Path], notes: list[str]) -> str:
    from sklearn.decomposition import PCA

    from cardiobench.embed.cache import EmbeddingCache
    from cardiobench.manifest import Manifest
    from cardiobench.catalogue import default_catalogue

    if cache is None or manifests is None:
        why = "embedding maps need the embedding cache and the manifests: pass --cache and " \
              "--manifest to `cardiobench report`"
        notes.append(why)
        return f'<p class="note">{_e(why)}.</p>'
    by_ds = {}
    for p in manifest_csvs(manifests):
        try:
            m = Manifest.read(p)
        except Exception as exc:  # a manifest that does not read is reported, not fatal
            notes.append(f"manifest {p}: {exc}")
            continue
        by_ds[m.dataset] = m
    pairs = sorted({(r.dataset, r.encoder_key): r.provenance.get("cache_fingerprint")
                    for r in results if r.provenance.get("cache_fingerprint")}.items())
    parts = ["<p>PCA of the L2-normalised clip embeddings of each dataset's test split "
             "(scikit-learn, full SVD). Left: coloured by the dataset's first endpoint label; "
             "right: by view.</p>"]
    maps: list[str] = []
    for (ds, key), fp in tqdm(pairs, desc="embedding maps", leave=False):
        m = by_ds.get(ds)
        if m is None:
            parts.append(f'<p class="note">{_e(ds)} · {_e(labels[key])}: no manifest for '
                         f"{_e(ds)} in {_e(', '.join(map(str, manifests)))}.</p>")
            continue
        try:
            emb = EmbeddingCache(cache, ds, fp).load()
        except (FileNotFoundError, KeyError, ValueError) as exc:
            parts.append(f'<p class="note">{_e(ds)} · {_e(labels[key])}: no embeddings in the '
                         f"cache ({_e(exc)}).</p>")
            continue
        test = m.subset("test")
        pos = emb.align(test["sample_id"].astype(str))
        test, pos = test[pos >= 0], pos[pos >= 0]
        if len(pos) < 3:
            parts.append(f'<p class="note">{_e(ds)} · {_e(labels[key])}: fewer than 3 test '
                         "embeddings.</p>")
            continue
        x = emb.clip[pos].astype("float64")
        x /= (((x ** 2).sum(axis=1, keepdims=True)) ** 0.5).clip(min=1e-12)
        pts = PCA(2, svd_solver="full").fit_transform(x)
        # colour by the dataset's first endpoint other than the view (the right panel shows
        # views); a cohort's tasks come from its results, a cohort may have no view column
        tasks = [t for t in default_catalogue().tasks.values() if t.dataset == ds] or \
            [task_of(n, results) for n in dict.fromkeys(r.task for r in results if r.dataset == ds)]
        task = next((t for t in tasks if t.label != "view" and t.label in test), None)
        lab_col = task.label if task is not None else "view"
        if lab_col not in test:
            parts.append(f'<p class="note">{_e(ds)} · {_e(labels[key])}: no label or view '
                         "column to colour the map by.</p>")
            continue
        view = test["view"] if "view" in test else pd.Series("(no view column)", index=test.index)
        p = figures.embedding_map(pts, test[lab_col].reset_index(drop=True),
                                  view.reset_index(drop=True),
                                  f"{ds} · {labels[key]}: test embeddings (n={len(pos)})",
                                  lab_col, out / "fig" / f"embedding__{ds}__{key}.png")
        written.append(p)
        maps.append(_fig(p, out, f"{ds} · {labels[key]}: PCA of test embeddings by {lab_col} "
                                 "and by view."))
    if maps:
        parts.append(_grid(maps, figures.EMBEDDING_MAP.pixels[0]))
    return "\n".join(parts)


def _comparison_section(results: list[Result], pairs: Sequence[tuple[str, str]], out: Path,
                        written: list[Path], notes: list[str]) -> str:
    from cardiobench.report.compare import compare_suite

    if not pairs:
        keys = sorted({r.encoder_key for r in results})
        why = (f"{len(keys)} encoder configuration(s) in these results: comparisons need two "
               "(pass --compare A B)") if len(keys) != 2 else ""
        if why:
            notes.append(why)
            return f'<p class="note">{_e(why)}.</p>'
        pairs = [(keys[0], keys[1])]
    parts = []
    for a, b in pairs:
        try:  # units, truth or labels that cannot be paired are refused and said, not fatal
            comps = compare_suite(results, a, b, refuse_unpairable=True)
        except ValueError as exc:  # a name that is not one encoder configuration
            parts.append(f'<p class="note">{_e(a)} and {_e(b)} not compared: {_e(exc)}.</p>')
            continue
        parts += [f'<p class="note">{_e(a)} and {_e(b)}: not compared: {_e(line)}.</p>'
                  for line in comps.refused]
        order = {t: i for i, t in enumerate(tables.task_order(results))}
        comps.sort(key=lambda c: (order.get(c.task, len(order)), c.protocol))  # report order
        if not comps:
            if not comps.refused:
                parts.append(f'<p class="note">no (task, protocol) scored by both {_e(a)} and '
                             f"{_e(b)}.</p>")
            continue
        try:
            p = figures.delta_forest(comps, a, b, out / "fig" / f"compare__{a}__vs__{b}.png")
        except figures.NotDrawable as exc:
            parts.append(f'<p class="note">{_e(a)} vs {_e(b)}: {_e(exc)}.</p>')
            continue
        written.append(p)
        parts.append(_fig(p, out, f"{a} minus {b} on each task's headline metric: paired "
                                  "patient bootstrap (1000 replicates, seed 42), 95 % interval, "
                                  "two-sided p-value; n = units both results scored."))
        rows = []
        for c in comps:
            h = tables.headline(c.task, results)
            d = c.diffs.get(h)
            if d is None:
                continue
            f = display_value(h, 1.0) or 1.0
            dropped = f"{len(c.only_a)} / {len(c.only_b)}"
            rows.append(f"<tr><th>{_e(c.task)}</th><td>{_e(c.protocol)}</td>"
                        f"<td>{_e(metric_label(h, c.task))}</td><td>{d.diff * f:.3f}</td>"
                        f"<td>[{d.ci_low * f:.3f}, {d.ci_high * f:.3f}]</td>"
                        f"<td>{d.p_value:.4f}</td><td>{c.n_common} {_e(c.unit)}</td>"
                        f"<td>{c.n_a} / {c.n_b}</td><td>{dropped}</td></tr>")
        parts.append("<div class=\"scroll\"><table class=\"compare\"><thead><tr><th>task</th>"
                     "<th>protocol</th><th>metric</th><th>A − B</th><th>95 % interval</th>"
                     "<th>p</th><th>n paired (unit)</th><th>n A / n B</th><th>dropped A / B</th>"
                     "</tr></thead><tbody>" + "".join(rows) + "</tbody></table></div>")
    return "\n".join(parts)


def _beyond_section(results: list[Result], stage: Path, labels: dict[str, str],
                    written: list[Path], ratios: list[Any]) -> str:
    """Transfer matrices, generalization table and pairs; label-efficiency curves and tables."""
    from cardiobench.report import generalization as gen
    from cardiobench.report import generalization_tables as gtab

    parts = []
    mats = gen.matrices(results)
    if mats:
        canvas = figures.matrix_canvas(max(len(m.ends) for m in mats))
        figs = _Figures(stage, canvas, written, {})
        for m in mats:
            enc = labels.get(m.encoder_key, m.encoder_key)
            why = gen.matrix_reasons(m)
            cap = (f"{m.group} group · {m.runner} · {enc}: {metric_label(m.metric, m.group)} of "
                   "the source's runner on the target's test units; boxed diagonal: in-dataset; "
                   "* the paired difference's 95 % interval excludes 0.")
            if why:
                cap += " n/a — " + "; ".join(why) + "."
            figs.add(lambda path, m=m: figures.transfer_matrix(m, labels, path, canvas),
                     f"transfer__{_slug(m.group)}__{m.runner}__{m.encoder_key}.png", cap)
        parts += ['<h3 id="transfer">Cross-dataset transfer</h3>',
                  "<p>Every pair of tasks of different datasets whose labels the catalogue "
                  "declares the same (<code>same_as</code>), each declared subset (EchoNet-"
                  "Pediatric A4C, PSAX) apart and pooled; the source's linear probe or kNN, "
                  "tuned on the source as in-dataset, scores the target's test units by the "
                  "target's aggregation rule, beside the in-dataset runner on the same units. "
                  "Regression probes are not re-centred unless the result says so; the mean "
                  "bias is in the pairs table.</p>",
                  _grid(figs.html, canvas.pixels[0]),
                  '<h4 id="generalization">Generalization</h4>', gtab.ratio_html(results, labels, ratios),
                  "<h4>Every pair</h4>", gtab.pairs_html(results, labels)]
    cs = gen.curves(results)
    if cs:
        canvas = figures.efficiency_canvas(max(len(v) for v in cs.values()))
        figs = _Figures(stage, canvas, written, {})
        tables_ = []
        for (task, runner), series in cs.items():
            figs.add(lambda path, series=series: figures.efficiency_curves(series, labels, path,
                                                                           canvas),
                     f"efficiency__{_slug(task)}__{runner}.png",
                     f"{task} · {runner}: {metric_label(series[0].metric, task)} against the "
                     "mean number of labelled train patients over seeds; band: 95 % interval "
                     "over seeds and test patients; " + "; ".join(
                         f"{labels.get(c.encoder_key, c.encoder_key)}: dashed line, full data "
                         f"in-dataset {runner}" if c.reference is not None else
                         f"{labels.get(c.encoder_key, c.encoder_key)}: no full-data reference "
                         f"({c.reference_reason})" for c in series) + ".")
            tables_ += [f"<h4>{_e(task)} · {_e(runner)}</h4>",
                        gtab.curve_table_html(series, labels)]
        parts += ['<h3 id="label-efficiency">Label efficiency</h3>',
                  "<p>The runner trained on nested, patient-grouped random subsets of the train "
                  "split (per class for classes, a share of the patients for values), tuned on "
                  "val, over several seeds; per budget the mean test metric over seeds with a "
                  "bootstrap interval drawing seeds and test patients (docs/metrics.md).</p>",
                  _grid(figs.html, canvas.pixels[0]), *tables_]
    return "\n".join(parts)


def _definitions_html(results: list[Result]) -> str:
    used = {k for r in results for k in [*r.metrics, *r.baseline]}
    out = ['<dl class="defs">']
    out += [f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in protocol_definitions().items()]
    out += [f"<dt>{_e(metric_label(k))}</dt><dd>{_e(v.definition)}</dd>" for k, v in METRICS.items()
            if k in used]
    out.append("</dl><h3>Definitions an audit asked to be written down</h3><ul>")
    out += [f"<li>{_e(n)}</li>" for n in AUDIT_NOTES]
    out.append("</ul>")
    return "\n".join(out)


def _provenance_html(results: list[Result], manifests: Sequence[Path] | None,
                     command: str | None) -> str:
    import cardiobench

    encs: dict[str, dict[str, Any]] = {}
    for r in results:
        encs.setdefault(r.encoder_key, r.encoder)
    rows = "".join(f"<tr><th>{_e(k)}</th><td><code>{_e(e.get('fingerprint') or '–')}</code></td>"
                   f"<td><code>{_e(e.get('weights_sha256') or 'none (no weights file)')}</code>"
                   "</td></tr>" for k, e in sorted(encs.items()))
    fps: dict[str, set[str]] = {}
    for r in results:
        if r.provenance.get("manifest_fingerprint"):
            fps.setdefault(r.dataset, set()).add(r.provenance["manifest_fingerprint"])
    current: dict[str, str] = {}
    if manifests is not None:
        from cardiobench.manifest import Manifest

        for p in manifest_csvs(manifests):
            try:
                m = Manifest.read(p)
            except Exception:  # unreadable manifests are reported by the embedding section
                continue
            current[m.dataset] = m.fingerprint

    def now_state(ds: str, v: set[str]) -> str:
        if ds not in current:
            return "–"
        return "same" if current[ds] in v else f"<b>differs</b>: <code>{_e(current[ds])}</code>"

    mrows = "".join(f"<tr><th>{_e(ds)}</th><td><code>{'<br>'.join(_e(x) for x in sorted(v))}"
                    f"</code>{' <b>(several split fingerprints!)</b>' if len(v) > 1 else ''}"
                    f"</td><td>{now_state(ds, v)}</td></tr>" for ds, v in sorted(fps.items()))
    flags = [f"{r.task} · {r.protocol} · {r.encoder_key}: {incomplete_data(r.extras)}"
             for r in results if incomplete_data(r.extras)]
    ci = sorted({str(r.config.get("ci", "patient")) for r in results})
    gits = sorted({str(r.provenance.get("git")) for r in results if r.provenance.get("git")})
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return "\n".join([
        '<footer id="provenance"><h2>Provenance</h2>',
        "<h3>Encoders</h3><div class=\"scroll\"><table><thead><tr><th>encoder key</th>"
        "<th>fingerprint</th><th>weights SHA-256</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></div>",
        "<h3>Split fingerprints (per manifest)</h3><div class=\"scroll\"><table><thead><tr>"
        "<th>dataset</th><th>split fingerprint of the results</th>"
        "<th>manifest given to the report</th></tr>"
        f"</thead><tbody>{mrows}</tbody></table></div>",
        "<h3>Incomplete data</h3>",
        ("<ul>" + "".join(f"<li>{_e(f)}</li>" for f in flags) + "</ul>") if flags
        else "<p>none: every result scored every expected test unit.</p>",
        f"<p>Bootstrap CI mode: {_e(', '.join(ci))} · cardiobench {_e(cardiobench.__version__)}"
        f" · results from git {_e(', '.join(gits) or 'unknown')} · report built {_e(now)}</p>",
        f"<p>Command: <code>{_e(command or 'cardiobench report (library call)')}</code></p>",
        "</footer>"])


#: what a report folder holds; a folder holding anything else is not replaced
REPORT_ENTRIES = frozenset({"index.html", "fig", "leaderboard.md", "leaderboard.csv",
                            "leaderboard.tex"})


def report_folder_problem(folder: Path) -> str | None:
    """Why ``folder`` is not a report this module wrote (and must not be replaced), or None.

    A report holds ``index.html``, ``leaderboard.{md,csv,tex}`` and ``fig/`` with plain files;
    any other entry (someone's notes, a results folder, a download) makes the folder not ours.
    """
    others = sorted(p.name for p in folder.iterdir() if p.name not in REPORT_ENTRIES)
    fig = folder / "fig"
    if fig.is_symlink() or (fig.exists() and not fig.is_dir()):
        others.append("fig (not a folder)")
    elif fig.is_dir():
        others += sorted(f"fig/{p.name}" for p in fig.iterdir() if not p.is_file()
                         or p.is_symlink())
    if not others:
        return None
    shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
    return (f"it holds {shown}, which a cardiobench report does not write; choose a new or "
            "empty folder (or an earlier report's folder) for --out")


def _load(results_dir: Path) -> tuple[list[Result], dict[tuple[str, str, str], str]]:
    """The results with their predictions, and why a result's predictions could not be read.

    A missing or unreadable predictions file makes that result's per-sample figures n/a (with
    the reason) instead of stopping the report; the result JSONs themselves must read.
    """
    unread: list[tuple[Result, ResultFileError]] = []
    results = load_results(results_dir, with_predictions=True, unread=unread)
    for _, exc in unread:
        log.warning("%s", exc)
    return results, {_key(r): exc.short for r, exc in unread}


def build_report(results_dir: str | Path, out: str | Path, cache: str | Path | None = None,
                 manifests: Sequence[str | Path] | str | Path | None = None,
                 compare: Sequence[tuple[str, str]] = (), command: str | None = None) -> ReportFiles:
    """Write the offline report of ``results_dir`` into the folder ``out`` (see the module
    docstring), whole or not at all.

    The report is written into a temporary folder beside ``out`` and swapped in only when
    complete (:mod:`cardiobench.atomic_folder`): a failure or a kill leaves the previous report
    as it was. ``out`` may be missing, empty, or an earlier report; a folder holding other files
    is refused (:func:`report_folder_problem`).
    """
    out = Path(out)
    results, missing = _load(Path(results_dir))
    if not results:
        raise FileNotFoundError(f"no result JSONs under {results_dir}")
    with atomic_folder(out, report_folder_problem) as stage:
        files = _write_report(results, missing, results_dir, stage, cache, manifests, compare,
                              command)
    files.index = out / files.index.relative_to(stage)
    files.figures = [out / p.relative_to(stage) for p in files.figures]
    files.tables = [out / p.relative_to(stage) for p in files.tables]
    log.info("report: %s (%d figures)", files.index, len(files.figures))
    return files


def _write_report(results: list[Result], missing: dict[tuple[str, str, str], str],
                  results_dir: str | Path, out: Path, cache: str | Path | None,
                  manifests: Sequence[str | Path] | str | Path | None,
                  compare: Sequence[tuple[str, str]], command: str | None) -> ReportFiles:
    """Every file of the report into the (temporary) folder ``out``; ``index.html`` last, so a
    folder without it is never a finished report."""
    from cardiobench.report.leaderboard import legend, render_markdown

    if isinstance(manifests, (str, Path)):
        manifests = [manifests]
    manifests = [Path(m) for m in manifests] if manifests else None
    (out / "fig").mkdir(parents=True, exist_ok=True)
    files = ReportFiles(index=out / "index.html")
    from cardiobench.report.generalization import ratios as generalization_ratios

    ratios = generalization_ratios(results)  # bootstraps every transfer pair: computed once
    files.tables = [atomic_write_text(out / "leaderboard.md", render_markdown(results, ratios)),
                    atomic_write_text(out / "leaderboard.csv", tables.long_csv(results)),
                    atomic_write_text(out / "leaderboard.tex", tables.latex_tables(results))]
    labels = tables.encoder_labels(results)
    order = {p: i for i, p in enumerate(protocol_order())}
    cells = [r for r in results if tabulated(r.protocol)]  # one result per task and encoder
    sections = []
    for task in tqdm(tables.task_order(cells), desc="report figures", leave=False):
        rs = sorted((r for r in cells if r.task == task),
                    key=lambda r: (order.get(r.protocol, 9), labels[r.encoder_key]))
        sections.append(_task_section(task, rs, out, labels, files.figures, missing))
    beyond = _beyond_section(results, out, labels, files.figures, ratios)
    emb = _embedding_section(results, out, labels, Path(cache) if cache else None,
                             manifests, files.figures, files.notes)
    comp = _comparison_section(results, list(compare), out, files.figures, files.notes)
    toc = "".join(f'<li><a href="#task-{_e(_slug(t))}">{_e(t)}</a></li>'
                  for t in tables.task_order(cells))
    doc = "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>cardiobench report</title>", f"<style>{_CSS}</style></head><body>",
        "<h1>cardiobench report</h1>",
        f"<p>{len(results)} result(s) from <code>{_e(results_dir)}</code>. Tables: "
        '<a href="leaderboard.md">leaderboard.md</a> · <a href="leaderboard.csv">leaderboard.csv'
        '</a> · <a href="leaderboard.tex">leaderboard.tex</a> (booktabs).</p>',
        f'<p class="note">{_e(legend(results))}</p>',
        '<h2 id="overview-title">Overview</h2>',
        "<p>Rows: encoders grouped by protocol, with the trivial baseline (train+val mean or "
        "majority class) of each group; columns: tasks and their headline metric. Alignment "
        "results use other metrics and are in the task sections.</p>",
        overview_html(results),
        "<h2>Definitions</h2>", _definitions_html(results),
        f"<h2>Tasks</h2><ul>{toc}</ul>", *sections,
        *(['<h2 id="beyond">Beyond one dataset: transfer and label efficiency</h2>', beyond]
          if beyond else []),
        "<h2>Embedding maps</h2>", emb,
        "<h2>Comparisons</h2>", comp,
        _provenance_html(results, manifests, command),
        "</body></html>", ""])
    atomic_write_text(files.index, doc)
    return files
