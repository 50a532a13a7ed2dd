"""ONE evaluator for every task and protocol, driven by :class:`~cardiobench.protocols.tasks.Task`.

``evaluate`` = select the task's rows → align embeddings → the protocol's **runner** fits on
train/val and outputs per-row values, P(positive), class probabilities or alignment scores
(:mod:`~cardiobench.protocols.runners`) → aggregate rows to the evaluation unit (task rule) → the
**scorer** of that output and task type decides, computes metrics with patient-clustered bootstrap
CIs on the test units and the trivial baseline, and tabulates predictions
(:mod:`~cardiobench.protocols.scorers`) → subgroups → :class:`~cardiobench.results.Result`.

Protocols (one runner each): ``linear_probe`` (ridge/logistic, val-selected, refit on
train+val), ``zero_shot`` (prompts; needs a text tower, otherwise a ``not_applicable`` result is
returned), ``knn`` (nearest neighbours in the train+val gallery) and ``alignment`` (text tower
needed): regression → correlation of the test clips' projection on the prompt value axis
(:func:`~cardiobench.protocols.alignment.ef_text_axis`) with the label; binary → AUROC and
standardised mean difference of the margin on the positive−negative prompt direction; view →
text→video retrieval (each class's prompt centroid queries the test videos; recall@1/5/10, mAP;
no bootstrap, the interval fields are null). Alignment scores individual rows (videos/images);
for aggregated tasks the unit mean of the row scores is used.

Two hooks serve protocols beyond one task's split, without the evaluator naming them: a runner
that ``needs_source`` (``transfer``) is given the rows of another task (:class:`SourceData`,
supplied by :func:`evaluate_all` from the entry's ``source``) and fits on them; and every
runner's :meth:`~cardiobench.protocols.runners.Runner.analyse` may score further outputs by the
task's rule (:class:`_Scoring`: the in-dataset comparison of a transfer, the learning curve of
``label_efficiency``) and add what it finds to the result's ``extras``. A transfer target
without test units is ``not_applicable`` (the pairs are declared, not chosen by data); any other
task without test units fails.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from cardiobench import stats, stats_reference
from cardiobench.embed.embeddings import Embeddings
from cardiobench.manifest import Manifest
from cardiobench.comparability import label_fingerprint
from cardiobench.results import Result, headline_status, provenance, write_result
from cardiobench.protocols import get_protocol, zero_shot
from cardiobench.protocols.runners import EvaluationError, NotApplicable, RowData, Runner
from cardiobench.protocols.scorers import Bootstrap, MetricFn, Scored, Scorer, Units
from cardiobench.protocols.tasks import Task

log = logging.getLogger(__name__)

__all__ = ["EvaluationError", "NotApplicable", "SourceData", "SuiteEntry", "evaluate",
           "evaluate_all", "defaults"]


def defaults(protocol: str) -> dict[str, Any]:
    """The full default config of ``protocol`` (shared bootstrap settings included)."""
    return get_protocol(protocol).runner.configure(None)


# ----------------------------------------------------------------------------- rows and units
def data_completeness(task: Task, manifest: Manifest, rows: pd.DataFrame,
                      pos: np.ndarray) -> dict[str, Any]:
    """What a result is computed from, against what it should be: samples ``prepare`` set aside
    and samples that failed to embed, per split, and test units expected vs scored."""
    excluded = getattr(manifest, "excluded", None)
    per_split = (excluded["split"].astype(str).value_counts().sort_index().to_dict()
                 if excluded is not None and len(excluded) else {})
    split = rows["split"].astype(str)
    failed = split[pos < 0].value_counts().sort_index().to_dict()
    unit = rows[task.unit_column()].astype(str)
    test = (split == "test").to_numpy()
    return {"excluded_by_prepare": {str(k): int(v) for k, v in per_split.items()},
            "embed_failed": {str(k): int(v) for k, v in failed.items()},
            "test_units_expected": int(unit[test].nunique()),
            "test_units_scored": int(unit[test & (pos >= 0)].nunique())}


def _rows(task: Task, manifest: Manifest, embeddings: Embeddings
          ) -> tuple[RowData, list[str], dict[str, Any]]:
    """The task's rows that have embeddings, the ids of those that have none, and the
    :func:`data_completeness` record (the caller decides what a split without rows means)."""
    rows = task.select(manifest.table)
    pos = embeddings.align(rows["sample_id"])
    completeness = data_completeness(task, manifest, rows, pos)
    missing = rows.loc[pos < 0, "sample_id"].astype(str).tolist()
    if missing:
        log.warning("%s: %d selected samples have no embedding (first: %s); they are excluded",
                    task.name, len(missing), missing[:5])
    rows, pos = rows[pos >= 0], pos[pos >= 0]
    return (RowData(task, rows, embeddings, pos, task.encode_labels(rows[task.label])), missing,
            completeness)


def _aggregate(task: Task, rows: pd.DataFrame, y: np.ndarray, out: np.ndarray) -> pd.DataFrame:
    """One row per evaluation unit: id, patient, split, y, mean of the row outputs."""
    ucol = task.unit_column()
    if rows[ucol].isna().any():
        bad = rows.loc[rows[ucol].isna(), "sample_id"].head(5).tolist()
        raise EvaluationError(f"{task.name}: unit column {ucol!r} empty for samples {bad}")
    df = pd.DataFrame({"unit": rows[ucol].astype(str).to_numpy(),
                       "sample_id": rows["sample_id"].astype(str).to_numpy(),
                       "patient_id": rows["patient_id"].astype(str).to_numpy(),
                       "split": rows["split"].astype(str).to_numpy(), "y": y})
    if "view" in rows:
        df["view"] = rows["view"].astype("string").to_numpy()
    out = np.asarray(out, dtype=np.float64)
    out_cols = [f"o{j}" for j in range(out.shape[1])] if out.ndim == 2 else ["o0"]
    df[out_cols] = out.reshape(len(df), -1)
    if task.aggregate == "none":
        return df
    g = df.groupby("unit", sort=False)
    for col in ("y", "split", "patient_id"):
        n_distinct = g[col].nunique()
        if (n_distinct > 1).any():
            bad = n_distinct[n_distinct > 1].index[:5].tolist()
            raise EvaluationError(f"{task.name}: {col} differs within units {bad}")
    agg = {c: "first" for c in ("sample_id", "patient_id", "split", "y") + (("view",) if "view" in df else ())}
    if "view" in df:  # a unit's view is every distinct view of its rows ("A2C+A4C"), not the first
        agg["view"] = lambda v: "+".join(sorted(v.dropna().astype(str).unique()))
    agg.update({c: "mean" for c in out_cols})
    res = g.agg(agg).reset_index()
    res["n_rows"] = g.size().to_numpy()
    return res


def _units(task: Task, data: RowData, out: np.ndarray, ci: str = "patient") -> Units:
    """Aggregated units; a single output column becomes a vector. Under ``ci: reference`` the
    units follow the published ground-truth file's order, which the reference bootstrap
    resamples in."""
    table = _aggregate(task, data.rows, data.y, out)
    if ci == "reference":
        from cardiobench.protocols.export import published_order

        ids = table["patient_id"] if task.export.id_source == "patient_id" else table["unit"]
        table = stats_reference.reference_order(table, ids, published_order(task.name))
    ocols = [c for c in table.columns if c.startswith("o") and c[1:].isdigit()]
    uo = table[ocols].to_numpy()
    return Units(task, table, uo[:, 0] if uo.shape[1] == 1 else uo)


def _subgroups(task: Task, rows: pd.DataFrame, preds: pd.DataFrame, fn: Any,
               n: int) -> dict[str, Any]:
    """Per-subgroup metrics of the test units (first row of each unit carries its labels)."""
    first = rows.assign(_unit=rows[task.unit_column()].astype(str)).drop_duplicates("_unit")
    first = first.set_index("_unit").loc[preds[task.unit_column()].astype(str)]
    return {sg.name: stats.subgroup_metrics(sg.labels(first).reset_index(drop=True), fn, n,
                                            order=sg.order).to_dict(orient="records")
            for sg in task.subgroups}


@dataclass
class _Scoring:
    """The task's scoring rule for further row outputs (:class:`~cardiobench.protocols.runners.
    Scoring`): aggregated, decided and scored on the test units as the result's own."""

    task: Task
    data: RowData
    cfg: Mapping[str, Any]
    runner: type[Runner]
    scorer: Scorer
    boot: Bootstrap
    main: Scored

    def units(self, out: np.ndarray) -> Units:
        """Row outputs aggregated to the task's units."""
        return _units(self.task, self.data, out, self.cfg["ci"])

    def score(self, out: np.ndarray) -> Scored:
        """Decide, bootstrap and tabulate row outputs ``out`` as the result's own."""
        return self.scorer.score(self.units(out), self.cfg, self.runner, self.boot)

    def metric_fn(self, out: np.ndarray) -> MetricFn:
        """The metric function over the test units of row outputs ``out`` (no bootstrap)."""
        units = self.units(out)
        te = units.mask("test")
        dec = self.scorer.decide(units, self.cfg, self.runner, self.boot)
        return self.scorer.metric_fn(units.y[te], self.scorer.test_outputs(units), dec)

    def attach(self, predictions: pd.DataFrame | None, suffix: str) -> None:
        """Add the output columns of ``predictions`` (same test units, same order) to the
        result's predictions, each name followed by ``suffix``."""
        own = self.main.predictions
        if own is None or predictions is None:
            return
        if len(predictions) != len(own):
            raise EvaluationError(f"{self.task.name}: {len(predictions)} predictions to attach "
                                  f"to {len(own)}")
        ids = {self.task.unit_column(), "patient_id", "y_true", "view"}
        for col in predictions.columns:
            if col not in ids:
                own[f"{col}{suffix}"] = predictions[col].to_numpy()


@dataclass(frozen=True)
class SourceData:
    """The task a ``needs_source`` runner is fitted on (a transfer's source, its declared subset
    applied), with its dataset's manifest and the encoder's embeddings of it."""

    task: Task
    manifest: Manifest
    embeddings: Embeddings


# ----------------------------------------------------------------------------- evaluate
def evaluate(task: Task, protocol: str, manifest: Manifest, embeddings: Embeddings,
             encoder: Any = None, config: Mapping[str, Any] | None = None,
             source: SourceData | None = None) -> Result:
    """Evaluate one (task, protocol) for one encoder's embeddings; see the module docstring.

    ``config`` overrides the runner's defaults (unknown keys raise); ``config["text_cache"]`` may
    pass a shared :class:`~cardiobench.protocols.zero_shot.TextEmbeddingCache`. ``source`` is
    the task a ``needs_source`` runner fits on (ignored by the others).
    """
    t0 = time.perf_counter()
    runner_cls = get_protocol(protocol).runner
    cfg = runner_cls.configure(config)
    cache = cfg.pop("text_cache", None) or zero_shot.TextEmbeddingCache()
    enc_desc = encoder.describe() if encoder is not None else dict(embeddings.encoder)
    for t, m in ((task, manifest), *(((source.task, source.manifest),) if source else ())):
        if m.dataset != t.dataset:
            raise EvaluationError(f"task {t.name} needs dataset {t.dataset}, got manifest "
                                  f"{m.dataset}")
    if runner_cls.needs_source and source is None:
        raise EvaluationError(f"{protocol} fits on a source task: none was given for "
                              f"{task.name} (a suite names it; see docs/metrics.md)")
    prov = dict(manifest_fingerprint=manifest.fingerprint,
                label_fingerprint=label_fingerprint(task.select(manifest.table), task.label),
                cache_fingerprint=embeddings.fingerprint,
                seed=cfg["seed"], device=str(getattr(encoder, "device", "cpu")), ci=cfg["ci"])
    prov.update(manifest.provenance())  # where the media were read from (a --raw override)
    if runner_cls.needs_source and source is not None:
        prov["source"] = {"task": source.task.name,
                          "manifest_fingerprint": source.manifest.fingerprint,
                          "label_fingerprint": label_fingerprint(
                              source.task.select(source.manifest.table), source.task.label),
                          "cache_fingerprint": source.embeddings.fingerprint}
    base = dict(task=task.name, dataset=task.dataset, protocol=protocol, encoder=enc_desc,
                variant=runner_cls.variant(cfg))

    def not_applicable(why: str) -> Result:
        log.info("%s %s not applicable: %s", task.name, protocol, why)
        return Result(**base, config={**cfg, "task": task.describe()}, status="not_applicable",
                      reason=why,
                      provenance=provenance(**prov, wall_time_s=time.perf_counter() - t0))

    if runner_cls.needs_text and (encoder is None or not getattr(encoder, "has_text", False)):
        return not_applicable("no encoder object given" if encoder is None
                              else f"{enc_desc.get('name')} has no text tower")
    data, missing, completeness = _rows(task, manifest, embeddings)
    if not (data.split == "test").any():
        why = f"{task.name}: no test rows with embeddings"
        if runner_cls.needs_source:  # a declared pair whose target has no test units here
            return not_applicable(f"the target has no test units ({why})")
        raise EvaluationError(why)
    runner = runner_cls(cfg, encoder, cache,
                        _rows(source.task, source.manifest, source.embeddings)[0]
                        if runner_cls.needs_source and source is not None else None)
    try:
        runner.fit(data)
        out = runner.predict(data)
    except NotApplicable as exc:
        return not_applicable(str(exc))

    units = _units(task, data, out, cfg["ci"])
    te = units.mask("test")
    boot = Bootstrap(units.table["patient_id"].to_numpy()[te], cfg["n_boot"], cfg["seed"],
                     cfg["level"], cfg["ci"], task.type.reference_decimals, labels=units.y[te],
                     min_clusters=cfg["min_clusters"], one_value=task.type.one_value)
    scorer = task.type.scorer(runner_cls.output)
    scored = scorer.score(units, cfg, runner_cls, boot)
    extras: dict[str, Any] = {"missing_embeddings": missing, "data_completeness": completeness,
                              "n_rows_per_unit": float(units.table["n_rows"].mean())
                              if "n_rows" in units.table else 1.0, **scored.extras}
    if task.subgroups and scorer.subgroups:
        extras["subgroups"] = _subgroups(task, data.rows, scored.predictions, scored.metric_fn,
                                         int(te.sum()))
    extras.update(runner.analyse(data, _Scoring(task, data, cfg, runner_cls, scorer, boot,
                                                scored)))

    cfg_out = {**{k: v for k, v in cfg.items() if k not in runner_cls.hidden_config},
               "protocol_record": {**runner.describe(), **scored.record},
               "headline": scored.headline, "baseline": scored.baseline_name,
               "task": task.describe(),
               "bootstrap": scored.bootstrap}
    head = scored.metrics.get(scored.headline, {}).get("value")
    log.info("%s %s %s: %s = %s", task.name, protocol, enc_desc.get("name"), scored.headline,
             head)
    status, reason = headline_status(scored.metrics, scored.headline)
    if reason:
        log.warning("%s %s: %s", task.name, protocol, reason)
    return Result(**base, status=status, reason=reason, config=cfg_out, metrics=scored.metrics,
                  baseline=scored.baseline or {},
                  extras=extras, n=int(te.sum()), n_samples=int((data.split == "test").sum()),
                  n_clusters=int(len(np.unique(boot.clusters))), predictions=scored.predictions,
                  provenance=provenance(**prov, wall_time_s=round(time.perf_counter() - t0, 3)))


# ----------------------------------------------------------------------------- many
@dataclass(frozen=True)
class SuiteEntry:
    """One (task, protocol, config) a suite asks for (:mod:`cardiobench.suite` expands them)."""

    task: Task
    protocol: str
    config: dict[str, Any]
    #: the task a ``needs_source`` protocol fits on (a transfer's source), else None
    source: Task | None = None


def evaluate_all(entries: Sequence[SuiteEntry], manifests: Mapping[str, Manifest],
                 embeddings: Mapping[str, Embeddings], encoder: Any,
                 results_dir: str | Path) -> list[Result]:
    """Evaluate every entry whose dataset has a manifest and embeddings; write one JSON +
    predictions CSV each (the leaderboard is the report layer's job). Datasets without data
    are logged (warning) and skipped; a text-less encoder gets ``not_applicable`` zero-shot and
    alignment results; a task that raises is written as ``status: failed`` with the error."""
    cache_dir = Path(results_dir) / "text_cache"
    cache = zero_shot.TextEmbeddingCache(cache_dir if encoder is not None and
                                         getattr(encoder, "has_text", False) else None)
    results = []
    skipped = set()
    for entry in entries:
        task, proto = entry.task, entry.protocol
        needed = [task.dataset] + ([entry.source.dataset] if entry.source is not None else [])
        absent = [d for d in needed if d not in manifests or d not in embeddings]
        if absent:  # a pair is run where both of its datasets are here
            skipped.update(absent)
            continue
        source = SourceData(entry.source, manifests[entry.source.dataset],
                            embeddings[entry.source.dataset]) if entry.source else None
        try:
            res = evaluate(task, proto, manifests[task.dataset], embeddings[task.dataset],
                           encoder, {**entry.config, "text_cache": cache}, source)
        except (EvaluationError, KeyError, ValueError) as exc:
            # one broken task must not hide the others: record it as failed, loudly
            log.error("%s %s failed: %s", task.name, proto, exc)
            res = Result(task=task.name, dataset=task.dataset, protocol=proto,
                         encoder=encoder.describe() if encoder is not None else
                         dict(embeddings[task.dataset].encoder), status="failed",
                         reason=str(exc), config={"task": task.describe()},
                         provenance=provenance(), variant=_variant(proto, entry.config))
        write_result(res, results_dir)
        results.append(res)
    if skipped:
        log.warning("no manifest/embeddings for %s: their tasks (and transfers from or to "
                    "them) were not run", sorted(skipped))
    return results


def _variant(protocol: str, config: Mapping[str, Any]) -> str | None:
    """The variant of a result that failed before its config was checked (best effort)."""
    try:
        return get_protocol(protocol).runner.variant(config)
    except (EvaluationError, KeyError, TypeError, ValueError):
        return None
