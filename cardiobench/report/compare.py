"""Paired encoder-vs-encoder comparison of two results on the same task and units.

Only the evaluation units that **both** results scored enter the comparison (a unit one encoder
failed to embed cannot be paired); :class:`Comparison` says how many each result scored, how
many were shared and which were dropped, so the reader sees when the paired n is smaller than
either result's own n.

Two results scored on different labels (different ``label_fingerprint``,
:mod:`cardiobench.comparability`) are never paired: :func:`compare_pair` refuses them and
:func:`compare_suite` leaves them out, saying so in ``refused``. With fewer paired bootstrap
clusters than :data:`cardiobench.stats.MIN_CLUSTERS` the interval and p-value are n/a (NaN, with
``na_reason``), as for a result's own intervals.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any


from cardiobench import stats
from cardiobench.comparability import same_labels
from cardiobench.results import Result
from cardiobench.report.definitions import tabulated


@dataclass
class Comparison:
    """``metric(a) − metric(b)`` on the units both results scored, with the counts behind it."""

    task: str
    protocol: str
    unit: str                      # the unit column the two results were joined on
    n_a: int                       # units result A scored
    n_b: int                       # units result B scored
    n_common: int                  # units both scored: the paired n
    n_clusters: int                # bootstrap clusters among the common units
    only_a: list[str] = field(default_factory=list)   # units scored by A alone (dropped)
    only_b: list[str] = field(default_factory=list)   # units scored by B alone (dropped)
    diffs: dict[str, stats.PairedDiff] = field(default_factory=dict)

    def __str__(self) -> str:
        """The comparison as terminal lines: counts, dropped units, then one line per metric."""
        drop = (f"; dropped {len(self.only_a)} unit(s) only A scored, {len(self.only_b)} only B "
                "scored") if self.only_a or self.only_b else ""
        lines = [f"{self.task:32s} {self.protocol:13s} n={self.n_common} {self.unit} "
                 f"(A {self.n_a}, B {self.n_b}; {self.n_clusters} bootstrap clusters){drop}"]
        lines += [f"    {metric:18s} {d.diff:9.3f} " + (
                  f"[CI n/a: {d.na_reason}]" if d.na_reason else
                  f"[{d.ci_low:9.3f}, {d.ci_high:9.3f}]  p={d.p_value:.4f}")
                  for metric, d in self.diffs.items()]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the dropped unit lists are kept)."""
        return {"task": self.task, "protocol": self.protocol, "unit": self.unit,
                "n_a": self.n_a, "n_b": self.n_b, "n_common": self.n_common,
                "n_clusters": self.n_clusters, "only_a": self.only_a, "only_b": self.only_b,
                "diffs": {k: v.to_dict() for k, v in self.diffs.items()}}


def compare_pair(a: Result, b: Result, n_boot: int = 1000, seed: int = 42,
                 level: float = 0.95) -> Comparison:
    """Paired patient bootstrap of every metric of ``a`` minus ``b`` (see
    :func:`cardiobench.stats.paired_bootstrap`) over the units both results scored.

    Both results need their predictions loaded (``load_results(..., with_predictions=True)``)
    and must be the same task; units are joined on the task's unit column (``patient_id`` for
    tasks scored per patient, e.g. CAMUS EF) and their ground truth must agree.
    """
    from cardiobench.report import task_of

    if a.task != b.task:
        raise ValueError(f"cannot pair results of different tasks: {a.task} vs {b.task}")
    why = same_labels(a, b)
    if why:
        raise ValueError(why)
    if a.predictions is None or b.predictions is None:
        raise ValueError("both results need predictions (load_results(..., with_predictions=True))")
    task = task_of(a.task, [a, b])
    key = task.unit_column()
    pa, pb = a.predictions.copy(), b.predictions.copy()
    for p, who in ((pa, "A"), (pb, "B")):
        if key not in p or "patient_id" not in p:
            raise ValueError(f"{a.task}: predictions of {who} lack column {key!r} or 'patient_id'")
        p[key] = p[key].astype(str)
    # per-patient tasks join on patient_id itself; otherwise B's patient column would duplicate A's
    right = pb if key == "patient_id" else pb.drop(columns=["patient_id"])
    df = pa.merge(right, on=key, suffixes=("_a", "_b"), validate="one_to_one")
    ua, ub = set(pa[key]), set(pb[key])
    if len(df) == 0:
        raise ValueError(f"{a.task}: the two results share no units ({len(ua)} vs {len(ub)})")
    if not (df["y_true_a"].astype(str) == df["y_true_b"].astype(str)).all():
        raise ValueError(f"{a.task}: ground truth differs between the two results")
    df = df.rename(columns={"y_true_a": "y_true"})
    fa = task.type.metric_fn(task, df, "_a")
    fb = task.type.metric_fn(task, df, "_b")
    clusters = df["patient_id"].astype(str).to_numpy()
    diffs = stats.paired_bootstrap(fa, fb, len(df), clusters, n_boot, seed, level)
    n_clusters = len(set(clusters))
    if n_clusters < stats.MIN_CLUSTERS:
        why = f"{n_clusters} paired bootstrap clusters, fewer than {stats.MIN_CLUSTERS}"
        diffs = {k: dataclasses.replace(d, ci_low=math.nan, ci_high=math.nan, p_value=math.nan,
                                        na_reason=why) for k, d in diffs.items()}
    return Comparison(task=a.task, protocol=a.protocol, unit=key, n_a=len(ua), n_b=len(ub),
                      n_common=len(df), n_clusters=n_clusters,
                      only_a=sorted(ua - ub), only_b=sorted(ub - ua), diffs=diffs)


def compare_results(a: Result, b: Result, n_boot: int = 1000, seed: int = 42,
                    level: float = 0.95) -> dict[str, stats.PairedDiff]:
    """The per-metric differences of :func:`compare_pair` alone (kept for existing callers)."""
    return compare_pair(a, b, n_boot, seed, level).diffs


def match_encoder(r: Result, name: str) -> bool:
    """Whether ``name`` designates the result's encoder: its ``encoder_key`` or display name."""
    return name in (r.encoder_key, r.encoder_name)


class Comparisons(list):
    """The comparisons :func:`compare_suite` made (a ``list[Comparison]``), plus ``refused``:
    one line per (task, protocol) both encoders scored but that could not be paired (different
    labels), so a caller can say so."""

    def __init__(self, items: list[Comparison] = (), refused: list[str] = ()):  # type: ignore[assignment]
        super().__init__(items)
        self.refused: list[str] = list(refused)


def compare_suite(results: list[Result], a: str, b: str, task: str | None = None,
                  n_boot: int = 1000, seed: int = 42,
                  refuse_unpairable: bool = False) -> Comparisons:
    """Every (task, protocol) that both encoders ``a`` and ``b`` scored with status ``ok``.

    ``a``/``b`` match an ``encoder_key`` or a display name; a display name shared by several
    configurations raises ``ValueError`` (pass the key instead). A pair scored on different
    labels is left out and named in the returned list's ``refused``; so is, with
    ``refuse_unpairable``, a pair whose units or truth cannot be paired (else its
    ``ValueError`` propagates).
    """
    by: dict[str, dict[tuple[str, str], Result]] = {a: {}, b: {}}
    for name in (a, b):
        keys = {r.encoder_key for r in results if match_encoder(r, name)}
        if len(keys) > 1:
            raise ValueError(f"{name!r} names several encoder configurations {sorted(keys)}; "
                             "pass one encoder_key")
        for r in results:
            # alignment results hold prompt scores, not predictions: nothing to pair
            if r.status == "ok" and r.predictions is not None and r.protocol != "alignment" \
                    and tabulated(r.protocol) and match_encoder(r, name) \
                    and (task is None or r.task == task):
                by[name][(r.task, r.protocol)] = r
    out, refused = [], []
    for k in sorted(set(by[a]) & set(by[b])):
        why = same_labels(by[a][k], by[b][k])
        if why:
            refused.append(f"{k[1]} {why}")
            continue
        try:
            out.append(compare_pair(by[a][k], by[b][k], n_boot=n_boot, seed=seed))
        except ValueError as exc:
            if not refuse_unpairable:
                raise
            refused.append(f"{k[1]} {exc}")
    return Comparisons(out, refused)
