"""The split rules: patient-level stratified draw (the reference's) and official split columns."""

from __future__ import annotations

import logging
from typing import Collection, Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from cardiobench.manifest import SPLITS, ManifestError, Problem
from cardiobench.splits.spec import SplitSpec

log = logging.getLogger(__name__)


def stratified_patient_split(table: pd.DataFrame, label: str | None, *, test_size: float,
                             val_size: float, seed: int = 42, patient_col: str = "patient_id",
                             missing_label: str = "error") -> pd.Series:
    """Per-row split from the reference's two-step patient-level stratified draw (Appendix A).

    Patients are grouped with pandas ``groupby`` (so sorted by ``patient_col``); a patient's
    label is the max over its rows. ``train_test_split(patients, test_size, stratify=label,
    random_state=seed)`` gives trainval/test, then the same call with ``val_size`` on trainval
    gives train/val. The input order of rows does not matter; the patient order and the two
    random calls do, which is why they are fixed here.

    ``label=None`` draws unstratified (one stratum). A label of text values (class names) is
    coded by its sorted distinct values. ``missing_label="stratum"`` gives rows without a label
    a stratum of their own (a cohort's patients still need a split); ``"error"`` refuses them.
    """
    values = _strata(table, label, patient_col, missing_label)
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


def _strata(table: pd.DataFrame, label: str | None, patient_col: str,
            missing_label: str) -> pd.Series:
    """The stratum of each row: the label's number, or the code of its text value."""
    if label is None:
        return pd.Series(0, index=table.index)
    if label not in table:
        raise ManifestError(f"stratified split needs label column {label!r}; "
                            f"columns are {list(table.columns)}")
    raw = table[label]
    values = pd.to_numeric(raw, errors="coerce")
    known = raw.notna()
    if (values.isna() & known).any():  # class names: code them in sorted order
        values = pd.Series(pd.factorize(raw.astype("string"), sort=True)[0], index=table.index,
                           dtype=float).where(known)
    if values.isna().any():
        if missing_label == "stratum":
            return values.fillna(values.max() + 1 if values.notna().any() else 0)
        bad = table.loc[values.isna(), patient_col].astype(str).tolist()[:10]
        raise ManifestError(f"stratified split: {label} is missing for patients {bad}")
    return values


def _norm_split_value(value: object) -> str:
    """Comparable form of a split value: stripped, lower-case; ``2.0`` (a float column) → ``2``."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip().lower()


def map_split_column(values: pd.Series, mapping: Mapping[object, str], *, source: str,
                     column: str = "split", ids: pd.Series | None = None,
                     lines: Sequence[int] | None = None, severity: str = "error",
                     skip_rows: Collection[int] = ()) -> tuple[pd.Series, list[Problem]]:
    """Map a shipped split column through ``mapping``; return the splits and one problem per bad row.

    This is the one place an official split column is read. Values and keys are compared
    case-insensitively (the published EchoNet-Dynamic evaluator lost its whole test set to a case
    mismatch) and integer folds match whether the column was read as int or float. A value that
    matches no key gives an ``unknown_split`` :class:`Problem` naming ``source``, ``column``, the
    value, the sample (``ids``) and, when ``lines`` gives each row's line in ``source``, that line.
    ``severity`` is the problems' severity (``"unusable"`` lets ``prepare --allow-incomplete`` set
    the sample aside); ``skip_rows`` are positions already reported by the side-file reader.
    """
    bad_targets = sorted({v for v in mapping.values() if v not in SPLITS})
    if bad_targets:
        raise ManifestError(f"split mapping for {source} maps to {bad_targets}, not {SPLITS}")
    keys = {_norm_split_value(k): v for k, v in mapping.items()}
    mapped = pd.Series([keys.get(_norm_split_value(v)) if pd.notna(v) else None
                        for v in values.tolist()], index=values.index, dtype="string")
    problems = []
    skip = set(skip_rows)
    for pos in np.flatnonzero(mapped.isna().to_numpy()):
        if pos in skip:
            continue
        sid = None if ids is None else str(ids.iloc[pos])
        where = f"{source} row {lines[pos]}" if lines is not None else source
        problems.append(Problem("unknown_split", f"{where}: {column} {values.iloc[pos]!r} is "
                                f"not one of {sorted(keys)}", sample_id=sid, row=int(pos),
                                severity=severity, file=source,
                                line=None if lines is None else int(lines[pos]), column=column))
    return mapped, problems


def official_split(values: pd.Series, mapping: Mapping[object, str], *, source: str,
                   ids: pd.Series | None = None, column: str = "split") -> pd.Series:
    """:func:`map_split_column`, raising :class:`ManifestError` listing every offending row."""
    mapped, problems = map_split_column(values, mapping, source=source, column=column, ids=ids)
    if problems:
        raise ManifestError(f"{source}: {len(problems)} row(s) with an unknown split value",
                            problems)
    return mapped


def apply_spec_rule(spec: SplitSpec, table: pd.DataFrame) -> pd.Series | None:
    """Re-derive the expected split of ``table`` from ``spec`` where the rule allows it.

    ``stratified_patient`` is recomputed from the table's patients and labels; the other rules
    need the shipped or published file, so ``None`` is returned.
    """
    if spec.rule != "stratified_patient":
        return None
    p = spec.params
    return stratified_patient_split(table, spec.draw_label,
                                    test_size=float(p["test_size"]),
                                    val_size=float(p["val_size"]), seed=int(p.get("seed", 42)),
                                    missing_label=str(p.get("missing_label", "error")))
