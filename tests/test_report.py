"""The offline report built from tiny demo results: files, links, LaTeX, golden numbers, and the
page opened in a real headless chromium (skipped only where chromium is absent).

One tiny phantom (CAMUS, HMC-QU, TMED-2: a per-patient regression with subgroups, per-video and
per-study binary tasks, view tasks) is embedded by two `pixels` configurations and run through
the linear probe, kNN and zero-shot (not applicable: no text tower) once per module.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from cardiobench.encoders import build_encoder
from cardiobench.job import EmbedOptions, Job, generate_phantom, prepare_all
from cardiobench.suite import suite_entries
from cardiobench.report import figures
from cardiobench.report.definitions import SMALL_N, display_value
from cardiobench.report.html import build_report
from cardiobench.results import load_results

from helpers import CATALOGUE, copy_results
from helpers import Drawn as _Drawn
from helpers import chromium as _chromium
from helpers import console as _console
from helpers import drawn_text as _drawn_text
from helpers import measure_page as _measure

LAYOUTS = ["camus", "hmcqu", "tmed2"]
DATASETS = {"camus", "hmcqu", "tmed2"}
ARTEFACTS = Path(__file__).resolve().parents[1] / "results" / "test-artifacts"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("report")
    roots = generate_phantom(root / "raw", scale="tiny", seed=3, layouts=LAYOUTS)
    manifests = prepare_all(roots, root / "manifests").manifests
    tasks = [t for t, task in CATALOGUE.tasks.items() if task.dataset in DATASETS]
    fast = {"n_boot": 200}
    suite = {"runs": [{"tasks": tasks, "protocols": ["linear_probe", "knn", "zero_shot"],
                       "config": {"linear_probe": fast, "knn": fast}}]}
    for size, name in ((16, "pixels"), (8, "pixels8")):
        enc = build_encoder("pixels", size=size)
        enc.name = name
        job = Job(manifests, enc, root / "cache", root / "results",
                  entries=suite_entries(suite, CATALOGUE),
                  options=EmbedOptions(workers=0, progress=False))
        job.score(job.load_or_embed())
    with _drawn_text() as drawn:
        files = build_report(root / "results", root / "out", cache=root / "cache",
                             manifests=root / "manifests", command="cardiobench report (test)")
    DRAWN["phantom"] = drawn
    return root, files


#: text artists drawn while the fixture built its report (see _drawn_text)
DRAWN: dict[str, "_Drawn"] = {}



class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.cells: list[dict[str, str]] = []
        self.overview_rows: list[str] = []
        self._in_overview = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if tag == "img":
            self.refs.append(a["src"])
        if tag == "a" and not a.get("href", "#").startswith("#"):
            self.refs.append(a["href"])
        if tag == "td" and "data-value" in a:
            self.cells.append(a)
        if tag == "table" and a.get("id") == "overview":
            self._in_overview = True
        if tag == "tr" and self._in_overview and "data-row" in a:
            self.overview_rows.append(a["data-row"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._in_overview = False


def _parse(index: Path) -> _Links:
    p = _Links()
    p.feed(index.read_text())
    return p


def test_every_figure_the_results_call_for_exists(built) -> None:
    root, files = built
    out = root / "out"
    results = load_results(root / "results")
    expected = set()
    for r in results:
        if r.status != "ok" or r.protocol == "alignment":
            continue
        stem = r.task.replace("/", "__")
        expected.add(f"{stem}__forest.png")
        kind = CATALOGUE.task(r.task).type
        kinds = {"regression": ["scatter", "bland_altman"], "binary": ["roc", "pr", "reliability"],
                 "multiclass": ["confusion"]}[kind.name]
        expected |= {f"{stem}__{r.protocol}__{k}.png" for k in kinds}
        for sg in r.extras.get("subgroups", {}):
            expected.add(f"{stem}__subgroup_{sg}.png")
        expected.add(f"embedding__{r.dataset}__{r.encoder_key}.png")
    keys = sorted({r.encoder_key for r in results})
    expected.add(f"compare__{keys[0]}__vs__{keys[1]}.png")
    # CAMUS EF has Sex, Age and ImageQuality subgroups; each dataset × encoder has a map
    assert {"camus__ef__subgroup_Sex.png", "camus__ef__subgroup_Age.png"} <= expected
    assert len([e for e in expected if e.startswith("embedding__")]) == 3 * 2
    have = {p.name for p in (out / "fig").iterdir()}
    assert expected <= have, sorted(expected - have)
    for name in expected:
        data = (out / "fig" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000, name
    assert {p.name for p in files.tables} == {"leaderboard.md", "leaderboard.csv",
                                              "leaderboard.tex"}
    assert files.notes == []


def test_every_link_and_image_resolves(built) -> None:
    root, files = built
    refs = _parse(files.index).refs
    assert len(refs) > 40
    for ref in refs:
        assert not re.match(r"^[a-z]+://", ref), f"remote reference {ref}"
        assert (files.index.parent / ref).is_file(), ref
    html = files.index.read_text()
    assert "<script" not in html.lower() and "http://" not in html and "https://" not in html


def test_golden_numbers_equal_the_result_jsons(built) -> None:
    root, files = built
    by = {(r.task, r.protocol, r.encoder_key): r for r in load_results(root / "results")}
    cells = _parse(files.index).cells
    checked = 0
    for c in cells:
        if c["data-encoder"] == "baseline":
            r = next(r for (t, p, _), r in by.items()
                     if t == c["data-task"] and p == c["data-protocol"] and r.status == "ok")
            stored = r.baseline[c["data-metric"]]["value"]
        else:
            raw = json.loads((root / "results" / by[(c["data-task"], c["data-protocol"],
                                                     c["data-encoder"])].relpath()).read_text())
            stored = raw["metrics"][c["data-metric"]]["value"]
        # the JSON stores these five x100 (docs/metrics.md); the page shows their own units
        factor = 0.01 if c["data-metric"] in ("brier", "nll", "ece", "pearson", "spearman") else 1
        assert float(c["data-value"]) == pytest.approx(stored * factor, rel=1e-12, abs=0), c
        checked += 1
    assert checked > 100
    # the Markdown shows the same numbers: CAMUS EF probe MAE with its interval
    r = by[("camus/ef", "linear_probe", sorted(k for *_, k in by)[0])]
    md = (root / "out" / "leaderboard.md").read_text()
    mae = r.metrics["mae"]
    if mae["status"] == "ok":
        assert f"{mae['value']:.2f} [{mae['ci_low']:.2f}, {mae['ci_high']:.2f}]" in md
    else:  # too few test patients for an interval: the value stands, the interval is n/a
        assert mae["status"] == "no_interval" and mae["ci_low"] is None
        assert f"{mae['value']:.2f} [CI n/a: {mae['na_reason']}]" in md
    # NLL/Brier/ECE in their own units (stored ×100 in the JSON), AUROC in percent
    v = next(r for r in by.values() if r.status == "ok" and "nll" in r.metrics)
    assert display_value("nll", v.metrics["nll"]["value"]) == pytest.approx(
        v.metrics["nll"]["value"] / 100)
    csv = (root / "out" / "leaderboard.csv").read_text().splitlines()
    assert csv[0].startswith("task,dataset,protocol,encoder,encoder_key,row,metric,unit,value")
    assert any(",nll,," in line for line in csv) and any(",auroc,%," in line for line in csv)


def test_cells_flag_small_n_reasons_and_definitions(built) -> None:
    root, files = built
    html = files.index.read_text()
    results = load_results(root / "results")
    # every tiny test set is below the threshold, so every scored overview cell is flagged
    assert all(r.n < SMALL_N for r in results if r.status == "ok")
    assert html.count('class="small"') + html.count('class="best small"') > 20
    na = [r for r in results if r.status == "not_applicable"]
    assert na and all(f'<div class="why">{r.reason}</div>' in html for r in na
                      if r.protocol != "alignment")
    for words in ("kNN: the label of the k nearest train+val videos",
                  "need not contain the point estimate", "bootstrap unit is the study",
                  "CAMUS EF", "top-label", "Binary NLL", "gallery order", "Bootstrap CI mode: "
                  "patient", "Split fingerprints", "weights SHA-256"):
        assert words in html, words
    rows = _parse(files.index).overview_rows
    assert rows.count("pixels") == 3 and rows.count("trivial baseline") == 2


def test_latex_tables_parse_with_booktabs(built) -> None:
    root, _ = built
    tex = (root / "out" / "leaderboard.tex").read_text()
    assert "\\hline" not in tex
    depth = 0
    for ch in re.sub(r"\\[{}]", "", tex):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        assert depth >= 0
    assert depth == 0
    tables = re.findall(r"\\begin\{tabular\}\{(lc*)\}(.*?)\\end\{tabular\}", tex, re.S)
    assert len(tables) == 3  # linear_probe, knn, zero_shot
    for spec, body in tables:
        cols = len(spec)
        assert body.count("\\toprule") == 1 and body.count("\\bottomrule") == 1
        assert body.index("\\toprule") < body.index("\\midrule") < body.index("\\bottomrule")
        for line in body.strip().splitlines():
            if line.endswith("\\\\") and "multicolumn" not in line:
                assert line.count(" & ") == cols - 1, line
        spans = [int(n) for n in re.findall(r"\\multicolumn\{(\d+)\}", body)]
        assert sum(spans) == cols - 1  # dataset groups cover every task column
    if shutil.which("pdflatex"):
        doc = root / "out" / "check.tex"
        doc.write_text("\\documentclass{article}\\usepackage{booktabs}\\usepackage[margin=5mm,"
                       "landscape]{geometry}\\begin{document}\\input{leaderboard.tex}"
                       "\\end{document}")
        run = subprocess.run(["pdflatex", "-interaction=nonstopmode", "check.tex"],
                             cwd=doc.parent, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stdout[-2000:]


def test_figures_are_deterministic(built, tmp_path: Path) -> None:
    root, _ = built
    rs = [r for r in load_results(root / "results", with_predictions=True)
          if r.task == "hmcqu/stemi" and r.protocol == "linear_probe"]
    a = figures.roc(rs, "hmcqu/stemi", tmp_path / "a.png")
    b = figures.roc(rs, "hmcqu/stemi", tmp_path / "b.png")
    assert a.read_bytes() == b.read_bytes()
    # eight encoders stay readable: no two y tick labels of a forest plot overlap
    many = [r for r in load_results(root / "results") if r.task == "camus/ef"
            and r.status == "ok"] * 2
    labels = {r.encoder_key: f"encoder-{i}" for i, r in enumerate(many)}
    import matplotlib.pyplot as plt

    real_save = figures.save
    boxes = []

    def keep(fig, out):
        fig.canvas.draw()
        ax = fig.axes[0]
        boxes.extend(t.get_window_extent() for t in ax.get_yticklabels())
        return real_save(fig, out)

    figures.save = keep
    try:
        figures.forest(many, "mae", "camus/ef", tmp_path / "f.png", labels)
    finally:
        figures.save = real_save
    assert len(boxes) == len(many) >= 8
    for i in range(len(boxes) - 1):
        assert not boxes[i].overlaps(boxes[i + 1])
    plt.close("all")



_CHECK = ("<script>addEventListener('load', () => {let n = 0; for (const i of document.images)"
          " {n++; if (!i.complete || !i.naturalWidth) console.error('FAILED ' + i.src);}"
          " console.log('CHECKED ' + n + ' images');});</script>")


@pytest.mark.skipif(not (shutil.which("chromium") or shutil.which("chromium-browser")),
                    reason="chromium is not installed (CI installs it: apt-get install chromium)")
def test_report_opens_in_headless_chromium(built) -> None:
    from PIL import Image

    root, files = built
    url = files.index.resolve().as_uri()
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTEFACTS / "report-screenshot.png"
    shot.unlink(missing_ok=True)
    run = _chromium([f"--screenshot={shot}", "--window-size=1280,2000"], url)
    assert shot.is_file(), run.stderr[-2000:]
    # the page has no script: any console message is an error the browser raised
    assert _console(run.stderr) == [], _console(run.stderr)
    px = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert px.shape == (2000, 1280) and px.std() > 20  # not blank
    dom = _chromium(["--dump-dom"], url)
    assert _console(dom.stderr) == []
    assert 'id="overview"' in dom.stdout
    n_rows = len(_parse(files.index).overview_rows)
    assert dom.stdout.count('data-row="') == n_rows >= 8
    assert 'data-row="pixels8"' in dom.stdout and "trivial baseline" in dom.stdout
    # every image decodes in the browser: a copy of the page with a checking script
    probe = files.index.with_name("index-check.html")
    probe.write_text(files.index.read_text().replace("</body>", _CHECK + "</body>"))
    run = _chromium(["--dump-dom"], probe.resolve().as_uri())
    msgs = _console(run.stderr)
    n_img = len([r for r in _parse(files.index).refs if r.endswith(".png")])
    assert any(f"CHECKED {n_img} images" in m for m in msgs), msgs
    assert not any("FAILED" in m for m in msgs), msgs
    # the check itself fails on a missing image (a negative control)
    bad = files.index.with_name("broken.html")
    bad.write_text(f'<html><body><img src="fig/missing.png">{_CHECK}</body></html>')
    msgs = _console(_chromium(["--dump-dom"], bad.resolve().as_uri()).stderr)
    assert any("FAILED" in m for m in msgs), msgs
    probe.unlink()
    bad.unlink()


def test_compare_covers_every_task_with_n(built, capsys) -> None:
    from cardiobench.cli import main
    from cardiobench.report.compare import compare_suite

    root, _ = built
    results = load_results(root / "results", with_predictions=True)
    keys = sorted({r.encoder_key for r in results})
    comps = compare_suite(results, keys[0], keys[1], n_boot=200)
    scored = {(r.task, r.protocol) for r in results if r.status == "ok"}
    assert {(c.task, c.protocol) for c in comps} == scored
    units = {c.task: c.unit for c in comps}
    assert units["camus/ef"] == "patient_id" and units["tmed2/aortic_stenosis"] == "study_id"
    by = {(r.task, r.protocol, r.encoder_key): r for r in results}
    for c in comps:
        assert c.n_common == c.n_a == c.n_b == by[(c.task, c.protocol, keys[0])].n
        assert c.only_a == c.only_b == []
    assert main(["compare", "pixels", "pixels8", "--results", str(root / "results"),
                 "--plot", str(root / "delta.png")]) == 0
    out = capsys.readouterr().out
    assert "camus/ef" in out and "n=3 patient_id" in out.replace("  ", " ") or "patient_id" in out
    assert len(re.findall(r" n=\d+ ", out)) == len(comps)
    assert (root / "delta.png").read_bytes()[:4] == b"\x89PNG"


def test_compare_states_the_units_only_one_result_scored(built) -> None:
    from cardiobench.report.compare import compare_pair

    root, _ = built
    rs = sorted((r for r in load_results(root / "results", with_predictions=True)
                 if r.task == "hmcqu/view" and r.protocol == "knn"), key=lambda r: r.encoder_key)
    a, b = rs
    dropped = str(b.predictions["sample_id"].iloc[0])
    b.predictions = b.predictions.iloc[1:]
    c = compare_pair(a, b, n_boot=100)
    assert (c.n_a, c.n_b, c.n_common) == (a.n, a.n - 1, a.n - 1)
    assert c.only_a == [dropped] and c.only_b == []


def test_report_cli_writes_the_folder_and_says_where(built, tmp_path: Path, capsys) -> None:
    from cardiobench.cli import main

    root, _ = built
    assert main(["report", "--results", str(root / "results"), "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert f"report: {(tmp_path / 'r' / 'index.html').resolve()}" in out
    assert "embedding maps need the embedding cache" in out  # said, not silently dropped
    assert "embedding maps need" in (tmp_path / "r" / "index.html").read_text()


# ----------------------------------------------------------------------------- text fits
LONG_NAME = "an-unusually-long-encoder-display-name-finetuned-on-echo-v2.1-with-extra-words"


def _single_long_encoder(root: Path, dest: Path) -> Path:
    """The phantom results of one encoder only, renamed to :data:`LONG_NAME` (one panel per
    figure, long legend and tick labels: the cases that cut titles off before)."""
    keep = sorted({r.encoder_key for r in load_results(root / "results")})[0]
    copy_results(root / "results", dest, lambda d: {**d, "encoder": {**d["encoder"],
                                                                     "name": LONG_NAME}},
                 f"{keep}.json")
    return dest


def test_every_figure_text_fits_its_canvas(built, tmp_path: Path) -> None:
    """Every title, axis label, tick label and legend entry matplotlib draws lies inside its
    figure, for every figure the report makes (two encoders, and one encoder with a long name)."""
    root, files = built
    drawn = DRAWN["phantom"]
    assert drawn.figures == len(files.figures) >= 35
    assert len(drawn.texts) > 1000
    assert drawn.outside() == []
    one = _single_long_encoder(root, tmp_path / "results")
    with _drawn_text() as long:
        rep = build_report(one, tmp_path / "out")
    assert long.figures == len(rep.figures) >= 25
    assert long.outside() == []
    # the long name is shortened in the middle where it would not fit, never cut at an edge
    texts = [t for t, _, _ in long.texts]
    assert any("…" in t and t.startswith("an-unusually") for t in texts)
    assert any(t.startswith("camus/ef · linear_probe") for t in texts)  # task on its own line
    # the check itself catches text off the canvas (a negative control)
    import matplotlib.pyplot as plt

    with _drawn_text() as bad:
        fig, ax = plt.subplots(figsize=(3, 2), layout="constrained")
        ax.set_title("a title far wider than a three-inch figure can hold, cut at both ends")
        fig.savefig(tmp_path / "bad.png", dpi=100)
        plt.close(fig)
    assert {t for t, _, _ in bad.outside()} == {
        "a title far wider than a three-inch figure can hold, cut at both ends"}


def test_figures_of_a_task_share_one_size(built) -> None:
    from PIL import Image

    root, files = built
    sizes: dict[str, set[tuple[int, int]]] = {}
    for p in files.figures:
        if "__" in p.name and not p.name.startswith(("embedding__", "compare__")):
            task = "__".join(p.name.split("__")[:2])
            sizes.setdefault(task, set()).add(Image.open(p).size)
    assert len(sizes) >= 6
    for task, s in sizes.items():
        assert len(s) == 1, (task, s)
        (w, _), = s
        assert w == 640  # two figures side by side in a 1400 px window


# ----------------------------------------------------------------------------- page layout

@pytest.mark.skipif(not (shutil.which("chromium") or shutil.which("chromium-browser")),
                    reason="chromium is not installed (CI installs it: apt-get install chromium)")
def test_page_layout_in_headless_chromium(built) -> None:
    """At 1400 px nothing but the overview's own box is wider than the window, figures show at
    their natural size in one even grid per task; in a narrow window the overview scrolls in
    its box, first column and header row sticky."""
    root, files = built
    wide = _measure(files.index, 1400)
    assert wide["page"] == wide["client"] and wide["body"] <= wide["client"], wide
    assert wide["outside"] == []
    assert len(wide["images"]) == len(files.figures)
    for src, nw, nh, w, h in wide["images"]:
        assert nw > 0 and (w, h) == (nw, nh), src   # natural size, not scaled
    assert len(wide["tasks"]) == 6
    for task, figs in wide["tasks"].items():
        assert len(figs) >= 3 and len({(w, h) for w, h, _ in figs}) == 1, (task, figs)
        assert len({left for *_, left in figs}) == 2, (task, figs)  # two columns
    narrow = _measure(files.index, 640, 500)  # the phantom has 6 tasks, a suite 20+
    sw, cw = narrow["box"]
    assert sw > cw, narrow["box"]                   # the overview scrolls in its box ...
    assert narrow["page"] == narrow["client"] and narrow["outside"] == [], narrow["outside"]
    st = narrow["sticky"]
    assert st["scrolled"][0] > 0 and st["scrolled"][1] > 0
    # the whole box, its horizontal scroll bar included, fits in the window
    assert narrow["boxHeight"] < narrow["window"] < narrow["tableHeight"], narrow
    assert abs(st["first"] - st["box"][0]) <= 2, st  # first column stays at the box's left
    assert st["cell"] < st["box"][0] - 50, st        # while the cells beside it scrolled away
    assert abs(st["head"] - st["box"][1]) <= 2, st   # header row stays at the box's top


# ----------------------------------------------------------------------------- what cannot be drawn
def _results_that_cannot_all_be_drawn(root: Path, dest: Path) -> dict[str, str]:
    """A copy of the phantom results with a one-class binary test split (both encoders), a
    regression scored on one test unit (one encoder) and a predictions file gone (one encoder)."""
    import pandas as pd

    shutil.copytree(root / "results", dest)
    keys = sorted(p.stem for p in (dest / "hmcqu" / "stemi" / "linear_probe").glob("*.json"))
    for key in keys:   # every test unit positive: ROC and precision-recall undefined
        csv = dest / "hmcqu" / "stemi" / "linear_probe" / f"{key}.predictions.csv"
        p = pd.read_csv(csv)
        p["y_true"] = 1
        p.to_csv(csv, index=False)
        js = csv.with_name(f"{key}.json")
        d = json.loads(js.read_text())
        d["metrics"]["auroc"] = {"value": None, "ci_low": None, "ci_high": None}
        js.write_text(json.dumps(d))
    csv = dest / "camus" / "ef" / "knn" / f"{keys[0]}.predictions.csv"
    pd.read_csv(csv).iloc[:1].to_csv(csv, index=False)
    gone = dest / "tmed2" / "view" / "linear_probe" / f"{keys[1]}.predictions.csv"
    gone.unlink()
    return {"first": keys[0], "second": keys[1], "gone": gone.name}


def _figure_blocks(index: Path) -> dict[str, str]:
    """Each ``<figure>`` of the page by its caption's first words (task · protocol: kind)."""
    out = {}
    for block in re.findall(r"<figure.*?</figure>", index.read_text(), re.S):
        cap = re.search(r"<figcaption>(.*?)</figcaption>", block, re.S).group(1)
        out[cap.split(",")[0].split(".")[0]] = block
    return out


def test_what_cannot_be_drawn_is_na_with_its_reason(built, tmp_path: Path) -> None:
    root, _ = built
    made = _results_that_cannot_all_be_drawn(root, tmp_path / "results")
    files = build_report(tmp_path / "results", tmp_path / "out")   # no abort
    figs = _figure_blocks(files.index)
    names = {p.name for p in files.figures}
    # one-class test split: ROC and PR are placeholders naming the reason; reliability is drawn
    for kind in ("ROC curves", "precision–recall"):
        block = figs[f"hmcqu/stemi · linear_probe: {kind}"]
        assert 'class="na"' in block and "<img" not in block
        assert "undefined: the test split holds one class (all 1, 6 unit(s))" in block
    assert "hmcqu__stemi__linear_probe__roc.png" not in names
    assert "hmcqu__stemi__linear_probe__reliability.png" in names
    assert "hmcqu__stemi__knn__roc.png" in names       # the other protocol is untouched
    # one test unit: that encoder's panel is left out and said why; the other encoder is drawn
    block = figs["camus/ef · knn: predicted vs true"]
    assert "<img" in block and ("Not shown — pixels · knn: a scatter needs at least 2 test "
                                "units with values; 1 here") in block
    assert "limits of agreement need at least 2 test units with values; 1 here" in \
        figs["camus/ef · knn: Bland–Altman: bias and 95 % limits of agreement"]
    # a predictions file gone
    block = figs["tmed2/view · linear_probe: row-normalised confusion matrix"]
    assert f"predictions file {made['gone']} is missing" in block and "<img" in block
    # the placeholder holds the place of a figure of its task: the same size
    html = files.index.read_text()
    sec = html[html.index('id="task-hmcqu__stemi"'):]
    sec = sec[:sec.index("</section>")]
    w, h = re.search(r'class="na-box" style="width:(\d+)px;height:(\d+)px"', sec).groups()
    img_w, img_h = re.search(r'<img src="[^"]+" width="(\d+)" height="(\d+)"', sec).groups()
    assert (int(w), int(h)) == (int(img_w) + 2, int(img_h) + 2)   # + the image's border
    # the overview's cell of the undefined headline is n/a with its reason, not a blank
    cells = re.findall(r'<td class="na" data-task="hmcqu/stemi" data-protocol="linear_probe"'
                       r'[^>]*>n/a<sup>\d+</sup><div class="why">([^<]*)</div>', html)
    assert cells == ["headline metric undefined on these test labels (null in the result)"] * 2


# ----------------------------------------------------------------------------- atomic report
def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _siblings(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


def test_a_failed_report_leaves_the_old_one_whole(built, tmp_path: Path, monkeypatch) -> None:
    root, files = built
    out = tmp_path / "r"
    shutil.copytree(files.index.parent, out, ignore=shutil.ignore_patterns("index-*.html"))
    before = _tree(out)
    assert "index.html" in before and len(before) > 40

    def broken(*args, **kwargs):
        raise RuntimeError("injected fault while drawing")

    monkeypatch.setattr(figures, "reliability", broken)
    with pytest.raises(RuntimeError, match="injected fault"):
        build_report(root / "results", out)
    assert _tree(out) == before        # not one file of the old report changed
    assert _siblings(out) == []        # and the half-written one is gone
    monkeypatch.undo()
    # a folder holding files a report does not write is refused, not swapped away
    (out / "my notes.txt").write_text("mine")
    from cardiobench.atomic import OverwriteError

    with pytest.raises(OverwriteError, match="holds my notes.txt, which a cardiobench report"):
        build_report(root / "results", out)
    assert (out / "my notes.txt").read_text() == "mine" and _tree(out)["index.html"] == \
        before["index.html"]


_KILLED = """
import os, signal, sys
from cardiobench.report import figures
from cardiobench.report.html import build_report

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

figures.reliability = die
build_report(sys.argv[1], sys.argv[2])
"""


def test_a_killed_report_leaves_the_old_one_and_a_rerun_tidies(built, tmp_path: Path) -> None:
    import os
    import sys

    root, files = built
    out = tmp_path / "r"
    shutil.copytree(files.index.parent, out, ignore=shutil.ignore_patterns("index-*.html"))
    before = _tree(out)
    run = subprocess.run([sys.executable, "-c", _KILLED, str(root / "results"), str(out)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == -9, run.stderr[-2000:]
    assert _tree(out) == before
    left = _siblings(out)
    assert len(left) == 1 and left[0].startswith(".r.partial-"), left
    partial = out.parent / left[0]
    # what was written before the kill is there, but nothing in it passes for a report
    written = _tree(partial)
    assert "leaderboard.md" in written and any(k.startswith("fig/") for k in written)
    assert "index.html" not in written
    rerun = build_report(root / "results", out)
    assert _siblings(out) == [] and rerun.index.is_file()
    assert _tree(out)["leaderboard.md"] == before["leaderboard.md"]
    # a kill between the two renames (old report moved aside, new not yet in place) is undone
    from cardiobench.atomic_folder import recover

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    os.rename(out, out.parent / f".r.previous-{dead}-0a1b2c3d")
    assert not out.exists()
    assert recover(out) == [f"restored {out} from .r.previous-{dead}-0a1b2c3d (a run was "
                            "interrupted while swapping)"]
    assert _tree(out)["index.html"] == rerun.index.read_bytes()
