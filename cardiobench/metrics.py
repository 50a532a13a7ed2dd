"""Every metric a result can hold, described once: name, definition, unit, direction, aggregation.

The metrics are data: ``metrics.yaml`` beside this module holds one record per metric. A
:class:`Metric` is read alike by the scorers (which compute it, :mod:`cardiobench.stats`), the
leaderboard and report (label, display unit and factor, decimals, which direction is better) and
the documentation (``docs/metrics.md`` lists the same definitions; a test keeps the two equal).

Storage convention (:mod:`cardiobench.stats`): every dimensionless metric is stored ×100 in a
result JSON, as the published evaluators print them. ``display_factor`` turns the stored value
into the shown one: proportions are shown in percent (factor 1), scores that are not proportions
(Brier, NLL, ECE, correlation coefficients) in their own units (factor 0.01).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Literal, get_args

#: How a metric's display unit is found: the task label's unit, its square, percent, or none.
MetricUnit = Literal["label", "label_squared", "percent", "none"]


@dataclass(frozen=True)
class Metric:
    """One metric: what it means, in which unit it is shown, and which direction is better."""

    name: str
    label: str
    definition: str
    unit: MetricUnit
    higher_is_better: bool
    aggregation: str = "over the test evaluation units"
    display_factor: float = 1.0
    decimals: int = 2


_REQUIRED = {"label", "definition", "unit", "higher_is_better", "over"}
_OPTIONAL = {"display_factor", "decimals"}


def _load_metrics() -> dict[str, Metric]:
    """The metrics of ``metrics.yaml`` (beside this module), checked field by field."""
    import yaml

    text = resources.files("cardiobench").joinpath("metrics.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    out = {}
    for name, spec in data["metrics"].items():
        where = f"metrics.yaml: metric {name!r}"
        if set(spec) - _REQUIRED - _OPTIONAL or _REQUIRED - set(spec):
            raise ValueError(f"{where}: unknown field(s) {sorted(set(spec) - _REQUIRED - _OPTIONAL)}"
                             f", missing field(s) {sorted(_REQUIRED - set(spec))}")
        if spec["unit"] not in get_args(MetricUnit):
            raise ValueError(f"{where}: unit {spec['unit']!r} is not one of "
                             f"{get_args(MetricUnit)}")
        if spec["over"] not in data["over"]:
            raise ValueError(f"{where}: over {spec['over']!r} is not one of {list(data['over'])}")
        out[str(name)] = Metric(str(name), str(spec["label"]), str(spec["definition"]),
                                spec["unit"], bool(spec["higher_is_better"]),
                                data["over"][spec["over"]], float(spec.get("display_factor", 1)),
                                int(spec.get("decimals", 2)))
    return out


METRICS: dict[str, Metric] = _load_metrics()


def get_metric(name: str) -> Metric:
    """The :class:`Metric` called ``name``; an unknown name lists the known ones."""
    try:
        return METRICS[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; known: {', '.join(METRICS)}") from None
