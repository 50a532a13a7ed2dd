"""Suites: which (task, protocol, config) a run scores, from a suite YAML and ``--tasks``/``--protocols``.

A suite YAML (the packaged ``suites/cardiobench.yaml`` by default) lists ``runs``, each naming
tasks (``all``, names or shell-style globs such as ``echonet_*/ef``), protocols (names)
and per-protocol config overrides; a top-level ``ci`` sets the bootstrap mode of every run. The
command line's ``--tasks`` and ``--protocols`` narrow what the suite asks for, never widen it; a
run marked ``on_request: true`` (the packaged suite's ``transfer`` and ``label_efficiency``) is
left out unless ``--protocols`` names its protocols.

Each (task, protocol) of a run becomes the entries the protocol's runner makes of it
(:meth:`~cardiobench.protocols.runners.Runner.expand`): one for most protocols; one per declared
source and runner for ``transfer`` (the task is the target: ``--tasks`` narrows targets), one per
runner for ``label_efficiency``.
"""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path
from typing import Any, Mapping, Sequence

from cardiobench.catalogue import Catalogue
from cardiobench.protocols import protocols as all_protocols
from cardiobench.protocols.config_schema import ConfigError, check_suite
from cardiobench.protocols.evaluate import SuiteEntry
from cardiobench.protocols.runners import EvaluationError

DEFAULT_SUITE = "cardiobench.yaml"

log = logging.getLogger(__name__)


def load_suite(path: str | Path | None = None) -> dict[str, Any]:
    """Read a suite YAML (default: the packaged ``suites/cardiobench.yaml``; YAML tags refused)
    and check it whole: every field with its type and range, an error naming the file, run,
    protocol and field."""
    import yaml

    if path is None:
        text = resources.files("cardiobench.suites").joinpath(DEFAULT_SUITE).read_text()
        source = f"packaged suite {DEFAULT_SUITE}"
    else:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"suite {path} does not exist")
        text, source = path.read_text(encoding="utf-8"), str(path)
    try:
        suite = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise EvaluationError(f"suite {source} is not valid YAML: {exc}") from exc
    try:  # checked whole at load, so a bad file is refused before any embedding
        check_suite(suite, {n: p.runner for n, p in all_protocols().items()}, source)
    except ConfigError as exc:
        raise EvaluationError(str(exc)) from exc
    return suite


def suite_entries(suite: Mapping[str, Any], catalogue: Catalogue,
                  tasks: Sequence[str] | None = None, protocols: Sequence[str] | None = None,
                  source: str | Path = "suite") -> list[SuiteEntry]:
    """Expand ``suite`` into entries, after checking its structure and every config value
    (:func:`~cardiobench.protocols.config_schema.check_suite`, ``source`` naming the file) and
    every name against ``catalogue``; ``tasks`` and ``protocols`` (globs) keep only the entries
    they match."""
    try:
        check_suite(suite, {n: p.runner for n, p in catalogue.protocols.items()}, source)
    except ConfigError as exc:
        raise EvaluationError(str(exc)) from exc
    wanted_tasks = {t.name for t in catalogue.select_tasks(tasks)} if tasks else None
    wanted_protocols = {p.name for p in catalogue.select_protocols(protocols)} \
        if protocols else None
    out = []
    # check_suite has refused a run that is not a mapping, an unknown protocol and config for
    # a protocol the run does not list: only task names are left to resolve here
    for i, run in enumerate(suite.get("runs", [])):
        if run.get("on_request") and wanted_protocols is None:
            continue
        names = run.get("tasks", "all")
        try:
            run_tasks = catalogue.select_tasks(None if names == "all" else list(names))
        except KeyError as exc:
            raise EvaluationError(f"suite {source}, run {i}: {exc.args[0]}") from None
        run_protocols = catalogue.select_protocols(run.get("protocols"))
        config = run.get("config") or {}
        for task in run_tasks:
            if wanted_tasks is not None and task.name not in wanted_tasks:
                continue
            for proto in run_protocols:
                if wanted_protocols is not None and proto.name not in wanted_protocols:
                    continue
                ci = {"ci": suite["ci"]} if "ci" in suite else {}
                cfg = {**ci, **dict(config.get(proto.name) or {})}
                try:
                    made = proto.runner.expand(task, cfg, catalogue)
                except EvaluationError as exc:
                    raise EvaluationError(f"suite {source}, run {i}: {exc}") from None
                if not made:
                    log.debug("%s has nothing to run on %s", proto.name, task.name)
                out += [SuiteEntry(t, proto.name, c, src) for t, c, src in made]
    return out
