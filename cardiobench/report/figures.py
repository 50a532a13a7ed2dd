"""One function per figure kind, drawn from results and their per-sample predictions.

Matplotlib's Agg backend with constrained layout; PNG written without the ``Software`` metadata
and with fixed DPI, so the same input gives the same bytes.

**Every text fits its canvas.** Titles are the figure's suptitle (task and protocol on the first
line, what the figure shows below), wrapped to the figure's width by measured text width; legends
sit below the axes; encoder names, class names and subgroup levels that could outgrow their room
are shortened in the middle (``…``) to the measured width they have. Constrained layout then
keeps every label inside the figure.

**One size per task.** The report draws every figure of a task on one :class:`Canvas`
(:func:`task_canvas`: 640 px wide, tall enough for the task's largest figure), so a task's
figures form an even grid. Panels per encoder wrap at two columns.

**What cannot be drawn is said.** :func:`unusable` gives the reason a result cannot enter a figure
kind (no predictions, a column missing, a one-class test split for ROC and precision–recall, fewer
than two units for a scatter or limits of agreement); a figure function given nothing drawable
raises :class:`NotDrawable` with the reasons, which the report shows in place of the figure.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, NamedTuple, Sequence

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (backend must be chosen first)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.font_manager import FontProperties  # noqa: E402
from matplotlib.textpath import text_to_path  # noqa: E402

from cardiobench.atomic import atomic_path  # noqa: E402
from cardiobench.report.definitions import (display_value, fmt_metric,  # noqa: E402
                                            metric_label, metric_unit)
from cardiobench.results import Result  # noqa: E402
from cardiobench.metrics import METRICS  # noqa: E402

DPI = 100
#: width of every per-task figure (inches): 640 px, two side by side in a 1400 px window
TASK_WIDTH = 6.4
_STYLE = {"font.size": 9, "axes.titlesize": 8, "axes.labelsize": 9, "legend.fontsize": 7.5,
          "xtick.labelsize": 8, "ytick.labelsize": 8, "figure.titlesize": 9.5,
          "svg.hashsalt": "cardiobench"}
#: room the constrained layout keeps at each figure edge, plus a margin for rounding (points)
_EDGE_PT = 2 * 3 + 6


class NotDrawable(ValueError):
    """Nothing in the input can be drawn in this figure kind; the message says why."""


class Canvas(NamedTuple):
    """Figure size in inches."""

    width: float
    height: float

    @property
    def pixels(self) -> tuple[int, int]:
        """Width and height of the saved PNG."""
        return round(self.width * DPI), round(self.height * DPI)


#: size of an embedding map (two panels side by side)
EMBEDDING_MAP = Canvas(9.6, 4.2)


# ----------------------------------------------------------------------------- text that fits
def text_width(text: str, size: float) -> float:
    """Width of ``text`` in points at font size ``size`` (the default font, as drawn)."""
    w, _, _ = text_to_path.get_text_width_height_descent(text, FontProperties(size=size),
                                                         ismath=False)
    return float(w)


def fit(text: str, width_pt: float, size: float) -> str:
    """``text`` shortened in the middle (``…``) until it is at most ``width_pt`` wide."""
    if text_width(text, size) <= width_pt:
        return text
    keep = len(text)
    while keep > 2:
        keep -= 1
        head = math.ceil(keep * 0.6)
        cand = f"{text[:head]}…{text[len(text) - (keep - head):]}"
        if text_width(cand, size) <= width_pt:
            return cand
    return "…"


def wrap(text: str, width_pt: float, size: float) -> str:
    """``text`` broken at spaces into lines at most ``width_pt`` wide (each existing line on its
    own); a word wider than a line is shortened with :func:`fit`."""
    out: list[str] = []
    for para in text.split("\n"):
        line = ""
        for word in para.split(" "):
            cand = f"{line} {word}" if line else word
            if text_width(cand, size) <= width_pt:
                line = cand
                continue
            if line:
                out.append(line)
            line = fit(word, width_pt, size)
        out.append(line)
    return "\n".join(out)


def _title(fig: plt.Figure, first: str, rest: str = "") -> None:
    """Suptitle: ``first`` (task · protocol) on its own line(s), ``rest`` below, all wrapped."""
    size = plt.rcParams["figure.titlesize"]
    room = fig.get_figwidth() * 72 - _EDGE_PT
    fig.suptitle(wrap(first + (f"\n{rest}" if rest else ""), room, size))


def _legend_below(fig: plt.Figure, ax: plt.Axes) -> None:
    """The axes' legend under the axes, one entry a line, each entry fitted to the width."""
    handles, names = ax.get_legend_handles_labels()
    if not handles:
        return
    size = plt.rcParams["legend.fontsize"]
    room = fig.get_figwidth() * 72 - _EDGE_PT - 3.5 * size  # the handle and its gap
    fig.legend(handles, [fit(n, room, size) for n in names], loc="outside lower center",
               frameon=False, ncols=1)


def _panel_room(fig: plt.Figure, ax: plt.Axes) -> float:
    """Width of one panel's column in points (the axes' share of the figure)."""
    cols = ax.get_subplotspec().get_gridspec().ncols
    return fig.get_figwidth() * 72 / cols - _EDGE_PT


def save(fig: plt.Figure, out: str | Path) -> Path:
    """Write ``fig`` deterministically (no timestamp/software metadata) and close it."""
    out = Path(out)
    fmt = out.suffix.lstrip(".") or "png"
    meta = {"Software": None} if fmt == "png" else {"Date": None, "Creator": None}
    try:
        with atomic_path(out) as tmp:
            fig.savefig(tmp, format=fmt, dpi=DPI, metadata=meta)
    finally:
        plt.close(fig)
    return out


def _figure(size: Canvas | None, default: Canvas) -> plt.Figure:
    w, h = size or default
    return plt.figure(figsize=(w, h), layout="constrained")


def label_of(r: Result, labels: dict[str, str] | None = None) -> str:
    """Legend/row label of a result: ``encoder · protocol``."""
    name = (labels or {}).get(r.encoder_key, r.encoder_name)
    return f"{name} · {r.protocol}"


# ----------------------------------------------------------------------------- sizes
def _panel_grid(n: int) -> tuple[int, int]:
    cols = 1 if n == 1 else 2
    return math.ceil(n / cols), cols


def task_canvas(results: Sequence[Result], subgroup_series: int = 0) -> Canvas:
    """The one size of every figure of a task: :data:`TASK_WIDTH` wide, as tall as its largest
    figure needs: the forest (one row per result), the panels (one per encoder of a protocol,
    two columns), or an axes with a legend below (one line per encoder, per subgroup series)."""
    ok = [r for r in results if r.status == "ok"]
    per_proto: dict[str, int] = {}
    for r in ok:
        per_proto[r.protocol] = per_proto.get(r.protocol, 0) + 1
    n_panels = max(per_proto.values(), default=1)
    rows, _ = _panel_grid(n_panels)
    need = [3.6,
            1.3 + 0.27 * len(ok),                        # forest
            0.7 + 3.1 * rows,                            # panels
            3.4 + 0.16 * (n_panels + 2),                 # curves with the legend below
            3.7 + 0.16 * subgroup_series]                # subgroups: legend and rotated levels
    return Canvas(TASK_WIDTH, math.ceil(max(need) * 10) / 10)


# ----------------------------------------------------------------------------- drawability
#: columns each per-sample figure kind reads, and how many usable units it needs at least
_NEEDS: dict[str, tuple[tuple[str, ...], int]] = {
    "scatter": (("y_true", "y_pred"), 2), "bland_altman": (("y_true", "y_pred"), 2),
    "roc": (("y_true", "y_pred", "prob"), 2), "pr": (("y_true", "prob"), 2),
    "reliability": (("y_true", "prob"), 1), "confusion": (("y_true", "y_pred"), 1)}
_NUMERIC = {"scatter", "bland_altman", "roc", "pr", "reliability"}


def _usable_rows(p: pd.DataFrame, kind: str) -> pd.DataFrame:
    """The prediction rows a figure kind can use: its columns present and, where numeric, finite."""
    cols = list(_NEEDS[kind][0])
    df = p[cols]
    if kind in _NUMERIC:
        df = df.apply(pd.to_numeric, errors="coerce")
        return df[np.isfinite(df.to_numpy(float)).all(axis=1)]
    return df.dropna()


def unusable(r: Result, kind: str, missing: str | None = None) -> str | None:
    """Why ``r`` cannot be drawn in the figure ``kind`` (``None`` when it can).

    ``missing`` is the reader's message for a predictions file that could not be read.
    """
    if r.status != "ok":
        return f"{r.status}: {r.reason}"
    if r.predictions is None:
        return missing or "the result names no predictions file"
    cols, least = _NEEDS[kind]
    lacking = [c for c in cols if c not in r.predictions]
    if lacking:
        return f"the predictions lack the column(s) {', '.join(lacking)}"
    rows = _usable_rows(r.predictions, kind)
    if kind in ("roc", "pr"):
        values = sorted(set(rows["y_true"].tolist()))
        if not set(values) <= {0, 1}:
            return f"y_true holds values other than 0 and 1 ({values[:4]})"
        if len(values) < 2:
            return (f"{'ROC' if kind == 'roc' else 'precision–recall'} undefined: the test split "
                    f"holds one class (all {int(values[0]) if values else '–'}, "
                    f"{len(rows)} unit(s))")
    if len(rows) < least:
        what = "limits of agreement need" if kind == "bland_altman" else "a scatter needs" \
            if kind == "scatter" else "the figure needs"
        return f"{what} at least {least} test units with values; {len(rows)} here"
    return None


def _drawable(results: Sequence[Result], kind: str) -> list[Result]:
    ok = [r for r in results if unusable(r, kind) is None]
    if not ok:
        raise NotDrawable("; ".join(dict.fromkeys(str(unusable(r, kind)) for r in results))
                          or "no results")
    return ok


# ----------------------------------------------------------------------------- every task
def forest(results: Sequence[Result], metric: str, task: str, out: str | Path,
           labels: dict[str, str] | None = None, size: Canvas | None = None) -> Path:
    """Headline metric with its 95 % interval per (encoder, protocol); baseline as a dashed line."""
    rows = [r for r in results if r.status == "ok" and (r.metrics.get(metric) or {}).get("value")
            is not None]
    if not rows:
        raise NotDrawable(f"no result holds a value of {metric_label(metric, task)}")
    with plt.rc_context(_STYLE):
        fig = _figure(size, Canvas(TASK_WIDTH, 1.3 + 0.27 * len(rows)))
        ax = fig.subplots()
        for i, r in enumerate(rows):
            m = r.metrics[metric]
            v = display_value(metric, m["value"])
            lo, hi = display_value(metric, m.get("ci_low")), display_value(metric, m.get("ci_high"))
            ax.plot(v, i, "o", color="C0", zorder=3)
            if lo is not None and hi is not None:
                ax.plot([lo, hi], [i, i], "-", color="C0", lw=1.6)
        base = next((r.baseline[metric]["value"] for r in rows
                     if (r.baseline.get(metric) or {}).get("value") is not None), None)
        if base is not None:
            ax.axvline(display_value(metric, base), ls="--", color="0.5", lw=1)
        room = fig.get_figwidth() * 72 * 0.45  # tick labels take at most 45 % of the width
        ax.set_yticks(range(len(rows)),
                      [fit(label_of(r, labels), room, plt.rcParams["ytick.labelsize"])
                       for r in rows])
        ax.set_ylim(-0.6, len(rows) - 0.4)
        ax.invert_yaxis()
        ax.set_xlabel(f"{metric_label(metric, task)} · 95 % percentile interval")
        _title(fig, task, "headline metric per encoder and protocol"
               + ("; dashed: trivial baseline" if base is not None else ""))
        ax.grid(axis="x", alpha=0.3)
        return save(fig, out)


def delta_forest(comparisons: Sequence[Any], a: str, b: str, out: str | Path) -> Path:
    """``a − b`` on each task's headline metric with its paired interval, p-value and n."""
    from cardiobench.report.tables import headline

    rows = [(c, headline(c.task)) for c in comparisons if headline(c.task) in c.diffs]
    if not rows:
        raise NotDrawable("no comparison holds its task's headline metric")
    with plt.rc_context(_STYLE):
        fig = _figure(None, Canvas(8.0, 0.3 * len(rows) + 1.9))
        ax = fig.subplots()
        ticks = []
        room = fig.get_figwidth() * 72 * 0.55
        for i, (c, h) in enumerate(rows):
            d = c.diffs[h]
            f = display_value(h, 1.0) or 1.0
            better = (d.diff > 0) == METRICS[h].higher_is_better
            colour = "0.4" if d.diff == 0 or not d.p_value < 0.05 else ("C2" if better else "C3")
            ax.plot([d.ci_low * f, d.ci_high * f], [i, i], "-", color="C0", lw=1.6)
            ax.plot(d.diff * f, i, "o", color=colour, zorder=3)
            ticks.append(fit(f"{c.task} · {c.protocol} ({metric_label(h, c.task)}) "
                             f"p={d.p_value:.3f} n={c.n_common}", room,
                             plt.rcParams["ytick.labelsize"]))
        ax.axvline(0, color="0.3", lw=1)
        ax.set_yticks(range(len(rows)), ticks)
        ax.set_ylim(-0.6, len(rows) - 0.4)
        ax.invert_yaxis()
        ax.set_xlabel("A − B in each row's unit · paired 95 % interval")
        _title(fig, f"A = {a}, B = {b}",
               "green: A better, red: B better (p < 0.05), grey: no evidence")
        ax.grid(axis="x", alpha=0.3)
        return save(fig, out)


def subgroups(results: Sequence[Result], subgroup: str, metric: str, task: str, out: str | Path,
              labels: dict[str, str] | None = None, size: Canvas | None = None) -> Path:
    """Headline metric per subgroup level (no bootstrap, as published), one series per model."""
    series = []
    for r in results:
        recs = [g for g in r.extras.get("subgroups", {}).get(subgroup, [])
                if g.get("group") != "delta(max-min)"]
        if any(display_value(metric, g.get(metric)) is not None for g in recs):
            series.append((r, recs))
    if not series:
        raise NotDrawable(f"no subgroup of {subgroup} holds a value of "
                          f"{metric_label(metric, task)}")
    with plt.rc_context(_STYLE):
        fig = _figure(size, Canvas(TASK_WIDTH, 3.7 + 0.16 * len(series)))
        ax = fig.subplots()
        levels: list[str] = []
        for _, recs in series:
            for g in recs:
                if str(g["group"]) not in levels:
                    levels.append(str(g["group"]))
        for j, (r, recs) in enumerate(series):
            xs = [levels.index(str(g["group"])) + (j - (len(series) - 1) / 2) * 0.08
                  for g in recs]
            ys = [display_value(metric, g.get(metric)) for g in recs]
            ax.plot(xs, [np.nan if y is None else y for y in ys], "o-", lw=0.8,
                    label=label_of(r, labels))
        tick = plt.rcParams["xtick.labelsize"]
        slot = fig.get_figwidth() * 72 * 0.8 / max(len(levels), 1)
        rotate = any(text_width(lv, tick) > slot for lv in levels)
        # rotated labels get a fixed length (they run downwards); level order is kept
        names = [fit(lv, 90 if rotate else slot, tick) for lv in levels]
        ax.set_xticks(range(len(levels)), names, rotation=30 if rotate else 0,
                      ha="right" if rotate else "center")
        ax.set_xlim(-0.5, len(levels) - 0.5)
        ax.set_xlabel(subgroup)
        ax.set_ylabel(metric_label(metric, task))
        _title(fig, task, f"{metric_label(metric, task)} by {subgroup}")
        ax.grid(alpha=0.3)
        _legend_below(fig, ax)
        return save(fig, out)


# ----------------------------------------------------------------------------- panels
def _panels(results: Sequence[Result], task: str, what: str,
            draw: Callable[[plt.Figure, plt.Axes, Result], None], out: str | Path,
            size: Canvas | None) -> Path:
    """One panel per result (two columns), drawn by ``draw(fig, ax, result)``."""
    rows, cols = _panel_grid(len(results))
    with plt.rc_context(_STYLE):
        fig = _figure(size, Canvas(TASK_WIDTH, 0.7 + 3.1 * rows))
        axes = list(fig.subplots(rows, cols, squeeze=False).ravel())
        for ax in axes[len(results):]:
            ax.set_visible(False)
        for ax, r in zip(axes, results):
            draw(fig, ax, r)
        _title(fig, f"{task} · {results[0].protocol}", what)
        return save(fig, out)


def _panel_text(fig: plt.Figure, ax: plt.Axes, title: str, xlabel: str, ylabel: str) -> None:
    room = _panel_room(fig, ax)
    ax.set_title(wrap(title, room, plt.rcParams["axes.titlesize"]))
    ax.set_xlabel(fit(xlabel, room * 0.85, plt.rcParams["axes.labelsize"]))
    rows = ax.get_subplotspec().get_gridspec().nrows
    ax.set_ylabel(fit(ylabel, fig.get_figheight() * 72 / rows * 0.8,
                      plt.rcParams["axes.labelsize"]))


# ----------------------------------------------------------------------------- regression
def scatter(results: Sequence[Result], task: str, out: str | Path,
            labels: dict[str, str] | None = None, size: Canvas | None = None) -> Path:
    """Predicted vs true value per encoder/protocol, with the identity line."""
    unit = metric_unit("mae", task)

    def draw(fig: plt.Figure, ax: plt.Axes, r: Result) -> None:
        d = _usable_rows(r.predictions, "scatter")
        y, yh = d["y_true"].to_numpy(float), d["y_pred"].to_numpy(float)
        lo, hi = float(min(y.min(), yh.min())), float(max(y.max(), yh.max()))
        pad = 0.05 * (hi - lo or 1.0)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "--", color="0.5", lw=1)
        ax.scatter(y, yh, s=12, alpha=0.7)
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_aspect("equal", adjustable="box")
        _panel_text(fig, ax, f"{label_of(r, labels)}\nMAE {fmt_metric('mae', r.metrics.get('mae'), reasons=False)}"
                    f" · n={len(d)}", f"true ({unit})", f"predicted ({unit})")

    return _panels(_drawable(results, "scatter"), task, "predicted vs true (dashed: identity)",
                   draw, out, size)


def bland_altman(results: Sequence[Result], task: str, out: str | Path,
                 labels: dict[str, str] | None = None, size: Canvas | None = None) -> Path:
    """Difference (pred − true) vs mean, with the bias and 95 % limits of agreement."""
    unit = metric_unit("mae", task)

    def draw(fig: plt.Figure, ax: plt.Axes, r: Result) -> None:
        d = _usable_rows(r.predictions, "bland_altman")
        y, yh = d["y_true"].to_numpy(float), d["y_pred"].to_numpy(float)
        diff, mean = yh - y, (yh + y) / 2
        bias = float(diff.mean())
        sd = float(diff.std(ddof=1))
        ax.scatter(mean, diff, s=12, alpha=0.7)
        ax.axhline(bias, color="C3", lw=1.2)
        for s in (-1.96, 1.96):
            ax.axhline(bias + s * sd, color="C3", ls="--", lw=1)
        _panel_text(fig, ax, f"{label_of(r, labels)}\nbias {bias:.2f}, 95 % LoA "
                    f"[{bias - 1.96 * sd:.2f}, {bias + 1.96 * sd:.2f}]",
                    f"mean of predicted and true ({unit})", f"predicted − true ({unit})")

    return _panels(_drawable(results, "bland_altman"), task,
                   "Bland–Altman: bias (solid) ± 1.96 SD (dashed)", draw, out, size)


# ----------------------------------------------------------------------------- binary
def _finish(fig: plt.Figure, ax: plt.Axes, xlabel: str, ylabel: str, first: str, rest: str,
            out: str | Path) -> Path:
    """Labels, title and the legend below the axes (room for eight encoders), then save."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    _title(fig, first, rest)
    _legend_below(fig, ax)
    return save(fig, out)


def roc(results: Sequence[Result], task: str, out: str | Path,
        labels: dict[str, str] | None = None, size: Canvas | None = None) -> Path:
    """ROC curves (AUROC with CI in the legend) and each model's operating point."""
    from sklearn.metrics import confusion_matrix, roc_curve

    rs = _drawable(results, "roc")
    with plt.rc_context(_STYLE):
        fig = _figure(size, Canvas(TASK_WIDTH, 3.4 + 0.16 * (len(rs) + 1)))
        ax = fig.subplots()
        ax.plot([0, 1], [0, 1], ":", color="0.5", lw=1, label="chance")
        for i, r in enumerate(rs):
            d = _usable_rows(r.predictions, "roc")
            y = d["y_true"].to_numpy(int)
            fpr, tpr, _ = roc_curve(y, d["prob"].to_numpy(float))
            ax.plot(fpr, tpr, color=f"C{i % 10}", lw=1.4,
                    label=f"{label_of(r, labels)}: AUROC "
                          f"{fmt_metric('auroc', r.metrics.get('auroc'), reasons=False)}")
            tn, fp, fn, tp = confusion_matrix(y, d["y_pred"].to_numpy(int), labels=[0, 1]).ravel()
            ax.plot(fp / (fp + tn), tp / (tp + fn), "s", color=f"C{i % 10}", ms=5)
        return _finish(fig, ax, "false positive rate (1 − specificity)",
                       "true positive rate (sensitivity)", f"{task} · {rs[0].protocol}",
                       "ROC (squares: hard-decision operating point)", out)


def pr(results: Sequence[Result], task: str, out: str | Path,
       labels: dict[str, str] | None = None, size: Canvas | None = None) -> Path:
    """Precision–recall curves (AUPRC with CI in the legend) and the prevalence line."""
    from sklearn.metrics import precision_recall_curve

    rs = _drawable(results, "pr")
    with plt.rc_context(_STYLE):
        fig = _figure(size, Canvas(TASK_WIDTH, 3.4 + 0.16 * (len(rs) + 1)))
        ax = fig.subplots()
        prev = None
        for i, r in enumerate(rs):
            d = _usable_rows(r.predictions, "pr")
            y = d["y_true"].to_numpy(int)
            prev = float(y.mean())
            prec, rec, _ = precision_recall_curve(y, d["prob"].to_numpy(float))
            ax.step(rec, prec, where="post", color=f"C{i % 10}", lw=1.4,
                    label=f"{label_of(r, labels)}: AUPRC "
                          f"{fmt_metric('auprc', r.metrics.get('auprc'), reasons=False)}")
        ax.axhline(prev, ls=":", color="0.5", lw=1, label=f"prevalence {100 * prev:.1f} %")
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.02)
        return _finish(fig, ax, "recall (sensitivity)", "precision (PPV)",
                       f"{task} · {rs[0].protocol}", "precision–recall", out)


def reliability(results: Sequence[Result], task: str, out: str | Path, n_bins: int = 10,
                labels: dict[str, str] | None = None, size: Canvas | None = None) -> Path:
    """Observed positive rate per bin of P(positive) (10 equal-width bins), with the diagonal."""
    rs = _drawable(results, "reliability")
    with plt.rc_context(_STYLE):
        fig = _figure(size, Canvas(TASK_WIDTH, 3.4 + 0.16 * (len(rs) + 1)))
        ax = fig.subplots()
        ax.plot([0, 1], [0, 1], ":", color="0.5", lw=1, label="perfect calibration")
        edges = np.linspace(0, 1, n_bins + 1)
        for i, r in enumerate(rs):
            d = _usable_rows(r.predictions, "reliability")
            p, y = d["prob"].to_numpy(float), d["y_true"].to_numpy(float)
            b = np.clip(np.digitize(p, edges[1:-1], right=True), 0, n_bins - 1)
            keep = [k for k in range(n_bins) if (b == k).any()]
            xs = [p[b == k].mean() for k in keep]
            ys = [y[b == k].mean() for k in keep]
            ece = fmt_metric("ece", r.metrics.get("ece"), with_ci=False)
            ax.plot(xs, ys, "o-", color=f"C{i % 10}", lw=1.2, ms=4,
                    label=f"{label_of(r, labels)}: ECE {ece}")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        return _finish(fig, ax, "mean predicted P(positive) in bin",
                       "observed share of positives", f"{task} · {rs[0].protocol}",
                       f"reliability diagram ({n_bins} equal-width bins)", out)


# ----------------------------------------------------------------------------- views
def confusion(results: Sequence[Result], task: str, classes: Sequence[str], out: str | Path,
              labels: dict[str, str] | None = None, size: Canvas | None = None) -> Path:
    """Row-normalised confusion matrix (rows = true view, share of that view's units)."""
    from sklearn.metrics import confusion_matrix

    def draw(fig: plt.Figure, ax: plt.Axes, r: Result) -> None:
        p = _usable_rows(r.predictions, "confusion").astype(str)
        seen = set(p["y_true"]) | set(p["y_pred"])
        # classes outside the task's list (a relabelled file) are shown after the listed ones
        present = [c for c in classes if c in seen] + sorted(seen - set(classes))
        cm = confusion_matrix(p["y_true"], p["y_pred"], labels=present).astype(float)
        rows = cm.sum(axis=1, keepdims=True)
        norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
        ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
        for (i, j), v in np.ndenumerate(norm):
            if rows[i, 0] > 0:
                ax.text(j, i, f"{100 * v:.0f}", ha="center", va="center", fontsize=7,
                        color="white" if v > 0.6 else "black")
        tick = plt.rcParams["xtick.labelsize"]
        names = [fit(c, 50, tick) for c in present]
        ax.set_xticks(range(len(present)), names, rotation=45, ha="right")
        ax.set_yticks(range(len(present)), names)
        _panel_text(fig, ax, f"{label_of(r, labels)} (n={len(p)})", "predicted view", "true view")

    return _panels(_drawable(results, "confusion"), task,
                   "confusion matrix, % of each true view", draw, out, size)


# ----------------------------------------------------------------------------- embeddings
def embedding_map(points: np.ndarray, label: pd.Series, view: pd.Series, title: str,
                  label_name: str, out: str | Path, method: str = "PCA") -> Path:
    """2-D map of test embeddings, coloured by label (left) and by view (right)."""
    with plt.rc_context(_STYLE):
        fig = _figure(None, EMBEDDING_MAP)
        a1, a2 = fig.subplots(1, 2)
        numeric = pd.api.types.is_numeric_dtype(label) and label.nunique() > 6
        if numeric:
            sc = a1.scatter(points[:, 0], points[:, 1], c=label.to_numpy(float), s=14,
                            cmap="viridis")
            fig.colorbar(sc, ax=a1, label=fit(label_name, 200, plt.rcParams["axes.labelsize"]))
        else:
            _categorical(a1, points, label.astype(str))
        _categorical(a2, points, view.astype(str))
        for ax, what in ((a1, label_name), (a2, "view")):
            ax.set_xlabel(f"{method} 1")
            ax.set_ylabel(f"{method} 2")
            ax.set_title(fit(f"coloured by {what}", _panel_room(fig, ax),
                             plt.rcParams["axes.titlesize"]))
        _title(fig, title)
        return save(fig, out)


def _categorical(ax: plt.Axes, points: np.ndarray, lab: pd.Series) -> None:
    for i, v in enumerate(sorted(lab.unique())):
        m = (lab == v).to_numpy()
        ax.scatter(points[m, 0], points[m, 1], s=14, color=f"C{i % 10}",
                   label=fit(v, 90, plt.rcParams["legend.fontsize"]))
    ax.legend(loc="best", frameon=False, markerscale=1.2)


# ----------------------------------------------------------------------------- beyond one split
def matrix_canvas(n_ends: int) -> Canvas:
    """The one size of every transfer matrix of a report: :data:`TASK_WIDTH` wide, tall enough
    for ``n_ends`` rows of the largest matrix, its rotated column labels and the colour bar."""
    return Canvas(TASK_WIDTH, math.ceil((2.9 + 0.36 * max(n_ends, 2)) * 10) / 10)


def transfer_matrix(m: Any, labels: dict[str, str] | None, out: str | Path,
                    size: Canvas | None = None) -> Path:
    """Source × target heatmap of the headline metric (:class:`cardiobench.report.
    generalization.Matrix`): in-dataset on the diagonal (boxed), ``*`` where the paired
    difference's interval excludes 0, n/a cells grey, cells of one dataset blank."""
    n = len(m.ends)
    grid = np.full((n, n), np.nan)
    for i, s in enumerate(m.ends):
        for j, t in enumerate(m.ends):
            c = m.cell(s, t)
            if c.value is not None:
                grid[i, j] = c.value
    if not np.isfinite(grid).any():
        raise NotDrawable("no cell of this matrix holds a value: "
                          + "; ".join(f"{s} → {t}: {m.cell(s, t).reason}" for s in m.ends
                                      for t in m.ends if m.cell(s, t).status != "none")[:300])
    higher = METRICS[m.metric].higher_is_better if m.metric in METRICS else True
    with plt.rc_context(_STYLE):
        fig = _figure(size, matrix_canvas(n))
        ax = fig.subplots()
        cmap = plt.get_cmap("viridis" if higher else "viridis_r").with_extremes(bad="#f0f0f0")
        im = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, aspect="auto")
        lo, hi = np.nanmin(grid), np.nanmax(grid)
        size_pt = 7 if n <= 6 else 6
        for i, s in enumerate(m.ends):
            for j, t in enumerate(m.ends):
                c = m.cell(s, t)
                if c.status == "none":
                    continue
                v = grid[i, j]
                t = (v - lo) / ((hi - lo) or 1.0) if np.isfinite(v) else 1.0
                dark = t < 0.5 if higher else t > 0.5  # viridis is dark at its low end
                ax.text(j, i, c.text, ha="center", va="center", fontsize=size_pt,
                        color="white" if np.isfinite(v) and dark else "black")
                if c.diagonal:
                    ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, lw=1.6,
                                               ec="black"))
        tick = plt.rcParams["xtick.labelsize"]
        names = [fit(e, 120, tick) for e in m.ends]
        ax.set_xticks(range(n), names, rotation=40, ha="right", rotation_mode="anchor")
        ax.set_yticks(range(n), names)
        ax.set_xlabel("target (scored on its test units)")
        ax.set_ylabel("source (fitted on)")
        bar = fig.colorbar(im, ax=ax, shrink=0.85)
        bar.set_label(fit(metric_label(m.metric, m.group), 150, plt.rcParams["axes.labelsize"]))
        enc = (labels or {}).get(m.encoder_key, m.encoder_key)
        _title(fig, f"{m.group} group · transfer · {m.runner} · {enc}",
               f"{metric_label(m.metric, m.group)}; boxed: in-dataset; *: paired difference's "
               "95 % interval excludes 0; grey: n/a")
        return save(fig, out)


def efficiency_canvas(n_encoders: int) -> Canvas:
    """The one size of every label-efficiency figure: an axes with one legend line per encoder
    and per reference line below it."""
    return Canvas(TASK_WIDTH, math.ceil((3.6 + 0.16 * (2 * max(n_encoders, 1) + 1)) * 10) / 10)


def efficiency_curves(series: Sequence[Any], labels: dict[str, str] | None, out: str | Path,
                      size: Canvas | None = None) -> Path:
    """Metric against labelled patients (log x) per encoder, bands for the intervals, each
    encoder's full-data in-dataset result as a dashed line (:class:`cardiobench.report.
    generalization.Curve`)."""
    drawn = [c for c in series if c.status == "ok" and any(
        p["status"] == "ok" and p["value"] is not None for p in c.points)]
    if not drawn:
        raise NotDrawable("no budget holds a value: " + "; ".join(dict.fromkeys(
            str(c.reason) if c.status != "ok" else
            "; ".join(f"{p['budget']}: {p['reason']}" for p in c.points) for c in series))[:300])
    first = drawn[0]
    with plt.rc_context(_STYLE):
        fig = _figure(size, efficiency_canvas(len(series)))
        ax = fig.subplots()
        for i, c in enumerate(drawn):
            pts = [p for p in c.points if p["status"] == "ok" and p["value"] is not None]
            x = np.array([p["x"] for p in pts], dtype=float)
            y = np.array([p["value"] for p in pts], dtype=float)
            colour = f"C{i % 10}"
            name = (labels or {}).get(c.encoder_key, c.encoder_key)
            ax.plot(x, y, "o-", color=colour, lw=1.4, ms=4, label=name)
            band = [(p["x"], p["lo"], p["hi"]) for p in pts if p["lo"] is not None]
            if band:
                bx, blo, bhi = (np.array(v, dtype=float) for v in zip(*band))
                ax.fill_between(bx, blo, bhi, color=colour, alpha=0.18, lw=0)
            if c.reference is not None:
                ax.axhline(c.reference, color=colour, ls="--", lw=1,
                           label=f"{name}: full data, in-dataset {c.runner}")
        ax.set_xscale("log")
        # the budgets' own patient counts as ticks, written plainly (not 3×10⁰)
        xs = sorted({round(float(p["x"]), 1) for c in drawn for p in c.points
                     if p["status"] == "ok" and p["x"]})
        span = math.log10(max(xs) / min(xs)) if len(xs) > 1 else 1.0
        names, last = [], -math.inf
        for x in xs:  # a label closer than 1/14 of the span to the previous one is left out
            keep = math.log10(x) - last >= span / 14
            names.append(f"{x:g}" if keep else "")
            last = math.log10(x) if keep else last
        ax.set_xticks(xs, names)
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.grid(alpha=0.3, which="both")
        skipped = sorted({p["budget"] for c in series for p in c.points if p["status"] != "ok"})
        rest = (f"{metric_label(first.metric, first.task)} vs labelled patients (mean over "
                "seeds, band: 95 % interval over seeds and test patients)")
        if skipped:
            rest += "; not shown: " + ", ".join(skipped)
        if not any(c.reference is not None for c in drawn):
            rest += f"; no full-data reference ({drawn[0].reference_reason})"
        return _finish(fig, ax, "labelled train patients (log scale)",
                       metric_label(first.metric, first.task),
                       f"{first.task} · label efficiency · {first.runner}", rest, out)
