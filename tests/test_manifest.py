"""Manifest: round trip, fingerprint, and every validation defect caught and named."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from cardiobench.manifest import (Manifest, ManifestError, check, sidecar_path, split_fingerprint,
                                  validate)


def make_manifest(root: Path, n: int = 6, **overrides: list) -> Manifest:
    rows = {
        "sample_id": [f"s{i}" for i in range(n)],
        "patient_id": [f"p{i // 2}" for i in range(n)],
        "split": ["train", "train", "val", "val", "test", "test"][:n],
        "path": [f"Videos/s{i}.avi" for i in range(n)],
        "view": ["A4C"] * n,
        "ef": [55.0 + i for i in range(n)],
    }
    rows.update(overrides)
    (root / "Videos").mkdir(parents=True, exist_ok=True)
    for p in rows["path"]:
        if isinstance(p, str) and not p.startswith("/") and ".." not in p:
            (root / p).parent.mkdir(parents=True, exist_ok=True)
            (root / p).write_bytes(b"x")
    return Manifest("toy", pd.DataFrame(rows), root=str(root))


def kinds(problems) -> list[str]:
    return sorted(p.kind for p in problems)


def test_clean_manifest_has_no_problems(tmp_path: Path) -> None:
    assert validate(make_manifest(tmp_path)) == []


def test_round_trip_csv_and_sidecar(tmp_path: Path) -> None:
    m = make_manifest(tmp_path / "raw")
    out = m.write(tmp_path / "out" / "toy.csv")
    side = json.loads(sidecar_path(out).read_text())
    assert side["schema_version"] == 1 and side["dataset"] == "toy"
    assert side["fingerprint"] == m.fingerprint
    assert side["counts"] == {"test": {"samples": 2, "patients": 1},
                              "train": {"samples": 2, "patients": 1},
                              "val": {"samples": 2, "patients": 1}}
    back = Manifest.read(out)
    assert back.fingerprint == m.fingerprint
    assert back.table["ef"].tolist() == m.table["ef"].tolist()
    assert back.root == m.root


def test_fingerprint_depends_only_on_assignment(tmp_path: Path) -> None:
    m = make_manifest(tmp_path)
    shuffled = m.table.sample(frac=1.0, random_state=0)
    assert split_fingerprint(shuffled) == m.fingerprint
    moved = m.table.copy()
    moved.loc[0, "split"] = "val"
    assert split_fingerprint(moved) != m.fingerprint


def test_split_values_are_case_insensitive(tmp_path: Path) -> None:
    m = make_manifest(tmp_path, split=["TRAIN", "Train", "VAL", "val", "TEST", "test"])
    assert set(m.table["split"]) == {"train", "val", "test"}
    assert validate(m) == []


@pytest.mark.parametrize("override, kind, sample", [
    ({"sample_id": ["s0", "s0", "s2", "s3", "s4", "s5"]}, "duplicate_sample_id", "s0"),
    ({"split": ["train", "val", "val", "val", "test", "test"]}, "patient_in_two_splits", "s0"),
    ({"split": ["train", "train", "val", "val", "test", "holdout"]}, "unknown_split", "s5"),
    ({"path": ["/abs/s0.avi"] + [f"Videos/s{i}.avi" for i in range(1, 6)]}, "absolute_path", "s0"),
    ({"path": ["../s0.avi"] + [f"Videos/s{i}.avi" for i in range(1, 6)]}, "path_escapes_root", "s0"),
    ({"ef": [55.0, 120.0, 50.0, 50.0, 50.0, 50.0]}, "label_out_of_range", "s1"),
    ({"view": ["A4C", "A4C", "A5C", "A4C", "A4C", "A4C"]}, "unknown_view", "s2"),
])
def test_each_defect_is_caught_and_named(tmp_path: Path, override: dict, kind: str,
                                         sample: str) -> None:
    m = make_manifest(tmp_path, **override)
    problems = validate(m)
    assert kind in kinds(problems)
    hit = [p for p in problems if p.kind == kind]
    assert hit[0].sample_id == sample
    with pytest.raises(ManifestError) as err:
        check(m)
    assert kind in str(err.value) and sample in str(err.value)


def test_missing_file_is_named(tmp_path: Path) -> None:
    m = make_manifest(tmp_path)
    (tmp_path / "Videos" / "s3.avi").unlink()
    problems = validate(m)
    assert kinds(problems) == ["missing_file"]
    assert problems[0].sample_id == "s3" and "s3.avi" in problems[0].message
    assert validate(m, check_files=False) == []


def test_nan_label_where_task_needs_one(tmp_path: Path) -> None:
    m = make_manifest(tmp_path, ef=[55.0, None, 50.0, 50.0, 50.0, 50.0])
    assert validate(m) == []
    problems = validate(m, required_labels=["ef"])
    assert kinds(problems) == ["missing_label"] and problems[0].sample_id == "s1"


def test_binary_label_must_be_zero_or_one(tmp_path: Path) -> None:
    m = make_manifest(tmp_path, asd=[0, 1, 1, 0, 0.5, 1])
    assert kinds(validate(m)) == ["label_not_binary"]


def test_malformed_csv_gives_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("sample_id,split\ns0,train\n")
    with pytest.raises(ManifestError, match="lacks required columns"):
        Manifest.read(bad)
    with pytest.raises(ManifestError, match="not found"):
        Manifest.read(tmp_path / "nope.csv")


def test_problem_summary_lines_and_their_log_levels(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from cardiobench.manifest import Problem
    from cardiobench.problems import log_summary, summarise

    problems = [Problem("bad_cell", "FPS = 'x' is not a number", sample_id="a",
                        severity="warning", column="FPS"),
                Problem("missing_file", "a.avi absent", sample_id="b", severity="unusable"),
                Problem("missing_file", "c.avi absent", sample_id="c", severity="unusable"),
                Problem("duplicate_sample_id", "twice", sample_id="d")]
    lines = ["[warning] bad_cell (sample 'a'): FPS = 'x' is not a number",
             "[unusable] missing_file: 2 occurrence(s), e.g. b, c -- first: a.avi absent",
             "[error] duplicate_sample_id (sample 'd'): twice"]
    assert summarise(problems) == lines
    logger = logging.getLogger("test_problem_summary")
    with caplog.at_level(logging.DEBUG, logger=logger.name):
        log_summary(logger, "ds", problems)
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, f"ds: {lines[0]}"), (logging.ERROR, f"ds: {lines[1]}"),
        (logging.ERROR, f"ds: {lines[2]}")]
