"""The dataset registry: one Dataset description drives harmoniser, phantom, splits and tasks.

A toy dataset made of three small files (``tests/toy_dataset``: a harmoniser, a phantom layout,
a split YAML) is registered and goes through phantom → prepare → splits verify → embed (pixels) →
linear probe → leaderboard, with no other table edited.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cardiobench import datasets
from cardiobench.datasets import Dataset, get_dataset, layout_datasets, register, unregister
from cardiobench.encoders import build_encoder
from cardiobench.manifest import ManifestError
from cardiobench.phantom import Scale
from cardiobench.phantom.layouts import get_layout
from cardiobench.phantom.layouts.common import layout_seed
from cardiobench.pipeline import embed_all, generate_phantom, prepare_all
from cardiobench.preprocessing import datasets as harmonised_datasets
from cardiobench.protocols.evaluate import run_suite
from cardiobench.protocols.tasks import TASKS, ExportFormat, Task
from cardiobench.report.leaderboard import write_leaderboard
from cardiobench.splits import load_spec, map_split_column, spec_datasets, verify
from cardiobench.splits.spec import parse_spec

TOY = Path(__file__).parent / "toy_dataset"
BUILTIN = ("echonet_dynamic", "echonet_pediatric", "echonet_lvh", "camus", "tmed2", "hmcqu",
           "segrwma", "cardiacnet_asd", "cardiacnet_pah")


@pytest.fixture()
def toy(monkeypatch: pytest.MonkeyPatch):
    """Register the toy dataset for one test, and remove every trace of it afterwards."""
    monkeypatch.syspath_prepend(str(TOY))
    ds = register(Dataset(
        name="toy_echo", harmoniser="toy_harmoniser", layout="toy_echo",
        layout_module="toy_layout", reference_dir="Toy-Echo", reference_id="clip",
        split_spec=TOY / "toy_echo.yaml",
        tasks=(Task("toy_echo/ef", "toy_echo", "ef", "regression",
                    export=ExportFormat("Toy-Echo/EF", "{model}.csv", "clip", "sample_id",
                                        ("clip", "EF_pred"))),)))
    yield ds
    unregister("toy_echo")


def test_builtin_registry_is_the_one_table() -> None:
    assert datasets.dataset_names() == list(BUILTIN) == harmonised_datasets()
    assert spec_datasets() == sorted(BUILTIN)
    assert list(datasets.layouts()) == ["echonet_dynamic", "echonet_pediatric", "echonet_lvh",
                                        "camus", "tmed2", "hmcqu", "segrwma", "cardiacnet"]
    assert layout_datasets("cardiacnet") == ("cardiacnet_asd", "cardiacnet_pah")
    assert layout_datasets("camus") == ("camus",)
    assert len(TASKS) == 22 and sum(len(get_dataset(d).tasks) for d in BUILTIN) == 22
    # reference-format names come from the dataset: the view export of each dataset
    assert TASKS["echonet_lvh/view"].export.id_column == "HashedFileName"
    assert TASKS["cardiacnet_pah/view"].export.directory == "CardiacNet/view"
    assert TASKS["cardiacnet_pah/view"].export.filename == "{model}_pah.csv"
    assert TASKS["tmed2/view"].export.columns[-1] == "prob_Other"
    with pytest.raises(KeyError, match="known: echonet_dynamic"):
        get_dataset("nope")
    with pytest.raises(KeyError, match="unknown phantom layout 'nope'"):
        layout_datasets("nope")


def test_register_refuses_duplicates_and_foreign_tasks() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        register(get_dataset("camus"))
    bad = Dataset("toy_x", "m", "toy_x", "m", "X",
                  tasks=(Task("camus/other", "camus", "ef", "regression"),))
    with pytest.raises(ValueError, match=r"\['camus/other'\] name another dataset"):
        register(bad)
    assert "toy_x" not in datasets.dataset_names()


def test_layout_seed_depends_on_the_name_only() -> None:
    assert layout_seed(0, "hmcqu") == layout_seed(0, "hmcqu") == 458
    assert layout_seed(2, "hmcqu") == 2458
    seeds = {layout_seed(0, name) for name in datasets.layouts()}
    assert len(seeds) == len(datasets.layouts())  # no two built-in layouts share a seed


def test_split_params_every_field_is_read() -> None:
    with pytest.raises(ManifestError, match=r"params \['order'\] are not read by rule"):
        parse_spec({"dataset": "x", "rule": "stratified_patient",
                    "params": {"test_size": 0.2, "order": "prose"}}, "x.yaml")
    spec = load_spec("echonet_pediatric")
    split, problems = map_split_column(
        __import__("pandas").Series([0, 1, 9, 2.0, "TEST"]), spec.params["mapping"],
        source="FileList.csv", column="Split", lines=range(2, 7))
    assert split.tolist()[:4] == ["test", "val", "train", "train"]
    assert [str(p.message) for p in problems] == [
        "FileList.csv row 6: Split 'TEST' is not one of "
        "['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']"]


def test_toy_dataset_goes_through_prepare_run_report(toy: Dataset, tmp_path: Path) -> None:
    assert get_layout("toy_echo")[1] == "Toy-Echo"
    roots = generate_phantom(tmp_path / "raw", scale=Scale("toy", n_samples=40, n_frames=8),
                             seed=1, layouts=["toy_echo"])
    assert sorted(p.name for p in roots["toy_echo"].iterdir()) == ["clips", "labels.csv"]
    prepared = prepare_all(roots, tmp_path / "manifests")
    assert not prepared.failed, prepared.failed
    m = prepared.manifests["toy_echo"]
    assert {s: c["samples"] for s, c in m.split_counts().items()} == \
        {"train": 24, "val": 8, "test": 8}
    report = verify(m)
    assert report.ok and not report.count_diffs and report.fingerprint_match is None

    enc = build_encoder("pixels")
    emb = embed_all(prepared.manifests, enc, tmp_path / "cache", num_workers=0, progress=False)
    suite = {"runs": [{"tasks": ["toy_echo/ef"], "protocols": ["linear_probe"]}]}
    (res,) = run_suite(suite, prepared.manifests, emb, enc, tmp_path / "results")
    assert res.status == "ok" and res.task == "toy_echo/ef" and res.n == 8
    # the clips pump with their EF, so the pixels probe beats the train+val mean predictor
    assert res.metrics["mae"]["value"] < res.baseline["mae"]["value"]
    board = write_leaderboard(tmp_path / "results").read_text()
    assert "toy_echo/ef (mae)" in board and "pixels · linear_probe" in board


def test_unregister_removes_every_trace(toy: Dataset) -> None:
    assert "toy_echo/ef" in TASKS and "toy_echo" in datasets.layouts()
    unregister("toy_echo")
    assert "toy_echo/ef" not in TASKS and "toy_echo" not in datasets.dataset_names()
    register(toy)  # the fixture's teardown unregisters it again
