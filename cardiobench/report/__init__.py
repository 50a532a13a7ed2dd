"""The report layer: leaderboards, comparisons, figures and the offline HTML report, all read from
result files. :func:`task_of` gives the task a result was scored on."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:  # pragma: no cover
    from cardiobench.protocols.tasks import Task
    from cardiobench.results import Result


def task_of(name: str, results: Iterable["Result"] = ()) -> "Task":
    """The task called ``name``: the catalogue's, else rebuilt from the ``config["task"]`` record
    of one of ``results``, or of a result read earlier (a dataset described by its user is not in
    the built-in catalogue).
    Raises ``KeyError`` when neither knows it."""
    from cardiobench.catalogue import default_catalogue
    from cardiobench.protocols.tasks import Task
    from cardiobench.results import recorded_task

    known = default_catalogue().tasks
    if name in known:
        return known[name]
    for r in results:
        if r.task == name and isinstance(r.config.get("task"), dict):
            return Task.from_record(name, r.config["task"])
    record = recorded_task(name)  # a result read from disk earlier in this process
    if record is not None:
        return Task.from_record(name, record)
    raise KeyError(f"unknown task {name!r}: not in the catalogue and no result records it")
