"""Fault injection for the cache and results half of the pipeline (issue 9, points 5-9).

Every row of :data:`FAULTS` plants one fault (× the stage where it bites) in a copy of the tiny
EchoNet-Dynamic phantom, runs the stage with the ``pixels`` encoder and asserts what cardiobench
did: the count of embedded samples, the failures with their kinds, the words of the message, and
that every intact sample's vectors equal the clean run's bit for bit. The README's table
"fault → what cardiobench does" (cache and results rows) is checked against this table.
"""

from __future__ import annotations

import errno
import importlib
import json
import os
import re
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import pytest

from cardiobench.cli import main
from cardiobench.embed import EmbeddingCache, Embeddings, extract, load_or_extract
from cardiobench.encoders import build_encoder
from cardiobench.io import MediaError
from cardiobench.manifest import Manifest
from cardiobench.job import generate_phantom
from cardiobench.preprocessing import prepare
from cardiobench.results import load_results, write_result

from helpers import CATALOGUE

# the package exports a function named `extract`, which hides the submodule of that name
cache_mod = importlib.import_module("cardiobench.embed.cache")
extract_mod = importlib.import_module("cardiobench.embed.extract")
README = Path(__file__).resolve().parents[1] / "README.md"
ENC_ARGS = {"n_frames": 4, "size": 8}
SHARD = 4
PER_SPLIT = {"train": 10, "val": 3, "test": 3}


def _encoder(**over: Any):
    return build_encoder("pixels", **{**ENC_ARGS, **over})


@pytest.fixture(scope="module")
def phantom(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A 16-sample slice of the tiny EchoNet-Dynamic phantom and its clean embeddings."""
    base = tmp_path_factory.mktemp("faults_cache")
    roots = generate_phantom(base / "raw", scale="tiny", layouts=["echonet_dynamic"])
    full = prepare(CATALOGUE.dataset("echonet_dynamic"), roots["echonet_dynamic"])
    table = pd.concat([full.table[full.table["split"] == s].sort_values("sample_id").head(n)
                       for s, n in PER_SPLIT.items()]).reset_index(drop=True)
    manifest = Manifest(full.dataset, table, root=full.root)
    clean_cache = base / "clean_cache"
    extract(manifest, _encoder(), clean_cache, shard_size=SHARD, num_workers=0, progress=False)
    clean = EmbeddingCache(clean_cache, manifest.dataset, _encoder().fingerprint()).load()
    assert len(clean) == len(table) and clean.failures.empty
    return {"root": Path(full.root), "table": table, "clean": clean, "clean_cache": clean_cache}


@dataclass
class Ctx:
    """One row's private copy of the videos, manifest and (optionally) the clean cache."""

    tmp: Path
    manifest: Manifest
    cache: Path
    clean: Embeddings
    monkeypatch: pytest.MonkeyPatch
    capsys: pytest.CaptureFixture[str]
    notes: list[str] = field(default_factory=list)

    def file(self, sid: str) -> Path:
        row = self.manifest.table.set_index("sample_id").loc[sid]
        return Path(self.manifest.root) / str(row["path"])

    def ids(self, split: str | None = None) -> list[str]:
        t = self.manifest.table
        return sorted((t if split is None else t[t["split"] == split])["sample_id"].astype(str))

    def cache_dir(self) -> EmbeddingCache:
        return EmbeddingCache(self.cache, self.manifest.dataset, _encoder().fingerprint())

    def embed(self, **kw: Any):
        return extract(self.manifest, _encoder(), self.cache, num_workers=0, progress=False,
                       **{"shard_size": SHARD, **kw})

    def load(self, **kw: Any) -> Embeddings:
        return load_or_extract(self.manifest, _encoder(), self.cache, num_workers=0,
                               progress=False, **kw)


@dataclass
class Outcome:
    """What a row observed: the final embeddings, and every message it saw (logs, errors)."""

    emb: Embeddings
    message: str = ""
    exit_code: int | None = None
    #: what the intact vectors must equal when not the clean run's (a row that changes bytes)
    reference: Embeddings | None = None


# -- the faults -----------------------------------------------------------------------------------
def _failed_then_repaired(c: Ctx) -> Outcome:
    sid = c.ids("train")[0]
    good = c.file(sid).read_bytes()
    c.file(sid).write_bytes(b"RIFF\x00\x00\x00\x00AVI garbage")
    first = c.embed()
    assert first.n_failed == 1 and first.failures["sample_id"].tolist() == [sid]
    again = c.embed()  # nothing changed: the failure is remembered, nothing recomputed
    assert again.computed_shards == [] and again.n_failed == 1 and again.retried == []
    c.file(sid).write_bytes(good)
    fixed = c.embed()
    # the repaired file holds other bytes than the failed one: its signature (content hash)
    # changed, so only its shard is computed again
    assert fixed.retried == [sid] and fixed.n_failed == 0 and len(fixed.computed_shards) == 1
    # only the repaired sample was embedded again; the rest of its shard was taken as stored
    assert fixed.reused_samples == SHARD - 1
    assert fixed.frames_encoded == ENC_ARGS["n_frames"]
    return Outcome(c.cache_dir().load(), f"retried {fixed.retried}")


def _truncated_video(c: Ctx) -> Outcome:
    sid = c.ids("train")[1]
    data = c.file(sid).read_bytes()
    c.file(sid).write_bytes(data[:len(data) // 3])  # header promises 32 frames
    rep = c.embed()
    return Outcome(c.cache_dir().load(), " ".join(rep.failures["reason"]))


def _manifest_promises_more_frames(c: Ctx) -> Outcome:
    sid = c.ids("val")[0]
    t = c.manifest.table.copy()
    t.loc[t["sample_id"] == sid, "n_frames"] = 90  # the file holds 32
    c.manifest = Manifest(c.manifest.dataset, t, root=c.manifest.root)
    rep = c.embed()
    return Outcome(c.cache_dir().load(), " ".join(rep.failures["reason"]))


def _decoder_noise(c: Ctx) -> Outcome:
    sid = c.ids("train")[2]
    noise = "[mjpeg @ 0x55d1] error y=3 x=7\n[avi @ 0x55d2] stream 0, offset 0x6400: partial file"
    real = extract_mod.read_frames

    def noisy(path: Any, idx: Any = None) -> np.ndarray:
        if Path(path) == c.file(sid):
            raise MediaError(path, f"decoder output: {noise}")
        return real(path, idx)

    c.monkeypatch.setattr(extract_mod, "read_frames", noisy)
    c.embed()
    failures = pd.read_csv(c.cache_dir().failures_path, dtype=str, keep_default_na=False)
    assert failures["reason"].tolist() == [f"MediaError: cannot read {c.file(sid)}: "
                                           f"decoder output: {noise}"]
    return Outcome(c.cache_dir().load(), failures["reason"].iat[0])


def _corrupt_shard(how: str) -> Callable[[Ctx], Outcome]:
    def run(c: Ctx) -> Outcome:
        shard = c.cache_dir().shard_path(1, SHARD)
        data = bytearray(shard.read_bytes())
        if how == "bit flip":
            data[len(data) // 2] ^= 0x10
            shard.write_bytes(bytes(data))
        elif how == "truncated":
            shard.write_bytes(bytes(data[:len(data) // 2]))
        elif how == "deleted":
            shard.unlink()
        elif how == "no checksum":
            cache_mod.checksum_path(shard).unlink()
        emb = c.load()
        after = c.cache_dir()
        assert after.is_complete() and shard.exists() and cache_mod.shard_damage(shard) is None
        return Outcome(emb, "\n".join(c.notes))
    return run


def _corrupt_after_check(c: Ctx) -> Outcome:
    """A shard damaged between the validity check and the read: named at load, recomputed."""
    shard = c.cache_dir().shard_path(2, SHARD)
    real = extract_mod.cache_is_current

    def check_then_flip(*a: Any, **kw: Any) -> bool:
        ok = real(*a, **kw)
        if ok and shard.exists() and not getattr(check_then_flip, "done", False):
            check_then_flip.done = True  # type: ignore[attr-defined]
            data = bytearray(shard.read_bytes())
            data[-100] ^= 0x01
            shard.write_bytes(bytes(data))
        return ok

    c.monkeypatch.setattr(extract_mod, "cache_is_current", check_then_flip)
    return Outcome(c.load(), "\n".join(c.notes))


def _shard_size_changed(c: Ctx) -> Outcome:
    c.embed(shard_size=3)  # `embed --shard-size 3`
    before = sorted(p.name for p in c.cache_dir().shard_files())
    calls: list[int] = []
    c.monkeypatch.setattr(extract_mod.SampledFrames, "__getitem__",
                          lambda self, i: calls.append(i))  # any decode would record here
    c.load()  # evaluate/run: default shard size
    assert calls == [] and sorted(p.name for p in c.cache_dir().shard_files()) == before
    rep = c.embed(shard_size=5)  # an explicit new size re-packs, never re-embeds
    assert calls == [] and rep.frames_encoded == 0 and rep.reused_samples == len(c.ids())
    names = sorted(p.name for p in c.cache_dir().shard_files())
    assert names == [f"shard-s5-{k:05d}.npz" for k in range(4)], "no stale shards left"
    assert all(n.startswith("shard-s5-") for n in os.listdir(c.cache_dir().shard_dir))
    assert c.cache_dir().read_meta()["shard_size"] == 5
    return Outcome(c.cache_dir().load(), f"reused {rep.reused_samples}")


def _disk_full(c: Ctx) -> Outcome:
    real = cache_mod._write_bytes

    def full_on_shard_2(path: Path, data: bytes) -> None:
        if ".shard-s4-00002.npz." in path.name:
            path.write_bytes(data[:len(data) // 2])  # a partial write, then the disk is full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(path, data)

    c.monkeypatch.setattr(cache_mod, "_write_bytes", full_on_shard_2)
    with pytest.raises(OSError) as err:
        c.embed()
    cache = c.cache_dir()
    assert err.value.errno == errno.ENOSPC and not cache.is_complete()
    left = sorted(os.listdir(cache.shard_dir))
    assert left == ["shard-s4-00000.npz", "shard-s4-00000.npz.sha256",
                    "shard-s4-00001.npz", "shard-s4-00001.npz.sha256"], left
    c.monkeypatch.setattr(cache_mod, "_write_bytes", real)
    rep = c.embed()
    assert rep.skipped_shards == [0, 1] and rep.computed_shards == [2, 3] and rep.finalized
    return Outcome(cache.load(), str(err.value))


def _umask(mask: int, mode: int) -> Callable[[Ctx], Outcome]:
    def run(c: Ctx) -> Outcome:
        old = os.umask(mask)
        try:
            c.embed()
            emb = c.cache_dir().load()
            from cardiobench.protocols.evaluate import evaluate

            res = evaluate(CATALOGUE.task("echonet_dynamic/ef"), "linear_probe", c.manifest, emb, _encoder(),
                           config={"n_boot": 20})
            written = write_result(res, c.tmp / "results")
        finally:
            os.umask(old)
        cache = c.cache_dir()
        outputs = [cache.meta_path, cache.index_path, cache.failures_path, written,
                   written.with_name(written.stem + ".predictions.csv"), *cache.shard_files(),
                   *cache.shard_dir.glob("*.sha256")]
        modes = {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in outputs}
        assert set(modes.values()) == {oct(mode)}, modes
        return Outcome(emb, f"modes {sorted(set(modes.values()))}")
    return run


def _two_configs(c: Ctx) -> Outcome:
    from cardiobench.protocols.evaluate import evaluate

    results = c.tmp / "results"
    keys = []
    for over in ({}, {"size": 16}):
        enc = _encoder(**over)
        emb = load_or_extract(c.manifest, enc, c.cache, num_workers=0, progress=False)
        res = evaluate(CATALOGUE.task("echonet_dynamic/ef"), "linear_probe", c.manifest, emb, enc,
                       config={"n_boot": 20})
        write_result(res, results)
        keys.append(res.encoder_key)
    files = sorted(p.name for p in results.rglob("*.json"))
    assert files == sorted(f"{k}.json" for k in keys) and keys[0] != keys[1]
    loaded = load_results(results, with_predictions=True)
    assert sorted(r.encoder_key for r in loaded) == sorted(keys)
    assert all(r.encoder_name == "pixels" and r.predictions is not None for r in loaded)
    # readers: compare by key works; by the shared display name it is refused, naming both keys
    assert main(["compare", keys[0], keys[1], "--results", str(results)]) == 0
    assert main(["compare", "pixels", keys[1], "--results", str(results)]) == 2
    err = c.capsys.readouterr().err
    assert keys[0] in err and keys[1] in err
    return Outcome(c.cache_dir().load(), f"{files}")


def _whole_test_split_failed(c: Ctx) -> Outcome:
    for sid in c.ids("test"):
        c.file(sid).write_bytes(b"")
    path = c.tmp / "m" / "echonet_dynamic.csv"
    c.manifest.write(path)
    code = main(["embed", "--encoder", "pixels", "--encoder-arg", "n_frames=4",
                 "--encoder-arg", "size=8", "--manifest", str(path), "--cache", str(c.cache),
                 "--shard-size", str(SHARD), "--workers", "0"])
    out = c.capsys.readouterr()
    return Outcome(c.cache_dir().load(), out.out + out.err, exit_code=code)


def _completeness_in_result(c: Ctx) -> Outcome:
    from cardiobench.protocols.evaluate import evaluate

    test = c.ids("test")
    c.file(test[0]).write_bytes(b"")
    c.file(c.ids("train")[3]).unlink()
    emb = c.load(shard_size=SHARD)
    res = evaluate(CATALOGUE.task("echonet_dynamic/ef"), "linear_probe", c.manifest, emb, _encoder(),
                   config={"n_boot": 20})
    dc = write_result(res, c.tmp / "results")
    got = json.loads(dc.read_text())["extras"]["data_completeness"]
    assert got == {"excluded_by_prepare": {}, "embed_failed": {"test": 1, "train": 1},
                   "test_units_expected": 3, "test_units_scored": 2}
    assert res.n == 2
    return Outcome(emb, json.dumps(got))


EMBED = ["--encoder", "pixels", "--encoder-arg", "n_frames=4", "--encoder-arg", "size=8",
         "--workers", "0", "--shard-size", str(SHARD)]


def _prepared(c: Ctx) -> Path:
    """The row's download as a user has it (FileList listing exactly its videos), prepared
    with the command line."""
    root = Path(c.manifest.root)
    fl = pd.read_csv(root / "FileList.csv", dtype=str, keep_default_na=False)
    fl[fl["FileName"].isin(c.ids())].to_csv(root / "FileList.csv", index=False)
    csv = c.tmp / "m" / "echonet_dynamic.csv"
    assert main(["prepare", "echonet_dynamic", "--raw", str(root), "--out", str(csv)]) == 0
    return csv


def _embed_cli(csv: Path, cache: Path) -> str:
    assert main(["embed", *EMBED, "--manifest", str(csv), "--cache", str(cache)]) == 0
    return ""


def _ef_mae(csv: Path, cache: Path) -> float:
    """The EF linear-probe test MAE of ``csv`` on the finished cache ``cache``."""
    from cardiobench.protocols.evaluate import evaluate

    m = Manifest.read(csv)
    emb = EmbeddingCache(cache, m.dataset, _encoder().fingerprint()).load()
    res = evaluate(CATALOGUE.task("echonet_dynamic/ef"), "linear_probe", m, emb, _encoder(), config={"n_boot": 20})
    return float(res.metrics["mae"]["value"])


def _swap_bytes(files: list[Path]) -> None:
    """Other bytes under the same names, same frame count: each file takes the next's bytes."""
    data = [f.read_bytes() for f in files]
    for i, f in enumerate(files):
        f.write_bytes(data[(i + 1) % len(files)])


def _redownloaded_and_prepared(c: Ctx) -> Outcome:
    """Issue 19.1: every video overwritten with other bytes, prepare rerun, embed + evaluate."""
    csv = _prepared(c)
    _embed_cli(csv, c.cache)
    before = _ef_mae(csv, c.cache)
    _swap_bytes([c.file(s) for s in c.ids()])
    assert main(["prepare", "echonet_dynamic", "--raw", c.manifest.root, "--out", str(csv)]) == 0
    _embed_cli(csv, c.cache)
    after = _ef_mae(csv, c.cache)
    fresh_cache = c.tmp / "fresh"
    _embed_cli(csv, fresh_cache)
    fresh = _ef_mae(csv, fresh_cache)
    assert after == fresh and after != before, (before, after, fresh)
    fresh_emb = EmbeddingCache(fresh_cache, "echonet_dynamic", _encoder().fingerprint()).load()
    ids = c.ids()  # the new bytes really are other pictures for every sample
    assert all(not np.array_equal(fresh_emb.clip[i], c.clean.clip[j])
               for i, j in zip(fresh_emb.align(ids), c.clean.align(ids)))
    return Outcome(c.cache_dir().load(), f"MAE {before:.2f} -> {after:.2f} = fresh {fresh:.2f}",
                   reference=fresh_emb)


def _changed_without_prepare(c: Ctx) -> Outcome:
    """Two videos swapped after prepare: only they are embedded again, and it is said."""
    csv = _prepared(c)
    _embed_cli(csv, c.cache)
    swapped = [c.file(s) for s in c.ids("train")[:2]]
    _swap_bytes(swapped)
    rep = extract(Manifest.read(csv), _encoder(), c.cache, num_workers=0, progress=False)
    assert sorted(ch.sample_id for ch in rep.media_changed) == c.ids("train")[:2]
    # exactly those two are embedded again; every other sample comes from the cache
    assert rep.frames_encoded == 2 * ENC_ARGS["n_frames"] and rep.n_failed == 0
    meta = c.cache_dir().read_meta()
    assert sorted(x["path"] for x in meta["media_changed_since_prepare"]) == sorted(
        map(str, swapped))
    code = main(["embed", *EMBED, "--manifest", str(csv), "--cache", str(c.cache)])
    printed = c.capsys.readouterr().out
    assert code == 0
    fresh_cache = c.tmp / "fresh"
    _embed_cli(csv, fresh_cache)
    fresh = EmbeddingCache(fresh_cache, "echonet_dynamic", _encoder().fingerprint()).load()
    return Outcome(c.cache_dir().load(), printed, reference=fresh)


def _download_copied(c: Ctx) -> Outcome:
    """The download copied to another disk (new inodes and times, same bytes), read there."""
    copy = c.tmp / "copy"
    shutil.copytree(c.manifest.root, copy)
    path = c.tmp / "m" / "echonet_dynamic.csv"
    c.manifest.write(path)
    moved = Manifest.read(path, root=copy)
    rep = extract(moved, _encoder(), c.cache, num_workers=0, progress=False)
    assert rep.media_changed == [] and rep.computed_shards == [] and rep.frames_encoded == 0
    return Outcome(c.cache_dir().load(), f"hashed {rep.media_hashed}, re-embedded "
                   f"{rep.frames_encoded // ENC_ARGS['n_frames']}")


def _bug_while_decoding(c: Ctx) -> Outcome:
    """A programming error inside decoding surfaces; no sample is recorded as failed."""
    def broken(frames: Any) -> Any:
        raise TypeError("to_tensor() got an unexpected keyword argument (a bug)")

    c.monkeypatch.setattr(extract_mod, "to_tensor", broken)
    with pytest.raises(TypeError) as err:
        c.embed()
    assert c.cache_dir().shard_files() == [] and not c.cache_dir().is_complete()
    c.monkeypatch.undo()
    rep = c.embed()
    assert rep.n_failed == 0 and rep.finalized
    return Outcome(c.cache_dir().load(), f"{type(err.value).__name__}: {err.value}")


def _out_over_input(c: Ctx) -> Outcome:
    m = c.tmp / "m"
    path = m / "echonet_dynamic.csv"
    c.manifest.write(path)
    before = path.read_bytes(), path.with_suffix(".json").read_bytes()
    raw = str(Path(c.manifest.root))
    codes = [main(["prepare", "echonet_dynamic", "--raw", raw, "--out", str(m / "camus.json")]),
             main(["evaluate", "--encoder", "pixels", "--manifest", str(path),
                   "--results", str(path), "--cache", str(c.cache)]),
             main(["evaluate", "--encoder", "pixels", "--manifest", str(path),
                   "--results", str(c.tmp / "r"), "--cache", str(path.with_suffix(".json"))]),
             main(["prepare", "echonet_dynamic", "--raw", raw,
                   "--out", str(Path(raw) / "FileList.csv")])]
    err = c.capsys.readouterr().err
    assert codes == [2, 2, 2, 2], (codes, err)
    assert (path.read_bytes(), path.with_suffix(".json").read_bytes()) == before
    assert not (m / "camus.json").exists()
    return Outcome(c.cache_dir().load() if c.cache_dir().is_complete() else c.clean, err)


@dataclass(frozen=True)
class Fault:
    """One row of the table: the fault, the stage it bites, what cardiobench does, the checks."""

    fault: str
    stage: str
    does: str
    run: Callable[[Ctx], Outcome]
    failed: dict[str, str] = field(default_factory=dict)   # role → kind of the expected failure
    words: tuple[str, ...] = ()
    exit_code: int | None = None
    start_from_clean_cache: bool = False


FAULTS = [
    Fault("file unreadable, then repaired", "embed",
          "recorded as failed with the file's size and mtime; the rerun retries only that "
          "sample once the file changed", _failed_then_repaired, {}, ("retried",)),
    Fault("video truncated after its header", "embed",
          "failure `truncated` (never re-sampled from the frames that remain)",
          _truncated_video, {"train1": "truncated"}, ("promises 32",)),
    Fault("manifest promises more frames than the file holds", "embed",
          "failure `truncated`, naming both counts", _manifest_promises_more_frames,
          {"val0": "truncated"}, ("a file with 32 frames", "promises 90 frames")),
    Fault("decoder noise (FFmpeg)", "embed",
          "kept whole in the failure's reason in `failures.csv`", _decoder_noise,
          {"train2": "other"}, ("[mjpeg @", "partial file")),
    Fault("shard with a flipped bit", "evaluate / run", "shard named in a warning "
          "(checksum mismatch) and recomputed", _corrupt_shard("bit flip"), {},
          ("shard-s4-00001.npz", "checksum mismatch"), start_from_clean_cache=True),
    Fault("shard truncated", "evaluate / run", "shard named in a warning (checksum mismatch) "
          "and recomputed", _corrupt_shard("truncated"), {},
          ("shard-s4-00001.npz", "checksum mismatch"), start_from_clean_cache=True),
    Fault("shard deleted", "evaluate / run", "shard recomputed", _corrupt_shard("deleted"),
          {}, (), start_from_clean_cache=True),
    Fault("shard without its checksum file", "evaluate / run", "shard named, treated as "
          "unverified and recomputed", _corrupt_shard("no checksum"), {},
          ("shard-s4-00001.npz", "no checksum"), start_from_clean_cache=True),
    Fault("shard damaged after it was checked", "evaluate / run", "load names the shard "
          "(checksum recorded at finalize) and recomputes it", _corrupt_after_check, {},
          ("shard-s4-00002.npz", "checksum recorded at finalize"),
          start_from_clean_cache=True),
    Fault("`embed --shard-size 3`, then the default size", "evaluate / run",
          "the cache is reused as written; an explicit new size re-packs the stored vectors "
          "(nothing re-embedded, no stale shards left)", _shard_size_changed, {}, ("reused 16",)),
    Fault("disk full while writing a shard", "embed", "error naming the shard; no partial "
          "shard is taken as finished; the rerun completes", _disk_full, {},
          ("cannot write shard", "shard-s4-00002.npz", "embed again")),
    Fault("whole test split unreadable", "embed", "per-split failure summary; exit code 1",
          _whole_test_split_failed, {"test0": "empty", "test1": "empty", "test2": "empty"},
          ("failures per split", "3 of      3 failed", "all 3 test samples failed"),
          exit_code=1),
    Fault("samples that failed to embed", "evaluate", "result records "
          "`extras.data_completeness`: failures per split, test units expected vs scored",
          _completeness_in_result, {"test0": "empty", "train3": "missing"},
          ('"test_units_expected": 3', '"test_units_scored": 2')),
    Fault("umask 022", "all outputs", "files written 0644 (the umask is honoured, not 0600)",
          _umask(0o022, 0o644), {}, ("0o644",)),
    Fault("umask 027", "all outputs", "files written 0640", _umask(0o027, 0o640), {},
          ("0o640",)),
    Fault("two configurations of one encoder", "results", "two result files "
          "`<name>-<fingerprint[:8]>.json`; `compare` takes the key and refuses an ambiguous "
          "name", _two_configs, {}, ("pixels-",), start_from_clean_cache=True),
    Fault("output path over an input", "prepare / evaluate", "refused naming the input "
          "(a manifest, its sidecar, a file of the download); nothing written",
          _out_over_input, {}, ("would overwrite", "same name"), start_from_clean_cache=True),
    Fault("every video overwritten with other bytes (same names, same frame count), prepare "
          "rerun", "prepare / embed / evaluate", "each sample's cache signature holds the "
          "content hash recorded at prepare: every sample is embedded again and the EF MAE "
          "equals a fresh cache's", _redownloaded_and_prepared, {}, ("= fresh",)),
    Fault("two videos overwritten after prepare (prepare not rerun)", "embed", "the files are "
          "checked against the recorded size, times and hash: exactly those two samples are "
          "embedded again, named in a warning and in the cache's `meta.json`, with the advice "
          "to rerun prepare (their labels are the old ones)", _changed_without_prepare, {},
          ("2 file(s) changed since prepare", "rerun `cardiobench prepare`")),
    Fault("download copied elsewhere (new times and inodes, same bytes), read with `--raw`",
          "embed", "the files are hashed once, found unchanged, and nothing is embedded again",
          _download_copied, {}, ("hashed 16, re-embedded 0",), start_from_clean_cache=True),
    Fault("a programming error while decoding (e.g. a TypeError)", "embed", "raised as is; "
          "never recorded as per-sample failures (only media and I/O errors are)",
          _bug_while_decoding, {}, ("TypeError", "a bug")),
]


def _role(ctx: Ctx, role: str) -> str:
    split, i = re.fullmatch(r"([a-z]+)(\d+)", role).groups()  # type: ignore[union-attr]
    return ctx.ids(split)[int(i)]


@pytest.mark.parametrize("row", FAULTS, ids=[f"{f.stage}: {f.fault}" for f in FAULTS])
def test_fault(row: Fault, phantom: dict[str, Any], tmp_path: Path,
               monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
               caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "raw"
    table = phantom["table"]
    for rel in table["path"].astype(str):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(phantom["root"] / rel, root / rel)
    for side in phantom["root"].glob("*.csv"):
        shutil.copy2(side, root / side.name)
    cache = tmp_path / "cache"
    if row.start_from_clean_cache:
        shutil.copytree(phantom["clean_cache"], cache)
    ctx = Ctx(tmp_path, Manifest("echonet_dynamic", table.copy(), root=str(root)), cache,
              phantom["clean"], monkeypatch, capsys)
    caplog.set_level("WARNING")
    out = row.run(ctx)
    message = out.message + "\n" + caplog.text
    for word in row.words:
        assert word in message, f"{word!r} not in {message!r}"
    if row.exit_code is not None:
        assert out.exit_code == row.exit_code
    # the count of intact samples in the manifest equals the count embedded ...
    failed = {_role(ctx, r): kind for r, kind in row.failed.items()}
    assert dict(zip(out.emb.failures["sample_id"], out.emb.failures["kind"])) == failed
    assert sorted(out.emb.sample_ids.tolist()) == sorted(set(ctx.ids()) - set(failed))
    # ... and their numbers equal the clean run's, bit for bit
    clean = out.reference if out.reference is not None else ctx.clean
    pos = clean.align(out.emb.sample_ids)
    np.testing.assert_array_equal(out.emb.clip, clean.clip[pos])
    for i, j in enumerate(pos):
        np.testing.assert_array_equal(out.emb.frames[i], clean.frames[j])


def test_readme_table_matches_the_suite() -> None:
    """Each row of the suite appears in the README's fault table, in the suite's words."""
    text = README.read_text()
    for f in FAULTS:
        line = f"| {f.fault} | {f.stage} | {f.does} |"
        assert line in text, f"README lacks the row: {line}"
