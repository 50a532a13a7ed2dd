"""One versioned result JSON per (task, encoder, protocol), plus its per-sample predictions CSV.

Layout under a results folder::

    <results>/<dataset>/<endpoint>/<protocol>/<encoder_key>[--<variant>].json
    <results>/<dataset>/<endpoint>/<protocol>/<encoder_key>[--<variant>].predictions.csv

``encoder_key`` is ``<display name>-<fingerprint[:8]>``, so two configurations of one encoder
(other weights, other ``--encoder-arg``) keep separate files. ``variant`` (also a JSON field) is
set by protocols that write several results per task and encoder -- a transfer's source and
runner, ``from_echonet_dynamic_ef--knn`` -- so that they never overwrite each other.

JSON fields (``schema_version`` 1): ``task``, ``dataset``, ``protocol``, ``status`` (``ok``,
``not_applicable`` or ``failed``, with a ``reason`` unless ok), ``encoder`` (the encoder's
``describe()`` dict), ``config`` (full protocol configuration: chosen hyper-parameters, the sweep,
prompts, aggregation, ``bootstrap``), ``metrics``, ``baseline`` (the trivial predictor's metrics
in the same form: train+val mean or class prior), ``extras`` (subgroup tables, per-class
accuracy, ``data_completeness``: samples set aside by ``prepare`` and samples that failed to
embed, per split, and ``test_units_expected`` vs ``test_units_scored``, ...), ``n`` (evaluation
units, e.g. patients for CAMUS EF), ``n_samples`` (test rows before aggregation), ``n_clusters``
(bootstrap clusters), ``predictions`` (file name of the CSV, relative to the JSON; it must stay
inside the results folder) and ``provenance`` (versions, git hash, seed, device, wall time,
timestamp, and the fingerprints: ``manifest_fingerprint`` of the split, ``label_fingerprint`` of
the labels scored -- :mod:`cardiobench.comparability` -- and ``cache_fingerprint``). NaN is
written as ``null``.

**One metric** (in ``metrics`` and ``baseline``)::

    {"value": 7.41, "ci_low": null, "ci_high": null, "mean": null, "n_boot_valid": 1000,
     "status": "no_interval", "na_reason": "1 bootstrap cluster, fewer than 10"}

``status`` is ``ok`` (value and interval stand), ``no_interval`` (the value stands, the interval
is n/a: fewer bootstrap clusters than the documented minimum, or no replicate defines the
metric) or ``undefined`` (value and interval null: a metric comparing classes on a test split of
one class, a correlation or R² on constant test labels, a value not defined for the predictions).
``na_reason`` is a few words for the cell; the rules live in :func:`cardiobench.stats.qualify`.
A metric with status ``ok`` and null interval fields comes from a scorer that does not bootstrap
(text→video retrieval; its ``config.bootstrap`` is null). Results written before these fields
existed have neither; read a missing ``status`` as ``ok``.

**Result status.** A result whose headline metric is ``undefined`` is written as
``not_applicable`` with that reason (``"<headline> undefined: one class in the test labels"``);
its metrics stay in the file. Other metrics being n/a leave a result ``ok``. ``failed`` is a
task that raised (the reason is the error); ``not_applicable`` also covers a protocol that does
not apply (no text tower, a single class in train+val).

Text cells of the predictions CSV are written spreadsheet-safe
(:mod:`cardiobench.spreadsheet`) and restored when read back by :func:`load_results`.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import platform
import subprocess
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cardiobench.atomic import atomic_write_text
from cardiobench.spreadsheet import neutralise_frame, restore_frame

log = logging.getLogger(__name__)

RESULT_SCHEMA_VERSION = 1


def _clean(obj: Any) -> Any:
    """JSON-safe copy: numpy scalars/arrays → Python, NaN/inf → None, tuples → lists."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, pd.DataFrame):
        return _clean(obj.to_dict(orient="records"))
    if hasattr(obj, "to_dict"):
        return _clean(obj.to_dict())
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    return str(obj)


@lru_cache(maxsize=64)
def git_describe(where: str | Path | None = None) -> str | None:
    """``git describe --always --dirty`` of the checkout holding ``where`` (a module's file or
    folder; default: this package), e.g. ``457d456-dirty``; None outside a git checkout (an
    installed wheel). The package-dir mapping puts ``preprocessing/``, ``splits/`` and
    ``protocols/`` in the same checkout, so one call covers the whole package; a plug-in
    encoder's own repository is described by its own call (``Encoder.describe``)."""
    path = Path(where or __file__).resolve()
    folder = path if path.is_dir() else path.parent
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=12"],
                             cwd=folder, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    h = out.stdout.strip()
    return h if out.returncode == 0 and h else None


def provenance(**extra: Any) -> dict[str, Any]:
    """Library versions, git hash and timestamp, merged with ``extra`` (fingerprints, seed, ...)."""
    import scipy
    import sklearn
    import torch

    import cardiobench

    info: dict[str, Any] = {
        "cardiobench": cardiobench.__version__, "git": git_describe(),
        "python": platform.python_version(), "numpy": np.__version__, "pandas": pd.__version__,
        "scipy": scipy.__version__, "sklearn": sklearn.__version__, "torch": torch.__version__,
        "platform": platform.platform(),
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    info.update(extra)
    return info


@dataclass
class Result:
    """The outcome of one (task, encoder, protocol) evaluation; see the module docstring."""

    task: str
    dataset: str
    protocol: str
    encoder: dict[str, Any]
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    baseline: dict[str, dict[str, Any]] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    n: int = 0
    n_samples: int = 0
    n_clusters: int = 0
    status: str = "ok"
    reason: str | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    predictions: pd.DataFrame | None = None
    predictions_path: str | None = None
    #: what tells this result apart from the protocol's others on the same task and encoder
    variant: str | None = None

    @property
    def encoder_name(self) -> str:
        """The encoder's display name (file-name safe); several configurations may share it."""
        return str(self.encoder.get("name", "encoder")).replace("/", "_")

    @property
    def encoder_key(self) -> str:
        """``<display name>-<first 8 hex of the encoder fingerprint>``: unique per encoder
        configuration (weights, InputSpec, sampling, constructor arguments), so two
        configurations sharing a display name never overwrite each other's results."""
        fp = str(self.encoder.get("fingerprint") or "")
        return f"{self.encoder_name}-{fp[:8]}" if fp else self.encoder_name

    def relpath(self) -> Path:
        """``<dataset>/<endpoint>/<protocol>/<encoder_key>[--<variant>].json`` relative to the
        results folder."""
        endpoint = self.task.split("/", 1)[-1].replace("/", "_")
        name = self.encoder_key + (f"--{self.variant}" if self.variant else "")
        return Path(self.dataset) / endpoint / self.protocol / f"{name}.json"

    def to_dict(self) -> dict[str, Any]:
        """The JSON document (predictions referenced by path, not embedded)."""
        return _clean({
            "schema_version": RESULT_SCHEMA_VERSION, "task": self.task, "dataset": self.dataset,
            "protocol": self.protocol, "status": self.status, "reason": self.reason,
            "encoder": self.encoder, "config": self.config, "metrics": self.metrics,
            "baseline": self.baseline, "extras": self.extras, "n": self.n,
            "n_samples": self.n_samples, "n_clusters": self.n_clusters,
            "predictions": self.predictions_path, "provenance": self.provenance,
            **({"variant": self.variant} if self.variant else {}),
        })

    @classmethod
    def from_dict(cls, d: dict[str, Any], predictions: pd.DataFrame | None = None) -> "Result":
        """Inverse of :meth:`to_dict` (raises ``ValueError`` on a newer schema)."""
        if d.get("schema_version", 0) > RESULT_SCHEMA_VERSION:
            raise ValueError(f"result schema {d['schema_version']} is newer than this "
                             f"cardiobench ({RESULT_SCHEMA_VERSION})")
        return cls(task=d["task"], dataset=d["dataset"], protocol=d["protocol"],
                   encoder=d.get("encoder", {}), config=d.get("config", {}),
                   metrics=d.get("metrics", {}), baseline=d.get("baseline", {}),
                   extras=d.get("extras", {}), n=d.get("n", 0), n_samples=d.get("n_samples", 0),
                   n_clusters=d.get("n_clusters", 0), status=d.get("status", "ok"),
                   reason=d.get("reason"), provenance=d.get("provenance", {}),
                   predictions=predictions, predictions_path=d.get("predictions"),
                   variant=d.get("variant"))


def headline_status(metrics: dict[str, dict[str, Any]], headline: str) -> tuple[str, str | None]:
    """``("ok", None)``, or ``("not_applicable", reason)`` when the headline metric is
    ``undefined`` (see the module docstring, "Result status")."""
    m = metrics.get(headline) or {}
    if m.get("status") == "undefined":
        return "not_applicable", f"{headline} undefined: {m.get('na_reason')}"
    return "ok", None


def write_result(result: Result, results_dir: str | Path) -> Path:
    """Write the predictions CSV (if any) then the JSON, both atomically; returns the JSON path."""
    path = Path(results_dir) / result.relpath()
    if result.predictions is not None:
        csv = path.with_name(path.stem + ".predictions.csv")
        atomic_write_text(csv, neutralise_frame(result.predictions).to_csv(index=False))
        result.predictions_path = csv.name
    atomic_write_text(path, json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
    log.info("wrote %s", path)
    return path


class ResultFileError(ValueError):
    """A result file (or the predictions it names) cannot be used; the message names the file,
    the field and the way on. ``short``: the same in a few words, for a figure's placeholder."""

    def __init__(self, message: str, short: str | None = None):
        super().__init__(message)
        self.short = short or message


#: fields a result JSON must hold, with the type each must have
REQUIRED_FIELDS: dict[str, type | tuple[type, ...]] = {
    "task": str, "dataset": str, "protocol": str, "encoder": dict}
#: optional fields and their types (null allowed)
OPTIONAL_FIELDS: dict[str, type | tuple[type, ...]] = {
    "status": str, "reason": str, "config": dict, "metrics": dict, "baseline": dict,
    "extras": dict, "n": int, "n_samples": int, "n_clusters": int, "predictions": str,
    "provenance": dict, "variant": str}
#: folders of a results tree that hold JSON which is not a result (skipped without a word)
NOT_RESULT_DIRS = ("text_cache",)


def _check_fields(d: dict[str, Any], path: Path) -> None:
    """Refuse a result JSON with a missing or mistyped field, naming the file and the field."""
    way_on = "re-run `cardiobench evaluate` for it, or move the file out of the results folder"
    for name, typ in REQUIRED_FIELDS.items():
        if name not in d:
            raise ResultFileError(f"result file {path} lacks the field {name!r}; {way_on}")
    for name, typ in {**REQUIRED_FIELDS, **OPTIONAL_FIELDS}.items():
        v = d.get(name)
        if v is not None and (not isinstance(v, typ) or isinstance(v, bool) and typ is int):
            raise ResultFileError(f"result file {path}: field {name!r} is "
                                  f"{type(v).__name__} {str(v)[:40]!r}, expected "
                                  f"{getattr(typ, '__name__', typ)}; {way_on}")
    for section in ("metrics", "baseline"):
        for k, m in (d.get(section) or {}).items():
            if not isinstance(m, dict):
                raise ResultFileError(f"result file {path}: {section}[{k!r}] is "
                                      f"{type(m).__name__}, expected an object with 'value'; "
                                      f"{way_on}")
    if not isinstance(d["schema_version"], int) or isinstance(d["schema_version"], bool):
        raise ResultFileError(f"result file {path}: field 'schema_version' is "
                              f"{d['schema_version']!r}, expected an integer; {way_on}")


def predictions_file(result_json: Path, results_dir: Path, name: str) -> Path:
    """The predictions CSV a result names, resolved relative to the result file; a path that
    leads outside the results folder is refused (``ResultFileError``)."""
    root = results_dir.resolve()
    target = (result_json.parent / name).resolve()
    if root not in target.parents:
        raise ResultFileError(f"result file {result_json}: 'predictions' {name!r} points outside "
                              f"the results folder {results_dir} (to {target}); only a file "
                              "beside the result is read",
                              f"predictions {name!r} point outside {results_dir}")
    return target


def _read_predictions(result_json: Path, root: Path, name: str) -> pd.DataFrame:
    """The predictions CSV a result JSON names (:func:`predictions_file`), cells restored."""
    csv = predictions_file(result_json, root, name)
    try:
        return restore_frame(pd.read_csv(csv))
    except FileNotFoundError:
        raise ResultFileError(f"result file {result_json} names the predictions {csv}, which is "
                              "missing; re-run `cardiobench evaluate` to write both again",
                              f"predictions file {csv.name} is missing") from None
    except (OSError, ValueError) as exc:  # pandas' parser errors and bad bytes are ValueErrors
        raise ResultFileError(f"predictions {csv} of {result_json} cannot be read ({exc}); "
                              "re-run `cardiobench evaluate` to write both again",
                              f"predictions file {csv.name} cannot be read ({exc})") from exc


#: the task record of every result read in this process, by task name: a report can then give
#: the label unit of a cohort's task (not in the built-in catalogue) from the task's name alone
_TASK_RECORDS: dict[str, dict[str, Any]] = {}


def recorded_task(name: str) -> dict[str, Any] | None:
    """The ``config["task"]`` record of a result read by :func:`load_results` for task ``name``."""
    return _TASK_RECORDS.get(name)


def load_results(results_dir: str | Path, with_predictions: bool = False,
                 unread: list[tuple[Result, ResultFileError]] | None = None) -> list[Result]:
    """Every result JSON under ``results_dir`` (sorted by path).

    With ``unread`` (a list the caller owns), a result whose predictions cannot be read keeps
    ``predictions=None`` and is appended there with its error, instead of raising: the report
    then draws what it can.

    A JSON that is not a result (no ``schema_version`` object: a stray config, a report's data)
    is skipped with a warning naming it (without a word under ``text_cache/``). A result that is
    malformed -- broken JSON, a missing or mistyped field, a newer schema, a predictions path
    leading outside ``results_dir``, a predictions CSV that is missing or unreadable -- raises
    :class:`ResultFileError` naming the file, the field and the way on.
    """
    root = Path(results_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"results folder {root} does not exist; run `cardiobench "
                                "evaluate` (or `run`) with --results pointing there first")
    out = []
    for p in sorted(root.rglob("*.json")):
        quiet = any(part in NOT_RESULT_DIRS for part in p.relative_to(root).parts[:-1])
        try:
            d = json.loads(p.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            if quiet:
                continue
            raise ResultFileError(f"malformed result file {p}: {exc}; re-run `cardiobench "
                                  "evaluate` for it, or move the file out of the results "
                                  "folder") from exc
        if not isinstance(d, dict) or "schema_version" not in d:
            (log.debug if quiet else log.warning)(
                "skipping %s: not a cardiobench result (no schema_version)", p)
            continue
        _check_fields(d, p)
        preds, why = None, None
        if with_predictions and d.get("predictions"):
            try:
                preds = _read_predictions(p, root, d["predictions"])
            except ResultFileError as exc:
                if unread is None:
                    raise
                why = exc
        try:
            out.append(Result.from_dict(d, preds))
        except ValueError as exc:
            raise ResultFileError(f"result file {p}: {exc}") from exc
        if why is not None:
            unread.append((out[-1], why))  # type: ignore[union-attr]
        if isinstance(out[-1].config.get("task"), dict):
            _TASK_RECORDS[out[-1].task] = out[-1].config["task"]
    return out
