"""Files in the Hugging Face cache layout a user has offline, for the encoder tests (a helper module: no tests here)."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import torch


def write_hf_repo(cache: Path, repo_id: str, files: dict[str, bytes], *,
                  no_exist: tuple[str, ...] = (), commit: str | None = None) -> Path:
    """Write ``files`` as huggingface_hub does: blobs named by etag, snapshot symlinks,
    ``refs/main`` (no newline) and empty ``.no_exist/<commit>/<file>`` markers. Returns the snapshot."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    commit = commit or hashlib.sha1(repo_id.encode()).hexdigest()
    snap = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    snap.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        etag = hashlib.sha256(data).hexdigest()
        (repo / "blobs" / etag).write_bytes(data)
        link = snap / name
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        os.symlink(os.path.relpath(repo / "blobs" / etag, link.parent), link)
    for name in no_exist:
        marker = repo / ".no_exist" / commit / name
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_bytes(b"")
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snap


def state_dict_bytes(obj: object) -> bytes:
    """``torch.save`` to bytes (the plain pickle format of ``.bin`` / ``.pt`` checkpoints)."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def write_template_files(folder: Path, phrases: list[str]) -> Path:
    """EchoCLIP-R's two tokenizer files in ``folder``, written by the test itself: a blank
    WordPiece tokenizer (the five specials only) and a template vocabulary of ``phrases``."""
    from tokenizers import Tokenizer, models

    specials = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]
    tok = Tokenizer(models.WordPiece({t: i for i, t in enumerate(specials)}, unk_token="[UNK]",
                                     max_input_chars_per_word=500))
    tok.add_special_tokens(specials)
    tok.save(str(folder / "blank_wordpiece.tokenizer"))
    (folder / "template_vocab.txt").write_text("\n".join(phrases))
    return folder
