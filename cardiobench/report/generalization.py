"""Beyond one dataset's split: transfer matrices, generalization ratios and label-efficiency
curves, read from ``transfer`` and ``label_efficiency`` results (their figures are drawn by
:mod:`cardiobench.report.figures`, their tables written by
:mod:`cardiobench.report.generalization_tables`, their section placed by
:mod:`cardiobench.report.html`).

**Transfer matrix** (one per label group, runner and encoder): rows are source ends, columns
target ends (``echonet_pediatric/ef[A4C]`` for a declared subset); an off-diagonal cell is the
target's headline metric of the probe transferred from the source, the diagonal the in-dataset
runner on the same target units (from the transfer results into that target). A cell is marked
``*`` where the 95 % interval of the paired difference (transferred − in-dataset) excludes 0.
Cells of one dataset (pooled and its subsets) are not transfers (``–``); n/a cells carry their
reason.

**Generalization ratio**, per encoder and runner: the mean over transfer pairs of
``transferred / in-dataset`` for metrics where higher is better (accuracy, AUROC) and of
``in-dataset / transferred`` where lower is better (MAE), so that for every metric 1 means the
transfer kept the in-dataset performance and higher is better. Only pairs of whole tasks enter
the mean (the A4C/PSAX subsets are in the matrix, not averaged, so that no target patient counts
twice). Interval: each pair's ratio is bootstrapped from its predictions (transferred and
in-dataset columns, the result's patient bootstrap: same seed and replicate count, so pairs into
one target share their patient draws), the replicates are averaged over pairs and the percentile
interval is taken; it is n/a when a pair has fewer bootstrap clusters than the result's minimum.

**Label-efficiency curve** (one per task and runner): the headline metric against the mean
number of labelled patients, one line per encoder with its interval as a band, and the
full-data in-dataset result of the same runner (linear probe or kNN) as a dashed reference line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from cardiobench import stats
from cardiobench.metrics import METRICS
from cardiobench.protocols.label_efficiency import LabelEfficiency
from cardiobench.protocols.transfer import IN_DATASET, Transfer, end_name, parse_end
from cardiobench.report.definitions import display_value
from cardiobench.results import Result

TRANSFER = Transfer.name
EFFICIENCY = LabelEfficiency.name


def end_key(end: str) -> tuple[int, str, int, str]:
    """Sort key of a transfer end: catalogue order of an end's task (unknown tasks last), the pooled task before its
    subsets."""
    from cardiobench.catalogue import default_catalogue

    task, sub = parse_end(end)
    names = list(default_catalogue().tasks)
    return (names.index(task) if task in names else len(names), task, int(sub is not None),
            sub or "")


def result_headline(r: Result) -> str:
    """The headline metric of a transfer or label-efficiency result (n/a ones too)."""
    from cardiobench.report import task_of

    h = r.config.get("headline")
    if h:
        return str(h)
    group = r.config.get("label_group") or r.task
    try:
        return task_of(str(group), [r]).headline
    except KeyError:
        return task_of(r.task, [r]).headline


def result_ends(r: Result) -> tuple[str, str]:
    """``(source end, target end)`` of a transfer result (from its config: n/a results too)."""
    c = r.config
    return (end_name(str(c.get("source")), c.get("source_subset")),
            end_name(r.task, c.get("target_subset")))


def _dataset(end: str) -> str:
    return parse_end(end)[0].split("/", 1)[0]


# ----------------------------------------------------------------------------- matrices
@dataclass
class MatrixCell:
    """One cell: display value (or n/a with a reason), n, and the paired difference's mark."""

    text: str
    value: float | None = None
    n: int | None = None
    status: str = "ok"
    reason: str | None = None
    excludes_zero: bool = False
    diagonal: bool = False


@dataclass
class Matrix:
    """Source × target cells of one label group, runner and encoder."""

    group: str
    runner: str
    encoder_key: str
    metric: str
    ends: list[str]
    cells: dict[tuple[str, str], MatrixCell] = field(default_factory=dict)

    def cell(self, source: str, target: str) -> MatrixCell:
        """The cell at (``source``, ``target``): ``–`` where no result exists."""
        if (source, target) in self.cells:
            return self.cells[(source, target)]
        if source != target and _dataset(source) == _dataset(target):
            return MatrixCell("–", status="none", reason="one dataset: not a transfer")
        return MatrixCell("–", status="none", reason="not run (no result for this pair)")


def transfer_results(results: Iterable[Result]) -> list[Result]:
    """The ``transfer`` results among ``results``."""
    return [r for r in results if r.protocol == TRANSFER]


def _excludes_zero(d: dict[str, Any] | None) -> bool:
    if not d or d.get("status") != "ok" or d.get("ci_low") is None or d.get("ci_high") is None:
        return False
    return d["ci_low"] > 0 or d["ci_high"] < 0


def _value_cell(m: dict[str, Any] | None, metric: str, n: int, diagonal: bool = False,
                diff: dict[str, Any] | None = None) -> MatrixCell:
    v = display_value(metric, (m or {}).get("value"))
    if v is None:
        return MatrixCell("n/a", n=n, status="not_applicable", diagonal=diagonal,
                          reason=f"{metric}: {(m or {}).get('na_reason') or 'not computed'}")
    d = METRICS[metric].decimals if metric in METRICS else 2
    mark = _excludes_zero(diff)
    return MatrixCell(f"{v:.{d}f}{'*' if mark else ''}", v, n, excludes_zero=mark,
                      diagonal=diagonal)


def matrices(results: Iterable[Result]) -> list[Matrix]:
    """Every transfer matrix of ``results`` (module docstring), by group, runner and encoder."""
    by: dict[tuple[str, str, str], list[Result]] = {}
    for r in transfer_results(results):
        key = (str(r.config.get("label_group") or r.task), str(r.config.get("runner")),
               r.encoder_key)
        by.setdefault(key, []).append(r)
    out = []
    for (group, runner, enc), rs in sorted(by.items(), key=lambda kv: (end_key(kv[0][0]),
                                                                       kv[0][1], kv[0][2])):
        metric = next((result_headline(r) for r in rs if r.config.get("headline")), result_headline(rs[0]))
        ends = sorted({e for r in rs for e in result_ends(r)}, key=end_key)
        m = Matrix(group, runner, enc, metric, ends)
        for r in rs:
            src, tgt = result_ends(r)
            if r.status != "ok":
                m.cells[(src, tgt)] = MatrixCell("n/a", status=r.status, reason=r.reason)
            else:
                m.cells[(src, tgt)] = _value_cell(r.metrics.get(metric), metric, r.n,
                                                  diff=(r.extras.get("paired_difference") or {})
                                                  .get(metric))
            diag = (tgt, tgt)
            if r.status != "ok" or (diag in m.cells and m.cells[diag].status == "ok"):
                continue
            ind = r.extras.get("in_dataset") or {}
            if ind.get("status") == "ok":
                m.cells[diag] = _value_cell(ind["metrics"].get(metric), metric, r.n, True)
            elif diag not in m.cells:
                m.cells[diag] = MatrixCell("n/a", status="not_applicable", diagonal=True,
                                           reason=ind.get("reason") or "in-dataset not scored")
        for e in ends:  # an end no scored transfer reached: its diagonal says why
            if (e, e) not in m.cells:
                m.cells[(e, e)] = MatrixCell("n/a", status="not_applicable", diagonal=True,
                                             reason="no transfer into it was scored")
        out.append(m)
    return out


def matrix_reasons(m: Matrix) -> list[str]:
    """Why the n/a cells of ``m`` are n/a: one line per distinct reason, naming its cells
    (``source → target``, or ``target in-dataset`` on the diagonal)."""
    by: dict[str, list[str]] = {}
    for (s, t), c in sorted(m.cells.items(), key=lambda kv: (end_key(kv[0][0]),
                                                             end_key(kv[0][1]))):
        if c.status not in ("ok", "none"):
            by.setdefault(str(c.reason), []).append(f"{s} → {t}" if s != t
                                                    else f"{t} in-dataset")
    return [f"{', '.join(cells)}: {why}" for why, cells in by.items()]


# ----------------------------------------------------------------------------- ratio
@dataclass
class Ratio:
    """The mean generalization ratio of one encoder and runner over the pairs of a group."""

    encoder_key: str
    runner: str
    group: str
    value: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    n_pairs: int = 0
    status: str = "ok"
    reason: str | None = None
    left_out: list[str] = field(default_factory=list)

    def text(self) -> str:
        """``0.93 [0.85, 1.01] (4 pairs)``, the interval's or the value's n/a reason."""
        if self.value is None:
            return f"n/a ({self.reason})"
        ci = (f"[{self.ci_low:.2f}, {self.ci_high:.2f}]" if self.ci_low is not None
              else f"[CI n/a: {self.reason}]")
        return f"{self.value:.2f} {ci} ({self.n_pairs} pair{'s' if self.n_pairs != 1 else ''})"


def pair_ratio(r: Result) -> tuple[float, np.ndarray, int, int] | str:
    """One transfer result's ratio (module docstring) and its bootstrap replicates, the pair's
    bootstrap clusters and the minimum it needs; or why it has none."""
    from cardiobench.report import task_of

    if r.status != "ok":
        return f"{r.status}: {r.reason}"
    if (r.extras.get("in_dataset") or {}).get("status") != "ok":
        return f"no in-dataset comparison ({(r.extras.get('in_dataset') or {}).get('reason')})"
    if r.predictions is None:
        return "its predictions were not read"
    h = result_headline(r)
    task = task_of(r.task, [r])
    try:
        fn_t = task.type.metric_fn(task, r.predictions, "")
        fn_i = task.type.metric_fn(task, r.predictions, IN_DATASET)
    except KeyError as exc:
        return f"the predictions lack the column {exc}"
    boot = r.config.get("bootstrap") or {}
    n = len(r.predictions)
    clusters = None if r.config.get("ci") == "reference" else r.predictions["patient_id"]
    higher = METRICS[h].higher_is_better

    def ratio(t: np.ndarray, i: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.asarray(t / i if higher else i / t, dtype=np.float64)

    point = float(ratio(fn_t(np.ones((1, n)))[h], fn_i(np.ones((1, n)))[h])[0])
    if not math.isfinite(point):
        return f"the ratio of {h} is undefined (a zero or undefined value)"
    n_boot, seed = int(boot.get("n_boot") or 1000), int(boot.get("seed") or 42)
    reps = ratio(stats.bootstrap_replicates(fn_t, n, clusters, n_boot, seed)[h],
                 stats.bootstrap_replicates(fn_i, n, clusters, n_boot, seed)[h])
    return (point, reps, int(boot.get("n_clusters") or r.n_clusters),
            int(boot.get("min_clusters") or stats.MIN_CLUSTERS))


def ratios(results: Iterable[Result], level: float = 0.95) -> list[Ratio]:
    """The generalization ratio per encoder, runner and label group, plus ``all`` groups."""
    by: dict[tuple[str, str], list[Result]] = {}
    for r in transfer_results(results):
        if r.config.get("source_subset") or r.config.get("target_subset"):
            continue  # subsets are in the matrix; averaging them would count patients twice
        by.setdefault((r.encoder_key, str(r.config.get("runner"))), []).append(r)
    out = []
    for (enc, runner), rs in sorted(by.items()):
        per_pair = [(r, pair_ratio(r)) for r in rs]  # each pair's bootstrap once, for every group
        groups = sorted({str(r.config.get("label_group") or r.task) for r in rs}, key=end_key)
        for group in [*groups, "all"]:
            sel = [(r, g) for r, g in per_pair
                   if group == "all" or r.config.get("label_group") == group]
            out.append(_mean_ratio(enc, runner, group, sel, level))
    return out


def _mean_ratio(enc: str, runner: str, group: str,
                got: list[tuple[Result, tuple[float, np.ndarray, int, int] | str]],
                level: float) -> Ratio:
    ok = [(r, g) for r, g in got if not isinstance(g, str)]
    out = Ratio(enc, runner, group, n_pairs=len(ok),
                left_out=[f"{' → '.join(result_ends(r))}: {g}" for r, g in got if isinstance(g, str)])
    if not ok:
        out.status, out.reason = "not_applicable", "no pair with both scores"
        return out
    out.value = float(np.mean([g[0] for _, g in ok]))
    few = [r for r, g in ok if g[2] < g[3]]
    if few:
        out.status = "no_interval"
        out.reason = (f"{len(few)} of {len(ok)} pairs have fewer bootstrap clusters than "
                      f"{ok[0][1][3]}")
        return out
    b = min(len(g[1]) for _, g in ok)
    reps = np.mean(np.stack([g[1][:b] for _, g in ok]), axis=0)
    valid = reps[np.isfinite(reps)]
    if not len(valid):
        out.status, out.reason = "no_interval", "no bootstrap replicate defines it"
        return out
    a = (1 - level) / 2
    out.ci_low, out.ci_high = (float(x) for x in np.quantile(valid, [a, 1 - a]))
    return out


RATIO_DEFINITION = (
    "Generalization ratio: transferred ÷ in-dataset headline metric where higher is better "
    "(accuracy, AUROC), in-dataset ÷ transferred where lower is better (MAE), so 1 means the "
    "transfer kept the in-dataset performance and higher is better for every metric; mean over "
    "the pairs of whole tasks (subsets are in the matrices), 95 % percentile interval of the "
    "patient bootstrap of each pair's predictions, averaged over pairs replicate by replicate.")


# ----------------------------------------------------------------------------- curves
@dataclass
class Curve:
    """One encoder's learning curve on one task and runner, with its full-data reference."""

    task: str
    runner: str
    encoder_key: str
    metric: str
    points: list[dict[str, Any]]
    reference: float | None = None
    reference_reason: str | None = None
    status: str = "ok"
    reason: str | None = None


def curves(results: Sequence[Result]) -> dict[tuple[str, str], list[Curve]]:
    """``{(task, runner): [Curve per encoder]}`` of the label-efficiency results."""
    tab = {(r.task, r.protocol, r.encoder_key): r for r in results
           if r.protocol != EFFICIENCY and r.protocol != TRANSFER}
    out: dict[tuple[str, str], list[Curve]] = {}
    for r in results:
        if r.protocol != EFFICIENCY:
            continue
        runner = str(r.variant or r.config.get("runner"))
        h = result_headline(r)
        ref = tab.get((r.task, runner, r.encoder_key))
        ref_v = display_value(h, (ref.metrics.get(h) or {}).get("value")) \
            if ref is not None and ref.status == "ok" else None
        why = None if ref_v is not None else (
            f"no {runner} result of this encoder" if ref is None else
            f"{runner}: {ref.reason or 'headline n/a'}")
        le = r.extras.get("label_efficiency") or {}
        points = []
        for b in le.get("budgets", []):
            m = (b.get("metrics") or {}).get(h) or {}
            points.append({"budget": b["budget"], "status": b["status"], "reason": b.get("reason"),
                           "x": b.get("n_patients"), "value": display_value(h, m.get("value")),
                           "lo": display_value(h, m.get("ci_low")),
                           "hi": display_value(h, m.get("ci_high")), "metric": m,
                           "notes": b.get("notes") or []})
        out.setdefault((r.task, runner), []).append(
            Curve(r.task, runner, r.encoder_key, h, points, ref_v, why,
                  r.status, r.reason))
    return dict(sorted(out.items(), key=lambda kv: (end_key(kv[0][0]), kv[0][1])))
