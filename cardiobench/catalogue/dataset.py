"""A dataset as the catalogue holds it: its code, split, tasks and metadata (one record)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.abc import Traversable
from pathlib import Path
from typing import Callable

import pandas as pd

from cardiobench.manifest import Manifest
from cardiobench.phantom.layouts import PhantomLayout
from cardiobench.preprocessing import Harmoniser
from cardiobench.protocols.tasks import Task
from cardiobench.schemas import TableSchema
from cardiobench.splits import SplitImporter, SplitSpec, load_spec

__all__ = ["Dataset", "GroundTruthWriter", "Source"]

#: ``ground_truth(manifest) -> {path under data/splits/: table}``: the files a published
#: evaluator reads that the reference repository does not ship, written from a manifest
GroundTruthWriter = Callable[[Manifest], "dict[str, pd.DataFrame]"]


@dataclass(frozen=True)
class Source:
    """Where a dataset comes from and under which terms; shown in docs and reports."""

    title: str
    url: str
    licence: str
    citation: str
    download: str  # the release / layout the harmoniser was written for


@dataclass(frozen=True)
class Dataset:
    """One dataset: its code, its split, its tasks and its metadata (module docstring).

    ``reference_dir``/``reference_id`` are the published evaluators' directory under
    ``example_predictions`` and the join column of its view task ("" where none exists).
    """

    name: str
    harmonise: Harmoniser
    split_spec: Path | Traversable | SplitSpec
    source: Source
    tasks: tuple[Task, ...] = ()
    layout: PhantomLayout | None = None
    media_globs: tuple[str, ...] = ()
    ground_truth: GroundTruthWriter | None = None
    import_split: SplitImporter | None = None
    schemas: tuple[TableSchema, ...] = ()
    reference_dir: str = ""
    reference_id: str = "sample_id"

    def __post_init__(self) -> None:
        if not self.name.isidentifier() or not self.name.isascii():
            raise ValueError(f"dataset name {self.name!r} must be an identifier "
                             "(letters, digits, _)")
        wrong = [t.name for t in self.tasks if t.dataset != self.name]
        if wrong:
            raise ValueError(f"dataset {self.name!r}: tasks {wrong} name another dataset")

    def spec(self) -> SplitSpec:
        """The dataset's split spec: :attr:`split_spec` itself (a cohort's, from its YAML) or
        read from the YAML file it names."""
        if isinstance(self.split_spec, SplitSpec):
            return self.split_spec
        return load_spec(self.split_spec, self.name)
