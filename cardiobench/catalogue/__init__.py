"""The catalogue: every dataset, task, task type, metric and protocol cardiobench knows, as objects.

One explicit, typed registry loaded at start-up (:func:`default_catalogue`), with nothing
registered by import side effects and no module named by a string:

* a :class:`Dataset` holds its callables (harmoniser, phantom layout, ground-truth writer, split
  importer), its split spec, its side-file schemas, the media globs that define an unlisted file,
  its tasks and its metadata (source, licence, citation, the download it was written for). The
  eight built-in entries are in :mod:`cardiobench.catalogue.builtin`;
* a :class:`~cardiobench.protocols.tasks.Task` names its :class:`TaskType` strategy
  (:mod:`cardiobench.protocols.task_types`), which owns everything that differs between
  regression, binary and multiclass targets;
* :class:`~cardiobench.metrics.Metric` and :class:`~cardiobench.protocols.runners.Protocol` are
  records read alike by scorers, leaderboards, the report and the docs.

Adding a dataset is one :class:`Dataset` entry plus its harmoniser and phantom layout modules
(and its split YAML); adding a task type or a protocol is one file in its package.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Iterable, Mapping, Sequence

from cardiobench.catalogue.builtin import BUILTIN, COHORT_LAYOUTS
from cardiobench.catalogue.dataset import Dataset, Source
from cardiobench.metrics import METRICS, Metric, get_metric
from cardiobench.phantom.layouts import PhantomLayout
from cardiobench.protocols import get_protocol, protocols
from cardiobench.protocols.runners import Protocol
from cardiobench.protocols.task_types import TaskType, get_task_type, task_types
from cardiobench.protocols.tasks import Task

__all__ = ["Catalogue", "Dataset", "Source", "default_catalogue"]

@dataclass(frozen=True)
class Catalogue:
    """The datasets (in order) with their tasks, plus the task types, metrics and protocols.

    ``cohort_layouts`` are phantom layouts of no built-in dataset: they write a cohort of the
    user's kind (files, a table and its cohort YAML), prepared from that YAML.
    """

    datasets: Mapping[str, Dataset] = field(default_factory=dict)
    cohort_layouts: tuple[PhantomLayout, ...] = ()

    @classmethod
    def of(cls, datasets: Iterable[Dataset],
           cohort_layouts: Iterable[PhantomLayout] = ()) -> "Catalogue":
        """A catalogue of ``datasets``; a name or task given twice raises ``ValueError``."""
        out: dict[str, Dataset] = {}
        tasks: set[str] = set()
        for d in datasets:
            if d.name in out:
                raise ValueError(f"dataset {d.name!r} is in the catalogue twice")
            twice = tasks & {t.name for t in d.tasks}
            if twice:
                raise ValueError(f"tasks {sorted(twice)} are in the catalogue twice")
            tasks |= {t.name for t in d.tasks}
            out[d.name] = d
        cat = cls(out, tuple(cohort_layouts))
        cat._check_same_as()
        return cat

    def _check_same_as(self) -> None:
        """Every ``same_as`` names a task of this catalogue with the same type (and classes)."""
        tasks = self.tasks
        for t in tasks.values():
            if t.same_as is None:
                continue
            other = tasks.get(t.same_as)
            if other is None:
                raise ValueError(f"task {t.name}: same_as {t.same_as!r} is not a task of the "
                                 f"catalogue; known: {', '.join(tasks)}")
            if other.type is not t.type or tuple(other.classes) != tuple(t.classes):
                raise ValueError(f"task {t.name}: same_as {other.name} is a {other.type.name} "
                                 f"task{' with other classes' if other.type is t.type else ''}; "
                                 f"{t.name} is {t.type.name}: their labels cannot mean the same")

    def equivalents(self, task: str) -> list[Task]:
        """Every task whose label means the same as ``task``'s (the ``same_as`` links, followed
        both ways and transitively), ``task`` included, in catalogue order."""
        tasks = self.tasks
        self.task(task)
        group, todo = {task}, [task]
        while todo:
            name = todo.pop()
            linked = {t.name for t in tasks.values() if t.same_as == name}
            if tasks[name].same_as:
                linked.add(tasks[name].same_as)
            todo += sorted(linked - group)
            group |= linked
        return [t for t in tasks.values() if t.name in group]

    def extended(self, *datasets: Dataset) -> "Catalogue":
        """This catalogue with ``datasets`` added (a user's own, described in YAML)."""
        return Catalogue.of([*self.datasets.values(), *datasets], self.cohort_layouts)

    # -- datasets ------------------------------------------------------------------------------
    def dataset(self, name: str) -> Dataset:
        """The dataset called ``name``; an unknown name lists the known ones."""
        try:
            return self.datasets[name]
        except KeyError:
            raise KeyError(f"unknown dataset {name!r}; known: {', '.join(self.datasets)}") \
                from None

    def layouts(self) -> dict[str, PhantomLayout]:
        """Every phantom layout by name, in dataset order (one layout may feed several), then
        the cohort layouts."""
        out = {d.layout.name: d.layout for d in self.datasets.values() if d.layout is not None}
        return {**out, **{lay.name: lay for lay in self.cohort_layouts}}

    def layout(self, name: str) -> PhantomLayout:
        """The phantom layout called ``name``; an unknown name lists the known ones."""
        known = self.layouts()
        try:
            return known[name]
        except KeyError:
            raise KeyError(f"unknown phantom layout {name!r}; known: {', '.join(known)}") \
                from None

    def layout_datasets(self, layout: str) -> tuple[Dataset, ...]:
        """The datasets harmonised from one raw layout (CardiacNet → ASD and PAH)."""
        self.layout(layout)
        return tuple(d for d in self.datasets.values()
                     if d.layout is not None and d.layout.name == layout)

    # -- tasks ---------------------------------------------------------------------------------
    @property
    def tasks(self) -> dict[str, Task]:
        """Every task by name, in dataset order."""
        return {t.name: t for d in self.datasets.values() for t in d.tasks}

    def task(self, name: str) -> Task:
        """The task called ``name``; an unknown name lists the known ones."""
        try:
            return self.tasks[name]
        except KeyError:
            raise KeyError(f"unknown task {name!r}; known: {', '.join(self.tasks)}") from None

    def select_tasks(self, patterns: Sequence[str] | None = None) -> list[Task]:
        """Tasks matching the shell-style ``patterns`` (``echonet_*/ef``): in the patterns'
        order, a glob's matches in catalogue order, each task once; ``None`` selects all. A
        pattern that matches nothing raises, naming the known tasks."""
        return _select(list(self.tasks.values()), patterns, "--tasks", "task")

    # -- task types, protocols, metrics ----------------------------------------------------------
    @property
    def task_types(self) -> dict[str, TaskType]:
        """Every task type by name (:mod:`cardiobench.protocols.task_types`)."""
        return task_types()

    def task_type(self, name: str) -> TaskType:
        """The task type called ``name``."""
        return get_task_type(name)

    @property
    def protocols(self) -> dict[str, Protocol]:
        """Every protocol by name, in table order (:mod:`cardiobench.protocols`)."""
        return protocols()

    def protocol(self, name: str) -> Protocol:
        """The protocol called ``name``."""
        return get_protocol(name)

    def select_protocols(self, patterns: Sequence[str] | None = None) -> list[Protocol]:
        """Protocols matching the shell-style ``patterns`` (as :meth:`select_tasks`)."""
        return _select(list(self.protocols.values()), patterns, "--protocols", "protocol")

    @property
    def metrics(self) -> dict[str, Metric]:
        """Every metric by name (:mod:`cardiobench.metrics`)."""
        return METRICS

    def metric(self, name: str) -> Metric:
        """The metric called ``name``."""
        return get_metric(name)

    #: what :meth:`listing` can list
    LISTS = ("datasets", "tasks", "protocols", "metrics", "task-types")

    def listing(self, what: str) -> list[tuple[str, str]]:
        """``(name, one line)`` for every entry of one kind (``cardiobench catalogue WHAT``)."""
        if what == "datasets":
            return [(d.name, f"{d.source.title} · {len(d.tasks)} task(s) · licence: "
                             f"{d.source.licence}") for d in self.datasets.values()]
        if what == "tasks":
            def same(t: Task) -> str:
                others = [e.name for e in self.equivalents(t.name) if e.name != t.name]
                return f" · same label as {', '.join(others)}" if others else ""

            return [(t.name, f"{t.type.name} · unit {t.unit} · headline {t.headline}{same(t)}")
                    for t in self.tasks.values()]
        if what == "protocols":
            return [(p.name, p.definition) for p in self.protocols.values()]
        if what == "metrics":
            return [(m.name, m.definition) for m in self.metrics.values()]
        if what == "task-types":
            return [(t.name, f"headline {t.headline}; outputs: {t.outputs}")
                    for t in self.task_types.values()]
        raise KeyError(f"cannot list {what!r}; one of {', '.join(self.LISTS)}")


def _select(known: list, patterns: Sequence[str] | None, option: str, what: str) -> list:
    """The entries of ``known`` (records with a ``name``) that ``patterns`` match, in pattern
    order, each once; a pattern matching nothing raises ``KeyError`` naming the known ones."""
    if patterns is None:
        return known
    out: dict[str, object] = {}
    for pat in patterns:
        hits = [k for k in known if fnmatch.fnmatchcase(k.name, pat)]
        if not hits:
            raise KeyError(f"{option} {pat!r} matches no {what}; known: "
                           f"{', '.join(k.name for k in known)}")
        out.update((k.name, k) for k in hits if k.name not in out)
    return list(out.values())


@lru_cache(maxsize=1)
def default_catalogue() -> Catalogue:
    """The built-in catalogue: the eight published datasets (:mod:`.builtin`)."""
    return Catalogue.of(BUILTIN, COHORT_LAYOUTS)
