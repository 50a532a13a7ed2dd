"""The ``pixels`` baseline: no weights, downsampled grayscale frames as the embedding.

A floor every learned encoder must beat. Frame vector = the frame's grayscale image, echo-cropped
and area-downsampled to ``size × size``, values in [0, 1]. Clip vector = per-pixel mean and
standard deviation over time, concatenated: the standard deviation map is where the walls move,
which is what carries EF.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cardiobench.encoders.base import InputSpec, Encoder
from cardiobench.encoders.registry import register_encoder
from cardiobench.transforms import SamplingPolicy


class PixelsEncoder(Encoder):
    """Downsampled grayscale frames; clip = [mean over time, std over time]."""

    normalized = False

    def __init__(self, size: int = 16, n_frames: int = 32, device: str = "cpu") -> None:
        self.name = "pixels"
        self.size = int(size)
        self.spec = InputSpec(kind="image", resolution=4 * self.size,
                              sampling=SamplingPolicy(kind="uniform", n_frames=n_frames),
                              crop="echo", interpolation="area", mean=(0.0, 0.0, 0.0),
                              std=(1.0, 1.0, 1.0), value_range=1.0, grayscale=True)
        self.embed_dim = self.size * self.size
        self.clip_dim = 2 * self.embed_dim
        self.device = torch.device(device)

    def config(self) -> dict[str, object]:
        return {"size": self.size}

    @torch.no_grad()
    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        gray = frames[:, :1].float()  # grayscale spec: channels are identical
        small = F.adaptive_avg_pool2d(gray, self.size)
        return small.flatten(1)

    def pool_frames(self, frame_embeddings: torch.Tensor) -> torch.Tensor:
        x = frame_embeddings.float()
        return torch.cat([x.mean(dim=0), x.std(dim=0, unbiased=False)])


@register_encoder("pixels", "No-weights baseline: downsampled grayscale frames (mean+std over time)",
                  forwards_to=PixelsEncoder)
def pixels(**kwargs: object) -> PixelsEncoder:
    """Build the pixels baseline."""
    return PixelsEncoder(**kwargs)  # type: ignore[arg-type]
