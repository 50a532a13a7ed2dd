"""PanEcho's video backbone, rebuilt in our own code so the official checkpoint loads offline.

Why not ``torch.hub.load('CarDS-Yale/PanEcho', 'PanEcho', backbone_only=True)``: its entry point
downloads ``content/tasks.pkl`` from GitHub on every call and builds ConvNeXt-T with ImageNet
weights (another download) before loading ``panecho.pt``, so it cannot run offline; it also loads
with ``strict=False`` and never checks the result. PanEcho's code is AGPLv3, so we do not copy it:
this module re-creates the architecture from its published description with the same module
names, so ``panecho.pt``'s ``{'weights': state_dict}`` loads key for key.

Architecture (backbone only, 768-d): a 2-D torchvision ConvNeXt-T (classifier's last Linear
replaced by Identity) embeds each "frame"; a fixed sinusoidal time encoding is added; a 4-layer
Transformer encoder (d=768, 8 heads, feed-forward 768, ReLU, no dropout, batch-first) mixes time;
the output is the mean over time. Quirk preserved: the model receives ``(B, 3, T, H, W)`` and
reshapes it to ``(B*T, 3, H, W)`` *without* permuting, so each image ConvNeXt sees is three
consecutive time steps of one colour plane. The model was trained that way; "fixing" it would
change the embeddings.
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path
from typing import Any

import torch

from cardiobench.encoders.base import ModelEncoder
from cardiobench.encoders.recipes import panecho_spec
from cardiobench.encoders.registry import register_encoder
from cardiobench.hashing import sha256_files
from cardiobench.weights import load_checkpoint, local_file, torch_hub_checkpoint

log = logging.getLogger(__name__)

PANECHO_URL = "https://github.com/CarDS-Yale/PanEcho/releases/download/v1.0/panecho.pt"
PE_KEY = "time_encoder.pe"
#: ``{task}_head.1.{weight,bias}``: official task names use letters, digits and ``| ( ) -``
#: (``E|EAvg``, ``AVPkVel(m|s)``, ``RADimensionM-L(cm)``, ``RAP-8-or-higher``); accept any task name
#: without a dot or whitespace (a dot would be a module path), nothing else outside ``encoder.*``.
_HEAD_KEY = re.compile(r"^[^.\s]+_head\.1\.(weight|bias)$")


def sinusoid(length: int, dim: int) -> torch.Tensor:
    """``(1, length, dim)`` fixed sin/cos time encoding (even channels sin, odd cos)."""
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(length, dim)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)
    return pe[None]


class _TimeEncoding(torch.nn.Module):
    def __init__(self, length: int, dim: int) -> None:
        super().__init__()
        # A frozen Parameter (not a buffer) so the key is ``time_encoder.pe`` as in the checkpoint.
        self.pe = torch.nn.Parameter(sinusoid(length, dim), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pe[0, : x.shape[1]]


class _FrameEncoder(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        import torchvision  # imported when the model is built: `import cardiobench` stays light

        self.model = torchvision.models.convnext_tiny(weights=None)
        self.model.classifier[-1] = torch.nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class PanEchoBackbone(torch.nn.Module):
    """Frame ConvNeXt-T + temporal Transformer, mean-pooled: ``(B, 3, T, H, W)`` → ``(B, 768)``."""

    dim = 768

    def __init__(self, clip_len: int = 16, n_heads: int = 8, n_layers: int = 4) -> None:
        super().__init__()
        self.encoder = _FrameEncoder()
        layer = torch.nn.TransformerEncoderLayer(d_model=self.dim, nhead=n_heads, dim_feedforward=self.dim,
                                                 dropout=0.0, activation="relu", batch_first=True)
        self.transformer = torch.nn.TransformerEncoder(layer, num_layers=n_layers,
                                                       enable_nested_tensor=False)
        self.time_encoder = _TimeEncoding(clip_len, self.dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        frames = x.reshape(b * t, c, h, w)  # no permute: PanEcho's trained behaviour
        z = self.encoder(frames).reshape(b, t, self.dim)
        return self.transformer(self.time_encoder(z)).mean(dim=1)


def load_backbone(path: str | Path, clip_len: int = 16) -> PanEchoBackbone:
    """Build :class:`PanEchoBackbone` and load ``panecho.pt``'s encoder weights, checking keys exactly.

    The file is ``{'weights': MultiTaskModel state_dict}`` (possibly with ``'optimizer'``). Keys
    ``encoder.*`` are the backbone; ``<task>_head.1.*`` are task heads (not loaded); the stored
    ``encoder.time_encoder.pe`` is dropped as the official loader does (ours is recomputed).
    Anything else, or any backbone key missing, is an error naming the keys.
    """
    path = Path(path)
    ckpt = load_checkpoint(path)
    if not isinstance(ckpt, dict) or "weights" not in ckpt:
        raise ValueError(f"{path}: expected PanEcho's {{'weights': state_dict}} checkpoint, got "
                         f"{type(ckpt).__name__} with keys {list(ckpt)[:5] if isinstance(ckpt, dict) else '-'}")
    sd = ckpt["weights"]
    backbone = {k[len("encoder."):]: v for k, v in sd.items() if k.startswith("encoder.")}
    stray = [k for k in sd if not k.startswith("encoder.") and not _HEAD_KEY.match(k)]
    bad_heads = [k for k in sd if _HEAD_KEY.match(k) and k.endswith(".weight")
                 and (getattr(sd[k], "ndim", 0) != 2 or sd[k].shape[1] != PanEchoBackbone.dim)]
    if stray or bad_heads:
        raise ValueError(f"{path}: not PanEcho's MultiTaskModel state dict: {len(stray)} key(s) "
                         f"outside encoder.* and {{task}}_head.1.*: {stray[:10]}; task head weights "
                         f"not (n, {PanEchoBackbone.dim}): {bad_heads[:10]}")
    backbone.pop(PE_KEY, None)
    model = PanEchoBackbone(clip_len=clip_len)
    res = model.load_state_dict(backbone, strict=False)
    if list(res.missing_keys) != [PE_KEY] or res.unexpected_keys:
        raise ValueError(f"{path}: PanEcho backbone keys do not match: missing "
                         f"{[k for k in res.missing_keys if k != PE_KEY][:5]}, unexpected "
                         f"{list(res.unexpected_keys)[:5]}")
    return model


class PanEchoEncoder(ModelEncoder):
    """PanEcho backbone as a video encoder (768-d, not L2-normalised).

    Input: 16 consecutive frames, 224, ImageNet mean/std on [0, 1] values, BGR (PanEcho reads
    frames with cv2 and never converts). ``recipe``: ``authors`` (default: the EchoNet loader,
    ``cv2.resize((256, 256), INTER_AREA)`` then CenterCrop(224)) or ``authors-ynhhs`` (no resize);
    see :func:`cardiobench.encoders.recipes.panecho_spec`. ``weights``: ``panecho.pt``; default
    ``$TORCH_HOME/hub/checkpoints/panecho.pt``, where ``torch.hub`` caches it.
    """

    normalized = False

    def __init__(self, weights: str | Path | None = None, *, clip_len: int = 16, recipe: str = "authors",
                 name: str = "panecho", channels_last: bool = True, device: str = "cpu") -> None:
        spec = panecho_spec(recipe, clip_len)  # an unknown recipe fails before loading 300 MB
        if weights is None:
            path = torch_hub_checkpoint("panecho.pt", PANECHO_URL, what="PanEcho")
        else:
            path = local_file(weights, what="PanEcho", hint=f"download {PANECHO_URL}")
        self.weights_path = path
        self.model = load_backbone(path, clip_len=clip_len).eval().requires_grad_(False)
        self.clip_len = clip_len
        self.channels_last = channels_last
        if channels_last:
            self.model.encoder.to(memory_format=torch.channels_last)
        self._sha = sha256_files([path])
        self.name = name
        self.embed_dim = PanEchoBackbone.dim
        self.spec = spec
        self.to(device)

    def config(self) -> dict[str, Any]:
        """Clip length and the preserved reshape quirk."""
        return {"clip_len": self.clip_len, "recipe": self.spec.recipe,
                "reshape": "B,3,T,H,W->B*T,3,H,W (no permute)"}

    @torch.no_grad()
    def encode_clips(self, clips: torch.Tensor) -> torch.Tensor:
        """``(B, T, 3, R, R)`` → PanEcho's ``(B, 3, T, R, R)`` input → ``(B, 768)``."""
        x = clips.to(self.device).permute(0, 2, 1, 3, 4).contiguous()
        return self.model(x)


@register_encoder("panecho", "PanEcho backbone (ConvNeXt-T + temporal Transformer, 768-d), panecho.pt",
                  forwards_to=PanEchoEncoder)
def panecho(**kwargs: Any) -> PanEchoEncoder:
    """PanEcho's backbone (see :class:`PanEchoEncoder`)."""
    return PanEchoEncoder(**kwargs)
