"""The one encoder protocol every model implements, and its input contract as data."""

from __future__ import annotations

import hashlib
import json
from abc import ABC
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator, Literal

import torch

from cardiobench.transforms import SamplingPolicy

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class InputSpec:
    """What an encoder expects, as data (like timm's pretrained cfg).

    ``kind``: ``image`` encoders see frames one by one (``encode_frames``), ``video`` encoders a
    clip (``encode_clips``). ``sampling`` says which frames are decoded per sample.
    ``resolution`` is the square side fed to the model; ``crop`` the geometry (see
    :func:`cardiobench.transforms.preprocess`); ``value_range`` 1.0 means pixels in [0, 1] before
    mean/std, 255.0 means 0–255 (EchoPrime); ``channel_order`` the order the model was trained on.
    ``resampler`` names whose resize the recipe reproduces (``cv2``/``pil``: the official uint8
    stage; ``torch``: float resize, for models without one). ``recipe`` names the recipe
    (``authors``, ``paper``, ...; see :mod:`cardiobench.encoders.recipes`): it is part of
    :meth:`to_dict`, hence of the encoder fingerprint (cache key) and of every result.
    """

    kind: Literal["image", "video"] = "image"
    resolution: int = 224
    sampling: SamplingPolicy = field(default_factory=SamplingPolicy)
    crop: Literal["echo", "echo_round", "center", "squash", "squash_center", "crop_only", "none"] = "echo"
    zoom: float = 0.1
    crop_pct: float = 1.0
    interpolation: Literal["bicubic", "bilinear", "area", "nearest"] = "bicubic"
    resampler: Literal["torch", "cv2", "pil"] = "torch"
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD
    value_range: float = 1.0
    channel_order: Literal["RGB", "BGR"] = "RGB"
    grayscale: bool = False
    recipe: str = "custom"

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (JSON-safe), used in fingerprints and results."""
        d = asdict(self)
        d["sampling"] = self.sampling.to_dict()
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d


class Encoder(ABC):
    """The protocol: frames, clips and text in; L2-comparable embeddings out.

    Subclasses set ``name``, ``spec`` and ``embed_dim`` and implement ``encode_frames`` (image
    encoders, input ``float (B, 3, R, R)`` already preprocessed per ``spec``) or ``encode_clips``
    (video encoders, input ``float (B, T, 3, R, R)``), and ``encode_text`` when there is a text
    tower. ``pool_frames`` turns one sample's frame embeddings into its clip vector.
    """

    name: str = "encoder"
    spec: InputSpec = InputSpec()
    embed_dim: int = 0
    #: dimension of the clip vector (differs from ``embed_dim`` only for custom pooling)
    clip_dim: int | None = None
    #: whether frame/clip embeddings are L2-normalised by the model's own recipe
    normalized: bool = True
    device: torch.device = torch.device("cpu")

    @property
    def has_text(self) -> bool:
        """True if the encoder overrides :meth:`encode_text`."""
        return type(self).encode_text is not Encoder.encode_text

    @property
    def logit_scale(self) -> float | None:
        """exp of the learned temperature (e.g. ≈100 for CLIP), or None without a text tower."""
        return None

    @property
    def logit_bias(self) -> float | None:
        """SigLIP-style bias added to scaled similarities; None for softmax-CLIP models."""
        return None

    @property
    def weights_sha256(self) -> str | None:
        """SHA-256 of the loaded weights file(s); None for weight-free encoders."""
        return None

    def config(self) -> dict[str, Any]:
        """Everything that changes the embeddings besides the weights (for the fingerprint)."""
        return {}

    def to(self, device: str | torch.device) -> "Encoder":
        """Move the model to ``device`` (subclasses with modules override and call super)."""
        self.device = torch.device(device)
        return self

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """``(B, 3, R, R)`` → ``(B, D)``."""
        raise NotImplementedError(f"{self.name} is not an image encoder")

    def encode_clips(self, clips: torch.Tensor) -> torch.Tensor:
        """``(B, T, 3, R, R)`` → ``(B, D)``."""
        raise NotImplementedError(f"{self.name} is not a video encoder")

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """``list[str]`` → ``(N, D)`` L2-normalised text embeddings."""
        raise NotImplementedError(f"{self.name} has no text tower")

    def pool_frames(self, frame_embeddings: torch.Tensor) -> torch.Tensor:
        """One sample's ``(T, D)`` frame embeddings → its clip vector ``(D,)``.

        Default: mean of the (normalised) frame embeddings, re-normalised, as EchoCLIP does.
        """
        v = frame_embeddings.float().mean(dim=0)
        return torch.nn.functional.normalize(v, dim=0) if self.normalized else v

    def fingerprint(self) -> str:
        """SHA-256 of name + weights hash + InputSpec + config: the embedding cache key."""
        payload = {"name": self.name, "weights": self.weights_sha256,
                   "spec": self.spec.to_dict(), "config": self.config()}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()

    def describe(self) -> dict[str, Any]:
        """Metadata for results and ``check-encoder`` reports."""
        return {"name": self.name, "kind": self.spec.kind, "embed_dim": self.embed_dim,
                "clip_dim": self.clip_dim or self.embed_dim, "has_text": self.has_text,
                "logit_scale": self.logit_scale, "logit_bias": self.logit_bias,
                "control": bool(getattr(self, "random", False)),
                "weights_sha256": self.weights_sha256,
                "spec": self.spec.to_dict(), "config": self.config(),
                "fingerprint": self.fingerprint()}


class ModelEncoder(Encoder):
    """An encoder around one torch module ``self.model`` (every wrapper with weights).

    ``random`` marks a random-weight control (shown as ``control`` in :meth:`describe`);
    ``channels_last`` converts image batches to NHWC memory, which convolutional towers run
    faster on GPUs.
    """

    model: torch.nn.Module
    random: bool = False
    channels_last: bool = False
    _sha: str | None = None  # set by the wrapper from the weights file(s) it loaded

    @property
    def weights_sha256(self) -> str | None:
        """SHA-256 of the weights file the wrapper loaded (None for random or built-in weights)."""
        return self._sha

    def to(self, device: str | torch.device) -> "ModelEncoder":
        """Move the module to ``device``."""
        super().to(device)
        self.model.to(self.device)
        return self

    def _on_device(self, frames: torch.Tensor) -> torch.Tensor:
        """An image batch on the model's device, in channels-last memory where asked."""
        x = frames.to(self.device)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


def sha256_file(path: str, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@contextmanager
def seeded_init(seed: int | None) -> Iterator[None]:
    """Build modules inside this block to make their random init a function of ``seed`` alone.

    The caller's RNG is untouched: the CPU generator's state is saved, seeded for the block, and
    restored afterwards (no ``torch.manual_seed``, which would also reseed every CUDA device and
    leave the caller's sampling changed). Modules are built on the CPU, so only that generator
    is used. ``seed=None`` does nothing (pretrained weights are about to be loaded).
    """
    if seed is None:
        yield
        return
    state = torch.get_rng_state()
    torch.default_generator.manual_seed(int(seed))
    try:
        yield
    finally:
        torch.set_rng_state(state)
