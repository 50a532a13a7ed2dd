"""CSV cells a spreadsheet would run as formulas: one rule, applied where people open the file.

**The rule.** A text cell is *neutralised* -- written with one ``'`` in front -- when it starts
with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return (the characters spreadsheets read as
the start of a formula, per OWASP's "CSV injection" guidance) and is not a plain decimal number
(``-3.5`` and ``+2e-3`` stay numbers), or when it already starts with ``'`` (so the rule can be
undone exactly: :func:`restore_frame` drops one leading ``'`` and nothing else). Numbers
(int/float cells) are never touched. A spreadsheet shows ``'=1+1`` as the text ``=1+1``.

**Where it applies.** Every CSV cardiobench writes for people to read: ``leaderboard.csv``, the
predictions CSV beside each result (read back by :func:`cardiobench.results.load_results`, which
restores the cells) and the long export format.

**Where it does not.** Files other programs read with exact IDs -- the reference-format export
and the ground-truth CSVs the published evaluators read, and the manifest ``splits export``
writes for other tools (its sidecar fingerprints the IDs) -- must carry the IDs unchanged. No real
ID starts with these characters, so a cell that would be a formula is *refused* there
(:func:`refuse_formula_cells`, naming file, column and row) rather than altered: nothing that
could run in a spreadsheet is written, and nothing is written with an ID the evaluators would not
recognise.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Iterable

import pandas as pd

#: first characters a spreadsheet takes as the start of a formula
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
QUOTE = "'"
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def is_formula(value: Any) -> bool:
    """Whether a spreadsheet could run ``value`` (a text cell) as a formula."""
    return (isinstance(value, str) and value.startswith(FORMULA_START)
            and _NUMBER.fullmatch(value) is None)


def neutralise(value: Any) -> Any:
    """``value`` with ``'`` in front when :func:`is_formula` or when it starts with ``'``;
    anything else (numbers included) unchanged."""
    if isinstance(value, str) and (value.startswith(QUOTE) or is_formula(value)):
        return QUOTE + value
    return value


def restore(value: Any) -> Any:
    """Inverse of :func:`neutralise` for a cell read back from a file it wrote."""
    return value[1:] if isinstance(value, str) and value.startswith(QUOTE) else value


def _text_columns(df: pd.DataFrame) -> list[Any]:
    return [c for c in df.columns
            if df[c].dtype == object or isinstance(df[c].dtype, pd.StringDtype)]


def _map_text(df: pd.DataFrame, fn: Callable[[Any], Any]) -> pd.DataFrame:
    out = df.copy()
    for c in _text_columns(out):
        out[c] = out[c].map(fn, na_action="ignore")
    out.columns = [fn(c) for c in out.columns]
    return out


def neutralise_frame(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` with every text cell (and column name) neutralised."""
    return _map_text(df, neutralise)


def restore_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Inverse of :func:`neutralise_frame` on a table read back with pandas."""
    return _map_text(df, restore)


def safe_row(values: Iterable[Any]) -> list[Any]:
    """One ``csv.writer`` row with its text cells neutralised."""
    return [neutralise(v) for v in values]


def refuse_formula_cells(df: pd.DataFrame, where: str) -> None:
    """:func:`refuse_formula_ids` over every text column of a table about to be written to
    ``where`` (a file whose cells must stay exact), naming the column and the first row."""
    for c in _text_columns(df):
        col = df[c].dropna()
        bad = col[col.map(is_formula)]
        if len(bad):
            refuse_formula_ids(bad.astype(str), f"{where}, column {c!r} (row {bad.index[0]})")


def refuse_formula_ids(ids: Iterable[Any], where: str) -> None:
    """Raise ``ValueError`` when an ID would be a spreadsheet formula, for files that must keep
    IDs exactly (the published evaluators' inputs): ``where`` names the file or table."""
    bad = [str(i) for i in ids if is_formula(str(i))]
    if bad:
        raise ValueError(f"{where}: {len(bad)} ID(s) start like a spreadsheet formula "
                         f"({', '.join(map(repr, bad[:5]))}); no published ID does, and this file "
                         "must carry IDs unchanged, so it is not written. Fix the IDs in the "
                         "manifest (re-run prepare on the original download)")
