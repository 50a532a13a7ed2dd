"""Checkpoints with exactly the official keys and shapes load strictly; anything else is refused.

Not circular: the key/shape listings (``tests/data/*_state_dict.tsv``, see ``tests/data/README.md``)
were taken from checkpoints the *official* model code built, not from our classes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cardiobench.encoders import build_encoder
from cardiobench.encoders.panecho import load_backbone

from helpers import LISTINGS


def _listing(name: str) -> list[tuple[str, list[int]]]:
    rows = (LISTINGS / name).read_text().splitlines()
    assert rows[0].split("\t") == ["key", "shape", "dtype"]
    out = []
    for row in rows[1:]:
        key, shape, dtype = row.split("\t")
        assert dtype == "float32", row
        out.append((key, json.loads(shape)))
    return out


def _random_state_dict(listing: list[tuple[str, list[int]]]) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {k: torch.randn(shape, generator=g) * 0.02 for k, shape in listing}


@pytest.fixture(scope="module")
def panecho_sd() -> dict[str, torch.Tensor]:
    return _random_state_dict(_listing("panecho_state_dict.tsv"))


def test_panecho_official_keys_load_strictly(tmp_path: Path, panecho_sd: dict[str, torch.Tensor]) -> None:
    heads = [k for k in panecho_sd if not k.startswith("encoder.")]
    assert {"E|EAvg_head.1.bias", "AVPkVel(m|s)_head.1.weight", "RADimensionM-L(cm)_head.1.weight"} <= set(heads)
    path = tmp_path / "panecho.pt"
    torch.save({"weights": panecho_sd}, path)  # the official wrapper format
    model = load_backbone(path)
    mine = model.state_dict()
    for k, v in panecho_sd.items():
        if k.startswith("encoder.") and k != "encoder.time_encoder.pe":
            assert torch.equal(mine[k[len("encoder."):]], v), k
    # every backbone parameter came from the file (only the fixed time encoding is recomputed)
    assert set(mine) == {k[len("encoder."):] for k in panecho_sd if k.startswith("encoder.")}


@pytest.mark.parametrize("extra", ["stray.weight", "encoder_head.1.weight.extra", "LVEF head.1.bias",
                                   "EF_head.2.weight"])
def test_panecho_stray_key_is_refused(monkeypatch: pytest.MonkeyPatch, panecho_sd: dict[str, torch.Tensor],
                                      extra: str) -> None:
    # the file format is covered above; here the loaded dict is handed over directly (no 120 MB write)
    ckpt = {"weights": {**panecho_sd, extra: torch.zeros(1, 768)}}
    monkeypatch.setattr("cardiobench.encoders.panecho.load_checkpoint", lambda p: ckpt)
    path = Path("panecho.pt")
    with pytest.raises(ValueError, match="not PanEcho's MultiTaskModel") as err:
        load_backbone(path)
    assert extra in str(err.value)


def test_panecho_missing_backbone_key_is_refused(monkeypatch: pytest.MonkeyPatch,
                                                 panecho_sd: dict[str, torch.Tensor]) -> None:
    sd = dict(panecho_sd)
    sd.pop("encoder.transformer.layers.0.linear1.weight")
    monkeypatch.setattr("cardiobench.encoders.panecho.load_checkpoint", lambda p: {"weights": sd})
    with pytest.raises(ValueError, match="linear1"):
        load_backbone(Path("panecho.pt"))


def test_echoprime_official_keys_load_strictly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sd = _random_state_dict(_listing("echoprime_state_dict.tsv"))
    root = tmp_path / "model_data" / "weights"
    root.mkdir(parents=True)
    torch.save(sd, root / "echo_prime_encoder.pt")
    enc = build_encoder("echoprime", weights=tmp_path)
    mine = enc.model.state_dict()
    assert set(mine) == set(sd)
    assert all(torch.equal(mine[k], v) for k, v in sd.items())
    monkeypatch.setattr("cardiobench.encoders.torchvision_video.load_checkpoint",
                        lambda p: {**sd, "stray.bias": torch.zeros(3)})
    with pytest.raises(RuntimeError, match="stray.bias"):
        build_encoder("echoprime", weights=tmp_path)
