"""The manifest: one harmonised row per video or image, shared by every dataset.

A manifest is a CSV (one row per sample) plus a JSON sidecar (``<name>.json`` beside the CSV)
holding the schema version, dataset name, source root, split rule and split fingerprint.

Row schema (see ``COLUMNS``): identifiers (``sample_id`` unique in the dataset and equal to the ID
the published evaluators join on; ``patient_id`` the unit of splitting and bootstrapping; optional
``study_id``), ``split`` in {train, val, test}, ``path`` (POSIX, relative to the dataset root),
``view``, frame hints, labels and subgroup columns, and the identity of each media file as
``prepare`` read it (``media_stat``, ``media_hash``: see :mod:`cardiobench.io.identity`). Missing
optional values are empty cells (NaN).

**The pair.** The CSV and its sidecar are one unit: :meth:`Manifest.write` writes both (and the
problems report) to temporary files and only then moves them into place, and the sidecar records
the SHA-256 of the CSV's bytes (``table_sha256``), so a table paired with a sidecar it was not
written with (an interrupted ``prepare``, a copy, an edit) is refused on read. A sidecar without
``table_sha256`` (written by an older cardiobench) is read with a warning: its pairing cannot be
checked, and rerunning ``prepare`` records it.

**The root.** The sidecar holds the absolute, resolved download folder. ``Manifest.read(csv,
root=DIR)`` (``--raw DIR`` on ``embed``/``run``) reads the media from another folder instead;
both are recorded (:meth:`Manifest.provenance`). A relative root in an older sidecar is refused
wherever media are read, since it would be resolved against whatever folder the command runs in.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Iterable

import numpy as np
import pandas as pd

from cardiobench.atomic import atomic_write_files

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1

SPLITS = ("train", "val", "test")
VIEWS = ("A2C", "A3C", "A4C", "PSAX", "PLAX", "Other")

ID_COLUMNS = ("sample_id", "patient_id", "study_id")
CORE_COLUMNS = ("split", "path", "view")
FRAME_COLUMNS = ("key_frame", "ed_frame", "es_frame", "fps", "n_frames")


@dataclass(frozen=True)
class Label:
    """A label column of the built-in datasets: its kind, physical unit and possible range."""

    name: str
    kind: str  # "value" (a measurement) or "binary" (0/1)
    unit: str
    range: tuple[float, float]
    meaning: str


#: The label columns of the built-in datasets, described once (tasks, validation and the report
#: read them from here). EF in %, dimensions in cm; ranges are physically possible values.
LABELS: dict[str, Label] = {lab.name: lab for lab in (
    Label("ef", "value", "%", (0.0, 100.0), "left-ventricular ejection fraction"),
    Label("lvidd", "value", "cm", (0.5, 12.0), "LV internal diameter in diastole"),
    Label("ivsd", "value", "cm", (0.1, 5.0), "interventricular septum thickness in diastole"),
    Label("lvpwd", "value", "cm", (0.1, 5.0), "LV posterior wall thickness in diastole"),
    Label("asd", "binary", "", (0.0, 1.0), "atrial septal defect"),
    Label("pah", "binary", "", (0.0, 1.0), "pulmonary arterial hypertension"),
    Label("stemi", "binary", "", (0.0, 1.0), "ST-elevation myocardial infarction"),
    Label("aortic_stenosis", "binary", "", (0.0, 1.0), "aortic stenosis (any grade)"),
    Label("rwma", "binary", "", (0.0, 1.0), "regional wall-motion abnormality"),
)}
REGRESSION_LABELS = tuple(n for n, lab in LABELS.items() if lab.kind == "value")
BINARY_LABELS = tuple(n for n, lab in LABELS.items() if lab.kind == "binary")
LABEL_COLUMNS = tuple(LABELS)
SUBGROUP_COLUMNS = ("sex", "age", "bmi", "weight", "height", "image_quality", "modality")
#: what ``prepare`` read: stat key and content hash of each media file (cardiobench.io.identity)
MEDIA_COLUMNS = ("media_stat", "media_hash")
COLUMNS = (ID_COLUMNS + CORE_COLUMNS + FRAME_COLUMNS + LABEL_COLUMNS + SUBGROUP_COLUMNS
           + MEDIA_COLUMNS)

#: a dataset name: it names cache and results folders, so it may never hold a path
DATASET_NAME = re.compile(r"[A-Za-z0-9_]+")

#: Physically possible label ranges (closed intervals), from :data:`LABELS`.
LABEL_RANGES: dict[str, tuple[float, float]] = {n: lab.range for n, lab in LABELS.items()}

_STRING_COLUMNS = ("sample_id", "patient_id", "study_id", "split", "path", "view", "sex",
                   "image_quality", "modality") + MEDIA_COLUMNS


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
    it (1-based line, the header being line 1); ``row`` is the 0-based row of the table at hand;
    ``column`` is the side-file column (its header as written) a cell problem is about, so that
    code deciding what a problem costs reads it here, never from ``message``. ``column`` is for
    that decision only: it is not part of :meth:`to_dict`, the sidecar or the problems CSV, whose
    ``message`` already names it.
    """

    kind: str  # e.g. "duplicate_sample_id", "patient_in_two_splits", "missing_file"
    message: str
    sample_id: str | None = None
    row: int | None = None
    severity: str = "error"
    file: str | None = None
    line: int | None = None
    column: str | None = None

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


EXCLUDED_COLUMNS = ("sample_id", "split", "patient_id", "path", "reason", "split_label")


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
    #: the CSV this manifest was read from ("" when built in memory)
    csv_path: str = ""
    #: where ``root`` came from: ``sidecar_root`` (as recorded) and, when the reader gave
    #: another folder, ``given_root``
    root_origin: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.table = normalise_table(self.table)
        self.excluded = (_empty_excluded() if self.excluded is None or not len(self.excluded)
                         else self.excluded.reindex(columns=list(EXCLUDED_COLUMNS))
                         .astype("string").reset_index(drop=True))

    def __len__(self) -> int:
        return len(self.table)

    @property
    def path(self) -> Path | None:
        """The CSV this manifest was read from or last written to (None when built in memory)."""
        return Path(self.csv_path) if self.csv_path else None

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
        """Absolute path of a manifest ``path`` value (under :meth:`media_root`)."""
        return self.media_root() / PurePosixPath(str(path))

    def media_paths(self) -> list[Path]:
        """The absolute file of every row, in table order (:meth:`resolve` of each ``path``)."""
        root = self.media_root()
        return [root / PurePosixPath(str(p)) for p in self.table["path"]]

    def media_root(self, must_exist: bool = False) -> Path:
        """The absolute folder the ``path`` values are relative to.

        Raises :class:`ManifestError` with the way on when there is none, when a sidecar
        recorded it relative (ambiguous: it would be read from the current folder), or, with
        ``must_exist``, when the folder is absent (a moved download).
        """
        where = f" (sidecar {sidecar_path(self.csv_path)})" if self.csv_path else ""
        way = ("point at the download with `--raw DIR` on embed/run (library: "
               "Manifest.read(csv, root=DIR)), or rerun `cardiobench prepare`")
        if not self.root:
            raise ManifestError(f"{self.dataset}: the manifest records no download folder"
                                f"{where}; {way}")
        from_sidecar = bool(self.root_origin) and "given_root" not in self.root_origin
        root = Path(self.root).expanduser()
        if not root.is_absolute():
            if from_sidecar:  # in memory, a relative root means the current folder, as typed
                raise ManifestError(
                    f"{self.dataset}: the sidecar {sidecar_path(self.csv_path)} records the "
                    f"download folder as the relative path {self.root!r} (an older cardiobench "
                    "stored it as typed), which would be read from whatever folder this command "
                    f"runs in (now {Path.cwd()}); {way}")
            root = root.resolve()
        if must_exist and not root.is_dir():
            recorded = (f"recorded in {sidecar_path(self.csv_path)} at prepare" if from_sidecar
                        else "given")
            raise ManifestError(
                f"{self.dataset}: the download folder {root} ({recorded}) does not exist: the "
                f"download was moved, renamed or is on another machine; {way} (the files are "
                "checked against the content hashes recorded at prepare)")
        return root

    def provenance(self) -> dict[str, Any]:
        """Where the media were read from, for results: ``manifest_root`` and, when a reader
        gave another folder than the sidecar's, ``sidecar_root`` beside it; for a cohort
        described by its user, ``dataset_source`` (its YAML's description, licence, citation
        and hash), which the report shows at the top of the cohort's sections."""
        out: dict[str, Any] = {"manifest_root": str(self.root)}
        if "given_root" in self.root_origin:
            out["sidecar_root"] = self.root_origin.get("sidecar_root", "")
            out["root_given"] = True
        src = self.source or {}
        if "cohort" in src:
            out["dataset_source"] = {k: src.get(k) for k in (
                "title", "description", "licence", "citation", "cohort_sha256")}
        return out

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
        """Write ``<csv_path>``, its sidecar ``<stem>.json`` and ``<stem>.problems.csv`` as one
        unit: all three are written to temporary files first and moved into place only when
        every one is complete, and the sidecar records the CSV's SHA-256 (``table_sha256``).

        The problems CSV (one row per problem and per set-aside sample) is written only when
        there is something in it; a stale one from an earlier run is replaced by an empty table.
        """
        csv_path = Path(csv_path)
        if csv_path.suffix.lower() == ".json":
            raise ManifestError(f"manifest path {csv_path} ends in .json: that name belongs to "
                                "a manifest's sidecar; give a .csv path")
        table = self.table.to_csv(index=False).encode("utf-8")
        side = {**self.sidecar(), "table_sha256": hashlib.sha256(table).hexdigest()}
        files = {csv_path: table,
                 sidecar_path(csv_path): json.dumps(side, indent=2, default=str).encode("utf-8")}
        problems = problems_path(csv_path)
        if self.problems or len(self.excluded) or problems.exists():
            files[problems] = problems_table(self.problems).to_csv(index=False).encode("utf-8")
        atomic_write_files(files)
        self.csv_path = str(csv_path)
        return csv_path

    @classmethod
    def read(cls, csv_path: str | Path, *, validate: bool = True,
             check_sidecar_split: bool = True, root: str | Path | None = None) -> "Manifest":
        """Read a manifest CSV and its sidecar, validated as ``prepare`` validates.

        Refused with :class:`ManifestError` naming the rows (1-based CSV lines): a missing or
        unparsable file, a missing sidecar or one for another table (dataset, sample count, split
        fingerprint, SHA-256 of the table), a sidecar ``dataset`` that is not a name (letters,
        digits, ``_``), duplicate ``sample_id``, a patient in two splits, an unknown split value,
        an absolute or escaping path, a label outside its range. ``check_sidecar_split=False``
        accepts a table edited after ``prepare`` (``splits verify`` reports split edits itself);
        ``validate=False`` skips every content check (for repair tools only). ``root`` reads the
        media from that folder instead of the sidecar's (a moved download); both are kept in
        :attr:`root_origin` and :meth:`provenance`.
        """
        csv_path = Path(csv_path)
        if not csv_path.exists():
            raise ManifestError(f"manifest not found: {csv_path}")
        if csv_path.suffix.lower() == ".json":
            raise ManifestError(f"{csv_path} is a sidecar; pass the manifest CSV beside it")
        try:
            data = csv_path.read_bytes()
            table = pd.read_csv(io.BytesIO(data), dtype={c: "string" for c in _STRING_COLUMNS},
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
        if "dataset" in meta and not (isinstance(meta["dataset"], str)
                                      and DATASET_NAME.fullmatch(meta["dataset"])):
            raise ManifestError(f"sidecar {side} of manifest {csv_path}: dataset "
                                f"{meta['dataset']!r} is not a dataset name (letters, digits and "
                                "_ only; it names the cache and results folders, so it may not "
                                "hold a path); rerun `cardiobench prepare`")
        known = set(Problem.__dataclass_fields__)
        problems = [Problem(**{k: v for k, v in p.items() if k in known})
                    for p in meta.get("problems", [])]
        excluded = pd.DataFrame(meta.get("excluded") or [], columns=list(EXCLUDED_COLUMNS))
        sidecar_root = str(meta.get("root", "") or "")
        origin = {"sidecar_root": sidecar_root}
        if root is not None:
            given = Path(root).expanduser().resolve()
            if not given.is_dir():
                raise ManifestError(f"{csv_path}: the download folder given for it, {root}, "
                                    "does not exist")
            origin["given_root"] = str(given)
            log.info("%s: reading media from %s (the sidecar records %s)", csv_path, given,
                     sidecar_root or "none")
        m = cls(dataset=meta.get("dataset", csv_path.stem), table=table,
                root=origin.get("given_root", sidecar_root),
                split_rule=meta.get("split_rule", {}), source=meta.get("source", {}),
                problems=problems, excluded=excluded, csv_path=str(csv_path),
                root_origin=origin)
        if validate:
            _check_read(m, csv_path, meta, check_sidecar_split,
                        hashlib.sha256(data).hexdigest())
        return m


def root_overrides(values: Iterable[str] | None) -> dict[str | None, str]:
    """``--raw`` values → ``{dataset or None: folder}``: ``DATASET=DIR`` for one dataset, a bare
    ``DIR`` for the only manifest of the command. A dataset given twice is refused."""
    out: dict[str | None, str] = {}
    for value in values or []:
        name, sep, folder = str(value).partition("=")
        key: str | None = name if sep and DATASET_NAME.fullmatch(name) else None
        folder = folder if key is not None else str(value)
        if key in out:
            raise ManifestError(f"--raw given twice for {key or 'the manifest'}: {out[key]!r} "
                                f"and {folder!r}")
        out[key] = folder
    return out


def read_manifests(paths: Iterable[str | Path], raw: Iterable[str] | None = None,
                   **kwargs: Any) -> list[Manifest]:
    """Read every manifest, each from its own download folder where ``raw`` (``--raw`` values,
    see :func:`root_overrides`) gives one; a bare folder needs exactly one manifest, and a
    ``DATASET=DIR`` naming no manifest given is refused."""
    paths = list(paths)
    roots = root_overrides(raw)
    if None in roots and len(paths) != 1:
        raise ManifestError(f"--raw {roots[None]} without a dataset name needs exactly one "
                            f"manifest, got {len(paths)}; write --raw DATASET=DIR per manifest")
    out = []
    for p in paths:
        given = roots.get(_sidecar_dataset(p), roots.get(None))
        out.append(Manifest.read(p, root=given, **kwargs))
    unknown = sorted(k for k in roots if k is not None and k not in {m.dataset for m in out})
    if unknown:
        raise ManifestError(f"--raw names dataset(s) {unknown} that no manifest given is for "
                            f"(manifests: {sorted(m.dataset for m in out)})")
    return out


def _sidecar_dataset(csv_path: str | Path) -> str | None:
    """The ``dataset`` a manifest's sidecar names (None if it cannot be read: the full read
    that follows names the fault)."""
    try:
        meta = json.loads(sidecar_path(csv_path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta.get("dataset") if isinstance(meta, dict) else None


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


_UNPAIRED_WARNED: set[str] = set()


def _check_read(m: Manifest, csv_path: Path, meta: dict[str, Any],
                check_sidecar_split: bool, table_sha256: str) -> None:
    """Refuse a manifest read from disk that ``prepare`` would not have written."""
    side = sidecar_path(csv_path)
    errors: list[Problem] = []
    recorded = meta.get("table_sha256")
    if not recorded:
        if str(csv_path) not in _UNPAIRED_WARNED:
            _UNPAIRED_WARNED.add(str(csv_path))
            log.warning("%s records no SHA-256 of %s (written by an older cardiobench): that "
                        "the two belong together cannot be checked; rerun `cardiobench prepare` "
                        "to record it", side, csv_path)
    elif recorded != table_sha256:
        msg = (f"{csv_path} is not the table {side} was written with (SHA-256 "
               f"{table_sha256[:12]}…, the sidecar records {recorded[:12]}…): an interrupted "
               "prepare, a table copied from another manifest, or an edit after prepare; rerun "
               "`cardiobench prepare`")
        if check_sidecar_split:
            errors.append(Problem("sidecar_mismatch", msg, file=str(side)))
        else:
            log.warning("%s", msg)
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
    root = Path(manifest.root) if manifest.root and check_files else None
    return (_identity_problems(t) + _path_problems(t, root) + _label_value_problems(t)
            + _required_label_problems(t, required_labels) + _view_problems(t))


def _identity_problems(t: pd.DataFrame) -> list[Problem]:
    """Identifiers and splits: duplicate ``sample_id``, unknown split, patient in two splits."""
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
    return problems


def _path_problems(t: pd.DataFrame, root: Path | None) -> list[Problem]:
    """Paths: empty, absolute, escaping the dataset root, or (with a ``root``) no such file."""
    problems: list[Problem] = []
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
        if root is not None and not (root / pp).exists():
            problems.append(Problem("missing_file", f"file {root / pp} does not exist",
                                    sample_id=sid, row=i))
    return problems


def _label_value_problems(t: pd.DataFrame) -> list[Problem]:
    """Label values: not a number, outside :data:`LABEL_RANGES`, a binary label not 0 or 1."""
    problems: list[Problem] = []
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
    return problems


def _required_label_problems(t: pd.DataFrame, required: Iterable[str]) -> list[Problem]:
    """Labels a task needs: the column absent, or a sample without a value."""
    problems: list[Problem] = []
    for col in required:
        if col not in t:
            problems.append(Problem("missing_label_column", f"required label column {col!r} absent"))
            continue
        values = pd.to_numeric(t[col], errors="coerce")
        for i in np.flatnonzero(values.isna().to_numpy()):
            problems.append(Problem("missing_label", f"{col} is NaN but the task needs it",
                                    sample_id=str(t.at[i, "sample_id"]), row=int(i)))
    return problems


def _view_problems(t: pd.DataFrame) -> list[Problem]:
    """Views: a value outside :data:`VIEWS` (an empty view is allowed)."""
    if "view" not in t:
        return []
    bad_view = t["view"].notna() & ~t["view"].isin(VIEWS)
    return [Problem("unknown_view", f"view {t.at[i, 'view']!r} not in {VIEWS}",
                    sample_id=str(t.at[i, "sample_id"]), row=int(i))
            for i in np.flatnonzero(bad_view.to_numpy())]


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
