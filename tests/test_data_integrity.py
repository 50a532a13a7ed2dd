"""Issue 19, data side, on inputs built by hand (not by the phantom): a file's identity, the
manifest pair and its root, output folders, write errors, and the harmoniser rules (CardiacNet
masks, CAMUS shapes, letter case, several-sheet workbooks)."""

from __future__ import annotations

import errno
import hashlib
import json
import os
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
import pytest

from cardiobench.atomic import (OverwriteError, WriteError, atomic_write_files,
                                atomic_write_text, claim_folder)
from cardiobench.io.identity import HEAD_TAIL, content_hash, current_media, identify, stat_key
from cardiobench.manifest import Manifest, ManifestError, read_manifests, root_overrides

from helpers import CATALOGUE


# ---------------------------------------------------------------------------- file identity

def _expected_hash(data: bytes) -> str:
    """The documented definition, computed independently of the code under test."""
    h = hashlib.sha256(b"cardiobench-media-v1\n" + f"{len(data)}\n".encode())
    h.update(data if len(data) <= 2 * HEAD_TAIL else data[:HEAD_TAIL] + data[-HEAD_TAIL:])
    return h.hexdigest()


@pytest.mark.parametrize("size", [0, 1000, 2 * HEAD_TAIL, 2 * HEAD_TAIL + 1, 5 * HEAD_TAIL])
def test_content_hash_is_size_first_and_last_mib(tmp_path: Path, size: int) -> None:
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    f = tmp_path / "v.avi"
    f.write_bytes(data)
    assert content_hash(f) == _expected_hash(data)


def test_content_hash_sees_size_head_and_tail_changes(tmp_path: Path) -> None:
    data = bytearray(os.urandom(3 * HEAD_TAIL))
    f = tmp_path / "v.avi"
    f.write_bytes(bytes(data))
    base = content_hash(f)
    for pos in (0, HEAD_TAIL - 1, len(data) - HEAD_TAIL, len(data) - 1):
        changed = bytearray(data)
        changed[pos] ^= 1
        f.write_bytes(bytes(changed))
        assert content_hash(f) != base, pos
    f.write_bytes(bytes(data) + b"\0")
    assert content_hash(f) != base
    # the documented blind spot: a same-size edit strictly inside the middle of a large file
    changed = bytearray(data)
    changed[len(data) // 2] ^= 1
    f.write_bytes(bytes(changed))
    assert content_hash(f) == base


def test_same_size_rewrite_with_the_old_mtime_is_still_seen(tmp_path: Path) -> None:
    """``cp -p``/``touch -r`` keep the mtime: the ctime/inode in the stat key still change, so
    the pre-check falls through to the hash."""
    f = tmp_path / "v.avi"
    f.write_bytes(b"A" * 5000)
    ident = identify(f)
    st = f.stat()
    f.write_bytes(b"B" * 5000)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert f.stat().st_size == st.st_size and f.stat().st_mtime_ns == st.st_mtime_ns
    now = current_media(["s"], [f], [ident.stat], [ident.hash])
    assert [c.sample_id for c in now.changed] == ["s"] and now.hashed == 1
    assert now.hashes == [_expected_hash(b"B" * 5000)]


def test_unchanged_files_are_not_read_and_absent_ones_keep_their_hash(tmp_path: Path) -> None:
    a, b = tmp_path / "a.avi", tmp_path / "b.avi"
    a.write_bytes(b"aaa")
    b.write_bytes(b"bbb")
    ia, ib = identify(a), identify(b)
    b.unlink()
    now = current_media(["a", "b"], [a, b], [ia.stat, ib.stat], [ia.hash, ib.hash])
    assert now.hashed == 0 and now.hashes == [ia.hash, ib.hash] and now.changed == []
    # a manifest without recorded identities: every present file is hashed, nothing "changed"
    now = current_media(["a", "b"], [a, b], None, None)
    assert now.unrecorded == 2 and now.hashed == 1 and now.hashes == [ia.hash, "absent"]
    assert stat_key(b) is None


def test_cache_signature_follows_the_bytes(tmp_path: Path) -> None:
    from cardiobench.embed.cache import ShardPlan

    t = pd.DataFrame({"sample_id": ["a", "b"], "path": ["a.avi", "b.avi"],
                      "media_hash": ["h1", "h2"]})
    one = ShardPlan.from_table(t, 1)
    two = ShardPlan.from_table(t.assign(media_hash=["h1", "h9"]), 1)
    assert one.shard_hash(0) == two.shard_hash(0) and one.shard_hash(1) != two.shard_hash(1)


# --------------------------------------------------------------------------- the manifest pair

def _manifest(root: Path, n: int = 4, dataset: str = "toy") -> Manifest:
    (root / "V").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (root / "V" / f"s{i}.avi").write_bytes(bytes([i]) * 10)
    t = pd.DataFrame({"sample_id": [f"s{i}" for i in range(n)],
                      "patient_id": [f"p{i}" for i in range(n)],
                      "split": (["train", "val", "test"] * n)[:n],
                      "path": [f"V/s{i}.avi" for i in range(n)], "ef": [50.0 + i for i in range(n)]})
    return Manifest(dataset, t, root=str(root))


def test_sidecar_records_the_table_hash_and_a_foreign_table_is_refused(tmp_path: Path) -> None:
    a = _manifest(tmp_path / "raw").write(tmp_path / "a" / "toy.csv")
    side = json.loads(a.with_suffix(".json").read_text())
    assert side["table_sha256"] == hashlib.sha256(a.read_bytes()).hexdigest()
    other = _manifest(tmp_path / "raw")
    other.table.loc[1, "ef"] = 77.0  # same samples, same split: only the hash can tell
    b = other.write(tmp_path / "b" / "toy.csv")
    b.with_suffix(".json").write_bytes(a.with_suffix(".json").read_bytes())
    with pytest.raises(ManifestError, match="is not the table"):
        Manifest.read(b)
    # splits verify reads an edited table to report on it: a warning there, not a refusal
    assert Manifest.read(b, check_sidecar_split=False).table.loc[1, "ef"] == 77.0


def test_pair_write_failure_leaves_both_old_files(tmp_path: Path, monkeypatch) -> None:
    csv = _manifest(tmp_path / "raw").write(tmp_path / "m" / "toy.csv")
    old = csv.read_bytes(), csv.with_suffix(".json").read_bytes()
    m = _manifest(tmp_path / "raw2")
    real = Path.write_bytes

    def full(self: Path, data: bytes) -> int:
        if self.name.startswith(".toy.json."):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(WriteError) as err:
        m.write(csv)
    assert err.value.errno == errno.ENOSPC
    assert str(csv.with_suffix(".json")) in str(err.value) and "free space" in str(err.value)
    assert (csv.read_bytes(), csv.with_suffix(".json").read_bytes()) == old
    assert sorted(os.listdir(csv.parent)) == ["toy.csv", "toy.json"]


def test_atomic_write_files_and_write_error_messages(tmp_path: Path, monkeypatch) -> None:
    atomic_write_files({tmp_path / "x" / "a": b"1", tmp_path / "y" / "b": b"2"})
    assert (tmp_path / "x" / "a").read_bytes() == b"1" and (tmp_path / "y" / "b").read_bytes() == b"2"
    import cardiobench.atomic as atomic

    monkeypatch.setattr(atomic.os, "replace",
                        lambda *a: (_ for _ in ()).throw(OSError(errno.EROFS, "Read-only")))
    with pytest.raises(OSError) as err:
        atomic_write_text(tmp_path / "r.json", "{}")
    assert isinstance(err.value, WriteError) and err.value.errno == errno.EROFS
    assert f"cannot write {tmp_path / 'r.json'}" in str(err.value)
    assert "choose another output folder" in str(err.value)
    assert os.listdir(tmp_path) == ["x", "y"]  # no temporary left behind


def test_root_is_absolute_and_can_be_given(tmp_path: Path, monkeypatch) -> None:
    from cardiobench.preprocessing import prepare
    from cardiobench.phantom import Scale, generate

    generate(CATALOGUE.layout("echonet_dynamic"), tmp_path / "dl", scale=Scale("t", 6, 32, 16), seed=2)
    monkeypatch.chdir(tmp_path)
    m = prepare(CATALOGUE.dataset("echonet_dynamic"), "dl", tmp_path / "m.csv")
    assert m.root == str((tmp_path / "dl").resolve())
    assert m.table["media_hash"].str.fullmatch(r"[0-9a-f]{64}").all()
    moved = (tmp_path / "dl").rename(tmp_path / "elsewhere")
    read = Manifest.read(tmp_path / "m.csv")
    with pytest.raises(ManifestError, match=r"does not exist.*--raw DIR"):
        read.media_root(must_exist=True)
    given = Manifest.read(tmp_path / "m.csv", root="elsewhere")
    assert given.media_root(must_exist=True) == moved.resolve()
    assert given.provenance() == {"manifest_root": str(moved.resolve()),
                                  "sidecar_root": str((tmp_path / "dl").resolve()),
                                  "root_given": True}
    with pytest.raises(ManifestError, match="does not exist"):
        Manifest.read(tmp_path / "m.csv", root=tmp_path / "nowhere")


def test_raw_values_map_to_manifests(tmp_path: Path) -> None:
    assert root_overrides(["/d"]) == {None: "/d"}
    assert root_overrides(["camus=/c", "echonet_dynamic=/e"]) == {"camus": "/c",
                                                                  "echonet_dynamic": "/e"}
    assert root_overrides(["/data/a=b"]) == {None: "/data/a=b"}  # not a name: a folder
    with pytest.raises(ManifestError, match="given twice"):
        root_overrides(["camus=/a", "camus=/b"])
    a = _manifest(tmp_path / "ra", dataset="toy_a").write(tmp_path / "a.csv")
    b = _manifest(tmp_path / "rb", dataset="toy_b").write(tmp_path / "b.csv")
    with pytest.raises(ManifestError, match="exactly one manifest"):
        read_manifests([a, b], [str(tmp_path / "rb")])
    with pytest.raises(ManifestError, match=r"\['camus'\]"):
        read_manifests([a, b], [f"camus={tmp_path}"])
    ma, mb = read_manifests([a, b], [f"toy_b={tmp_path / 'ra'}"])
    assert ma.root == str(tmp_path / "ra") and mb.root == str((tmp_path / "ra").resolve())


@pytest.mark.parametrize("name", ["../../escaped", "a/b", "", "échos", 5])
def test_dataset_names_are_identifiers(tmp_path: Path, name: object) -> None:
    csv = _manifest(tmp_path / "raw").write(tmp_path / "toy.csv")
    side = csv.with_suffix(".json")
    meta = json.loads(side.read_text())
    meta["dataset"] = name
    side.write_text(json.dumps(meta))
    with pytest.raises(ManifestError, match="not a dataset name"):
        Manifest.read(csv)
    if isinstance(name, str):  # the cache refuses such a folder name itself, too
        from cardiobench.embed import EmbeddingCache

        with pytest.raises(ValueError, match="not a name"):
            EmbeddingCache(tmp_path / "cache", name, "f" * 64)


# ------------------------------------------------------------------------------ output folders

def test_claim_folder_refuses_other_data(tmp_path: Path) -> None:
    dl = tmp_path / "download"
    dl.mkdir()
    (dl / "FileList.csv").write_text("FileName\n")
    with pytest.raises(OverwriteError, match="not empty"):
        claim_folder(dl, ".m", "phantom")
    assert os.listdir(dl) == ["FileList.csv"]
    out = claim_folder(tmp_path / "new" / "deeper", ".m", "phantom")
    (out / "x").write_text("x")
    assert claim_folder(out, ".m", "phantom") == out  # its own earlier output
    (tmp_path / "file").write_text("")
    with pytest.raises(OverwriteError, match="is a file"):
        claim_folder(tmp_path / "file", ".m", "phantom")


# -------------------------------------------------------------------------- harmoniser rules

def test_cardiacnet_masks_by_folder_whatever_the_file_is_called(tmp_path: Path) -> None:
    from cardiobench.io import write_nifti
    from cardiobench.preprocessing.cardiacnet import is_mask, scan

    assert is_mask(PurePosixPath("111_label.nii/PHI01.nii"))
    assert is_mask(PurePosixPath("x/Labels/a.nii")) and is_mask(PurePosixPath("a_LABEL.nii"))
    assert not is_mask(PurePosixPath("111_image.nii/PHI01.nii"))
    frames = np.zeros((2, 8, 8), np.uint8)
    cases = {"CardiacNet-ASD/ASD/001_image.nii/patient-1-4_image.nii": 1,
             "CardiacNet-ASD/Non-ASD/111_image.nii/PHI01.nii": 0,
             "CardiacNet-ASD/Non-ASD/112_image.nii": 0}
    masks = ["CardiacNet-ASD/ASD/001_label.nii/patient-1-4_label.nii",
             "CardiacNet-ASD/Non-ASD/111_label.nii/PHI01.nii",
             "CardiacNet-ASD/Non-ASD/112_label.nii",
             "CardiacNet-ASD/Non-ASD/labels/PHI02.nii.gz"]
    for rel in [*cases, *masks]:
        write_nifti(tmp_path / rel, frames)
    got = scan(tmp_path, "cardiacnet_asd")
    assert sorted(got["path"]) == sorted(cases)
    assert dict(zip(got["path"], got["asd"])) == cases
    assert sorted(got["sample_id"]) == ["001_image_patient-1-4", "111_image_PHI01",
                                        "Non-ASD_112"]


@pytest.mark.parametrize("shape,n,ok", [((32, 24, 9), 9, True), ((32, 24, 1, 9), 9, True),
                                        ((9, 32, 24), 9, False), ((32, 24, 12), 9, False),
                                        ((32, 24), 1, True)])
def test_camus_shape_must_be_the_cfg_sequence(shape: tuple, n: int, ok: bool) -> None:
    from cardiobench.preprocessing.camus import sequence_shape_problem

    why = sequence_shape_problem(shape, n)
    assert (why is None) == ok
    if shape[0] == n and not ok:
        assert "time-first" in why and "axis 0" in why


def test_letter_case_and_near_misses_on_a_hand_built_tree(tmp_path: Path) -> None:
    from cardiobench.preprocessing.media import check_media, match_case, name_near_misses

    (tmp_path / "VIDEOS").mkdir()
    (tmp_path / "VIDEOS" / "A.AVI").write_bytes(b"a")
    (tmp_path / "VIDEOS" / "B.mp4").write_bytes(b"b")
    (tmp_path / "VIDEOS" / "c.avi").write_bytes(b"c")
    (tmp_path / "VIDEOS" / "C.avi").write_bytes(b"C")
    t = pd.DataFrame({"sample_id": ["A", "B", "C"], "patient_id": ["A", "B", "C"],
                      "split": ["train", "val", "test"],
                      "path": ["Videos/A.avi", "Videos/B.avi", "Videos/C.AVI"]})
    m = Manifest("toy", t, root=str(tmp_path))
    warned = match_case(m)
    assert list(m.table["path"]) == ["VIDEOS/A.AVI", "Videos/B.avi", "Videos/C.AVI"]
    assert [p.sample_id for p in warned] == ["A"] and warned[0].severity == "warning"
    missing = name_near_misses(check_media(m, decode=False))
    said = {p.sample_id: p.message for p in missing}
    assert set(said) == {"B", "C"}  # C is ambiguous (c.avi, C.avi): not guessed
    assert "folder" in said["B"] and "does not exist" in said["B"]  # Videos/ vs VIDEOS/


def test_several_sheet_workbook_says_which_sheet_was_read(tmp_path: Path) -> None:
    import openpyxl

    from cardiobench.schemas import HMCQU_SHEET, read_side_table

    wb = openpyxl.Workbook()
    wb.active.title = "Read me"
    data = wb.create_sheet("Labels")
    data.append(["ECHO", *[f"SEG{k}" for k in range(1, 7)]])
    data.append(["ES0001_x", *["MI"] * 6])
    wb.save(tmp_path / "A4C.xlsx")
    with pytest.raises(ManifestError, match=r"only the first sheet, 'Read me'.*\['Labels'\]"):
        read_side_table(tmp_path / "A4C.xlsx", HMCQU_SHEET)
    wb.move_sheet("Labels", offset=-1)
    wb.save(tmp_path / "A4C.xlsx")
    side = read_side_table(tmp_path / "A4C.xlsx", HMCQU_SHEET)
    assert [p.kind for p in side.problems] == ["other_sheets_ignored"]
    assert side.table["ECHO"].tolist() == ["ES0001_x"]
