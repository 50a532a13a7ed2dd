"""A user's own cohort as a catalogue entry: from its YAML (``prepare``) or, afterwards, from the
spec its manifest's sidecar records (every later command), so the manifest alone is enough.

:func:`cohort_dataset` turns a checked :class:`~cardiobench.preprocessing.own.Cohort` into a
:class:`Dataset` whose tasks are ordinary :class:`~cardiobench.protocols.tasks.Task` objects:
each task's type is resolved against the task types and must match how its label is declared
(``TaskType.label_coding``), and its ``same_as`` must name a catalogue task of the same type, so
every protocol, the report and the cross-dataset protocols treat it like a built-in one.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Iterable

from cardiobench.catalogue import Catalogue
from cardiobench.catalogue.dataset import Dataset, Source
from cardiobench.manifest import Manifest
from cardiobench.preprocessing import own
from cardiobench.protocols.task_types import get_task_type
from cardiobench.protocols.tasks import Task

#: a task's ``score_per`` → the evaluation unit and how rows are aggregated to it
_UNITS = {"video": ("video", "none"), "patient": ("patient", "mean_per_patient"),
          "study": ("study", "mean_per_study")}


def cohort_dataset(cohort: own.Cohort, where: str = "") -> Dataset:
    """The catalogue entry of ``cohort``; a task type that does not fit its declaration is a
    :class:`~cardiobench.preprocessing.own.CohortError` naming the field."""
    where = where or cohort.source_file or cohort.name
    tasks = []
    for i, t in enumerate(cohort.tasks):
        try:
            ttype = get_task_type(t.type)
        except KeyError as exc:
            raise own.CohortError(f"{where}: tasks[{i}].type: {exc.args[0]}") from None
        coding = "classes" if t.classes else "positive" if t.positive is not None else "number"
        if coding != ttype.label_coding:
            need = {"number": "neither positive nor classes", "positive": "positive: VALUE",
                    "classes": "classes: [...]"}[ttype.label_coding]
            raise own.CohortError(f"{where}: tasks[{i}]: a {ttype.name} task declares {need}")
        unit, aggregate = _UNITS[t.score_per]
        prompt_set, prompt_spec = (t.prompts, None) if isinstance(t.prompts, str) else \
            (t.name, t.prompts)
        task = Task(f"{cohort.name}/{t.name}", cohort.name, t.label, ttype,
                    unit=unit, aggregate=aggregate, classes=t.classes,  # type: ignore[arg-type]
                    prompt_set=prompt_set if t.prompts is not None else None,
                    prompt_spec=prompt_spec, label_unit=t.unit, same_as=t.same_as)
        if prompt_spec is not None:
            _check_inline_prompts(task, f"{where}: prompts.{t.name}")
        tasks.append(task)
    stratify = cohort.split.get("stratify")
    if stratify and not any(t.name == stratify and (t.classes or t.positive is not None)
                            for t in cohort.tasks):
        raise own.CohortError(f"{where}: split.stratify: {stratify!r} must name a binary or "
                              "multiclass task of this cohort")
    return Dataset(
        cohort.name, partial(own.harmonise, cohort=cohort), own.split_spec(cohort),
        Source(cohort.name, "", cohort.licence or "(not stated in the cohort YAML)",
               cohort.citation, f"cohort YAML {cohort.source_file or where}"
               + (f" (sha256 {cohort.sha256[:12]})" if cohort.sha256 else "")),
        tasks=tuple(tasks))


def _check_inline_prompts(task: Task, where: str) -> None:
    """An inline prompt set is read now, so that a malformed one is refused by ``prepare``
    rather than failing the zero-shot result later (a named set is read when it is used: a
    suite's ``prompt_dir`` may hold it)."""
    from cardiobench.protocols.zero_shot import parse_prompt_set

    try:
        prompts = parse_prompt_set(str(task.prompt_set), task.prompt_spec, where)
        if prompts.kind != task.type.name:
            raise ValueError(f"{where}: a {prompts.kind} prompt set cannot serve "
                             f"{task.type.name} task {task.name}")
        task.type.check_prompts(task, prompts)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        msg = str(exc.args[0]) if exc.args else type(exc).__name__
        if isinstance(exc, KeyError):
            msg = f"missing field {msg!r}"
        raise own.CohortError(msg if msg.startswith(where) else f"{where}: {msg}") from None


def load_cohort(path: str | Path, catalogue: Catalogue) -> tuple[own.Cohort, Catalogue]:
    """Read a cohort YAML and return it with ``catalogue`` extended by its dataset (whose
    ``same_as`` links are checked against the catalogue)."""
    cohort = own.read_cohort(path)
    return cohort, _extend(catalogue, cohort_dataset(cohort), str(path))


def dataset_to_prepare(target: str, raw: str | Path | None, catalogue: Catalogue
                       ) -> tuple[Dataset, str | Path]:
    """What ``prepare TARGET`` harmonises, and from where: a catalogue dataset (``raw`` is
    required), or a cohort YAML (``raw`` defaults to its root)."""
    if str(target).lower().endswith((".yaml", ".yml")):
        cohort, catalogue = load_cohort(target, catalogue)
        return catalogue.dataset(cohort.name), raw or cohort.root
    if raw is None:
        raise ValueError(f"prepare {target} needs --raw (the dataset's download folder)")
    return catalogue.dataset(target), raw


def _on_shared_classes(dataset: Dataset, catalogue: Catalogue, where: str) -> Dataset:
    """``dataset`` with each multiclass task that is ``same_as`` a catalogue task put on that
    task's classes (their vocabulary and order), so that a four-view cohort and a six-view
    dataset encode ``A4C`` alike; a class outside that vocabulary is refused."""
    tasks = []
    for t in dataset.tasks:
        other = catalogue.tasks.get(t.same_as) if t.same_as else None
        if other is not None and t.classes and other.type is t.type:
            outside = [c for c in t.classes if c not in other.classes]
            if outside:
                raise own.CohortError(
                    f"{where}: task {t.name}: classes {outside} are not classes of "
                    f"{other.name} ({', '.join(other.classes)}): same_as needs one vocabulary")
            t = replace(t, classes=tuple(other.classes))
            if t.prompt_spec is not None:
                _check_inline_prompts(t, f"{where}: prompts.{t.name.split('/')[-1]}")
        tasks.append(t)
    return replace(dataset, tasks=tuple(tasks))


def _extend(catalogue: Catalogue, dataset: Dataset, where: str) -> Catalogue:
    dataset = _on_shared_classes(dataset, catalogue, where)
    try:
        return catalogue.extended(dataset)
    except ValueError as exc:
        raise own.CohortError(f"{where}: {exc}") from None


def catalogue_for(manifests: Iterable[Manifest], catalogue: Catalogue) -> Catalogue:
    """``catalogue`` extended by every cohort among ``manifests`` that it does not know: the
    spec its sidecar recorded at ``prepare`` (``source["cohort"]``) describes its tasks."""
    for m in manifests:
        spec = (m.source or {}).get("cohort")
        if m.dataset in catalogue.datasets or not isinstance(spec, dict):
            continue
        where = f"the cohort recorded in {m.path or m.dataset}'s sidecar"
        # the salt only served prepare: the sidecar's identifiers are already pseudonyms
        spec = {k: v for k, v in spec.items() if k != "deidentify"}
        cohort = own.parse_cohort(spec, where, Path(m.root or "."),
                                  m.source.get("cohort_sha256", ""),
                                  m.source.get("cohort_file", ""))
        catalogue = _extend(catalogue, cohort_dataset(cohort, where), where)
    return catalogue
