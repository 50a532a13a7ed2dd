"""Check a manifest's split against its spec (:func:`verify`), export it, and summarise it."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from cardiobench.atomic import atomic_write_text
from cardiobench.manifest import BINARY_LABELS, LABEL_COLUMNS, SPLITS, Manifest
from cardiobench.spreadsheet import refuse_formula_cells
from cardiobench.splits.rules import apply_spec_rule
from cardiobench.splits.spec import SplitSpec

log = logging.getLogger(__name__)


def test_ids_sha256(sample_ids: Iterable[str]) -> str:
    """SHA-256 of the sorted, newline-joined test sample_ids."""
    return hashlib.sha256("\n".join(sorted(map(str, sample_ids))).encode()).hexdigest()


def _counts(table: pd.DataFrame, label: str | None) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {"samples": {}, "patients": {}, "positives": {}}
    for split in SPLITS:
        grp = table[table["split"] == split]
        out["samples"][split] = int(len(grp))
        out["patients"][split] = int(grp["patient_id"].nunique())
        if label and label in grp:
            out["positives"][split] = int((pd.to_numeric(grp[label], errors="coerce") == 1).sum())
    return out


@dataclass
class VerifyReport:
    """Outcome of :func:`verify`: ``ok`` iff counts, fingerprint and reference all agree.

    ``count_diffs``: ``{"what", "split", "expected", "actual"}`` per differing count;
    ``moved``: rows whose split differs from the reference assignment (``sample_id,
    patient_id, expected, actual``); ``moved_patients``: patient → ``(expected, actual)``;
    ``missing``/``extra``: sample_ids only in the reference / only in the manifest.
    """

    dataset: str
    ok: bool
    fingerprint: str
    expected_fingerprint: str | None
    fingerprint_match: bool | None
    count_diffs: list[dict[str, Any]] = field(default_factory=list)
    moved: pd.DataFrame = field(default_factory=pd.DataFrame)
    moved_patients: dict[str, tuple[str, str]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    test_ids_match: bool | None = None
    reference: str | None = None  # where the reference assignment came from
    #: per split, samples ``prepare --allow-incomplete`` set aside (empty: the full download)
    excluded: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:
        lines = [f"{self.dataset}: {'OK' if self.ok else 'MISMATCH'}"]
        if self.excluded:
            n = sum(self.excluded.values())
            per = ", ".join(f"{k} {v}" for k, v in self.excluded.items())
            lines.append(f"  subset of the published split: {n} unusable sample(s) set aside "
                         f"by prepare --allow-incomplete ({per})")
        fp = {True: "matches the published split", False: "DIFFERS from the published split",
              None: "(no published fingerprint to compare with)"}
        lines.append(f"  fingerprint {self.fingerprint[:16]}… {fp[self.fingerprint_match]}")
        if self.reference:
            lines.append(f"  assignment checked against the one {self.reference}")
        for d in self.count_diffs:
            lines.append(f"  {d['what']}[{d['split']}]: expected {d['expected']}, got {d['actual']}")
        if self.test_ids_match is False:
            lines.append("  test sample_ids differ from the published test set")
        for pid, (exp, act) in sorted(self.moved_patients.items()):
            n = int((self.moved["patient_id"] == pid).sum()) if len(self.moved) else 0
            lines.append(f"  patient {pid}: {exp} -> {act} ({n} sample(s))")
        if self.missing:
            lines.append(f"  {len(self.missing)} sample(s) missing, e.g. {self.missing[:5]}")
        if self.extra:
            lines.append(f"  {len(self.extra)} unexpected sample(s), e.g. {self.extra[:5]}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"dataset": self.dataset, "ok": self.ok, "fingerprint": self.fingerprint,
                "expected_fingerprint": self.expected_fingerprint,
                "fingerprint_match": self.fingerprint_match, "count_diffs": self.count_diffs,
                "moved_patients": {k: list(v) for k, v in self.moved_patients.items()},
                "moved": self.moved.to_dict(orient="records"), "missing": self.missing,
                "extra": self.extra, "test_ids_match": self.test_ids_match,
                "reference": self.reference, "excluded": self.excluded}


def verify(manifest: Manifest, spec: SplitSpec,
           reference: pd.DataFrame | None = None) -> VerifyReport:
    """Compare ``manifest``'s split with its published ``spec`` (the dataset's, from the
    catalogue).

    ``reference`` (columns ``sample_id, split`` [``patient_id``]) is the expected assignment;
    when absent and the rule is ``stratified_patient`` it is recomputed from the manifest's own
    patients and labels, so a single moved patient is named.
    """
    t = manifest.table
    actual = _counts(t, spec.label)
    diffs = []
    for what in ("samples", "patients", "positives"):
        for split, exp in (spec.expected.get(what) or {}).items():
            if exp is not None and actual[what].get(split) != int(exp):
                diffs.append({"what": what, "split": split, "expected": int(exp),
                              "actual": actual[what].get(split)})
    test_rows = t[t["split"] == "test"]
    for col, exp in (spec.params.get("test_targets") or {}).items():
        got = int(test_rows[col].notna().sum()) if col in test_rows else 0
        if got != int(exp):
            diffs.append({"what": f"labelled {col}", "split": "test", "expected": int(exp),
                          "actual": got})
    for view, exp in (spec.params.get("test_views") or {}).items():
        got = int((test_rows["view"].astype(str) == view).sum()) if "view" in test_rows else 0
        if got != int(exp):
            diffs.append({"what": f"view {view}", "split": "test", "expected": int(exp),
                          "actual": got})
    fp = manifest.fingerprint
    fp_match = None if spec.fingerprint is None else fp == spec.fingerprint
    ids_match = None
    if spec.test_ids_sha256:
        test = t[t["split"] == "test"]
        # e.g. SegRWMA: only the 2D rows form the evaluated (published) test set
        for col, value in (spec.params.get("test_ids_filter") or {}).items():
            test = test[test[col].astype(str) == str(value)] if col in test else test.iloc[:0]
        ids_match = test_ids_sha256(test["sample_id"]) == spec.test_ids_sha256

    source = "given" if reference is not None else None
    if reference is None:
        drawn_on = _with_set_aside_rows(t, manifest.excluded, spec)
        recomputed = apply_spec_rule(spec, drawn_on)
        if recomputed is not None:
            reference = pd.DataFrame({"sample_id": drawn_on["sample_id"], "split": recomputed})
            reference = reference[reference["sample_id"].isin(t["sample_id"])]
            source = f"recomputed by rule {spec.rule}"
    moved = pd.DataFrame(columns=["sample_id", "patient_id", "expected", "actual"])
    moved_patients: dict[str, tuple[str, str]] = {}
    missing: list[str] = []
    extra: list[str] = []
    if reference is not None:
        ref = reference[["sample_id", "split"]].astype(str).rename(columns={"split": "expected"})
        cur = t[["sample_id", "patient_id", "split"]].astype(str).rename(columns={"split": "actual"})
        both = cur.merge(ref, on="sample_id", how="outer", indicator=True)
        missing = sorted(both.loc[both["_merge"] == "right_only", "sample_id"])
        extra = sorted(both.loc[both["_merge"] == "left_only", "sample_id"])
        inner = both[both["_merge"] == "both"]
        moved = inner.loc[inner["expected"] != inner["actual"],
                          ["sample_id", "patient_id", "expected", "actual"]].reset_index(drop=True)
        for pid, grp in moved.groupby("patient_id"):
            moved_patients[str(pid)] = (str(grp["expected"].iat[0]), str(grp["actual"].iat[0]))
    ok = (not diffs and fp_match is not False and ids_match is not False and moved.empty
          and not missing and not extra)
    report = VerifyReport(dataset=manifest.dataset, ok=ok, fingerprint=fp,
                          expected_fingerprint=spec.fingerprint, fingerprint_match=fp_match,
                          count_diffs=diffs, moved=moved, moved_patients=moved_patients,
                          missing=missing, extra=extra, test_ids_match=ids_match, reference=source,
                          excluded=manifest.excluded_counts())
    log.debug("%s", report)  # the caller shows it (the CLI prints it)
    return report


def _with_set_aside_rows(table: pd.DataFrame, excluded: pd.DataFrame,
                         spec: SplitSpec) -> pd.DataFrame:
    """``table`` plus the rows ``prepare --allow-incomplete`` set aside after the split was
    drawn (their patient and stratifying label are in the sidecar), so that a recomputed draw
    sees the patients and strata it was drawn on."""
    label = spec.draw_label
    if spec.rule != "stratified_patient" or not len(excluded) or "patient_id" not in excluded:
        return table
    rows = excluded[excluded["patient_id"].notna()]
    if not len(rows):
        return table
    extra = pd.DataFrame({"sample_id": rows["sample_id"].astype(str),
                          "patient_id": rows["patient_id"].astype(str)})
    if label:
        values = rows["split_label"]
        numeric = pd.to_numeric(values, errors="coerce")
        extra[label] = numeric if numeric.notna().sum() == values.notna().sum() else values
    return pd.concat([table, extra], ignore_index=True)


def export(manifest: Manifest, out_dir: str | Path,
           formats: Iterable[str] = ("csv", "json")) -> list[Path]:
    """Write the manifest's split: ``csv`` → ``<dataset>.csv`` + sidecar ``<dataset>.json``
    (the full manifest); ``json`` → ``<dataset>.splits.json`` (fingerprint, counts and the
    sorted sample_ids of each split). Returns the paths written."""
    out_dir = Path(out_dir)
    written: list[Path] = []
    # exported manifests keep IDs exactly (other tools read them, the sidecar fingerprints
    # them): a cell a spreadsheet would run is refused, not altered (cardiobench.spreadsheet)
    refuse_formula_cells(manifest.table, f"splits export of {manifest.dataset}")
    for fmt in formats:
        if fmt == "csv":
            csv = manifest.write(out_dir / f"{manifest.dataset}.csv")
            written += [csv, csv.with_suffix(".json")]
        elif fmt == "json":
            t = manifest.table
            doc = {"dataset": manifest.dataset, "fingerprint": manifest.fingerprint,
                   "split_rule": manifest.split_rule, "counts": manifest.split_counts(),
                   "splits": {s: sorted(t.loc[t["split"] == s, "sample_id"].astype(str))
                              for s in SPLITS}}
            path = out_dir / f"{manifest.dataset}.splits.json"
            atomic_write_text(path, json.dumps(doc, indent=1, default=str))
            written.append(path)
        else:
            raise ValueError(f"unknown export format {fmt!r}; use 'csv' or 'json'")
    return written


def show(manifest: Manifest) -> pd.DataFrame:
    """Per split: patients, samples, and each label present (binary: positives and rate;
    regression: mean)."""
    t = manifest.table
    rows = []
    for split in [s for s in SPLITS if (t["split"] == s).any()]:
        grp = t[t["split"] == split]
        row: dict[str, Any] = {"split": split, "patients": int(grp["patient_id"].nunique()),
                               "samples": int(len(grp))}
        for col in LABEL_COLUMNS:
            if col not in grp or grp[col].isna().all():
                continue
            v = pd.to_numeric(grp[col], errors="coerce")
            if col in BINARY_LABELS:
                row[f"{col}_pos"] = int((v == 1).sum())
                row[f"{col}_rate"] = round(float(v.mean()), 4)
            else:
                row[f"{col}_mean"] = round(float(v.mean()), 3)
        rows.append(row)
    return pd.DataFrame(rows).set_index("split")
