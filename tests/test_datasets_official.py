"""Official-split datasets: EchoNet-Pediatric, EchoNet-LVH, CAMUS (+ EchoNet-Dynamic's split spec).

Phantoms built from the published test IDs (the example prediction files) must yield exactly the
published test sets after ``prepare``; tiny phantoms must round-trip the simulator's truth; and
broken downloads must fail naming the file, line, video or patient at fault.
"""

from __future__ import annotations

import hashlib
import importlib
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from cardiobench.manifest import ManifestError
from cardiobench.phantom.layouts import write_layout
from cardiobench.preprocessing import prepare

from helpers import CATALOGUE
from published_facts import example_table

SPLITS_DIR = Path(__file__).resolve().parents[1] / "splits"

def _sha(ids) -> str:
    return hashlib.sha256("\n".join(sorted(set(map(str, ids)))).encode()).hexdigest()


def _spec(dataset: str) -> dict:
    return yaml.safe_load((SPLITS_DIR / f"{dataset}.yaml").read_text())


def _verify(manifest) -> None:
    """The shared split verifier finds the published test IDs and no count difference."""
    from cardiobench.splits import verify

    report = verify(manifest, CATALOGUE.dataset(manifest.dataset).spec())
    assert report.test_ids_match is True, str(report)
    assert report.count_diffs == [], str(report)


def _write_and_prepare(name: str, root: Path, samples: pd.DataFrame | None = None,
                       scale: str = "ids", seed: int = 0):
    truth = write_layout(CATALOGUE.layout(name), root, scale=scale, seed=seed, samples=samples)
    # the "ids" scale carries every published ID (up to 10,030 videos): its media are only
    # checked for presence and size, decoding each is the fault suite's job
    return truth, prepare(CATALOGUE.dataset(name), root, media_check=scale != "ids")


# ---------------------------------------------------------------- published test sets


def test_split_specs_hash_the_published_test_ids():
    """The YAML test_ids_sha256 and expected test counts equal those of the example files."""
    dyn = example_table("EchoNet-Dynamic/EF/modelname.csv")["FileName"]
    ped = example_table("EchoNet-Pediatric/EF/modelname.csv")["FileName"]
    lvh = set()
    for t in ("IVSd", "LVIDd", "LVPWd", "view"):
        lvh |= set(example_table(f"EchoNet-LVH/{t}/modelname.csv")["HashedFileName"])
    camus = example_table("CAMUS/view/modelname.csv")["unique_id"]
    for ds, ids, n in (("echonet_dynamic", dyn, 1277), ("echonet_pediatric", ped, 658),
                       ("echonet_lvh", lvh, 340), ("camus", camus, 100)):
        spec = _spec(ds)
        assert spec["rule"] == "official" and spec["dataset"] == ds
        assert len(set(ids)) == n == spec["expected"]["samples"]["test"], ds
        assert spec["test_ids_sha256"] == _sha(ids), ds
    assert _spec("echonet_dynamic")["expected"]["samples"] == {"train": 7465, "val": 1288,
                                                              "test": 1277}
    # The CAMUS EF example disagrees with the view example on exactly one patient (documented).
    ef_patients = set(example_table("CAMUS/EF/modelname.csv")["patient_id"])
    view_patients = {u.split("_")[0] for u in camus}
    assert ef_patients ^ view_patients == {"patient0001", "patient0027"}


def test_pediatric_published_test_set(tmp_path):
    pub = example_table("EchoNet-Pediatric/EF/modelname.csv")
    own = pd.DataFrame({
        "sample_id": [f"PH{k:05d}-PHacc{k:04d}-{j:06d}.avi" for k in range(8) for j in (1, 2)],
        "view": ["A4C", "PSAX"] * 8,
        "split": ["train"] * 10 + ["val"] * 6})
    samples = pd.concat([pub.assign(split="test")[["FileName", "view", "split"]]
                         .rename(columns={"FileName": "sample_id"}), own], ignore_index=True)
    _, m = _write_and_prepare("echonet_pediatric", tmp_path / "ped", samples)
    test = m.subset("test")
    assert set(test["sample_id"]) == set(pub["FileName"]) and len(test) == 658
    assert test["view"].value_counts().to_dict() == {"PSAX": 387, "A4C": 271}
    assert test["patient_id"].nunique() == _spec("echonet_pediatric")["expected"]["patients"]["test"]
    assert _sha(test["sample_id"]) == _spec("echonet_pediatric")["test_ids_sha256"]
    assert m.split_counts()["train"]["samples"] == 10 and m.split_counts()["val"]["samples"] == 6
    _verify(m)


def test_lvh_published_test_set(tmp_path):
    per_target = {t: set(example_table(f"EchoNet-LVH/{t}/modelname.csv")
                         ["HashedFileName"]) for t in ("IVSd", "LVIDd", "LVPWd")}
    ids = sorted(set().union(*per_target.values()))
    samples = pd.DataFrame({"sample_id": ids, "split": "test"})
    for t, col in (("IVSd", "ivsd"), ("LVIDd", "lvidd"), ("LVPWd", "lvpwd")):
        # NaN = "no such measurement row" for the phantom writer.
        samples[col] = [1.0 if i in per_target[t] else np.nan for i in ids]
    own = pd.DataFrame({"sample_id": [f"0XFEED{k:012X}" for k in range(12)],
                        "split": ["train"] * 8 + ["val"] * 4})
    _, m = _write_and_prepare("echonet_lvh", tmp_path / "lvh",
                              pd.concat([samples, own], ignore_index=True))
    test = m.subset("test")
    assert len(test) == 340 and _sha(test["sample_id"]) == _spec("echonet_lvh")["test_ids_sha256"]
    for t, col in (("IVSd", "ivsd"), ("LVIDd", "lvidd"), ("LVPWd", "lvpwd")):
        measured = set(test.loc[test[col].notna(), "sample_id"])
        assert measured == per_target[t], t
    assert {c: int(test[c].notna().sum()) for c in ("ivsd", "lvidd", "lvpwd")} == \
        _spec("echonet_lvh")["params"]["test_targets"] == {"ivsd": 339, "lvidd": 340, "lvpwd": 340}
    # Videos really are spread over the four batches.
    assert sorted(m.table["path"].str.split("/").str[0].unique()) == [f"Batch{b}" for b in range(1, 5)]
    _verify(m)


def test_camus_published_test_set(tmp_path):
    pub = example_table("CAMUS/view/modelname.csv")["unique_id"]
    own = [f"patient{k:04d}_{v}" for k in range(901, 907) for v in ("2CH", "4CH")]
    samples = pd.DataFrame({"sample_id": list(pub) + own,
                            "split": ["test"] * len(pub) + ["train"] * 8 + ["val"] * 4})
    _, m = _write_and_prepare("camus", tmp_path / "CAMUS_public", samples)
    test = m.subset("test")
    assert set(test["sample_id"]) == set(pub)
    assert len(test) == 100 and test["patient_id"].nunique() == 50
    assert _sha(test["sample_id"]) == _spec("camus")["test_ids_sha256"]
    assert test["view"].value_counts().to_dict() == {"A2C": 50, "A4C": 50}
    _verify(m)


def test_dynamic_published_test_set(tmp_path):
    try:
        importlib.import_module("cardiobench.phantom.layouts.echonet_dynamic")
        importlib.import_module("cardiobench.preprocessing.echonet_dynamic")
    except ImportError:
        pytest.skip("the EchoNet-Dynamic layout/harmoniser is not in this tree yet")
    pub = example_table("EchoNet-Dynamic/EF/modelname.csv")["FileName"]
    own = [f"0XBEEF{k:012X}" for k in range(10)]
    # The Dynamic layout takes its samples in the native FileList columns.
    samples = pd.DataFrame({"FileName": list(pub) + own,
                            "Split": ["TEST"] * len(pub) + ["TRAIN"] * 6 + ["VAL"] * 4})
    _, m = _write_and_prepare("echonet_dynamic", tmp_path / "dyn", samples)
    test = m.subset("test")
    assert set(test["sample_id"]) == set(pub) and len(test) == 1277
    assert _sha(test["sample_id"]) == _spec("echonet_dynamic")["test_ids_sha256"]


# ---------------------------------------------------------------- tiny round trips


def _joined(m, truth: pd.DataFrame) -> pd.DataFrame:
    assert set(m.table["sample_id"]) == set(truth["sample_id"])
    return m.table.merge(truth, on="sample_id", suffixes=("", "_truth"), validate="1:1")


def test_pediatric_tiny_round_trip(tmp_path):
    truth, m = _write_and_prepare("echonet_pediatric", tmp_path / "ped", scale="tiny", seed=3)
    j = _joined(m, truth)
    assert len(j) >= 30 and set(j["view"]) == {"A4C", "PSAX"}
    np.testing.assert_allclose(j["ef"].astype(float), j["ef_truth"].astype(float), atol=1e-9)
    np.testing.assert_allclose(j["age"].astype(float), j["age_truth"].astype(float))
    # BMI: weight / height², NaN where weight is missing; equal to the writer's value
    # up to the 0.1 kg rounding of the stored weight.
    np.testing.assert_allclose(j["bmi"].astype(float), j["bmi_truth"].astype(float), rtol=1e-9)
    assert j["bmi"].isna().any() and j["bmi"].notna().any()
    # Weight (kg) and Height (cm) kept as recorded: the published evaluator bins BMI from them
    for col in ("weight", "height"):
        np.testing.assert_array_equal(j[col].astype(float), j[f"{col}_truth"].astype(float))
    # ... and the ground truth written for it carries them, so its BMI groups are not empty
    from cardiobench.protocols.export import write_ground_truth

    [gt] = write_ground_truth({"echonet_pediatric": m}, CATALOGUE.datasets, tmp_path / "gt")
    fl = pd.read_csv(gt).merge(truth, left_on="FileName", right_on="sample_id", validate="1:1")
    np.testing.assert_array_equal(fl["Weight"], fl["weight"])
    np.testing.assert_array_equal(fl["Height"], fl["height"])
    bmi = fl["Weight"] / (fl["Height"] / 100) ** 2  # the evaluator's own formula
    np.testing.assert_allclose(bmi, fl["bmi"], rtol=1e-12)
    assert (j["sex"] == j["sex_truth"]).all()
    assert (j["split"] == j["split_truth"]).all()
    assert (j["patient_id"] == j["patient_id_truth"]).all()
    has = j["ed_frame_truth"].notna()
    assert has.mean() > 0.9
    assert (j.loc[has, "ed_frame"].astype(int) == j.loc[has, "ed_frame_truth"].astype(int)).all()
    assert (j.loc[has, "es_frame"].astype(int) == j.loc[has, "es_frame_truth"].astype(int)).all()
    # Several videos per patient, all in one fold; every split present.
    assert m.table.groupby("patient_id").size().max() >= 2
    assert set(m.table["split"]) == {"train", "val", "test"}


def test_lvh_tiny_round_trip(tmp_path):
    truth, m = _write_and_prepare("echonet_lvh", tmp_path / "lvh", scale="tiny", seed=5)
    j = _joined(m, truth)
    for col in ("ivsd", "lvidd", "lvpwd"):
        np.testing.assert_allclose(j[col].astype(float), j[f"{col}_truth"].astype(float))
    assert (j["key_frame"].astype(int) == j["key_frame_truth"].astype(int)).all()
    assert (j["split"] == j["split_truth"]).all() and (j["view"] == "PLAX").all()
    assert (j["path"].str.split("/").str[0] == j["batch"]).all()
    # Keep-first: the later duplicate LVIDd rows (value + 0.4 cm) were dropped, and counted.
    raw = pd.read_csv(tmp_path / "lvh" / "MeasurementsList.csv", index_col=0)
    n_dup = int(raw.duplicated(["HashedFileName", "Calc"]).sum())
    assert n_dup >= 5
    dup_problems = [p for p in m.problems if p.kind == "duplicate_measurement"]
    assert len(dup_problems) == 1 and f"{n_dup} duplicate" in dup_problems[0].message
    # Calipers are drawn at the known pixel spacing (16 cm depth over the frame height).
    d = raw[raw["Calc"].isin(["IVSd", "LVIDd", "LVPWd"])].drop_duplicates(["HashedFileName", "Calc"])
    np.testing.assert_allclose((d["Y2"] - d["Y1"]) * 16.0 / d["Height"], d["CalcValue"], atol=0.02)


@pytest.fixture(scope="module")
def camus_tiny(tmp_path_factory):
    """(root, truth, manifest) of one tiny CAMUS phantom, shared by the read-only tests."""
    root = tmp_path_factory.mktemp("camus_tiny") / "CAMUS_public"
    truth, m = _write_and_prepare("camus", root, scale="tiny", seed=7)
    return root, truth, m


def test_camus_tiny_round_trip(camus_tiny):
    _, truth, m = camus_tiny
    j = _joined(m, truth)
    for col in ("ef", "age", "fps"):
        np.testing.assert_allclose(j[col].astype(float), j[f"{col}_truth"].astype(float))
    for col in ("sex", "image_quality", "split", "view", "patient_id"):
        assert (j[col].astype(str) == j[f"{col}_truth"].astype(str)).all(), col
    for col in ("ed_frame", "es_frame", "n_frames"):
        assert (j[col].astype(int) == j[f"{col}_truth"].astype(int)).all(), col
    # 0-based: ED is the first frame of the half sequence, ES the last.
    assert (j["ed_frame"] == 0).all() and (j["es_frame"] == j["n_frames"] - 1).all()
    assert (j["n_frames"] >= 3).all()
    # Patient-level EF identical in both views; every split present.
    assert (m.table.groupby("patient_id")["ef"].nunique() == 1).all()
    assert set(m.table["split"]) == {"train", "val", "test"}
    assert set(m.table["image_quality"]) == {"Good", "Medium", "Poor"}
    # The NIfTI on disk has NbFrame frames (no frame_count_mismatch warning).
    assert not [p for p in m.problems if p.kind == "frame_count_mismatch"]


def test_camus_poor_quality_is_noisier(camus_tiny):
    """Poor-quality cfgs go with noisier images (higher pixel-to-pixel variation)."""
    from cardiobench.io import read_frames

    root, truth, _ = camus_tiny
    rough = {}
    for q in ("Good", "Poor"):
        vals = []
        for sid in truth.loc[truth["image_quality"] == q, "sample_id"]:
            pid, v = sid.rsplit("_", 1)
            f = read_frames(root / "database_nifti" / pid
                            / f"{pid}_{v}_half_sequence.nii.gz", [0])[0, :, :, 0].astype(float)
            vals.append(np.abs(np.diff(f, axis=1)).mean())
        rough[q] = float(np.mean(vals))
    assert rough["Poor"] > rough["Good"]


# ---------------------------------------------------------------- defects caught and named


@pytest.fixture()
def ped_small(tmp_path) -> Path:
    samples = pd.DataFrame({
        "sample_id": ["CRaaa-CRx1-000001.avi", "CRaaa-CRx1-000002.avi", "CRbbb-CRx2-000001.avi",
                      "CRccc-CRx3-000001.avi", "CRddd-CRx4-000001.avi"],
        "view": ["A4C", "PSAX", "A4C", "PSAX", "A4C"],
        "split": ["test", "test", "val", "train", "train"]})
    root = tmp_path / "ped"
    write_layout(CATALOGUE.layout("echonet_pediatric"), root, scale="ids", samples=samples)
    return root


def test_pediatric_missing_video(ped_small):
    (ped_small / "PSAX" / "Videos" / "CRccc-CRx3-000001.avi").unlink()
    with pytest.raises(ManifestError, match="CRccc-CRx3-000001.avi"):
        prepare(CATALOGUE.dataset("echonet_pediatric"), ped_small)


def test_pediatric_filelist_lacking_column(ped_small):
    fl = pd.read_csv(ped_small / "A4C" / "FileList.csv").drop(columns=["EF"])
    fl.to_csv(ped_small / "A4C" / "FileList.csv", index=False)
    with pytest.raises(ManifestError, match=r"A4C/FileList\.csv.*'EF'"):
        prepare(CATALOGUE.dataset("echonet_pediatric"), ped_small)


def test_pediatric_patient_in_two_folds(ped_small):
    path = ped_small / "PSAX" / "FileList.csv"
    fl = pd.read_csv(path)
    fl.loc[fl["FileName"] == "CRaaa-CRx1-000002.avi", "Split"] = 3  # patient CRaaa: folds 0 and 3
    fl.to_csv(path, index=False)
    with pytest.raises(ManifestError, match=r"patient_in_two_splits.*'CRaaa'.*folds \[0, 3\]"):
        prepare(CATALOGUE.dataset("echonet_pediatric"), ped_small)


def test_pediatric_bad_fold_named(ped_small):
    path = ped_small / "A4C" / "FileList.csv"
    fl = pd.read_csv(path)
    fl["Split"] = fl["Split"].astype(object)
    fl.loc[0, "Split"] = "TEST"
    fl.to_csv(path, index=False)
    with pytest.raises(ManifestError, match=r"FileList\.csv line 2.*Split = 'TEST'"):
        prepare(CATALOGUE.dataset("echonet_pediatric"), ped_small)


@pytest.fixture()
def camus_small(tmp_path) -> Path:
    samples = pd.DataFrame({"sample_id": [f"patient{k:04d}_{v}" for k in (1, 2, 3)
                                          for v in ("2CH", "4CH")],
                            "split": ["train", "train", "val", "val", "test", "test"]})
    root = tmp_path / "CAMUS_public"
    write_layout(CATALOGUE.layout("camus"), root, scale="ids", samples=samples)
    return root


def test_camus_cfg_line_without_colon(camus_small):
    cfg = camus_small / "database_nifti" / "patient0002" / "Info_4CH.cfg"
    lines = cfg.read_text().splitlines()
    lines[2] = lines[2].replace(":", "")
    cfg.write_text("\n".join(lines) + "\n")
    with pytest.raises(ManifestError, match=r"patient0002/Info_4CH\.cfg line 3"):
        prepare(CATALOGUE.dataset("camus"), camus_small)


def test_camus_patient_in_two_subgroups(camus_small):
    val = camus_small / "database_split" / "subgroup_validation.txt"
    val.write_text(val.read_text() + "patient0003\n")
    with pytest.raises(ManifestError, match=r"patient0003 is listed in \['subgroup_validation"
                                            r"\.txt', 'subgroup_testing\.txt'\]"):
        prepare(CATALOGUE.dataset("camus"), camus_small)


def test_camus_patient_without_split_and_missing_sequence(camus_small):
    shutil.copytree(camus_small / "database_nifti" / "patient0001",
                    camus_small / "database_nifti" / "patient0009")
    with pytest.raises(ManifestError, match="patient0009 is in no subgroup"):
        prepare(CATALOGUE.dataset("camus"), camus_small)
    shutil.rmtree(camus_small / "database_nifti" / "patient0009")
    (camus_small / "database_nifti" / "patient0001" / "patient0001_2CH_half_sequence.nii.gz").unlink()
    with pytest.raises(ManifestError, match="patient0001_2CH_half_sequence.nii.gz not found"):
        prepare(CATALOGUE.dataset("camus"), camus_small)


def test_camus_cfg_is_one_based(camus_small):
    cfg = camus_small / "database_nifti" / "patient0001" / "Info_2CH.cfg"
    assert cfg.read_text().startswith("ED: 1\nES: 2\nNbFrame: 2\n")
    m = prepare(CATALOGUE.dataset("camus"), camus_small)
    row = m.table.set_index("sample_id").loc["patient0001_2CH"]
    assert (int(row["ed_frame"]), int(row["es_frame"]), int(row["n_frames"])) == (0, 1, 2)
    cfg.write_text(cfg.read_text().replace("ES: 2", "ES: 3"))
    with pytest.raises(ManifestError, match=r"Info_2CH\.cfg: ED=1 / ES=3 outside"):
        prepare(CATALOGUE.dataset("camus"), camus_small)


@pytest.fixture()
def lvh_small(tmp_path) -> Path:
    samples = pd.DataFrame({"sample_id": [f"0X{k:016X}" for k in range(6)],
                            "split": ["train", "train", "val", "test", "TEST", "train"]})
    root = tmp_path / "lvh"
    write_layout(CATALOGUE.layout("echonet_lvh"), root, scale="ids", samples=samples)
    return root


def test_lvh_split_case_insensitive(lvh_small):
    m = prepare(CATALOGUE.dataset("echonet_lvh"), lvh_small)
    assert m.split_counts()["test"]["samples"] == 2


def test_lvh_video_in_two_batches(lvh_small):
    vid = "0X0000000000000002"
    src = next(lvh_small.glob(f"Batch*/{vid}.avi"))
    other = lvh_small / ("Batch4" if src.parent.name != "Batch4" else "Batch1") / src.name
    shutil.copy(src, other)
    with pytest.raises(ManifestError, match=rf"video_in_two_batches \(sample '{vid}'\)"):
        prepare(CATALOGUE.dataset("echonet_lvh"), lvh_small)


def test_lvh_missing_video_and_split_conflict(lvh_small):
    vid = "0X0000000000000004"
    next(lvh_small.glob(f"Batch*/{vid}.avi")).unlink()
    with pytest.raises(ManifestError, match=rf"missing_file \(sample '{vid}'\).*no Batch"):
        prepare(CATALOGUE.dataset("echonet_lvh"), lvh_small)
    table = pd.read_csv(lvh_small / "MeasurementsList.csv", index_col=0)
    vid2 = "0X0000000000000001"
    first = table.index[table["HashedFileName"] == vid2][0]
    table.loc[first, "split"] = "val"
    table.to_csv(lvh_small / "MeasurementsList.csv")
    with pytest.raises(ManifestError, match=rf"inconsistent_split \(sample '{vid2}'\)"):
        prepare(CATALOGUE.dataset("echonet_lvh"), lvh_small)


def test_lvh_cell_fault_costs_the_video_by_its_column_not_its_text(lvh_small):
    """A fault on a row we do not use (LVIDs) costs its video only in a column describing the
    video (``split``, ``HashedFileName``), whatever the cell's text says."""
    path = lvh_small / "MeasurementsList.csv"
    table = pd.read_csv(path, index_col=0, dtype=str)
    lvids = table.index[table["Calc"] == "LVIDs"]
    table.loc[lvids[0], "FPS"] = "split"  # FPS of a row we do not use: a warning
    table.loc[lvids[1], "split"] = "HashedFileName"  # the video's split is unknown: unusable
    table.to_csv(path)
    with pytest.raises(ManifestError) as err:
        prepare(CATALOGUE.dataset("echonet_lvh"), lvh_small)
    assert len(err.value.problems) == 1
    unusable = err.value.problems[0]
    assert (unusable.kind, unusable.sample_id, unusable.line, unusable.column) == (
        "bad_cell", table.at[lvids[1], "HashedFileName"], int(lvids[1]) + 2, "split")
    m = prepare(CATALOGUE.dataset("echonet_lvh"), lvh_small, allow_incomplete=True)
    cells = [(p.severity, p.sample_id, p.column) for p in m.problems if p.kind == "bad_cell"]
    assert cells == [("unusable", table.at[lvids[1], "HashedFileName"], "split"),
                     ("warning", table.at[lvids[0], "HashedFileName"], "FPS")]
    assert table.at[lvids[0], "HashedFileName"] in set(m.table["sample_id"])
    assert list(m.excluded["sample_id"]) == [table.at[lvids[1], "HashedFileName"]]


def test_pediatric_row_without_a_file_name_is_one_problem_not_a_missing_video(tmp_path):
    root = tmp_path / "ped"
    write_layout(CATALOGUE.layout("echonet_pediatric"), root, scale="tiny", seed=3)
    path = root / "A4C" / "FileList.csv"
    t = pd.read_csv(path, dtype=str)
    t.loc[1, "FileName"] = ""  # line 3 of the file
    t.to_csv(path, index=False)
    with pytest.raises(ManifestError) as err:
        prepare(CATALOGUE.dataset("echonet_pediatric"), root)
    assert [(p.kind, p.file, p.line) for p in err.value.problems] == [
        ("empty_cell", str(path), 3)]
    m = prepare(CATALOGUE.dataset("echonet_pediatric"), root, allow_incomplete=True)
    assert len(m.excluded) == 1 and not m.table["path"].str.contains("<NA>").any()
    listed = sum(len(pd.read_csv(root / v / "FileList.csv")) for v in ("A4C", "PSAX"))
    assert len(m) == listed - 1


def test_pediatric_tracing_with_a_bad_coordinate_is_named_and_costs_only_that_frame(tmp_path):
    root = tmp_path / "ped"
    truth = write_layout(CATALOGUE.layout("echonet_pediatric"), root, scale="tiny", seed=3)
    path = root / "A4C" / "VolumeTracings.csv"
    t = pd.read_csv(path, dtype=str)
    victim = t["FileName"].iloc[0]
    t.loc[0, "X"] = "abc"  # line 2 of the file
    t.to_csv(path, index=False)
    m = prepare(CATALOGUE.dataset("echonet_pediatric"), root)
    bad = [p for p in m.problems if p.kind == "bad_tracing_rows"]
    assert len(bad) == 1 and bad[0].file == str(path) and "[2]" in bad[0].message
    assert bad[0].severity == "warning"
    # every sample is kept with its labels; only the dropped point's outline area can change
    j = _joined(m, truth)
    np.testing.assert_allclose(j["ef"].astype(float), j["ef_truth"].astype(float), atol=1e-9)
    others = j[(j["sample_id"] != victim) & j["ed_frame_truth"].notna()]
    assert (others["ed_frame"].astype(int) == others["ed_frame_truth"].astype(int)).all()
