"""Declared schemas for the side files the harmonisers read, and one robust reader for them.

A :class:`TableSchema` says, per column a harmoniser uses: its exact name, its type (text,
number, integer, or one of a fixed set of values), the allowed range, and what an empty cell
means -- ``"unusable"`` (the sample has no usable value: it is named and set aside or the run
stops) or ``"missing"`` (the value was not recorded; it becomes an empty cell in the manifest,
which only an optional column may hold). :func:`read_side_table` applies it:

* **file-level faults raise** :class:`~cardiobench.manifest.ManifestError` naming the file: absent,
  unreadable, unparsable, or a required column missing (the message lists the columns expected
  and the columns found, and points at a near-miss such as ``Seg 2`` for ``SEG2``);
* **cell-level faults become problems** naming file, 1-based line (as a spreadsheet shows it, the
  header being line 1), column and value, e.g. ``EF = '55%' is not a number``. No bad cell is
  ever turned into NaN, 0 or a negative class silently;
* **tolerated quirks are handled and recorded**: a UTF-8 byte-order mark, Windows or old-Mac line
  ends, a file in Windows-1252/latin-1 instead of UTF-8 (decoded as such, with a warning), a
  header row repeated inside the data (dropped, with a warning naming its lines), XLSX merged
  cells (each cell of a merged range takes the range's value, with a warning naming the range),
  a workbook with several sheets (only the first is read: a warning names the others, and an
  error about the first sheet's columns says which sheet was read and which exist),
  surrounding spaces in names and values, and values in another letter case (``train``/``TRAIN``);
* **extra columns are ignored**: only declared columns are returned, so a download carrying more
  columns (or one of ours twice, e.g. TMED-2's ``SourceFolder``) never collides with them.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from cardiobench.manifest import ManifestError, Problem

log = logging.getLogger(__name__)

EMPTY_MEANINGS = ("unusable", "missing")
TYPES = ("str", "float", "int", "enum")


@dataclass(frozen=True)
class Column:
    """One declared column: name, type, allowed values or range, meaning of an empty cell."""

    name: str
    type: str = "str"
    allowed: tuple[str, ...] = ()  # "enum": canonical spellings, matched ignoring case/spaces
    range: tuple[float, float] | None = None  # numbers: closed interval
    empty: str = "unusable"
    meaning: str = ""

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ValueError(f"column {self.name}: type {self.type!r} not in {TYPES}")
        if self.empty not in EMPTY_MEANINGS:
            raise ValueError(f"column {self.name}: empty {self.empty!r} not in {EMPTY_MEANINGS}")
        if self.type == "enum" and not self.allowed:
            raise ValueError(f"column {self.name}: an enum needs allowed values")


@dataclass(frozen=True)
class ColumnFamily:
    """Numbered columns such as ``SEG1..SEGn``: ``prefix`` + 1..n, at least ``min_count``.

    Any header that looks like a member once case, spaces and underscores are ignored
    (``Seg 2``, ``seg_2``) but is not spelled exactly ``<prefix><n>`` is an error, as is a gap in
    the numbering: a renamed member is never silently dropped.
    """

    prefix: str
    column: Column  # the type and empty-cell rule every member shares (its name is ignored)
    min_count: int = 1


@dataclass(frozen=True)
class TableSchema:
    """The declared columns of one side file; ``description`` names it in messages."""

    description: str
    columns: tuple[Column, ...]
    families: tuple[ColumnFamily, ...] = ()

    def names(self) -> list[str]:
        """Every declared column name (families as ``PREFIX1..n``)."""
        return [c.name for c in self.columns] + [f"{f.prefix}1..n" for f in self.families]


@dataclass
class SideTable:
    """A side file read against its schema.

    ``table``: the declared columns only, typed (numbers float, enums in canonical spelling,
    text stripped), with NaN/NA where a cell was empty or bad; ``line``: 1-based line of each row
    in the file; ``problems``: every cell fault (severity ``"unusable"``, ``row`` = row of
    ``table``, ``column`` = the column's header) and every tolerated quirk (``"warning"``);
    ``bad_rows``: rows of ``table`` with at least one unusable cell; ``family_columns``: the
    members found per family prefix.
    """

    path: Path
    table: pd.DataFrame
    line: pd.Series
    problems: list[Problem] = field(default_factory=list)
    bad_rows: set[int] = field(default_factory=set)
    family_columns: dict[str, list[str]] = field(default_factory=dict)



def _norm(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", str(name)).casefold()


def _decode(path: Path, data: bytes, problems: list[Problem]) -> str:
    """Bytes → text: UTF-8 (BOM dropped); else Windows-1252/latin-1, recorded as a warning."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        for enc in ("cp1252", "latin-1"):
            try:
                text = data.decode(enc)
                break
            except UnicodeDecodeError:
                continue
        problems.append(Problem("not_utf8", f"byte 0x{data[exc.start]:02x} is not UTF-8; the file "
                                f"was read as {enc} (save it as UTF-8 to silence this); check "
                                "non-ASCII names", file=str(path), line=line, severity="warning"))
        return text


def _cell(value: object) -> str:
    """A raw cell as text: None/NaN → "", whole floats from spreadsheets → "55" not "55.0"."""
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value).strip()


def _read_xlsx(path: Path, problems: list[Problem]) -> list[list[str]]:
    import openpyxl

    try:
        wb = openpyxl.load_workbook(path, data_only=True)
    except Exception as exc:  # zipfile/openpyxl raise many types for a corrupt workbook
        raise ManifestError(f"cannot read workbook {path}: {type(exc).__name__}: {exc}") from exc
    ws = wb.worksheets[0]
    if len(wb.sheetnames) > 1:
        problems.append(Problem("other_sheets_ignored", _sheet_note(wb.sheetnames),
                                file=str(path), severity="warning"))
    grid = [list(r) for r in ws.iter_rows(values_only=True)]
    for rng in list(ws.merged_cells.ranges):
        value = grid[rng.min_row - 1][rng.min_col - 1] if rng.min_row <= len(grid) else None
        for r in range(rng.min_row, rng.max_row + 1):
            for c in range(rng.min_col, rng.max_col + 1):
                if r - 1 < len(grid) and c - 1 < len(grid[r - 1]):
                    grid[r - 1][c - 1] = value
        if rng.min_row > 1:
            problems.append(Problem("merged_cells", f"cells {rng.coord} are merged; each takes "
                                    f"the value {_cell(value)!r} of {rng.start_cell.coordinate}",
                                    file=str(path), line=rng.min_row, severity="warning"))
    return [[_cell(v) for v in row] for row in grid]


def _sheet_note(names: list[str]) -> str:
    """What a reader of a several-sheet workbook must know: only the first sheet is read."""
    return (f"only the first sheet, {names[0]!r}, of the workbook was read; it also has sheets "
            f"{names[1:]}: the labels must be on the first sheet")


def _read_csv(path: Path, problems: list[Problem]) -> list[list[str]]:
    text = _decode(path, path.read_bytes(), problems)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    try:
        return [[c.strip() for c in row] for row in csv.reader(io.StringIO(text))]
    except csv.Error as exc:
        raise ManifestError(f"cannot parse {path}: {exc}") from exc


def read_rows(path: str | Path, problems: list[Problem]) -> tuple[list[str], list[list[str]], list[int]]:
    """``(header, data rows, 1-based line of each row)`` of a CSV or the first XLSX sheet.

    Blank rows are skipped; a repeat of the header row inside the data is dropped with a warning.
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"required file {path} does not exist")
    try:
        grid = _read_xlsx(path, problems) if path.suffix.lower() in (".xlsx", ".xlsm") \
            else _read_csv(path, problems)
    except PermissionError as exc:
        raise ManifestError(f"cannot read {path}: permission denied") from exc
    numbered = [(i + 1, row) for i, row in enumerate(grid) if any(c != "" for c in row)]
    if not numbered:
        raise ManifestError(f"{path} is empty: no header row")
    _, header = numbered[0]
    header = [h.lstrip("\ufeff").strip() for h in header]
    rows, lines, repeats = [], [], []
    for line, row in numbered[1:]:
        row = (row + [""] * len(header))[: max(len(header), len(row))]
        if [c for c in row[: len(header)]] == header:
            repeats.append(line)
            continue
        rows.append(row)
        lines.append(line)
    if repeats:
        problems.append(Problem("repeated_header", f"the header row is repeated at line(s) "
                                f"{repeats[:5]}{' ...' if len(repeats) > 5 else ''}; dropped",
                                file=str(path), line=repeats[0], severity="warning"))
    return header, rows, lines


def _resolve_columns(path: Path, schema: TableSchema,
                     header: list[str]) -> tuple[dict[str, int], dict[str, list[str]]]:
    """Declared column → index in ``header``; raises naming expected and found columns."""
    index: dict[str, int] = {}
    for i, h in enumerate(header):
        index.setdefault(h, i)  # a duplicated header keeps its first occurrence
    missing = [c.name for c in schema.columns if c.name not in index and c.empty == "unusable"]
    hints = []
    for name in missing:
        near = [h for h in header if _norm(h) == _norm(name)]
        if near:
            hints.append(f"{near[0]!r} looks like {name!r} but is spelled differently")
    families: dict[str, list[str]] = {}
    for fam in schema.families:
        pat = re.compile(rf"^{re.escape(fam.prefix)}(\d+)$")
        loose = re.compile(rf"^{re.escape(_norm(fam.prefix))}(\d+)$")
        exact = {int(m.group(1)): h for h in header if (m := pat.match(h))}
        for h in header:
            if loose.match(_norm(h)) and not pat.match(h):
                hints.append(f"{h!r} looks like a {fam.prefix}<n> column but is not spelled "
                             f"{fam.prefix}<n>")
        n = max(exact) if exact else 0
        gaps = [f"{fam.prefix}{k}" for k in range(1, max(n, fam.min_count) + 1) if k not in exact]
        missing += gaps
        families[fam.prefix] = [exact[k] for k in sorted(exact)]
    if missing or hints:
        expected = schema.names()
        msg = (f"{path} lacks required column(s) {missing} ({schema.description})" if missing
               else f"{path} has misspelled column(s) ({schema.description})")
        raise ManifestError(f"{msg}; expected columns {expected}; found columns {header}"
                            + (f"; {'; '.join(hints)}" if hints else ""))
    return index, families


def _parse(col: Column, raw: str) -> tuple[object, str | None]:
    """``(value, problem message or None)`` for one non-empty cell."""
    if col.type == "str":
        return raw, None
    if col.type == "enum":
        canon = {_norm(a): a for a in col.allowed}
        hit = canon.get(_norm(raw))
        return (hit, None) if hit is not None else \
            (None, f"{col.name} = {raw!r} is not one of {list(col.allowed)}")
    try:
        num = float(raw)
    except ValueError:
        why = " (a unit or % sign?)" if re.match(r"^[-+]?\d", raw) else ""
        return None, f"{col.name} = {raw!r} is not a number{why}"
    if not math.isfinite(num):
        return None, f"{col.name} = {raw!r} is not a finite number"
    if col.type == "int" and not num.is_integer():
        return None, f"{col.name} = {raw!r} is not a whole number"
    if col.range is not None and not col.range[0] <= num <= col.range[1]:
        return None, f"{col.name} = {raw!r} is outside [{col.range[0]:g}, {col.range[1]:g}]"
    return num, None


def read_side_table(path: str | Path, schema: TableSchema) -> SideTable:
    """Read ``path`` (CSV or XLSX) against ``schema``; see the module docstring for the rules."""
    path = Path(path)
    problems: list[Problem] = []
    try:
        header, rows, lines = read_rows(path, problems)
        index, families = _resolve_columns(path, schema, header)
    except ManifestError as exc:
        # data on another sheet than the first: say which sheet was read, and which exist
        note = [p.message for p in problems if p.kind == "other_sheets_ignored"]
        if note:
            raise ManifestError(f"{exc}; {note[0]}") from exc
        raise
    members = [(c, c) for c in schema.columns if c.name in index]
    for fam in schema.families:
        members += [(Column(h, fam.column.type, fam.column.allowed, fam.column.range,
                            fam.column.empty, fam.column.meaning), fam.column)
                    for h in families[fam.prefix]]
    bad: set[int] = set()
    data: dict[str, list[object]] = {}
    for col, _ in members:
        j = index[col.name]
        values: list[object] = []
        for r, (row, line) in enumerate(zip(rows, lines)):
            raw = row[j] if j < len(row) else ""
            if raw == "":
                values.append(None)
                if col.empty == "unusable":
                    what = f"; {col.meaning}" if col.meaning else ""
                    problems.append(Problem("empty_cell", f"{col.name} is empty{what}",
                                            row=r, file=str(path), line=line,
                                            severity="unusable", column=col.name))
                    bad.add(r)
                continue
            value, why = _parse(col, raw)
            if why is not None:
                problems.append(Problem("bad_cell", why, row=r, file=str(path), line=line,
                                        severity="unusable", column=col.name))
                bad.add(r)
            values.append(value)
        data[col.name] = values
    table = pd.DataFrame(index=range(len(rows)))
    for col, _ in members:
        if col.type in ("float", "int"):
            table[col.name] = pd.array([np.nan if v is None else v for v in data[col.name]],
                                       dtype="float64")
        else:
            table[col.name] = pd.array(data[col.name], dtype="string")
    return SideTable(path, table, pd.Series(lines, dtype="int64"), problems, bad, families)


def with_sample_ids(problems: Iterable[Problem], ids: pd.Series) -> list[Problem]:
    """Problems with ``sample_id`` filled from ``ids`` (indexed by the problems' ``row``)."""
    out = []
    for p in problems:
        sid = p.sample_id
        if sid is None and p.row is not None and p.row in ids.index and pd.notna(ids.loc[p.row]):
            sid = str(ids.loc[p.row])
        out.append(replace(p, sample_id=sid))
    return out


# ---------------------------------------------------------------------------- declared schemas

SPLIT_WORDS = ("TRAIN", "VAL", "TEST")

ECHONET_DYNAMIC_FILELIST = TableSchema("EchoNet-Dynamic FileList", (
    Column("FileName", meaning="no video name"),
    Column("EF", "float", range=(0.0, 100.0), meaning="no ejection fraction label"),
    Column("FPS", "float", range=(1e-6, 1e4), empty="missing"),
    Column("NumberOfFrames", "int", range=(1, 1e7), empty="missing"),
    Column("Split", "enum", allowed=SPLIT_WORDS, meaning="no split"),
))

ECHONET_TRACINGS = TableSchema("EchoNet VolumeTracings (chords)", (
    Column("FileName"), Column("X1", "float"), Column("Y1", "float"), Column("X2", "float"),
    Column("Y2", "float"), Column("Frame", "int", range=(0, 1e7)),
))

ECHONET_PEDIATRIC_TRACINGS = TableSchema("EchoNet-Pediatric VolumeTracings (polygon points)", (
    Column("FileName"), Column("X", "float"), Column("Y", "float"),
    # Pediatric writes "No Systolic" / "No Diastolic" here: such rows trace no frame and are skipped
    Column("Frame", meaning="no traced frame"),
))

ECHONET_PEDIATRIC_FILELIST = TableSchema("EchoNet-Pediatric FileList", (
    Column("FileName", meaning="no video name"),
    Column("EF", "float", range=(0.0, 100.0), meaning="no ejection fraction label"),
    Column("Sex", empty="missing"),
    Column("Age", "float", range=(0.0, 150.0), empty="missing"),
    Column("Weight", "float", range=(0.0, 1000.0), empty="missing"),
    Column("Height", "float", range=(0.0, 300.0), empty="missing"),
    Column("Split", "int", range=(0, 9), meaning="no fold"),
))

ECHONET_LVH_MEASUREMENTS = TableSchema("EchoNet-LVH MeasurementsList", (
    Column("HashedFileName", meaning="no video name"),
    Column("Calc", meaning="no measurement name"),
    # Blank values are legal on rows we do not use; the harmoniser checks IVSd/LVIDd/LVPWd rows.
    Column("CalcValue", "float", range=(0.0, 100.0), empty="missing"),
    Column("Frame", "int", range=(0, 1e7), empty="missing"),
    Column("Frames", "int", range=(1, 1e7), empty="missing"),
    Column("FPS", "float", range=(1e-6, 1e4), empty="missing"),
    Column("split", "enum", allowed=SPLIT_WORDS, meaning="no split"),
))

HMCQU_SHEET = TableSchema("HMC-QU label sheet", (
    Column("ECHO", meaning="no video name"),
), families=(ColumnFamily("SEG", Column("SEG", "enum", allowed=("MI", "non-MI"),
                                        meaning="the segment's MI status is unknown, so the "
                                                "STEMI label is too"), min_count=6),))

TMED2_DIAGNOSES = ("no_AS", "mild_AS", "mildtomod_AS", "moderate_AS", "severe_AS", "Not_Provided")
TMED2_VIEWS = ("A2C", "A4C", "PLAX", "PSAX", "A4CorA2CorOther")

TMED2_LABELS = TableSchema("TMED-2 labels_per_image", (
    Column("query_key", meaning="no image name"),
    Column("view_label", "enum", allowed=TMED2_VIEWS, meaning="no view"),
    Column("diagnosis_label", "enum", allowed=TMED2_DIAGNOSES, meaning="no AS label"),
))


def tmed2_fold_schema(split_column: str,
                      values: tuple[str, ...] = ("train", "val", "test")) -> TableSchema:
    """The DEV479 fold file: ``query_key``, ``SourceFolder`` and the spec's split column/values."""
    return TableSchema("TMED-2 DEV479 fold file", (
        Column("query_key", meaning="no image name"),
        Column("SourceFolder", meaning="no image folder"),
        Column(split_column, "enum", allowed=values, meaning="no split"),
    ))
