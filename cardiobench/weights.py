"""Offline-first resolution of model weights, and safe loading of checkpoints.

Weights are looked up, in order, in: an explicit local file or folder the user passes; the Hugging
Face cache (``HF_HUB_CACHE`` or ``HF_HOME/hub``, ``models--ORG--NAME/refs/<rev>`` →
``snapshots/<commit>/``), read the way ``HF_HUB_OFFLINE=1`` reads it; the torch.hub checkpoint
folder (``$TORCH_HOME/hub/checkpoints``). Nothing here opens a network connection. When a file is
absent, :class:`WeightsNotFound` says which file, where to download it from, and where to put it.

Checkpoints are read with safetensors or ``torch.load(weights_only=True)`` only: a pickle that
needs arbitrary code is refused.
"""

from __future__ import annotations

import logging
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch

log = logging.getLogger(__name__)

_COMMIT = re.compile(r"^[0-9a-f]{40}$")


class WeightsNotFound(FileNotFoundError):
    """A weights/config file is not on disk; the message says what to download and where."""


def hf_hub_cache() -> Path:
    """The Hugging Face hub cache folder, read from the environment now (not at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "huggingface" / "hub"


def torch_hub_dir() -> Path:
    """``$TORCH_HOME/hub`` (default ``~/.cache/torch/hub``), read from the environment now."""
    if os.environ.get("TORCH_HOME"):
        return Path(os.environ["TORCH_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "torch" / "hub"


def hf_repo_dir(repo_id: str, cache: Path | None = None) -> Path:
    """``<cache>/models--ORG--NAME`` for a model repo id ``ORG/NAME``."""
    return (cache or hf_hub_cache()) / ("models--" + repo_id.strip("/").replace("/", "--"))


#: the weights file each published repo actually ships, where a loader accepts several names
#: (the 2023 open_clip exports have only the .bin; SigLIP 2 and timm repos are fetched as safetensors)
HUB_WEIGHTS_SHIPPED = {
    "mkaichristensen/echo-clip": "open_clip_pytorch_model.bin",
    "mkaichristensen/echo-clip-r": "open_clip_pytorch_model.bin",
    "microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224": "open_clip_pytorch_model.bin",
    "timm/ViT-B-16-SigLIP2": "open_clip_model.safetensors",
    "timm/vit_small_patch16_dinov3.lvd1689m": "model.safetensors",
}


def shipped_file(repo_id: str, any_of: Sequence[str]) -> str:
    """The one of ``any_of`` that ``repo_id`` ships: known repos from the table, else the first
    (preferred) name."""
    known = HUB_WEIGHTS_SHIPPED.get(repo_id.strip("/"))
    return known if known in any_of else any_of[0]


def _download_hint(repo_id: str, files: Sequence[str], cache: Path) -> str:
    quoted = " ".join(files)
    return (f"download them on a machine with internet: `HF_HOME={cache.parent} huggingface-cli download "
            f"{repo_id} {quoted}` (or `hf download ...`), from https://huggingface.co/{repo_id}/tree/main, "
            f"and copy the cache folder {hf_repo_dir(repo_id, cache)} here; or pass --weights DIR, a "
            "folder holding those files")


def hf_snapshot(repo_id: str, files: Sequence[str] = (), *, any_of: Sequence[str] = (),
                revision: str = "main", cache: Path | None = None, what: str = "") -> Path:
    """The cached snapshot folder of ``repo_id`` holding every file in ``files``.

    ``any_of``: at least one of these must be present too (e.g. safetensors or .bin). The
    snapshot is reached through ``refs/<revision>`` as huggingface_hub does offline; a 40-hex
    ``revision`` names the snapshot directly. Raises :class:`WeightsNotFound` naming the missing
    files, the Hub URL and the cache path.
    """
    cache = cache or hf_hub_cache()
    repo = hf_repo_dir(repo_id, cache)
    label = f"{what} " if what else ""
    wanted = list(files) + ([" or ".join(any_of)] if any_of else [])
    fetch = list(files) + ([shipped_file(repo_id, any_of)] if any_of else [])
    if _COMMIT.match(revision):
        commit = revision
    else:
        ref = repo / "refs" / revision
        if not ref.is_file():
            raise WeightsNotFound(
                f"{label}files of {repo_id!r} are not in the Hugging Face cache: {ref} does not exist "
                f"(cache {cache}; set HF_HOME or HF_HUB_CACHE if it lives elsewhere). Needed files: "
                f"{', '.join(wanted)}; {_download_hint(repo_id, fetch, cache)}")
        commit = ref.read_text().strip()
    snap = repo / "snapshots" / commit
    missing = [f for f in files if not (snap / f).is_file()]
    any_of_missing = bool(any_of) and not any((snap / f).is_file() for f in any_of)
    if any_of_missing:
        missing.append(" or ".join(any_of))
    if missing:
        raise WeightsNotFound(
            f"{label}cache snapshot {snap} of {repo_id!r} lacks {', '.join(missing)}; "
            f"{_download_hint(repo_id, [f for f in files if f in missing] + ([shipped_file(repo_id, any_of)] if any_of and any_of_missing else []), cache)}")
    return snap


def torch_hub_checkpoint(filename: str, url: str, *, what: str = "") -> Path:
    """``$TORCH_HOME/hub/checkpoints/<filename>``, as ``load_state_dict_from_url`` caches ``url``."""
    path = torch_hub_dir() / "checkpoints" / filename
    if not path.is_file():
        raise WeightsNotFound(
            f"{what + ' ' if what else ''}checkpoint {filename} not found at {path}; download {url} "
            f"and put it there (or set TORCH_HOME), or pass --weights PATH to the file")
    return path


def local_file(path: str | Path, *, what: str = "", hint: str = "") -> Path:
    """An explicit user-given file, checked to exist."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise WeightsNotFound(f"{what + ' ' if what else ''}weights file {p} does not exist"
                              + (f"; {hint}" if hint else ""))
    return p


def load_checkpoint(path: str | Path) -> Any:
    """Read a checkpoint safely: safetensors, or a torch pickle with ``weights_only=True``."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # an unsafe or corrupt pickle: say which file
        raise ValueError(f"cannot read checkpoint {path} with weights_only=True: {exc}") from exc


@contextmanager
def hf_offline(cache: Path | None = None) -> Iterator[Path]:
    """Run Hugging Face loaders against ``cache`` with ``HF_HUB_OFFLINE=1`` semantics.

    huggingface_hub reads ``HF_HUB_OFFLINE`` and the cache path once, at import; loaders
    (huggingface_hub, transformers, open_clip) consult the module constants at call time, so we
    set those for the duration and restore them after. Nothing inside may open a connection.
    """
    from huggingface_hub import constants

    cache = cache or hf_hub_cache()
    saved = (constants.HF_HUB_OFFLINE, constants.HF_HUB_CACHE)
    constants.HF_HUB_OFFLINE = True
    constants.HF_HUB_CACHE = str(cache)
    try:
        yield cache
    finally:
        constants.HF_HUB_OFFLINE, constants.HF_HUB_CACHE = saved
