"""The split spec: one YAML file per dataset describing its published split."""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass, field
from importlib.abc import Traversable
from pathlib import Path
from typing import Any

import yaml

from cardiobench.manifest import ManifestError

SPEC_RULES = ("official", "stratified_patient", "published_csv")
#: The ``params`` each rule's code reads; any other key is refused so no field is decoration.
#: ``column``/``mapping``: the shipped split column (:func:`~cardiobench.splits.map_split_column`);
#: ``files``: split → file of patient IDs (CAMUS); ``test_targets``/``test_views``: labelled test
#: rows per target and test rows per view, checked by ``splits verify``; ``test_ids_filter``:
#: rows the published test IDs cover; ``sha256``: the published CSV's digest.
RULE_PARAMS: dict[str, frozenset[str]] = {
    "official": frozenset({"column", "mapping", "files", "test_targets", "test_views",
                           "test_ids_filter"}),
    "stratified_patient": frozenset({"test_size", "val_size", "seed", "label", "missing_label"}),
    "published_csv": frozenset({"sha256", "test_ids_filter"}),
}


@dataclass(frozen=True)
class SplitSpec:
    """Mirror of ``splits/<dataset>.yaml``.

    ``expected`` holds ``samples``/``patients``/``positives`` dicts (split → count, ``None`` where
    unknown) and ``label`` (the manifest column ``positives`` counts). ``fingerprint`` is the
    :func:`cardiobench.manifest.split_fingerprint` of the published assignment, when computable.
    """

    dataset: str
    rule: str
    description: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    expected: dict[str, Any] = field(default_factory=dict)
    fingerprint: str | None = None
    test_ids_sha256: str | None = None

    @property
    def label(self) -> str | None:
        """Manifest column the ``positives`` counts refer to (binary datasets), else ``None``."""
        return self.expected.get("label")

    @property
    def draw_label(self) -> str | None:
        """The manifest column a ``stratified_patient`` draw is stratified on (``None``: an
        unstratified draw, or a rule that draws nothing)."""
        if self.rule != "stratified_patient":
            return None
        label = self.params.get("label", self.label)
        return None if label is None else str(label)


def packaged_spec(dataset: str) -> Traversable:
    """The split spec shipped with the package for a built-in dataset, ``splits/<dataset>.yaml``."""
    return importlib.resources.files("cardiobench.splits") / f"{dataset}.yaml"


def parse_spec(data: dict[str, Any], source: str) -> SplitSpec:
    """Build a :class:`SplitSpec` from parsed YAML, naming ``source`` in any error."""
    if not isinstance(data, dict):
        raise ManifestError(f"split spec {source} is not a YAML mapping")
    missing = [k for k in ("dataset", "rule") if k not in data]
    if missing:
        raise ManifestError(f"split spec {source} lacks keys {missing}")
    unknown = sorted(set(data) - {"dataset", "rule", "description", "params", "expected",
                                  "fingerprint", "test_ids_sha256"})
    if unknown:
        raise ManifestError(f"split spec {source} has unknown keys {unknown}")
    if data["rule"] not in SPEC_RULES:
        raise ManifestError(f"split spec {source}: rule {data['rule']!r} not one of {SPEC_RULES}")
    unread = sorted(set(data.get("params") or {}) - RULE_PARAMS[data["rule"]])
    if unread:
        raise ManifestError(f"split spec {source}: params {unread} are not read by rule "
                            f"{data['rule']!r}; it reads {sorted(RULE_PARAMS[data['rule']])}")
    return SplitSpec(dataset=str(data["dataset"]), rule=str(data["rule"]),
                     description=str(data.get("description") or ""),
                     params=dict(data.get("params") or {}),
                     expected=dict(data.get("expected") or {}),
                     fingerprint=data.get("fingerprint"),
                     test_ids_sha256=data.get("test_ids_sha256"))


def load_spec(source: Path | Traversable, dataset: str | None = None) -> SplitSpec:
    """Read the split spec at ``source``; with ``dataset``, the spec must declare that dataset."""
    if not source.is_file():
        raise ManifestError(f"split spec {source} does not exist")
    try:
        data = yaml.safe_load(source.read_text())
    except yaml.YAMLError as exc:
        raise ManifestError(f"split spec {source} is not valid YAML: {exc}") from exc
    spec = parse_spec(data, str(source))
    if dataset is not None and spec.dataset != dataset:
        raise ManifestError(f"split spec {source} declares dataset {spec.dataset!r}, expected "
                            f"{dataset!r}")
    return spec
