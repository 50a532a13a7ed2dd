"""Label efficiency: how much labelled data a probe needs on top of the frozen embedding.

The linear probe or kNN (``runner``) is trained on nested random subsets of the train split and
scored on the whole test split, for a grid of budgets:

* **classification** (``budgets_per_class``, then ``all``): ``b`` labelled patients of every
  class. Per seed the train patients are put in a random order; walking it, a patient is taken
  while any class of its rows has fewer than ``b`` patients taken, so every class reaches ``b``
  (a class with fewer train patients is taken whole; a patient whose videos show two classes
  counts for both, so a class may pass ``b``). A budget larger than the largest class is
  **skipped** (it would be ``all``, which is on the curve).
* **regression** (``fractions``): the first ``⌊f · N⌋`` of the ``N`` train patients in the seed's
  order. A fraction below one patient is **n/a**.

Sampling is by patient (all of a patient's videos enter together) and **nested**: for one seed a
larger budget holds every patient of a smaller one (both walk the same order; for the per-class
rule a patient taken at ``b`` is taken at every ``b' > b``). Seed ``s`` orders the patients with
``numpy.random.default_rng([seed, s]).permutation`` of their sorted ids, ``s = 0 … seeds − 1``.

Fitting, tuned on val as the full probe is: the linear probe chooses its strength on the **whole
val split** and is refit on the **labelled subset alone**; kNN's gallery is the labelled subset
and ``k`` (at most the gallery's size) is chosen by the val rows' MAE or accuracy (a subset of one
patient per class cannot be cross-validated, which is how the in-dataset kNN chooses). Val labels
choose a hyper-parameter and are never trained on; they are not counted in the budget. A subset
whose labels hold one class cannot train a classifier: n/a with that reason.

Scoring, per budget: each seed's model is scored on the test units by the task's rule; the value
is the **mean over seeds**, its interval the percentile interval of a bootstrap that draws the
test patients (clusters, as every interval) and the seeds with replacement in each replicate
(:func:`cardiobench.stats.bootstrap_mean_over_fits`), with the n/a rules of every interval. The
result's own metrics are the full train split's fit (the curve's ``all``/100 % point), so its
predictions are those of that fit.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from cardiobench import stats
from cardiobench.hashing import sha256_lines
from cardiobench.protocols.config_schema import Field
from cardiobench.protocols.over_runners import RUNNER_DEFAULTS, RUNNER_FIELDS, OverRunners
from cardiobench.protocols.runners import (Catalogue, EvaluationError,
                                           NotApplicable, Protocol, RowData, Scoring)

if TYPE_CHECKING:  # pragma: no cover
    from cardiobench.protocols.tasks import Task

log = logging.getLogger(__name__)

BUDGETS_PER_CLASS: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
FRACTIONS: tuple[float, ...] = (0.01, 0.02, 0.05, 0.10, 0.25, 0.50, 1.0)
SEEDS = 5


@dataclass
class Budget:
    """One point of a learning curve: its name, kind and size, and per seed the labelled patients
    in the order they were drawn (``status`` ``skipped`` or ``not_applicable`` with a reason)."""

    name: str
    kind: str  # "per_class" | "fraction" | "all"
    size: float | None
    subsets: list[np.ndarray] = field(default_factory=list)
    status: str = "ok"
    reason: str | None = None
    notes: list[str] = field(default_factory=list)


def patient_orders(patients: Sequence[str] | np.ndarray, seeds: int, seed: int) -> list[np.ndarray]:
    """Per seed ``s``, the distinct ``patients`` (sorted ids) in the order of
    ``default_rng([seed, s]).permutation``."""
    ids = np.unique(np.asarray(patients).astype(str))
    return [ids[np.random.default_rng([seed, s]).permutation(len(ids))] for s in range(seeds)]


def fraction_budgets(patients: Sequence[str] | np.ndarray, fractions: Sequence[float], seeds: int,
                     seed: int) -> list[Budget]:
    """Budgets that label a share ``f`` of the train patients: the first ``⌊f · N⌋`` of each
    seed's order (module docstring); n/a below one patient."""
    orders = patient_orders(patients, seeds, seed)
    n_all = len(orders[0])
    out = []
    for f in fractions:
        name = f"{100 * f:g} %"
        n = math.floor(f * n_all + 1e-9)
        if n < 1:
            out.append(Budget(name, "fraction", float(f), status="not_applicable",
                              reason=f"{name} of {n_all} train patients is {f * n_all:.2g} "
                                     "patient: below one labelled example"))
            continue
        out.append(Budget(name, "fraction", float(f), [o[:n] for o in orders]))
    return out


def _walk(order: np.ndarray, classes_of: Mapping[str, frozenset[str]], b: int) -> np.ndarray:
    """The patients of ``order`` taken while any of their classes has fewer than ``b``."""
    count: dict[str, int] = {}
    taken = []
    for p in order:
        cs = classes_of[p]
        if any(count.get(c, 0) < b for c in cs):
            taken.append(p)
            for c in cs:
                count[c] = count.get(c, 0) + 1
    return np.asarray(taken, dtype=order.dtype)


def per_class_budgets(patients: Sequence[str] | np.ndarray, labels: Sequence[str],
                      budgets: Sequence[int], seeds: int, seed: int) -> list[Budget]:
    """Budgets of ``b`` labelled patients per class, then ``all`` (module docstring); ``labels``
    are the class names of the train rows of ``patients``."""
    pats = np.asarray(patients).astype(str)
    classes_of: dict[str, set[str]] = {}
    for p, c in zip(pats, labels):
        classes_of.setdefault(p, set()).add(str(c))
    frozen = {p: frozenset(cs) for p, cs in classes_of.items()}
    size: dict[str, int] = {}
    for cs in frozen.values():
        for c in cs:
            size[c] = size.get(c, 0) + 1
    largest = max(size.values(), default=0)
    orders = patient_orders(pats, seeds, seed)
    out = []
    for b in budgets:
        name = f"{b} per class"
        if b > largest:
            out.append(Budget(name, "per_class", float(b), status="skipped",
                              reason=f"larger than the train split: its largest class has "
                                     f"{largest} patients ('all' takes them)"))
            continue
        capped = [f"{c}: {n} train patients, all taken" for c, n in sorted(size.items()) if n < b]
        out.append(Budget(name, "per_class", float(b), [_walk(o, frozen, b) for o in orders],
                          notes=capped))
    out.append(Budget("all", "all", None, [o.copy() for o in orders]))
    return out


def subset_fingerprint(patients: Sequence[str] | np.ndarray) -> str:
    """First 12 hex of SHA-256 over the sorted patient ids joined by newlines (UTF-8): which
    patients a subset labelled, whatever the order they were drawn in."""
    return sha256_lines(sorted(np.asarray(patients).astype(str).tolist()))[:12]


def _chosen(record: Mapping[str, Any]) -> Any:
    """The hyper-parameter a fit chose (the probe's strength, kNN's k)."""
    return record.get("chosen", record.get("k"))


class LabelEfficiency(OverRunners):
    """The chosen runner on nested patient subsets of train over seeds (module docstring)."""

    name = "label_efficiency"
    definition = ("Label efficiency: the linear probe (strength chosen on val, refit on the "
                  "labelled subset alone) or kNN (gallery = the subset, k chosen on val) trained "
                  "on nested, patient-grouped random subsets of train — b patients per class, or "
                  "a share of the patients for values — over several seeds; per budget the mean "
                  "test metric over seeds, its interval resampling seeds and test patients.")
    order = 70
    defaults = {**RUNNER_DEFAULTS, "seeds": SEEDS,
                "budgets_per_class": list(BUDGETS_PER_CLASS), "fractions": list(FRACTIONS)}
    fields = {**RUNNER_FIELDS,
              "seeds": Field("int", low=2, high=1000,
                             note="the interval resamples seeds: at least two"),
              "budgets_per_class": Field("ints", low=1, high=1_000_000),
              "fractions": Field("floats", low=0.0, high=1.0, low_open=True,
                                 note="a share of the train patients")}
    fitted = True
    tabulated = False
    hidden_config = ("alphas", "Cs", "k_grid", "runners")

    @classmethod
    def expand(cls, task: Task, config: Mapping[str, Any], catalogue: Catalogue
               ) -> list[tuple[Task, dict[str, Any], Task | None]]:
        """One entry per runner (``runner`` if the config names one, else ``runners``)."""
        runners = cls.runners_of(config)
        return [(task, {**config, "runner": r}, None) for r in runners]

    @classmethod
    def variant(cls, cfg: Mapping[str, Any]) -> str | None:
        """The runner: one curve per runner and task."""
        return cls.runner_name(cfg)

    # -- fitting ---------------------------------------------------------------------------------
    def _fit(self, data: RowData, labelled: np.ndarray) -> Any:
        """The runner fitted on the ``labelled`` rows (a mask of train rows), tuned as the module
        docstring says; raises :class:`NotApplicable` where it cannot be trained."""
        task, X, y = data.task, data.X, data.y
        val = data.split == "val"
        if not val.any():
            raise EvaluationError(f"{task.name}: label efficiency tunes on val, and there are no "
                                  "val rows")
        if self.cfg["runner"] == "knn":
            return task.type.fit_knn(task, X[labelled], y[labelled], data.patients[labelled],
                                     self.cfg, val=(X[val], y[val]))
        return task.type.fit_linear(task, X[labelled], y[labelled], X[val], y[val],
                                    {**self.cfg, "refit": "train"})

    def fit(self, data: RowData) -> None:
        """The full train split's fit (the result's own outputs: the curve's last point)."""
        train = data.split == "train"
        if not train.any():
            raise NotApplicable(f"{data.task.name}: no train rows with embeddings")
        self.full = self._fit(data, train)
        self.record = {"runner": self.cfg["runner"], "full_train_split": self.full.record,
                       "labelled": "the whole train split (val chooses the hyper-parameter "
                                   "only)"}

    def predict(self, data: RowData) -> np.ndarray:
        """Outputs of the full train split's fit for every row."""
        return self.full.predict(data.X)

    # -- the curve -------------------------------------------------------------------------------
    def analyse(self, data: RowData, scoring: Scoring) -> dict[str, Any]:
        """Every budget's mean metric over seeds with its interval, labelled patients, and the
        n/a or skip reason (``extras["label_efficiency"]``)."""
        train = data.split == "train"
        task, pats = data.task, data.patients
        budgets = task.type.label_budgets(task, pats[train], data.y[train], self.cfg)
        boot = scoring.boot
        n_train = int(len(np.unique(pats[train])))
        full_key = subset_fingerprint(pats[train])
        # subset fingerprint -> (metric function of its fit's predictions, the fit's record)
        fits: dict[str, Any] = {full_key: (scoring.metric_fn(self.predict(data)),
                                           self.full.record)}
        curve = []
        for bud in budgets:
            entry: dict[str, Any] = {"budget": bud.name, "kind": bud.kind, "size": bud.size,
                                     "status": bud.status, "reason": bud.reason,
                                     "notes": bud.notes}
            if bud.status == "ok":
                try:
                    entry.update(self._budget(data, scoring, bud, fits))
                except NotApplicable as exc:
                    entry.update(status="not_applicable", reason=str(exc))
            curve.append(entry)
        # ci: reference draws units, not patients; the published evaluators have no learning
        # curve, so their per-replicate rounding is not applied here
        drawn = "the test patients" if boot.resampled is not None else "the test units"
        return {"label_efficiency": {
            "runner": self.cfg["runner"], "seeds": self.cfg["seeds"],
            "train_patients": n_train, "test_units": int(len(boot.clusters)),
            "interval": (f"percentile {boot.level:.0%} of {boot.n_boot} replicates, each drawing "
                         f"{drawn} and the seeds with replacement (seed {boot.seed}); value: "
                         "mean over seeds"),
            "budgets": curve}}

    def _budget(self, data: RowData, scoring: Scoring, bud: Budget,
                fits: dict[str, Any]) -> dict[str, Any]:
        """Fit (or reuse) every seed's model of ``bud``, score it, average over seeds."""
        train = data.split == "train"
        pats = data.patients
        fns, chosen, n_units, prints = [], [], [], []
        for subset in bud.subsets:
            key = subset_fingerprint(subset)
            if key not in fits:  # one fit per distinct subset (e.g. every seed of 'all')
                labelled = train & np.isin(pats, subset)
                try:
                    model = self._fit(data, labelled)
                    out = model.predict(data.X)
                    fits[key] = (scoring.metric_fn(out), model.record)
                except NotApplicable as exc:
                    fits[key] = exc
            got = fits[key]
            if isinstance(got, NotApplicable):
                raise got
            fn, record = got
            fns.append(fn)  # the same function for the same subset: bootstrapped once
            chosen.append(_chosen(record))
            n_units.append(int((train & np.isin(pats, subset)).sum()))
            prints.append(key)
        boot = scoring.boot
        res = stats.bootstrap_mean_over_fits(fns, len(boot.clusters), boot.resampled,
                                             boot.n_boot, boot.seed, boot.level)
        metrics = stats.qualify(res, boot.n_clusters, boot.labels, boot.min_clusters,
                                one_value=boot.one_value)
        point = [{k: float(v[0]) for k, v in fn(np.ones((1, len(boot.clusters)))).items()}
                 for fn in fns]
        n_pat = [int(len(s)) for s in bud.subsets]
        return {"n_patients": float(np.mean(n_pat)), "n_patients_per_seed": n_pat,
                "n_rows_per_seed": n_units, "subsets": prints, "chosen": chosen,
                "metrics": metrics,
                "per_seed": {k: [p[k] for p in point] for k in point[0]}}


PROTOCOL = Protocol.of(LabelEfficiency)
