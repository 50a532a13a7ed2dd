"""EchoNet-Dynamic: phantom layout ↔ harmoniser round trip, determinism and defects."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cardiobench.io import read_frames
from cardiobench.manifest import ManifestError, validate
from cardiobench.phantom import Scale, generate
from cardiobench.preprocessing import prepare

from helpers import CATALOGUE
from published_facts import example_table

MINI = Scale("mini", n_samples=8, n_frames=32)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    root = tmp_path_factory.mktemp("echonet_dynamic")
    return root, generate(CATALOGUE.layout("echonet_dynamic"), root, scale="tiny", seed=0)


def test_round_trip_matches_truth(tiny, tmp_path):
    root, truth = tiny
    m = prepare(CATALOGUE.dataset("echonet_dynamic"), root, out_csv=tmp_path / "m.csv")
    assert validate(m) == [] and m.problems == []
    t = m.table.set_index("sample_id")
    g = truth.set_index("sample_id").loc[t.index]
    fl = pd.read_csv(root / "FileList.csv", dtype={"FileName": str}).set_index("FileName")
    assert len(t) == 40 and set(t["view"]) == {"A4C"}
    assert (t["ef"].to_numpy() == g["ef"].to_numpy()).all()  # exact, not approx
    assert (t["ef"].to_numpy() == fl.loc[t.index, "EF"].to_numpy()).all()
    assert (t["split"] == fl.loc[t.index, "Split"].str.lower()).all()
    assert (t["ed_frame"].to_numpy() == g["ed_frame"].to_numpy()).all()
    assert (t["es_frame"].to_numpy() == g["es_frame"].to_numpy()).all()
    assert (t["patient_id"] == t.index).all()
    assert (t["path"] == "Videos/" + t.index + ".avi").all()
    counts = t["split"].value_counts().to_dict()
    assert counts == {"train": 30, "val": 5, "test": 5}
    assert fl.index.str.fullmatch(r"0X[0-9A-F]{16}").all()
    assert set(fl["Split"]) == {"TRAIN", "VAL", "TEST"}
    # the video on disk agrees with the FileList
    frames = read_frames(root / t["path"].iloc[0])
    assert frames.shape == (32, 112, 112, 3)
    assert int(fl.loc[t.index[0], "NumberOfFrames"]) == 32
    assert pd.read_csv(tmp_path / "m.csv")["ef"].equals(m.table["ef"].astype(float))


def test_same_seed_same_bytes(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate(CATALOGUE.layout("echonet_dynamic"), a, scale=MINI, seed=3)
    generate(CATALOGUE.layout("echonet_dynamic"), b, scale=MINI, seed=3)
    generate(CATALOGUE.layout("echonet_dynamic"), c, scale=MINI, seed=4)
    for name in ("FileList.csv", "VolumeTracings.csv"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
        assert (a / name).read_bytes() != (c / name).read_bytes()
    for video in sorted((a / "Videos").iterdir()):
        assert np.array_equal(read_frames(video), read_frames(b / "Videos" / video.name))




def test_samples_mode_writes_exactly_those_rows(tmp_path):
    # mirror a slice of the published test IDs
    ids = example_table("EchoNet-Dynamic/EF/modelname.csv")["FileName"][:60]
    samples = pd.DataFrame({"FileName": ids, "Split": "TEST", "EF": np.linspace(20, 70, 60)})
    samples.loc[:9, "Split"] = "train"  # any case
    truth = generate(CATALOGUE.layout("echonet_dynamic"), tmp_path, scale="ids", seed=0, samples=samples)
    m = prepare(CATALOGUE.dataset("echonet_dynamic"), tmp_path)
    t = m.table.set_index("sample_id").loc[list(ids)]
    assert list(truth["sample_id"]) == list(ids)
    assert (t["split"].to_numpy() == np.where(np.arange(60) < 10, "train", "test")).all()
    assert np.array_equal(t["ef"].to_numpy(), np.round(np.linspace(20, 70, 60), 6))
    assert (t["ed_frame"] == 0).all() and (t["es_frame"] == 1).all()
    assert read_frames(tmp_path / "Videos" / f"{ids[0]}.avi").shape == (2, 16, 16, 3)


@pytest.fixture()
def mini(tmp_path) -> Path:
    root = tmp_path / "raw"
    generate(CATALOGUE.layout("echonet_dynamic"), root, scale=MINI, seed=1)
    return root


def test_missing_video_is_named(mini):
    fl = pd.read_csv(mini / "FileList.csv", dtype={"FileName": str})
    gone = fl["FileName"].iloc[2]
    (mini / "Videos" / f"{gone}.avi").unlink()
    with pytest.raises(ManifestError) as err:
        prepare(CATALOGUE.dataset("echonet_dynamic"), mini)
    assert gone in str(err.value) and "missing_file" in str(err.value)


def test_filelist_lacking_a_column_is_named(mini):
    fl = pd.read_csv(mini / "FileList.csv", dtype={"FileName": str})
    fl.drop(columns=["EF"]).to_csv(mini / "FileList.csv", index=False)
    with pytest.raises(ManifestError, match=r"FileList\.csv lacks required column\(s\) \['EF'\]"):
        prepare(CATALOGUE.dataset("echonet_dynamic"), mini)


def test_bogus_split_is_named(mini):
    fl = pd.read_csv(mini / "FileList.csv", dtype={"FileName": str})
    fl.loc[4, "Split"] = "BOGUS"
    fl.to_csv(mini / "FileList.csv", index=False)
    with pytest.raises(ManifestError) as err:
        prepare(CATALOGUE.dataset("echonet_dynamic"), mini)
    msg = str(err.value)
    assert "'BOGUS'" in msg and fl["FileName"].iloc[4] in msg and "FileList.csv line 6" in msg


def test_video_without_tracing_gets_nan_and_warning(mini):
    tr = pd.read_csv(mini / "VolumeTracings.csv")
    fl = pd.read_csv(mini / "FileList.csv", dtype={"FileName": str})
    victim = fl["FileName"].iloc[0]
    tr[tr["FileName"] != f"{victim}.avi"].to_csv(mini / "VolumeTracings.csv", index=False)
    m = prepare(CATALOGUE.dataset("echonet_dynamic"), mini)
    row = m.table.set_index("sample_id").loc[victim]
    assert np.isnan(row["ed_frame"]) and np.isnan(row["es_frame"])
    assert m.table["ed_frame"].notna().sum() == len(fl) - 1
    assert [(p.kind, p.sample_id, p.severity) for p in m.problems] == [
        ("no_ed_es", victim, "warning")]
    # listing the traced frames in the other order does not change ED/ES (area decides)
    full = m.table.set_index("sample_id")
    tr = tr[tr["FileName"] != f"{victim}.avi"]
    tr.sort_values(["FileName", "Frame"], ascending=[True, False], kind="stable").to_csv(
        mini / "VolumeTracings.csv", index=False)
    flipped = prepare(CATALOGUE.dataset("echonet_dynamic"), mini).table.set_index("sample_id")
    assert flipped["ed_frame"].equals(full["ed_frame"])
    assert flipped["es_frame"].equals(full["es_frame"])
