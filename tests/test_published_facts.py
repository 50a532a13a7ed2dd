"""The committed facts in ``tests/data/published`` equal a fresh derivation from the published
files (where ``../shared`` is present; elsewhere the generator and loader are checked to be
inverse), are refused when edited, and agree with the package's split specs and export contract."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

import published_facts as pf
from cardiobench.protocols.export import load_contract
from helpers import PUBLISHED, REF

SPEC_DIR = Path(__file__).resolve().parents[1] / "splits"


def _rebuilt_reference(root: Path) -> Path:
    """A reference tree written from the committed facts (split CSVs with the kept columns,
    example files with empty placeholder cells), laid out as ``../shared/reference``."""
    for src in pf.SPLIT_SOURCES:
        pf.write_published_split(src.file, root / pf.SPLITS_REL / src.file)
    pf.write_examples(root / pf.EXAMPLES_REL)
    return root


def _without_file_sha(facts: dict) -> dict:
    """``facts`` without the SHA-256 of the source files (a rebuilt tree has other bytes)."""
    out = json.loads(json.dumps(facts))
    for obj in out.values():
        obj.pop("sha256", None)
        for entry in obj.get("files", {}).values():
            entry.pop("sha256", None)
    return out


def test_committed_facts_equal_a_fresh_derivation(tmp_path: Path) -> None:
    """Beside ``../shared``: the facts equal a derivation from the published files, and the
    tables rebuilt from them equal those files (the facts cannot drift). In a user's clone the
    published files are absent: the derivation then runs on the tree rebuilt from the facts, so
    the generator and the loader are checked to be inverse (every checksum but the source files'
    own SHA-256, which the first case pins)."""
    committed = {name: json.loads(gzip.decompress((PUBLISHED / name).read_bytes()))
                 for name in json.loads((PUBLISHED / pf.INDEX).read_text())["files"]}
    if not (REF / pf.SPLITS_REL).is_dir():
        fresh = pf.derive_all(_rebuilt_reference(tmp_path / "rebuilt"))
        assert sorted(fresh) == sorted(committed)
        assert _without_file_sha(fresh) == _without_file_sha(committed)
        return
    fresh = pf.derive_all(REF)
    assert sorted(fresh) == sorted(committed)
    for name, want in fresh.items():
        assert committed[name] == json.loads(json.dumps(want)), \
            f"{name} drifted: run python tests/published_facts.py"
    for src in pf.SPLIT_SOURCES:
        want = pd.read_csv(REF / pf.SPLITS_REL / src.file)
        pd.testing.assert_frame_equal(pf.published_split(src.file), want[list(src.columns)])
        assert pf.split_facts(src.file)["sha256"] == pf.sha256_bytes(
            (REF / pf.SPLITS_REL / src.file).read_bytes())
    root = REF / pf.EXAMPLES_REL
    for rel, entry in pf.example_files().items():
        want = pd.read_csv(root / rel, dtype=str, keep_default_na=False)
        got = pf.example_table(rel)
        assert [c or "Unnamed: 0" for c in got.columns] == list(want.columns), rel
        idc = entry["id_column"]
        assert sorted(got[idc]) == sorted(want[idc]), rel
        if "columns" in entry:  # stored columns keep the published row order
            assert got[list(entry["columns"])].equals(want[list(entry["columns"])]), rel


def test_facts_agree_with_the_package_specs_and_contract() -> None:
    # the split specs pin the published SegRWMA file and the published test IDs
    seg = yaml.safe_load((SPEC_DIR / "segrwma.yaml").read_text())
    assert seg["params"]["sha256"] == pf.split_facts("segrwma_split.csv")["sha256"]
    for src in pf.SPLIT_SOURCES:
        f = pf.split_facts(src.file)
        assert f["commit"] == pf.SOURCE_COMMIT and f["rows"] == len(pf.published_split(src.file))
    contract = load_contract()
    by_file = {e["file"].format(model="modelname"): e for e in contract.values()}
    assert sorted(by_file) == sorted(pf.example_files())
    for rel, entry in pf.example_files().items():
        e = by_file[rel]
        assert (e["id_column"], e["n"], e["ids_sha256"]) == \
            (entry["id_column"], entry["n"], entry["ids_sha256"]), rel
    # the published row counts stated in the reference README
    assert {s.name: pf.split_facts(s.file)["rows"] for s in pf.SPLIT_SOURCES} == {
        "hmcqu": 322, "cardiacnet_asd": 228, "cardiacnet_pah": 476, "tmed2": 17270, "segrwma": 1660}


def _copy_facts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    dest = tmp_path / "published"
    shutil.copytree(PUBLISHED, dest)
    monkeypatch.setattr(pf, "PUBLISHED", dest)
    pf.load.cache_clear()
    return dest


def test_an_edited_facts_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dest = _copy_facts(tmp_path, monkeypatch)
    try:
        obj = json.loads(gzip.decompress((dest / "hmcqu.json.gz").read_bytes()))
        cols = dict(obj["columns"])
        cols["split"][0] = "test" if cols["split"][0] != "test" else "train"
        obj["columns"] = [[k, v] for k, v in cols.items()]
        (dest / "hmcqu.json.gz").write_bytes(gzip.compress(json.dumps(obj).encode(), mtime=0))
        with pytest.raises(pf.FactsError, match="hmcqu.json.gz: SHA-256 differs from index.json"):
            pf.published_split("hmcqu_split.csv")
        # a consistent index but a dropped ID: the recorded ID checksum catches it
        cols["unique_id"] = cols["unique_id"][1:] + ["ES9999_A2C"]
        obj["columns"] = [[k, v] for k, v in cols.items()]
        data = gzip.compress(json.dumps(obj).encode(), mtime=0)
        (dest / "hmcqu.json.gz").write_bytes(data)
        index = json.loads((dest / pf.INDEX).read_text())
        index["files"]["hmcqu.json.gz"]["sha256"] = pf.sha256_bytes(data)
        (dest / pf.INDEX).write_text(json.dumps(index))
        with pytest.raises(pf.FactsError, match="IDs hash to"):
            pf.published_split("hmcqu_split.csv")
    finally:
        pf.load.cache_clear()
