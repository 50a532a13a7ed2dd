"""Subgroup reports: which manifest column splits the test units, and how it is binned.

A :class:`Subgroup` names a manifest column and the function that turns its values into group
labels (the published evaluators' bins, kept for comparability); the evaluator reports every
metric per group without a bootstrap (:func:`cardiobench.stats.subgroup_metrics`). ``BINNERS``
names the binning functions so a dataset described in YAML can choose one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd


def camus_age_bins(age: pd.Series) -> pd.Series:
    """CAMUS age groups, right-closed at 45/65/80: ``≤45``, ``46–65``, ``66–80``, ``>80``.

    Unlike the reference (whose order list drops the oldest group by a typo), ``>80`` is kept.
    """
    return pd.cut(pd.to_numeric(age, errors="coerce"), [-np.inf, 45, 65, 80, np.inf],
                  right=True, labels=["≤45", "46–65", "66–80", ">80"])


def pediatric_age_bins(age: pd.Series) -> pd.Series:
    """EchoNet-Pediatric age groups in years, right-closed: ``≤1``, ``(1,5]``, ``(5,12]``,
    ``(12,18]``; ages above 18 are NaN (excluded), as in the reference."""
    return pd.cut(pd.to_numeric(age, errors="coerce"), [-np.inf, 1, 5, 12, 18], right=True,
                  labels=["≤1", "(1,5]", "(5,12]", "(12,18]"])


def bmi_bins(bmi: pd.Series) -> pd.Series:
    """Adult BMI bins, left-closed: ``Low`` < 18.5 ≤ ``Healthy`` < 25 ≤ ``High``.

    These are the reference's adult cut-offs; for children they are a known approximation
    (age/sex-specific percentiles would be correct) and are kept only for comparability.
    """
    return pd.cut(pd.to_numeric(bmi, errors="coerce"), [-np.inf, 18.5, 25, np.inf], right=False,
                  labels=["Low", "Healthy", "High"])


def sex_groups(sex: pd.Series) -> pd.Series:
    """``F``/``M`` (first letter, upper-cased); anything else → ``UNK``."""
    s = sex.astype("string").str.strip().str.upper().str[:1]
    return s.where(s.isin(["F", "M"]), "UNK").astype(str)


def title_case(values: pd.Series) -> pd.Series:
    """Free-text categories as ``Title`` case, surrounding spaces removed (image quality)."""
    return values.astype("string").str.strip().str.title()


#: The binning functions by the name a YAML description uses.
BINNERS: dict[str, Callable[[pd.Series], pd.Series]] = {
    "sex": sex_groups, "camus_age": camus_age_bins, "pediatric_age": pediatric_age_bins,
    "bmi": bmi_bins, "title_case": title_case,
}


@dataclass(frozen=True)
class Subgroup:
    """A subgroup report: its name, the manifest column it bins, the binning, the group order."""

    name: str
    column: str
    binner: Callable[[pd.Series], pd.Series]
    order: tuple[str, ...] | None = None

    def labels(self, table: pd.DataFrame) -> pd.Series:
        """Group label of every row (NaN where the column is missing or out of range)."""
        if self.column not in table:
            return pd.Series([np.nan] * len(table), index=table.index)
        return self.binner(table[self.column]).astype("string")
