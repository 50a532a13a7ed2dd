"""Frame sampling policies (as data) and batched tensor preprocessing of echo frames.

Sampling decides *which* frame indices of a video are decoded; preprocessing turns the decoded
``uint8 (T, H, W, 3)`` RGB frames into the model tensor ``float (T, 3, R, R)`` described by an
encoder's :class:`~cardiobench.encoders.base.InputSpec`. Both are pure functions of their inputs,
so the embedding cache can fingerprint them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

SamplingKind = Literal["consecutive", "uniform", "fps"]


@dataclass(frozen=True)
class SamplingPolicy:
    """Which frames of a video to decode.

    - ``consecutive``: ``n_frames`` frames from the key frame (``start="key_frame"``) or frame 0,
      every ``stride``-th frame. Short videos are padded by repeating the last index
      (``pad="repeat_last"``) or left short (``pad="none"``).
    - ``uniform``: ``n_frames`` indices spread evenly over the whole clip (first to last frame),
      which spans every cardiac cycle in the video.
    - ``fps``: ``n_frames`` frames resampled to ``target_fps`` (needs the video's fps) from the
      start frame, i.e. a fixed duration of ``n_frames / target_fps`` seconds.

    A still image always yields index ``[0]``.
    """

    kind: SamplingKind = "uniform"
    n_frames: int = 16
    stride: int = 1
    target_fps: float | None = None
    start: Literal["key_frame", "zero"] = "key_frame"
    pad: Literal["repeat_last", "none"] = "repeat_last"

    def __post_init__(self) -> None:
        if self.n_frames < 1:
            raise ValueError(f"n_frames must be >= 1, got {self.n_frames}")
        if self.stride < 1:
            raise ValueError(f"stride must be >= 1, got {self.stride}")
        if self.kind == "fps" and not (self.target_fps and self.target_fps > 0):
            raise ValueError("sampling kind 'fps' needs a positive target_fps")
        if self.kind not in ("consecutive", "uniform", "fps"):
            raise ValueError(f"unknown sampling kind {self.kind!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form, for fingerprints and result JSON."""
        return asdict(self)

    def indices(self, n_available: int, *, key_frame: int | None = None,
                fps: float | None = None) -> np.ndarray:
        """Frame indices (int64, sorted, may repeat when padded) for a clip of ``n_available``."""
        if n_available < 1:
            raise ValueError("a clip with zero frames has no frames to sample")
        if n_available == 1:
            return np.zeros(1 if self.pad == "none" else self.n_frames, dtype=np.int64)
        start = 0
        if self.start == "key_frame" and key_frame is not None and not _nan(key_frame):
            start = int(min(max(int(key_frame), 0), n_available - 1))
        if self.kind == "uniform":
            idx = np.linspace(0, n_available - 1, self.n_frames).round().astype(np.int64)
            return idx
        if self.kind == "consecutive":
            idx = np.arange(start, n_available, self.stride, dtype=np.int64)[: self.n_frames]
        else:  # fps
            if fps is None or _nan(fps) or fps <= 0:
                raise ValueError("sampling kind 'fps' needs the video's fps")
            step = float(fps) / float(self.target_fps)  # type: ignore[arg-type]
            idx = np.floor(start + np.arange(self.n_frames) * step).astype(np.int64)
            idx = idx[idx < n_available]
        if self.pad == "repeat_last" and len(idx) < self.n_frames:
            fill = idx[-1] if len(idx) else n_available - 1
            idx = np.concatenate([idx, np.full(self.n_frames - len(idx), fill, dtype=np.int64)])
        return idx


def _nan(x: Any) -> bool:
    try:
        return math.isnan(float(x))
    except (TypeError, ValueError):
        return True


def to_tensor(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``uint8 (T, H, W, 3)`` → ``uint8 (T, 3, H, W)`` without copying more than needed."""
    t = torch.as_tensor(frames)
    if t.ndim != 4 or t.shape[-1] != 3:
        raise ValueError(f"expected (T, H, W, 3) frames, got shape {tuple(t.shape)}")
    return t.permute(0, 3, 1, 2)


def echo_crop(x: torch.Tensor, zoom: float = 0.1) -> torch.Tensor:
    """Centre-crop ``(..., H, W)`` to a square, then trim ``zoom`` of the side from each edge.

    This is EchoCLIP's ``crop_and_scale`` geometry (crop to the 1:1 aspect ratio, then remove
    ``round(zoom * side)`` pixels per side) expressed as a slice, so it costs nothing.
    """
    h, w = x.shape[-2:]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    x = x[..., top: top + side, left: left + side]
    trim = int(round(zoom * side))
    if trim and side - 2 * trim > 0:
        x = x[..., trim: side - trim, trim: side - trim]
    return x


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """Centre crop ``(..., H, W)`` to ``size × size`` (no-op where already smaller)."""
    h, w = x.shape[-2:]
    top, left = max((h - size) // 2, 0), max((w - size) // 2, 0)
    return x[..., top: top + size, left: left + size]


def resize(x: torch.Tensor, size: int | tuple[int, int], mode: str = "bicubic") -> torch.Tensor:
    """Resize a float ``(N, C, H, W)`` batch; bicubic/bilinear use antialiasing when shrinking."""
    hw = (size, size) if isinstance(size, int) else size
    if tuple(x.shape[-2:]) == tuple(hw):
        return x
    kwargs: dict[str, Any] = {}
    if mode in ("bilinear", "bicubic"):
        kwargs = {"align_corners": False, "antialias": True}
    return F.interpolate(x, size=hw, mode=mode, **kwargs)


def resize_short_side(x: torch.Tensor, size: int, mode: str = "bicubic") -> torch.Tensor:
    """Resize so the shorter side equals ``size``, keeping the aspect ratio (open_clip 'shortest')."""
    h, w = x.shape[-2:]
    scale = size / min(h, w)
    return resize(x, (max(size, round(h * scale)), max(size, round(w * scale))), mode)


def preprocess(frames: torch.Tensor, spec: "InputSpecLike") -> torch.Tensor:
    """``uint8 (T, 3, H, W)`` RGB on any device → model input ``float32 (T, 3, R, R)``.

    Steps, all batched over frames: channel order (RGB or BGR, as the model was trained),
    geometry (``crop``: ``echo`` = square + zoom trim then resize; ``center`` = resize short side
    then centre crop; ``squash`` = resize to R×R ignoring aspect; ``squash_center`` = resize to
    ``R / crop_pct`` square ignoring aspect, then centre crop R; ``none`` = resize only), value
    scaling to ``value_range`` (1.0 for [0, 1], 255.0 for 0–255) and mean/std normalisation in
    that value space. ``grayscale`` averages the channels first (replicated back to 3).
    """
    if frames.dtype != torch.uint8:
        raise TypeError(f"preprocess expects uint8 frames, got {frames.dtype}")
    x = frames
    if spec.channel_order == "BGR":
        x = x.flip(1)
    x = x.float()
    if spec.grayscale:
        x = x.mean(dim=1, keepdim=True).expand(-1, 3, -1, -1)
    r = spec.resolution
    if spec.crop == "echo":
        x = resize(echo_crop(x, spec.zoom), r, spec.interpolation)
    elif spec.crop == "center":
        x = center_crop(resize_short_side(x, r, spec.interpolation), r)
    elif spec.crop in ("squash", "none"):
        x = resize(x, r, spec.interpolation)
    elif spec.crop == "squash_center":
        x = center_crop(resize(x, round(r / spec.crop_pct), spec.interpolation), r)
    else:
        raise ValueError(f"unknown crop {spec.crop!r}")
    if spec.interpolation == "bicubic":
        x = x.clamp_(0.0, 255.0)  # bicubic overshoots; uint8 pipelines clip here too
    x = x * (spec.value_range / 255.0)
    mean = torch.tensor(spec.mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(spec.std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


class InputSpecLike:  # pragma: no cover - typing helper only
    """The attributes :func:`preprocess` reads (an :class:`InputSpec` has them all)."""

    channel_order: str
    grayscale: bool
    resolution: int
    crop: str
    zoom: float
    crop_pct: float
    interpolation: str
    value_range: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
