"""Encoder construction contracts: strict arguments, untouched caller RNG, messages, EchoCLIP-R text."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import pytest
import torch
import yaml

from cardiobench.encoders import build_encoder
from cardiobench.encoders.echoclip_r_tokenizer import TemplateTokenizer
from cardiobench.weights import WeightsNotFound, hf_snapshot
from hf_repos import write_template_files

PHRASES = ["LEFT VENTRICULAR EJECTION FRACTION IS <#>%.", "<#> DILATED LEFT VENTRICLE."]


# -- arguments ---------------------------------------------------------------------------------------

def test_unknown_encoder_arg_lists_the_accepted_ones() -> None:
    with pytest.raises(ValueError, match=r"does not accept 'sise'.*accepted: device, n_frames, size"):
        build_encoder("pixels", sise=8)
    with pytest.raises(ValueError, match=r"'recipee'.*recipe"):
        build_encoder("echoclip", recipee="paper")
    with pytest.raises(ValueError, match=r"'chanel_order'.*channel_order.*recipe"):
        build_encoder("echoprime", chanel_order="RGB")
    assert build_encoder("pixels", size=4).embed_dim == 16


def test_unknown_recipe_is_refused_before_loading() -> None:
    with pytest.raises(ValueError, match="recipes: authors, authors-mp4"):
        build_encoder("echoprime", recipe="paper", weights="/nonexistent")
    with pytest.raises(ValueError, match="recipes: authors, authors-ynhhs"):
        build_encoder("panecho", recipe="paper", weights="/nonexistent")


def test_random_control_leaves_the_callers_rng_untouched() -> None:
    torch.manual_seed(123)
    expected = torch.rand(4)
    torch.manual_seed(123)
    a = build_encoder("timm", model="vit_tiny_patch16_224", pretrained=False, seed=1)
    assert torch.equal(torch.rand(4), expected)  # the constructor did not reseed or consume it
    b = build_encoder("timm", model="vit_tiny_patch16_224", pretrained=False, seed=1)
    c = build_encoder("timm", model="vit_tiny_patch16_224", pretrained=False, seed=2)
    wa, wb, wc = (e.model.patch_embed.proj.weight for e in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)  # weights a function of the seed alone


# -- messages ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("repo,any_of,shipped", [
    ("timm/ViT-B-16-SigLIP2", ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"),
     "open_clip_model.safetensors"),
    ("mkaichristensen/echo-clip", ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"),
     "open_clip_pytorch_model.bin"),
    ("timm/vit_small_patch16_dinov3.lvd1689m", ("model.safetensors", "pytorch_model.bin"), "model.safetensors"),
])
def test_missing_repo_hint_names_the_file_the_repo_ships(tmp_path: Path, repo: str, any_of: tuple[str, ...],
                                                         shipped: str) -> None:
    with pytest.raises(WeightsNotFound) as err:
        hf_snapshot(repo, ["open_clip_config.json"], any_of=any_of, cache=tmp_path)
    msg = str(err.value)
    assert f"download {repo} open_clip_config.json {shipped}`" in msg
    assert "--weights DIR" in msg and "weights=DIR" not in msg


def test_missing_bert_repo_lists_every_file_at_once(tmp_path: Path) -> None:
    from cardiobench.encoders.open_clip import _check_text_repos

    bert = "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract"
    cfg = {"text_cfg": {"hf_model_name": bert, "hf_tokenizer_name": bert}}
    with pytest.raises(WeightsNotFound) as err:
        _check_text_repos(cfg, tmp_path, "biomedclip")
    msg = str(err.value)
    assert "lacks config.json, tokenizer_config.json, tokenizer.json or vocab.txt" in msg
    assert "weights" not in msg.split("lacks")[0]  # the BERT repo holds no weights we need


def test_echoprime_message_uses_the_cli_flag(tmp_path: Path) -> None:
    with pytest.raises(WeightsNotFound, match="pass --weights"):
        build_encoder("echoprime", weights=tmp_path)


def test_open_clip_random_init_warning_silenced_only_when_weights_load(caplog: pytest.LogCaptureFixture) -> None:
    from cardiobench.encoders.open_clip import _quiet_random_init

    msg = "No pretrained weights loaded for model 'x'. Model initialized randomly."
    with caplog.at_level(logging.WARNING):
        with _quiet_random_init(Path("w.bin")):
            logging.warning(msg)
            logging.warning("something else")
        assert [r.getMessage() for r in caplog.records] == ["something else"]
        with _quiet_random_init(None):  # a random control: the warning is true and stays
            logging.warning(msg)
    assert caplog.records[-1].getMessage() == msg


def test_check_encoder_quick_skips_the_phantom(capsys: pytest.CaptureFixture[str]) -> None:
    from cardiobench.cli import main

    assert main(["check-encoder", "pixels", "--quick", "--encoder-arg", "size=4"]) == 0
    out = capsys.readouterr().out
    assert "phantom probe skipped" in out and '"dim_ok": true' in out and '"phantom"' not in out


# -- EchoCLIP-R text ---------------------------------------------------------------------------------

@pytest.fixture()
def template_dir(tmp_path: Path) -> Path:
    return write_template_files(tmp_path, PHRASES)


def test_collapsed_prompt_warns_and_cleaner_is_recorded(template_dir: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        tt = TemplateTokenizer(template_dir)
    assert tt.identity == "TemplateTokenizer[cleaner=echo_clip-clean_text-v1]"
    assert tt.user_utils_sha256 is None and not caplog.records  # no utils.py: nothing to say
    with caplog.at_level(logging.WARNING):
        ok = tt.encode("Severe dilated left ventricle.")
        bad = tt.encode("the LV looks big")
    assert ok[:4] == [tt.bos_id, 6, ok[2], tt.eos_id]
    assert bad[:3] == [tt.bos_id, tt.eos_id, 0]
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1 and "'the LV looks big'" in warned[0] and "[BOS, EOS]" in warned[0]


def test_no_code_from_the_tokenizer_folder_runs(template_dir: Path, tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    # every way a parsed-then-executed utils.py could run code: module body, a decorator on
    # clean_text, a default argument, an assignment clean_text refers to
    marker = tmp_path / "ran"
    source = (f"import pathlib\nM = pathlib.Path({str(marker)!r})\nM.write_text('body')\n"
              "def deco(f):\n    M.write_text('decorator')\n    return f\n"
              "_RULE = M.write_text('assignment')\n"
              "@deco\ndef clean_text(t, _d=M.write_text('default')):\n    return _RULE\n").encode()
    (template_dir / "utils.py").write_bytes(source)
    with caplog.at_level(logging.WARNING):
        tt = TemplateTokenizer(template_dir)
        ids = tt.encode("Severe dilated left ventricle.")
    assert not marker.exists()
    digest = hashlib.sha256(source).hexdigest()
    assert tt.user_utils_sha256 == digest
    assert tt.identity == "TemplateTokenizer[cleaner=echo_clip-clean_text-v1]"
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "utils.py differs from echo_CLIP's" in warned and digest[:12] in warned
    assert "19f1e93c38bc" in warned and "it is not run" in warned
    assert ids[1] == 6  # the project's cleaning ran: the template phrase matched


def test_zero_shot_prompt_sets_do_not_collapse_with_the_real_vocabulary() -> None:
    folder = os.environ.get("CARDIOBENCH_ECHOCLIP_R_DIR")
    if not folder or not (Path(folder) / "template_vocab.txt").is_file():
        pytest.skip("needs the user's echo_CLIP template_vocab.txt (academic licence, not shipped); "
                    "set CARDIOBENCH_ECHOCLIP_R_DIR")
    tt = TemplateTokenizer(folder)
    prompt_dir = Path(__file__).resolve().parents[1] / "protocols" / "prompts"
    collapsed = []
    for path in sorted(prompt_dir.glob("*.yaml")):
        cfg = yaml.safe_load(path.read_text())
        texts = [t.format(value=50) for t in cfg.get("templates", [])]
        texts += list(cfg.get("positive", [])) + list(cfg.get("negative", []))
        for cls in (cfg.get("classes") or {}).values():
            texts += list(cls) if isinstance(cls, list) else [str(cls)]
        assert texts, path
        collapsed += [(path.name, t) for t in texts if tt.encode(t)[1] == tt.eos_id]
    assert not collapsed, collapsed
