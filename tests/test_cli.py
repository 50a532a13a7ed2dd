"""The command line over a tiny phantom: every subcommand a user runs, and clear failures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cardiobench.cli import main


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    assert main(["phantom", "--out", str(root / "raw"), "--scale", "tiny",
                 "--datasets", "echonet_dynamic", "hmcqu"]) == 0
    return root


def test_prepare_verify_show_export(raw: Path, capsys: pytest.CaptureFixture) -> None:
    csv = raw / "m" / "hmcqu.csv"
    assert main(["prepare", "hmcqu", "--raw", str(raw / "raw" / "HMC-QU"), "--out", str(csv)]) == 0
    out = capsys.readouterr().out
    assert "hmcqu:" in out and "split fingerprint" in out
    # a phantom is not the published download: verify says so, count by count, and exits 1
    capsys.readouterr()
    assert main(["splits", "verify", str(csv)]) == 1
    out = capsys.readouterr().out
    assert "MISMATCH" in out and "patients[test]: expected 25" in out
    assert main(["splits", "show", str(csv)]) == 0
    # one row per split: patients, samples, STEMI positives and rate, counted here from the CSV
    rows = {line.split()[0]: line.split()[1:] for line in capsys.readouterr().out.splitlines()
            if line.split()[:1] in (["train"], ["val"], ["test"])}
    t = pd.read_csv(csv)
    assert rows == {s: [str(g["patient_id"].nunique()), str(len(g)), str(int(g["stemi"].sum())),
                        f"{g['stemi'].mean():.4f}"] for s, g in t.groupby("split")}
    assert main(["splits", "export", str(csv), "--out", str(raw / "exported")]) == 0
    exported = json.loads((raw / "exported" / "hmcqu.splits.json").read_text())
    assert exported["fingerprint"] == json.loads(csv.with_suffix(".json").read_text())["fingerprint"]


def test_verify_names_a_moved_patient(raw: Path, capsys: pytest.CaptureFixture) -> None:
    csv = raw / "m" / "hmcqu_moved.csv"
    assert main(["prepare", "hmcqu", "--raw", str(raw / "raw" / "HMC-QU"), "--out", str(csv)]) == 0
    t = pd.read_csv(csv)
    pid = t.loc[t["split"] == "train", "patient_id"].iloc[0]
    t.loc[t["patient_id"] == pid, "split"] = "test"
    t.to_csv(csv, index=False)
    capsys.readouterr()
    assert main(["splits", "verify", str(csv)]) == 1
    assert pid in capsys.readouterr().out


def test_embed_then_evaluate_then_report(raw: Path, capsys: pytest.CaptureFixture) -> None:
    csv = raw / "m" / "echonet_dynamic.csv"
    assert main(["prepare", "echonet_dynamic", "--raw", str(raw / "raw" / "EchoNet-Dynamic"),
                 "--out", str(csv)]) == 0
    cache, results = raw / "cache", raw / "results"
    assert main(["embed", "--encoder", "pixels", "--manifest", str(csv), "--cache", str(cache),
                 "--workers", "0"]) == 0
    assert "0 cached" in capsys.readouterr().out
    # a second run finds every shard cached
    assert main(["embed", "--encoder", "pixels", "--manifest", str(csv), "--cache", str(cache),
                 "--workers", "0"]) == 0
    assert " 0 shard(s) computed" in capsys.readouterr().out
    assert main(["evaluate", "--encoder", "pixels", "--manifest", str(csv), "--cache", str(cache),
                 "--results", str(results)]) == 0
    board = capsys.readouterr().out
    assert "echonet_dynamic/ef (mae)" in board
    assert main(["export-predictions", str(raw / "ref"), "--results", str(results)]) == 0
    ef = pd.read_csv(raw / "ref" / "EchoNet-Dynamic" / "EF" / "pixels.csv")
    assert list(ef.columns) == ["FileName", "EF_pred"] and len(ef) == 5


def test_bad_input_gives_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["prepare", "echonet_dynamic", "--raw", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "Traceback" not in err
    bad = tmp_path / "bad.csv"
    bad.write_text("sample_id,split\na,train\n")
    assert main(["splits", "show", str(bad)]) == 2
    assert "lacks required columns" in capsys.readouterr().err
    assert main(["embed", "--encoder", "no-such-encoder", "--manifest", str(bad)]) == 2
    assert "unknown encoder" in capsys.readouterr().err


def test_plugin_encoder_through_check_encoder(capsys: pytest.CaptureFixture) -> None:
    # the plugin class lives in tests/helpers.py, importable as a user module
    assert main(["check-encoder", "helpers:PluginEncoder"]) == 0
    out = capsys.readouterr().out
    assert "plugin-mean-colour: OK" in out and '"phantom_samples": 40' in out


def test_cka_between_two_encoders(raw: Path, capsys: pytest.CaptureFixture) -> None:
    from cardiobench.embed import EmbeddingCache
    from cardiobench.encoders import build_encoder
    from cardiobench.manifest import Manifest

    csv = raw / "m" / "echonet_dynamic_cka.csv"
    assert main(["prepare", "echonet_dynamic", "--raw", str(raw / "raw" / "EchoNet-Dynamic"),
                 "--out", str(csv)]) == 0
    capsys.readouterr()
    cache = raw / "cka-cache"
    assert main(["cka", "pixels", "helpers:PluginEncoder", "--b-encoder-arg", "unused=1",
                 "--manifest", str(csv), "--cache", str(cache), "--workers", "0",
                 "--split", "train"]) == 0
    line = capsys.readouterr().out.splitlines()[-1]
    # the same number from the two caches the command wrote, computed here from the vectors
    m = Manifest.read(csv)
    ids = m.subset("train")["sample_id"].astype(str).to_numpy()
    vecs = []
    for enc in (build_encoder("pixels"), build_encoder("helpers:PluginEncoder")):
        emb = EmbeddingCache(cache, "echonet_dynamic", enc.fingerprint()).load()
        vecs.append(emb.clip[emb.align(ids)])
    # linear CKA in its kernel form (Kornblith et al. 2019): HSIC of the centred Gram matrices,
    # written here rather than taken from protocols.alignment
    n = len(ids)
    h = np.eye(n) - 1.0 / n
    k, l_ = (h @ (v.astype(np.float64) @ v.astype(np.float64).T) @ h for v in vecs)
    want = float((k * l_).sum() / np.sqrt((k * k).sum() * (l_ * l_).sum()))
    assert 0.0 < want < 0.99  # different representations of the same videos
    assert line == f"{'echonet_dynamic':20s} n={len(ids):5d}  CKA={want:.4f}"
