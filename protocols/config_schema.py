"""The declared schema of protocol configurations and suite files: every field with its type and
range, checked before anything is evaluated.

A protocol's configuration is :data:`COMMON` (the bootstrap of the test metrics, shared by every
protocol) plus the runner's own ``fields`` (declared on each runner class beside its
``defaults``); a key a runner gives only a default for (a plugin's) is typed by that default
(:func:`field_from_default`). :func:`check_config` refuses a key the runner does not take, and a
test holds that every built-in default fits its field. A suite YAML
(``suites/cardiobench.yaml``) is checked whole by :func:`check_suite`:
its top-level keys, each run's ``tasks``/``protocols``/``config``, and each config value, with an
error naming the file, the run index, the protocol and the field.

Ranges and why:

* ``n_boot`` integer ≥ 10: fewer replicates leave no usable percentile interval (1000, the
  default, is the usual recommendation for 95 % percentile intervals).
* ``level`` in [0.5, 1): the interval's coverage; 0 gives zero-width intervals, 1 the range.
* ``min_clusters`` integer ≥ 2: the fewest bootstrap clusters for an interval (default
  :data:`cardiobench.stats.MIN_CLUSTERS`, docs/metrics.md).
* ``seed`` integer ≥ 0 (numpy's generator takes no negative seed).
* ``k_grid``/``ks`` non-empty lists of integers ≥ 1 (k = 0 neighbours predicts nothing);
  ``alphas``/``Cs`` non-empty lists of positive numbers; ``top_fraction`` in (0, 1].
* ``decision``: ``threshold`` (train-calibrated) exists for zero-shot only; fitted protocols
  take ``argmax``.
* ``seeds`` (label efficiency) integer in [2, 1000]: the interval resamples seeds, which needs
  two; ``budgets_per_class`` integers in [1, 10⁶]; ``fractions`` in (0, 1] (a share of the train
  patients; more than all of them does not exist).

A suite run may say ``on_request: true``: its protocols run only when ``--protocols`` (or the
library's ``protocols``) selects them, not in a plain ``cardiobench run`` (the packaged suite
puts ``transfer`` and ``label_efficiency`` there: they fit hundreds of probes).

Booleans are not numbers here (YAML ``yes`` is not ``n_boot: 1``).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from cardiobench import stats
from cardiobench.stats_reference import CI_MODES


class ConfigError(ValueError):
    """A configuration or suite value outside its declared type or range (the message names
    where: file, run, protocol, field)."""


@dataclass(frozen=True)
class Field:
    """One configuration field: its kind, range or choices, and whether null is allowed."""

    kind: str  # "int" | "float" | "bool" | "choice" | "choices" | "ints" | "floats" | "path"
    #            | "text" | "texts"
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[Any, ...] = ()
    nullable: bool = False
    note: str = ""  # why the range is what it is, appended to the error

    def _range(self) -> str:
        lo = "" if self.low is None else f"{'>' if self.low_open else '≥'} {self.low:g}"
        hi = "" if self.high is None else f"{'<' if self.high_open else '≤'} {self.high:g}"
        return " and ".join(x for x in (lo, hi) if x)

    def _in_range(self, x: float) -> bool:
        if self.low is not None and (x <= self.low if self.low_open else x < self.low):
            return False
        if self.high is not None and (x >= self.high if self.high_open else x > self.high):
            return False
        return True

    def expected(self) -> str:
        """The field's type and range in words (with its note)."""
        return self._expected() + (f" ({self.note})" if self.note else "")

    def _expected(self) -> str:
        null = " or null" if self.nullable else ""
        if self.kind == "choice":
            return "one of " + ", ".join(map(repr, self.choices))
        if self.kind == "bool":
            return "true or false" + null
        if self.kind == "choices":
            return "a non-empty list of " + ", ".join(map(repr, self.choices)) + null
        if self.kind == "texts":
            return "a non-empty list of non-empty texts" + null
        if self.kind == "path":
            return "a folder path (text)" + null
        if self.kind == "text":
            return "non-empty text" + null
        what = {"int": "an integer", "float": "a number", "ints": "a non-empty list of integers",
                "floats": "a non-empty list of numbers"}[self.kind]
        rng = self._range()
        return f"{what}{' ' + rng if rng else ''}{null}"

    def problem(self, value: Any) -> str | None:
        """None when ``value`` fits, else what is wrong with it."""
        if value is None:
            return None if self.nullable or (self.kind == "choice" and None in self.choices) \
                else "null"
        if self.kind == "choice":
            return None if value in self.choices and not isinstance(value, bool) else "not allowed"
        if self.kind == "bool":
            return None if isinstance(value, bool) else "not true or false"
        if self.kind in ("path", "text"):
            return None if isinstance(value, str) and value.strip() else f"not {self.kind}"
        if self.kind in ("choices", "texts"):
            if not isinstance(value, (list, tuple)) or not value:
                return "not a non-empty list"
            for v in value:
                if not isinstance(v, str) or not v.strip():
                    return f"element {v!r} is not text"
                if self.kind == "choices" and v not in self.choices:
                    return f"element {v!r} is not allowed"
            return None
        if self.kind in ("int", "float"):
            return _number_problem(value, self.kind == "int", self)
        if not isinstance(value, (list, tuple)) or not value:
            return "not a non-empty list"
        for v in value:
            why = _number_problem(v, self.kind == "ints", self)
            if why:
                return f"element {v!r} is {why}"
        return None


def _number_problem(value: Any, integer: bool, f: Field) -> str | None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return f"not {'an integer' if integer else 'a number'}"
    if integer and not isinstance(value, numbers.Integral):
        return "not an integer"
    if not math.isfinite(float(value)):
        return "not finite"
    if not f._in_range(float(value)):
        return "out of range"
    return None


#: fields every protocol takes (the bootstrap of the test metrics)
COMMON: dict[str, Field] = {
    "n_boot": Field("int", low=10),
    "seed": Field("int", low=0),
    "level": Field("float", low=0.5, high=1.0, high_open=True),
    "ci": Field("choice", choices=CI_MODES),
    "min_clusters": Field("int", low=2),
}
#: keys the evaluator passes through a config that are not settings (objects, not values)
INTERNAL = frozenset({"text_cache"})

assert stats.MIN_CLUSTERS >= 2  # the default must fit its own field


def field_from_default(value: Any) -> Field | None:
    """The field of a key a protocol declares only by its default (a plugin's): the default's
    type, no range; None for a default of no checkable type (``None``, a mapping)."""
    if isinstance(value, bool):
        return Field("bool")
    if isinstance(value, numbers.Integral):
        return Field("int")
    if isinstance(value, numbers.Real):
        return Field("float")
    if isinstance(value, str):
        return Field("text")
    if isinstance(value, (list, tuple)) and value and all(
            isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value):
        return Field("ints" if all(isinstance(v, numbers.Integral) for v in value) else "floats")
    return None


def fields_of(runner: Any) -> dict[str, Field | None]:
    """Every field of a runner class's configuration: :data:`COMMON`, its declared ``fields``,
    and its other defaults typed by their value (:func:`field_from_default`)."""
    declared = dict(getattr(runner, "fields", {}) or {})
    inferred = {k: field_from_default(v) for k, v in (getattr(runner, "defaults", {}) or {}).items()
                if k not in declared}
    return {**COMMON, **inferred, **declared}


def check_config(runner: Any, cfg: Mapping[str, Any], where: str = "") -> None:
    """Refuse (``ConfigError``) a key the runner class does not take or a value outside its
    field, naming ``where`` (e.g. ``suite x.yaml, run 0``), the protocol, the field and the
    value."""
    known = fields_of(runner)
    at = f"{where}, " if where else ""
    unknown = sorted(set(cfg) - set(known) - INTERNAL)
    if unknown:
        raise ConfigError(f"{at}unknown {runner.name} config keys {unknown}; {runner.name} "
                          f"takes {sorted(known)}")
    for key, value in cfg.items():
        f = known.get(key)
        if key in INTERNAL or f is None:
            continue
        why = f.problem(value)
        if why:
            raise ConfigError(f"{at}protocol {runner.name}, field {key!r}: {value!r} is {why}; "
                              f"expected {f.expected()}")


#: top-level keys of a suite file, and the keys of one run
SUITE_KEYS = {"name": str, "version": int, "description": str, "ci": str, "runs": list}
RUN_KEYS = ("tasks", "protocols", "config", "on_request")


def check_suite(suite: Any, runners: Mapping[str, Any], source: str | Path = "suite") -> None:
    """Check a whole suite's structure, protocol names and every config value against the
    ``runners`` (protocol name → runner class); task names and globs are the catalogue's to
    check. ``ConfigError`` names ``source``, the run index, the protocol and the field."""
    at = f"suite {source}"
    if not isinstance(suite, Mapping):
        raise ConfigError(f"{at}: expected a mapping with 'runs', got {type(suite).__name__}")
    unknown = sorted(set(suite) - set(SUITE_KEYS))
    if unknown:
        raise ConfigError(f"{at}: unknown top-level key(s) {unknown}; a suite takes "
                          f"{sorted(SUITE_KEYS)}")
    for key, typ in SUITE_KEYS.items():
        if key in suite and (not isinstance(suite[key], typ) or isinstance(suite[key], bool)):
            raise ConfigError(f"{at}: {key!r} is {suite[key]!r}, expected {typ.__name__}")
    if "ci" in suite and COMMON["ci"].problem(suite["ci"]):
        raise ConfigError(f"{at}: 'ci' is {suite['ci']!r}; expected {COMMON['ci'].expected()}")
    runs = suite.get("runs")
    if not runs:
        raise ConfigError(f"{at}: 'runs' is missing or empty; nothing would be evaluated")
    for i, run in enumerate(runs):
        here = f"{at}, run {i}"
        if not isinstance(run, Mapping):
            raise ConfigError(f"{here}: expected a mapping of {list(RUN_KEYS)}, got {run!r}")
        bad = sorted(set(run) - set(RUN_KEYS))
        if bad:
            raise ConfigError(f"{here}: unknown key(s) {bad}; a run takes {list(RUN_KEYS)}")
        if "on_request" in run and not isinstance(run["on_request"], bool):
            raise ConfigError(f"{here}: 'on_request' is {run['on_request']!r}; expected true or "
                              "false")
        tasks = run.get("tasks", "all")
        if tasks != "all":
            if not isinstance(tasks, list) or not tasks:
                raise ConfigError(f"{here}: 'tasks' is {tasks!r}; expected 'all' or a non-empty "
                                  "list of task names")
        protos = run.get("protocols", list(runners))
        if not isinstance(protos, list) or not protos:
            raise ConfigError(f"{here}: 'protocols' is {protos!r}; expected a non-empty list")
        for p in protos:
            if p not in runners:
                raise ConfigError(f"{here}: unknown protocol {p!r}; known: {list(runners)}")
        config = run.get("config") or {}
        if not isinstance(config, Mapping):
            raise ConfigError(f"{here}: 'config' is {config!r}; expected a mapping of protocol "
                              "name to its fields")
        for p, cfg in config.items():
            if p not in protos:
                raise ConfigError(f"{here}: 'config' has settings for {p!r}, which is not among "
                                  f"this run's protocols {protos}")
            if not isinstance(cfg, Mapping):
                raise ConfigError(f"{here}, protocol {p}: config is {cfg!r}; expected a mapping "
                                  "of field to value")
            check_config(runners[p], cfg, here)
