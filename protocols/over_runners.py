"""What the protocols built over the in-dataset runners share (``transfer``,
``label_efficiency``): the runners they train, their options, and one result per runner.

A protocol over runners trains the linear probe or kNN retrieval exactly as the in-dataset
protocol does (same options, same tuning on val); ``runners`` says which, and a suite run makes
one entry per runner (``runner`` set), so each curve or matrix compares like with like.
"""

from __future__ import annotations

from typing import Any, Mapping

from cardiobench.protocols.config_schema import Field
from cardiobench.protocols.linear_probe import LinearProbe
from cardiobench.protocols.retrieval import KNN
from cardiobench.protocols.runners import FITTED_DECISION, Runner

#: the runners a protocol over runners trains, by name
RUNNERS: dict[str, type[Runner]] = {"linear_probe": LinearProbe, "knn": KNN}

#: the options every protocol over runners takes: the runner(s) and each runner's own
RUNNER_DEFAULTS: dict[str, Any] = {
    "decision": "argmax", "runner": None, "runners": list(RUNNERS),
    **{k: v for r in RUNNERS.values() for k, v in r.defaults.items() if k != "decision"}}
RUNNER_FIELDS: dict[str, Field] = {
    "decision": FITTED_DECISION,
    "runner": Field("choice", choices=tuple(RUNNERS), nullable=True,
                    note="null: each of 'runners' (one entry each)"),
    "runners": Field("choices", choices=tuple(RUNNERS),
                     note="a suite run makes one entry per runner"),
    **{k: v for r in RUNNERS.values() for k, v in r.fields.items() if k != "decision"}}


class OverRunners(Runner):
    """A protocol that trains one of :data:`RUNNERS` per result (module docstring)."""

    @classmethod
    def configure(cls, config: Mapping[str, Any] | None) -> dict[str, Any]:
        """As every runner's; a config naming no ``runner`` (a library call) runs the first of
        ``runners``."""
        cfg = super().configure(config)
        if cfg["runner"] is None:
            cfg["runner"] = cfg["runners"][0]
        return cfg

    @classmethod
    def runners_of(cls, config: Mapping[str, Any]) -> list[str]:
        """The runners one suite entry expands into: ``runner`` if set, else ``runners``."""
        if config.get("runner"):
            return [str(config["runner"])]
        return list(config.get("runners") or cls.defaults["runners"])

    @staticmethod
    def runner_name(cfg: Mapping[str, Any]) -> str:
        """The runner a configured entry trains."""
        return str(cfg.get("runner") or (cfg.get("runners") or list(RUNNERS))[0])
