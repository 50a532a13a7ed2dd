"""A cohort described by its user in one YAML file: the spec, its checks, and its harmoniser.

The spec (``docs/own_data.md``)::

    name: st_elsewhere_2025           # an identifier: letters, digits, _ (never a path)
    root: /data/st_elsewhere          # absolute, or relative to this YAML file
    table: labels.csv                 # CSV or XLSX under root, one row per media file
    columns: {path: file, patient: patient_id}   # optional: id, study, view, split
    split: {rule: stratified_patient, val: 0.15, test: 0.30, seed: 0, stratify: reduced_ef}
    #  or  {column: split}             # values train/val/test, any case
    tasks:
      - {name: ef, label: ef, type: regression, unit: "%", range: [5, 95]}
      - {name: reduced_ef, label: reduced_ef, type: binary, positive: 1}
      - {name: view, label: view, type: multiclass, classes: [A4C, A2C, PLAX, PSAX]}
    prompts: {ef: ef}                 # optional: zero-shot prompt sets by name, or inline
    deidentify: {salt_env: ST_ELSEWHERE_SALT}    # needed when identifiers come from DICOM tags
    description: ..., licence: ..., citation: ...  # optional, shown in the report

:func:`read_cohort` checks every field against the declared schema (type, range, allowed
values) and refuses a spec with a message naming the file and the field; nothing is written for
a refused spec. :func:`harmonise` reads the table like the built-in harmonisers read their side
files (declared columns, problems naming file, line and value), draws or reads the split, and
takes patient and study from the DICOM tags where the table gives none, pseudonymised with the
cohort's salt (:func:`cardiobench.io.dicom_ids.pseudonymize`): no identifier from a tag is ever
written in clear.

How a label column is read follows from what its task declares: ``classes`` (one of them, by
name), ``positive`` (two values; the positive one is 1), or neither (a number, within ``range``
when given). The task type named in ``type`` is checked against these by the catalogue.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Mapping

import numpy as np
import pandas as pd

from cardiobench.manifest import (CORE_COLUMNS, FRAME_COLUMNS, ID_COLUMNS, SPLITS, VIEWS,
                                  Manifest, ManifestError, Problem)
from cardiobench.schemas import Column, TableSchema, read_side_table, with_sample_ids
from cardiobench.splits import SplitSpec, apply_spec_rule, map_split_column

log = logging.getLogger(__name__)

NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
RULES = ("stratified_patient", "column")
UNITS = ("video", "patient", "study")
#: manifest columns a label may not take (they mean something else)
RESERVED = set(ID_COLUMNS + CORE_COLUMNS + FRAME_COLUMNS) - {"view"}
TOP_KEYS = {"name", "root", "table", "columns", "split", "tasks", "prompts", "deidentify",
            "description", "licence", "citation"}
TASK_KEYS = {"name", "label", "type", "unit", "range", "positive", "classes", "same_as",
             "score_per"}


class CohortError(ManifestError):
    """A cohort YAML that cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class CohortTask:
    """One task of a cohort, as declared (the catalogue turns it into a ``Task``)."""

    name: str
    label: str
    type: str
    unit: str = ""
    range: tuple[float, float] | None = None
    positive: Any = None
    classes: tuple[str, ...] = ()
    same_as: str | None = None
    score_per: str = "video"
    prompts: Any = None  # a prompt-set name, an inline prompt-set mapping, or None


@dataclass(frozen=True)
class Cohort:
    """A checked cohort spec; :attr:`spec` is the YAML's content without any secret, as the
    manifest's sidecar records it (``source["cohort"]``)."""

    name: str
    root: Path
    table: str
    columns: dict[str, str]
    split: dict[str, Any]
    tasks: tuple[CohortTask, ...]
    description: str = ""
    licence: str = ""
    citation: str = ""
    salt: str | None = field(default=None, repr=False)
    salt_source: str = ""
    spec: dict[str, Any] = field(default_factory=dict, repr=False)
    sha256: str = ""
    source_file: str = ""


def _fail(where: str, field_: str, why: str) -> CohortError:
    return CohortError(f"{where}: {field_}: {why}")


def _text(value: Any, where: str, field_: str, *, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value.strip():
        raise _fail(where, field_, f"{value!r} is not a non-empty text")
    return value.strip()


def _identifier(value: Any, where: str, field_: str) -> str:
    text = _text(value, where, field_)
    if not NAME.fullmatch(text):
        raise _fail(where, field_, f"{text!r} is not an identifier (a letter, then letters, "
                                   "digits or _; never a path)")
    return text


def _fraction(value: Any, where: str, field_: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not 0.0 < float(value) < 1.0:
        raise _fail(where, field_, f"{value!r} is not a fraction strictly between 0 and 1")
    return float(value)


def read_cohort(path: str | Path) -> Cohort:
    """Read and check the cohort YAML at ``path`` (see the module docstring)."""
    import yaml

    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise CohortError(f"cohort YAML {path} does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CohortError(f"{where} is not valid YAML (tags are refused): {exc}") from exc
    return parse_cohort(data, where, path.parent, hashlib.sha256(text.encode()).hexdigest(),
                        str(path.resolve()))


def parse_cohort(data: Any, where: str, base: Path, sha256: str = "",
                 source_file: str = "") -> Cohort:
    """Check a parsed cohort spec; ``base`` is the folder a relative ``root`` is taken from."""
    if not isinstance(data, dict):
        raise CohortError(f"{where}: expected a mapping of fields, got {type(data).__name__}")
    unknown = sorted(set(data) - TOP_KEYS)
    if unknown:
        raise _fail(where, ", ".join(unknown), f"unknown field(s); a cohort takes "
                                               f"{sorted(TOP_KEYS)}")
    for key in ("name", "root", "table", "split", "tasks"):
        if key not in data:
            raise _fail(where, key, "missing (required)")
    name = _identifier(data["name"], where, "name")
    root = Path(_text(data["root"], where, "root")).expanduser()
    root = (root if root.is_absolute() else base / root).resolve()
    table = _text(data["table"], where, "table")
    if PurePosixPath(table).is_absolute() or ".." in PurePosixPath(table).parts:
        raise _fail(where, "table", f"{table!r} must be a file under root")
    columns = _columns(data.get("columns") or {}, where)
    tasks = _tasks(data["tasks"], where, data.get("prompts"))
    split = _split(data["split"], where, columns, tasks)
    salt, salt_source = _salt(data.get("deidentify"), where)
    spec = {k: v for k, v in data.items() if k != "deidentify"}
    if data.get("deidentify"):  # record where the salt comes from, never the salt
        spec["deidentify"] = {"salt": "<given in the YAML>"} if "salt" in data["deidentify"] \
            else dict(data["deidentify"])
    spec["root"] = str(root)
    return Cohort(name, root, table, columns, split, tasks,
                  _text(data.get("description"), where, "description", required=False),
                  _text(data.get("licence"), where, "licence", required=False),
                  _text(data.get("citation"), where, "citation", required=False),
                  salt, salt_source, spec, sha256, source_file)


def _columns(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise _fail(where, "columns", f"{value!r} is not a mapping")
    allowed = {"path", "patient", "study", "view", "split", "id"}
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise _fail(where, f"columns.{unknown[0]}", f"unknown; columns maps {sorted(allowed)} "
                                                    "to the table's column names")
    out = {k: _text(v, where, f"columns.{k}") for k, v in value.items()}
    out.setdefault("path", "path")
    return out


def _tasks(value: Any, where: str, prompts: Any) -> tuple[CohortTask, ...]:
    if not isinstance(value, list) or not value:
        raise _fail(where, "tasks", "expected a non-empty list of tasks")
    if prompts is not None and not isinstance(prompts, dict):
        raise _fail(where, "prompts", f"{prompts!r} is not a mapping of task name to prompts")
    out, names = [], set()
    for i, t in enumerate(value):
        at = f"tasks[{i}]"
        if not isinstance(t, dict):
            raise _fail(where, at, f"{t!r} is not a mapping")
        unknown = sorted(set(t) - TASK_KEYS)
        if unknown:
            raise _fail(where, f"{at}.{unknown[0]}", f"unknown; a task takes {sorted(TASK_KEYS)}")
        for key in ("name", "label", "type"):
            if key not in t:
                raise _fail(where, f"{at}.{key}", "missing (required)")
        name = _identifier(t["name"], where, f"{at}.name")
        if name in names:
            raise _fail(where, f"{at}.name", f"{name!r} is given twice")
        names.add(name)
        label = _identifier(t["label"], where, f"{at}.label")
        if label in RESERVED:
            raise _fail(where, f"{at}.label", f"{label!r} is a manifest column of its own; "
                                              "name the label otherwise")
        rng = t.get("range")
        if rng is not None:
            if not (isinstance(rng, list) and len(rng) == 2 and all(
                    isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
                    for x in rng) and rng[0] < rng[1]):
                raise _fail(where, f"{at}.range", f"{rng!r} is not [low, high] with low < high")
            rng = (float(rng[0]), float(rng[1]))
        classes = t.get("classes") or ()
        if classes and (not isinstance(classes, list) or len(set(map(str, classes))) < 2 or
                        len(set(map(str, classes))) != len(classes)):
            raise _fail(where, f"{at}.classes", f"{classes!r} is not a list of two or more "
                                                "distinct class names")
        if label == "view" and classes and not set(map(str, classes)) <= set(VIEWS):
            raise _fail(where, f"{at}.classes", f"view classes must be among {list(VIEWS)}, the "
                                                "one vocabulary every dataset maps its views to")
        declared = [k for k in ("range", "positive", "classes") if t.get(k) is not None]
        if len([k for k in declared if k != "range"]) > 1:
            raise _fail(where, at, "give at most one of positive (a binary label) and classes "
                                   "(a categorical label)")
        per = t.get("score_per", "video")
        if per not in UNITS:
            raise _fail(where, f"{at}.score_per", f"{per!r} is not one of {list(UNITS)}")
        same_as = t.get("same_as")
        if same_as is not None and not (isinstance(same_as, str) and "/" in same_as):
            raise _fail(where, f"{at}.same_as", f"{same_as!r} is not a task name "
                                                "(<dataset>/<endpoint>)")
        task_prompts = (prompts or {}).get(name)
        if task_prompts is not None and not isinstance(task_prompts, (str, dict)):
            raise _fail(where, f"prompts.{name}", "a prompt-set name or an inline prompt set")
        out.append(CohortTask(name, label, _text(t["type"], where, f"{at}.type"),
                              _text(t.get("unit"), where, f"{at}.unit", required=False), rng,
                              t.get("positive"), tuple(map(str, classes)), same_as, per,
                              task_prompts))
    unknown = sorted(set(prompts or {}) - names)
    if unknown:
        raise _fail(where, f"prompts.{unknown[0]}", f"names no task; tasks: {sorted(names)}")
    return tuple(out)


def _split(value: Any, where: str, columns: Mapping[str, str],
           tasks: tuple[CohortTask, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(where, "split", f"{value!r} is not a mapping")
    if "column" in value:
        if set(value) != {"column"}:
            raise _fail(where, "split", "a split read from a column takes only {column: NAME}")
        return {"rule": "column", "column": _text(value["column"], where, "split.column")}
    rule = value.get("rule")
    if rule != "stratified_patient":
        raise _fail(where, "split.rule", f"{rule!r}: use rule: stratified_patient (with val, "
                                         "test, seed) or {column: NAME}")
    unknown = sorted(set(value) - {"rule", "val", "test", "seed", "stratify"})
    if unknown:
        raise _fail(where, f"split.{unknown[0]}", "unknown; stratified_patient takes val, test, "
                                                   "seed, stratify")
    val, test = _fraction(value.get("val"), where, "split.val"), \
        _fraction(value.get("test"), where, "split.test")
    if val + test >= 1.0:
        raise _fail(where, "split", f"val + test = {val + test:g} leaves no train patients")
    seed = value.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise _fail(where, "split.seed", f"{seed!r} is not a whole number ≥ 0")
    stratify = value.get("stratify")
    if stratify is not None:
        # whether that task is categorical is checked once its type is known (cohort_dataset)
        if not any(t.name == stratify for t in tasks):
            raise _fail(where, "split.stratify", f"{stratify!r} must name a binary or "
                                                  "multiclass task of this cohort")
    return {"rule": "stratified_patient", "val": val, "test": test, "seed": seed,
            "stratify": stratify}


def _salt(value: Any, where: str) -> tuple[str | None, str]:
    if not value:
        return None, ""
    if not isinstance(value, dict) or len(value) != 1 or not ({"salt", "salt_env"} & set(value)):
        raise _fail(where, "deidentify", "expected {salt: TEXT} or {salt_env: VARIABLE}")
    if "salt" in value:
        return _text(value["salt"], where, "deidentify.salt"), "the cohort YAML"
    var = _text(value["salt_env"], where, "deidentify.salt_env")
    salt = os.environ.get(var)
    if not salt:
        raise _fail(where, "deidentify.salt_env", f"environment variable {var} is not set")
    return salt, f"${var}"


def split_spec(cohort: Cohort) -> SplitSpec:
    """The cohort's split as a :class:`SplitSpec` (what ``splits verify`` checks against)."""
    s = cohort.split
    if s["rule"] == "column":
        return SplitSpec(cohort.name, "official", description="the cohort table's split column",
                         params={"column": s["column"]})
    task = next((t for t in cohort.tasks if t.name == s["stratify"]), None)
    return SplitSpec(cohort.name, "stratified_patient",
                     description="patient-grouped draw declared in the cohort YAML",
                     params={"test_size": s["test"], "val_size": s["val"] / (1 - s["test"]),
                             "seed": s["seed"], "label": task.label if task else None,
                             "missing_label": "stratum"})


# ----------------------------------------------------------------------------- the harmoniser
def table_schema(cohort: Cohort) -> TableSchema:
    """The declared columns of the cohort's table (labels by what their task declares)."""
    cols = [Column(cohort.columns["path"], meaning="no media file")]
    if "id" in cohort.columns:  # a row without its sample ID is no sample: named, set aside
        cols.append(Column(cohort.columns["id"], meaning="no sample ID"))
    for key in ("patient", "study", "view"):
        if key in cohort.columns:
            cols.append(Column(cohort.columns[key], empty="missing"))
    if cohort.split["rule"] == "column":
        cols.append(Column(cohort.split["column"], "enum", allowed=tuple(SPLITS),
                           meaning="no split"))
    seen = {c.name for c in cols}
    for t in cohort.tasks:
        if t.label in seen:
            continue
        seen.add(t.label)
        if t.classes:
            cols.append(Column(t.label, "enum", allowed=t.classes, empty="missing",
                               meaning=f"no {t.label} class"))
        elif t.positive is not None:
            cols.append(Column(t.label, empty="missing"))
        else:
            cols.append(Column(t.label, "float", range=t.range, empty="missing"))
    return TableSchema(f"cohort {cohort.name} table", tuple(cols))


_TRUE_WORDS = frozenset({"true", "yes", "y", "on"})
_FALSE_WORDS = frozenset({"false", "no", "n", "off"})


def _binary(values: pd.Series, task: CohortTask, side: Any) -> tuple[pd.Series, list[Problem]]:
    """0/1 from a two-valued column: the declared positive value is 1."""
    def norm(v: Any) -> str:
        # YAML reads an unquoted `positive: yes` as True, so yes/no-like words and booleans
        # compare as the truth they spell, whatever the case the table writes them in.
        if isinstance(v, (bool, np.bool_)):
            return "1.0" if v else "0.0"
        text = str(v).strip()
        if text.casefold() in _TRUE_WORDS:
            return "1.0"
        if text.casefold() in _FALSE_WORDS:
            return "0.0"
        try:
            f = float(text)
            return repr(f) if math.isfinite(f) else text
        except (TypeError, ValueError):
            return text

    pos = norm(task.positive)
    present = values.dropna().map(norm)
    others = sorted(set(present) - {pos})
    problems: list[Problem] = []
    if len(others) > 1:  # a third value: every row holding a value but the most common other
        keep = present[present != pos].value_counts().index[0]
        for i in present.index[(present != pos) & (present != keep)]:
            problems.append(Problem("label_not_binary",
                                    f"{task.label} = {values[i]!r}: {task.label} holds more "
                                    f"than two values ({sorted(set(map(str, values.dropna())))}"
                                    f"); the positive is {task.positive!r}", row=int(i),
                                    file=str(side.path),
                                    line=int(side.line.iat[i]), severity="unusable"))
    coded = values.map(lambda v: np.nan if v is None or pd.isna(v) else float(norm(v) == pos))
    return coded.astype(float), problems


def harmonise(raw_root: Path, spec: SplitSpec, cohort: Cohort) -> Manifest:
    """The cohort's table → manifest: declared columns, labels coded, identifiers from the
    DICOM tags (pseudonymised) where the table gives none, the split read or drawn."""
    raw_root = Path(raw_root)
    src = raw_root / cohort.table
    if not src.is_file():
        raise ManifestError(f"{cohort.name}: table {src} does not exist (table: "
                            f"{cohort.table!r} under root {raw_root})")
    side = read_side_table(src, table_schema(cohort))
    t = side.table
    cols = cohort.columns
    paths = t[cols["path"]].astype("string").str.strip().str.replace("\\", "/", regex=False)
    errors = []
    for i, p in paths.items():
        pp = PurePosixPath(str(p))
        if not pd.isna(p) and (pp.is_absolute() or ".." in pp.parts or
                               (len(str(p)) > 1 and str(p)[1] == ":")):
            errors.append(Problem("path_escapes_root", f"{cols['path']} = {p!r} is not a path "
                                  f"under root {raw_root}", row=int(i), file=str(src),
                                  line=int(side.line.iat[i])))
    if errors:
        raise ManifestError(f"{cohort.name}: {len(errors)} path(s) leave the cohort root",
                            errors)
    ids = t[cols["id"]] if "id" in cols else paths.map(
        lambda p: str(PurePosixPath(str(p)).with_suffix("")) if not pd.isna(p) else p)
    table = pd.DataFrame({"sample_id": ids.astype("string"), "path": paths})
    problems = with_sample_ids(side.problems, table["sample_id"])
    raw_patient, raw_study = _identities(t, cohort, raw_root, table, problems)
    for task in cohort.tasks:
        values = t[task.label]
        if task.positive is not None:
            coded, bad = _binary(values, task, side)
            problems += with_sample_ids(bad, table["sample_id"])
            table[task.label] = coded
        else:
            table[task.label] = values
    if "view" in cols and "view" not in table:
        table["view"] = t[cols["view"]].astype("string").str.strip()
    table["patient_id"] = _pseudonyms(raw_patient, cohort.salt, "patient")
    table["study_id"] = _pseudonyms(raw_study, cohort.salt, "study")
    table["split"] = _split_column(cohort, spec, t, table, side, problems)
    return Manifest(dataset=cohort.name, table=table, root=str(raw_root),
                    split_rule={"rule": cohort.split["rule"], **{k: v for k, v in
                                cohort.split.items() if k != "rule"}},
                    source={"cohort": cohort.spec, "cohort_sha256": cohort.sha256,
                            "cohort_file": cohort.source_file, "title": cohort.name,
                            "description": cohort.description, "licence": cohort.licence,
                            "citation": cohort.citation,
                            "pseudonym_salt": cohort.salt_source or None},
                    problems=problems)


def _identities(t: pd.DataFrame, cohort: Cohort, root: Path, table: pd.DataFrame,
                problems: list[Problem]) -> tuple[pd.Series, pd.Series]:
    """Raw patient and study per row: the table's, else the DICOM tags' (read, never written);
    a file with neither is its own patient (warned once, counted)."""
    from cardiobench.io import MediaError
    from cardiobench.io.dicom_ids import dicom_identifiers

    # every value carries where it came from (table:, tag:, file:), whatever text it holds
    def given(key: str) -> pd.Series:
        if key not in cohort.columns:
            return pd.Series(pd.NA, index=t.index, dtype="string")
        values = t[cohort.columns[key]].astype("string").str.strip()
        return "table:" + values.mask(values == "")

    patient, study = given("patient"), given("study")
    from_tags = 0
    alone = []
    for i in t.index[patient.isna() | study.isna()]:
        p = table.at[i, "path"]
        try:
            ident = dicom_identifiers(root / str(p)) if not pd.isna(p) else None
        except MediaError:  # not a DICOM, or unreadable (the media check names it)
            ident = None
        if ident is not None:
            from_tags += 1
            if pd.isna(patient[i]) and ident.patient_id:
                patient[i] = "tag:" + ident.patient_id
            if pd.isna(study[i]) and ident.study_uid:
                study[i] = "tag:" + ident.study_uid
        if pd.isna(patient[i]):
            alone.append(i)
            patient[i] = "file:" + str(table.at[i, "sample_id"])
    if from_tags and not cohort.salt:
        raise CohortError(f"{cohort.name}: patient or study of {from_tags} file(s) come from "
                          "DICOM tags, which are never written in clear: give deidentify: "
                          "{salt_env: VARIABLE} (or {salt: TEXT}) in the cohort YAML")
    if alone:
        problems.append(Problem("patient_unknown", f"{len(alone)} file(s) have no patient in "
                                "the table and none in DICOM tags: each is its own patient "
                                "(one patient's files could then fall into two splits)",
                                severity="warning"))
    return patient, study


def _pseudonyms(raw: pd.Series, salt: str | None, kind: str) -> pd.Series:
    """The table's identifiers as given; identifiers from tags pseudonymised with the salt."""
    from cardiobench.io.dicom_ids import pseudonymize

    def one(v: Any) -> Any:
        if pd.isna(v):
            return pd.NA
        origin, _, value = str(v).partition(":")
        if origin == "tag":
            return pseudonymize(value, salt, kind=kind)  # type: ignore[arg-type]
        return value  # the table's own identifier, or the file's sample ID

    return raw.map(one).astype("string")


def _split_column(cohort: Cohort, spec: SplitSpec, t: pd.DataFrame, table: pd.DataFrame,
                  side: Any, problems: list[Problem]) -> pd.Series:
    """The split column read (train/val/test, any case), or the declared patient-grouped draw
    on the manifest's own patient identifiers and labels, so that ``splits verify`` recomputes
    it from the manifest alone (with tag-derived pseudonyms, the salt is part of the draw)."""
    if cohort.split["rule"] == "column":
        col = cohort.split["column"]
        split, bad = map_split_column(t[col], {s: s for s in SPLITS}, source=str(side.path),
                                      column=col, ids=table["sample_id"],
                                      lines=side.line.tolist(), severity="unusable",
                                      skip_rows=side.bad_rows)
        problems += bad
        return split
    split = apply_spec_rule(spec, table)
    assert split is not None  # a drawn split always has a rule to apply
    return split