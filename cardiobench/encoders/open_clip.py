"""open_clip encoders: a generic wrapper and the published CLIP-style echo/biomedical models.

Loading is open_clip's own: ``create_model`` from the checkpoint's ``open_clip_config.json`` (or a
built-in config), then ``open_clip.load_checkpoint(..., strict=True, weights_only=True)``, which
applies open_clip's key fixes (e.g. BiomedCLIP's stale ``position_ids``). The weights file is
resolved first by :mod:`cardiobench.weights` (local folder, HF cache via ``refs/main``), so a
missing file fails with a message naming it instead of silently building random weights (open_clip
only logs a warning in that case). Everything runs under ``HF_HUB_OFFLINE=1`` semantics.

Each checkpoint's text goes through its *own* tokenizer: open_clip's ``get_tokenizer`` on the same
id (CLIP BPE for EchoCLIP, BiomedBERT for BiomedCLIP, Gemma for SigLIP 2), or the template
tokenizer for EchoCLIP-R. There is no fallback between tokenizers.
"""

from __future__ import annotations

import json
import logging
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from cardiobench.encoders.base import CLIP_MEAN, CLIP_STD, InputSpec, ModelEncoder, seeded_init
from cardiobench.encoders.recipes import ECHOCLIP_AUTHORS, image_recipe
from cardiobench.encoders.registry import register_encoder
from cardiobench.hashing import sha256_files
from cardiobench.weights import (WeightsNotFound, hf_hub_cache, hf_offline, hf_repo_dir, hf_snapshot,
                                 local_file)

log = logging.getLogger(__name__)

CONFIG_FILE = "open_clip_config.json"
WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
HF_PREFIX = "hf-hub:"

ECHOCLIP_ID = "hf-hub:mkaichristensen/echo-clip"
ECHOCLIP_R_ID = "hf-hub:mkaichristensen/echo-clip-r"
BIOMEDCLIP_ID = "hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224"
SIGLIP2_ID = "hf-hub:timm/ViT-B-16-SigLIP2"

#: EchoCLIP's own recipe (kept under its old name for callers); see :mod:`cardiobench.encoders.recipes`
ECHOCLIP_SPEC = ECHOCLIP_AUTHORS


class _DropRandomInitWarning(logging.Filter):
    """Drops open_clip's "No pretrained weights loaded … initialized randomly" record."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not ("No pretrained weights loaded" in msg and "initialized randomly" in msg)


@contextmanager
def _quiet_random_init(weights_path: Path | None) -> Iterator[None]:
    """Silence open_clip's random-init warning when our loader loads ``weights_path`` right after.

    ``create_model(pretrained=None)`` logs it on the root logger although the checkpoint is
    loaded strictly a line later; a random control (no weights) keeps the warning.
    """
    if weights_path is None:
        yield
        return
    root, filt = logging.getLogger(), _DropRandomInitWarning()
    root.addFilter(filt)
    try:
        yield
    finally:
        root.removeFilter(filt)


def _weights_file(folder: Path) -> Path:
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    raise WeightsNotFound(f"{folder} holds no {' or '.join(WEIGHT_FILES)} (pass --weights DIR, a folder "
                          f"holding {CONFIG_FILE} and one of them)")


_VOCAB_FILES = ("tokenizer.json", "vocab.txt", "tokenizer.model")


def _check_text_repos(model_cfg: dict[str, Any], cache: Path, what: str) -> None:
    """Fail early when the text tower/tokenizer's own HF repo is not cached, naming *every* file
    each repo lacks in one message (BiomedCLIP's tower and tokenizer share one BiomedBERT repo)."""
    text = model_cfg.get("text_cfg", {})
    needs: dict[str, list[str]] = {}
    if text.get("hf_model_name"):
        # HFTextEncoder builds from AutoConfig(hf_model_name): needs that repo's config.json.
        needs.setdefault(text["hf_model_name"], []).append("config.json")
    tok = text.get("hf_tokenizer_name")
    if tok:
        # transformers 5 AutoTokenizer offline: tokenizer_config.json, a vocabulary, and config.json
        # or its .no_exist marker (tokenizer-only repos)
        needs.setdefault(tok, []).extend(["tokenizer_config.json", "tokenizer.json or vocab.txt",
                                          "config.json (or its .no_exist marker)"])
    for repo, files in needs.items():
        ref = hf_repo_dir(repo, cache) / "refs" / "main"
        snap = hf_repo_dir(repo, cache) / "snapshots" / ref.read_text().strip() if ref.is_file() else None
        marker = (hf_repo_dir(repo, cache) / ".no_exist" / snap.name / "config.json") if snap else None
        present = {
            "config.json": lambda: (snap / "config.json").is_file(),
            "tokenizer_config.json": lambda: (snap / "tokenizer_config.json").is_file(),
            "tokenizer.json or vocab.txt": lambda: any((snap / v).is_file() for v in _VOCAB_FILES),
            "config.json (or its .no_exist marker)":
                lambda: (snap / "config.json").is_file() or marker.is_file(),  # type: ignore[union-attr]
        }
        wanted = list(dict.fromkeys(files))
        if "config.json" in wanted:  # the tower needs the real file; the marker does not do
            wanted = [f for f in wanted if f != "config.json (or its .no_exist marker)"]
        missing = [f for f in wanted if snap is None or not present[f]()]
        if missing:
            where = f"cache snapshot {snap}" if snap is not None else f"the Hugging Face cache ({ref} does not exist)"
            fetch = [m.split(" ")[0] for m in missing]
            raise WeightsNotFound(
                f"{what} text tower/tokenizer repo {repo!r} is missing from {where}: lacks "
                f"{', '.join(missing)}; transformers needs them offline: download them from "
                f"https://huggingface.co/{repo}/tree/main into the HF cache (e.g. `HF_HOME={cache.parent} "
                f"huggingface-cli download {repo} {' '.join(dict.fromkeys(fetch))}`, or one online "
                "open_clip.get_tokenizer call)")


class OpenClipEncoder(ModelEncoder):
    """Any open_clip model as a per-frame image encoder with its own text tower.

    ``model``: an open_clip built-in name (``ViT-B-16-SigLIP2``), an ``hf-hub:ORG/NAME`` id, or
    ``local-dir:PATH``. ``pretrained``: a built-in tag (``webli``), a local checkpoint file, or
    None (random weights: labelled a control). ``weights``: a local folder holding
    ``open_clip_config.json`` + weights (overrides ``model``'s source) or a weights file.
    ``spec``: the InputSpec; by default derived from the checkpoint's preprocess config
    (size, mean/std, interpolation, ``shortest`` → center crop, ``squash`` → squash).
    ``tokenizer``: a callable replacing open_clip's ``get_tokenizer`` (EchoCLIP-R only).
    """

    def __init__(self, model: str = "ViT-B-32", pretrained: str | None = None, *,
                 weights: str | Path | None = None, name: str | None = None,
                 spec: InputSpec | None = None, spec_overrides: dict[str, Any] | None = None,
                 tokenizer: Callable[[list[str]], torch.Tensor] | None = None,
                 revision: str = "main", seed: int = 0, channels_last: bool | None = None,
                 device: str = "cpu") -> None:
        import open_clip

        self.model_name, self.pretrained = model, pretrained
        self.revision = revision
        self.weights_path: Path | None = None
        self.random = False
        cache = hf_hub_cache()
        with hf_offline(cache):
            source = model
            if weights is not None and Path(weights).expanduser().is_dir():
                folder = Path(weights).expanduser()
                local_file(folder / CONFIG_FILE, what=f"open_clip config of {folder}")
                self.weights_path = _weights_file(folder)
                source = f"local-dir:{folder}"
                self.model_cfg = json.loads((folder / CONFIG_FILE).read_text())["model_cfg"]
            elif model.startswith(HF_PREFIX):
                repo = model[len(HF_PREFIX):]
                snap = hf_snapshot(repo, [CONFIG_FILE], any_of=WEIGHT_FILES, revision=revision,
                                   cache=cache, what=name or repo)
                self.model_cfg = json.loads((snap / CONFIG_FILE).read_text()).get("model_cfg")
                if self.model_cfg is None:
                    raise ValueError(f"{snap / CONFIG_FILE} has no 'model_cfg' key (not an open_clip export)")
                self.weights_path = Path(weights) if weights is not None else _weights_file(snap)
                _check_text_repos(self.model_cfg, cache, name or repo)
                source = f"local-dir:{snap}" if revision != "main" else model
            else:
                self.model_cfg = open_clip.get_model_config(model)
                if self.model_cfg is None:
                    raise KeyError(f"open_clip has no built-in model {model!r} (or pass hf-hub:ID)")
                if weights is not None:
                    self.weights_path = local_file(weights, what=f"open_clip {model}")
                elif pretrained and Path(pretrained).expanduser().is_file():
                    self.weights_path = Path(pretrained).expanduser()
                elif pretrained:
                    self.weights_path = self._tag_file(open_clip, model, pretrained, cache)
                else:
                    self.random = True
                _check_text_repos(self.model_cfg, cache, name or model)
            # Weights are loaded below from the file resolved above; no tower may fetch its own
            # base weights (BiomedCLIP's BERT would otherwise ask for pytorch_model.bin). A
            # control's weights are a function of the seed alone (caller's RNG untouched).
            with seeded_init(seed if self.random else None), _quiet_random_init(self.weights_path):
                self.model = open_clip.create_model(source, pretrained=None, load_weights=False,
                                                    pretrained_image=False, pretrained_text=False)
            if self.weights_path is not None:
                open_clip.load_checkpoint(self.model, str(self.weights_path), strict=True,
                                          weights_only=True)
            self.tokenizer = tokenizer or open_clip.get_tokenizer(
                source if source.startswith("local-dir:") and weights is not None else model)
        self.model.eval().requires_grad_(False)
        self.seed = seed if self.random else None
        self._sha = sha256_files([self.weights_path]) if self.weights_path is not None else None
        self.name = name or (f"random-{model}" if self.random else model)
        self.embed_dim = int(self.model_cfg["embed_dim"])
        self.spec = spec if spec is not None else self._spec_from_checkpoint()
        if spec_overrides:
            self.spec = replace(self.spec, **spec_overrides)
        vision = self.model_cfg.get("vision_cfg", {})
        if channels_last is None:
            channels_last = "convnext" in str(vision.get("timm_model_name", ""))
        self.channels_last = bool(channels_last)
        if self.channels_last:
            self.model.visual.to(memory_format=torch.channels_last)
        self.to(device)

    @staticmethod
    def _tag_file(open_clip: Any, model: str, tag: str, cache: Path) -> Path:
        cfg = open_clip.get_pretrained_cfg(model, tag)
        if not cfg:
            raise KeyError(f"open_clip model {model!r} has no pretrained tag {tag!r}; tags: "
                           f"{open_clip.list_pretrained_tags_by_model(model)}")
        if cfg.get("hf_hub"):
            repo = "/".join(cfg["hf_hub"].strip("/").split("/")[:2])
            snap = hf_snapshot(repo, [], any_of=WEIGHT_FILES, cache=cache, what=f"{model}/{tag}")
            return _weights_file(snap)
        url = cfg.get("url", "")
        path = Path.home() / ".cache" / "clip" / Path(url).name
        return local_file(path, what=f"{model}/{tag}",
                          hint=f"download {url} and put it there, or pass pretrained=FILE")

    def _spec_from_checkpoint(self) -> InputSpec:
        import open_clip

        pp = open_clip.get_model_preprocess_cfg(self.model)
        size = pp.get("size", 224)
        size = int(size[0] if isinstance(size, (tuple, list)) else size)
        crop = "squash" if pp.get("resize_mode") == "squash" else "center"
        interp = pp.get("interpolation", "bicubic")
        return InputSpec(kind="image", resolution=size, crop=crop,
                         interpolation=interp if interp in ("bicubic", "bilinear") else "bicubic",
                         resampler="pil",  # open_clip's transforms run torchvision on PIL images
                         mean=tuple(pp.get("mean", CLIP_MEAN)), std=tuple(pp.get("std", CLIP_STD)),
                         value_range=1.0, channel_order="RGB", recipe="authors")

    @property
    def logit_scale(self) -> float:
        """exp of the checkpoint's learned temperature."""
        return float(self.model.logit_scale.detach().float().exp().reshape(-1)[0])

    @property
    def logit_bias(self) -> float | None:
        """SigLIP bias (None for softmax-CLIP checkpoints)."""
        bias = getattr(self.model, "logit_bias", None)
        return None if bias is None else float(bias.detach().float().reshape(-1)[0])

    def config(self) -> dict[str, Any]:
        """Model source, tokenizer and control status (what changes embeddings besides weights)."""
        return {"model": self.model_name, "pretrained": self.pretrained if not self.random else None,
                "random_control": self.random, "seed": self.seed,
                "tokenizer": getattr(self.tokenizer, "identity", type(self.tokenizer).__name__),
                "revision": self.revision}

    @torch.no_grad()
    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """``(B, 3, R, R)`` → L2-normalised ``(B, D)``."""
        x = self._on_device(frames)
        return self.model.encode_image(x, normalize=True)

    @torch.no_grad()
    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """Texts through the checkpoint's own tokenizer → L2-normalised ``(N, D)``."""
        tokens = self.tokenizer(list(texts)).to(self.device)
        return self.model.encode_text(tokens, normalize=True)


@register_encoder("open_clip", "Any open_clip model: name+tag, hf-hub:ID, local dir; pretrained=None = random control",
                  forwards_to=OpenClipEncoder)
def open_clip_encoder(**kwargs: Any) -> OpenClipEncoder:
    """Generic open_clip wrapper (see :class:`OpenClipEncoder`)."""
    return OpenClipEncoder(**kwargs)


@register_encoder("echoclip", "EchoCLIP (ConvNeXt-B + CLIP text, 512-d), hf-hub:mkaichristensen/echo-clip",
                  forwards_to=OpenClipEncoder)
def echoclip(model: str = ECHOCLIP_ID, recipe: str = "authors", **kwargs: Any) -> OpenClipEncoder:
    """EchoCLIP as the official examples run it: BGR frames, ``crop_and_scale`` zoom 0.1, CLIP BPE 77.

    ``recipe``: ``authors`` (default) or ``paper`` (the published benchmark's 16 consecutive
    frames; see :mod:`cardiobench.encoders.recipes`).
    """
    kwargs.setdefault("spec", image_recipe("echoclip", recipe))
    return OpenClipEncoder(model=model, name=kwargs.pop("name", "echoclip"), **kwargs)


@register_encoder("echoclip-r", "EchoCLIP-R (EchoCLIP image tower + template tokenizer from the user's echo_CLIP files)",
                  forwards_to=OpenClipEncoder)
def echoclip_r(model: str = ECHOCLIP_R_ID, tokenizer_dir: str | Path | None = None,
               recipe: str = "authors", **kwargs: Any) -> OpenClipEncoder:
    """EchoCLIP-R: same image pipeline as EchoCLIP; text through the official template tokenizer.

    ``tokenizer_dir`` holds the user's ``template_vocab.txt`` + ``blank_wordpiece.tokenizer``
    (default ``$CARDIOBENCH_ECHOCLIP_R_DIR``); open_clip's CLIP BPE is never used.
    """
    from cardiobench.encoders.echoclip_r_tokenizer import TemplateTokenizer

    tok = TemplateTokenizer(tokenizer_dir)  # fail on missing files before loading 600 MB
    kwargs.setdefault("spec", image_recipe("echoclip", recipe))
    return OpenClipEncoder(model=model, name=kwargs.pop("name", "echoclip-r"), tokenizer=tok, **kwargs)


@register_encoder("biomedclip", "BiomedCLIP (ViT-B/16 + PubMedBERT 256, 512-d)",
                  forwards_to=OpenClipEncoder)
def biomedclip(model: str = BIOMEDCLIP_ID, recipe: str = "authors", **kwargs: Any) -> OpenClipEncoder:
    """BiomedCLIP; offline it also needs BiomedBERT's config.json, tokenizer_config.json, vocab.txt
    in the HF cache (``microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract``).

    ``recipe``: ``authors`` (open_clip's RGB eval transform, default) or ``paper`` (the published
    benchmark: ``crop_and_scale`` on BGR frames, 16 consecutive frames).
    """
    kwargs.setdefault("spec", image_recipe("biomedclip", recipe))
    return OpenClipEncoder(model=model, name=kwargs.pop("name", "biomedclip"), **kwargs)


@register_encoder("siglip2", "SigLIP 2 ViT-B/16 (768-d, squash 224, mean/std 0.5, logit_bias)",
                  forwards_to=OpenClipEncoder)
def siglip2(model: str = SIGLIP2_ID, recipe: str = "authors", **kwargs: Any) -> OpenClipEncoder:
    """SigLIP 2 through ``hf-hub:timm/ViT-B-16-SigLIP2`` (same snapshot as ``ViT-B-16-SigLIP2``/``webli``).

    The tokenizer is the repo's Gemma tokenizer via transformers; its padding side decides the
    text embedding and is not verified against big_vision here.
    """
    kwargs.setdefault("spec", image_recipe("siglip2", recipe))
    return OpenClipEncoder(model=model, name=kwargs.pop("name", "siglip2"), **kwargs)


@register_encoder("random-clip", "Control: EchoCLIP's architecture (open_clip convnext_base) with random weights",
                  forwards_to=OpenClipEncoder)
def random_clip(model: str = "convnext_base", seed: int = 0, **kwargs: Any) -> OpenClipEncoder:
    """Random-weight control with EchoCLIP's architecture and input pipeline."""
    kwargs.setdefault("spec", ECHOCLIP_AUTHORS)
    return OpenClipEncoder(model=model, pretrained=None, seed=seed,
                           name=kwargs.pop("name", f"random-clip[{model},seed={seed}]"), **kwargs)
