"""Phantoms built from the published IDs go through prepare → embed → evaluate → export, and the
export equals the example predictions file by file (columns, ID sets, file-name rules), so the
published evaluators can read it unchanged; ``ci: reference`` bootstraps the units in the order
of the published ground-truth CSV."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from cardiobench.encoders import build_encoder
from cardiobench.phantom.layouts import write_layout
from cardiobench.job import EmbedOptions, Job
from cardiobench.preprocessing import prepare
from cardiobench.protocols import export
from cardiobench.protocols.evaluate import evaluate
from helpers import CATALOGUE, hmcqu_samples
from published_facts import published_split


def _prepared(tmp: Path, dataset: str, raw: Path):
    # thousands of published IDs: decoding every phantom video is the fault suite's job, not this one's
    m = prepare(CATALOGUE.dataset(dataset), raw, media_check=False)
    enc = build_encoder("pixels", n_frames=2)
    emb = Job({dataset: m}, enc, tmp / "cache",
              options=EmbedOptions(workers=0, progress=False)).load_or_embed()[dataset]
    return m, emb, enc


def _same_as_example(got: Path, want: Path, id_col: str) -> pd.DataFrame:
    g, w = pd.read_csv(got, dtype=str), pd.read_csv(want, dtype=str)
    assert list(g.columns) == [c for c in w.columns if not c.startswith("Unnamed")]
    assert set(g[id_col]) == set(w[id_col]) and len(g) == len(w)
    return g


@pytest.fixture(scope="module")
def hmcqu(tmp_path_factory: pytest.TempPathFactory, examples: Path):
    tmp = tmp_path_factory.mktemp("hmcqu_ids")
    raw = tmp / "hmcqu"
    write_layout(CATALOGUE.layout("hmcqu"), raw, "ids", samples=hmcqu_samples(published_split("hmcqu_split.csv")))
    return tmp, *_prepared(tmp, "hmcqu", raw)


def test_hmcqu_every_protocol_exports_the_published_test_set(hmcqu, examples: Path) -> None:
    tmp, m, emb, enc = hmcqu
    results = [evaluate(CATALOGUE.task(t), p, m, emb, enc, {"n_boot": 20})
               for t in ("hmcqu/stemi", "hmcqu/view") for p in export.exportable_protocols()]
    out = tmp / "ref"
    # an encoder name with '_' and '[' (as dinov3[vit_small_patch16_...]) must not reach a file
    rep = export.export_predictions(results, CATALOGUE.tasks, out,
                                    list(export.exportable_protocols()),
                                    model_name="pixels_v2[tiny]")
    assert list(rep.models) == ["pixels-v2-tiny"]
    status = {(f.task, f.protocol): f.status for f in rep.files}
    # pixels has no text tower: no zero-shot tree at all (every evaluator would fail sorting
    # its empty summary table), and the index says why
    assert not (out / "zero_shot").exists() and ("hmcqu/stemi", "zero_shot") not in status
    assert "no model has predictions" in rep.skipped["zero_shot"]
    index = json.loads((out / export.INDEX_FILE).read_text())
    assert "not_applicable: pixels has no text tower" in index["protocols_not_written"]["zero_shot"]
    assert status[("hmcqu/stemi", "linear_probe")] == status[("hmcqu/view", "knn")] == "ok"
    for proto in ("linear_probe", "knn"):
        st = _same_as_example(out / proto / "HMCQU" / "stemi" / "pixels-v2-tiny.csv",
                              examples / "HMCQU" / "stemi" / "modelname.csv", "unique_id")
        assert set(st["stemi_pred"]) <= {"0", "1"}
        _same_as_example(out / proto / "HMCQU" / "view" / "pixels-v2-tiny.csv",
                         examples / "HMCQU" / "view" / "modelname.csv", "unique_id")
    # every example task directory exists in every protocol tree
    dirs = {str(p.relative_to(examples)) for p in examples.glob("*/*") if p.is_dir()}
    for proto in ("linear_probe", "knn"):
        assert dirs <= {str(p.relative_to(out / proto)) for p in (out / proto).glob("*/*")}
    hm = [f for f in export.check_export(out) if "HMCQU" in f.path]
    assert hm == []


def test_hmcqu_reference_ci_follows_the_published_gt_order(hmcqu) -> None:
    tmp, m, emb, enc = hmcqu
    r = evaluate(CATALOGUE.task("hmcqu/stemi"), "linear_probe", m, emb, enc, {"n_boot": 20, "ci": "reference"})
    assert r.config["ci"] == "reference"
    assert r.predictions["sample_id"].tolist() == export.published_order("hmcqu/stemi")
    assert len(r.predictions) == 50


def test_dynamic_ef_export_matches_the_published_test_set(tmp_path: Path, examples: Path) -> None:
    want = pd.read_csv(examples / "EchoNet-Dynamic" / "EF" / "modelname.csv")
    own = [f"0XBEEF{k:012X}" for k in range(12)]
    samples = pd.DataFrame({"FileName": list(want["FileName"]) + own,
                            "Split": ["TEST"] * len(want) + ["TRAIN"] * 8 + ["VAL"] * 4})
    raw = tmp_path / "dyn"
    write_layout(CATALOGUE.layout("echonet_dynamic"), raw, "ids", samples=samples)
    m, emb, enc = _prepared(tmp_path, "echonet_dynamic", raw)
    res = evaluate(CATALOGUE.task("echonet_dynamic/ef"), "linear_probe", m, emb, enc, {"n_boot": 20})
    view = evaluate(CATALOGUE.task("echonet_dynamic/view"), "linear_probe", m, emb, enc, {"n_boot": 20})
    assert view.status == "not_applicable"  # one view class in train
    export.export_predictions([res, view], CATALOGUE.tasks, tmp_path / "ref", ["linear_probe"])
    got = _same_as_example(tmp_path / "ref" / "EchoNet-Dynamic" / "EF" / "pixels.csv",
                           examples / "EchoNet-Dynamic" / "EF" / "modelname.csv", "FileName")
    assert list(got.columns) == ["FileName", "EF_pred"] and len(got) == 1277
    # the view file the evaluator opens exists, header-only, instead of being absent
    v = pd.read_csv(tmp_path / "ref" / "EchoNet-Dynamic" / "view" / "pixels.csv")
    assert v.empty and list(v.columns)[:2] == ["FileName", "view_pred"]
    # the ground truth the evaluator reads: the FileList in manifest (native) order, lower-case
    export.write_ground_truth({"echonet_dynamic": m}, CATALOGUE.datasets, tmp_path / "ref")
    fl = pd.read_csv(tmp_path / "ref" / "ground_truth" / "data" / "splits" / "EchoNet-Dynamic"
                     / "FileList.csv")
    assert fl["FileName"].tolist() == samples["FileName"].tolist()
    assert (fl["Split"] == "test").sum() == 1277
