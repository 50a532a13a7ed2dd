"""Adding a protocol is one registered class: the evaluator, suite expansion and CLI pick it up
without any other edit, and its numbers come out of the shared scorers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import mean_absolute_error

from cardiobench.embed.embeddings import Embeddings
from cardiobench.manifest import Manifest
from cardiobench.protocols import evaluate as ev
from cardiobench.protocols.runners import RUNNERS, Runner, RowData, register_runner


@pytest.fixture
def nearest_centroid():
    """A toy protocol: predict the label of the closest train+val class centroid (regression:
    the train+val median)."""

    @register_runner
    class NearestCentroid(Runner):
        name = "nearest_centroid"
        defaults = {"decision": "argmax"}
        fitted = True

        def fit(self, data: RowData) -> None:
            tv = np.isin(data.split, ("train", "val"))
            self.median = float(np.median(data.y[tv]))
            self.record = {"median": self.median}

        def predict(self, data: RowData) -> np.ndarray:
            return np.full(len(data.rows), self.median)

    yield NearestCentroid
    del RUNNERS["nearest_centroid"]


def _ef_data() -> tuple[Manifest, Embeddings]:
    rng = np.random.default_rng(0)
    n = 60
    split = np.array(["train"] * 30 + ["val"] * 10 + ["test"] * 20)
    t = pd.DataFrame({"sample_id": [f"s{i:02d}" for i in range(n)],
                      "patient_id": [f"p{i:02d}" for i in range(n)], "split": split,
                      "path": [f"v/s{i:02d}.avi" for i in range(n)], "view": "A4C",
                      "ef": rng.uniform(20, 80, n).round(1)})
    return Manifest("echonet_dynamic", t), Embeddings(t["sample_id"], rng.normal(size=(n, 4)),
                                                      encoder={"name": "x"}, fingerprint="fp")


def test_a_registered_protocol_runs_through_evaluate_and_suites(nearest_centroid) -> None:
    m, e = _ef_data()
    assert "nearest_centroid" in ev.protocols()
    assert ev.defaults("nearest_centroid") == {"n_boot": 1000, "seed": 42, "level": 0.95,
                                               "ci": "patient", "min_clusters": 10,
                                               "decision": "argmax"}
    r = ev.evaluate("echonet_dynamic/ef", "nearest_centroid", m, e, None, {"n_boot": 50})
    tv = m.table["split"] != "test"
    median = float(np.median(m.table.loc[tv, "ef"]))
    test = m.table[m.table["split"] == "test"]
    assert r.status == "ok" and r.config["protocol_record"] == {"median": median}
    assert r.metrics["mae"]["value"] == pytest.approx(
        mean_absolute_error(test["ef"], np.full(len(test), median)))
    assert r.config["baseline"] == "train+val mean" and r.n == 20
    entries = ev.suite_entries({"runs": [{"tasks": ["echonet_dynamic/ef"],
                                          "protocols": ["nearest_centroid", "knn"]}]})
    assert [p for _, p, _ in entries] == ["nearest_centroid", "knn"]


def test_unknown_protocol_and_config_key_are_named(nearest_centroid) -> None:
    m, e = _ef_data()
    with pytest.raises(ev.EvaluationError, match="unknown protocol 'nope'.*nearest_centroid"):
        ev.evaluate("echonet_dynamic/ef", "nope", m, e)
    with pytest.raises(ev.EvaluationError, match=r"unknown nearest_centroid config keys \['k'\]"):
        ev.evaluate("echonet_dynamic/ef", "nearest_centroid", m, e, None, {"k": 3})
    with pytest.raises(ValueError, match="registered twice"):
        register_runner(nearest_centroid)


def test_every_default_fits_its_declared_field_and_plugins_are_typed_by_default(
        nearest_centroid) -> None:
    from cardiobench.protocols.config_schema import COMMON, fields_of

    for name, runner in RUNNERS.items():
        assert set(runner.fields) <= set(runner.defaults), name  # nothing declared without a default
        cfg = runner.configure(None)  # the defaults pass their own schema
        assert set(cfg) == set(fields_of(runner)), name
    assert set(COMMON) == {"n_boot", "seed", "level", "ci", "min_clusters"}
    m, e = _ef_data()
    # the plugin declares no fields: its keys are typed by their defaults, the common ones by COMMON
    with pytest.raises(ev.EvaluationError, match="field 'decision': 3 is not text; expected "
                                                 "non-empty text"):
        ev.evaluate("echonet_dynamic/ef", "nearest_centroid", m, e, None, {"decision": 3})
    with pytest.raises(ev.EvaluationError, match=r"field 'n_boot': 2.5 is not an integer"):
        ev.evaluate("echonet_dynamic/ef", "nearest_centroid", m, e, None, {"n_boot": 2.5})
    with pytest.raises(ev.EvaluationError, match=r"field 'n_boot': True is not an integer"):
        ev.evaluate("echonet_dynamic/ef", "nearest_centroid", m, e, None, {"n_boot": True})
