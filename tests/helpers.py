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

import json
import re
import shutil
import subprocess
from contextlib import contextmanager
from typing import Callable
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

# ----------------------------------------------------------------------------- figures and pages
class Drawn:
    """Every figure saved and every non-empty text drawn on it, with the extent it was drawn at
    and its figure's canvas (pixels, as saved)."""

    def __init__(self) -> None:
        self._figs: dict[int, object] = {}   # held, so no id is reused by a later figure
        self.texts: list[tuple[str, object, object]] = []   # (text, extent, figure bbox)

    @property
    def figures(self) -> int:
        """How many distinct figures were drawn."""
        return len(self._figs)

    def outside(self, tol: float = 0.5) -> list[tuple[str, list[int], list[int]]]:
        out = []
        for text, e, b in self.texts:
            if e.x0 < b.x0 - tol or e.y0 < b.y0 - tol or e.x1 > b.x1 + tol or e.y1 > b.y1 + tol:
                out.append((text, [round(v) for v in e.extents], [round(v) for v in b.extents]))
        return out


@contextmanager
def drawn_text():
    """Record what matplotlib really draws: wraps ``Text.draw`` and ``Figure.draw``."""
    import matplotlib.figure as mfigure
    import matplotlib.text as mtext

    rec = Drawn()
    text_draw, fig_draw = mtext.Text.draw, mfigure.Figure.draw

    def draw_text(self, renderer):
        text_draw(self, renderer)
        if self.get_visible() and self.get_text().strip() and self.get_figure(root=True):
            rec.texts.append((self.get_text(), self.get_window_extent(renderer),
                              self.get_figure(root=True).bbox.frozen()))

    def draw_figure(self, renderer):
        rec._figs[id(self)] = self
        fig_draw(self, renderer)

    mtext.Text.draw, mfigure.Figure.draw = draw_text, draw_figure
    try:
        yield rec
    finally:
        mtext.Text.draw, mfigure.Figure.draw = text_draw, fig_draw


def chromium(args: list[str], url: str) -> subprocess.CompletedProcess:
    """Run headless chromium (a fresh profile, no network services) on ``url``."""
    import tempfile

    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        return subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu",
                               "--disable-quic", "--no-first-run",
                               "--disable-background-networking", "--disable-component-update",
                               "--disable-sync", f"--user-data-dir={profile}",
                               "--enable-logging=stderr", "--v=0", *args, url],
                              capture_output=True, text=True, timeout=180)


def console(stderr: str) -> list[str]:
    """The page's console messages in chromium's log."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


#: a script measuring the report page's layout (appended to a copy of the page)
MEASURE = """<script>addEventListener('load', () => {
  const de = document.documentElement, box = document.getElementById('overview-box');
  const table = document.getElementById('overview');
  const r = e => e.getBoundingClientRect();
  const m = {client: de.clientWidth, page: de.scrollWidth, body: document.body.scrollWidth,
             box: [box.scrollWidth, box.clientWidth], outside: [], images: [], tasks: {},
             boxHeight: r(box).height, window: innerHeight, tableHeight: r(table).height};
  for (const el of document.querySelectorAll('body *'))
    // inside a scroll box is allowed to be wider: the box scrolls, the page does not
    if (!(el.parentElement.closest('.scroll, .overview-box'))
        && r(el).right > de.clientWidth + 0.5)
      m.outside.push(el.tagName + ' ' + el.className + ' ' + Math.round(r(el).right));
  for (const i of document.images)
    m.images.push([i.getAttribute('src'), i.naturalWidth, i.naturalHeight,
                   i.clientWidth, i.clientHeight]);
  for (const sec of document.querySelectorAll('section[id^=task-]'))
    m.tasks[sec.id] = [...sec.querySelectorAll('.figs > figure')].map(f => {
      const c = f.querySelector('img, .na-box'); return [r(c).width, r(c).height, r(f).left]; });
  // sticky first column and header: scroll the box to its far right and down
  const first = table.querySelector('tbody tr.model th');
  const cell = table.querySelector('tbody tr.model td');
  const head = table.querySelector('thead th:nth-child(2)');
  box.scrollLeft = box.scrollWidth; box.scrollTop = 150;
  m.sticky = {box: [r(box).left, r(box).top], first: r(first).left, cell: r(cell).left,
              head: r(head).top, scrolled: [box.scrollLeft, box.scrollTop]};
  const pre = document.createElement('pre'); pre.id = 'measure';
  pre.textContent = JSON.stringify(m); document.body.appendChild(pre);
});</script>"""


def measure_page(index: Path, width: int, height: int = 900) -> dict:
    """The layout :data:`MEASURE` reports of a copy of ``index`` opened at ``width``×``height``."""
    probe = index.with_name(f"index-measure-{width}.html")
    probe.write_text(index.read_text().replace("</body>", MEASURE + "</body>"))
    try:
        run = chromium([f"--window-size={width},{height}", "--virtual-time-budget=10000",
                         "--dump-dom"], probe.resolve().as_uri())
    finally:
        probe.unlink()
    m = re.search(r'<pre id="measure">(.*?)</pre>', run.stdout, re.S)
    assert m, run.stderr[-2000:]
    import html as _html

    return json.loads(_html.unescape(m.group(1)))


def copy_results(src: Path, dst: Path, edit: Callable[[dict], dict | None],
                 pattern: str = "*.json") -> None:
    """Copy the result JSONs under ``src`` matching ``pattern`` (with their predictions) to
    ``dst``, each as ``edit`` returns it; a result ``edit`` maps to ``None`` is left out."""
    for js in src.rglob(pattern):
        d = edit(json.loads(js.read_text()))
        if d is None:
            continue
        target = dst / js.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        if d.get("predictions"):
            shutil.copy(js.parent / d["predictions"], target.parent / d["predictions"])
        target.write_text(json.dumps(d))
