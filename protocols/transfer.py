"""Cross-dataset transfer: a probe fitted on one dataset's task scores another dataset's task whose
label the catalogue declares the same.

**Pairs.** Two tasks may be paired when the catalogue declares their labels the same
(``Task.same_as``, followed both ways and transitively: ``Catalogue.equivalents``) and they belong
to different datasets; nothing is guessed from names. Each task is an *end* pooled and, where it
declares subsets (EchoNet-Pediatric: A4C and PSAX), once per subset, written
``echonet_pediatric/ef[A4C]``. A suite run of ``transfer`` makes, for every target task it lists,
one entry per declared (source end, target end) pair and per runner (``runners``: the linear probe
and kNN); ``pairs: ["SOURCE -> TARGET", ...]`` keeps only the pairs listed, and a listed pair
whose labels are not declared the same is refused with the declared pairs. The entry fits on the
source (the evaluator gives the runner the source's rows) and is scored under the target. A
library call of :func:`~cardiobench.protocols.evaluate.evaluate` that names no ``label_group``
(no suite expanded it) is checked against the two tasks' own ``same_as``.

**Fit and score.** The runner is the in-dataset one, tuned as in-dataset on the *source*: the
linear probe chooses its strength on the source's val and is refit on the source's train+val;
kNN's gallery is the source's train+val, ``k`` by grouped cross-validation there. It predicts
every target row; rows are aggregated by the *target's* rule (CAMUS per patient) and scored on
the target's test units. The same runner fitted in-dataset on the target's train/val scores the
same units, so the result holds the transferred metrics (``metrics``), the in-dataset ones
(``extras["in_dataset"]``) and their paired bootstrap difference, transferred − in-dataset, on
the same replicates of the same test patients (``extras["paired_difference"]``); the predictions
CSV has the in-dataset outputs beside the transferred ones (``y_pred_in_dataset``, …).

**Shifted scales.** Regression results carry the mean bias (calibration-in-the-large) beside the
MAE: paediatric EF sits higher than adult EF. The probe is **not re-centred** by default;
``recentre: true`` shifts the transferred values so that their mean over the target's train+val
rows equals the target labels' mean there (an intercept fitted on target labels: the result is
then no longer label-free on the target, and says so in ``protocol_record``).

**Classes.** View tasks share one vocabulary (``manifest.VIEWS``) onto which every harmoniser
maps its dataset's views: the transferred probe outputs every class of it. The classes the
source's train+val labels hold and those the target's test units hold are recorded
(``extras["classes"]``), with the ones each side lacks: a target class the source never saw
cannot be predicted, a source class absent from the target can only be a wrong answer; neither is
dropped from the scoring.

**n/a.** A source without train units, or whose labels hold one class, and a target without test
units are ``not_applicable`` with the reason; an in-dataset runner that cannot be fitted leaves
the transferred score standing, the comparison n/a with its reason.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from cardiobench.protocols.config_schema import Field, fields_of
from cardiobench.protocols.over_runners import (RUNNER_DEFAULTS, RUNNER_FIELDS, RUNNERS,
                                                OverRunners)
from cardiobench.protocols.runners import (Catalogue, EvaluationError,
                                           NotApplicable, Protocol, RowData, Runner, Scoring,
                                           slug)

if TYPE_CHECKING:  # pragma: no cover
    from cardiobench.protocols.tasks import Task

log = logging.getLogger(__name__)

#: suffix of the in-dataset columns in a transfer's predictions CSV
IN_DATASET = "_in_dataset"

_END = re.compile(r"^\s*([^\[\]\s]+)\s*(?:\[\s*([^\[\]\s]+)\s*\])?\s*$")


def end_name(task: str, subset: str | None) -> str:
    """How a transfer end is written: ``task`` or ``task[subset]``."""
    return f"{task}[{subset}]" if subset else task


def parse_end(text: str) -> tuple[str, str | None]:
    """``"task[subset]"`` → ``(task, subset)``; ``"task"`` → ``(task, None)``."""
    m = _END.match(text)
    if not m:
        raise EvaluationError(f"transfer end {text!r}: expected 'dataset/endpoint' or "
                              "'dataset/endpoint[subset]'")
    return m.group(1), m.group(2)


def ends(task: Task) -> list[str | None]:
    """The subsets a task is a transfer end as: pooled (``None``), then each declared subset."""
    return [None, *task.subsets]


def declared_pairs(target: Task, catalogue: Catalogue
                   ) -> list[tuple[Task, str | None, str | None]]:
    """``(source task, source subset, target subset)`` of every declared pair into ``target``:
    sources are the catalogue's equivalents of ``target`` from other datasets, in catalogue
    order, each end of each side."""
    out = []
    for src in catalogue.equivalents(target.name):
        if src.dataset == target.dataset:
            continue
        for t_sub in ends(target):
            for s_sub in ends(src):
                out.append((src, s_sub, t_sub))
    return out


def _pair_names(task: Task, catalogue: Catalogue) -> tuple[list[str], list[str]]:
    """The declared pairs from and into ``task``'s ends, written ``SOURCE -> TARGET``."""
    into = [f"{end_name(s.name, ss)} -> {end_name(task.name, ts)}"
            for s, ss, ts in declared_pairs(task, catalogue)]
    from_ = [f"{end_name(task.name, ss)} -> {end_name(t.name, ts)}"
             for t in catalogue.equivalents(task.name) if t.dataset != task.dataset
             for s, ss, ts in declared_pairs(t, catalogue) if s.name == task.name]
    return from_, into


def check_pair(text: str, catalogue: Catalogue) -> tuple[Task, str | None, Task, str | None]:
    """A pair ``"SOURCE -> TARGET"`` of the suite, checked against the catalogue: both ends
    exist, belong to different datasets and their labels are declared the same; otherwise
    :class:`EvaluationError` lists the declared pairs of the ends named."""
    parts = text.split("->")
    if len(parts) != 2:
        raise EvaluationError(f"transfer pair {text!r}: expected 'SOURCE -> TARGET'")
    (s_name, s_sub), (t_name, t_sub) = parse_end(parts[0]), parse_end(parts[1])
    try:
        src, tgt = catalogue.task(s_name), catalogue.task(t_name)
        src.subset(s_sub)
        tgt.subset(t_sub)
    except KeyError as exc:
        raise EvaluationError(f"transfer pair {text!r}: {exc.args[0]}") from None
    declared = {(s.name, ss, ts) for s, ss, ts in declared_pairs(tgt, catalogue)}
    if (src.name, s_sub, t_sub) not in declared:
        from_, _ = _pair_names(src, catalogue)
        _, into = _pair_names(tgt, catalogue)
        why = (f"{src.name} and {tgt.name} are of one dataset: not a cross-dataset transfer"
               if src.dataset == tgt.dataset else
               f"the catalogue does not declare the labels of {src.name} and {tgt.name} the "
               "same (Task.same_as)")
        raise EvaluationError(
            f"transfer pair {text!r} refused: {why}. Declared pairs from {src.name}: "
            f"{'; '.join(from_) or 'none'}. Declared pairs into {tgt.name}: "
            f"{'; '.join(into) or 'none'}")
    return src, s_sub, tgt, t_sub


#: fitted runners by what they were fitted on, with the bytes of their rows' embeddings (a kNN
#: keeps its gallery): a suite fits each source and each target's in-dataset runner once, not
#: once per pair (fitting is deterministic given rows and config); the least recently used go
#: first beyond :data:`_FITTED_BYTES`
_FITTED: OrderedDict[str, tuple[Runner, int]] = OrderedDict()
_FITTED_BYTES = 512 * 2 ** 20


def _fitted(runner: type[Runner], cfg: Mapping[str, Any], data: RowData) -> Runner:
    """``runner`` fitted on ``data`` with ``cfg``, reused where the same rows (ids, splits,
    labels, embedding values) and the same settings were fitted before; a fit that raises is not
    kept."""
    h = hashlib.sha256(runner.name.encode())
    h.update(json.dumps({k: cfg.get(k) for k in sorted(fields_of(runner))}, sort_keys=True,
                        default=str).encode())
    h.update("\n".join(data.rows["sample_id"].astype(str)).encode())
    h.update("\n".join(data.split).encode())
    h.update(np.ascontiguousarray(data.y).tobytes())
    h.update(np.ascontiguousarray(data.X).tobytes())
    key = h.hexdigest()
    if key in _FITTED:
        _FITTED.move_to_end(key)
        return _FITTED[key][0]
    fitted = runner(cfg)
    fitted.fit(data)
    _FITTED[key] = (fitted, int(data.X.nbytes))
    while len(_FITTED) > 1 and sum(b for _, b in _FITTED.values()) > _FITTED_BYTES:
        _FITTED.popitem(last=False)
    return fitted


def _linked(a: Task, b: Task) -> bool:
    """Whether the two tasks' own ``same_as`` declarations link them (directly, or both to one
    task)."""
    return a.same_as == b.name or b.same_as == a.name or (
        a.same_as is not None and a.same_as == b.same_as)


def classes_seen(task: Task, y: np.ndarray) -> list[str]:
    """The task's classes present in encoded labels ``y``, in the task's class order."""
    present = set(np.asarray(y).astype(int).tolist())
    return [c for i, c in enumerate(task.classes) if i in present]


class Transfer(OverRunners):
    """A source task's in-dataset runner scoring a target task (module docstring)."""

    name = "transfer"
    definition = ("Cross-dataset transfer: the linear probe or kNN of a source task (tuned on "
                  "the source as in-dataset) scores a target task of another dataset whose label "
                  "the catalogue declares the same, on the target's test units and by its "
                  "aggregation rule, beside the in-dataset runner with their paired-bootstrap "
                  "difference.")
    order = 60
    defaults = {**RUNNER_DEFAULTS,
                "pairs": None, "recentre": False, "source": None, "source_subset": None,
                "target_subset": None, "label_group": None}
    fields = {**RUNNER_FIELDS,
              "pairs": Field("texts", nullable=True,
                             note="'SOURCE -> TARGET', an end written task or task[subset]; "
                                  "null: every declared pair"),
              "recentre": Field("bool"),
              "source": Field("text", nullable=True, note="set for each entry by the suite"),
              "source_subset": Field("text", nullable=True),
              "target_subset": Field("text", nullable=True),
              "label_group": Field("text", nullable=True)}
    fitted = True
    needs_source = True
    tabulated = False
    hidden_config = ("alphas", "Cs", "k_grid", "runners", "pairs")

    @classmethod
    def expand(cls, task: Task, config: Mapping[str, Any], catalogue: Catalogue
               ) -> list[tuple[Task, dict[str, Any], Task | None]]:
        """One entry per declared pair into ``task`` (or per listed pair) and per runner."""
        runners = cls.runners_of(config)
        if config.get("pairs"):
            chosen = []
            for text in config["pairs"]:  # every listed pair is checked, whatever the target
                src, s_sub, tgt, t_sub = check_pair(text, catalogue)
                if tgt.name == task.name:
                    chosen.append((src, s_sub, t_sub))
        else:
            chosen = declared_pairs(task, catalogue)
        group = catalogue.equivalents(task.name)[0].name
        return [(task.subset(t_sub),
                 {**config, "runner": r, "source": src.name, "source_subset": s_sub,
                  "target_subset": t_sub, "label_group": group}, src.subset(s_sub))
                for src, s_sub, t_sub in chosen for r in runners]

    @classmethod
    def variant(cls, cfg: Mapping[str, Any]) -> str | None:
        """``[on_<target subset>--]from_<source end>--<runner>``."""
        parts = [f"on_{cfg['target_subset']}" if cfg.get("target_subset") else "",
                 "from_" + slug(end_name(str(cfg.get("source")), cfg.get("source_subset"))),
                 cls.runner_name(cfg)]
        return "--".join(slug(p) for p in parts if p)

    # -- fit and predict -------------------------------------------------------------------------
    def fit(self, data: RowData) -> None:
        """Fit the runner on the source (transferred) and on the target's train/val
        (in-dataset, for the comparison)."""
        cfg, src, task = self.cfg, self.source, data.task
        if src is None:
            raise EvaluationError(f"{task.name}: transfer needs the source task's rows")
        name = end_name(src.task.name, cfg["source_subset"])
        if cfg["source"] not in (None, src.task.name):
            raise EvaluationError(f"{task.name}: the config names source {cfg['source']} but "
                                  f"the evaluator was given {src.task.name}")
        if src.task.dataset == task.dataset:
            raise EvaluationError(f"{name} and {task.name} are of one dataset: a transfer "
                                  "crosses datasets")
        if src.task.type is not task.type or tuple(src.task.classes) != tuple(task.classes):
            raise EvaluationError(f"{name} ({src.task.type.name}) and {task.name} "
                                  f"({task.type.name}) cannot share a label")
        if cfg["label_group"] is None and not _linked(src.task, task):
            # a suite checks pairs against the whole catalogue (and sets label_group); a library
            # call is checked against what the two tasks themselves declare
            raise EvaluationError(
                f"transfer {name} -> {task.name} refused: neither declares the other's label the "
                f"same (same_as: {src.task.name} -> {src.task.same_as}, {task.name} -> "
                f"{task.same_as}); a suite lists the catalogue's declared pairs")
        if cfg["recentre"]:
            try:
                task.type.recentre(np.zeros(1), np.zeros(1), np.ones(1, dtype=bool))
            except ValueError as exc:
                raise EvaluationError(f"{task.name}: recentre: {exc}") from None
        tr, va = src.fitting_rows()
        if not tr.any():
            raise NotApplicable(f"the source {name} has no train units with embeddings")
        runner = RUNNERS[cfg["runner"]]
        try:
            self.transferred = _fitted(runner, cfg, src)
        except (NotApplicable, EvaluationError) as exc:
            raise NotApplicable(f"the source {name} cannot train the {cfg['runner']}: "
                                f"{exc}") from exc
        self.in_dataset: Runner | None = None
        self.in_dataset_na: str | None = None
        try:
            self.in_dataset = _fitted(runner, cfg, data)
        except (NotApplicable, EvaluationError) as exc:
            self.in_dataset_na = f"in-dataset {cfg['runner']}: {exc}"
        self.record = {
            "source": name, "runner": cfg["runner"],
            "source_rows": {"train": int(tr.sum()), "val": int(va.sum())},
            "source_patients": int(len(np.unique(src.patients[tr | va]))),
            "transferred": self.transferred.describe(),
            "in_dataset": self.in_dataset.describe() if self.in_dataset else None,
            "recentred": False}

    def predict(self, data: RowData) -> np.ndarray:
        """The source-fitted runner's outputs for every target row (re-centred only if asked)."""
        out = self.transferred.predict(data)
        if self.cfg["recentre"]:
            fit_rows = np.isin(data.split, ("train", "val"))
            shifted = data.task.type.recentre(out, data.y, fit_rows)
            self.record["recentred"] = {
                "shift": float(np.mean(shifted - out)),
                "rule": "mean of the transferred values over the target's train+val rows set "
                        "to the mean of their labels"}
            out = shifted
        return out

    # -- the comparison --------------------------------------------------------------------------
    def analyse(self, data: RowData, scoring: Scoring) -> dict[str, Any]:
        """The in-dataset metrics on the same units, the paired difference and the classes."""
        cfg, task, src = self.cfg, data.task, self.source
        out: dict[str, Any] = {"transfer": {
            "source": end_name(str(cfg["source"]), cfg["source_subset"]),
            "target": end_name(task.name, cfg["target_subset"]), "runner": cfg["runner"],
            "label_group": cfg["label_group"], "recentred": bool(cfg["recentre"])}}
        if task.classes and src is not None:
            fit_src = np.isin(src.split, ("train", "val"))
            seen = classes_seen(task, src.y[fit_src])
            test = classes_seen(task, data.y[data.split == "test"])
            out["classes"] = {"source_train_val": seen, "target_test": test,
                              "target_lacks": [c for c in seen if c not in test],
                              "source_lacks": [c for c in test if c not in seen]}
        if self.in_dataset is None:
            out["in_dataset"] = {"status": "not_applicable", "reason": self.in_dataset_na}
            return out
        ref = scoring.score(self.in_dataset.predict(data))
        out["in_dataset"] = {"status": "ok", "metrics": ref.metrics, "headline": ref.headline}
        out["paired_difference"] = scoring.boot.paired(scoring.main.metric_fn, ref.metric_fn)
        out["paired_difference_definition"] = ("transferred − in-dataset, on the same test units "
                                               "and the same bootstrap replicates")
        scoring.attach(ref.predictions, IN_DATASET)
        return out


PROTOCOL = Protocol.of(Transfer)
