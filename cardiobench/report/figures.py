"""One function per figure kind, drawn from results and their per-sample predictions.

Matplotlib's Agg backend; PNG written without the ``Software`` metadata and with fixed DPI, so
the same input gives the same bytes. Panels per encoder wrap at four columns and tick labels are
kept horizontal or rotated so that eight encoders stay readable at 100 % zoom.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (backend must be chosen first)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from cardiobench.atomic import atomic_path  # noqa: E402
from cardiobench.report.definitions import (display_value, fmt_metric,  # noqa: E402
                                            metric_label, metric_unit)
from cardiobench.results import Result  # noqa: E402
from cardiobench.metrics import METRICS  # noqa: E402

DPI = 100
_STYLE = {"font.size": 9, "axes.titlesize": 9, "axes.labelsize": 9, "legend.fontsize": 7.5,
          "xtick.labelsize": 8, "ytick.labelsize": 8, "svg.hashsalt": "cardiobench"}


def save(fig: plt.Figure, out: str | Path) -> Path:
    """Write ``fig`` deterministically (no timestamp/software metadata) and close it."""
    out = Path(out)
    fmt = out.suffix.lstrip(".") or "png"
    meta = {"Software": None} if fmt == "png" else {"Date": None, "Creator": None}
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format=fmt, dpi=DPI, metadata=meta)
    plt.close(fig)
    return out


def _grid(n: int, w: float = 3.0, h: float = 2.9) -> tuple[plt.Figure, list[plt.Axes]]:
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(w * cols, h * rows + 0.4), squeeze=False)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def label_of(r: Result, labels: dict[str, str] | None = None) -> str:
    """Legend/row label of a result: ``encoder · protocol``."""
    name = (labels or {}).get(r.encoder_key, r.encoder_name)
    return f"{name} · {r.protocol}"


# ----------------------------------------------------------------------------- every task
def forest(results: Sequence[Result], metric: str, task: str, out: str | Path,
           labels: dict[str, str] | None = None) -> Path:
    """Headline metric with its 95 % interval per (encoder, protocol); baseline as a dashed line."""
    rows = [r for r in results if r.status == "ok" and r.metrics.get(metric, {}).get("value")
            is not None]
    if not rows:
        raise ValueError(f"{task}: no ok result with {metric}")
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(6.4, 0.38 * len(rows) + 1.3))
        for i, r in enumerate(rows):
            m = r.metrics[metric]
            v = display_value(metric, m["value"])
            lo, hi = display_value(metric, m.get("ci_low")), display_value(metric, m.get("ci_high"))
            ax.plot(v, i, "o", color="C0", zorder=3)
            if lo is not None and hi is not None:
                ax.plot([lo, hi], [i, i], "-", color="C0", lw=1.6)
        base = next((r.baseline[metric]["value"] for r in rows
                     if r.baseline.get(metric, {}).get("value") is not None), None)
        if base is not None:
            ax.axvline(display_value(metric, base), ls="--", color="0.5", lw=1,
                       label="trivial baseline")
            ax.legend(loc="best", frameon=False)
        ax.set_yticks(range(len(rows)), [label_of(r, labels) for r in rows])
        ax.set_ylim(-0.6, len(rows) - 0.4)
        ax.invert_yaxis()
        ax.set_xlabel(f"{metric_label(metric, task)} · 95 % percentile interval")
        ax.set_title(task)
        ax.grid(axis="x", alpha=0.3)
        fig.tight_layout()
        return save(fig, out)


def delta_forest(comparisons: Sequence[Any], a: str, b: str, out: str | Path) -> Path:
    """``a − b`` on each task's headline metric with its paired interval, p-value and n."""
    from cardiobench.report.tables import headline

    rows = [(c, headline(c.task)) for c in comparisons if headline(c.task) in c.diffs]
    if not rows:
        raise ValueError("no comparison holds its task's headline metric")
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(8.0, 0.36 * len(rows) + 1.6))
        ticks = []
        for i, (c, h) in enumerate(rows):
            d = c.diffs[h]
            f = display_value(h, 1.0) or 1.0
            better = (d.diff > 0) == METRICS[h].higher_is_better
            colour = "0.4" if d.diff == 0 or d.p_value >= 0.05 else ("C2" if better else "C3")
            ax.plot([d.ci_low * f, d.ci_high * f], [i, i], "-", color="C0", lw=1.6)
            ax.plot(d.diff * f, i, "o", color=colour, zorder=3)
            ticks.append(f"{c.task} · {c.protocol} ({metric_label(h, c.task)}) "
                         f"p={d.p_value:.3f} n={c.n_common}")
        ax.axvline(0, color="0.3", lw=1)
        ax.set_yticks(range(len(rows)), ticks)
        ax.set_ylim(-0.6, len(rows) - 0.4)
        ax.invert_yaxis()
        ax.set_xlabel("A − B in each row's unit · paired 95 % interval")
        ax.set_title(f"A = {a}, B = {b}\ngreen: A better, red: B better (p < 0.05), grey: no "
                     "evidence")
        ax.grid(axis="x", alpha=0.3)
        fig.tight_layout()
        return save(fig, out)


def subgroups(results: Sequence[Result], subgroup: str, metric: str, task: str, out: str | Path,
              labels: dict[str, str] | None = None) -> Path:
    """Headline metric per subgroup level (no bootstrap, as published), one series per model."""
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(6.4, 3.4))
        levels: list[str] = []
        for j, r in enumerate(results):
            recs = [g for g in r.extras.get("subgroups", {}).get(subgroup, [])
                    if g["group"] != "delta(max-min)"]
            for g in recs:
                if g["group"] not in levels:
                    levels.append(g["group"])
            xs = [levels.index(g["group"]) + (j - (len(results) - 1) / 2) * 0.08 for g in recs]
            ys = [display_value(metric, g.get(metric)) for g in recs]
            ys = [np.nan if y is None else y for y in ys]
            ax.plot(xs, ys, "o-", lw=0.8, label=label_of(r, labels))
        ax.set_xticks(range(len(levels)),
                      [f"{lv}" for lv in levels], rotation=30 if len(levels) > 4 else 0)
        ax.set_xlim(-0.5, len(levels) - 0.5)
        ax.set_xlabel(subgroup)
        ax.set_ylabel(metric_label(metric, task))
        ax.set_title(f"{task}: {metric_label(metric, task)} by {subgroup}")
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        return save(fig, out)


# ----------------------------------------------------------------------------- regression
def _panels(results: Sequence[Result], title: str, draw: Callable[[plt.Axes, Result], None],
            out: str | Path, w: float = 3.0, h: float = 2.9) -> Path:
    """One panel per result (wrapping at four columns), drawn by ``draw(ax, result)``."""
    with plt.rc_context(_STYLE):
        fig, axes = _grid(len(results), w, h)
        for ax, r in zip(axes, results):
            draw(ax, r)
        fig.suptitle(title)
        fig.tight_layout()
        return save(fig, out)


def scatter(results: Sequence[Result], task: str, out: str | Path,
            labels: dict[str, str] | None = None) -> Path:
    """Predicted vs true value per encoder/protocol, with the identity line."""
    unit = metric_unit("mae", task)

    def draw(ax: plt.Axes, r: Result) -> None:
        y, yh = r.predictions["y_true"].to_numpy(float), r.predictions["y_pred"].to_numpy(float)
        lo, hi = float(min(y.min(), yh.min())), float(max(y.max(), yh.max()))
        pad = 0.05 * (hi - lo or 1.0)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "--", color="0.5", lw=1)
        ax.scatter(y, yh, s=12, alpha=0.7)
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_aspect("equal", adjustable="box")
        ax.set_title(f"{label_of(r, labels)}\nMAE {fmt_metric('mae', r.metrics.get('mae'))}",
                     fontsize=8)
        ax.set_xlabel(f"true ({unit})")
        ax.set_ylabel(f"predicted ({unit})")

    return _panels(results, f"{task}: predicted vs true (dashed: identity)", draw, out)


def bland_altman(results: Sequence[Result], task: str, out: str | Path,
                 labels: dict[str, str] | None = None) -> Path:
    """Difference (pred − true) vs mean, with the bias and 95 % limits of agreement."""
    unit = metric_unit("mae", task)

    def draw(ax: plt.Axes, r: Result) -> None:
        y, yh = r.predictions["y_true"].to_numpy(float), r.predictions["y_pred"].to_numpy(float)
        diff, mean = yh - y, (yh + y) / 2
        bias = float(diff.mean())
        sd = float(diff.std(ddof=1)) if len(diff) > 1 else 0.0
        ax.scatter(mean, diff, s=12, alpha=0.7)
        ax.axhline(bias, color="C3", lw=1.2, label=f"bias {bias:.2f}")
        for s in (-1.96, 1.96):
            ax.axhline(bias + s * sd, color="C3", ls="--", lw=1)
        ax.plot([], [], "--", color="C3", label=f"95 % LoA [{bias - 1.96 * sd:.2f}, "
                                                 f"{bias + 1.96 * sd:.2f}]")
        ax.set_title(label_of(r, labels), fontsize=8)
        ax.set_xlabel(f"mean of predicted and true ({unit})")
        ax.set_ylabel(f"predicted − true ({unit})")
        ax.legend(loc="best", frameon=False)

    return _panels(results, f"{task}: Bland–Altman (bias ± 1.96 SD)", draw, out)


# ----------------------------------------------------------------------------- binary
def _both_classes(r: Result) -> bool:
    return r.predictions is not None and r.predictions["y_true"].nunique() == 2


def _finish(fig: plt.Figure, ax: plt.Axes, xlabel: str, ylabel: str, title: str,
            out: str | Path) -> Path:
    """Labels, title and the legend right of the axes (room for eight encoders), then save."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    fig.tight_layout()
    return save(fig, out)


def roc(results: Sequence[Result], task: str, out: str | Path,
        labels: dict[str, str] | None = None) -> Path:
    """ROC curves (AUROC with CI in the legend) and each model's operating point."""
    from sklearn.metrics import confusion_matrix, roc_curve

    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(8.0, 4.2))
        ax.plot([0, 1], [0, 1], ":", color="0.5", lw=1, label="chance")
        for i, r in enumerate(results):
            p = r.predictions
            y = p["y_true"].to_numpy(int)
            if not _both_classes(r):
                ax.plot([], [], color=f"C{i % 10}",
                        label=f"{label_of(r, labels)}: undefined (one class in test)")
                continue
            fpr, tpr, _ = roc_curve(y, p["prob"].to_numpy(float))
            ax.plot(fpr, tpr, color=f"C{i % 10}", lw=1.4,
                    label=f"{label_of(r, labels)}: AUROC {fmt_metric('auroc', r.metrics.get('auroc'))}")
            tn, fp, fn, tp = confusion_matrix(y, p["y_pred"].to_numpy(int), labels=[0, 1]).ravel()
            ax.plot(fp / (fp + tn), tp / (tp + fn), "s", color=f"C{i % 10}", ms=5)
        return _finish(fig, ax, "false positive rate (1 − specificity)",
                       "true positive rate (sensitivity)",
                       f"{task}: ROC (squares: hard-decision operating point)", out)


def pr(results: Sequence[Result], task: str, out: str | Path,
       labels: dict[str, str] | None = None) -> Path:
    """Precision–recall curves (AUPRC with CI in the legend) and the prevalence line."""
    from sklearn.metrics import precision_recall_curve

    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(8.0, 4.2))
        prev = None
        for i, r in enumerate(results):
            p = r.predictions
            y = p["y_true"].to_numpy(int)
            prev = float(y.mean())
            if not _both_classes(r):
                ax.plot([], [], color=f"C{i % 10}",
                        label=f"{label_of(r, labels)}: undefined (one class in test)")
                continue
            prec, rec, _ = precision_recall_curve(y, p["prob"].to_numpy(float))
            ax.step(rec, prec, where="post", color=f"C{i % 10}", lw=1.4,
                    label=f"{label_of(r, labels)}: AUPRC {fmt_metric('auprc', r.metrics.get('auprc'))}")
        if prev is not None:
            ax.axhline(prev, ls=":", color="0.5", lw=1, label=f"prevalence {100 * prev:.1f} %")
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.02)
        return _finish(fig, ax, "recall (sensitivity)", "precision (PPV)",
                       f"{task}: precision–recall", out)


def reliability(results: Sequence[Result], task: str, out: str | Path, n_bins: int = 10,
                labels: dict[str, str] | None = None) -> Path:
    """Observed positive rate per bin of P(positive) (10 equal-width bins), with the diagonal."""
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(8.0, 4.2))
        ax.plot([0, 1], [0, 1], ":", color="0.5", lw=1, label="perfect calibration")
        edges = np.linspace(0, 1, n_bins + 1)
        for i, r in enumerate(results):
            p = r.predictions["prob"].to_numpy(float)
            y = r.predictions["y_true"].to_numpy(int)
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
                       "observed share of positives", f"{task}: reliability diagram", out)


# ----------------------------------------------------------------------------- views
def confusion(results: Sequence[Result], task: str, classes: Sequence[str], out: str | Path,
              labels: dict[str, str] | None = None) -> Path:
    """Row-normalised confusion matrix (rows = true view, share of that view's units)."""
    from sklearn.metrics import confusion_matrix

    def draw(ax: plt.Axes, r: Result) -> None:
        p = r.predictions
        present = [c for c in classes if c in set(p["y_true"]) | set(p["y_pred"])]
        cm = confusion_matrix(p["y_true"].astype(str), p["y_pred"].astype(str),
                              labels=present).astype(float)
        rows = cm.sum(axis=1, keepdims=True)
        norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
        ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
        for (i, j), v in np.ndenumerate(norm):
            if rows[i, 0] > 0:
                ax.text(j, i, f"{100 * v:.0f}", ha="center", va="center", fontsize=7,
                        color="white" if v > 0.6 else "black")
        ax.set_xticks(range(len(present)), present, rotation=45, ha="right")
        ax.set_yticks(range(len(present)), present)
        ax.set_xlabel("predicted view")
        ax.set_ylabel("true view")
        ax.set_title(f"{label_of(r, labels)} (n={r.n})", fontsize=8)

    return _panels(results, f"{task}: confusion matrix, % of each true view", draw, out,
                   w=3.4, h=3.3)


# ----------------------------------------------------------------------------- embeddings
def embedding_map(points: np.ndarray, label: pd.Series, view: pd.Series, title: str,
                  label_name: str, out: str | Path, method: str = "PCA") -> Path:
    """2-D map of test embeddings, coloured by label (left) and by view (right)."""
    with plt.rc_context(_STYLE):
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(9.6, 3.9))
        numeric = pd.api.types.is_numeric_dtype(label) and label.nunique() > 6
        if numeric:
            sc = a1.scatter(points[:, 0], points[:, 1], c=label.to_numpy(float), s=14,
                            cmap="viridis")
            fig.colorbar(sc, ax=a1, label=label_name)
        else:
            _categorical(a1, points, label.astype(str))
        _categorical(a2, points, view.astype(str))
        for ax, what in ((a1, label_name), (a2, "view")):
            ax.set_xlabel(f"{method} 1")
            ax.set_ylabel(f"{method} 2")
            ax.set_title(f"coloured by {what}")
        fig.suptitle(title)
        fig.tight_layout()
        return save(fig, out)


def _categorical(ax: plt.Axes, points: np.ndarray, lab: pd.Series) -> None:
    for i, v in enumerate(sorted(lab.unique())):
        m = (lab == v).to_numpy()
        ax.scatter(points[m, 0], points[m, 1], s=14, color=f"C{i % 10}", label=v)
    ax.legend(loc="best", frameon=False, markerscale=1.2)
