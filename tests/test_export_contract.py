"""The export contract: every task file the published evaluators open, safe model names, the index
file, the long format, the ground-truth CSVs, and ``--check`` catching what an official script
would choke on. Results here are built directly from the published test IDs (the example
predictions' ID columns), so no embedding is needed."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cardiobench.cli import main
from cardiobench.manifest import Manifest
from cardiobench.protocols import export
from cardiobench.results import Result
from cardiobench.manifest import VIEWS as VIEW_CLASSES
from helpers import CATALOGUE, fake_result
from published_facts import example_files


def _result(task_name: str, ids: list[str], name: str = "pixels", fp: str = "ab12cd34ef",
            protocol: str = "linear_probe") -> Result:
    """An ``ok`` result whose test units are ``ids`` (values are arbitrary but valid)."""
    r = fake_result(task_name, len(ids))
    r.predictions[CATALOGUE.task(task_name).unit_column()] = ids
    r.predictions["patient_id"] = ids
    return replace(r, encoder={"name": name, "fingerprint": fp}, protocol=protocol)


def _published_results(examples: Path, **kw) -> list[Result]:
    out = []
    for tname, entry in export.load_contract().items():
        df = pd.read_csv(examples / entry["file"].format(model="modelname"), dtype=str)
        out.append(_result(tname, df[entry["id_column"]].tolist(), **kw))
    return out


# ----------------------------------------------------------------------------- contract data
def test_packaged_contract_is_rederived_from_the_examples(examples: Path) -> None:
    contract = export.load_contract()
    files = sorted(str(p.relative_to(examples)) for p in examples.rglob("*.csv"))
    assert sorted(e["file"].format(model="modelname") for e in contract.values()) == files
    for tname, e in contract.items():
        df = pd.read_csv(examples / e["file"].format(model="modelname"), dtype=str)
        assert [c for c in df.columns if not c.startswith("Unnamed")] == e["columns"], tname
        assert set(e["required"]) <= set(e["columns"]) and len(df) == e["n"], tname
        ids = df[e["id_column"]]
        want = hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()
        assert e["ids_sha256"] == want == export.ids_sha256(ids), tname
        # recorded from the published file itself (where the facts reuse gt_order for the IDs,
        # this is what ties gt_order to the published file)
        assert e["ids_sha256"] == example_files()[e["file"].format(model="modelname")]["ids_sha256"]
        if "gt_order" in e:
            assert sorted(e["gt_order"]) == sorted(ids), tname
        else:
            assert e["ids"] == sorted(ids), tname
        # our task registry writes exactly these columns
        assert list(CATALOGUE.task(tname).export.columns) == e["columns"], tname


# ----------------------------------------------------------------------------- names
@pytest.mark.parametrize("name, safe", [
    ("r2plus1d_18", "r2plus1d-18"), ("mvit_v2_s", "mvit-v2-s"),
    ("dinov3[vit_small_patch16_224]", "dinov3-vit-small-patch16-224"),
    ("my model/v2", "my-model-v2"), ("EchoCLIP", "EchoCLIP"), ("__", "model")])
def test_unsafe_names_are_made_safe(name: str, safe: str) -> None:
    assert export.safe_model_name(name) == safe


def test_names_per_encoder_key_and_collisions() -> None:
    a = _result("camus/ef", ["patient0001"], name="dinov3[vit_s]", fp="11111111aa")
    b = _result("camus/ef", ["patient0001"], name="dinov3[vit_s]", fp="22222222bb")
    names = export.model_names([a, b])
    assert names == {a.encoder_key: "dinov3-vit-s-11111111", b.encoder_key: "dinov3-vit-s-22222222"}
    assert export.model_names([a], "my_model") == {a.encoder_key: "my-model"}
    with pytest.raises(ValueError, match="names one model"):
        export.model_names([a, b], "x")


# ----------------------------------------------------------------------------- export
def test_published_id_export_equals_the_examples_file_by_file(tmp_path: Path,
                                                              examples: Path) -> None:
    results = _published_results(examples, name="r2plus1d_18")
    rep = export.export_predictions(results, CATALOGUE.tasks, tmp_path, ["linear_probe"])
    assert list(rep.models) == ["r2plus1d-18"]
    for tname, e in export.load_contract().items():
        ours = tmp_path / e["file"].format(model="r2plus1d-18")
        ref = examples / e["file"].format(model="modelname")
        got, want = pd.read_csv(ours, dtype=str), pd.read_csv(ref, dtype=str)
        assert list(got.columns) == [c for c in want.columns if not c.startswith("Unnamed")]
        idc = e["id_column"]
        assert set(got[idc]) == set(want[idc]) and len(got) == len(want), tname
        assert "_" not in ours.name.removesuffix(Path(e["file"]).name.split("{model}")[1])
    # every task directory of the examples exists, and --check finds nothing wrong
    dirs = {str(p.relative_to(examples)) for p in examples.glob("*/*") if p.is_dir()}
    assert dirs <= {str(p.relative_to(tmp_path)) for p in tmp_path.glob("*/*") if p.is_dir()}
    assert export.check_export(tmp_path) == []
    index = json.loads((tmp_path / export.INDEX_FILE).read_text())
    assert index["models"]["r2plus1d-18"]["encoder_key"] == "r2plus1d_18-ab12cd34"
    assert {f["status"] for f in index["files"]} == {"ok"} and len(index["files"]) == 22


def test_not_applicable_and_missing_tasks_get_header_only_files(tmp_path: Path) -> None:
    ok = _result("echonet_lvh/ivsd", ["0XA", "0XB"])
    na = Result(task="echonet_lvh/view", dataset="echonet_lvh", protocol="linear_probe",
                encoder=ok.encoder, status="not_applicable", reason="single class in train")
    rep = export.export_predictions([ok, na], CATALOGUE.tasks, tmp_path, ["linear_probe"])
    assert len(rep.files) == len(export.load_contract())
    view = pd.read_csv(tmp_path / "EchoNet-LVH" / "view" / "pixels.csv")
    assert view.empty and list(view.columns) == list(CATALOGUE.task("echonet_lvh/view").export.columns)
    status = {f.task: (f.status, f.reason) for f in rep.files}
    assert status["echonet_lvh/view"] == ("not_applicable", "single class in train")
    assert status["camus/ef"][0] == "missing" and status["echonet_lvh/ivsd"] == ("ok", None)
    checks = export.check_export(tmp_path)
    lvh_view = [f for f in checks if f.path == "EchoNet-LVH/view/pixels.csv"]
    assert [f.level for f in lvh_view] == ["warning"] and "header only" in lvh_view[0].message
    # two IDs instead of the published 339: the evaluator would score a different set
    ivsd = [f for f in checks if f.path == "EchoNet-LVH/IVSd/pixels.csv"]
    assert ivsd[0].level == "error"
    assert "2 ID(s) against the published 339; 339 published ID(s) absent" in ivsd[0].message
    assert "2 not published (0XA, 0XB)" in ivsd[0].message


def test_check_names_the_camus_ids_that_differ(tmp_path: Path) -> None:
    # a real CAMUS test set (50 patients) that holds patient0027 instead of the EF example's
    # patient0001: same count, so the message must name the patients, not say "50 vs 50"
    contract = export.load_contract()
    ids = [i for i in contract["camus/ef"]["ids"] if i != "patient0001"] + ["patient0027"]
    export.export_predictions([_result("camus/ef", ids)], CATALOGUE.tasks, tmp_path, ["linear_probe"])
    [f] = [f for f in export.check_export(tmp_path) if f.path == "CAMUS/EF/pixels.csv"]
    assert f.level == "error"
    assert ("50 ID(s) against the published 50; 1 published ID(s) absent (patient0001), "
            "1 not published (patient0027)") in f.message
    assert "view example lists" in f.message  # the packaged note on the two example files


def test_all_protocols_one_tree_each_and_zero_shot_included(tmp_path: Path) -> None:
    rs = [_result("hmcqu/stemi", ["ES0001_A2C", "ES0001_A4C"], protocol=p)
          for p in export.exportable_protocols()]
    export.export_predictions(rs, CATALOGUE.tasks, tmp_path, list(export.exportable_protocols()))
    for p in export.exportable_protocols():
        df = pd.read_csv(tmp_path / p / "HMCQU" / "stemi" / "pixels.csv")
        assert list(df.columns) == ["stemi_pred", "unique_id", "view"] and len(df) == 2
    with pytest.raises(ValueError, match="exportable"):
        export.export_predictions(rs, CATALOGUE.tasks, tmp_path, ["alignment"])


def test_a_protocol_without_any_rows_gets_no_tree(tmp_path: Path) -> None:
    # zero-shot of an encoder without a text tower: every task not applicable. All eight
    # evaluators sort their label-task summary by model unguarded, so such a tree is not written
    lp = _result("hmcqu/stemi", ["ES0001_A2C"], protocol="linear_probe")
    zs = [Result(task=t, dataset=CATALOGUE.task(t).dataset, protocol="zero_shot", encoder=lp.encoder,
                 status="not_applicable", reason="pixels has no text tower")
          for t in ("hmcqu/stemi", "camus/ef")]
    rep = export.export_predictions([lp, *zs], CATALOGUE.tasks, tmp_path, ["linear_probe", "zero_shot"])
    assert (tmp_path / "linear_probe" / "HMCQU" / "stemi" / "pixels.csv").is_file()
    assert not (tmp_path / "zero_shot").exists()
    assert {f.protocol for f in rep.files} == {"linear_probe"}
    why = json.loads((tmp_path / export.INDEX_FILE).read_text())["protocols_not_written"]
    assert list(why) == ["zero_shot"] and "not_applicable: pixels has no text tower" in why["zero_shot"]
    # one task with rows is enough for the tree to be written (header-only files beside it)
    zs_ok = _result("hmcqu/stemi", ["ES0001_A2C"], protocol="zero_shot")
    rep = export.export_predictions([zs_ok, zs[1]], CATALOGUE.tasks, tmp_path / "b", ["zero_shot"])
    assert rep.skipped == {} and len(rep.files) == len(export.load_contract())


def test_long_format(tmp_path: Path) -> None:
    rs = [_result("hmcqu/stemi", ["ES1_A2C", "ES1_A4C"], protocol="zero_shot"),
          _result("camus/view", ["patient0001_2CH"], protocol="zero_shot"),
          _result("camus/ef", ["patient0001"], protocol="zero_shot")]
    export.export_predictions(rs, CATALOGUE.tasks, tmp_path, ["zero_shot"], fmt="long")
    df = pd.read_csv(tmp_path / export.LONG_FILE)
    assert list(df.columns[:8]) == ["task", "protocol", "model", "encoder_key", "unit_id",
                                    "y_true", "y_pred", "prob"]
    assert [f"prob_{c}" for c in VIEW_CLASSES] == list(df.columns[8:])
    assert sorted(df["unit_id"]) == ["ES1_A2C", "ES1_A4C", "patient0001", "patient0001_2CH"]
    assert df.loc[df["task"] == "hmcqu/stemi", "prob"].notna().all()
    assert df.loc[df["task"] == "camus/view", "prob_A2C"].notna().all()
    assert not any(tmp_path.glob("HMCQU"))


# ----------------------------------------------------------------------------- check
def test_check_catches_what_an_official_script_chokes_on(tmp_path: Path, examples: Path) -> None:
    export.export_predictions(_published_results(examples), CATALOGUE.tasks, tmp_path, ["linear_probe"])
    assert export.check_export(tmp_path) == []
    asd = tmp_path / "CardiacNet" / "ASD" / "pixels.csv"
    pd.read_csv(asd).drop(columns="asd_pred").to_csv(asd, index=False)            # column
    ef = tmp_path / "CAMUS" / "EF" / "pixels.csv"
    pd.read_csv(ef).iloc[1:].to_csv(ef, index=False)                             # IDs
    tm = tmp_path / "TMED2" / "AS"
    (tm / "pixels.csv").rename(tm / "my_model.csv")                              # file name
    st = tmp_path / "HMCQU" / "stemi" / "pixels.csv"
    df = pd.read_csv(st)
    df["stemi_pred"] = 0.7
    df.to_csv(st, index=False)                                                   # not hard 0/1
    shutil.rmtree(tmp_path / "EchoNet-LVH" / "view")                             # directory
    got = {(f.level, f.path): f.message for f in export.check_export(tmp_path)}
    assert "asd_pred" in got[("error", "CardiacNet/ASD/pixels.csv")]
    assert "49 ID(s) against the published 50; 1 published ID(s) absent" in got[("error", "CAMUS/EF/pixels.csv")]
    assert "'my_model'" in got[("error", "TMED2/AS/my_model.csv")]
    assert "hard 0/1" in got[("error", "HMCQU/stemi/pixels.csv")]
    assert "os.listdir" in got[("error", "EchoNet-LVH/view")]
    assert len(got) == 5


def test_cli_export_then_check(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from cardiobench.results import write_result

    res = tmp_path / "results"
    write_result(_result("hmcqu/stemi", ["ES1_A2C", "ES1_A4C"], name="mvit_v2_s"), res)
    out = tmp_path / "ref"
    assert main(["export-predictions", str(out), "--results", str(res), "--protocol",
                 "linear_probe", "--model-name", "my model_1"]) == 0
    assert (out / "HMCQU" / "stemi" / "my-model-1.csv").is_file()
    assert "model 'my-model-1' = mvit_v2_s-ab12cd34" in capsys.readouterr().out
    assert main(["export-predictions", str(out), "--check"]) == 1
    text = capsys.readouterr().out
    assert "HMCQU/stemi/my-model-1.csv" in text and "2 ID(s) against the published 50" in text


# ----------------------------------------------------------------------------- ground truth
def test_ground_truth_csvs_in_the_evaluators_spelling(tmp_path: Path) -> None:
    dyn = Manifest("echonet_dynamic", pd.DataFrame({
        "sample_id": ["0XB", "0XA"], "patient_id": ["0XB", "0XA"], "split": ["test", "train"],
        "path": ["Videos/0XB.avi", "Videos/0XA.avi"], "view": "A4C", "ef": [55.0, 60.0],
        "fps": 50.0, "n_frames": 100}))
    cam = Manifest("camus", pd.DataFrame({
        "sample_id": ["patient0001_2CH", "patient0001_4CH"], "patient_id": "patient0001",
        "split": "test", "path": ["a.nii.gz", "b.nii.gz"], "view": ["A2C", "A4C"],
        "ef": 50.0, "sex": "F", "age": 60.0, "image_quality": "Good", "fps": 20.0}))
    lvh = Manifest("echonet_lvh", pd.DataFrame({
        "sample_id": ["0X1", "0X2"], "patient_id": ["0X1", "0X2"], "split": ["test", "val"],
        "path": ["Batch1/0X1.avi", "Batch1/0X2.avi"], "view": "PLAX", "lvidd": [4.5, np.nan],
        "ivsd": [1.0, 1.1], "lvpwd": [0.9, 1.0]}))
    ped = Manifest("echonet_pediatric", pd.DataFrame({
        "sample_id": ["CR1-CR2-000001.avi"], "patient_id": "CR1", "split": "test",
        "path": ["A4C/Videos/CR1-CR2-000001.avi"], "view": "A4C", "ef": 61.0, "sex": "M",
        "age": 7.0, "bmi": 16.0}))
    paths = export.write_ground_truth({m.dataset: m for m in (dyn, cam, lvh, ped)}, CATALOGUE.datasets,
                                     tmp_path)
    base = tmp_path / "ground_truth" / "data" / "splits"
    assert sorted(str(p.relative_to(base)) for p in paths) == [
        "EchoNet-Dynamic/FileList.csv", "camus_split.csv", "echonet_lvh/IVSd_split.csv",
        "echonet_lvh/LVIDd_split.csv", "echonet_lvh/LVPWd_split.csv",
        "echonet_pediatric_filelist.csv"]
    fl = pd.read_csv(base / "EchoNet-Dynamic" / "FileList.csv")
    # manifest order kept; lower-case Split so the evaluator's Split == "test" selects the rows
    assert fl["FileName"].tolist() == ["0XB", "0XA"] and fl["Split"].tolist() == ["test", "train"]
    c = pd.read_csv(base / "camus_split.csv")
    assert c["view"].tolist() == ["2CH", "4CH"] and c["unique_id"][0] == "patient0001_2CH"
    assert c["EF"].tolist() == [50.0, 50.0]
    lv = pd.read_csv(base / "echonet_lvh" / "LVIDd_split.csv")
    assert lv[["Calc", "CalcValue", "HashedFileName", "split"]].values.tolist() == [
        ["LVIDd", 4.5, "0X1", "test"]]
    p = pd.read_csv(base / "echonet_pediatric_filelist.csv")
    assert p["FileName"][0].endswith(".avi") and p["Split"][0] == 0 and p["view"][0] == "A4C"
