"""Adding a protocol, or a task type, is one file: the catalogue, the evaluator, the suite
expansion and the scorers pick it up without any other edit.

The new file is written into a temporary folder appended to the package's search path, which is
exactly where a developer's new module would be found (``pkgutil`` over the package ``__path__``).
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import mean_absolute_error

import cardiobench.protocols as protocols_pkg
import cardiobench.protocols.task_types as task_types_pkg
from cardiobench.catalogue import default_catalogue
from cardiobench.embed.embeddings import Embeddings
from cardiobench.manifest import Manifest
from cardiobench.protocols import evaluate as ev
from cardiobench.protocols.tasks import Task
from cardiobench.suite import suite_entries


NEAREST_CENTROID = '''
    """A toy protocol: predict the train+val median for every row."""

    import numpy as np

    from cardiobench.protocols.runners import Protocol, RowData, Runner


    class NearestCentroid(Runner):
        name = "nearest_centroid"
        definition = "Nearest centroid: the train+val median."
        defaults = {"decision": "argmax"}
        fitted = True

        def fit(self, data: RowData) -> None:
            tv = np.isin(data.split, ("train", "val"))
            self.median = float(np.median(data.y[tv]))
            self.record = {"median": self.median}

        def predict(self, data: RowData) -> np.ndarray:
            return np.full(len(data.rows), self.median)


    PROTOCOL = Protocol.of(NearestCentroid)
'''

# an ordinal target (e.g. a 0-3 stenosis grade) scored as a regression of the grade, with its own
# headline metric: everything else (probe, kNN, scorers) is inherited from the regression type
ORDINAL = '''
    """Ordinal grades, scored by the absolute grade error."""

    from cardiobench.protocols.task_types.regression import Regression


    class Ordinal(Regression):
        name = "ordinal"
        headline = "mae"
        figures = ("scatter",)


    TASK_TYPE = Ordinal()
'''


def _plug_in(pkg, tmp_path: Path, module: str, source: str) -> None:
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
    pkg.__path__.append(str(tmp_path))


def _one_new_file(pkg, discover, tmp_path: Path, module: str, source: str):
    """``module`` as one new file of package ``pkg`` while the test runs; ``discover`` is the
    package's cached discovery function."""
    _plug_in(pkg, tmp_path, module, source)
    discover.cache_clear()
    yield
    pkg.__path__.remove(str(tmp_path))
    sys.modules.pop(f"{pkg.__name__}.{module}", None)
    discover.cache_clear()


@pytest.fixture
def new_protocol(tmp_path: Path):
    """``nearest_centroid`` as one new file of the protocols package."""
    yield from _one_new_file(protocols_pkg, protocols_pkg.protocols, tmp_path,
                             "nearest_centroid", NEAREST_CENTROID)


@pytest.fixture
def new_task_type(tmp_path: Path):
    """``ordinal`` as one new file of the task-types package."""
    yield from _one_new_file(task_types_pkg, task_types_pkg.task_types, tmp_path, "ordinal",
                             ORDINAL)


def _ef_data(label: str = "ef") -> tuple[Manifest, Embeddings]:
    rng = np.random.default_rng(0)
    n = 60
    split = np.array(["train"] * 30 + ["val"] * 10 + ["test"] * 20)
    t = pd.DataFrame({"sample_id": [f"s{i:02d}" for i in range(n)],
                      "patient_id": [f"p{i:02d}" for i in range(n)], "split": split,
                      "path": [f"v/s{i:02d}.avi" for i in range(n)], "view": "A4C",
                      label: rng.uniform(20, 80, n).round(1)})
    return Manifest("echonet_dynamic", t), Embeddings(t["sample_id"], rng.normal(size=(n, 4)),
                                                      encoder={"name": "x"}, fingerprint="fp")


def test_a_new_protocol_file_runs_through_catalogue_evaluate_and_suites(new_protocol) -> None:
    cat = default_catalogue()
    assert "nearest_centroid" in cat.protocols
    assert ev.defaults("nearest_centroid") == {"n_boot": 1000, "seed": 42, "level": 0.95,
                                               "ci": "patient", "min_clusters": 10,
                                               "decision": "argmax"}
    m, e = _ef_data()
    r = ev.evaluate(cat.task("echonet_dynamic/ef"), "nearest_centroid", m, e, None, {"n_boot": 50})
    tv = m.table["split"] != "test"
    median = float(np.median(m.table.loc[tv, "ef"]))
    test = m.table[m.table["split"] == "test"]
    assert r.status == "ok" and r.config["protocol_record"] == {"median": median}
    assert r.metrics["mae"]["value"] == pytest.approx(
        mean_absolute_error(test["ef"], np.full(len(test), median)))
    assert r.config["baseline"] == "train+val mean" and r.n == 20
    entries = suite_entries({"runs": [{"tasks": ["echonet_dynamic/ef"],
                                       "protocols": ["nearest_centroid", "knn"]}]}, cat)
    assert [x.protocol for x in entries] == ["nearest_centroid", "knn"]
    assert [p.name for p in cat.select_protocols(["near*"])] == ["nearest_centroid"]


def test_a_new_task_type_file_is_found_and_scored(new_task_type) -> None:
    cat = default_catalogue()
    assert cat.task_type("ordinal").headline == "mae"
    grade = Task("echonet_dynamic/grade", "echonet_dynamic", "grade", "ordinal")
    m, e = _ef_data("grade")
    r = ev.evaluate(grade, "linear_probe", m, e, None, {"n_boot": 50})
    assert r.status == "ok" and r.config["task"]["type"] == "ordinal"
    assert r.config["headline"] == "mae" and r.baseline["mae"]["value"] > 0


def test_unknown_protocol_config_key_and_task_type_are_named(new_protocol) -> None:
    cat = default_catalogue()
    m, e = _ef_data()
    with pytest.raises(ev.EvaluationError, match="unknown protocol 'nope'.*nearest_centroid"):
        ev.evaluate(cat.task("echonet_dynamic/ef"), "nope", m, e)
    with pytest.raises(ev.EvaluationError, match=r"unknown nearest_centroid config keys \['k'\]"):
        ev.evaluate(cat.task("echonet_dynamic/ef"), "nearest_centroid", m, e, None, {"k": 3})
    with pytest.raises(KeyError, match="unknown task type 'nope'.*regression"):
        Task("echonet_dynamic/x", "echonet_dynamic", "ef", "nope")
    with pytest.raises(KeyError, match="--protocols 'zzz' matches no protocol"):
        cat.select_protocols(["zzz"])


def test_every_default_fits_its_declared_field_and_plugins_are_typed_by_default(
        new_protocol) -> None:
    from cardiobench.protocols.config_schema import COMMON, fields_of

    task = default_catalogue().task("echonet_dynamic/ef")
    for name, proto in default_catalogue().protocols.items():
        runner = proto.runner
        assert set(runner.fields) <= set(runner.defaults), name  # nothing declared without a default
        cfg = runner.configure(None)  # the defaults pass their own schema
        assert set(cfg) == set(fields_of(runner)), name
    assert set(COMMON) == {"n_boot", "seed", "level", "ci", "min_clusters"}
    m, e = _ef_data()
    # the plugin declares no fields: its keys are typed by their defaults, the common ones by COMMON
    with pytest.raises(ev.EvaluationError, match="field 'decision': 3 is not text; expected "
                                                 "non-empty text"):
        ev.evaluate(task, "nearest_centroid", m, e, None, {"decision": 3})
    with pytest.raises(ev.EvaluationError, match=r"field 'n_boot': 2.5 is not an integer"):
        ev.evaluate(task, "nearest_centroid", m, e, None, {"n_boot": 2.5})
    with pytest.raises(ev.EvaluationError, match=r"field 'n_boot': True is not an integer"):
        ev.evaluate(task, "nearest_centroid", m, e, None, {"n_boot": True})
