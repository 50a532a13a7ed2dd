"""Extraction cache: resume equals an uninterrupted run, failures recorded, sharding merges."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from cardiobench.embed import (EmbeddingCache, ExtractOptions, extract, finalize_cache,
                               load_or_extract)
from cardiobench.embed.cache import read_shard_file
from cardiobench.encoders import build_encoder
from cardiobench.encoders.base import Encoder, InputSpec
from cardiobench.io import write_video
from cardiobench.manifest import Manifest
from cardiobench.transforms import SamplingPolicy

from helpers import CATALOGUE

N_VIDEOS = 10


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    """Ten small AVIs with distinct moving content, plus one corrupt file."""
    root = tmp_path_factory.mktemp("raw")
    rng = np.random.default_rng(0)
    rows = []
    yy, xx = np.mgrid[0:48, 0:48]
    for i in range(N_VIDEOS):
        frames = []
        for t in range(12):
            r = 6 + 4 * np.sin(2 * np.pi * t / 12 + i) + i % 3
            disk = ((yy - 24) ** 2 + (xx - 24) ** 2) < r ** 2
            img = (disk * 200 + rng.integers(0, 30, (48, 48))).astype(np.uint8)
            frames.append(img)
        write_video(root / f"v{i:02d}.avi", np.stack(frames), fps=25)
        rows.append({"sample_id": f"v{i:02d}", "patient_id": f"p{i}", "split": "train",
                     "path": f"v{i:02d}.avi", "ef": 50.0 + i})
    (root / "broken.avi").write_bytes(b"RIFF not really a video")
    rows.append({"sample_id": "broken", "patient_id": "pb", "split": "test",
                 "path": "broken.avi", "ef": 40.0})
    return Manifest("toy", pd.DataFrame(rows), root=str(root))


def _load(cache_root: Path, manifest: Manifest, encoder: Encoder):
    return EmbeddingCache(cache_root, manifest.dataset, encoder.fingerprint()).load()


def _assert_same(a, b) -> None:
    assert a.sample_ids.tolist() == b.sample_ids.tolist()
    np.testing.assert_array_equal(a.clip, b.clip)
    if a.frames is not None:
        for fa, fb in zip(a.frames, b.frames):
            np.testing.assert_array_equal(fa, fb)


def test_full_run_records_failures(toy: Manifest, tmp_path: Path) -> None:
    enc = build_encoder("pixels", n_frames=6)
    rep = extract(toy, enc, tmp_path, shard_size=3, num_workers=0, progress=False)
    assert rep.finalized and rep.computed_shards == [0, 1, 2, 3] and rep.n_failed == 1
    emb = _load(tmp_path, toy, enc)
    assert len(emb) == N_VIDEOS and emb.clip.shape == (N_VIDEOS, 2 * 16 * 16)
    assert all(f.shape == (6, 256) for f in emb.frames)
    failures = pd.read_csv(rep.cache_dir / "failures.csv")
    assert failures["sample_id"].tolist() == ["broken"]
    assert "broken.avi" in failures["path"].iat[0] and failures["reason"].iat[0]
    index = pd.read_csv(rep.cache_dir / "index.csv")
    assert (index["status"] == "ok").sum() == N_VIDEOS
    # clip vector is the encoder's pooling of exactly the stored frame embeddings
    f0 = torch.from_numpy(emb.frames[0])
    np.testing.assert_allclose(emb.clip[0], enc.pool_frames(f0).numpy(), atol=2e-3)


@pytest.mark.parametrize("threads", [0, 2])
def test_resume_after_injected_failure_equals_uninterrupted(toy: Manifest, tmp_path: Path,
                                                            threads: int) -> None:
    """Also with decoding threads running ahead across shard boundaries: a crash at a shard's
    commit leaves exactly the committed shards, and the resumed cache equals a clean one."""
    enc = build_encoder("pixels", n_frames=6)
    ref_root, run_root = tmp_path / "ref", tmp_path / "run"
    extract(toy, enc, ref_root, shard_size=3, num_workers=0, progress=False)

    def crash_after_two(k: int) -> None:
        if k == 1:
            raise RuntimeError("injected crash")

    with pytest.raises(RuntimeError, match="injected"):
        extract(toy, enc, run_root, shard_size=3, num_workers=threads, progress=False,
                on_shard=crash_after_two)
    cache = EmbeddingCache(run_root, toy.dataset, enc.fingerprint())
    assert not cache.is_complete()
    assert sorted(p.name for p in cache.shard_dir.glob("*.npz")) == [
        "shard-s3-00000.npz", "shard-s3-00001.npz"]
    assert not list(cache.shard_dir.glob("*.tmp")), "no half-written shard may remain"
    rep = extract(toy, enc, run_root, shard_size=3, num_workers=threads, progress=False)
    assert rep.skipped_shards == [0, 1] and rep.computed_shards == [2, 3]
    _assert_same(_load(ref_root, toy, enc), _load(run_root, toy, enc))


def test_decoding_threads_give_the_same_bytes_as_the_main_thread(toy: Manifest,
                                                                 tmp_path: Path) -> None:
    enc = build_encoder("pixels", n_frames=6)
    torch_threads = torch.get_num_threads()
    extract(toy, enc, tmp_path / "a", shard_size=4, num_workers=0, progress=False)
    extract(toy, enc, tmp_path / "b", shard_size=4, num_workers=3, batch_size=3, progress=False)
    assert torch.get_num_threads() == torch_threads, "the caller's torch threads are restored"
    _assert_same(_load(tmp_path / "a", toy, enc), _load(tmp_path / "b", toy, enc))
    for a in sorted((tmp_path / "a").rglob("shard-*.npz")):
        b = tmp_path / "b" / a.relative_to(tmp_path / "a")
        assert a.read_bytes() == b.read_bytes(), a.name


def test_options_object_and_keywords_are_one_interface(toy: Manifest, tmp_path: Path) -> None:
    """``extract(..., ExtractOptions(...))`` runs as the same keywords do; a keyword overrides
    the object's field, and an unknown keyword is refused."""
    enc = build_encoder("pixels", n_frames=6)
    by_keywords = extract(toy, enc, tmp_path / "a", shard_size=4, num_workers=0, progress=False)
    by_object = extract(toy, enc, tmp_path / "b",
                        ExtractOptions(shard_size=7, num_workers=0, progress=False), shard_size=4)
    assert (by_object.computed_shards, by_object.n_failed) == ([0, 1, 2], 1)
    assert (by_keywords.computed_shards, by_keywords.n_failed) == ([0, 1, 2], 1)
    shards = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("shard-*"))
    assert [p.name for p in shards] == [f"shard-s4-0000{k}.npz{x}" for k in range(3)
                                        for x in ("", ".sha256")]
    for rel in shards:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
    with pytest.raises(TypeError, match="shardsize"):
        extract(toy, enc, tmp_path / "c", shardsize=4)


def test_edited_row_invalidates_only_its_shard(toy: Manifest, tmp_path: Path) -> None:
    enc = build_encoder("pixels", n_frames=6)
    extract(toy, enc, tmp_path, shard_size=3, num_workers=0, progress=False)
    edited = Manifest(toy.dataset, toy.table.assign(
        key_frame=[np.nan] * 4 + [2.0] + [np.nan] * (len(toy) - 5)), root=toy.root)
    rep = extract(edited, enc, tmp_path, shard_size=3, num_workers=0, progress=False)
    # v04 sorts into shard 1 (broken, v00, v01 | v02, v03, v04 | ...)
    assert rep.computed_shards == [1] and rep.skipped_shards == [0, 2, 3]


def test_job_array_shards_with_a_killed_rank_merge_to_the_same_cache(toy: Manifest,
                                                                     tmp_path: Path) -> None:
    enc = build_encoder("pixels", n_frames=6)
    extract(toy, enc, tmp_path / "one", shard_size=2, num_workers=0, progress=False)
    split_root = tmp_path / "split"

    def die(k: int) -> None:
        raise RuntimeError("rank killed")

    with pytest.raises(RuntimeError):  # rank 0 dies after its first shard
        extract(toy, enc, split_root, shard_size=2, shard=(0, 2), num_workers=0,
                progress=False, on_shard=die)
    r1 = extract(toy, enc, split_root, shard_size=2, shard=(1, 2), num_workers=0, progress=False)
    assert r1.computed_shards == [1, 3, 5] and not r1.finalized
    r0 = extract(toy, enc, split_root, shard_size=2, shard=(0, 2), num_workers=0, progress=False)
    assert r0.skipped_shards == [0] and r0.computed_shards == [2, 4] and r0.finalized
    _assert_same(_load(tmp_path / "one", toy, enc), _load(split_root, toy, enc))


def test_finalize_refuses_missing_shards(toy: Manifest, tmp_path: Path) -> None:
    enc = build_encoder("pixels", n_frames=6)
    extract(toy, enc, tmp_path, shard_size=3, shard=(0, 2), num_workers=0, progress=False)
    with pytest.raises(RuntimeError, match="missing or stale"):
        finalize_cache(toy, enc, tmp_path, shard_size=3)


class TinyVideoEncoder(Encoder):
    """A video encoder for tests: mean over time and space of a fixed random projection."""

    def __init__(self) -> None:
        self.name = "tiny-video"
        self.spec = InputSpec(kind="video", resolution=16, crop="none", mean=(0.5,) * 3,
                              std=(0.5,) * 3,
                              sampling=SamplingPolicy("consecutive", n_frames=4, stride=2))
        self.embed_dim = 8
        gen = torch.Generator().manual_seed(0)
        self.proj = torch.randn(3 * 16 * 16, 8, generator=gen)

    def encode_clips(self, clips: torch.Tensor) -> torch.Tensor:
        b, t = clips.shape[:2]
        z = clips.reshape(b, t, -1) @ self.proj
        return torch.nn.functional.normalize(z.mean(1), dim=-1)


def test_video_encoder_stores_clip_vectors_only(toy: Manifest, tmp_path: Path) -> None:
    enc = TinyVideoEncoder()
    emb = load_or_extract(toy, enc, tmp_path, shard_size=4, num_workers=0, progress=False)
    assert emb.frames is None and emb.clip.shape == (N_VIDEOS, 8)
    np.testing.assert_allclose(np.linalg.norm(emb.clip, axis=1), 1.0, atol=2e-3)


@pytest.mark.slow
def test_torchrun_two_processes_equal_one(toy: Manifest, tmp_path: Path) -> None:
    # the corrupt file goes to train: `embed` exits 1 when every test sample failed
    splits = ["train"] * (N_VIDEOS - 1) + ["test", "train"]
    csv = Manifest(toy.dataset, toy.table.assign(split=splits), root=toy.root).write(
        tmp_path / "toy.csv")
    single, multi = tmp_path / "single", tmp_path / "multi"
    base = [sys.executable, "-m", "cardiobench.cli", "embed", "--encoder", "pixels",
            "--encoder-arg", "n_frames=6", "--manifest", str(csv), "--shard-size", "2",
            "--workers", "0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(base + ["--cache", str(single)], check=True, env=env, capture_output=True)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc_per_node", "2", "-m", "cardiobench.cli"] + base[3:]
    res = subprocess.run(torchrun + ["--cache", str(multi)], env=env, capture_output=True,
                         text=True, timeout=240)
    assert res.returncode == 0, res.stderr[-2000:]
    enc = build_encoder("pixels", n_frames=6)
    _assert_same(_load(single, toy, enc), _load(multi, toy, enc))


def test_a_rank_on_a_new_plan_never_leaves_the_old_cache_marked_complete(toy: Manifest,
                                                                          tmp_path: Path) -> None:
    enc = build_encoder("pixels", n_frames=6)
    first = load_or_extract(toy, enc, tmp_path, shard_size=2, num_workers=0, progress=False)
    edited = Manifest(toy.dataset, toy.table.assign(
        key_frame=[np.nan] * 3 + [2.0, 2.0] + [np.nan] * (len(toy) - 5)), root=toy.root)
    # only rank 1 runs on the edited manifest: it rewrites its shards for the new plan
    extract(edited, enc, tmp_path, shard_size=2, shard=(1, 2), num_workers=0, progress=False)
    cache = EmbeddingCache(tmp_path, toy.dataset, enc.fingerprint())
    assert not cache.is_complete()
    # asking for the original manifest again recomputes the shards that no longer match it
    again = load_or_extract(toy, enc, tmp_path, shard_size=2, num_workers=0, progress=False)
    _assert_same(first, again)


def test_frame_count_in_the_manifest_larger_than_the_file(toy: Manifest, tmp_path: Path) -> None:
    enc = build_encoder("pixels", n_frames=6)
    wrong = Manifest(toy.dataset, toy.table.assign(n_frames=30), root=toy.root)  # files hold 12
    emb = load_or_extract(wrong, enc, tmp_path, shard_size=4, num_workers=0, progress=False)
    # a file holding fewer frames than its row promises is a failure, never a re-sampled "ok"
    assert len(emb) == 0 and len(emb.failures) == N_VIDEOS + 1
    kinds = emb.failures.set_index("sample_id")["kind"]
    assert (kinds.drop("broken") == "truncated").all()
    reason = emb.failures.set_index("sample_id").at["v03", "reason"]
    assert "promises 30 frames" in reason and "a file with 12 frames" in reason, reason


def test_stills_are_one_frame_for_image_encoders_and_padded_for_video_ones(tmp_path: Path) -> None:
    from cardiobench.phantom.layouts import write_layout
    from cardiobench.preprocessing import prepare

    write_layout(CATALOGUE.layout("tmed2"), tmp_path / "raw", "tiny", seed=0)
    m = prepare(CATALOGUE.dataset("tmed2"), tmp_path / "raw")
    m = Manifest(m.dataset, m.table.head(12).copy(), m.root, m.split_rule, m.source)
    enc = build_encoder("pixels", n_frames=16)
    assert enc.spec.sampling.n_frames == 16 and enc.spec.sampling.pad == "repeat_last"
    emb = load_or_extract(m, enc, tmp_path / "c", shard_size=4, num_workers=0, progress=False)
    assert [f.shape[0] for f in emb.frames] == [1] * len(m)  # was 16 identical copies
    cache = EmbeddingCache(tmp_path / "c", m.dataset, enc.fingerprint())
    shard = read_shard_file(cache.shard_path(0, 4))
    assert [i.tolist() for i in shard.frame_indices] == [[0]] * len(shard.sample_ids)
    # the clip vector is what 16 copies gave: the pooled mean of one repeated frame embedding
    f = torch.from_numpy(emb.frames[0])
    np.testing.assert_allclose(emb.clip[0], enc.pool_frames(f.repeat(16, 1)).numpy(), atol=1e-6)
    # a video encoder that needs its T slots still gets them (documented repeat-last padding)
    seen: list[int] = []

    class Clips(TinyVideoEncoder):
        def encode_clips(self, clips: torch.Tensor) -> torch.Tensor:
            seen.extend([clips.shape[1]] * clips.shape[0])
            return super().encode_clips(clips)

    vid = Clips()
    load_or_extract(m, vid, tmp_path / "v", shard_size=4, num_workers=0, progress=False)
    assert seen == [vid.spec.sampling.n_frames] * len(m)
