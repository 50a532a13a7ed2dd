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

    A still (a medium of one frame) is one frame: it yields ``[0]`` when ``pad="none"`` or when
    the caller asks for stills unpadded (``pad_stills=False``, what image encoders do: they embed
    frames one by one, so 16 copies of a still would cost 16× for the same mean embedding); a
    video encoder that needs ``n_frames`` slots gets ``[0] * n_frames`` under ``repeat_last``.
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
                fps: float | None = None, pad_stills: bool = True) -> np.ndarray:
        """Frame indices (int64, sorted, may repeat when padded) for a clip of ``n_available``;
        ``pad_stills=False``: a one-frame medium gives ``[0]`` whatever ``pad`` says."""
        if n_available < 1:
            raise ValueError("a clip with zero frames has no frames to sample")
        if n_available == 1:
            padded = self.pad != "none" and pad_stills
            return np.zeros(self.n_frames if padded else 1, dtype=np.int64)
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


def _round_half_even(x: float) -> int:
    # Python's round() is half-to-even, as the official recipes use it; keep it explicit
    return int(round(x))


def echo_crop_box(h: int, w: int, zoom: float = 0.1,
                  trim: Literal["truncate", "round"] = "truncate") -> tuple[int, int, int, int]:
    """EchoCLIP/EchoPrime ``crop_and_scale`` window ``(top, bottom, left, right)`` on an H×W frame.

    Official rounding: the side crop to 1:1 drops ``int(round((W - H) / 2))`` columns (or rows)
    per side, Python half-to-even; the zoom trim then drops ``int(zoom * side)`` per side,
    *truncated*, separately for width and height. With an odd W−H the result is not square
    (437×600 → 351×350), exactly as upstream.

    ``trim="round"`` is the published CardioBench copy of ``crop_and_scale`` (``src/video.py``):
    it drops ``int(round(zoom * side))`` instead, and trims nothing where either trim is 0 or
    would leave nothing (437×600 → rows 44:393, cols 126:474 instead of 43:394, 125:475).
    """
    if trim not in ("truncate", "round"):
        raise ValueError(f"unknown zoom trim rule {trim!r} (truncate or round)")
    top, bottom, left, right = 0, h, 0, w
    if w > h:
        pad = _round_half_even((w - h) / 2)
        left, right = pad, w - pad
    elif h > w:
        pad = _round_half_even((h - w) / 2)
        top, bottom = pad, h - pad
    ch, cw = bottom - top, right - left
    if trim == "truncate":
        trim_w, trim_h = int(cw * zoom), int(ch * zoom)
    elif trim == "round":
        trim_w, trim_h = _round_half_even(cw * zoom), _round_half_even(ch * zoom)
        if not (trim_w > 0 and trim_h > 0 and 2 * trim_h < ch and 2 * trim_w < cw):
            trim_w = trim_h = 0
    else:
        raise ValueError(f"unknown trim {trim!r} (truncate or round)")
    return top + trim_h, bottom - trim_h, left + trim_w, right - trim_w


def echo_crop(x: torch.Tensor, zoom: float = 0.1,
              trim: Literal["truncate", "round"] = "truncate") -> torch.Tensor:
    """Slice ``(..., H, W)`` to :func:`echo_crop_box` (free: a view, no copy)."""
    t, b, l, r = echo_crop_box(x.shape[-2], x.shape[-1], zoom, trim)
    return x[..., t:b, l:r]


#: the crops that take :func:`echo_crop`'s window, and how each rounds its zoom trim
_ECHO_TRIM: dict[str, Literal["truncate", "round"]] = {"echo": "truncate", "echo_round": "round"}


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """Centre crop ``(..., H, W)`` to ``size × size`` (no-op where already smaller).

    Offset ``int(round((L - size) / 2))``, half-to-even, as torchvision's ``CenterCrop``.
    """
    h, w = x.shape[-2:]
    top = max(_round_half_even((h - size) / 2), 0)
    left = max(_round_half_even((w - size) / 2), 0)
    return x[..., top: top + size, left: left + size]


def center_crop_pad(x: torch.Tensor, size: int) -> torch.Tensor:
    """torchvision ``CenterCrop(size)`` including its zero padding of frames smaller than ``size``."""
    h, w = x.shape[-2:]
    if h < size or w < size:
        ph, pw = max(size - h, 0), max(size - w, 0)
        x = F.pad(x, (pw // 2, (pw + 1) // 2, ph // 2, (ph + 1) // 2))
    return center_crop(x, size)


def short_side_size(h: int, w: int, size: int) -> tuple[int, int]:
    """torchvision ``Resize(size)`` output: short side ``size``, long side ``int(size * L / S)`` (truncated)."""
    if h <= w:
        return size, int(size * w / h)
    return int(size * h / w), size


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
    return resize(x, short_side_size(x.shape[-2], x.shape[-1], size), mode)


_CV2_FLAGS = {"area": "INTER_AREA", "bilinear": "INTER_LINEAR", "nearest": "INTER_NEAREST",
              "bicubic": "INTER_CUBIC"}
_PIL_FLAGS = {"bicubic": "BICUBIC", "bilinear": "BILINEAR", "nearest": "NEAREST", "area": "BOX"}


def resize_uint8(x: torch.Tensor, hw: tuple[int, int], mode: str, resampler: str) -> torch.Tensor:
    """Resize ``uint8 (N, 3, H, W)`` as the named library does on uint8 images; returns uint8.

    - ``cv2`` bicubic: torch bicubic *without* antialias (cv2's ``INTER_CUBIC`` has none, same
      a = −0.75 kernel), clamped and rounded; batched on the frames' device, at most 1 grey level
      from cv2 (its fixed-point arithmetic rounds differently in rare pixels).
    - ``cv2`` area/bilinear/nearest: ``cv2.resize`` per frame on the CPU. ``INTER_AREA`` uses
      fractional pixel coverage (and a special rule when enlarging) that no torch mode reproduces.
    - ``pil``: ``PIL.Image.resize`` per frame on the CPU (what torchvision's ``Resize`` runs on a PIL
      image). PIL filters horizontally then vertically with a uint8 stage in between; torch's
      antialiased bicubic is up to 9 grey levels away, so only PIL itself meets the tolerance.
    """
    h, w = hw
    if tuple(x.shape[-2:]) == (h, w):
        return x  # both libraries' Resize are the identity here (checked on the golden cases)
    if resampler == "cv2" and mode == "bicubic":
        y = F.interpolate(x.to(torch.float32, memory_format=torch.contiguous_format), size=hw,
                          mode="bicubic", align_corners=False, antialias=False)
        return y.clamp_(0.0, 255.0).round_().to(torch.uint8)
    frames = x.permute(0, 2, 3, 1).cpu().numpy()
    if resampler == "cv2":
        import cv2

        flag = getattr(cv2, _CV2_FLAGS[mode])
        out = np.stack([cv2.resize(f, (w, h), interpolation=flag) for f in frames])
    elif resampler == "pil":
        from PIL import Image

        flag = getattr(Image.Resampling, _PIL_FLAGS[mode])
        out = np.stack([np.asarray(Image.fromarray(f).resize((w, h), flag)) for f in frames])
    else:
        raise ValueError(f"unknown resampler {resampler!r} (cv2, pil or torch)")
    return torch.from_numpy(out).permute(0, 3, 1, 2).to(x.device)


def _short_side_target(spec: "InputSpecLike") -> int:
    # timm's eval transform resizes the short side to floor(R / crop_pct) before the centre crop
    return int(math.floor(spec.resolution / spec.crop_pct))


def _geometry_uint8(x: torch.Tensor, spec: "InputSpecLike") -> torch.Tensor:
    """Crop/resize with a uint8 stage (``cv2``/``pil`` resamplers), as the official pipelines do."""
    r, mode, lib = spec.resolution, spec.interpolation, spec.resampler
    if spec.crop in _ECHO_TRIM:
        return resize_uint8(echo_crop(x, spec.zoom, _ECHO_TRIM[spec.crop]), (r, r), mode, lib)
    if spec.crop == "center":
        short = _short_side_target(spec)
        return center_crop(resize_uint8(x, short_side_size(x.shape[-2], x.shape[-1], short), mode, lib), r)
    if spec.crop in ("squash", "none"):
        return resize_uint8(x, (r, r), mode, lib)
    if spec.crop == "squash_center":
        side = round(r / spec.crop_pct)
        return center_crop(resize_uint8(x, (side, side), mode, lib), r)
    if spec.crop == "crop_only":
        return center_crop_pad(x, r)
    raise ValueError(f"unknown crop {spec.crop!r}")


def _geometry_float(x: torch.Tensor, spec: "InputSpecLike") -> torch.Tensor:
    """Resize (and crop) float frames as ``spec.crop`` says, the ``echo`` crop already taken
    by the caller on uint8; bicubic output is clipped to 0-255."""
    r, crop = spec.resolution, spec.crop
    if crop in _ECHO_TRIM or crop in ("squash", "none"):
        x = resize(x, r, spec.interpolation)
    elif crop == "center":
        x = center_crop(resize_short_side(x, _short_side_target(spec), spec.interpolation), r)
    elif crop == "squash_center":
        x = center_crop(resize(x, round(r / spec.crop_pct), spec.interpolation), r)
    elif crop == "crop_only":
        x = center_crop_pad(x, r)
    else:
        raise ValueError(f"unknown crop {crop!r}")
    if spec.interpolation == "bicubic":
        x = x.clamp_(0.0, 255.0)  # bicubic overshoots; uint8 pipelines clip here too
    return x


def preprocess(frames: torch.Tensor, spec: "InputSpecLike") -> torch.Tensor:
    """``uint8 (T, 3, H, W)`` RGB on any device → model input ``float32 (T, 3, R, R)``.

    Steps, all batched over frames unless the resampler needs a library call per frame: channel
    order (RGB or BGR, as the model was trained), geometry (``crop``: ``echo`` = EchoCLIP's
    ``crop_and_scale`` window then resize; ``echo_round`` = the same with the published
    benchmark's rounded zoom trim (:func:`echo_crop_box`); ``center`` = resize short side to ``floor(R / crop_pct)`` then centre crop R;
    ``squash`` = resize to R×R ignoring aspect; ``squash_center`` = resize to ``R / crop_pct``
    square ignoring aspect, then centre crop R; ``crop_only`` = centre crop R with zero padding,
    no resize; ``none`` = resize only), value scaling to ``value_range`` (1.0 for [0, 1], 255.0
    for 0–255) and mean/std normalisation in that value space. ``grayscale`` averages the
    channels first (replicated back to 3).

    ``spec.resampler`` says whose resize the recipe reproduces: ``cv2`` or ``pil`` keep the
    official uint8 stage (see :func:`resize_uint8`); ``torch`` resizes in float (antialiased),
    for encoders without an official uint8 pipeline.
    """
    if frames.dtype != torch.uint8:
        raise TypeError(f"preprocess expects uint8 frames, got {frames.dtype}")
    x = frames
    if spec.channel_order == "BGR":
        x = x.flip(1)
    resampler = getattr(spec, "resampler", "torch")
    if resampler in ("cv2", "pil") and not spec.grayscale:
        x = _geometry_uint8(x, spec).float()
    else:
        if spec.crop in _ECHO_TRIM:  # a pure slice: taken on uint8, before any arithmetic
            x = echo_crop(x, spec.zoom, _ECHO_TRIM[spec.crop])
        if spec.grayscale:
            # one grey channel through the geometry, widened to three by the normalisation's
            # broadcast: a third of the work, same numbers (a sum of three uint8 values is exact
            # in float32). Three adds beat one strided sum over the channel axis 3x on CPU, and
            # unsqueeze gives the channel axis plain strides: with channels-last ones torch's
            # area resize takes its 3x slower channels-last kernel
            x = x[:, 0].float().add_(x[:, 1]).add_(x[:, 2]).div_(3).unsqueeze(1)
        else:
            x = x.to(torch.float32, memory_format=torch.contiguous_format)
        x = _geometry_float(x, spec)
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
    resampler: str
    value_range: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
