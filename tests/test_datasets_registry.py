"""The catalogue: one Dataset entry drives harmoniser, phantom, splits and tasks.

A toy dataset made of three small files (``tests/toy_dataset``: a harmoniser, a phantom layout,
a split YAML) plus one :class:`Dataset` entry goes through phantom → prepare → splits verify →
embed (pixels) → linear probe → leaderboard, with no other table edited.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

from cardiobench.catalogue import Catalogue, Dataset, Source, default_catalogue
from cardiobench.catalogue.builtin import BUILTIN as BUILTIN_DATASETS
from cardiobench.encoders import build_encoder
from cardiobench.job import EmbedOptions, Job, generate_phantom, prepare_all
from cardiobench.manifest import ManifestError
from cardiobench.phantom import Scale
from cardiobench.phantom.layouts.common import layout_seed
from cardiobench.protocols.tasks import ExportFormat, Task
from cardiobench.report.leaderboard import write_leaderboard
from cardiobench.splits import map_split_column, verify
from cardiobench.splits.spec import parse_spec
from cardiobench.suite import suite_entries

TOY = Path(__file__).parent / "toy_dataset"
BUILTIN = ("echonet_dynamic", "echonet_pediatric", "echonet_lvh", "camus", "tmed2", "hmcqu",
           "segrwma", "cardiacnet_asd", "cardiacnet_pah")


@pytest.fixture()
def toy(monkeypatch: pytest.MonkeyPatch) -> Catalogue:
    """The built-in catalogue plus the toy dataset: its one entry."""
    monkeypatch.syspath_prepend(str(TOY))
    import toy_harmoniser
    import toy_layout

    entry = Dataset(
        "toy_echo", toy_harmoniser.harmonise, TOY / "toy_echo.yaml",
        Source("Toy echo", "https://example.org/toy", "CC0", "none", "labels.csv + clips/"),
        tasks=(Task("toy_echo/ef", "toy_echo", "ef", "regression", label_unit="%",
                    export=ExportFormat("Toy-Echo/EF", "{model}.csv", "clip", "sample_id",
                                        ("clip", "EF_pred"))),),
        layout=toy_layout.LAYOUT, media_globs=("clips/*",), schemas=(toy_harmoniser.LABELS,),
        reference_dir="Toy-Echo", reference_id="clip")
    yield default_catalogue().extended(entry)
    for name in ("toy_harmoniser", "toy_layout"):
        sys.modules.pop(name, None)


def test_builtin_catalogue_is_the_one_table() -> None:
    cat = default_catalogue()
    assert list(cat.datasets) == list(BUILTIN)
    assert list(cat.layouts()) == ["echonet_dynamic", "echonet_pediatric", "echonet_lvh",
                                   "camus", "tmed2", "hmcqu", "segrwma", "cardiacnet",
                                   "own_dicom"]
    # a cohort layout writes a user-kind cohort (YAML + table), no catalogue dataset
    assert [c.name for c in cat.cohort_layouts] == ["own_dicom"]
    assert not cat.layout_datasets("own_dicom")
    assert [d.name for d in cat.layout_datasets("cardiacnet")] == ["cardiacnet_asd",
                                                                   "cardiacnet_pah"]
    assert [d.name for d in cat.layout_datasets("camus")] == ["camus"]
    assert len(cat.tasks) == 22 and sum(len(d.tasks) for d in cat.datasets.values()) == 22
    # every dataset's split spec reads and names the dataset; every source is filled in
    for d in cat.datasets.values():
        assert d.spec().dataset == d.name
        assert d.source.title and d.source.url.startswith("https://") and d.source.licence
    # reference-format names come from the dataset: the view export of each dataset
    assert cat.task("echonet_lvh/view").export.id_column == "HashedFileName"
    assert cat.task("cardiacnet_pah/view").export.directory == "CardiacNet/view"
    assert cat.task("cardiacnet_pah/view").export.filename == "{model}_pah.csv"
    assert cat.task("tmed2/view").export.columns[-1] == "prob_Other"
    # a task type is a strategy object, and the headline is the type's unless declared
    assert cat.task("hmcqu/stemi").type is cat.task_type("binary")
    assert {t.headline for t in cat.tasks.values() if t.type.name == "binary"} == {"auroc"}
    assert cat.task("echonet_dynamic/view").headline == "accuracy"
    assert [t.name for t in cat.select_tasks(["echonet_*/ef"])] == ["echonet_dynamic/ef",
                                                                   "echonet_pediatric/ef"]
    with pytest.raises(KeyError, match="known: echonet_dynamic"):
        cat.dataset("nope")
    with pytest.raises(KeyError, match="unknown phantom layout 'nope'"):
        cat.layout_datasets("nope")
    with pytest.raises(KeyError, match="--tasks 'nope/\\*' matches no task"):
        cat.select_tasks(["nope/*"])


def test_catalogue_refuses_duplicates_foreign_tasks_and_paths_as_names() -> None:
    cat = default_catalogue()
    with pytest.raises(ValueError, match="dataset 'camus' is in the catalogue twice"):
        cat.extended(cat.dataset("camus"))
    src = Source("x", "https://x", "x", "x", "x")
    with pytest.raises(ValueError, match=r"\['camus/other'\] name another dataset"):
        Dataset("toy_x", lambda r, s: None, TOY / "toy_echo.yaml", src,
                tasks=(Task("camus/other", "camus", "ef", "regression"),))
    with pytest.raises(ValueError, match="must be an identifier"):
        Dataset("../escaped", lambda r, s: None, TOY / "toy_echo.yaml", src)


def test_layout_seed_depends_on_the_name_only() -> None:
    assert layout_seed(0, "hmcqu") == layout_seed(0, "hmcqu") == 458
    assert layout_seed(2, "hmcqu") == 2458
    layouts = default_catalogue().layouts()
    seeds = {layout_seed(0, name) for name in layouts}
    assert len(seeds) == len(layouts)  # no two built-in layouts share a seed


def test_split_params_every_field_is_read() -> None:
    with pytest.raises(ManifestError, match=r"params \['order'\] are not read by rule"):
        parse_spec({"dataset": "x", "rule": "stratified_patient",
                    "params": {"test_size": 0.2, "order": "prose"}}, "x.yaml")
    spec = default_catalogue().dataset("echonet_pediatric").spec()
    split, problems = map_split_column(
        pd.Series([0, 1, 9, 2.0, "TEST"]), spec.params["mapping"],
        source="FileList.csv", column="Split", lines=range(2, 7))
    assert split.tolist()[:4] == ["test", "val", "train", "train"]
    assert [str(p.message) for p in problems] == [
        "FileList.csv row 6: Split 'TEST' is not one of "
        "['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']"]


def test_toy_dataset_goes_through_prepare_run_report(toy: Catalogue, tmp_path: Path) -> None:
    assert toy.layout("toy_echo").folder == "Toy-Echo"
    roots = generate_phantom(tmp_path / "raw", ["toy_echo"], Scale("toy", n_samples=40,
                                                                   n_frames=8), 1, catalogue=toy)
    assert sorted(p.name for p in roots["toy_echo"].iterdir()) == ["clips", "labels.csv"]
    prepared = prepare_all(roots, tmp_path / "manifests", catalogue=toy)
    assert not prepared.failed, prepared.failed
    m = prepared.manifests["toy_echo"]
    assert {s: c["samples"] for s, c in m.split_counts().items()} == \
        {"train": 24, "val": 8, "test": 8}
    report = verify(m, toy.dataset("toy_echo").spec())
    assert report.ok and not report.count_diffs and report.fingerprint_match is None

    suite = {"runs": [{"tasks": ["toy_echo/ef"], "protocols": ["linear_probe"]}]}
    job = Job(prepared.manifests, build_encoder("pixels"), tmp_path / "cache",
              tmp_path / "results", catalogue=toy, entries=suite_entries(suite, toy),
              options=EmbedOptions(workers=0, progress=False))
    outcome = job.run()
    (res,) = outcome.results
    assert outcome.ok and res.status == "ok" and res.task == "toy_echo/ef" and res.n == 8
    # the clips pump with their EF, so the pixels probe beats the train+val mean predictor
    assert res.metrics["mae"]["value"] < res.baseline["mae"]["value"]
    board = write_leaderboard(tmp_path / "results").read_text()
    assert "toy_echo/ef (mae)" in board and "pixels · linear_probe" in board


def test_builtin_entries_are_the_catalogue_entries() -> None:
    assert tuple(default_catalogue().datasets.values()) == BUILTIN_DATASETS
