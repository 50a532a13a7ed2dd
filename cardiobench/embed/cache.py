"""The embedding cache on disk: shards committed atomically, an index, a failures table.

Layout, for one dataset under one encoder fingerprint::

    <cache_root>/<dataset>/<fingerprint[:16]>/
        meta.json              encoder description, sampling, shard plan hash, shard count
        shards/shard-00000.npz one per plan shard: sample_ids, clip, frames+offsets, frame indices,
                               failed ids and reasons, and the shard's plan hash
        index.csv              (after finalize) sample_id, status (ok|failed), shard, reason
        failures.csv           (after finalize) sample_id, path, reason

The *shard plan* is deterministic: the manifest's sample_ids sorted, cut into ``shard_size``
chunks. A shard file is valid only if its stored plan hash equals the plan's, so a changed
manifest never mixes old and new samples. Shards are written with a temp name + rename, so a
killed run leaves either a complete shard or none; a resumed run skips every valid shard.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from cardiobench.atomic import atomic_path, atomic_write_text
from cardiobench.embed.embeddings import Embeddings

log = logging.getLogger(__name__)

CACHE_VERSION = 1


@dataclass(frozen=True)
class ShardPlan:
    """Deterministic assignment of sample_ids to shards."""

    shards: tuple[tuple[str, ...], ...]
    #: per shard, one signature per sample (ID + everything that decides its decoded frames)
    signatures: tuple[tuple[str, ...], ...] = ()

    @classmethod
    def from_table(cls, table: pd.DataFrame, shard_size: int) -> "ShardPlan":
        """Sort the manifest rows by sample_id and cut them into chunks of ``shard_size``.

        A row's signature covers the columns that decide which frames are decoded (path,
        key_frame, n_frames, fps), so editing any of them invalidates that shard.
        """
        if shard_size < 1:
            raise ValueError("shard_size must be >= 1")
        t = table.assign(sample_id=table["sample_id"].astype(str)).sort_values("sample_id")
        parts = [t[c].astype("string") if c in t else pd.Series("", index=t.index, dtype="string")
                 for c in ("path", "key_frame", "n_frames", "fps")]
        sig = t["sample_id"].str.cat(parts, sep="|", na_rep="").tolist()
        ids = t["sample_id"].tolist()
        cut = range(0, len(ids), shard_size)
        return cls(tuple(tuple(ids[i:i + shard_size]) for i in cut),
                   tuple(tuple(sig[i:i + shard_size]) for i in cut))

    def __len__(self) -> int:
        return len(self.shards)

    def shard_hash(self, k: int) -> str:
        """SHA-256 of shard ``k``'s IDs (stored in the shard file to validate it on resume)."""
        rows = self.signatures[k] if self.signatures else self.shards[k]
        return hashlib.sha256("\n".join(rows).encode()).hexdigest()

    def plan_hash(self) -> str:
        """SHA-256 of the whole plan."""
        return hashlib.sha256("|".join(self.shard_hash(k) for k in range(len(self))).encode()).hexdigest()


@dataclass
class ShardData:
    """The content of one shard: embeddings of the samples that decoded, failures of the rest."""

    sample_ids: list[str]
    clip: np.ndarray                  # (n, Dc) float16
    frames: list[np.ndarray] | None   # per sample (T_i, D) float16, image encoders only
    frame_indices: list[np.ndarray]   # per sample, the decoded frame indices
    failed_ids: list[str]
    failed_reasons: list[str]


class EmbeddingCache:
    """One (dataset, encoder fingerprint) folder of the embedding cache."""

    def __init__(self, cache_root: str | Path, dataset: str, fingerprint: str):
        self.dataset = dataset
        self.fingerprint = fingerprint
        self.dir = Path(cache_root) / dataset / fingerprint[:16]
        self.shard_dir = self.dir / "shards"

    # -- paths ---------------------------------------------------------------------------------
    def shard_path(self, k: int) -> Path:
        """File of shard ``k``."""
        return self.shard_dir / f"shard-{k:05d}.npz"

    @property
    def meta_path(self) -> Path:
        return self.dir / "meta.json"

    @property
    def index_path(self) -> Path:
        return self.dir / "index.csv"

    @property
    def failures_path(self) -> Path:
        return self.dir / "failures.csv"

    # -- meta ----------------------------------------------------------------------------------
    def write_meta(self, meta: dict[str, Any]) -> None:
        """Write meta.json (atomically); refuses to overwrite a cache of another fingerprint."""
        if self.meta_path.exists():
            old = json.loads(self.meta_path.read_text())
            if old.get("fingerprint") != self.fingerprint:
                raise RuntimeError(f"{self.dir} holds fingerprint {old.get('fingerprint')}, "
                                   f"not {self.fingerprint}")
        payload = {"cache_version": CACHE_VERSION, "dataset": self.dataset,
                   "fingerprint": self.fingerprint, **meta}
        atomic_write_text(self.meta_path, json.dumps(payload, indent=2, default=str))

    def read_meta(self) -> dict[str, Any]:
        """meta.json as a dict (empty if absent)."""
        return json.loads(self.meta_path.read_text()) if self.meta_path.exists() else {}

    # -- shards --------------------------------------------------------------------------------
    def shard_is_valid(self, k: int, plan: ShardPlan) -> bool:
        """True if shard ``k`` exists, reads, and was computed for this plan's IDs."""
        path = self.shard_path(k)
        if not path.exists():
            return False
        try:
            with np.load(path, allow_pickle=False) as z:
                return str(z["plan_hash"]) == plan.shard_hash(k)
        except Exception as exc:  # a torn or foreign file: recompute it
            log.warning("shard %s unreadable (%s); it will be recomputed", path, exc)
            return False

    def write_shard(self, k: int, plan: ShardPlan, data: ShardData) -> Path:
        """Commit shard ``k`` atomically."""
        arrays: dict[str, np.ndarray] = {
            "plan_hash": np.array(plan.shard_hash(k)),
            "sample_ids": np.array(data.sample_ids, dtype=str),
            "clip": np.asarray(data.clip, dtype=np.float16),
            "idx_offsets": _offsets([len(i) for i in data.frame_indices]),
            "frame_indices": (np.concatenate(data.frame_indices).astype(np.int64)
                              if data.frame_indices else np.zeros(0, np.int64)),
            "failed_ids": np.array(data.failed_ids, dtype=str),
            "failed_reasons": np.array(data.failed_reasons, dtype=str),
        }
        if data.frames is not None:
            arrays["frame_offsets"] = _offsets([len(f) for f in data.frames])
            arrays["frames"] = (np.concatenate(data.frames).astype(np.float16) if data.frames
                                else np.zeros((0, 0), np.float16))
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        with atomic_path(self.shard_path(k)) as tmp:
            tmp.write_bytes(buf.getvalue())
        return self.shard_path(k)

    def read_shard(self, k: int) -> ShardData:
        """Load shard ``k``."""
        with np.load(self.shard_path(k), allow_pickle=False) as z:
            idx = _split(z["frame_indices"], z["idx_offsets"])
            frames = _split(z["frames"], z["frame_offsets"]) if "frames" in z else None
            return ShardData(sample_ids=[str(s) for s in z["sample_ids"]], clip=z["clip"],
                             frames=frames, frame_indices=idx,
                             failed_ids=[str(s) for s in z["failed_ids"]],
                             failed_reasons=[str(s) for s in z["failed_reasons"]])

    # -- finalize / load -----------------------------------------------------------------------
    def finalize(self, plan: ShardPlan, paths: dict[str, str] | None = None) -> pd.DataFrame:
        """Check every plan shard is present and valid, then write index.csv and failures.csv."""
        missing = [k for k in range(len(plan)) if not self.shard_is_valid(k, plan)]
        if missing:
            raise RuntimeError(f"cannot finalize {self.dir}: shards {missing[:10]} "
                               f"({len(missing)} in all) are missing or stale; run embed again")
        rows = []
        for k in range(len(plan)):
            shard = self.read_shard(k)
            got = set(shard.sample_ids) | set(shard.failed_ids)
            if got != set(plan.shards[k]):
                raise RuntimeError(f"shard {k} of {self.dir} does not cover its planned samples")
            rows += [{"sample_id": s, "status": "ok", "shard": k, "reason": ""}
                     for s in shard.sample_ids]
            rows += [{"sample_id": s, "status": "failed", "shard": k, "reason": r}
                     for s, r in zip(shard.failed_ids, shard.failed_reasons)]
        index = pd.DataFrame(rows, columns=["sample_id", "status", "shard", "reason"])
        failures = index[index["status"] == "failed"][["sample_id", "reason"]].copy()
        failures.insert(1, "path", failures["sample_id"].map(paths or {}).fillna(""))
        atomic_write_text(self.index_path, index.to_csv(index=False))
        atomic_write_text(self.failures_path, failures.to_csv(index=False))
        meta = self.read_meta()
        meta.update({"complete": True, "n_ok": int((index["status"] == "ok").sum()),
                     "n_failed": int(len(failures))})
        self.write_meta({k: v for k, v in meta.items()
                         if k not in ("cache_version", "dataset", "fingerprint")})
        return index

    def is_complete(self) -> bool:
        """True once finalize has run."""
        return bool(self.read_meta().get("complete")) and self.index_path.exists()

    def load(self) -> Embeddings:
        """All embeddings of a finalized cache, in sample_id order."""
        if not self.is_complete():
            raise FileNotFoundError(f"embedding cache {self.dir} is not complete; run embed first")
        meta = self.read_meta()
        ids: list[str] = []
        clips: list[np.ndarray] = []
        frames: list[np.ndarray] | None = [] if meta.get("has_frames") else None
        failures = pd.read_csv(self.failures_path, dtype=str, keep_default_na=False)
        for k in range(int(meta["n_shards"])):
            shard = self.read_shard(k)
            ids += shard.sample_ids
            if len(shard.sample_ids):
                clips.append(shard.clip.astype(np.float32))
            if frames is not None and shard.frames is not None:
                frames += [f.astype(np.float32) for f in shard.frames]
        clip_dim = int(meta.get("clip_dim", 0))
        clip = np.concatenate(clips) if clips else np.zeros((0, clip_dim), np.float32)
        return Embeddings(sample_ids=np.array(ids, dtype=str), clip=clip, frames=frames,
                          encoder=meta.get("encoder", {}), fingerprint=self.fingerprint,
                          failures=failures[["sample_id", "reason"]])


def _offsets(lengths: Sequence[int]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)


def _split(flat: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
    return [flat[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]
