"""Split specifications and the rules that assign train/val/test, plus verify/export/show.

One YAML spec per manifest dataset (``splits/<dataset>.yaml``) records where the published split
comes from (``rule``), its parameters, the published counts and fingerprint. The rules:

- ``stratified_patient`` (HMC-QU, CardiacNet): :func:`stratified_patient_split`, the reference's
  two-step scikit-learn draw, reproducing the published CSVs ID for ID;
- ``official``: a split shipped with the data (:func:`map_split_column` / :func:`official_split`,
  the one reader of a split column);
- ``published_csv`` (SegRWMA): :func:`import_published` reads the published split CSV.

:func:`verify`, :func:`export` and :func:`show` are the library side of
``cardiobench splits verify|export|show``.
"""

from cardiobench.splits.spec import SPEC_RULES, SplitSpec, load_spec, packaged_spec
from cardiobench.splits.rules import (apply_spec_rule, map_split_column, official_split,
                                      stratified_patient_split)
from cardiobench.splits.published import SplitImporter, import_published
from cardiobench.splits.report import VerifyReport, export, show, verify

__all__ = [
    "SPEC_RULES", "SplitSpec", "load_spec", "packaged_spec",
    "official_split", "map_split_column", "stratified_patient_split", "apply_spec_rule",
    "SplitImporter", "import_published",
    "VerifyReport", "export", "show", "verify",
]
