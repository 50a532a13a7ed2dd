"""HMC-QU, CardiacNet ASD/PAH, TMED-2 and SegRWMA: phantoms mirroring the published IDs, harmonised
by ``prepare``, reproduce the published splits ID for ID; defects are caught and named."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pandas as pd
import pytest

from cardiobench.manifest import ManifestError
from cardiobench.phantom.layouts import write_layout
from cardiobench.preprocessing import prepare
from cardiobench.splits import import_published, verify

from helpers import CATALOGUE, after, hmcqu_samples
from published_facts import published_split, sha256_bytes, write_published_split

SEGRWMA = CATALOGUE.dataset("segrwma")


def mirror(factory: pytest.TempPathFactory, layout: str, samples: pd.DataFrame) -> Path:
    """A phantom download of ``layout`` holding exactly ``samples`` (tiny media)."""
    root = factory.mktemp(layout)
    write_layout(CATALOGUE.layout(layout), root, "ids", samples=samples)
    return root


def assert_same_split(manifest_table: pd.DataFrame, ids: pd.Series, splits: pd.Series) -> None:
    """Same samples -- none missing, none extra -- each in the same split."""
    got = manifest_table.set_index("sample_id")["split"]
    extra = sorted(set(got.index) - set(ids))
    missing = sorted(set(ids) - set(got.index))
    assert not extra and not missing, f"extra {extra[:5]} ({len(extra)}), missing {missing[:5]}"
    assert len(got) == len(ids)
    want = pd.Series(splits.to_numpy(), index=ids.to_numpy())
    assert (got.loc[want.index].to_numpy() == want.to_numpy()).all()


# --------------------------------------------------------------------------------- HMC-QU

@pytest.fixture(scope="module")
def hmcqu_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return mirror(tmp_path_factory, "hmcqu", hmcqu_samples(published_split("hmcqu_split.csv")))


def test_hmcqu_reproduces_published_split(hmcqu_root: Path) -> None:
    pub = published_split("hmcqu_split.csv")
    assert (hmcqu_root / "HMC-QU" / "A4C" / "ES0001 _4CH_1.avi").exists()  # the space is native
    m = prepare(CATALOGUE.dataset("hmcqu"), hmcqu_root)
    assert_same_split(m.table, pub["unique_id"], pub["split"])
    t = m.table.set_index("sample_id").loc[pub["unique_id"]]
    assert (t["stemi"].to_numpy() == pub["STEMI"].to_numpy()).all()
    assert {k: v["patients"] for k, v in m.split_counts().items()} == \
        {"train": 114, "val": 23, "test": 25}
    assert verify(m, CATALOGUE.dataset(m.dataset).spec()).ok


def test_hmcqu_missing_video_and_bad_sheet_are_named(tmp_path: Path) -> None:
    pub = published_split("hmcqu_split.csv")
    sub = pub[pub["patient_id"].isin(sorted(pub["patient_id"].unique())[:6])]
    write_layout(CATALOGUE.layout("hmcqu"), tmp_path, "ids", samples=hmcqu_samples(sub))
    victim = PurePosixPath(sub["path"].iloc[0]).name
    (tmp_path / "HMC-QU" / sub["view"].iloc[0] / victim).unlink()
    with pytest.raises(ManifestError) as err:
        prepare(CATALOGUE.dataset("hmcqu"), tmp_path)
    missing = [p for p in err.value.problems if p.kind == "missing_file"]
    assert [p.sample_id for p in missing] == [sub["unique_id"].iloc[0]]
    assert victim in missing[0].message

    sheet = pd.read_excel(tmp_path / "A2C.xlsx", dtype=str)
    sheet.rename(columns={"ECHO": "Echo ID"}).drop(columns=[c for c in sheet if "SEG" in c]) \
        .to_excel(tmp_path / "A2C.xlsx", index=False)
    with pytest.raises(ManifestError, match=r"A2C\.xlsx.*'Echo ID'"):
        prepare(CATALOGUE.dataset("hmcqu"), tmp_path)


# ----------------------------------------------------------------------------- CardiacNet

@pytest.fixture(scope="module")
def cardiacnet_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    asd = published_split("cardiacnet/cardiacnet_asd_split.csv")
    pah = published_split("cardiacnet/cardiacnet_pah_split.csv")
    samples = pd.concat([
        pd.DataFrame({"path": [after(p, "CardiacNet") for p in asd["path"]], "asd": asd["ASD"]}),
        pd.DataFrame({"path": [after(p, "CardiacNet") for p in pah["path"]], "pah": pah["PAH"]}),
    ], ignore_index=True)
    root = mirror(tmp_path_factory, "cardiacnet", samples)
    return root


@pytest.mark.parametrize("dataset,label,patients,videos", [
    ("cardiacnet_asd", "ASD", {"train": 101, "val": 15, "test": 30}, 228),
    ("cardiacnet_pah", "PAH", {"train": 229, "val": 33, "test": 66}, 476),
])
def test_cardiacnet_reproduces_published_split(cardiacnet_root: Path, dataset: str, label: str,
                                               patients: dict[str, int], videos: int) -> None:
    pub = published_split(f"cardiacnet/{dataset}_split.csv")
    m = prepare(CATALOGUE.dataset(dataset), cardiacnet_root)
    assert len(m) == videos
    # the mirror holds a mask for every case, 21 of them as <NNN>_label.nii/PHI<k>.nii: none
    # of them is a sample
    assert not m.table["path"].str.contains("label").any()
    assert_same_split(m.table, pub["unique_id"], pub["split"])
    t = m.table.set_index("sample_id").loc[pub["unique_id"]]
    assert (t["patient_id"].to_numpy() == pub["patient_id"].to_numpy()).all()
    assert (t[label.lower()].to_numpy() == pub[label].to_numpy()).all()
    assert {k: v["patients"] for k, v in m.split_counts().items()} == patients
    rep = verify(m, CATALOGUE.dataset(m.dataset).spec())
    assert rep.ok and rep.fingerprint_match


def test_cardiacnet_plain_file_cases_and_masks_are_native(cardiacnet_root: Path) -> None:
    assert (cardiacnet_root / "CardiacNet-PAH" / "PAH" / "108_image.nii").is_file()
    wrapped = cardiacnet_root / "CardiacNet-ASD" / "ASD" / "001_image.nii"
    assert wrapped.is_dir() and (wrapped / "patient-2-4_image.nii").is_file()
    assert (cardiacnet_root / "CardiacNet-ASD" / "ASD" / "001_label.nii" /
            "patient-2-4_label.nii").is_file()
    # a wrapped mask keeps the video's own name when that name does not say "image"
    assert (cardiacnet_root / "CardiacNet-ASD" / "Non-ASD" / "111_label.nii" /
            "PHI01.nii").is_file()


# --------------------------------------------------------------------------------- TMED-2

@pytest.fixture(scope="module")
def tmed2_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pub = published_split("tmed2/per_image.csv")
    samples = pd.DataFrame({"sample_id": pub["query_key"], "view": pub["view"],
                            "aortic_stenosis": pub["diagnosis_label"], "split": pub["split"]})
    return mirror(tmp_path_factory, "tmed2", samples)


def test_tmed2_reproduces_published_split(tmed2_root: Path) -> None:
    pub = published_split("tmed2/per_image.csv")
    m = prepare(CATALOGUE.dataset("tmed2"), tmed2_root)
    assert_same_split(m.table, pub["query_key"], pub["split"])
    counts = m.split_counts()
    assert {k: v["samples"] for k, v in counts.items()} == {"train": 10066, "val": 3602,
                                                              "test": 3602}
    assert {k: v["patients"] for k, v in counts.items()} == {"train": 360, "val": 119, "test": 119}
    t = m.table.set_index("sample_id").loc[pub["query_key"]]
    assert (t["aortic_stenosis"].to_numpy() == pub["diagnosis_label"].to_numpy()).all()
    assert t["view"].value_counts()["Other"] == (pub["view"] == "A4CorA2CorOther").sum()
    assert t.loc["4860s1_0.png", "study_id"] == "4860s1"
    dropped = [p for p in m.problems if p.kind == "not_provided_dropped"]
    assert len(dropped) == 1 and dropped[0].severity == "warning" and "9 image" in dropped[0].message
    assert verify(m, CATALOGUE.dataset(m.dataset).spec()).ok


def test_tmed2_malformed_dev479_is_named(tmp_path: Path) -> None:
    write_layout(CATALOGUE.layout("tmed2"), tmp_path, "ids", seed=1)
    fold_path = tmp_path / "DEV479" / "TMED2_fold0_labeledpart.csv"
    fold = pd.read_csv(fold_path, dtype=str)
    assert len(prepare(CATALOGUE.dataset("tmed2"), tmp_path)) == len(fold) - 9  # phantom is well-formed

    fold.drop(columns="diagnosis_classifier_split").to_csv(fold_path, index=False)
    with pytest.raises(ManifestError, match=r"TMED2_fold0_labeledpart\.csv lacks.*"
                                            r"diagnosis_classifier_split"):
        prepare(CATALOGUE.dataset("tmed2"), tmp_path)

    bad = fold.copy()
    bad.loc[3, "diagnosis_classifier_split"] = "holdout"
    bad.to_csv(fold_path, index=False)
    with pytest.raises(ManifestError) as err:
        prepare(CATALOGUE.dataset("tmed2"), tmp_path)
    assert [p.sample_id for p in err.value.problems] == [fold.loc[3, "query_key"]]
    assert "'holdout'" in str(err.value)

    pd.concat([fold, fold.iloc[[0]]]).to_csv(fold_path, index=False)
    with pytest.raises(ManifestError, match="repeats"):
        prepare(CATALOGUE.dataset("tmed2"), tmp_path)


# -------------------------------------------------------------------------------- SegRWMA

def segrwma_samples(pub: pd.DataFrame) -> pd.DataFrame:
    return pub[["patient_id", "modality", "view", "n_frames", "first_annotated_frame_index",
                "abnormal", "split"]]


@pytest.fixture(scope="module")
def segrwma_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return mirror(tmp_path_factory, "segrwma", segrwma_samples(published_split("segrwma_split.csv")))


def test_segrwma_import_gives_published_2d_test_set(segrwma_root: Path, tmp_path: Path) -> None:
    pub = published_split("segrwma_split.csv")
    csv = write_published_split("segrwma_split.csv", tmp_path / "segrwma_split.csv")
    m = import_published(csv, segrwma_root, SEGRWMA.spec(), SEGRWMA.import_split)
    # the importer records the SHA-256 of the file it read (that the spec pins the published
    # file's is checked in test_published_facts.py)
    assert m.split_rule["sha256"] == sha256_bytes(csv.read_bytes())
    assert not [p for p in m.problems if p.severity == "error"]
    test2d = m.table[(m.table["split"] == "test") & (m.table["modality"] == "2D")]
    assert test2d["view"].value_counts().to_dict() == {"A2C": 48, "A3C": 52, "A4C": 56}
    assert int(test2d["rwma"].sum()) == 12
    sid = [p if mod == "2D" else f"{p}_{mod}" for p, mod in zip(pub["patient_view_id"],
                                                                pub["modality"])]
    assert_same_split(m.table, pd.Series(sid), pub["split"])
    t = m.table.set_index("sample_id").loc[sid]
    assert (t["key_frame"].to_numpy() == pub["first_annotated_frame_index"].to_numpy()).all()
    assert (t["n_frames"].to_numpy() == pub["n_frames"].to_numpy()).all()
    assert verify(m, CATALOGUE.dataset(m.dataset).spec()).ok


def test_segrwma_edited_csv_and_missing_file_are_named(tmp_path: Path) -> None:
    pub = published_split("segrwma_split.csv")
    sub = pub[pub["patient_id"].isin(["patient1", "patient2", "patient148"])].reset_index(drop=True)
    root = tmp_path / "raw"
    write_layout(CATALOGUE.layout("segrwma"), root, "ids", samples=segrwma_samples(sub))
    sub.to_csv(tmp_path / "sub.csv", index=False)
    m = import_published(tmp_path / "sub.csv", root, SEGRWMA.spec(), SEGRWMA.import_split)
    assert len(m) == len(sub) and m.problems[0].kind == "published_csv_changed"

    edited = sub.copy()
    row = edited.index[(edited["patient_id"] == "patient1") & (edited["modality"] == "LVO")][0]
    edited.loc[row, "split"] = "test"
    edited.to_csv(tmp_path / "edited.csv", index=False)
    with pytest.raises(ManifestError) as err:
        import_published(tmp_path / "edited.csv", root, SEGRWMA.spec(), SEGRWMA.import_split)
    two = [p for p in err.value.problems if p.kind == "patient_in_two_splits"]
    assert [p.sample_id for p in two] == ["patient1"] and f"row {row + 2}: test" in two[0].message

    edited = sub.copy()
    edited.loc[0, "first_annotated_frame_index"] = int(sub.loc[0, "first_annotated_frame_index"]) + 1
    edited.to_csv(tmp_path / "edited.csv", index=False)
    with pytest.raises(ManifestError) as err:
        import_published(tmp_path / "edited.csv", root, SEGRWMA.spec(), SEGRWMA.import_split)
    assert [(p.kind, p.sample_id) for p in err.value.problems] == \
        [("key_frame_mismatch", sub.loc[0, "patient_view_id"])]

    (root / "wallMotion" / PurePosixPath(sub.loc[1, "path"]).name).unlink()
    with pytest.raises(ManifestError) as err:
        import_published(tmp_path / "sub.csv", root, SEGRWMA.spec(), SEGRWMA.import_split)
    assert [p.kind for p in err.value.problems] == ["missing_file"]
    assert PurePosixPath(sub.loc[1, "path"]).name in err.value.problems[0].message


def test_segrwma_tiny_phantom_prepares_from_its_csv(tmp_path: Path) -> None:
    truth = write_layout(CATALOGUE.layout("segrwma"), tmp_path, "tiny", seed=3)
    m = prepare(CATALOGUE.dataset("segrwma"), tmp_path)
    t = m.table.set_index("sample_id").loc[truth["sample_id"]]
    assert (t["split"].to_numpy() == truth["split"].to_numpy()).all()
    assert (t["key_frame"].to_numpy() == truth["key_frame"].to_numpy()).all()
    assert (t["rwma"].to_numpy() == truth["rwma"].to_numpy()).all()
    assert any(p.kind == "published_csv_changed" for p in m.problems)
    (tmp_path / "segrwma_split.csv").unlink()
    with pytest.raises(ManifestError, match="segrwma_split.csv"):
        prepare(CATALOGUE.dataset("segrwma"), tmp_path)


@pytest.mark.parametrize("layout,dataset,label", [
    ("hmcqu", "hmcqu", "stemi"), ("cardiacnet", "cardiacnet_asd", "asd"),
    ("cardiacnet", "cardiacnet_pah", "pah"), ("tmed2", "tmed2", "aortic_stenosis"),
])
def test_tiny_phantoms_prepare_with_their_drawn_labels(tmp_path: Path, layout: str, dataset: str,
                                                       label: str) -> None:
    truth = write_layout(CATALOGUE.layout(layout), tmp_path, "tiny", seed=0).dropna(subset=[label])
    m = prepare(CATALOGUE.dataset(dataset), tmp_path)
    assert len(m) == len(truth)
    got = m.table.set_index("sample_id").loc[truth["sample_id"], label].astype(int)
    assert (got.to_numpy() == truth[label].astype(int).to_numpy()).all()
    assert set(m.table["split"]) == {"train", "val", "test"}
    if "split" in truth:  # TMED-2's split is part of the layout (the DEV479 file)
        assert (m.table.set_index("sample_id").loc[truth["sample_id"], "split"].to_numpy()
                == truth["split"].to_numpy()).all()
