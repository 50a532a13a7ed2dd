"""Exported predictions on phantoms built from the published IDs carry exactly the published test
IDs and columns, so the published evaluators can read them unchanged."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from cardiobench.encoders import build_encoder
from cardiobench.phantom.layouts import write_layout
from cardiobench.pipeline import embed_all
from cardiobench.preprocessing import prepare
from cardiobench.protocols.evaluate import evaluate
from cardiobench.protocols.export import export_result
from helpers import EXAMPLES, hmcqu_samples, ref_csv, require_ref


@pytest.fixture(scope="module")
def examples() -> Path:
    return require_ref(EXAMPLES)


def _export(tmp: Path, dataset: str, raw: Path, task: str) -> pd.DataFrame:
    m = prepare(dataset, raw)
    enc = build_encoder("pixels", n_frames=2)
    emb = embed_all({dataset: m}, enc, tmp / "cache", num_workers=0, progress=False)[dataset]
    res = evaluate(task, "linear_probe", m, emb, enc, {"n_boot": 20})
    return pd.read_csv(export_result(res, tmp / "ref", model="modelname"))


def test_hmcqu_stemi_export_matches_the_published_test_set(tmp_path: Path, examples: Path) -> None:
    raw = tmp_path / "hmcqu"
    write_layout("hmcqu", raw, "ids", samples=hmcqu_samples(ref_csv("hmcqu_split.csv")))
    got = _export(tmp_path, "hmcqu", raw, "hmcqu/stemi")
    want = pd.read_csv(examples / "HMCQU" / "stemi" / "modelname.csv")
    id_col = "unique_id"
    assert set(got[id_col]) == set(want[id_col]) and len(got) == 50
    assert [c for c in want.columns if not c.startswith("Unnamed")] == list(got.columns)
    assert set(got["stemi_pred"].unique()) <= {0, 1}


def test_dynamic_ef_export_matches_the_published_test_set(tmp_path: Path, examples: Path) -> None:
    want = pd.read_csv(examples / "EchoNet-Dynamic" / "EF" / "modelname.csv")
    own = [f"0XBEEF{k:012X}" for k in range(12)]
    samples = pd.DataFrame({"FileName": list(want["FileName"]) + own,
                            "Split": ["TEST"] * len(want) + ["TRAIN"] * 8 + ["VAL"] * 4})
    raw = tmp_path / "dyn"
    write_layout("echonet_dynamic", raw, "ids", samples=samples)
    got = _export(tmp_path, "echonet_dynamic", raw, "echonet_dynamic/ef")
    assert list(got.columns) == list(want.columns) == ["FileName", "EF_pred"]
    assert set(got["FileName"]) == set(want["FileName"]) and len(got) == 1277
