"""Sampling policies and batched preprocessing give known outputs for known inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cardiobench.encoders.base import IMAGENET_MEAN, IMAGENET_STD, InputSpec
from cardiobench.transforms import SamplingPolicy, echo_crop, preprocess, to_tensor


def test_consecutive_from_key_frame_with_stride() -> None:
    p = SamplingPolicy(kind="consecutive", n_frames=4, stride=2)
    assert p.indices(20, key_frame=5).tolist() == [5, 7, 9, 11]
    assert p.indices(20, key_frame=None).tolist() == [0, 2, 4, 6]
    # short clip: padded by repeating the last index, as many models were trained
    assert p.indices(6, key_frame=3).tolist() == [3, 5, 5, 5]
    assert SamplingPolicy("consecutive", 4, pad="none").indices(3).tolist() == [0, 1, 2]
    # a key frame past the end is clamped
    assert p.indices(10, key_frame=99).tolist() == [9, 9, 9, 9]


def test_uniform_spans_the_whole_clip() -> None:
    p = SamplingPolicy(kind="uniform", n_frames=5)
    assert p.indices(101).tolist() == [0, 25, 50, 75, 100]
    assert p.indices(3).tolist() == [0, 0, 1, 2, 2]


def test_fixed_count_at_target_fps() -> None:
    p = SamplingPolicy(kind="fps", n_frames=4, target_fps=25.0, start="zero")
    assert p.indices(100, fps=50.0).tolist() == [0, 2, 4, 6]
    with pytest.raises(ValueError, match="fps"):
        p.indices(100)


def test_still_image_and_invalid_policies() -> None:
    assert SamplingPolicy("uniform", 3).indices(1).tolist() == [0, 0, 0]
    # a still is one frame for a caller that embeds frames one by one (image encoders)
    assert SamplingPolicy("uniform", 3).indices(1, pad_stills=False).tolist() == [0]
    assert SamplingPolicy("consecutive", 4, pad="none").indices(1).tolist() == [0]
    assert SamplingPolicy("consecutive", 2).indices(5, pad_stills=False).tolist() == [0, 1]
    with pytest.raises(ValueError):
        SamplingPolicy("uniform", 0)
    with pytest.raises(ValueError):
        SamplingPolicy("fps", 4)
    with pytest.raises(ValueError, match="zero frames"):
        SamplingPolicy().indices(0)


def test_echo_crop_geometry() -> None:
    x = torch.arange(100 * 140).reshape(1, 1, 100, 140)
    y = echo_crop(x, zoom=0.1)
    # square 100x100 from columns 20..119, then trim 10 px each side -> 80x80 at (10, 30)
    assert y.shape[-2:] == (80, 80)
    assert y[0, 0, 0, 0].item() == x[0, 0, 10, 30].item()


def test_preprocess_known_values_and_channel_order() -> None:
    frames = np.zeros((2, 8, 8, 3), np.uint8)
    frames[..., 0] = 255  # pure red
    x = to_tensor(frames)
    spec = InputSpec(resolution=8, crop="none", interpolation="bilinear", mean=IMAGENET_MEAN,
                     std=IMAGENET_STD)
    out = preprocess(x, spec)
    assert out.shape == (2, 3, 8, 8)
    expected = [(1 - IMAGENET_MEAN[0]) / IMAGENET_STD[0], -IMAGENET_MEAN[1] / IMAGENET_STD[1],
                -IMAGENET_MEAN[2] / IMAGENET_STD[2]]
    assert torch.allclose(out[0, :, 0, 0], torch.tensor(expected), atol=1e-5)
    bgr = preprocess(x, InputSpec(resolution=8, crop="none", mean=(0, 0, 0), std=(1, 1, 1),
                                  channel_order="BGR"))
    assert bgr[0, 2, 0, 0].item() == pytest.approx(1.0) and bgr[0, 0, 0, 0].item() == 0.0


def test_preprocess_in_0_255_space_like_echoprime() -> None:
    frames = np.full((1, 4, 4, 3), 100, np.uint8)
    spec = InputSpec(resolution=4, crop="none", value_range=255.0, mean=(29.0, 28.0, 29.0),
                     std=(48.0, 46.0, 47.0))
    out = preprocess(to_tensor(frames), spec)
    assert out[0, 0, 0, 0].item() == pytest.approx((100 - 29.0) / 48.0, rel=1e-5)


def test_preprocess_is_batched_and_matches_per_frame() -> None:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (5, 60, 90, 3), dtype=np.uint8)
    spec = InputSpec(resolution=32)
    batched = preprocess(to_tensor(frames), spec)
    single = torch.cat([preprocess(to_tensor(frames[i:i + 1]), spec) for i in range(5)])
    assert torch.allclose(batched, single, atol=1e-5)


def test_preprocess_rejects_float_input() -> None:
    with pytest.raises(TypeError, match="uint8"):
        preprocess(torch.zeros(1, 3, 4, 4), InputSpec(resolution=4))


def test_squash_then_center_crop_like_panecho() -> None:
    # 2 rows x 4 cols of distinct values; squash to 8x8 then centre-crop 4x4 (crop_pct 0.5)
    frames = np.zeros((1, 20, 40, 3), np.uint8)
    frames[:, :, 20:] = 200
    spec = InputSpec(resolution=4, crop="squash_center", crop_pct=0.5, interpolation="nearest",
                     mean=(0, 0, 0), std=(1, 1, 1), value_range=255.0)
    out = preprocess(to_tensor(frames), spec)
    assert out.shape == (1, 3, 4, 4)
    # the aspect ratio is squashed (not cropped to square first): left half 0, right half 200
    assert out[0, 0, :, :2].max().item() == 0.0 and out[0, 0, :, 2:].min().item() == 200.0
