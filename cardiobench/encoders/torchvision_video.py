"""torchvision video encoders: generic Kinetics models and EchoPrime's MViT-v2-S.

Models take ``(B, C, T, H, W)``; the encoder protocol hands ``(B, T, 3, R, R)``, so clips are
permuted here. Checkpoints are plain state dicts loaded strictly with ``weights_only=True``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from cardiobench.encoders.base import InputSpec, ModelEncoder, seeded_init
from cardiobench.encoders.recipes import ECHOPRIME_MEAN, ECHOPRIME_STD, echoprime_spec  # noqa: F401
from cardiobench.encoders.registry import register_encoder
from cardiobench.transforms import SamplingPolicy
from cardiobench.hashing import sha256_files
from cardiobench.weights import (WeightsNotFound, load_checkpoint, local_file,
                                 torch_hub_checkpoint)

log = logging.getLogger(__name__)

KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)
#: torchvision video classifiers: (builder, weights enum, default resolution, attribute path of the head)
ARCHS: dict[str, tuple[str, str, int]] = {
    "r2plus1d_18": ("R2Plus1D_18_Weights", "fc", 112),
    "mvit_v2_s": ("MViT_V2_S_Weights", "head", 224),
}

ECHOPRIME_URL = "https://github.com/echonet/EchoPrime/releases/download/v1.0.0/model_data.zip"
ECHOPRIME_FILE = Path("model_data") / "weights" / "echo_prime_encoder.pt"


def _strip_head(model: torch.nn.Module, head: str) -> None:
    if head == "fc":
        model.fc = torch.nn.Identity()  # type: ignore[assignment]
    else:
        model.head[-1] = torch.nn.Identity()  # type: ignore[index]


def _check_keys(result: Any, path: Path) -> None:
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(f"{path}: state dict does not match the architecture: missing "
                         f"{result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]}")


class TorchvisionVideoEncoder(ModelEncoder):
    """A torchvision video model's penultimate features per clip.

    ``arch``: ``r2plus1d_18`` or ``mvit_v2_s``. ``weights``: a state-dict file, or the torchvision
    weights tag (``KINETICS400_V1``) resolved in ``$TORCH_HOME/hub/checkpoints`` offline, or None for
    random weights (a control). The classifier is replaced by Identity *after* loading, so the
    checkpoint loads strictly in its published form.
    """

    normalized = False

    def __init__(self, arch: str = "r2plus1d_18", *, weights: str | Path | None = "KINETICS400_V1",
                 name: str | None = None, spec: InputSpec | None = None, n_frames: int = 16,
                 seed: int = 0, device: str = "cpu") -> None:
        if arch not in ARCHS:
            raise KeyError(f"unknown torchvision video arch {arch!r}; known: {sorted(ARCHS)}")
        enum_name, head, res = ARCHS[arch]
        self.arch = arch
        self.random = weights is None
        import torchvision  # imported when a model is built: `import cardiobench` stays light

        with seeded_init(seed if self.random else None):
            self.model = getattr(torchvision.models.video, arch)()
        self.weights_path: Path | None = None
        if weights is not None:
            w = str(weights)
            if Path(w).expanduser().is_file() or "/" in w or w.endswith((".pt", ".pth")):
                self.weights_path = local_file(w, what=arch)
            else:
                enum = torchvision.models.get_weight(f"{enum_name}.{w}")
                self.weights_path = torch_hub_checkpoint(Path(enum.url).name, enum.url, what=arch)
            sd = load_checkpoint(self.weights_path)
            _check_keys(self.model.load_state_dict(sd, strict=False), self.weights_path)
        _strip_head(self.model, head)
        self.model.eval().requires_grad_(False)
        self.seed = seed if self.random else None
        self._sha = sha256_files([self.weights_path]) if self.weights_path else None
        self.name = name or (f"random-{arch}" if self.random else arch)
        self.embed_dim = 512 if arch == "r2plus1d_18" else 768
        self.spec = spec or InputSpec(
            kind="video", resolution=res, crop="center", interpolation="bilinear",
            mean=KINETICS_MEAN, std=KINETICS_STD, value_range=1.0, channel_order="RGB",
            sampling=SamplingPolicy(kind="consecutive", n_frames=n_frames, stride=1))
        self.to(device)

    def config(self) -> dict[str, Any]:
        """Architecture and control status."""
        return {"arch": self.arch, "random_control": self.random, "seed": self.seed}

    @torch.no_grad()
    def encode_clips(self, clips: torch.Tensor) -> torch.Tensor:
        """``(B, T, 3, R, R)`` → ``(B, D)``."""
        return self.model(clips.to(self.device).permute(0, 2, 1, 3, 4))


class EchoPrimeEncoder(ModelEncoder):
    """EchoPrime's video encoder: torchvision ``mvit_v2_s`` with ``head[-1] = Linear(768, 512)``.

    Weights: ``model_data/weights/echo_prime_encoder.pt`` from the release zip, a plain state dict
    loaded strictly (``weights_only=True``). Input as EchoPrime prepares it: frames 0, 2, …, 30 (16
    frames at stride 2 from frame 0), ``crop_and_scale`` zoom 0.1 to 224, values kept in 0–255 and
    normalised with EchoPrime's mean/std; a clip shorter than 32 frames is zero-padded *after*
    normalisation (done in :meth:`encode_clips`, so sampling does not repeat frames).
    ``recipe``: ``authors`` (default, BGR: the DICOM path ``process_dicoms``, the official demo,
    converts YUV→BGR) or ``authors-mp4`` (RGB: ``process_mp4s`` reads with torchvision); see
    :func:`cardiobench.encoders.recipes.echoprime_spec`. ``channel_order="RGB"`` is the older
    spelling of ``recipe="authors-mp4"``. Output: the 512-d video embedding, not L2-normalised
    (``encode_study``'s view one-hot is not appended).
    """

    normalized = False
    n_frames = 16

    def __init__(self, weights: str | Path | None = None, *, recipe: str = "authors",
                 channel_order: str | None = None, name: str = "echoprime", device: str = "cpu") -> None:
        if channel_order is not None:
            if channel_order.upper() not in ("BGR", "RGB"):
                raise ValueError(f"channel_order must be BGR or RGB, got {channel_order!r}")
            recipe = "authors-mp4" if channel_order.upper() == "RGB" else "authors"
        spec = echoprime_spec(recipe)  # an unknown recipe fails before loading weights
        path = Path(weights).expanduser() if weights is not None else ECHOPRIME_FILE
        if path.is_dir():
            for cand in (path / ECHOPRIME_FILE, path / "weights" / ECHOPRIME_FILE.name,
                         path / ECHOPRIME_FILE.name):
                if cand.is_file():
                    path = cand
                    break
        if not path.is_file():
            raise WeightsNotFound(
                f"EchoPrime encoder weights not found at {path}: download {ECHOPRIME_URL}, unzip it "
                f"(it holds {ECHOPRIME_FILE.as_posix()}) and pass --weights <that file or the folder "
                "containing model_data> (build_encoder('echoprime', weights=...) in Python)")
        self.weights_path = path
        import torchvision  # imported when the model is built

        self.model = torchvision.models.video.mvit_v2_s()
        self.model.head[-1] = torch.nn.Linear(self.model.head[-1].in_features, 512)
        sd = load_checkpoint(path)
        if not isinstance(sd, dict) or "head.1.weight" not in sd:
            raise ValueError(f"{path} is not EchoPrime's encoder state dict (no 'head.1.weight')")
        self.model.load_state_dict(sd, strict=True)
        self.model.eval().requires_grad_(False)
        self._sha = sha256_files([path])
        self.name = name
        self.embed_dim = 512
        self.spec = spec
        self.to(device)

    def config(self) -> dict[str, Any]:
        """Padding rule, recipe and channel-order path."""
        return {"pad": "zeros_after_normalisation", "recipe": self.spec.recipe,
                "channel_order": self.spec.channel_order}

    @torch.no_grad()
    def encode_clips(self, clips: torch.Tensor) -> torch.Tensor:
        """``(B, T<=16, 3, 224, 224)`` normalised clips → ``(B, 512)``; short clips zero-padded."""
        x = clips.to(self.device)
        if x.shape[1] < self.n_frames:
            pad = x.new_zeros((x.shape[0], self.n_frames - x.shape[1], *x.shape[2:]))
            x = torch.cat([x, pad], dim=1)
        return self.model(x[:, : self.n_frames].permute(0, 2, 1, 3, 4))


@register_encoder("r2plus1d_18", "torchvision R(2+1)D-18 video features (512-d); weights= file or KINETICS400_V1",
                  forwards_to=TorchvisionVideoEncoder)
def r2plus1d_18(**kwargs: Any) -> TorchvisionVideoEncoder:
    """torchvision R(2+1)D-18."""
    return TorchvisionVideoEncoder(arch="r2plus1d_18", **kwargs)


@register_encoder("mvit_v2_s", "torchvision MViT-v2-S video features (768-d); weights= file or KINETICS400_V1",
                  forwards_to=TorchvisionVideoEncoder)
def mvit_v2_s(**kwargs: Any) -> TorchvisionVideoEncoder:
    """torchvision MViT-v2-S."""
    return TorchvisionVideoEncoder(arch="mvit_v2_s", **kwargs)


@register_encoder("echoprime", "EchoPrime video encoder (MViT-v2-S, 512-d), model_data/weights/echo_prime_encoder.pt",
                  forwards_to=EchoPrimeEncoder)
def echoprime(**kwargs: Any) -> EchoPrimeEncoder:
    """EchoPrime's video encoder (see :class:`EchoPrimeEncoder`)."""
    return EchoPrimeEncoder(**kwargs)
