"""Beyond one dataset's split: the ``transfer`` and ``label_efficiency`` protocols, their results,
their report section and their bad input.

One tiny phantom (EchoNet-Dynamic, EchoNet-Pediatric, CAMUS, HMC-QU: every EF end, pediatric
subsets included, and four view tasks) is embedded by two ``pixels`` configurations and run
through the linear probe, kNN, transfer and label efficiency once per module (short search
grids, 200 bootstrap replicates). Transferred predictions are recomputed with scikit-learn from
the cached embeddings; label-efficiency subsets are redrawn from the documented rule.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import TransformedTargetRegressor
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import log_loss, mean_squared_error
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from cardiobench.embed.cache import EmbeddingCache
from cardiobench.embed.embeddings import Embeddings
from cardiobench.encoders import build_encoder
from cardiobench.job import EmbedOptions, Job
from cardiobench.manifest import Manifest
from cardiobench.protocols import evaluate as ev
from cardiobench.report.html import build_report
from cardiobench.results import load_results
from cardiobench.suite import load_suite, suite_entries

from helpers import CATALOGUE, chromium, copy_results, drawn_text, measure_page

DATASETS = ("echonet_dynamic", "echonet_pediatric", "camus", "hmcqu")
ALPHAS = [0.1, 10.0, 1000.0]
CS = [0.01, 1.0, 100.0]
BUDGETS = [1, 2, 4, 64]
FRACTIONS = [0.02, 0.1, 0.5, 1.0]
SEEDS = 5
FAST = {"n_boot": 200}
PROBE = {**FAST, "alphas": ALPHAS, "Cs": CS}
SUITE = {"runs": [{
    "tasks": [t for t, task in CATALOGUE.tasks.items() if task.dataset in DATASETS],
    "protocols": ["linear_probe", "knn", "transfer", "label_efficiency"],
    "config": {"linear_probe": PROBE, "knn": {**FAST, "k_grid": [1, 3, 5]},
               "transfer": {**PROBE, "k_grid": [1, 3, 5]},
               "label_efficiency": {**PROBE, "k_grid": [1, 3, 5], "seeds": SEEDS,
                                    "budgets_per_class": BUDGETS, "fractions": FRACTIONS}}}]}
#: every declared EF pair among the four datasets, written out by hand (source, target)
EF_PAIRS = {(s, t) for s in ("echonet_dynamic/ef",) for t in (
    "echonet_pediatric/ef", "echonet_pediatric/ef[A4C]", "echonet_pediatric/ef[PSAX]",
    "camus/ef")} | {(s, t) for s in ("echonet_pediatric/ef", "echonet_pediatric/ef[A4C]",
                                     "echonet_pediatric/ef[PSAX]")
                    for t in ("echonet_dynamic/ef", "camus/ef")} | {
    ("camus/ef", t) for t in ("echonet_dynamic/ef", "echonet_pediatric/ef",
                              "echonet_pediatric/ef[A4C]", "echonet_pediatric/ef[PSAX]")}
VIEWS = [f"{d}/view" for d in DATASETS]
VIEW_PAIRS = {(s, t) for s in VIEWS for t in VIEWS if s != t}


@dataclass
class Beyond:
    root: Path
    manifests: dict
    results: list
    files: object
    drawn: object
    fingerprints: dict


@pytest.fixture(scope="module")
def beyond(tiny_phantom, tmp_path_factory: pytest.TempPathFactory) -> Beyond:
    root = tmp_path_factory.mktemp("beyond")
    manifests = {d: tiny_phantom.manifests[d] for d in DATASETS}
    fps = {}
    for size, name in ((16, "pixels"), (8, "pixels8")):
        enc = build_encoder("pixels", size=size)
        enc.name = name
        fps[name] = enc.fingerprint()
        job = Job(manifests, enc, root / "cache", root / "results",
                  entries=suite_entries(SUITE, CATALOGUE),
                  options=EmbedOptions(workers=0, progress=False))
        job.score(job.load_or_embed())
    with drawn_text() as drawn:
        files = build_report(root / "results", root / "out")
    return Beyond(root, manifests, load_results(root / "results", with_predictions=True), files,
                  drawn, fps)


def _ends(r) -> tuple[str, str]:
    c = r.config
    src = c["source"] + (f"[{c['source_subset']}]" if c.get("source_subset") else "")
    tgt = r.task + (f"[{c['target_subset']}]" if c.get("target_subset") else "")
    return src, tgt


def _transfer(b: Beyond, encoder: str = "pixels", runner: str | None = None) -> dict:
    return {_ends(r): r for r in b.results if r.protocol == "transfer"
            and r.encoder_name == encoder and (runner is None or r.config["runner"] == runner)}


# ----------------------------------------------------------------------------- completeness
def test_every_declared_pair_and_budget_is_there_with_n_interval_or_reason(beyond) -> None:
    tr = [r for r in beyond.results if r.protocol == "transfer"]
    # 14 EF and 12 view pairs, two runners, two encoders; none overwrote another
    assert len(tr) == (14 + 12) * 2 * 2
    assert len({(r.encoder_key, r.relpath()) for r in tr}) == len(tr)
    for runner in ("linear_probe", "knn"):
        got = set(_transfer(beyond, runner=runner))
        assert got == EF_PAIRS | VIEW_PAIRS
    for r in tr:
        src, tgt = _ends(r)
        c = r.config  # the source and runner are in the file name: no result overwrites another
        assert r.variant == (f"on_{c['target_subset']}--" if c["target_subset"] else "") + \
            "from_" + src.replace("/", "_").replace("[", "_").rstrip("]") + "--" + c["runner"]
        assert r.relpath().name == f"{r.encoder_key}--{r.variant}.json"
        if r.status != "ok":
            assert r.status == "not_applicable" and r.reason, (src, tgt)
            continue
        h = r.config["headline"]
        m = r.metrics[h]
        assert r.n > 0 and (m["status"] == "ok" and m["ci_low"] is not None
                            or m["na_reason"]), (src, tgt, m)
        ind = r.extras["in_dataset"]
        assert ind["status"] == "ok" or ind["reason"]
        if ind["status"] == "ok":  # paired: transferred − in-dataset on the same units
            d = r.extras["paired_difference"][h]
            want = m["value"] - ind["metrics"][h]["value"] if m["value"] is not None else None
            assert d["diff"] == pytest.approx(want, abs=1e-9) if want is not None else True
            assert d["status"] == "ok" or d["na_reason"]
        if r.task.endswith("/ef"):  # calibration-in-the-large beside the MAE, not re-centred
            assert "bias" in r.metrics and r.config["recentre"] is False
            assert r.config["protocol_record"]["recentred"] is False
            p = r.predictions
            assert r.metrics["bias"]["value"] == pytest.approx((p["y_pred"] - p["y_true"]).mean())
    # the adult A4C view task holds one class: it cannot be a source, with that reason
    one = _transfer(beyond)[("echonet_dynamic/view", "camus/view")]
    assert one.status == "not_applicable" and "single class" in one.reason
    # views the source never saw are listed, not dropped: pediatric holds A4C and PSAX only
    r = _transfer(beyond, runner="linear_probe")[("echonet_pediatric/view", "camus/view")]
    assert r.extras["classes"]["source_lacks"] == ["A2C"]
    assert r.extras["classes"]["target_lacks"] == ["PSAX"]
    le = [r for r in beyond.results if r.protocol == "label_efficiency"]
    assert len(le) == 8 * 2 * 2
    for r in le:
        if r.status != "ok":
            assert r.reason and "single class" in r.reason, r.task  # echonet_dynamic/view
            continue
        curve = r.extras["label_efficiency"]["budgets"]
        names = [b["budget"] for b in curve]
        want = ([f"{b} per class" for b in BUDGETS] + ["all"] if CATALOGUE.task(r.task).classes
                or r.task == "hmcqu/stemi" else [f"{100 * f:g} %" for f in FRACTIONS])
        assert names == want, r.task
        for b in curve:
            if b["status"] == "ok":
                m = b["metrics"][r.config["headline"]]
                assert b["n_patients"] >= 1 and len(b["n_patients_per_seed"]) == SEEDS
                assert m["status"] in ("ok", "no_interval") and (m["ci_low"] is not None
                                                                 or m["na_reason"])
                assert m["value"] == pytest.approx(np.mean(b["per_seed"][r.config["headline"]]))
            else:
                assert b["reason"], (r.task, b)
        statuses = {b["budget"]: b["status"] for b in curve}
        if "64 per class" in statuses:  # no class of the tiny phantom has 64 train patients
            assert statuses["64 per class"] == "skipped"
        if "2 %" in statuses:  # 2 % of a few dozen patients is below one
            assert statuses["2 %"] == "not_applicable"


# ----------------------------------------------------------------------------- recomputation
def _embeddings(b: Beyond, dataset: str) -> Embeddings:
    return EmbeddingCache(b.root / "cache", dataset, b.fingerprints["pixels"]).load()


def _rows(b: Beyond, dataset: str, label: str) -> tuple[pd.DataFrame, np.ndarray]:
    t = b.manifests[dataset].table
    t = t[t[label].notna()].reset_index(drop=True)
    e = _embeddings(b, dataset)
    return t, e.clip[e.align(t["sample_id"])].astype(np.float64)


def _ridge(alpha: float):
    return TransformedTargetRegressor(make_pipeline(StandardScaler(), Ridge(alpha=alpha)),
                                      transformer=StandardScaler())


def test_transferred_ef_equals_an_independent_sklearn_probe(beyond) -> None:
    """Dynamic → CAMUS: ridge chosen on the source's val, refit on its train+val, CAMUS scored
    per patient on the mean of its videos; the in-dataset column is CAMUS's own probe."""
    def probe(src: pd.DataFrame, X: np.ndarray):
        tr, va = (src["split"] == "train").to_numpy(), (src["split"] == "val").to_numpy()
        y = src["ef"].to_numpy(float)
        mse = [mean_squared_error(y[va], _ridge(a).fit(X[tr], y[tr]).predict(X[va]))
               for a in ALPHAS]
        return _ridge(ALPHAS[int(np.argmin(mse))]).fit(X[tr | va], y[tr | va])

    src, Xs = _rows(beyond, "echonet_dynamic", "ef")
    tgt, Xt = _rows(beyond, "camus", "ef")
    test = (tgt["split"] == "test").to_numpy()
    per_patient = (pd.DataFrame({"p": tgt["patient_id"][test],
                                 "t": probe(src, Xs).predict(Xt[test]),
                                 "i": probe(tgt, Xt).predict(Xt[test])})
                   .groupby("p").mean())
    r = _transfer(beyond, runner="linear_probe")[("echonet_dynamic/ef", "camus/ef")]
    got = r.predictions.set_index("patient_id")
    assert sorted(got.index) == sorted(per_patient.index)
    np.testing.assert_allclose(got.loc[per_patient.index, "y_pred"], per_patient["t"],
                               rtol=1e-9)
    np.testing.assert_allclose(got.loc[per_patient.index, "y_pred_in_dataset"],
                               per_patient["i"], rtol=1e-9)
    mae = np.abs(per_patient["t"] - tgt[test].groupby("patient_id")["ef"].first()
                 .loc[per_patient.index]).mean()
    assert r.metrics["mae"]["value"] == pytest.approx(mae, rel=1e-9)


def test_transferred_views_equal_an_independent_sklearn_probe(beyond) -> None:
    """CAMUS → HMC-QU views: logistic regression over the six view classes, C by the source's
    val log-loss, refit on its train+val; probabilities of the classes it never saw are 0."""
    from cardiobench.manifest import VIEWS as V

    src, Xs = _rows(beyond, "camus", "view")
    tgt, Xt = _rows(beyond, "hmcqu", "view")
    ys = src["view"].map(V.index).to_numpy()
    tr, va = (src["split"] == "train").to_numpy(), (src["split"] == "val").to_numpy()

    def fit(C: float, rows: np.ndarray):
        return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000)).fit(
            Xs[rows], ys[rows])

    def six(model, X: np.ndarray) -> np.ndarray:
        p = np.zeros((len(X), len(V)))
        p[:, model.classes_] = model.predict_proba(X)
        return p

    losses = [log_loss(ys[va], np.clip(six(fit(c, tr), Xs[va]), 1e-12, 1), labels=range(len(V)))
              for c in CS]
    best = fit(CS[int(np.argmin(losses))], tr | va)
    test = (tgt["split"] == "test").to_numpy()
    want = pd.DataFrame(six(best, Xt[test]), columns=[f"prob_{c}" for c in V],
                        index=tgt["sample_id"][test])
    r = _transfer(beyond, runner="linear_probe")[("camus/view", "hmcqu/view")]
    got = r.predictions.set_index("sample_id").loc[want.index, want.columns]
    np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), atol=1e-12)
    acc = 100 * np.mean(want.to_numpy().argmax(1) == tgt["view"][test].map(V.index).to_numpy())
    assert r.metrics["accuracy"]["value"] == pytest.approx(acc)


# ----------------------------------------------------------------------------- subsets
def _orders(patients: np.ndarray, seed: int = 42) -> list[np.ndarray]:
    ids = np.array(sorted(set(patients.astype(str))))
    return [ids[np.random.default_rng([seed, s]).permutation(len(ids))] for s in range(SEEDS)]


def _sha(ids) -> str:
    import hashlib

    return hashlib.sha256("\n".join(sorted(map(str, ids))).encode()).hexdigest()[:12]


def test_label_efficiency_subsets_are_nested_patient_grouped_and_as_documented(beyond) -> None:
    le = {(r.task, r.variant, r.encoder_name): r for r in beyond.results
          if r.protocol == "label_efficiency"}
    # regression: the first ⌊f·N⌋ patients of each seed's order (pediatric: several videos each)
    t = beyond.manifests["echonet_pediatric"].table
    train = t[(t["split"] == "train") & t["ef"].notna()]
    orders = _orders(train["patient_id"].to_numpy())
    curve = le[("echonet_pediatric/ef", "linear_probe", "pixels")].extras["label_efficiency"]
    seen: list[set] = [set() for _ in range(SEEDS)]
    for b, f in zip(curve["budgets"], FRACTIONS):
        n = math.floor(f * len(orders[0]) + 1e-9)
        if n < 1:
            assert b["status"] == "not_applicable" and "below one" in b["reason"]
            continue
        subsets = [o[:n] for o in orders]
        assert b["subsets"] == [_sha(s) for s in subsets]
        for s, sub in enumerate(subsets):
            rows = train[train["patient_id"].isin(sub)]
            # a patient's videos enter together: every labelled row's patient is whole
            assert b["n_rows_per_seed"][s] == len(rows) == int(
                train["patient_id"].isin(set(rows["patient_id"])).sum())
            assert seen[s] <= set(sub)  # nested within a seed
            seen[s] = set(sub)
    # classification: walk the order, take a patient while a class of its rows is short of b
    t = beyond.manifests["camus"].table
    train = t[t["split"] == "train"]
    classes = train.groupby("patient_id")["view"].agg(set)
    orders = _orders(train["patient_id"].to_numpy())
    curve = le[("camus/view", "knn", "pixels")].extras["label_efficiency"]["budgets"]
    seen = [set() for _ in range(SEEDS)]
    for b, size in zip(curve, [*BUDGETS, None]):
        if b["status"] == "skipped":
            assert size == 64 and "larger than the train split" in b["reason"]
            continue
        subsets = []
        for o in orders:
            count: dict[str, int] = {}
            take = []
            for p in o:
                if size is None or any(count.get(c, 0) < size for c in classes[p]):
                    take.append(p)
                    for c in classes[p]:
                        count[c] = count.get(c, 0) + 1
            subsets.append(take)
            if size is not None:  # every class reaches b patients (CAMUS patients show both)
                assert all(v >= min(size, (classes.map(lambda cs: c in cs)).sum())
                           for c, v in count.items())
        assert b["subsets"] == [_sha(s) for s in subsets], b["budget"]
        assert b["n_patients_per_seed"] == [len(s) for s in subsets]
        for s, sub in enumerate(subsets):
            assert seen[s] <= set(sub)
            seen[s] = set(sub)
            assert b["n_rows_per_seed"][s] == int(train["patient_id"].isin(sub).sum())


def test_the_seed_and_patient_bootstrap_equals_a_plain_loop() -> None:
    """Each replicate draws the test patients (clusters) and the seeds with replacement and
    averages the drawn seeds' metric on the drawn rows: recomputed row by row with sklearn."""
    from functools import partial

    from sklearn.metrics import mean_absolute_error

    from cardiobench import stats

    rng = np.random.default_rng(7)
    n, seeds, n_boot = 30, 4, 300
    y = rng.normal(50, 10, n)
    preds = [y + rng.normal(s, 3 + s, n) for s in range(seeds)]
    pid = np.repeat(np.arange(12), [3, 3, 3, 3, 2, 2, 2, 2, 3, 3, 2, 2])
    got = stats.bootstrap_mean_over_fits(
        [partial(stats.regression_metrics, y, p) for p in preds], n, pid, n_boot, 42)["mae"]
    codes = stats.cluster_codes(pid, n)  # clusters numbered in sorted id order
    rows_of = [np.flatnonzero(codes == g) for g in range(12)]
    draws = stats.draw_clusters(12, n_boot, 42)
    pick = np.random.default_rng([42, 1]).integers(0, seeds, size=(n_boot, seeds))
    reps = []
    for d, chosen in zip(draws, pick):
        idx = np.concatenate([rows_of[g] for g in d])
        reps.append(np.mean([mean_absolute_error(y[idx], preds[s][idx]) for s in chosen]))
    lo, hi = np.quantile(reps, [0.025, 0.975])
    assert got.value == pytest.approx(np.mean([mean_absolute_error(y, p) for p in preds]))
    assert (got.ci_low, got.ci_high) == (pytest.approx(lo), pytest.approx(hi))
    # the seeds' spread widens the interval beyond the patients' alone
    one = stats.bootstrap_metrics(partial(stats.regression_metrics, y, np.mean(preds, 0)), n,
                                  pid, n_boot, 42)["mae"]
    assert hi - lo > one.ci_high - one.ci_low


# ----------------------------------------------------------------------------- report
def test_report_draws_matrices_and_curves_whose_text_fits(beyond) -> None:
    files, drawn = beyond.files, beyond.drawn
    names = {p.name for p in files.figures}
    mats = {n for n in names if n.startswith("transfer__")}
    assert len(mats) == 2 * 2 * 2  # (EF, views) × (probe, kNN) × two encoders
    curves = {n for n in names if n.startswith("efficiency__")}
    # every (task, runner) but the one-class adult view task has a curve
    assert len(curves) == (8 - 1) * 2
    assert drawn.figures == len(files.figures) and drawn.outside() == []
    texts = [t for t, _, _ in drawn.texts]
    assert any("echonet_pediatric/ef[PSAX]" in t for t in texts)
    assert any("labelled train patients" in t for t in texts)
    html = files.index.read_text()
    for words in ('id="transfer"', 'id="generalization"', 'id="label-efficiency"',
                  "full data, in-dataset", "transferred − in-dataset"):
        assert words in html, words
    # every transfer result is a row of the pairs table, n/a ones with their reason
    tr = [r for r in beyond.results if r.protocol == "transfer"]
    assert html.count("<tr data-source=") == len(tr)
    for r in tr:
        if r.status != "ok":
            assert f'<div class="why">{r.reason.replace(chr(39), "&#x27;")}</div>' in html
    md = (files.index.parent / "leaderboard.md").read_text()
    assert "## Generalization" in md and "## Label efficiency" in md
    assert "| echonet_pediatric/ef[A4C] |" in md


def test_matrix_and_curve_text_fits_with_a_long_encoder_name(beyond, tmp_path: Path) -> None:
    """One encoder renamed to a long name: titles wrap, legend entries shorten, nothing leaves
    the canvas."""
    long = "an-unusually-long-encoder-name-from-a-plugin-with-its-configuration-spelled-out"
    keep = next(r.encoder_key for r in beyond.results if r.encoder_name == "pixels")

    def renamed(d: dict) -> dict | None:
        if d["protocol"] not in ("transfer", "label_efficiency", "linear_probe", "knn"):
            return None
        d["encoder"]["name"] = long
        return d

    copy_results(beyond.root / "results", tmp_path / "results", renamed, f"{keep}*.json")
    with drawn_text() as drawn:
        rep = build_report(tmp_path / "results", tmp_path / "out")
    assert drawn.outside() == []
    texts = [t for t, _, _ in drawn.texts]
    assert any(t.startswith("an-unusually") and "…" in t for t in texts)  # shortened legend
    assert len([p for p in rep.figures if p.name.startswith(("transfer__", "efficiency__"))]) \
        == 2 * 2 + 7 * 2


def test_generalization_ratio_is_higher_is_better_for_every_metric(beyond) -> None:
    from cardiobench.report.generalization import pair_ratio, ratios

    tr = _transfer(beyond, runner="linear_probe")
    mae = tr[("echonet_dynamic/ef", "camus/ef")]
    acc = tr[("camus/view", "hmcqu/view")]
    # lower-is-better MAE: in-dataset ÷ transferred; accuracy: transferred ÷ in-dataset
    want_mae = mae.extras["in_dataset"]["metrics"]["mae"]["value"] / mae.metrics["mae"]["value"]
    want_acc = acc.metrics["accuracy"]["value"] / acc.extras["in_dataset"]["metrics"][
        "accuracy"]["value"]
    assert pair_ratio(mae)[0] == pytest.approx(want_mae)
    assert pair_ratio(acc)[0] == pytest.approx(want_acc)
    row = next(x for x in ratios(beyond.results) if x.encoder_key == mae.encoder_key
               and x.runner == "linear_probe" and x.group == "echonet_dynamic/ef")
    whole = [r for (s, t), r in tr.items() if "[" not in s + t and t.endswith("/ef")]
    assert row.n_pairs == len(whole) == 6
    assert row.value == pytest.approx(np.mean([pair_ratio(r)[0] for r in whole]))
    assert row.ci_low is None and "fewer bootstrap clusters" in row.reason  # tiny test splits


@pytest.mark.skipif(not shutil.which("chromium") and not shutil.which("chromium-browser"),
                    reason="chromium is not installed (CI installs it: apt-get install chromium)")
def test_the_new_section_lays_out_in_headless_chromium(beyond) -> None:
    m = measure_page(beyond.files.index, 1400)
    assert m["page"] == m["client"] and m["outside"] == [], m["outside"]
    sizes: dict[str, set] = {}
    for src, nw, nh, w, h in m["images"]:
        assert nw > 0 and (w, h) == (nw, nh), src  # natural size
        sizes.setdefault(Path(src).name.split("__")[0], set()).add((nw, nh))
    assert len(sizes["transfer"]) == 1 and len(sizes["efficiency"]) == 1  # one grid each
    run = chromium(["--dump-dom"], beyond.files.index.resolve().as_uri())
    assert 'id="label-efficiency"' in run.stdout


# ----------------------------------------------------------------------------- suites and bad input
def test_suite_runs_transfer_on_request_and_tasks_narrow_targets() -> None:
    plain = suite_entries(load_suite(), CATALOGUE)
    assert {e.protocol for e in plain} == {"zero_shot", "linear_probe", "knn", "alignment"}
    got = suite_entries(load_suite(), CATALOGUE, tasks=["camus/ef"], protocols=["transfer"])
    assert {(e.task.name, e.source.name, e.config["source_subset"], e.config["runner"])
            for e in got} == {("camus/ef", s, sub, r) for s, sub in (
                ("echonet_dynamic/ef", None), ("echonet_pediatric/ef", None),
                ("echonet_pediatric/ef", "A4C"), ("echonet_pediatric/ef", "PSAX"))
                for r in ("linear_probe", "knn")}
    # the pediatric subset source carries its declared view filter
    a4c = next(e for e in got if e.config["source_subset"] == "A4C")
    assert a4c.source.filters == {"view": ("A4C",)}
    listed = {"runs": [{"tasks": "all", "protocols": ["transfer"], "config": {"transfer": {
        "pairs": ["echonet_dynamic/ef -> echonet_pediatric/ef[PSAX]"], "runners": ["knn"]}}}]}
    (one,) = suite_entries(listed, CATALOGUE)
    assert one.task.filters == {"view": ("PSAX",)} and one.config["target_subset"] == "PSAX"


def test_undeclared_pairs_and_bad_settings_are_refused() -> None:
    bad = {"runs": [{"tasks": "all", "protocols": ["transfer"], "config": {"transfer": {
        "pairs": ["camus/ef -> hmcqu/view"]}}}]}
    with pytest.raises(ev.EvaluationError) as exc:
        suite_entries(bad, CATALOGUE)
    msg = str(exc.value)
    assert "'camus/ef -> hmcqu/view' refused" in msg and "does not declare" in msg
    assert "camus/ef -> echonet_dynamic/ef" in msg  # the declared pairs are listed
    assert "camus/view -> hmcqu/view" in msg
    same = {"runs": [{"tasks": "all", "protocols": ["transfer"], "config": {"transfer": {
        "pairs": ["echonet_pediatric/ef[A4C] -> echonet_pediatric/ef[PSAX]"]}}}]}
    with pytest.raises(ev.EvaluationError, match="of one dataset"):
        suite_entries(same, CATALOGUE)
    for cfg, field in (({"seeds": 1}, "seeds"), ({"fractions": [0.5, 1.5]}, "fractions"),
                       ({"budgets_per_class": [0, 2]}, "budgets_per_class"),
                       ({"runners": ["svm"]}, "runners")):
        suite = {"runs": [{"tasks": "all", "protocols": ["label_efficiency"],
                           "config": {"label_efficiency": cfg}}]}
        with pytest.raises(ev.EvaluationError, match=f"field '{field}'"):
            suite_entries(suite, CATALOGUE)


def _synthetic(dataset: str, splits: list[str], seed: int) -> tuple[Manifest, Embeddings]:
    rng = np.random.default_rng(seed)
    n = len(splits)
    t = pd.DataFrame({"sample_id": [f"{dataset}{i}" for i in range(n)],
                      "patient_id": [f"{dataset}p{i}" for i in range(n)], "split": splits,
                      "path": [f"v/{i}.avi" for i in range(n)], "view": "A4C",
                      "ef": rng.uniform(20, 80, n).round(1)})
    return Manifest(dataset, t), Embeddings(t["sample_id"], rng.normal(size=(n, 4)),
                                            encoder={"name": "x"}, fingerprint=f"fp{seed}")


def test_a_source_without_train_or_a_target_without_test_is_na_with_the_reason() -> None:
    dyn, ped = CATALOGUE.task("echonet_dynamic/ef"), CATALOGUE.task("echonet_pediatric/ef")
    full = ["train"] * 20 + ["val"] * 6 + ["test"] * 10
    m_src, e_src = _synthetic("echonet_dynamic", full, 0)
    m_tgt, e_tgt = _synthetic("echonet_pediatric", full, 1)
    cfg = {**PROBE, "source": dyn.name, "runner": "linear_probe"}
    ok = ev.evaluate(ped, "transfer", m_tgt, e_tgt, None, cfg,
                     ev.SourceData(dyn, m_src, e_src))
    assert ok.status == "ok" and ok.variant == "from_echonet_dynamic_ef--linear_probe"
    m_none, e_none = _synthetic("echonet_dynamic", ["val"] * 6 + ["test"] * 10, 0)
    r = ev.evaluate(ped, "transfer", m_tgt, e_tgt, None, cfg, ev.SourceData(dyn, m_none, e_none))
    assert r.status == "not_applicable" and "has no train units" in r.reason
    m_nt, e_nt = _synthetic("echonet_pediatric", ["train"] * 20 + ["val"] * 6, 1)
    r = ev.evaluate(ped, "transfer", m_nt, e_nt, None, cfg, ev.SourceData(dyn, m_src, e_src))
    assert r.status == "not_applicable" and "no test units" in r.reason
    with pytest.raises(ev.EvaluationError, match="fits on a source task"):
        ev.evaluate(ped, "transfer", m_tgt, e_tgt, None, cfg)
    lvh = CATALOGUE.task("echonet_lvh/lvidd")  # a value too, but not declared the same as EF
    m_lvh, e_lvh = _synthetic("echonet_lvh", full, 2)
    m_lvh.table["lvidd"] = m_lvh.table["ef"] / 10
    with pytest.raises(ev.EvaluationError, match="refused: neither declares"):
        ev.evaluate(ped, "transfer", m_tgt, e_tgt, None, {**cfg, "source": lvh.name},
                    ev.SourceData(lvh, m_lvh, e_lvh))
    # re-centring is an option, off by default and recorded: a constant shift of the values
    rec = ev.evaluate(ped, "transfer", m_tgt, e_tgt, None, {**cfg, "recentre": True},
                      ev.SourceData(dyn, m_src, e_src))
    shift = rec.config["protocol_record"]["recentred"]["shift"]
    np.testing.assert_allclose(rec.predictions["y_pred"] - ok.predictions["y_pred"], shift,
                               atol=1e-9)
    tv = (m_tgt.table["split"] != "test").to_numpy()
    assert shift == pytest.approx(m_tgt.table.loc[tv, "ef"].mean()
                                  - _mean_fit(m_src, e_src, e_tgt.clip[tv]), rel=1e-9)


def _mean_fit(m: Manifest, e: Embeddings, X: np.ndarray) -> float:
    """The mean prediction on ``X`` of the source's ridge probe, refit with scikit-learn."""
    t, Z = m.table, e.clip.astype(np.float64)
    tr, va = (t["split"] == "train").to_numpy(), (t["split"] == "val").to_numpy()
    y = t["ef"].to_numpy(float)
    mse = [mean_squared_error(y[va], _ridge(a).fit(Z[tr], y[tr]).predict(Z[va]))
           for a in ALPHAS]
    return float(_ridge(ALPHAS[int(np.argmin(mse))]).fit(Z[tr | va], y[tr | va])
                 .predict(X.astype(np.float64)).mean())


def test_run_with_protocols_transfer_writes_under_the_target(beyond, tmp_path: Path,
                                                             capsys) -> None:
    from cardiobench.cli import main

    csvs = [str(beyond.manifests[d].path) for d in ("echonet_dynamic", "camus")]
    code = main(["evaluate", "--encoder", "pixels", "--manifest",
                 *csvs, "--cache", str(beyond.root / "cache"), "--protocols", "transfer",
                 "--tasks", "camus/ef", "--out", str(tmp_path / "r")])
    out = capsys.readouterr().out
    assert code == 0, out
    files = sorted(p.name for p in (tmp_path / "r" / "camus" / "ef" / "transfer").glob("*.json"))
    key = json.loads((tmp_path / "r" / "camus" / "ef" / "transfer" / files[0]).read_text())
    assert key["config"]["source"] == "echonet_dynamic/ef" and key["task"] == "camus/ef"
    assert [f.split("--", 1)[1] for f in files] == [
        "from_echonet_dynamic_ef--knn.json", "from_echonet_dynamic_ef--linear_probe.json"]
    assert "## Generalization" in out and "2 result(s)" in out


def test_a_folder_of_transfer_results_only_reports_them(beyond, tmp_path: Path) -> None:
    copy_results(beyond.root / "results", tmp_path / "results",
                  lambda d: d if d["protocol"] == "transfer" else None)
    build_report(tmp_path / "results", tmp_path / "out")
    html = (tmp_path / "out" / "index.html").read_text()
    assert "No in-dataset result to tabulate here" in html
    assert 'id="beyond"' in html and "transfer__" in html
