"""One versioned result JSON per (task, encoder, protocol), plus its per-sample predictions CSV.

Layout under a results folder::

    <results>/<dataset>/<endpoint>/<protocol>/<encoder_key>.json
    <results>/<dataset>/<endpoint>/<protocol>/<encoder_key>.predictions.csv

``encoder_key`` is ``<display name>-<fingerprint[:8]>``, so two configurations of one encoder
(other weights, other ``--encoder-arg``) keep separate files.

JSON fields (``schema_version`` 1): ``task``, ``dataset``, ``protocol``, ``status`` (``ok`` or
``not_applicable`` with a ``reason``), ``encoder`` (the encoder's ``describe()`` dict), ``config``
(full protocol configuration: chosen hyper-parameters, the sweep, prompts, aggregation),
``metrics`` ``{name: {value, ci_low, ci_high, mean, n_boot_valid}}``, ``baseline`` (the trivial
predictor's metrics in the same form: train+val mean or class prior), ``extras`` (subgroup tables,
per-class accuracy, ``data_completeness``: samples set aside by ``prepare`` and samples that
failed to embed, per split, and ``test_units_expected`` vs ``test_units_scored``, ...), ``n`` (evaluation units, e.g. patients for CAMUS EF), ``n_samples``
(test rows before aggregation), ``n_clusters`` (bootstrap clusters), ``predictions`` (path of
the CSV relative to the JSON) and ``provenance`` (versions, git hash, fingerprints, seed, device,
wall time, timestamp). NaN is written as ``null``.
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
        """``<dataset>/<endpoint>/<protocol>/<encoder_key>.json`` relative to the results folder."""
        endpoint = self.task.split("/", 1)[-1].replace("/", "_")
        return Path(self.dataset) / endpoint / self.protocol / f"{self.encoder_key}.json"

    def to_dict(self) -> dict[str, Any]:
        """The JSON document (predictions referenced by path, not embedded)."""
        return _clean({
            "schema_version": RESULT_SCHEMA_VERSION, "task": self.task, "dataset": self.dataset,
            "protocol": self.protocol, "status": self.status, "reason": self.reason,
            "encoder": self.encoder, "config": self.config, "metrics": self.metrics,
            "baseline": self.baseline, "extras": self.extras, "n": self.n,
            "n_samples": self.n_samples, "n_clusters": self.n_clusters,
            "predictions": self.predictions_path, "provenance": self.provenance,
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
                   predictions=predictions, predictions_path=d.get("predictions"))


def write_result(result: Result, results_dir: str | Path) -> Path:
    """Write the predictions CSV (if any) then the JSON, both atomically; returns the JSON path."""
    path = Path(results_dir) / result.relpath()
    if result.predictions is not None:
        csv = path.with_name(path.stem + ".predictions.csv")
        atomic_write_text(csv, result.predictions.to_csv(index=False))
        result.predictions_path = csv.name
    atomic_write_text(path, json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
    log.info("wrote %s", path)
    return path


def load_results(results_dir: str | Path, with_predictions: bool = False) -> list[Result]:
    """Every result JSON under ``results_dir`` (sorted by path); a malformed file raises
    ``ValueError`` naming it."""
    out = []
    for p in sorted(Path(results_dir).rglob("*.json")):
        try:
            d = json.loads(p.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"malformed result file {p}: {exc}") from exc
        if not isinstance(d, dict) or "schema_version" not in d or "protocol" not in d:
            continue  # not a result (e.g. a text-embedding cache index)
        preds = None
        if with_predictions and d.get("predictions"):
            preds = pd.read_csv(p.parent / d["predictions"])
        out.append(Result.from_dict(d, preds))
    return out
