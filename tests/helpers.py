"""Shared constants and small builders for the tests (a helper module: no tests here).

The one place the tests locate their data files:

* ``DATA`` (``tests/data``): test data that ships with the project, so every test runs in a
  user's clone: the golden preprocessing arrays and the official state-dict listings (made for
  this project, see ``tests/data/README.md``) and, under ``PUBLISHED``, compact facts derived from
  the published CardioBench split CSVs and example predictions (``published_facts.py``).
* ``REF`` (``../shared/reference`` beside the repository): the published files themselves. Only
  ``test_published_facts.py`` reads them, to prove the committed facts equal a fresh derivation;
  a clone without them runs every test from ``DATA`` (and that one on the facts alone).
"""

from __future__ import annotations

from pathlib import PurePosixPath
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from cardiobench.encoders.base import CLIP_MEAN, CLIP_STD, Encoder, InputSpec
from cardiobench.catalogue import default_catalogue
from cardiobench.manifest import VIEWS as VIEW_CLASSES
from cardiobench.results import Result

#: the built-in catalogue the tests look datasets, layouts and tasks up in
CATALOGUE = default_catalogue()

DATA = Path(__file__).resolve().parent / "data"
PUBLISHED = DATA / "published"
GOLDEN = DATA / "golden_preprocessing.npz"
#: ``panecho_state_dict.tsv`` and ``echoprime_state_dict.tsv``
LISTINGS = DATA

REF = Path(__file__).resolve().parents[2] / "shared" / "reference"


def after(path: str, marker: str) -> str:
    """The part of a published ``data/raw/...`` path below the dataset root folder ``marker``."""
    parts = PurePosixPath(path).parts
    return str(PurePosixPath(*parts[parts.index(marker) + 1:]))


def hmcqu_samples(pub: pd.DataFrame) -> pd.DataFrame:
    """The sample table of an HMC-QU phantom mirroring the published split CSV."""
    return pd.DataFrame({"path": ["HMC-QU/" + after(p, "videos") for p in pub["path"]],
                         "view": pub["view"], "stemi": pub["STEMI"], "split": pub["split"]})


#: a tiny EchoCLIP-shaped open_clip config: ConvNeXt-atto image tower, 1-layer CLIP text tower
ECHO_CFG = {"model_cfg": {
    "embed_dim": 32,
    "vision_cfg": {"timm_model_name": "convnext_atto", "timm_model_pretrained": False, "timm_pool": "",
                   "timm_proj": "linear", "timm_drop": 0.0, "timm_drop_path": 0.1, "image_size": 64},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}},
    "preprocess_cfg": {"mean": list(CLIP_MEAN), "std": list(CLIP_STD)}}


class PluginEncoder(Encoder):
    """A user's own encoder, loaded as ``module:Class``: mean colour per frame, 3-d."""

    normalized = False

    def __init__(self, **_: object) -> None:
        self.name, self.embed_dim = "plugin-mean-colour", 3
        self.spec = InputSpec(kind="image", resolution=32, crop="squash", mean=(0.0,) * 3, std=(1.0,) * 3)

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        return frames.float().mean(dim=(2, 3))


def fake_result(task_name: str, n: int = 4) -> "Result":
    """A zero-shot result of ``n`` made-up test units of ``task_name`` (for export tests)."""
    task = CATALOGUE.task(task_name)
    rng = np.random.default_rng(0)
    ids = [f"id{i}" for i in range(n)]
    preds = pd.DataFrame({task.unit_column(): ids, "patient_id": ids, "view": "A4C",
                          "y_true": 0})
    if task.type.name == "regression":
        preds["y_pred"] = rng.uniform(30, 60, n)
    elif task.type.name == "binary":
        preds["prob"] = rng.uniform(size=n)
        preds["y_pred"] = (preds["prob"] > 0.5).astype(int)
    else:
        p = rng.dirichlet(np.ones(6), n)
        for j, c in enumerate(VIEW_CLASSES):
            preds[f"prob_{c}"] = p[:, j]
        preds["y_pred"] = [VIEW_CLASSES[i] for i in p.argmax(1)]
    return Result(task=task_name, dataset=task.dataset, protocol="zero_shot",
                  encoder={"name": "modelname"}, predictions=preds)


README = Path(__file__).resolve().parents[1] / "README.md"


def assert_readme_section(begin: str, end: str, rendered: str, script: str) -> None:
    """The README's text between the markers ``begin`` and ``end`` is ``rendered`` (the table
    ``python tests/<script>`` prints)."""
    text = README.read_text()
    assert begin in text and end in text, f"README lacks the section of {script}"
    section = text[text.index(begin):text.index(end) + len(end)]
    assert section == rendered, f"README section is stale: run `python tests/{script}` and paste it"

