"""The splits package: specs, the stratified rule, verify/export/show, and the published numbers."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

from cardiobench.manifest import Manifest, ManifestError, split_fingerprint
from cardiobench.splits import (export, official_split, show,
                                stratified_patient_split, verify)

from helpers import CATALOGUE
from published_facts import example_table, published_split, split_facts

MINE = ("hmcqu", "cardiacnet_asd", "cardiacnet_pah", "tmed2", "segrwma")


def published(dataset: str) -> pd.DataFrame:
    """The published split CSV as a manifest-like table (our sample_ids and label names)."""
    if dataset == "hmcqu":
        t = published_split("hmcqu_split.csv")
        return t.assign(sample_id=t["unique_id"], stemi=t["STEMI"])
    if dataset.startswith("cardiacnet_"):
        sub = dataset.split("_")[1]
        t = published_split(f"cardiacnet/{dataset}_split.csv")
        return t.assign(sample_id=t["unique_id"], **{sub: t[sub.upper()]})
    if dataset == "tmed2":
        t = published_split("tmed2/per_image.csv")
        study = t["query_key"].str.replace(r"_\d+\.png$", "", regex=True)
        return t.assign(sample_id=t["query_key"], patient_id=study,
                        aortic_stenosis=t["diagnosis_label"])
    t = published_split("segrwma_split.csv")
    sid = [p if m == "2D" else f"{p}_{m}" for p, m in zip(t["patient_view_id"], t["modality"])]
    return t.assign(sample_id=sid, rwma=t["abnormal"])


def published_test_ids(dataset: str) -> list[str]:
    """The published test set: the ID column of the example prediction file."""
    files = {"hmcqu": ("HMCQU/stemi/modelname.csv", "unique_id"),
             "cardiacnet_asd": ("CardiacNet/ASD/modelname.csv", "unique_id"),
             "cardiacnet_pah": ("CardiacNet/PAH/modelname.csv", "unique_id"),
             "tmed2": ("TMED2/view/modelname.csv", "query_key"),
             "segrwma": ("segRWMA/view/modelname.csv", "patient_view_id")}
    path, col = files[dataset]
    return example_table(path)[col].astype(str).tolist()


@pytest.mark.parametrize("dataset", MINE)
def test_spec_numbers_equal_those_recomputed_from_published_csvs(dataset: str) -> None:
    spec = CATALOGUE.dataset(dataset).spec()
    t = published(dataset)
    assert spec.fingerprint == split_fingerprint(t)
    label = spec.label
    for split in ("train", "val", "test"):
        g = t[t["split"] == split]
        assert spec.expected["samples"][split] == len(g)
        assert spec.expected["patients"][split] == g["patient_id"].nunique()
        assert spec.expected["positives"][split] == int((g[label] == 1).sum())
    ids = published_test_ids(dataset)
    assert spec.test_ids_sha256 == hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()
    if dataset == "segrwma":
        # the SHA-256 of the published file, recorded when the facts were derived from it
        assert spec.params["sha256"] == split_facts("segrwma_split.csv")["sha256"]
        test2d = t[(t["split"] == "test") & (t["modality"] == "2D")]
        assert sorted(test2d["sample_id"]) == sorted(ids)


@pytest.mark.parametrize("dataset", ["hmcqu", "cardiacnet_asd", "cardiacnet_pah"])
def test_stratified_rule_reproduces_published_split_id_for_id(dataset: str) -> None:
    spec = CATALOGUE.dataset(dataset).spec()
    t = published(dataset).sample(frac=1.0, random_state=0)  # row order must not matter
    p = spec.params
    got = stratified_patient_split(t, spec.label, test_size=p["test_size"],
                                   val_size=p["val_size"], seed=p["seed"])
    assert (got == t["split"]).all()


def test_official_split_maps_and_names_unknown_values() -> None:
    ids = pd.Series(["a", "b", "c"])
    got = official_split(pd.Series(["TRAIN", "VAL", "TEST"]), {"TRAIN": "train", "VAL": "val",
                                                                 "TEST": "test"}, source="x.csv")
    assert got.tolist() == ["train", "val", "test"]
    with pytest.raises(ManifestError) as err:
        official_split(pd.Series(["train", "valid", "test"]), {"train": "train", "val": "val",
                                                                 "test": "test"},
                       source="FileList.csv", ids=ids)
    assert err.value.problems[0].sample_id == "b" and "'valid'" in str(err.value)
    assert "FileList.csv" in str(err.value)


def test_load_spec_unknown_dataset_lists_known() -> None:
    with pytest.raises(KeyError, match="hmcqu"):
        CATALOGUE.dataset("nope").spec()


def test_verify_passes_published_and_names_a_single_moved_patient() -> None:
    t = published("hmcqu")
    m = Manifest("hmcqu", t[["sample_id", "patient_id", "split", "path", "view", "stemi"]])
    rep = verify(m, CATALOGUE.dataset(m.dataset).spec())
    assert rep.ok and rep.fingerprint_match and rep.test_ids_match and rep.moved.empty
    pid = t.loc[t["split"] == "train", "patient_id"].iloc[0]
    moved = m.table.copy()
    moved.loc[moved["patient_id"] == pid, "split"] = "test"
    rep = verify(Manifest("hmcqu", moved), CATALOGUE.dataset("hmcqu").spec())
    assert not rep.ok and rep.fingerprint_match is False and rep.test_ids_match is False
    assert rep.moved_patients == {pid: ("train", "test")}
    n = int((t["patient_id"] == pid).sum())
    assert sorted(rep.moved["sample_id"]) == sorted(t.loc[t["patient_id"] == pid, "sample_id"])
    diffs = {(d["what"], d["split"]): (d["expected"], d["actual"]) for d in rep.count_diffs}
    assert diffs[("samples", "train")] == (227, 227 - n)
    assert diffs[("patients", "test")] == (25, 26)
    assert f"patient {pid}: train -> test" in str(rep)


def test_verify_with_given_reference_reports_missing_and_extra() -> None:
    t = published("cardiacnet_asd")
    m = Manifest("cardiacnet_asd", t[["sample_id", "patient_id", "split", "path", "asd"]].iloc[1:])
    rep = verify(m, CATALOGUE.dataset(m.dataset).spec(), reference=t[["sample_id", "split"]])
    assert not rep.ok and rep.missing == [t["sample_id"].iloc[0]] and rep.extra == []
    assert rep.reference == "given"


def test_export_and_show(tmp_path: Path) -> None:
    t = published("cardiacnet_pah")
    m = Manifest("cardiacnet_pah", t[["sample_id", "patient_id", "split", "path", "pah"]])
    paths = export(m, tmp_path)
    assert [p.name for p in paths] == ["cardiacnet_pah.csv", "cardiacnet_pah.json",
                                       "cardiacnet_pah.splits.json"]
    back = Manifest.read(tmp_path / "cardiacnet_pah.csv")
    assert back.fingerprint == m.fingerprint == CATALOGUE.dataset("cardiacnet_pah").spec().fingerprint
    doc = json.loads((tmp_path / "cardiacnet_pah.splits.json").read_text())
    assert len(doc["splits"]["test"]) == 106 and doc["fingerprint"] == m.fingerprint
    s = show(m)
    assert s.loc["test", "patients"] == 66 and s.loc["train", "samples"] == 319
    assert s.loc["train", "pah_pos"] == 221 and s.loc["val", "pah_pos"] == 31
    with pytest.raises(ValueError, match="parquet"):
        export(m, tmp_path, formats=("parquet",))
