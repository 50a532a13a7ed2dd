"""DINOv3 (timm), EchoPrime, PanEcho, torchvision video encoders and a plugin, loaded offline.

Faithful configurations: DINOv3 is the real ``vit_small_patch16_dinov3`` architecture; EchoPrime
the real ``mvit_v2_s`` with its 512-d head, run on one full 16×224×224 clip (≈3.5 s on 2 CPU cores:
MViT needs exactly 16×224); PanEcho the full ConvNeXt-T + Transformer backbone, run on 4 frames
at 64 px (the architecture accepts any T ≤ 16 and any size ConvNeXt can stride) to stay fast.
All use random weights saved in the official formats and paths.
"""

from __future__ import annotations

import pytest
import torch
import torchvision

from cardiobench.encoders import build_encoder
from cardiobench.encoders.base import IMAGENET_MEAN, InputSpec
from cardiobench.encoders.check import check_encoder
from cardiobench.encoders.panecho import PanEchoBackbone, sinusoid
from cardiobench.transforms import preprocess
from cardiobench.weights import WeightsNotFound
from hf_repos import write_hf_repo

DINO = "vit_small_patch16_dinov3.lvd1689m"


@pytest.fixture(scope="module")
def dino(tmp_path_factory):
    import timm
    from safetensors.torch import save_file

    root = tmp_path_factory.mktemp("hfd")
    torch.manual_seed(0)
    ref = timm.create_model(DINO, pretrained=False)  # full model with its head, as published
    sd = {k: v.contiguous() for k, v in ref.state_dict().items()}
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".safetensors") as f:
        save_file(sd, f.name)
        data = open(f.name, "rb").read()
    write_hf_repo(root / "hub", "timm/" + DINO, {"model.safetensors": data})
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HOME", str(root))
    enc = build_encoder("dinov3")
    yield enc, ref
    mp.undo()


def test_dinov3_cls_pooling_and_weights(dino):
    enc, ref = dino
    assert enc.embed_dim == 384 and enc.spec.resolution == 256 and enc.spec.mean == IMAGENET_MEAN
    assert enc.config()["global_pool"] == "token" and not enc.has_text
    x = torch.randn(2, 3, 256, 256)
    ref.eval()
    with torch.no_grad():
        tokens = ref.forward_features(x)
    cls = tokens[:, 0]  # forward_features already applies the final norm; CLS is token 0
    assert torch.allclose(enc.encode_frames(x), cls, atol=1e-5)
    rep = check_encoder(enc, n=1)
    assert rep["ok"] and rep["unit_norm"] is None and rep["output_shape"] == [1, 384]


def test_dinov3_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(WeightsNotFound, match="model.safetensors") as e:
        build_encoder("dinov3")
    assert "timm/vit_small_patch16_dinov3.lvd1689m" in str(e.value)


@pytest.fixture(scope="module")
def echoprime_file(tmp_path_factory):
    root = tmp_path_factory.mktemp("ep")
    torch.manual_seed(0)
    m = torchvision.models.video.mvit_v2_s()
    m.head[-1] = torch.nn.Linear(m.head[-1].in_features, 512)
    path = root / "model_data" / "weights" / "echo_prime_encoder.pt"
    path.parent.mkdir(parents=True)
    torch.save(m.state_dict(), path)
    return root, path, m.eval()


def test_echoprime_loads_and_matches(echoprime_file):
    root, path, ref = echoprime_file
    enc = build_encoder("echoprime", weights=root)  # the folder holding model_data/
    assert enc.embed_dim == 512 and enc.spec.value_range == 255.0 and enc.spec.kind == "video"
    s = enc.spec.sampling
    assert (s.n_frames, s.stride, s.start) == (16, 2, "zero")
    assert list(s.indices(100)) == list(range(0, 32, 2))
    x = torch.randn(1, 16, 3, 224, 224)
    with torch.no_grad():
        want = ref(x.permute(0, 2, 1, 3, 4))
    got = enc.encode_clips(x)
    assert got.shape == (1, 512) and torch.allclose(got, want, atol=1e-4)


def test_echoprime_preprocessing_known_values():
    from cardiobench.encoders.torchvision_video import ECHOPRIME_MEAN, ECHOPRIME_STD

    spec = InputSpec(kind="video", resolution=224, crop="echo", zoom=0.1, mean=ECHOPRIME_MEAN,
                     std=ECHOPRIME_STD, value_range=255.0, channel_order="BGR")
    frame = torch.zeros(1, 3, 112, 112, dtype=torch.uint8)
    frame[:, 0] = 200  # red in RGB
    x = preprocess(frame, spec)
    # 0-255 values, BGR: slot 2 holds red = 200, slot 0 blue = 0.
    assert torch.allclose(x[0, 2], torch.full((224, 224), (200 - ECHOPRIME_MEAN[2]) / ECHOPRIME_STD[2]), atol=1e-3)
    assert torch.allclose(x[0, 0], torch.full((224, 224), -ECHOPRIME_MEAN[0] / ECHOPRIME_STD[0]), atol=1e-3)


def test_echoprime_missing_names_file(tmp_path):
    with pytest.raises(WeightsNotFound, match="echo_prime_encoder.pt") as e:
        build_encoder("echoprime", weights=tmp_path)
    assert "model_data.zip" in str(e.value)


@pytest.fixture(scope="module")
def panecho_home(tmp_path_factory):
    """``$TORCH_HOME/hub/checkpoints/panecho.pt`` = {'weights': MultiTaskModel state dict}."""
    home = tmp_path_factory.mktemp("th")
    torch.manual_seed(0)
    bb = PanEchoBackbone()
    sd = {f"encoder.{k}": v for k, v in bb.state_dict().items()}
    sd["EF_head.1.weight"], sd["EF_head.1.bias"] = torch.randn(1, 768), torch.randn(1)
    sd["LVWallThickness-increased-modsev_head.1.weight"] = torch.randn(1, 768)
    sd["LVWallThickness-increased-modsev_head.1.bias"] = torch.randn(1)
    path = home / "hub" / "checkpoints" / "panecho.pt"
    path.parent.mkdir(parents=True)
    torch.save({"weights": sd}, path)
    return home, bb.eval(), sd


def test_panecho_loads_and_preserves_reshape(panecho_home, monkeypatch):
    home, bb, sd = panecho_home
    monkeypatch.setenv("TORCH_HOME", str(home))
    enc = build_encoder("panecho")
    assert enc.embed_dim == 768 and enc.spec.channel_order == "BGR" and enc.spec.mean == IMAGENET_MEAN
    assert enc.spec.sampling.stride == 1 and enc.spec.sampling.n_frames == 16
    assert torch.allclose(enc.model.time_encoder.pe, sinusoid(16, 768))
    clips = torch.randn(1, 4, 3, 64, 64)  # (B, T, 3, R, R), fewer frames / smaller for speed
    got = enc.encode_clips(clips)
    x = clips.permute(0, 2, 1, 3, 4).contiguous()  # PanEcho's (B, 3, T, H, W) input
    with torch.no_grad():
        frames = bb.encoder(x.reshape(4, 3, 64, 64))  # its quirk: no permute before reshape
        want = bb.transformer(frames[None] + sinusoid(16, 768)[:, :4]).mean(1)
    assert got.shape == (1, 768) and torch.allclose(got, want, atol=1e-4)


def test_panecho_rejects_mismatched_keys(tmp_path, panecho_home):
    _, _, sd = panecho_home
    bad = dict(sd)
    bad.pop("encoder.transformer.layers.0.linear1.weight")
    torch.save({"weights": bad}, tmp_path / "panecho.pt")
    with pytest.raises(ValueError, match="linear1"):
        build_encoder("panecho", weights=tmp_path / "panecho.pt")


def test_panecho_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(WeightsNotFound, match="panecho.pt") as e:
        build_encoder("panecho")
    assert "releases/download/v1.0/panecho.pt" in str(e.value)


def test_r2plus1d_kinetics_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    url = torchvision.models.get_weight("R2Plus1D_18_Weights.KINETICS400_V1").url
    with pytest.raises(WeightsNotFound, match=url.rsplit("/", 1)[-1]):
        build_encoder("r2plus1d_18")
    torch.manual_seed(0)
    m = torchvision.models.video.r2plus1d_18()
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(m.state_dict(), tmp_path / "hub" / "checkpoints" / url.rsplit("/", 1)[-1])
    enc = build_encoder("r2plus1d_18")
    m.fc = torch.nn.Identity()
    x = torch.randn(1, 4, 3, 32, 32)
    with torch.no_grad():
        want = m.eval()(x.permute(0, 2, 1, 3, 4))
    assert enc.embed_dim == 512 and torch.allclose(enc.encode_clips(x), want, atol=1e-5)


def test_plugin_through_build_and_check():
    enc = build_encoder("helpers:PluginEncoder")
    rep = check_encoder(enc, n=3)
    assert rep["ok"] and rep["output_shape"] == [3, 3] and rep["has_text"] is False
    # Uniform noise in [0, 1]: mean colour ≈ 0.5.
    from cardiobench.encoders.check import synthetic_batch

    assert abs(float(synthetic_batch(enc, 3).mean()) - 0.5) < 0.05
