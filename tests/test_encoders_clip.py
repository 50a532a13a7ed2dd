"""open_clip-family encoders loaded offline from the official HF cache layout.

Smallest faithful configurations: each checkpoint is an ``open_clip_config.json`` with the *same
tower types* as the published model (EchoCLIP: timm ConvNeXt trunk + CLIP text transformer, vocab
49408; BiomedCLIP: timm ViT + HF BERT text tower with MLP proj / CLS pooler, 256 tokens; SigLIP 2:
timm ViT with MAP pooling, custom text tower with last-token pooling, HF tokenizer, logit_bias) but
tiny widths/depths (convnext_atto, vit_tiny, 1-layer text, 64-px images), random weights saved as
the Hub's plain-state-dict ``open_clip_pytorch_model.bin`` in the snapshot layout with
``refs/main`` and ``.no_exist`` markers, and loaded with ``HF_HUB_OFFLINE=1``.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

import open_clip
from cardiobench.encoders import build_encoder
from cardiobench.encoders.base import CLIP_MEAN, CLIP_STD
from cardiobench.encoders.check import check_encoder
from cardiobench.encoders.echoclip_r_tokenizer import TemplateTokenizer, clean_report, split_variables
from cardiobench.transforms import preprocess
from cardiobench.weights import WeightsNotFound, hf_offline
from helpers import ECHO_CFG
from hf_repos import state_dict_bytes, write_hf_repo, write_template_files

BERT_ID = "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract"
BIOMED_CFG = {"model_cfg": {
    "embed_dim": 32,
    "vision_cfg": {"timm_model_name": "vit_tiny_patch16_224", "timm_model_pretrained": False,
                   "timm_pool": "", "timm_proj": "linear", "image_size": 224},
    "text_cfg": {"hf_model_name": BERT_ID, "hf_tokenizer_name": BERT_ID, "hf_proj_type": "mlp",
                 "hf_pooler_type": "cls_last_hidden_state_pooler", "context_length": 256}},
    "preprocess_cfg": {"mean": list(CLIP_MEAN), "std": list(CLIP_STD)}}
SIGLIP_CFG = {"model_cfg": {
    "embed_dim": 192, "init_logit_bias": -10, "custom_text": True,
    "vision_cfg": {"image_size": 224, "timm_model_name": "vit_tiny_patch16_224",
                   "timm_model_pretrained": False, "timm_pool": "map", "timm_proj": "none"},
    "text_cfg": {"context_length": 64, "vocab_size": 64, "hf_tokenizer_name": "timm/ViT-B-16-SigLIP2",
                 "tokenizer_kwargs": {"clean": "canonicalize"}, "width": 192, "heads": 3, "layers": 1,
                 "no_causal_mask": True, "proj_bias": True, "pool_type": "last",
                 "norm_kwargs": {"eps": 1e-6}, "act_kwargs": {"approximate": "tanh"}}},
    "preprocess_cfg": {"mean": [0.5] * 3, "std": [0.5] * 3, "interpolation": "bicubic",
                       "resize_mode": "squash"}}
WORDS = "the left ventricular ejection fraction is severe dilated ventricle normal".split()


def _bert_files() -> dict[str, bytes]:
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS + ["%", "55"]
    cfg = {"model_type": "bert", "architectures": ["BertForMaskedLM"], "hidden_size": 32,
           "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64,
           "vocab_size": len(vocab), "max_position_embeddings": 512, "pad_token_id": 0,
           "type_vocab_size": 2}
    return {"config.json": json.dumps(cfg).encode(), "vocab.txt": "\n".join(vocab).encode(),
            "tokenizer_config.json": b'{"do_lower_case": true}'}


def _siglip_tokenizer_files() -> dict[str, bytes]:
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {t: i for i, t in enumerate(["<pad>", "<eos>", "<bos>", "<unk>"] + WORDS + ["%", "55"])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    cfg = {"tokenizer_class": "PreTrainedTokenizerFast", "pad_token": "<pad>", "eos_token": "<eos>",
           "bos_token": "<bos>", "unk_token": "<unk>", "padding_side": "right"}
    return {"tokenizer.json": tok.to_str().encode(), "tokenizer_config.json": json.dumps(cfg).encode(),
            "special_tokens_map.json": b"{}"}


def _save_clip(tmp, cfg: dict, logit_scale: float, cache=None) -> tuple[dict[str, bytes], dict]:
    """Random model of ``cfg`` (built the way open_clip builds it) → Hub files + its state dict."""
    d = tmp / "build"
    d.mkdir(exist_ok=True)
    (d / "open_clip_config.json").write_text(json.dumps(cfg))
    with hf_offline(cache):
        torch.manual_seed(1)
        model = open_clip.create_model(f"local-dir:{d}", load_weights=False, pretrained_text=False)
    with torch.no_grad():
        model.logit_scale.fill_(math.log(logit_scale))
    sd = model.state_dict()
    return {"open_clip_config.json": json.dumps(cfg).encode(),
            "open_clip_pytorch_model.bin": state_dict_bytes(dict(sd))}, sd


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """An HF cache with echo-clip, echo-clip-r, BiomedCLIP (+BiomedBERT) and SigLIP2 snapshots."""
    root = tmp_path_factory.mktemp("hf")
    cache = root / "hub"
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HOME", str(root))
    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.delenv("HF_HUB_CACHE", raising=False)
    files, echo_sd = _save_clip(root, ECHO_CFG, 50.0)
    for repo in ("mkaichristensen/echo-clip", "mkaichristensen/echo-clip-r"):
        write_hf_repo(cache, repo, files, no_exist=("open_clip_model.safetensors",))
    write_hf_repo(cache, BERT_ID, _bert_files())
    files, _ = _save_clip(root, BIOMED_CFG, 30.0, cache)
    # The published .bin still carries BERT's int64 position_ids (saved by transformers < 4.31).
    sd = torch.load(__import__("io").BytesIO(files["open_clip_pytorch_model.bin"]), weights_only=True)
    sd["text.transformer.embeddings.position_ids"] = torch.arange(512)[None]
    files["open_clip_pytorch_model.bin"] = state_dict_bytes(sd)
    write_hf_repo(cache, "microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224", files,
                  no_exist=("open_clip_model.safetensors",))
    write_hf_repo(cache, "timm/ViT-B-16-SigLIP2", _siglip_tokenizer_files(), no_exist=("config.json",))
    files, _ = _save_clip(root, SIGLIP_CFG, 10.0, cache)
    write_hf_repo(cache, "timm/ViT-B-16-SigLIP2", files)
    yield {"root": root, "cache": cache, "echo_sd": echo_sd}
    mp.undo()


@pytest.fixture(scope="module")
def echoclip(hub):
    return build_encoder("echoclip")


def test_echoclip_loads_weights_and_matches_model(hub, echoclip):
    enc = echoclip
    assert enc.embed_dim == 32 and enc.spec.channel_order == "BGR" and enc.spec.crop == "echo"
    assert enc.spec.zoom == 0.1 and enc.spec.mean == CLIP_MEAN
    assert enc.logit_scale == pytest.approx(50.0, rel=1e-5)
    assert enc.logit_bias is None
    for k, v in hub["echo_sd"].items():  # every tensor really came from the file
        assert torch.equal(enc.model.state_dict()[k], v), k
    x = torch.randn(2, 3, 64, 64)
    ref = torch.nn.functional.normalize(enc.model.encode_image(x), dim=-1)
    assert torch.allclose(enc.encode_frames(x), ref, atol=1e-5)
    assert enc.weights_sha256 and len(enc.weights_sha256) == 64
    # EchoCLIP's text side is CLIP BPE, 77 tokens.
    assert isinstance(enc.tokenizer, open_clip.tokenizer.SimpleTokenizer)


def test_echoclip_check_encoder(echoclip):
    # The tiny config's image size is 64; the spec follows the official 224 contract, so feed 64.
    from dataclasses import replace

    echoclip.spec = replace(echoclip.spec, resolution=64)
    try:
        rep = check_encoder(echoclip, n=4)
    finally:
        echoclip.spec = replace(echoclip.spec, resolution=224)
    assert rep["ok"], rep
    assert rep["output_shape"] == [4, 32] and rep["unit_norm"] and rep["text_shape"] == [2, 32]
    assert rep["max_abs_diff"] == 0.0


def test_echoclip_bgr_preprocessing_known_values():
    from cardiobench.encoders.open_clip import ECHOCLIP_SPEC

    frame = torch.zeros(1, 3, 300, 400, dtype=torch.uint8)
    frame[:, 0] = 255  # pure red RGB frame
    x = preprocess(frame, ECHOCLIP_SPEC)
    assert x.shape == (1, 3, 224, 224)
    # BGR: channel 0 is blue (0), channel 2 red (255), each with CLIP mean/std of that slot.
    assert torch.allclose(x[0, 0], torch.full((224, 224), (0 - CLIP_MEAN[0]) / CLIP_STD[0]), atol=1e-4)
    assert torch.allclose(x[0, 2], torch.full((224, 224), (1 - CLIP_MEAN[2]) / CLIP_STD[2]), atol=1e-4)


def test_missing_weights_error_names_file(hub, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(WeightsNotFound, match="open_clip_pytorch_model.bin") as e:
        build_encoder("echoclip")
    assert "mkaichristensen/echo-clip" in str(e.value) and "refs" in str(e.value)


def test_biomedclip_offline_with_bert_repo(hub):
    enc = build_encoder("biomedclip")
    assert enc.embed_dim == 32 and enc.logit_scale == pytest.approx(30.0, rel=1e-5)
    tok = enc.tokenizer(["severe dilated left ventricle"])
    assert tok.shape == (1, 256) and int(tok[0, 0]) == 2  # [CLS] from BiomedBERT's own vocab.txt
    t = enc.encode_text(["normal ejection fraction", "severe dilated left ventricle"])
    assert t.shape == (2, 32) and torch.allclose(t.norm(dim=-1), torch.ones(2), atol=1e-5)
    x = torch.randn(1, 3, 224, 224)
    assert torch.allclose(enc.encode_frames(x),
                          torch.nn.functional.normalize(enc.model.encode_image(x), dim=-1), atol=1e-5)
    assert enc.spec.crop == "center" and enc.spec.channel_order == "RGB"


def test_biomedclip_error_names_bert_files(hub, tmp_path, monkeypatch):
    import shutil

    cache = tmp_path / "hub"
    shutil.copytree(hub["cache"] / "models--microsoft--BiomedCLIP-PubMedBERT_256-vit_base_patch16_224",
                    cache / "models--microsoft--BiomedCLIP-PubMedBERT_256-vit_base_patch16_224", symlinks=True)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(WeightsNotFound, match="config.json") as e:
        build_encoder("biomedclip")
    assert BERT_ID in str(e.value)


def test_siglip2_squash_logit_bias_and_tokenizer(hub):
    enc = build_encoder("siglip2")
    assert enc.embed_dim == 192
    assert enc.spec.crop == "squash" and enc.spec.mean == (0.5, 0.5, 0.5) and enc.spec.resolution == 224
    assert enc.logit_bias == pytest.approx(-10.0) and enc.logit_scale == pytest.approx(10.0, rel=1e-5)
    tok = enc.tokenizer(["the left ventricle"])
    assert tok.shape == (1, 64)
    rep = check_encoder(enc, n=2)
    assert rep["ok"] and rep["text_shape"] == [2, 192] and rep["logit_bias"] == pytest.approx(-10.0)


def test_random_control_is_labelled():
    enc = build_encoder("open_clip", model="RN50", pretrained=None)
    assert enc.weights_sha256 is None and enc.describe()["control"] is True
    assert enc.name.startswith("random-") and enc.config()["random_control"] is True


# --- EchoCLIP-R template tokenizer -----------------------------------------------------------

# As in the real vocabulary, severity words are variables too ("<#> DILATED ...").
PHRASES = ["LV EJECTION FRACTION IS <#>%. ", "<#> DILATED LEFT VENTRICLE. ",
           "<#> DILATED LEFT ATRIUM. ", "ESTIMATED PA PRESSURE IS <#>MMHG. "]


@pytest.fixture(scope="module")
def template_dir(tmp_path_factory):
    """A small template vocabulary and a blank WordPiece file, written by the test itself."""
    return write_template_files(tmp_path_factory.mktemp("echoclipr"), PHRASES)


def test_template_tokenizer_ids(template_dir):
    tt = TemplateTokenizer(template_dir)
    assert tt.template_vocab_size == 5 + len(PHRASES)  # 9
    assert tt.variable_vocab_size == 132  # as with the real files
    assert (tt.bos_id, tt.eos_id) == (9 + 132, 9 + 133)
    # clean_report: upper case, units attached, one space, PULMONARY ARTERY -> PA
    ids = tt.encode("Lv ejection fraction is 55 %.  Severe dilated left ventricle. Pulmonary artery"
                    " pressure unknown. Mild dilated left atrium.")
    # [BOS] phrase5 "55" · phrase6 "SEVERE" · phrase7 "MILD" · [EOS] (the PA sentence is not a
    # template phrase: dropped), then zero padding to 77.
    var = 9  # variable ids are offset by the template vocab size
    v55 = var + tt._variables.token_to_id("55")
    vsev = var + tt._variables.token_to_id("SEVERE")
    vmild = var + tt._variables.token_to_id("MILD")
    assert ids[:8] == [tt.bos_id, 5, v55, 6, vsev, 7, vmild, tt.eos_id]
    assert ids[8:] == [0] * 69 and len(ids) == 77
    assert max(ids) == tt.eos_id  # argmax pooling picks EOS
    # A decimal splits into integer and ".d" variable tokens.
    ids = tt.encode("Estimated PA pressure is 12.5 mmHg")
    assert ids[:5] == [tt.bos_id, 8, var + tt._variables.token_to_id("12"),
                       var + tt._variables.token_to_id(".5"), tt.eos_id]
    long = tt.encode(" ".join(["Severe dilated left ventricle."] * 100))
    assert len(long) == 77 and long[-1] == tt.eos_id and long[-2] == 6


def test_clean_and_split():
    # expected strings worked out by hand from echo_CLIP's clean_text rules
    assert clean_report("lv ejection fraction is  55 %") == "LV EJECTION FRACTION IS 55%. "
    assert clean_report("The LV was severely dilated [see 01/02/2020].") == \
        "THE LV IS SEVERE DILATED SEE. "
    assert clean_report("Estimated pulmonary artery pressure is 35 mmHg") == \
        "ESTIMATED PA PRESSURE IS 35MMHG. "
    assert clean_report("I50.9 Heart failure, unspecified") == "HEART FAILURE, UNSPECIFIED. "
    assert clean_report("RA pressure 3 + CVP mmHg") == "RA PRESSURE 3MMHG "
    assert clean_report("severe dilated left ventricle") == "SEVERE DILATED LEFT VENTRICLE "
    assert clean_report("x") == "x"
    vals, text = split_variables("MILD/MODERATE MR, EF 40.5%")
    assert vals == ["MILD/MODERATE", "40.5"] and text == "<#> MR, EF <#>%"


def test_echoclip_r_uses_template_tokenizer(hub, template_dir):
    enc = build_encoder("echoclip-r", tokenizer_dir=template_dir)
    assert isinstance(enc.tokenizer, TemplateTokenizer)
    t = enc.encode_text(["Severe dilated left ventricle.", "LV ejection fraction is 30%."])
    assert t.shape == (2, 32) and torch.allclose(t.norm(dim=-1), torch.ones(2), atol=1e-5)
    ref = enc.model.encode_text(enc.tokenizer(["Severe dilated left ventricle."]), normalize=True)
    assert torch.allclose(t[:1], ref, atol=1e-6)


def test_echoclip_r_missing_tokenizer_files(hub, tmp_path):
    with pytest.raises(WeightsNotFound, match="template_vocab.txt") as e:
        build_encoder("echoclip-r", tokenizer_dir=tmp_path)
    msg = str(e.value)
    assert "blank_wordpiece.tokenizer" in msg and "github.com/echonet/echo_CLIP" in msg
