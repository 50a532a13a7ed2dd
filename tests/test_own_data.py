"""A cohort of the user's own, described in one YAML file: prepare → run → report on DICOM cines,
every refusal named, the split reproducible from the YAML alone, and no identifier from a DICOM
tag in clear in any output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import mean_absolute_error, roc_auc_score

from cardiobench.catalogue import default_catalogue
from cardiobench.catalogue.own import catalogue_for, cohort_dataset, load_cohort
from cardiobench.cli import main
from cardiobench.io import write_video
from cardiobench.manifest import Manifest
from cardiobench.preprocessing import prepare
from cardiobench.preprocessing.own import CohortError
from cardiobench.results import load_results

from helpers import CATALOGUE

BASE_YAML = """\
name: clinic_a
root: .
table: labels.csv
columns: {path: file, patient: patient_id}
split: {rule: stratified_patient, val: 0.2, test: 0.3, seed: 0, stratify: low_ef}
tasks:
  - {name: ef, label: ef, type: regression, unit: "%", range: [5, 95], same_as: echonet_dynamic/ef}
  - {name: low_ef, label: low_ef, type: binary, positive: yes}
  - {name: view, label: view, type: multiclass, classes: [A4C, A2C]}
description: a made-up clinic
licence: CC0
"""


def _cohort(root: Path, yaml_text: str = BASE_YAML, n_patients: int = 12,
            rows: list[dict] | None = None) -> Path:
    """Small AVIs (two views per patient) with a labels CSV and the cohort YAML."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    out = []
    for p in range(n_patients):
        ef = float(rng.uniform(20, 75))
        for view in ("A4C", "A2C"):
            name = f"p{p:02d}_{view}.avi"
            write_video(root / name, rng.integers(0, 255, (6, 16, 16), dtype=np.uint8), fps=25)
            out.append({"file": name, "patient_id": f"P{p:02d}", "ef": round(ef, 1),
                        "low_ef": "yes" if ef < 40 else "no", "view": view})
    table = pd.DataFrame(rows if rows is not None else out)
    table.to_csv(root / "labels.csv", index=False)
    (root / "cohort.yaml").write_text(yaml_text)
    return root / "cohort.yaml"


def test_a_cohort_yaml_prepares_like_a_builtin_and_its_split_is_reproducible(tmp_path) -> None:
    spec = _cohort(tmp_path / "a")
    cohort, cat = load_cohort(spec, default_catalogue())
    m1 = prepare(cat.dataset("clinic_a"), cohort.root, tmp_path / "m" / "clinic_a.csv")
    # patient-grouped, every split present, labels coded as declared
    assert m1.table.groupby("patient_id")["split"].nunique().max() == 1
    assert set(m1.table["split"]) == {"train", "val", "test"}
    assert set(m1.table["low_ef"]) == {0.0, 1.0}
    src = json.loads((tmp_path / "m" / "clinic_a.json").read_text())["source"]
    assert src["cohort_sha256"] == __import__("hashlib").sha256(spec.read_bytes()).hexdigest()
    # from the YAML alone, elsewhere: the same assignment
    again = _cohort(tmp_path / "b")
    c2, cat2 = load_cohort(again, default_catalogue())
    m2 = prepare(cat2.dataset("clinic_a"), c2.root)
    assert m2.fingerprint == m1.fingerprint
    # a cohort's task means what it declares: same_as puts it beside EchoNet-Dynamic's EF
    assert "clinic_a/ef" in [t.name for t in cat.equivalents("echonet_dynamic/ef")]
    # a multiclass task linked by same_as is scored on the linked task's vocabulary and order
    linked = _cohort(tmp_path / "v", BASE_YAML.replace(
        "classes: [A4C, A2C]", "classes: [A4C, A2C], same_as: echonet_dynamic/view"))
    _, cat_v = load_cohort(linked, default_catalogue())
    assert cat_v.task("clinic_a/view").classes == cat_v.task("echonet_dynamic/view").classes
    assert "clinic_a/view" in [t.name for t in cat_v.equivalents("camus/view")]
    # later commands need only the manifest: its sidecar records the spec
    spec.unlink()
    rebuilt = catalogue_for([Manifest.read(tmp_path / "m" / "clinic_a.csv")], default_catalogue())
    assert [t.name for t in rebuilt.dataset("clinic_a").tasks] == ["clinic_a/ef",
                                                                   "clinic_a/low_ef",
                                                                   "clinic_a/view"]


@pytest.mark.parametrize("edit,words", [
    (lambda y: y.replace("name: clinic_a", "name: ../escape"), "name: '../escape' is not an "
     "identifier"),
    (lambda y: y.replace("table: labels.csv\n", ""), "table: missing (required)"),
    (lambda y: y.replace("type: regression", "type: ordinal2"), "tasks[0].type: unknown task "
     "type 'ordinal2'"),
    (lambda y: y.replace("type: binary, positive: yes", "type: binary"), "tasks[1]: a binary "
     "task declares positive: VALUE"),
    (lambda y: y.replace("stratify: low_ef", "stratify: ef"), "split.stratify: 'ef' must name a "
     "binary or multiclass task"),
    (lambda y: y.replace("val: 0.2", "val: 0.8"), "leaves no train patients"),
    (lambda y: y.replace("same_as: echonet_dynamic/ef", "same_as: hmcqu/stemi"),
     "same_as hmcqu/stemi is a binary task"),
    (lambda y: y.replace("label: low_ef, type: binary, positive: yes", "label: grade, type: "
                         "multiclass, classes: [A4C, Q], same_as: echonet_dynamic/view"),
     "classes ['Q'] are not classes of echonet_dynamic/view"),
    (lambda y: y.replace("label: ef,", "label: split,"), "tasks[0].label: 'split' is a manifest "
     "column of its own"),
    (lambda y: y + "colour: blue\n", "colour: unknown field(s)"),
    (lambda y: y + "prompts: {low_ef: {kind: binary, positive: [low]}}\n",
     "prompts.low_ef: missing field 'negative'"),
    (lambda y: y + "prompts: {view: {kind: multiclass, classes: {A4C: [apical four]}}}\n",
     "has no prompts for classes ['A2C']"),
])
def test_a_bad_spec_names_the_field_and_writes_nothing(tmp_path, capsys, edit, words) -> None:
    spec = _cohort(tmp_path / "c", edit(BASE_YAML))
    out = tmp_path / "m" / "x.csv"
    assert main(["prepare", str(spec), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert words in err and str(spec) in err, err
    assert not out.parent.exists()


def test_bad_table_cells_rows_and_paths_are_named(tmp_path, capsys) -> None:
    good = _cohort(tmp_path / "g")
    table = pd.read_csv(good.parent / "labels.csv")
    # a label column absent from the table: refused with the columns expected and found
    table.drop(columns=["view"]).to_csv(good.parent / "labels.csv", index=False)
    assert main(["prepare", str(good), "--out", str(tmp_path / "o1.csv")]) == 2
    assert "view" in capsys.readouterr().err and not (tmp_path / "o1.csv").exists()
    # a class outside `classes` costs its own sample, named with file and line
    bad = table.copy()
    bad.loc[3, "view"] = "PLAX"
    bad.to_csv(good.parent / "labels.csv", index=False)
    assert main(["prepare", str(good), "--out", str(tmp_path / "o2.csv")]) == 2
    err = capsys.readouterr().err
    assert "labels.csv line 5" in err and "PLAX" in err and "--allow-incomplete" in err
    assert main(["prepare", str(good), "--out", str(tmp_path / "o2.csv"),
                 "--allow-incomplete"]) == 0
    assert len(pd.read_csv(tmp_path / "o2.csv")) == len(table) - 1
    capsys.readouterr()
    # a path leaving the root: refused, naming the line
    bad = table.copy()
    bad.loc[0, "file"] = "../outside.avi"
    bad.to_csv(good.parent / "labels.csv", index=False)
    assert main(["prepare", str(good), "--out", str(tmp_path / "o3.csv")]) == 2
    err = capsys.readouterr().err
    assert "leave the cohort root" in err and "line 2" in err
    # an empty sample ID (an `id` column declared): that row is named and set aside, no crash
    with_ids = _cohort(tmp_path / "i", BASE_YAML.replace("patient: patient_id}",
                                                         "patient: patient_id, id: sid}"))
    table = pd.read_csv(with_ids.parent / "labels.csv")
    table["sid"] = [f"s{i}" if i != 4 else "" for i in range(len(table))]
    table.to_csv(with_ids.parent / "labels.csv", index=False)
    assert main(["prepare", str(with_ids), "--out", str(tmp_path / "o4.csv")]) == 2
    err = capsys.readouterr().err
    assert "labels.csv line 6" in err and "sid is empty; no sample ID" in err
    assert main(["prepare", str(with_ids), "--out", str(tmp_path / "o4.csv"),
                 "--allow-incomplete"]) == 0
    written = pd.read_csv(tmp_path / "o4.csv")
    assert len(written) == len(table) - 1 and written["sample_id"].notna().all()


def test_a_drawn_split_verifies_on_the_subset_allow_incomplete_keeps(tmp_path, capsys) -> None:
    spec = _cohort(tmp_path / "d", n_patients=16)
    for f in sorted((tmp_path / "d").glob("p03_*.avi")):  # one patient loses all its files
        f.unlink()
    full = prepare(load_cohort(spec, default_catalogue())[1].dataset("clinic_a"), tmp_path / "d",
                   media_check=False, allow_incomplete=True)
    out = tmp_path / "m" / "clinic_a.csv"
    assert main(["prepare", str(spec), "--out", str(out), "--allow-incomplete"]) == 0
    m = Manifest.read(out)
    assert "P03" not in set(m.table["patient_id"]) and set(m.excluded["patient_id"]) == {"P03"}
    # the draw was made with P03; the recomputation sees it again from the sidecar
    assert m.table.set_index("sample_id")["split"].equals(
        full.table.set_index("sample_id")["split"].loc[m.table["sample_id"]])
    capsys.readouterr()
    assert main(["splits", "verify", "--manifest", str(out)]) == 0
    assert "clinic_a: OK" in capsys.readouterr().out


def test_a_split_column_is_read_and_a_patient_in_two_splits_refused(tmp_path, capsys) -> None:
    y = BASE_YAML.replace("split: {rule: stratified_patient, val: 0.2, test: 0.3, seed: 0, "
                          "stratify: low_ef}", "split: {column: fold}")
    spec = _cohort(tmp_path / "s", y)
    t = pd.read_csv(spec.parent / "labels.csv")
    t["fold"] = np.where(t.index % 5 == 0, "TEST", np.where(t.index % 5 == 1, "Val", "train"))
    t.loc[t["patient_id"] == "P00", "fold"] = "train"
    t.loc[t["patient_id"] == "P01", "fold"] = ["train", "TEST"]  # one patient, two splits
    t.to_csv(spec.parent / "labels.csv", index=False)
    assert main(["prepare", str(spec), "--out", str(tmp_path / "m.csv")]) == 2
    err = capsys.readouterr().err
    assert "patient 'P01' is in splits ['test', 'train']" in err
    t.loc[t["patient_id"] == "P01", "fold"] = "train"
    t.loc[2, "fold"] = "holdout"
    t.to_csv(spec.parent / "labels.csv", index=False)
    assert main(["prepare", str(spec), "--out", str(tmp_path / "m.csv")]) == 2
    assert "holdout" in capsys.readouterr().err and not (tmp_path / "m.csv").exists()


def test_a_cohort_without_views_runs_and_reports(tmp_path, capsys) -> None:
    y = BASE_YAML.replace("  - {name: view, label: view, type: multiclass, classes: [A4C, A2C]}\n",
                          "")
    spec = _cohort(tmp_path / "nv", y)
    m, r, c, rep = (tmp_path / d for d in ("m", "r", "c", "rep"))
    assert main(["prepare", str(spec), "--out", str(m / "clinic_a.csv")]) == 0
    assert "view" not in Manifest.read(m / "clinic_a.csv").table
    assert main(["run", "--encoder", "pixels", "--manifest", str(m), "--cache", str(c), "--out",
                 str(r), "--workers", "0", "--protocols", "linear_probe"]) == 0
    assert main(["report", "--results", str(r), "--out", str(rep), "--manifest", str(m),
                 "--cache", str(c)]) == 0
    # the map is coloured by the cohort's first endpoint (from its results), views said absent
    assert (rep / "fig" / "embedding__clinic_a__pixels-92e04e03.png").is_file()
    assert "PCA of test embeddings by ef" in (rep / "index.html").read_text()


@pytest.fixture(scope="module")
def dicom_run(tmp_path_factory: pytest.TempPathFactory):
    """The DICOM cohort phantom through the CLI as a user would: phantom → prepare YAML → run
    → report."""
    root = tmp_path_factory.mktemp("own")
    assert main(["phantom", "--out", str(root / "ph"), "--datasets", "own_dicom"]) == 0
    yaml_path = root / "ph" / "Own-DICOM-cohort" / "own_dicom.yaml"
    assert main(["prepare", str(yaml_path), "--out", str(root / "m" / "own.csv")]) == 0
    assert main(["run", "--encoder", "pixels", "--manifest", str(root / "m"), "--cache",
                 str(root / "c"), "--out", str(root / "r"), "--workers", "0"]) == 0
    assert main(["report", "--results", str(root / "r"), "--out", str(root / "rep"),
                 "--manifest", str(root / "m"), "--cache", str(root / "c")]) == 0
    return root


def test_dicom_cohort_every_task_scored_and_recomputable(dicom_run: Path) -> None:
    m = Manifest.read(dicom_run / "m" / "own.csv")
    results = {(r.task, r.protocol): r for r in load_results(dicom_run / "r",
                                                             with_predictions=True)}
    for task in ("own_dicom/ef", "own_dicom/reduced_ef", "own_dicom/view"):
        for proto in ("linear_probe", "knn"):
            r = results[(task, proto)]
            assert r.status == "ok", (task, proto, r.reason)
            label = task.split("/")[1]
            assert r.n == int(m.table.loc[m.table["split"] == "test", label].notna().sum())
    ef = results[("own_dicom/ef", "linear_probe")]
    p = ef.predictions
    assert ef.metrics["mae"]["value"] == pytest.approx(mean_absolute_error(p["y_true"],
                                                                           p["y_pred"]))
    rd = results[("own_dicom/reduced_ef", "linear_probe")]
    q = rd.predictions
    assert rd.metrics["auroc"]["value"] == pytest.approx(100 * roc_auc_score(q["y_true"],
                                                                             q["prob"]))
    html = (dicom_run / "rep" / "index.html").read_text()
    assert "own_dicom/ef" in html and "A synthetic hospital export" in html and "CC0" in html
    # the cohort's label unit (from its YAML) reaches the tables, as a built-in task's does
    assert "own_dicom/ef · MAE (% points)" in (dicom_run / "r" / "leaderboard.md").read_text()
    assert "MAE (% points)" in html.split('id="overview"')[1].split("</table>")[0]


def test_splits_verify_recomputes_a_drawn_cohort_split_from_the_manifest(dicom_run: Path,
                                                                        tmp_path, capsys) -> None:
    # the draw is on the manifest's own (pseudonymised) patients: no raw tag needed to check it
    assert main(["splits", "verify", "--manifest", str(dicom_run / "m")]) == 0
    assert "own_dicom: OK" in capsys.readouterr().out
    assert main(["splits", "export", "--manifest", str(dicom_run / "m"), "--out",
                 str(tmp_path / "sp")]) == 0
    capsys.readouterr()
    exported = Manifest.read(tmp_path / "sp" / "own_dicom.csv")
    t = exported.table
    moved = str(t.loc[t["split"] == "test", "patient_id"].iat[0])
    t.loc[t["patient_id"] == moved, "split"] = "train"
    t.to_csv(tmp_path / "sp" / "own_dicom.csv", index=False)
    assert main(["splits", "verify", "--manifest", str(tmp_path / "sp" / "own_dicom.csv")]) == 1
    assert f"patient {moved}: test -> train" in capsys.readouterr().out


def test_cohort_predictions_export_in_the_long_format_only(dicom_run: Path, tmp_path,
                                                            capsys) -> None:
    args = ["export-predictions", "--results", str(dicom_run / "r"), "--manifest",
            str(dicom_run / "m")]
    # no published evaluator reads a user's cohort: the reference tree says so and writes nothing
    assert main([*args, "--out", str(tmp_path / "ref")]) == 2
    assert "have no published evaluator: use --format long" in capsys.readouterr().err
    assert not (tmp_path / "ref").exists()
    assert main([*args, "--out", str(tmp_path / "long"), "--format", "long"]) == 0
    long = pd.read_csv(tmp_path / "long" / "predictions_long.csv")
    assert set(long["task"]) == {"own_dicom/ef", "own_dicom/reduced_ef", "own_dicom/view"}
    ef = load_results(dicom_run / "r", with_predictions=True)
    ef = next(r for r in ef if r.task == "own_dicom/ef" and r.protocol == "linear_probe")
    got = long[long["task"] == "own_dicom/ef"].set_index("unit_id")["y_pred"]
    want = ef.predictions.set_index("sample_id")["y_pred"]
    assert np.allclose(got.loc[want.index].astype(float).to_numpy(), want.to_numpy())


def test_no_identifier_from_a_dicom_tag_is_written_in_clear(dicom_run: Path) -> None:
    import pydicom

    secrets = set()
    for f in (dicom_run / "ph" / "Own-DICOM-cohort" / "export").rglob("*"):
        if f.is_file():
            ds = pydicom.dcmread(f, stop_before_pixels=True)
            secrets |= {str(ds.PatientID), str(ds.StudyInstanceUID), str(ds.PatientName)}
    assert len(secrets) > 10
    by_folder = {d: [f for f in (dicom_run / d).rglob("*") if f.is_file()]
                 for d in ("m", "r", "rep", "c")}
    assert all(by_folder.values()), {d: len(fs) for d, fs in by_folder.items()}
    outputs = [f for fs in by_folder.values() for f in fs]
    for f in outputs:
        data = f.read_bytes()
        leaked = [s for s in secrets if s.encode() in data]
        assert not leaked, (f, leaked[:3])


def test_the_cohort_spec_of_the_phantom_is_a_valid_spec() -> None:
    from cardiobench.phantom.layouts.own_dicom import COHORT_YAML

    import yaml

    from cardiobench.preprocessing.own import parse_cohort

    cohort = parse_cohort(yaml.safe_load(COHORT_YAML), "phantom", Path("."))
    assert [t.name for t in cohort_dataset(cohort).tasks] == ["own_dicom/ef",
                                                              "own_dicom/reduced_ef",
                                                              "own_dicom/view"]
    assert CATALOGUE.layout("own_dicom").folder == "Own-DICOM-cohort"
    with pytest.raises(CohortError, match="deidentify.salt_env: environment variable"):
        parse_cohort({**yaml.safe_load(COHORT_YAML),
                      "deidentify": {"salt_env": "CARDIOBENCH_TEST_UNSET_SALT"}}, "x", Path("."))
