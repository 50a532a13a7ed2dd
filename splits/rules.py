"""The split rules: patient-level stratified draw (the reference's) and official split columns."""

from __future__ import annotations

import logging
from typing import Mapping

import pandas as pd
from sklearn.model_selection import train_test_split

from cardiobench.manifest import SPLITS, ManifestError, Problem
from cardiobench.splits.spec import SplitSpec

log = logging.getLogger(__name__)


def stratified_patient_split(table: pd.DataFrame, label: str, *, test_size: float,
                             val_size: float, seed: int = 42,
                             patient_col: str = "patient_id") -> pd.Series:
    """Per-row split from the reference's two-step patient-level stratified draw (Appendix A).

    Patients are grouped with pandas ``groupby`` (so sorted by ``patient_col``); a patient's
    label is the max over its rows. ``train_test_split(patients, test_size, stratify=label,
    random_state=seed)`` gives trainval/test, then the same call with ``val_size`` on trainval
    gives train/val. The input order of rows does not matter; the patient order and the two
    random calls do, which is why they are fixed here.
    """
    if label not in table:
        raise ManifestError(f"stratified split needs label column {label!r}; "
                            f"columns are {list(table.columns)}")
    values = pd.to_numeric(table[label], errors="coerce")
    if values.isna().any():
        bad = table.loc[values.isna(), patient_col].astype(str).tolist()[:10]
        raise ManifestError(f"stratified split: {label} is missing for patients {bad}")
    patients = values.groupby(table[patient_col].astype(str)).max().astype(int)
    pids = patients.index.to_numpy()
    try:
        trainval, test = train_test_split(pids, test_size=test_size,
                                          stratify=patients.to_numpy(), random_state=seed)
        train, val = train_test_split(trainval, test_size=val_size,
                                      stratify=patients.loc[trainval].to_numpy(),
                                      random_state=seed)
    except ValueError as exc:  # too few patients of a class to stratify
        raise ManifestError(f"stratified split on {label!r} impossible for {len(pids)} patients "
                            f"({int(patients.sum())} positive): {exc}") from exc
    assignment = {**{p: "train" for p in train}, **{p: "val" for p in val},
                  **{p: "test" for p in test}}
    return table[patient_col].astype(str).map(assignment).astype("string")


def official_split(values: pd.Series, mapping: Mapping[str, str], *, source: str,
                   ids: pd.Series | None = None) -> pd.Series:
    """Map a shipped split column through ``mapping`` (e.g. ``{"TRAIN": "train"}``).

    Values and keys are compared case-insensitively (the published EchoNet-Dynamic evaluator
    lost its whole test set to a case mismatch). Every value must match a key of ``mapping``
    and map to train/val/test; otherwise
    :class:`ManifestError` lists each offending row of ``source`` (with its sample id if given).
    """
    bad_targets = sorted({v for v in mapping.values() if v not in SPLITS})
    if bad_targets:
        raise ManifestError(f"split mapping for {source} maps to {bad_targets}, not {SPLITS}")
    keys = {str(k).strip().lower(): v for k, v in mapping.items()}
    mapped = values.astype("string").str.strip().str.lower().map(keys)
    problems = []
    for i in mapped.index[mapped.isna()]:
        sid = None if ids is None else str(ids.loc[i])
        problems.append(Problem("unknown_split", f"{source}: split value {values.loc[i]!r} is "
                                f"not one of {sorted(keys)}", sample_id=sid, row=int(i)))
    if problems:
        raise ManifestError(f"{source}: {len(problems)} row(s) with an unknown split value",
                            problems)
    return mapped.astype("string")


def apply_spec_rule(spec: SplitSpec, table: pd.DataFrame) -> pd.Series | None:
    """Re-derive the expected split of ``table`` from ``spec`` where the rule allows it.

    ``stratified_patient`` is recomputed from the table's patients and labels; the other rules
    need the shipped or published file, so ``None`` is returned.
    """
    if spec.rule != "stratified_patient":
        return None
    p = spec.params
    return stratified_patient_split(table, str(p.get("label", spec.label)),
                                    test_size=float(p["test_size"]),
                                    val_size=float(p["val_size"]), seed=int(p.get("seed", 42)))
