"""ONE evaluator for every task and protocol, driven by :class:`~cardiobench.protocols.tasks.Task`.

``evaluate`` = select the task's rows → align embeddings → protocol produces per-row outputs
(regression value, P(positive), or class probabilities) → aggregate rows to the evaluation unit
(task rule) → hard decision (binary) → metrics with patient-clustered bootstrap CIs on test units
→ trivial baseline → subgroups → :class:`~cardiobench.results.Result`.

Protocols: ``linear_probe`` (ridge/logistic, val-selected, refit on train+val), ``zero_shot``
(prompts; needs a text tower, otherwise a ``not_applicable`` result is returned), ``knn``
(retrieval by nearest neighbours in the train+val gallery) and ``alignment`` (text tower
needed): regression → correlation of the test clips' projection on the prompt value axis
(:func:`~cardiobench.protocols.alignment.ef_text_axis`) with the label; binary → AUROC and
standardised mean difference of the margin on the positive−negative prompt direction; view →
text→video retrieval (each class's prompt centroid queries the test videos; recall@1/5/10, mAP;
no bootstrap, the interval fields are null). Alignment scores individual rows (videos/images);
for aggregated tasks the unit mean of the row scores is used.
"""

from __future__ import annotations

import copy
import logging
import time
from functools import partial
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from cardiobench import stats
from cardiobench.embed.embeddings import Embeddings
from cardiobench.manifest import Manifest
from cardiobench.results import Result, provenance, write_result
from cardiobench.protocols import linear_probe as lp
from cardiobench.protocols import alignment, retrieval, zero_shot
from cardiobench.protocols.tasks import TASKS, Task, get_task

log = logging.getLogger(__name__)

PROTOCOLS: tuple[str, ...] = ("zero_shot", "linear_probe", "knn", "alignment")

DEFAULTS: dict[str, dict[str, Any]] = {
    "common": {"n_boot": 1000, "seed": 42, "level": 0.95},
    "zero_shot": {"order": "rank_mean_then_median", "top_fraction": zero_shot.TOP_FRACTION,
                  "decision": "threshold", "prompt_dir": None},
    "linear_probe": {"decision": "argmax", "class_weight_binary": "balanced",
                     "class_weight_multiclass": None, "alphas": list(lp.RIDGE_ALPHAS),
                     "Cs": list(lp.LOGISTIC_CS)},
    "knn": {"decision": "argmax", "k_grid": list(retrieval.K_GRID)},
    "alignment": {"prompt_dir": None, "ks": [1, 5, 10]},
}


class EvaluationError(ValueError):
    """A task cannot be evaluated on the data given (message names task, split and cause)."""


class NotApplicable(Exception):
    """The protocol does not apply to this task/data (e.g. a probe on a single-class label)."""


def _config(protocol: str, config: Mapping[str, Any] | None) -> dict[str, Any]:
    if protocol not in PROTOCOLS:
        raise EvaluationError(f"unknown protocol {protocol!r}; known: {PROTOCOLS}")
    cfg = {**DEFAULTS["common"], **copy.deepcopy(DEFAULTS[protocol])}
    unknown = set(config or {}) - set(cfg) - {"text_cache"}
    if unknown:
        raise EvaluationError(f"unknown {protocol} config keys {sorted(unknown)}")
    cfg.update(config or {})
    return cfg


# ----------------------------------------------------------------------------- protocol runners
def _run_probe(task: Task, X: np.ndarray, y: np.ndarray, split: np.ndarray,
               cfg: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
    tr, va = split == "train", split == "val"
    if not tr.any() or not va.any():
        raise EvaluationError(f"{task.name}: linear probe needs train and val rows "
                              f"(train {int(tr.sum())}, val {int(va.sum())})")
    if task.type == "regression":
        fit = lp.fit_ridge(X[tr], y[tr], X[va], y[va], tuple(cfg["alphas"]))
        return fit.model.predict(X), fit.record()
    n_cls = 2 if task.type == "binary" else len(task.classes)
    if len(np.unique(y[tr | va])) < 2:
        raise NotApplicable(f"train+val labels of {task.name} have a single class "
                            f"({task.classes[int(y[tr][0])] if task.classes else int(y[tr][0])})")
    cw = cfg["class_weight_binary"] if task.type == "binary" else cfg["class_weight_multiclass"]
    fit = lp.fit_logistic(X[tr], y[tr], X[va], y[va], np.arange(n_cls), tuple(cfg["Cs"]), cw)
    p = fit.model.predict_proba(X)
    return (p[:, 1] if task.type == "binary" else p), fit.record()


def _run_knn(task: Task, X: np.ndarray, y: np.ndarray, split: np.ndarray,
             cfg: dict[str, Any], patients: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    gal = np.isin(split, ("train", "val"))
    if task.type != "regression" and len(np.unique(y[gal])) < 2:
        raise NotApplicable(f"the train+val gallery of {task.name} has a single class: "
                            "every neighbour vote would be trivially right")
    model, rec = retrieval.fit_knn(X[gal], y[gal], task.type, tuple(cfg["k_grid"]), cfg["seed"],
                                   groups=patients[gal])
    if task.type == "regression":
        return retrieval.knn_predict(model, X), rec
    n_cls = 2 if task.type == "binary" else len(task.classes)
    p = retrieval.knn_predict(model, X, np.arange(n_cls))
    return (p[:, 1] if task.type == "binary" else p), rec


def _prompt_embeddings(task: Task, encoder: Any, cfg: dict[str, Any],
                       cache: zero_shot.TextEmbeddingCache, missing: type[Exception]
                       ) -> tuple[zero_shot.PromptSet, np.ndarray, np.ndarray]:
    """The task's prompt set, its (cached) text embeddings and per-prompt targets."""
    if task.prompt_set is None:
        raise missing(f"{task.name} has no prompt set")
    prompts = zero_shot.load_prompt_set(task.prompt_set, cfg["prompt_dir"])
    return prompts, cache.get(encoder, prompts), np.asarray(prompts.targets)


def _run_zero_shot(task: Task, emb: Embeddings, pos: np.ndarray, encoder: Any,
                   cfg: dict[str, Any], cache: zero_shot.TextEmbeddingCache
                   ) -> tuple[np.ndarray, dict[str, Any]]:
    prompts, text, targets = _prompt_embeddings(task, encoder, cfg, cache, EvaluationError)
    clip = emb.clip[pos]
    scale = getattr(encoder, "logit_scale", None)
    rec: dict[str, Any] = {"prompts": prompts.record(), "logit_scale": scale,
                           "logit_bias": getattr(encoder, "logit_bias", None),
                           "logit_scale_used": scale if scale is not None else
                           zero_shot.DEFAULT_LOGIT_SCALE}
    if task.type == "regression":
        frames = [emb.frames[i] for i in pos] if emb.frames is not None else None
        out = zero_shot.predict_regression(frames, clip, text, targets, cfg["order"],
                                           cfg["top_fraction"])
        rec.update({"order": cfg["order"], "top_fraction": cfg["top_fraction"],
                    "median": "lower", "frames_used": frames is not None})
        return out, rec
    if task.type == "binary":
        return zero_shot.predict_binary(clip, text, targets, rec["logit_scale_used"]), rec
    if tuple(prompts.classes) != tuple(task.classes):
        raise EvaluationError(f"{task.name}: prompt classes {prompts.classes} != task classes "
                              f"{task.classes}")
    return zero_shot.predict_view(clip, text, targets, len(task.classes),
                                  rec["logit_scale_used"]), rec


def _alignment(task: Task, emb: Embeddings, pos: np.ndarray, y: np.ndarray, split: np.ndarray,
               encoder: Any, cfg: dict[str, Any], cache: zero_shot.TextEmbeddingCache
               ) -> tuple[np.ndarray, dict[str, Any], dict[str, float] | None]:
    """Row scores for regression/binary tasks, or view retrieval metrics (no row scores)."""
    prompts, text, targets = _prompt_embeddings(task, encoder, cfg, cache, NotApplicable)
    clip = emb.clip[pos]
    rec: dict[str, Any] = {"prompts": prompts.record()}
    if task.type == "regression":
        axis = alignment.ef_text_axis(text, targets)
        rec["analysis"] = "projection on the first principal axis of the value prompts"
        return zero_shot.l2_normalize(clip) @ axis, rec, None
    if task.type == "binary":
        t = zero_shot.l2_normalize(text)
        u = zero_shot.l2_normalize(t[targets == 1].mean(axis=0) - t[targets == 0].mean(axis=0))
        rec["analysis"] = "margin on normalise(mean positive − mean negative prompts)"
        return zero_shot.l2_normalize(clip) @ u, rec, None
    te = split == "test"
    onehot = np.eye(len(task.classes))[targets.astype(int)]
    queries = (onehot / onehot.sum(axis=0)).T @ zero_shot.l2_normalize(text)
    rel = (y[te][None, :] == np.arange(len(task.classes))[:, None])
    rec["analysis"] = "text→video retrieval with class prompt centroids as queries"
    return np.zeros(len(y)), rec, retrieval.text_to_video_recall(
        queries, clip[te], rel, tuple(cfg["ks"]))


# ----------------------------------------------------------------------------- aggregation
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


def _metric_fn(task: Task, y: np.ndarray, out: np.ndarray, hard: np.ndarray | None):
    if task.type == "regression":
        return partial(stats.regression_metrics, y, out)
    if task.type == "binary":
        return partial(stats.binary_metrics, y, hard, out)
    return partial(stats.multiclass_metrics, y, stats.normalise_view_proba(out))


def _ci_dict(res: Mapping[str, stats.MetricCI]) -> dict[str, dict[str, Any]]:
    return {k: v.to_dict() for k, v in res.items()}


# ----------------------------------------------------------------------------- evaluate
def evaluate(task: Task | str, protocol: str, manifest: Manifest, embeddings: Embeddings,
             encoder: Any = None, config: Mapping[str, Any] | None = None) -> Result:
    """Evaluate one (task, protocol) for one encoder's embeddings; see the module docstring.

    ``config`` overrides :data:`DEFAULTS` (unknown keys raise); ``config["text_cache"]`` may pass
    a shared :class:`~cardiobench.protocols.zero_shot.TextEmbeddingCache`.
    """
    t0 = time.perf_counter()
    task = get_task(task) if isinstance(task, str) else task
    cfg = _config(protocol, config)
    cache = cfg.pop("text_cache", None) or zero_shot.TextEmbeddingCache()
    enc_desc = encoder.describe() if encoder is not None else dict(embeddings.encoder)
    prov = dict(manifest_fingerprint=manifest.fingerprint, cache_fingerprint=embeddings.fingerprint,
                seed=cfg["seed"], device=str(getattr(encoder, "device", "cpu")))
    base = dict(task=task.name, dataset=task.dataset, protocol=protocol, encoder=enc_desc)
    if manifest.dataset != task.dataset:
        raise EvaluationError(f"task {task.name} needs dataset {task.dataset}, got manifest "
                              f"{manifest.dataset}")
    if protocol in ("zero_shot", "alignment") and (encoder is None or
                                                   not getattr(encoder, "has_text", False)):
        why = "no encoder object given" if encoder is None else f"{enc_desc.get('name')} has no text tower"
        log.info("%s %s not applicable: %s", task.name, protocol, why)
        return Result(**base, config=cfg, status="not_applicable", reason=why,
                      provenance=provenance(**prov, wall_time_s=time.perf_counter() - t0))

    rows = task.select(manifest.table)
    pos = embeddings.align(rows["sample_id"])
    missing = rows.loc[pos < 0, "sample_id"].astype(str).tolist()
    if missing:
        log.warning("%s: %d selected samples have no embedding (first: %s); they are excluded",
                    task.name, len(missing), missing[:5])
    rows, pos = rows[pos >= 0], pos[pos >= 0]
    split = rows["split"].astype(str).to_numpy()
    if not (split == "test").any():
        raise EvaluationError(f"{task.name}: no test rows with embeddings")
    y = task.encode_labels(rows[task.label])
    X = embeddings.clip[pos]

    direct = None
    try:
        if protocol == "linear_probe":
            out, rec = _run_probe(task, X, y, split, cfg)
        elif protocol == "knn":
            out, rec = _run_knn(task, X, y, split, cfg,
                                rows["patient_id"].astype(str).to_numpy())
        elif protocol == "alignment":
            out, rec, direct = _alignment(task, embeddings, pos, y, split, encoder, cfg, cache)
        else:
            out, rec = _run_zero_shot(task, embeddings, pos, encoder, cfg, cache)
    except NotApplicable as exc:
        log.info("%s %s not applicable: %s", task.name, protocol, exc)
        return Result(**base, config=cfg, status="not_applicable", reason=str(exc),
                      provenance=provenance(**prov, wall_time_s=time.perf_counter() - t0))
    if protocol == "alignment":
        return _alignment_result(task, base, cfg, rec, rows, y, out, direct, prov, t0)

    units = _aggregate(task, rows, y, out)
    ocols = [c for c in units.columns if c.startswith("o") and c[1:].isdigit()]
    uo = units[ocols].to_numpy()
    uo = uo[:, 0] if task.type != "multiclass" else uo
    te = (units["split"] == "test").to_numpy()
    tv = units["split"].isin(["train", "val"]).to_numpy()
    yt, ot = units["y"].to_numpy()[te], uo[te]
    ytv = units["y"].to_numpy()[tv]
    boot = dict(clusters=units["patient_id"].to_numpy()[te], n_boot=cfg["n_boot"],
                seed=cfg["seed"], level=cfg["level"])

    preds = pd.DataFrame({task.unit_column(): units["unit"][te].to_numpy(),
                          "patient_id": units["patient_id"][te].to_numpy(), "y_true": yt})
    if "view" in units:
        preds["view"] = units["view"][te].to_numpy()
    extras: dict[str, Any] = {"missing_embeddings": missing,
                              "n_rows_per_unit": float(units["n_rows"].mean())
                              if "n_rows" in units else 1.0}
    hard = None
    if task.type == "binary":
        yt = yt.astype(int)
        tr = (units["split"] == "train").to_numpy()
        # a fitted model's train scores are in-sample (the probe is refit on train+val, kNN
        # finds each train unit itself): an F1 threshold on them would be over-confident, so
        # the calibrated threshold belongs to zero-shot only
        fitted = protocol in ("linear_probe", "knn")
        if fitted and cfg["decision"] == "threshold":
            raise EvaluationError(f"{task.name}: the train-calibrated threshold is defined for "
                                  "zero_shot only; fitted protocols use decision 'argmax'")
        thr = zero_shot.calibrate_threshold(uo[tr], units["y"].to_numpy()[tr].astype(int)) \
            if not fitted and tr.any() and len(np.unique(units["y"][tr])) == 2 else None
        pred_argmax = (ot >= 0.5).astype(int)
        pred_thr = (ot > thr).astype(int) if thr is not None else None
        if cfg["decision"] == "threshold" and pred_thr is None:
            raise EvaluationError(f"{task.name}: threshold decision needs both classes in train")
        hard = pred_thr if cfg["decision"] == "threshold" else pred_argmax
        if not fitted:
            rec["threshold"] = {"value": thr, "fitted_on": "train units",
                                "rule": "prob > threshold", "objective": "F1 of the positive class"}
        preds["prob"], preds["pred_argmax"] = ot, pred_argmax
        if pred_thr is not None:
            preds["pred_threshold"] = pred_thr
        preds["y_pred"] = hard
        other = pred_argmax if cfg["decision"] == "threshold" else pred_thr
        if other is not None:
            extras["metrics_other_decision"] = _ci_dict(stats.bootstrap_metrics(
                partial(stats.binary_metrics, yt, other, ot), len(yt), **boot))
    elif task.type == "multiclass":
        yt = yt.astype(int)
        ot = stats.normalise_view_proba(ot)
        preds["y_true"] = [task.classes[i] for i in yt]
        preds["y_pred"] = [task.classes[i] for i in ot.argmax(axis=1)]
        for j, c in enumerate(task.classes):
            preds[f"prob_{c}"] = ot[:, j]
        extras["per_class_accuracy"] = {
            c: {"n": int((yt == j).sum()),
                "accuracy": 100.0 * float((ot.argmax(1)[yt == j] == j).mean())}
            for j, c in enumerate(task.classes) if (yt == j).any()}
        extras["pred_distribution"] = preds["y_pred"].value_counts().to_dict()
    else:
        preds["y_pred"] = ot

    fn = _metric_fn(task, yt, ot, hard)
    metrics = stats.bootstrap_metrics(fn, len(yt), **boot)

    # the floor a reader compares against: train+val mean, or the train+val class prior
    if task.type == "regression":
        bfn = partial(stats.regression_metrics, yt, lp.mean_baseline(ytv, len(yt)))
        bname = "train+val mean"
    elif task.type == "binary":
        prior = float(np.mean(ytv))
        bfn = partial(stats.binary_metrics, yt, np.full(len(yt), int(prior >= 0.5)),
                      np.full(len(yt), prior))
        bname = "train+val prior (majority class)"
    else:
        bfn = partial(stats.multiclass_metrics, yt,
                      lp.prior_baseline(ytv.astype(int), len(task.classes), len(yt)))
        bname = "train+val prior (majority class)"
    baseline = stats.bootstrap_metrics(bfn, len(yt), **boot)

    if task.subgroups:
        first = rows.assign(_unit=rows[task.unit_column()].astype(str)).drop_duplicates("_unit")
        first = first.set_index("_unit").loc[preds[task.unit_column()].astype(str)]
        extras["subgroups"] = {}
        for sg in task.subgroups:
            tab = stats.subgroup_metrics(sg.labels(first).reset_index(drop=True), fn, len(yt),
                                         order=sg.order)
            extras["subgroups"][sg.name] = tab.to_dict(orient="records")

    cfg_out = {**{k: v for k, v in cfg.items() if k not in ("alphas", "Cs", "k_grid")},
               "protocol_record": rec, "headline": task.headline, "baseline": bname,
               "task": {"type": task.type, "label": task.label, "unit": task.unit,
                        "aggregate": task.aggregate, "filters": {k: list(v) for k, v in
                                                                 task.filters.items()}},
               "bootstrap": {"unit": "patient_id", "n_boot": cfg["n_boot"], "seed": cfg["seed"],
                             "interval": f"percentile {cfg['level']:.0%}"}}
    log.info("%s %s %s: %s = %.3f", task.name, protocol, enc_desc.get("name"), task.headline,
             metrics[task.headline].value if task.headline in metrics else float("nan"))
    return Result(**base, config=cfg_out, metrics=_ci_dict(metrics), baseline=_ci_dict(baseline),
                  extras=extras, n=int(te.sum()), n_samples=int((split == "test").sum()),
                  n_clusters=int(len(np.unique(boot["clusters"]))), predictions=preds,
                  provenance=provenance(**prov, wall_time_s=round(time.perf_counter() - t0, 3)))


def _alignment_result(task: Task, base: dict[str, Any], cfg: dict[str, Any], rec: dict[str, Any],
                      rows: pd.DataFrame, y: np.ndarray, out: np.ndarray,
                      direct: dict[str, float] | None, prov: dict[str, Any], t0: float) -> Result:
    """Package alignment scores (bootstrapped) or retrieval metrics (point values) as a Result."""
    units = _aggregate(task, rows, y, out)
    te = (units["split"] == "test").to_numpy()
    yt, st = units["y"].to_numpy()[te], units["o0"].to_numpy()[te]
    cl = units["patient_id"].to_numpy()[te]
    if direct is not None:
        metrics = {k: {"value": v, "ci_low": None, "ci_high": None, "mean": None,
                       "n_boot_valid": 0} for k, v in direct.items()}
        preds = None
        headline = "recall@1"
    else:
        fn = partial(stats.correlation_metrics, yt, st) if task.type == "regression" else \
            partial(stats.separation_metrics, yt.astype(int), st)
        metrics = _ci_dict(stats.bootstrap_metrics(fn, len(yt), cl, cfg["n_boot"], cfg["seed"],
                                                   cfg["level"]))
        preds = pd.DataFrame({task.unit_column(): units["unit"][te].to_numpy(),
                              "patient_id": cl, "y_true": yt, "score": st})
        headline = "pearson" if task.type == "regression" else "smd"
    return Result(**base, config={**cfg, "protocol_record": rec, "headline": headline},
                  metrics=metrics, n=int(te.sum()), n_samples=int((rows["split"] == "test").sum()),
                  n_clusters=int(len(np.unique(cl))), predictions=preds,
                  provenance=provenance(**prov, wall_time_s=round(time.perf_counter() - t0, 3)))


# ----------------------------------------------------------------------------- suites
def suite_entries(suite: Mapping[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """Expand a suite dict (``runs: [{tasks: [...]|"all", protocols: [...], config: {...}}]``)
    into ``(task, protocol, config)`` triples, validating every name."""
    out = []
    for i, run in enumerate(suite.get("runs", [])):
        tasks = list(TASKS) if run.get("tasks", "all") == "all" else list(run["tasks"])
        for t in tasks:
            get_task(t)
            for p in run.get("protocols", PROTOCOLS):
                if p not in PROTOCOLS:
                    raise EvaluationError(f"suite run {i}: unknown protocol {p!r}")
                out.append((t, p, dict(run.get("config", {}).get(p, {}))))
    return out


def load_suite(path: str | Path | None = None) -> dict[str, Any]:
    """Read a suite YAML (default: the packaged ``suites/cardiobench.yaml``)."""
    import yaml
    from importlib import resources

    text = Path(path).read_text() if path else \
        resources.files("cardiobench.suites").joinpath("cardiobench.yaml").read_text()
    return yaml.safe_load(text)


def run_suite(suite: Mapping[str, Any], manifests: Mapping[str, Manifest],
              embeddings: Mapping[str, Embeddings], encoder: Any,
              results_dir: str | Path) -> list[Result]:
    """Evaluate every (task × protocol) of ``suite`` whose dataset has a manifest and embeddings;
    write one JSON + predictions CSV each and ``leaderboard.md``. Datasets without data are
    logged (warning) and skipped; a text-less encoder gets ``not_applicable`` zero-shot and
    alignment results; a task that raises is written as ``status: failed`` with the error."""
    from cardiobench.report.leaderboard import write_leaderboard

    cache_dir = Path(results_dir) / "text_cache"
    cache = zero_shot.TextEmbeddingCache(cache_dir if encoder is not None and
                                         getattr(encoder, "has_text", False) else None)
    results = []
    skipped = set()
    for tname, proto, cfg in suite_entries(suite):
        task = get_task(tname)
        if task.dataset not in manifests or task.dataset not in embeddings:
            skipped.add(task.dataset)
            continue
        try:
            res = evaluate(task, proto, manifests[task.dataset], embeddings[task.dataset],
                           encoder, {**cfg, "text_cache": cache})
        except (EvaluationError, KeyError, ValueError) as exc:
            # one broken task must not hide the others: record it as failed, loudly
            log.error("%s %s failed: %s", tname, proto, exc)
            res = Result(task=tname, dataset=task.dataset, protocol=proto,
                         encoder=encoder.describe() if encoder is not None else
                         dict(embeddings[task.dataset].encoder), status="failed",
                         reason=str(exc), provenance=provenance())
        write_result(res, results_dir)
        results.append(res)
    if skipped:
        log.warning("no manifest/embeddings for %s: their tasks were not run", sorted(skipped))
    write_leaderboard(results_dir)
    return results
