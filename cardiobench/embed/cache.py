"""The embedding cache on disk: shards committed atomically with checksums, an index, failures.

Layout, for one dataset under one encoder fingerprint::

    <cache_root>/<dataset>/<fingerprint[:16]>/
        meta.json                    encoder description, sampling, shard plan hash and size,
                                     and (after finalize) every shard's SHA-256
        shards/shard-s64-00000.npz   one per plan shard: per sample its ID, signature (path,
                                     frame hints, content hash of the file), clip vector,
                                     frames+offsets and frame indices; failed samples with
                                     reason, kind and the file identity they failed on
        shards/shard-s64-00000.npz.sha256   the shard's SHA-256, written at commit
        index.csv                    (after finalize) sample_id, status (ok|failed), shard, kind,
                                     reason
        failures.csv                 (after finalize) sample_id, path, kind, reason

The *shard plan* is deterministic: the manifest's sample_ids sorted, cut into ``shard_size``
chunks. A shard file is valid only if its bytes match the checksum written when it was committed
and its stored plan hash equals the plan's, so a changed manifest never mixes old and new
samples and a damaged file (bit flip, truncation) is named and recomputed, never read.

The shard size is part of a shard's file name, not of the cache's identity: a plan of another
size takes every sample it can from the shards already on disk (matched by the sample's
signature), so changing ``--shard-size`` re-packs vectors instead of re-embedding them.

The module is longer than ~400 lines on purpose: it is the whole on-disk format (shard files,
checksums, meta, index, failures, finalize and load), kept in one place so that a reader of the
format never has to chase it across modules. One shard file -- its arrays, and its bytes checked
against the checksum beside it -- is read and written by the module's functions
(:func:`read_shard_file`, :func:`shard_damage`, ...); :class:`EmbeddingCache` is the folder.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from cardiobench.atomic import atomic_path, atomic_write_text
from cardiobench.hashing import sha256_file
from cardiobench.embed.embeddings import Embeddings

log = logging.getLogger(__name__)

CACHE_VERSION = 2
#: the manifest columns in a sample's signature (see :meth:`ShardPlan.from_table`)
SIGNATURE_COLUMNS = ("path", "key_frame", "n_frames", "fps", "media_hash")
DEFAULT_SHARD_SIZE = 64
_SHARD_NAME = re.compile(r"^shard-s(\d+)-(\d{5})\.npz$")
_LEGACY_NAME = re.compile(r"^shard-(\d{5})\.npz$")  # cache version 1, no checksums


_WARNED: set[str] = set()  # damaged shards already named in this process (one line each)


def _warn_damaged(path: Path, problem: str, what: str) -> None:
    key = f"{path}|{problem}"
    if key not in _WARNED:
        _WARNED.add(key)
        log.warning("shard %s is damaged (%s); %s will be recomputed", path, problem, what)


class CacheCorruptError(RuntimeError):
    """A cache file does not match the checksum recorded when it was written."""


@dataclass(frozen=True)
class ShardPlan:
    """Deterministic assignment of sample_ids to shards."""

    shards: tuple[tuple[str, ...], ...]
    #: per shard, one signature per sample (ID + everything that decides its decoded frames)
    signatures: tuple[tuple[str, ...], ...] = ()
    size: int = DEFAULT_SHARD_SIZE

    @classmethod
    def from_table(cls, table: pd.DataFrame, shard_size: int) -> "ShardPlan":
        """Sort the manifest rows by sample_id and cut them into chunks of ``shard_size``.

        A row's signature covers what decides the decoded frames: which file (``path``), which
        frames (``key_frame``, ``n_frames``, ``fps``) and the file's bytes (``media_hash``, the
        content hash of :mod:`cardiobench.io.identity`; :func:`cardiobench.embed.extract`
        passes the hash of the bytes on disk now). Editing any of them, or overwriting the file
        with other bytes, invalidates that sample, and only that sample is embedded again.
        """
        if shard_size < 1:
            raise ValueError("shard_size must be >= 1")
        t = table.assign(sample_id=table["sample_id"].astype(str)).sort_values("sample_id")
        parts = [t[c].astype("string") if c in t else pd.Series("", index=t.index, dtype="string")
                 for c in SIGNATURE_COLUMNS]
        sig = t["sample_id"].str.cat(parts, sep="|", na_rep="").tolist()
        ids = t["sample_id"].tolist()
        cut = range(0, len(ids), shard_size)
        return cls(tuple(tuple(ids[i:i + shard_size]) for i in cut),
                   tuple(tuple(sig[i:i + shard_size]) for i in cut), shard_size)

    def __len__(self) -> int:
        return len(self.shards)

    def shard_signatures(self, k: int) -> tuple[str, ...]:
        """The signatures of shard ``k``'s samples (their IDs for a plan built without them)."""
        return self.signatures[k] if self.signatures else self.shards[k]

    def shard_hash(self, k: int) -> str:
        """SHA-256 of shard ``k``'s IDs (stored in the shard file to validate it on resume)."""
        return hashlib.sha256("\n".join(self.shard_signatures(k)).encode()).hexdigest()

    def plan_hash(self) -> str:
        """SHA-256 of the whole plan (independent of the shard size: the samples' signatures)."""
        rows = [s for k in range(len(self)) for s in self.shard_signatures(k)]
        return hashlib.sha256("\n".join(rows).encode()).hexdigest()


@dataclass
class ShardData:
    """The content of one shard: embeddings of the samples that decoded, failures of the rest.

    ``failed_identity`` holds, per failed sample, the identity (size and mtime) of its file when
    it failed, so a rerun retries exactly the samples whose file has since changed.
    """

    sample_ids: list[str]
    clip: np.ndarray                  # (n, Dc) float16
    frames: list[np.ndarray] | None   # per sample (T_i, D) float16, image encoders only
    frame_indices: list[np.ndarray]   # per sample, the decoded frame indices
    failed_ids: list[str]
    failed_reasons: list[str]
    signatures: list[str] = field(default_factory=list)
    failed_signatures: list[str] = field(default_factory=list)
    failed_kinds: list[str] = field(default_factory=list)
    failed_identity: list[str] = field(default_factory=list)


@dataclass
class SampleRecord:
    """One sample's entry in a shard: its embeddings, or why it failed."""

    sample_id: str
    signature: str
    clip: np.ndarray | None = None
    frames: np.ndarray | None = None
    indices: np.ndarray | None = None
    reason: str = ""
    kind: str = ""
    identity: str = ""

    @property
    def ok(self) -> bool:
        """True for an embedded sample, False for a failure."""
        return self.clip is not None


def file_identity(path: str | Path) -> str:
    """``"<size>:<mtime_ns>"`` of a file, ``"absent"`` if it cannot be stat'ed."""
    try:
        st = os.stat(path)
    except OSError:
        return "absent"
    return f"{st.st_size}:{st.st_mtime_ns}"


def _write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` (one place, so tests can simulate a full disk)."""
    with open(path, "wb") as fh:
        fh.write(data)


# -- one shard file: its arrays, and its bytes checked against the checksum beside it ----------

def checksum_path(shard: Path) -> Path:
    """The file holding ``shard``'s SHA-256, written when the shard was committed."""
    return shard.with_name(shard.name + ".sha256")


def shard_damage(path: Path) -> str | None:
    """Why the bytes of the shard file ``path`` (which exists) cannot be trusted, or None when
    its checksum file exists and the SHA-256 matches."""
    expected_file = checksum_path(path)
    if not expected_file.exists():
        return "no checksum recorded (written by an older cardiobench or torn)"
    expected = expected_file.read_text().strip()
    actual = sha256_file(path)
    if actual != expected:
        return f"checksum mismatch (SHA-256 {actual[:12]}…, recorded {expected[:12]}…)"
    return None


def trusted_shard(path: Path) -> bool:
    """True when the shard file ``path`` exists and its bytes match its checksum; a damaged
    file is named in a warning (its samples will be recomputed)."""
    if not path.exists():
        return False
    damage = shard_damage(path)
    if damage is not None:
        _warn_damaged(path, damage, "its samples")
    return damage is None


def _shard_bytes(plan_hash: str, data: ShardData) -> bytes:
    """The ``.npz`` bytes of a shard (the layout :func:`read_shard_file` reads)."""
    arrays: dict[str, np.ndarray] = {
        "plan_hash": np.array(plan_hash),
        "sample_ids": np.array(data.sample_ids, dtype=str),
        "signatures": np.array(data.signatures, dtype=str),
        "clip": np.asarray(data.clip, dtype=np.float16),
        "idx_offsets": _offsets([len(i) for i in data.frame_indices]),
        "frame_indices": (np.concatenate(data.frame_indices).astype(np.int64)
                          if data.frame_indices else np.zeros(0, np.int64)),
        "failed_ids": np.array(data.failed_ids, dtype=str),
        "failed_signatures": np.array(data.failed_signatures, dtype=str),
        "failed_reasons": np.array(data.failed_reasons, dtype=str),
        "failed_kinds": np.array(data.failed_kinds, dtype=str),
        "failed_identity": np.array(data.failed_identity, dtype=str),
    }
    if data.frames is not None:
        arrays["frame_offsets"] = _offsets([len(f) for f in data.frames])
        arrays["frames"] = (np.concatenate(data.frames).astype(np.float16) if data.frames
                            else np.zeros((0, 0), np.float16))
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def read_shard_file(path: Path) -> ShardData:
    """Load one shard file (a shard written before signatures, kinds or identities were
    recorded reads them as empty, ``other`` and empty)."""
    with np.load(path, allow_pickle=False) as z:
        idx = _split(z["frame_indices"], z["idx_offsets"])
        frames = _split(z["frames"], z["frame_offsets"]) if "frames" in z else None
        names = set(z.files)
        n_failed = len(z["failed_ids"])

        def strings(key: str, n: int, default: str = "") -> list[str]:
            return [str(s) for s in z[key]] if key in names else [default] * n

        ids = [str(s) for s in z["sample_ids"]]
        return ShardData(sample_ids=ids, clip=z["clip"], frames=frames, frame_indices=idx,
                         failed_ids=[str(s) for s in z["failed_ids"]],
                         failed_reasons=[str(s) for s in z["failed_reasons"]],
                         signatures=strings("signatures", len(ids)),
                         failed_signatures=strings("failed_signatures", n_failed),
                         failed_kinds=strings("failed_kinds", n_failed, "other"),
                         failed_identity=strings("failed_identity", n_failed))


def read_shard_signatures(path: Path) -> tuple[list[str], set[str]]:
    """``(signatures, failed IDs)`` of a shard file: the signature of every sample it holds
    (embedded, then failed) and the IDs of its failed samples, read without any vector."""
    with np.load(path, allow_pickle=False) as z:
        sigs = [str(x) for key in ("signatures", "failed_signatures") if key in z
                for x in z[key]]
        return sigs, {str(x) for x in z["failed_ids"]}


def read_failed_identities(path: Path) -> list[tuple[str, str]]:
    """``(sample_id, identity of its file when it failed)`` per failed sample of a shard file
    (an empty identity where the shard predates them)."""
    with np.load(path, allow_pickle=False) as z:
        ids = [str(s) for s in z["failed_ids"]]
        ident = ([str(s) for s in z["failed_identity"]] if "failed_identity" in z
                 else [""] * len(ids))
    return list(zip(ids, ident))


def read_shard_records(path: Path) -> dict[str, SampleRecord]:
    """Per-sample records of a shard file the caller has verified, keyed by signature; an
    unreadable file (named in a warning) and a file without signatures (an older cache) give
    none."""
    try:
        data = read_shard_file(path)
    except Exception as exc:
        log.warning("shard %s unreadable (%s); its samples will be recomputed", path, exc)
        return {}
    out: dict[str, SampleRecord] = {}
    for i, (sid, sig) in enumerate(zip(data.sample_ids, data.signatures)):
        if sig:
            out[sig] = SampleRecord(
                sid, sig, clip=data.clip[i],
                frames=data.frames[i] if data.frames is not None else None,
                indices=data.frame_indices[i])
    for sid, sig, reason, kind, ident in zip(data.failed_ids, data.failed_signatures,
                                             data.failed_reasons, data.failed_kinds,
                                             data.failed_identity):
        if sig:
            out[sig] = SampleRecord(sid, sig, reason=reason, kind=kind, identity=ident)
    return out


# -- the cache folder -----------------------------------------------------------------------

class EmbeddingCache:
    """One (dataset, encoder fingerprint) folder of the embedding cache (the shard files in it
    are read and checked by the functions above)."""

    def __init__(self, cache_root: str | Path, dataset: str, fingerprint: str):
        from cardiobench.manifest import DATASET_NAME

        # the dataset names a folder under cache_root: a path in it would write elsewhere
        if not DATASET_NAME.fullmatch(str(dataset)):
            raise ValueError(f"dataset name {dataset!r} is not a name (letters, digits and _ "
                             "only); refusing to use it as a cache folder")
        self.dataset = dataset
        self.fingerprint = fingerprint
        self.dir = Path(cache_root) / dataset / fingerprint[:16]
        self.shard_dir = self.dir / "shards"

    # -- paths ---------------------------------------------------------------------------------
    def shard_path(self, k: int, size: int | ShardPlan = DEFAULT_SHARD_SIZE) -> Path:
        """File of shard ``k`` of a plan with shards of ``size`` samples."""
        size = size.size if isinstance(size, ShardPlan) else int(size)
        return self.shard_dir / f"shard-s{size}-{k:05d}.npz"

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
        old = self.read_meta()
        if old and old.get("fingerprint") != self.fingerprint:
            raise RuntimeError(f"{self.dir} holds fingerprint {old.get('fingerprint')}, "
                               f"not {self.fingerprint}")
        payload = {"cache_version": CACHE_VERSION, "dataset": self.dataset,
                   "fingerprint": self.fingerprint, **meta}
        atomic_write_text(self.meta_path, json.dumps(payload, indent=2, default=str))

    def read_meta(self) -> dict[str, Any]:
        """meta.json as a dict (empty if absent or unreadable, which makes the cache incomplete)."""
        if not self.meta_path.exists():
            return {}
        try:
            meta = json.loads(self.meta_path.read_text())
        except (OSError, ValueError) as exc:
            log.warning("%s is unreadable (%s); the cache will be rebuilt", self.meta_path, exc)
            return {}
        return meta if isinstance(meta, dict) else {}

    def shard_size(self) -> int | None:
        """The shard size the cache was last planned with (None for a new cache)."""
        size = self.read_meta().get("shard_size")
        return int(size) if size else None

    # -- shards --------------------------------------------------------------------------------
    def shard_is_valid(self, k: int, plan: ShardPlan) -> bool:
        """True if shard ``k`` exists, is intact, and was computed for this plan's samples.

        A damaged shard is named in a warning (it will be recomputed); a merely absent one is not.
        """
        path = self.shard_path(k, plan)
        if not path.exists():  # not computed yet: nothing to name
            return False
        damage = shard_damage(path)
        if damage is not None:
            _warn_damaged(path, damage, "it")
            return False
        try:
            with np.load(path, allow_pickle=False) as z:
                return str(z["plan_hash"]) == plan.shard_hash(k)
        except Exception as exc:  # intact bytes but a foreign layout: recompute it
            log.warning("shard %s unreadable (%s); it will be recomputed", path, exc)
            return False

    def write_shard(self, k: int, plan: ShardPlan, data: ShardData) -> Path:
        """Commit shard ``k`` atomically; its checksum file is written before the rename.

        A crash or a full disk at any point leaves either the previous state or the complete new
        shard with a matching checksum: a half-written file never carries a valid checksum.
        """
        payload = _shard_bytes(plan.shard_hash(k), data)
        final = self.shard_path(k, plan)
        # drop the old checksum first: a crash after it leaves the old shard "unverified", so it
        # is recomputed rather than trusted against a checksum of bytes it does not hold
        checksum_path(final).unlink(missing_ok=True)
        try:
            with atomic_path(final) as tmp:
                _write_bytes(tmp, payload)
                atomic_write_text(checksum_path(final), hashlib.sha256(payload).hexdigest())
        except OSError as exc:
            checksum_path(final).unlink(missing_ok=True)
            raise OSError(exc.errno, f"cannot write shard {final}: {exc.strerror or exc}; "
                          "finished shards are kept, free space (or fix the folder) and run "
                          "embed again") from exc
        return final

    def shard_files(self) -> list[Path]:
        """Every committed shard file in the folder, of any shard size."""
        if not self.shard_dir.exists():
            return []
        return sorted(p for p in self.shard_dir.iterdir() if _SHARD_NAME.match(p.name))

    # -- finalize / load -----------------------------------------------------------------------
    def finalize(self, plan: ShardPlan, paths: dict[str, str] | None = None) -> pd.DataFrame:
        """Check every plan shard is present and valid, then write index.csv and failures.csv,
        record every shard's checksum in meta.json and remove shards of other plans."""
        missing = [k for k in range(len(plan)) if not self.shard_is_valid(k, plan)]
        if missing:
            raise RuntimeError(f"cannot finalize {self.dir}: shards {missing[:10]} "
                               f"({len(missing)} in all) are missing or stale; run embed again")
        rows = []
        checksums = {}
        for k in range(len(plan)):
            path = self.shard_path(k, plan)
            shard = read_shard_file(path)
            checksums[path.name] = checksum_path(path).read_text().strip()
            got = set(shard.sample_ids) | set(shard.failed_ids)
            if got != set(plan.shards[k]):
                raise RuntimeError(f"shard {path} does not cover its planned samples")
            rows += [{"sample_id": s, "status": "ok", "shard": k, "kind": "", "reason": ""}
                     for s in shard.sample_ids]
            rows += [{"sample_id": s, "status": "failed", "shard": k, "kind": kind, "reason": r}
                     for s, r, kind in zip(shard.failed_ids, shard.failed_reasons,
                                           shard.failed_kinds)]
        index = pd.DataFrame(rows, columns=["sample_id", "status", "shard", "kind", "reason"])
        failures = index[index["status"] == "failed"][["sample_id", "kind", "reason"]].copy()
        failures.insert(1, "path", failures["sample_id"].map(paths or {}).fillna(""))
        atomic_write_text(self.index_path, index.to_csv(index=False))
        atomic_write_text(self.failures_path, failures.to_csv(index=False))
        meta = self.read_meta()
        meta.update({"complete": True, "n_ok": int((index["status"] == "ok").sum()),
                     "n_failed": int(len(failures)), "shard_size": plan.size,
                     "n_shards": len(plan), "shard_sha256": checksums})
        self.write_meta({k: v for k, v in meta.items()
                         if k not in ("cache_version", "dataset", "fingerprint")})
        self.remove_stale(plan)
        return index

    def remove_stale(self, plan: ShardPlan) -> list[Path]:
        """Delete shard files (and checksums, and torn temporaries) that ``plan`` does not use."""
        keep = {self.shard_path(k, plan).name for k in range(len(plan))}
        gone = [p for p in self.shard_files() if p.name not in keep]
        for p in gone:
            p.unlink(missing_ok=True)
        if self.shard_dir.exists():
            for p in self.shard_dir.iterdir():
                orphan = p.name.endswith(".sha256") and p.name[:-len(".sha256")] not in keep
                torn = p.name.startswith(".") and p.name.endswith(".tmp")
                if orphan or torn or _LEGACY_NAME.match(p.name):
                    p.unlink(missing_ok=True)
        if gone:
            log.info("%s: removed %d shard file(s) of an earlier plan", self.dir, len(gone))
        return gone

    def is_complete(self) -> bool:
        """True once finalize has run."""
        return bool(self.read_meta().get("complete")) and self.index_path.exists()

    def load(self) -> Embeddings:
        """All embeddings of a finalized cache, in sample_id order.

        Every shard is checked against the SHA-256 recorded at finalize; a mismatch raises
        :class:`CacheCorruptError` naming the shard (``load_or_extract`` recomputes it).
        """
        if not self.is_complete():
            raise FileNotFoundError(f"embedding cache {self.dir} is not complete; run embed first")
        meta = self.read_meta()
        ids: list[str] = []
        clips: list[np.ndarray] = []
        frames: list[np.ndarray] | None = [] if meta.get("has_frames") else None
        if not self.failures_path.is_file():
            raise CacheCorruptError(
                f"{self.failures_path} of a finalized cache is missing (the record of the "
                "samples that failed to embed); run `cardiobench embed` with the same encoder "
                "options to write it again (finished shards are reused)")
        failures = pd.read_csv(self.failures_path, dtype=str, keep_default_na=False)
        size = int(meta.get("shard_size") or DEFAULT_SHARD_SIZE)
        recorded = meta.get("shard_sha256") or {}
        for k in range(int(meta["n_shards"])):
            path = self.shard_path(k, size)
            if not path.exists():
                raise CacheCorruptError(f"shard {path} of a finalized cache is missing")
            actual = sha256_file(path)
            if recorded.get(path.name) != actual:
                raise CacheCorruptError(f"shard {path} does not match the checksum recorded at "
                                        f"finalize (SHA-256 {actual[:12]}…)")
            shard = read_shard_file(path)
            ids += shard.sample_ids
            if len(shard.sample_ids):
                clips.append(shard.clip.astype(np.float32))
            if frames is not None and shard.frames is not None:
                frames += [f.astype(np.float32) for f in shard.frames]
        clip_dim = int(meta.get("clip_dim", 0))
        clip = np.concatenate(clips) if clips else np.zeros((0, clip_dim), np.float32)
        if "kind" not in failures:
            failures["kind"] = "other"
        return Embeddings(sample_ids=np.array(ids, dtype=str), clip=clip, frames=frames,
                          encoder=meta.get("encoder", {}), fingerprint=self.fingerprint,
                          failures=failures[["sample_id", "kind", "reason"]])


def _offsets(lengths: Sequence[int]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)


def _split(flat: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
    return [flat[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]
