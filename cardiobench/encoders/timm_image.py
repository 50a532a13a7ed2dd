"""timm image encoders (DINOv3 and any timm model): per-frame features, no text tower.

Loading is timm's own ``create_model(name, pretrained=True, pretrained_cfg_overlay={'file': F})``
on a file resolved offline by :mod:`cardiobench.weights` (timm's pretrained cfg names the Hub
repo, ``timm/<name>``; its cache holds ``model.safetensors``). timm applies its checkpoint filter
and loads strictly; ``num_classes=0`` returns the pooled features.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from cardiobench.encoders.base import IMAGENET_MEAN, IMAGENET_STD, InputSpec, ModelEncoder, seeded_init
from cardiobench.encoders.recipes import image_recipe
from cardiobench.encoders.registry import register_encoder
from cardiobench.hashing import sha256_files
from cardiobench.weights import hf_hub_cache, hf_snapshot, local_file

log = logging.getLogger(__name__)

TIMM_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
DINOV3_DEFAULT = "vit_small_patch16_dinov3.lvd1689m"


class TimmImageEncoder(ModelEncoder):
    """A timm model's pooled features per frame.

    ``model``: a timm name with or without pretrained tag (``vit_small_patch16_dinov3.lvd1689m``).
    ``weights``: a local checkpoint file or a folder holding ``model.safetensors``; default: the HF
    cache of the model's ``hf_hub_id``; ``pretrained=False`` builds random weights (a control).
    ``global_pool``: passed to timm (DINOv3 uses ``token``, the CLS token, as upstream does;
    timm's own default for these models is ``avg``). Features are not L2-normalised.
    """

    normalized = False

    def __init__(self, model: str = DINOV3_DEFAULT, *, weights: str | Path | None = None,
                 pretrained: bool = True, global_pool: str | None = None, name: str | None = None,
                 spec: InputSpec | None = None, seed: int = 0, channels_last: bool | None = None,
                 device: str = "cpu") -> None:
        import timm

        self.model_name, self.global_pool = model, global_pool
        self.random = not pretrained and weights is None
        self.weights_path: Path | None = None
        kwargs: dict[str, Any] = {"num_classes": 0}
        if global_pool is not None:
            kwargs["global_pool"] = global_pool
        if self.random:
            with seeded_init(seed):  # weights a function of the seed; caller's RNG untouched
                self.model = timm.create_model(model, pretrained=False, **kwargs)
        else:
            self.weights_path = self._resolve(timm, model, weights)
            self.model = timm.create_model(model, pretrained=True,
                                           pretrained_cfg_overlay={"file": str(self.weights_path)},
                                           **kwargs)
        self.model.eval().requires_grad_(False)
        self.seed = seed if self.random else None
        self._sha = sha256_files([self.weights_path]) if self.weights_path else None
        self.name = name or (f"random-{model}" if self.random else model)
        self.embed_dim = int(self.model.num_features)
        self.spec = spec if spec is not None else self._spec_from_cfg()
        self.channels_last = bool(channels_last if channels_last is not None
                                  else "convnext" in model or "resnet" in model)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.to(device)

    @staticmethod
    def _resolve(timm: Any, model: str, weights: str | Path | None) -> Path:
        if weights is not None:
            w = Path(weights).expanduser()
            if w.is_dir():
                for f in TIMM_WEIGHT_FILES:
                    if (w / f).is_file():
                        return w / f
                return local_file(w / TIMM_WEIGHT_FILES[0], what=f"timm {model}")
            return local_file(w, what=f"timm {model}")
        cfg = timm.models.get_pretrained_cfg(model)
        hub = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
        if not hub:
            raise ValueError(f"timm model {model!r} names no Hugging Face repo; pass weights=FILE")
        snap = hf_snapshot(hub, [], any_of=TIMM_WEIGHT_FILES, cache=hf_hub_cache(), what=model)
        return next(snap / f for f in TIMM_WEIGHT_FILES if (snap / f).is_file())

    def _spec_from_cfg(self) -> InputSpec:
        cfg = self.model.pretrained_cfg
        interp = cfg.get("interpolation", "bicubic")
        # timm's eval transform: short side to floor(R / crop_pct), PIL resize, centre crop R
        return InputSpec(kind="image", resolution=int(cfg.get("input_size", (3, 224, 224))[-1]),
                         crop="center", crop_pct=float(cfg.get("crop_pct", 1.0) or 1.0),
                         interpolation=interp if interp in ("bicubic", "bilinear") else "bicubic",
                         resampler="pil",
                         mean=tuple(cfg.get("mean", IMAGENET_MEAN)), std=tuple(cfg.get("std", IMAGENET_STD)),
                         value_range=1.0, channel_order="RGB", recipe="authors")

    def config(self) -> dict[str, Any]:
        """timm name, pooling and control status."""
        return {"model": self.model_name, "global_pool": self.model.global_pool
                if isinstance(getattr(self.model, "global_pool", None), str) else self.global_pool,
                "random_control": self.random, "seed": self.seed}

    @torch.no_grad()
    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """``(B, 3, R, R)`` → pooled features ``(B, D)``."""
        x = self._on_device(frames)
        return self.model(x)


@register_encoder("dinov3", "DINOv3 ViT-S/16 (timm, CLS token, 256 input, 384-d); model= for variants",
                  forwards_to=TimmImageEncoder)
def dinov3(model: str = DINOV3_DEFAULT, global_pool: str = "token", recipe: str = "authors",
           **kwargs: Any) -> TimmImageEncoder:
    """DINOv3 via timm with ``global_pool='token'`` (upstream's CLS feature, not timm's avg).

    ``recipe``: ``authors`` (timm's eval transform of the checkpoint, the only one).
    """
    if model == DINOV3_DEFAULT:
        kwargs.setdefault("spec", image_recipe("dinov3", recipe))
    elif recipe != "authors":
        raise ValueError(f"dinov3 model {model!r} has only the 'authors' recipe, not {recipe!r}")
    return TimmImageEncoder(model=model, global_pool=global_pool,
                            name=kwargs.pop("name", f"dinov3[{model}]"), **kwargs)


@register_encoder("timm", "Any timm image model + its weights file (HF cache or weights=FILE)",
                  forwards_to=TimmImageEncoder)
def timm_encoder(model: str, **kwargs: Any) -> TimmImageEncoder:
    """Generic timm wrapper (see :class:`TimmImageEncoder`)."""
    return TimmImageEncoder(model=model, **kwargs)
