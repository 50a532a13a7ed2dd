"""The manifest: one harmonised row per video or image, shared by every dataset.

A manifest is a CSV (one row per sample) plus a JSON sidecar (``<name>.json`` beside the CSV)
holding the schema version, dataset name, source root, split rule and split fingerprint.

Row schema (see ``COLUMNS``): identifiers (``sample_id`` unique in the dataset and equal to the ID
the published evaluators join on; ``patient_id`` the unit of splitting and bootstrapping; optional
``study_id``), ``split`` in {train, val, test}, ``path`` (POSIX, relative to the dataset root),
``view``, frame hints, labels and subgroup columns. Missing optional values are empty cells (NaN).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Iterable

import numpy as np
import pandas as pd

from cardiobench.atomic import atomic_write_text

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1

SPLITS = ("train", "val", "test")
VIEWS = ("A2C", "A3C", "A4C", "PSAX", "PLAX", "Other")

ID_COLUMNS = ("sample_id", "patient_id", "study_id")
CORE_COLUMNS = ("split", "path", "view")
FRAME_COLUMNS = ("key_frame", "ed_frame", "es_frame", "fps", "n_frames")
REGRESSION_LABELS = ("ef", "lvidd", "ivsd", "lvpwd")
BINARY_LABELS = ("asd", "pah", "stemi", "aortic_stenosis", "rwma")
LABEL_COLUMNS = REGRESSION_LABELS + BINARY_LABELS
SUBGROUP_COLUMNS = ("sex", "age", "bmi", "weight", "height", "image_quality", "modality")
COLUMNS = ID_COLUMNS + CORE_COLUMNS + FRAME_COLUMNS + LABEL_COLUMNS + SUBGROUP_COLUMNS

#: Physically possible label ranges (closed intervals). EF in %, dimensions in cm.
LABEL_RANGES: dict[str, tuple[float, float]] = {
    "ef": (0.0, 100.0),
    "lvidd": (0.5, 12.0),
    "ivsd": (0.1, 5.0),
    "lvpwd": (0.1, 5.0),
    **{name: (0.0, 1.0) for name in BINARY_LABELS},
}

_STRING_COLUMNS = ("sample_id", "patient_id", "study_id", "split", "path", "view", "sex",
                   "image_quality", "modality")


class ManifestError(ValueError):
    """A manifest that would corrupt a benchmark; ``problems`` lists every offending row."""

    def __init__(self, message: str, problems: list["Problem"] | None = None):
        self.problems = problems or []
        detail = "\n".join(f"  - {p}" for p in self.problems[:50])
        more = f"\n  ... and {len(self.problems) - 50} more" if len(self.problems) > 50 else ""
        super().__init__(f"{message}\n{detail}{more}" if self.problems else message)


@dataclass(frozen=True)
class Problem:
    """One defect found in a manifest or a raw download: what, where, and how bad.

    ``severity``: ``"error"`` fails preparation; ``"unusable"`` marks one sample that cannot be
    used (``prepare`` stops, or with ``--allow-incomplete`` sets the sample aside); ``"warning"``
    is reported and recorded. ``file``/``line`` locate a side-file cell as a spreadsheet user sees
    it (1-based line, the header being line 1); ``row`` is the 0-based row of the table at hand.
    """

    kind: str  # e.g. "duplicate_sample_id", "patient_in_two_splits", "missing_file"
    message: str
    sample_id: str | None = None
    row: int | None = None
    severity: str = "error"
    file: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        where = []
        if self.file is not None:
            where.append(f"{self.file}" + (f" line {self.line}" if self.line is not None else ""))
        elif self.row is not None:
            where.append(f"row {self.row}")
        if self.sample_id is not None:
            where.append(f"sample {self.sample_id!r}")
        loc = f" ({', '.join(where)})" if where else ""
        return f"[{self.severity}] {self.kind}{loc}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "message": self.message, "sample_id": self.sample_id,
                "row": self.row, "severity": self.severity, "file": self.file,
                "line": self.line}


EXCLUDED_COLUMNS = ("sample_id", "split", "path", "reason")


def _empty_excluded() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="string") for c in EXCLUDED_COLUMNS})


@dataclass
class Manifest:
    """A dataset's harmonised sample table plus the metadata of its sidecar."""

    dataset: str
    table: pd.DataFrame
    root: str = ""  # the raw download the paths are relative to
    split_rule: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    #: samples ``prepare --allow-incomplete`` set aside: ``sample_id, split, path, reason``
    excluded: pd.DataFrame = field(default_factory=_empty_excluded)

    def __post_init__(self) -> None:
        self.table = normalise_table(self.table)
        self.excluded = (_empty_excluded() if self.excluded is None or not len(self.excluded)
                         else self.excluded.reindex(columns=list(EXCLUDED_COLUMNS))
                         .astype("string").reset_index(drop=True))

    def __len__(self) -> int:
        return len(self.table)

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the split assignment (see :func:`split_fingerprint`)."""
        return split_fingerprint(self.table)

    def split_counts(self) -> dict[str, dict[str, int]]:
        """Per split: number of samples and of distinct patients."""
        return split_counts(self.table)

    def subset(self, split: str | Iterable[str]) -> pd.DataFrame:
        """Rows in one split or several."""
        wanted = [split] if isinstance(split, str) else list(split)
        return self.table[self.table["split"].isin(wanted)]

    def resolve(self, path: str) -> Path:
        """Absolute path of a manifest ``path`` value."""
        return Path(self.root) / PurePosixPath(path)

    def sidecar(self) -> dict[str, Any]:
        """The JSON sidecar content."""
        return {
            "schema_version": SCHEMA_VERSION,
            "dataset": self.dataset,
            "root": str(self.root),
            "source": self.source,
            "split_rule": self.split_rule,
            "fingerprint": self.fingerprint,
            "counts": self.split_counts(),
            "n_samples": len(self.table),
            "problems": [p.to_dict() for p in self.problems],
            "excluded": self.excluded.astype(object).where(self.excluded.notna(), None)
            .to_dict(orient="records"),
        }

    def excluded_counts(self) -> dict[str, int]:
        """Per split, how many samples ``prepare --allow-incomplete`` set aside (empty if none)."""
        if not len(self.excluded):
            return {}
        splits = self.excluded["split"].fillna("(none)").astype(str)
        return {str(k): int(v) for k, v in splits.value_counts().sort_index().items()}

    def write(self, csv_path: str | Path) -> Path:
        """Write ``<csv_path>``, its sidecar ``<stem>.json`` and ``<stem>.problems.csv`` atomically.

        The problems CSV (one row per problem and per set-aside sample) is written only when
        there is something in it; a stale one from an earlier run is replaced by an empty table.
        """
        csv_path = Path(csv_path)
        if csv_path.suffix.lower() == ".json":
            raise ManifestError(f"manifest path {csv_path} ends in .json: that name belongs to "
                                "a manifest's sidecar; give a .csv path")
        csv_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(csv_path, self.table.to_csv(index=False))
        atomic_write_text(sidecar_path(csv_path), json.dumps(self.sidecar(), indent=2, default=str))
        problems = problems_path(csv_path)
        if self.problems or len(self.excluded) or problems.exists():
            atomic_write_text(problems, problems_table(self.problems).to_csv(index=False))
        return csv_path

    @classmethod
    def read(cls, csv_path: str | Path, *, validate: bool = True,
             check_sidecar_split: bool = True) -> "Manifest":
        """Read a manifest CSV and its sidecar, validated as ``prepare`` validates.

        Refused with :class:`ManifestError` naming the rows (1-based CSV lines): a missing or
        unparsable file, a missing sidecar or one for another table (dataset, sample count, split
        fingerprint), duplicate ``sample_id``, a patient in two splits, an unknown split value,
        an absolute or escaping path, a label outside its range. ``check_sidecar_split=False``
        accepts a split edited after ``prepare`` (``splits verify`` reports such edits itself);
        ``validate=False`` skips every content check (for repair tools only).
        """
        csv_path = Path(csv_path)
        if not csv_path.exists():
            raise ManifestError(f"manifest not found: {csv_path}")
        if csv_path.suffix.lower() == ".json":
            raise ManifestError(f"{csv_path} is a sidecar; pass the manifest CSV beside it")
        try:
            table = pd.read_csv(csv_path, dtype={c: "string" for c in _STRING_COLUMNS},
                                keep_default_na=True)
        except Exception as exc:  # pandas raises many types for malformed CSVs
            raise ManifestError(f"cannot parse manifest {csv_path}: {exc}") from exc
        missing = [c for c in ("sample_id", "patient_id", "split", "path") if c not in table]
        if missing:
            raise ManifestError(f"manifest {csv_path} lacks required columns {missing}")
        meta: dict[str, Any] = {}
        side = sidecar_path(csv_path)
        if side.exists():
            try:
                meta = json.loads(side.read_text(encoding="utf-8"))
            except (ValueError, UnicodeDecodeError) as exc:
                raise ManifestError(f"sidecar {side} of manifest {csv_path} is not valid JSON "
                                    f"({exc}); rerun `cardiobench prepare`") from exc
            if not isinstance(meta, dict):
                raise ManifestError(f"sidecar {side} of manifest {csv_path} is not a JSON object")
            if meta.get("schema_version", SCHEMA_VERSION) > SCHEMA_VERSION:
                raise ManifestError(f"{side} has schema version {meta['schema_version']}, newer "
                                    f"than this cardiobench ({SCHEMA_VERSION}); upgrade cardiobench")
        elif validate:
            raise ManifestError(f"manifest {csv_path} has no sidecar {side}: a manifest is the CSV "
                                "plus the JSON `cardiobench prepare` writes beside it (dataset, "
                                "root the paths are relative to, split rule); rerun prepare")
        known = set(Problem.__dataclass_fields__)
        problems = [Problem(**{k: v for k, v in p.items() if k in known})
                    for p in meta.get("problems", [])]
        excluded = pd.DataFrame(meta.get("excluded") or [], columns=list(EXCLUDED_COLUMNS))
        m = cls(dataset=meta.get("dataset", csv_path.stem), table=table,
                root=meta.get("root", ""), split_rule=meta.get("split_rule", {}),
                source=meta.get("source", {}), problems=problems, excluded=excluded)
        if validate:
            _check_read(m, csv_path, meta, check_sidecar_split)
        return m


def sidecar_path(csv_path: str | Path) -> Path:
    """``manifest.csv`` → ``manifest.json``."""
    return Path(csv_path).with_suffix(".json")


def normalise_table(table: pd.DataFrame) -> pd.DataFrame:
    """Order columns by the schema (unknown extras after), lower-case splits, string IDs."""
    table = table.copy()
    for col in _STRING_COLUMNS:
        if col in table:
            table[col] = table[col].astype("string")
    if "split" in table:
        table["split"] = table["split"].str.strip().str.lower()
    ordered = [c for c in COLUMNS if c in table.columns]
    extras = [c for c in table.columns if c not in COLUMNS]
    return table[ordered + extras].reset_index(drop=True)


def manifest_csvs(paths: Iterable[str | Path]) -> list[Path]:
    """The manifest CSVs among ``paths`` (a folder is expanded to its ``*.csv``): the
    ``<manifest>.problems.csv`` report beside each manifest is not a manifest."""
    out: list[Path] = []
    for p in map(Path, paths):
        out += sorted(p.glob("*.csv")) if p.is_dir() else [p]
    return [p for p in out if not p.name.endswith(".problems.csv")]


def problems_path(csv_path: str | Path) -> Path:
    """``manifest.csv`` → ``manifest.problems.csv`` (every problem and set-aside sample)."""
    csv_path = Path(csv_path)
    return csv_path.with_name(f"{csv_path.stem}.problems.csv")


def problems_table(problems: Iterable[Problem]) -> pd.DataFrame:
    """One row per problem: ``severity, kind, sample_id, file, line, row, message``."""
    cols = ["severity", "kind", "sample_id", "file", "line", "row", "message"]
    return pd.DataFrame([{c: p.to_dict()[c] for c in cols} for p in problems], columns=cols)


def _check_read(m: Manifest, csv_path: Path, meta: dict[str, Any],
                check_sidecar_split: bool) -> None:
    """Refuse a manifest read from disk that ``prepare`` would not have written."""
    side = sidecar_path(csv_path)
    errors: list[Problem] = []
    n = meta.get("n_samples")
    if n is not None and int(n) != len(m.table):
        errors.append(Problem("sidecar_mismatch", f"{side} says {n} samples, the CSV holds "
                              f"{len(m.table)}: the CSV was edited or belongs to another "
                              "sidecar; rerun prepare", file=str(side)))
    elif check_sidecar_split and meta.get("fingerprint") and meta["fingerprint"] != m.fingerprint:
        errors.append(Problem("sidecar_mismatch", f"the split assignment in {csv_path} does not "
                              f"match the fingerprint recorded in {side}: the CSV was edited "
                              "after prepare; rerun prepare", file=str(side)))
    for p in validate(m, check_files=False):
        if p.severity != "error":
            continue
        line = None if p.row is None else p.row + 2
        errors.append(Problem(p.kind, p.message, sample_id=p.sample_id, row=p.row,
                              file=str(csv_path), line=line))
    if errors:
        raise ManifestError(f"manifest {csv_path} is invalid ({len(errors)} problem(s)); "
                            "refusing to use it", errors)


def split_fingerprint(table: pd.DataFrame) -> str:
    """SHA-256 over the sorted ``(sample_id, split)`` pairs followed by the per-split counts.

    Two manifests have the same fingerprint iff every sample is in the same split.
    """
    pairs = sorted(zip(table["sample_id"].astype(str), table["split"].astype(str)))
    h = hashlib.sha256()
    for sid, split in pairs:
        h.update(f"{sid}\t{split}\n".encode())
    counts = table["split"].astype(str).value_counts().sort_index()
    h.update(json.dumps({k: int(v) for k, v in counts.items()}, sort_keys=True).encode())
    return h.hexdigest()


def split_counts(table: pd.DataFrame) -> dict[str, dict[str, int]]:
    """``{split: {"samples": n, "patients": n}}`` for every split present."""
    out: dict[str, dict[str, int]] = {}
    for split, grp in table.groupby("split", sort=True):
        out[str(split)] = {"samples": int(len(grp)), "patients": int(grp["patient_id"].nunique())}
    return out


def validate(manifest: Manifest, *, check_files: bool = True,
             required_labels: Iterable[str] = ()) -> list[Problem]:
    """Every defect that would corrupt a benchmark, each naming its row and sample.

    Checks: duplicate ``sample_id``; a patient in two splits; unknown split value; path that is
    absolute or escapes the dataset root; missing file (if ``check_files``); label outside
    :data:`LABEL_RANGES`; NaN in a ``required_labels`` column; unknown view.
    """
    t = manifest.table
    problems: list[Problem] = []

    dup = t["sample_id"].duplicated(keep=False)
    for i in np.flatnonzero(dup.to_numpy()):
        problems.append(Problem("duplicate_sample_id", "sample_id occurs more than once",
                                sample_id=str(t.at[i, "sample_id"]), row=int(i)))

    bad_split = ~t["split"].isin(SPLITS)
    for i in np.flatnonzero(bad_split.fillna(True).to_numpy()):
        problems.append(Problem("unknown_split", f"split {t.at[i, 'split']!r} is not one of {SPLITS}",
                                sample_id=str(t.at[i, "sample_id"]), row=int(i)))

    per_patient = t.groupby("patient_id")["split"].nunique()
    for pid in per_patient[per_patient > 1].index:
        rows = t.index[t["patient_id"] == pid]
        splits = sorted(set(t.loc[rows, "split"].astype(str)))
        problems.append(Problem("patient_in_two_splits",
                                f"patient {pid!r} is in splits {splits} (rows {list(map(int, rows))})",
                                sample_id=str(t.at[rows[0], "sample_id"]), row=int(rows[0])))

    root = Path(manifest.root) if manifest.root else None
    for i, p in enumerate(t["path"].astype("string")):
        sid = str(t.at[i, "sample_id"])
        if pd.isna(p) or not str(p):
            problems.append(Problem("missing_path", "path is empty", sample_id=sid, row=i))
            continue
        pp = PurePosixPath(str(p))
        if pp.is_absolute() or "\\" in str(p) or (len(str(p)) > 1 and str(p)[1] == ":"):
            problems.append(Problem("absolute_path", f"path {p!r} is absolute; it must be relative "
                                    "to the dataset root", sample_id=sid, row=i))
            continue
        if ".." in pp.parts:
            problems.append(Problem("path_escapes_root", f"path {p!r} escapes the dataset root",
                                    sample_id=sid, row=i))
            continue
        if check_files and root is not None and not (root / pp).exists():
            problems.append(Problem("missing_file", f"file {root / pp} does not exist",
                                    sample_id=sid, row=i))

    for col, (lo, hi) in LABEL_RANGES.items():
        if col not in t:
            continue
        values = pd.to_numeric(t[col], errors="coerce")
        nonnum = values.isna() & t[col].notna()
        for i in np.flatnonzero(nonnum.to_numpy()):
            problems.append(Problem("label_not_numeric", f"{col}={t.at[i, col]!r} is not a number",
                                    sample_id=str(t.at[i, "sample_id"]), row=int(i)))
        out = values.notna() & ((values < lo) | (values > hi))
        for i in np.flatnonzero(out.to_numpy()):
            problems.append(Problem("label_out_of_range",
                                    f"{col}={values.iat[i]} outside [{lo}, {hi}]",
                                    sample_id=str(t.at[i, "sample_id"]), row=int(i)))
        if col in BINARY_LABELS:
            nonint = values.notna() & ~values.isin([0.0, 1.0])
            for i in np.flatnonzero((nonint & ~out).to_numpy()):
                problems.append(Problem("label_not_binary", f"{col}={values.iat[i]} is not 0 or 1",
                                        sample_id=str(t.at[i, "sample_id"]), row=int(i)))

    for col in required_labels:
        if col not in t:
            problems.append(Problem("missing_label_column", f"required label column {col!r} absent"))
            continue
        values = pd.to_numeric(t[col], errors="coerce")
        for i in np.flatnonzero(values.isna().to_numpy()):
            problems.append(Problem("missing_label", f"{col} is NaN but the task needs it",
                                    sample_id=str(t.at[i, "sample_id"]), row=int(i)))

    if "view" in t:
        bad_view = t["view"].notna() & ~t["view"].isin(VIEWS)
        for i in np.flatnonzero(bad_view.to_numpy()):
            problems.append(Problem("unknown_view", f"view {t.at[i, 'view']!r} not in {VIEWS}",
                                    sample_id=str(t.at[i, "sample_id"]), row=int(i)))
    return problems


def check(manifest: Manifest, **kwargs: Any) -> Manifest:
    """Validate and raise :class:`ManifestError` on any error-severity problem."""
    problems = validate(manifest, **kwargs)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise ManifestError(f"manifest {manifest.dataset!r} has {len(errors)} problem(s)", errors)
    return manifest


def is_missing(value: Any) -> bool:
    """True for None, NaN, pandas NA and empty strings."""
    if value is None or value is pd.NA:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value == ""
