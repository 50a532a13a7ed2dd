"""Protocols end to end on synthetic embeddings with an analytically aligned text tower."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from cardiobench.embed.embeddings import Embeddings
from cardiobench.encoders.base import Encoder
from cardiobench.manifest import Manifest
from cardiobench.protocols import evaluate as ev
from cardiobench.protocols import export, zero_shot
from cardiobench.suite import load_suite, suite_entries
from cardiobench.results import load_results
from cardiobench.manifest import VIEWS as VIEW_CLASSES

from helpers import CATALOGUE, fake_result

D = 16
FAST = {"n_boot": 200}


def ef_vec(ef):
    """EF as an angle in the (0, 1) plane: 0 % → 0°, 100 % → 90°."""
    th = np.asarray(ef, dtype=float) / 100 * np.pi / 2
    v = np.zeros(np.shape(th) + (D,))
    v[..., 0], v[..., 1] = np.cos(th), np.sin(th)
    return v


def unit(i):
    v = np.zeros(D)
    v[i] = 1.0
    return v


class AnalyticEncoder(Encoder):
    """Text tower that embeds each known prompt where the synthetic images live."""

    name = "analytic"
    embed_dim = D

    def __init__(self, scale=50.0):
        self._scale = scale
        self.lookup = {}
        for name in ("ef", "asd", "view"):
            ps = zero_shot.load_prompt_set(name)
            for t, y in zip(ps.texts, ps.targets):
                self.lookup[t] = ef_vec(y) if name == "ef" else \
                    unit(2 if y == 1 else 3) if name == "asd" else unit(4 + int(y))

    @property
    def logit_scale(self):
        return self._scale

    def encode_text(self, texts):
        return torch.tensor(np.stack([self.lookup[t] for t in texts]), dtype=torch.float32)


class VisionOnly(Encoder):
    name = "vision_only"


def _table(n_pat, per, seed, extra):
    rng = np.random.default_rng(seed)
    split = rng.choice(["train", "val", "test"], size=n_pat, p=[0.6, 0.2, 0.2])
    rows = []
    for p in range(n_pat):
        for v in range(per):
            rows.append({"sample_id": f"p{p:03d}_{v}", "patient_id": f"p{p:03d}",
                         "split": split[p], "path": f"v/p{p:03d}_{v}.avi", **extra(rng, p, v)})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def ef_data():
    """EchoNet-Dynamic-like: EF 25–75, 8 noisy frames per video along the EF angle."""
    t = _table(150, 1, 0, lambda r, p, v: {"view": "A4C", "ef": float(r.uniform(25, 75))})
    rng = np.random.default_rng(1)
    frames = [ef_vec(ef + rng.normal(0, 1.0, 8)) for ef in t["ef"]]
    emb = Embeddings(t["sample_id"], np.stack([f.mean(0) for f in frames]), frames,
                     encoder={"name": "analytic"}, fingerprint="fp-ef")
    return Manifest("echonet_dynamic", t), emb


@pytest.fixture(scope="module")
def asd_data():
    t = _table(120, 1, 2, lambda r, p, v: {"view": "A4C", "asd": float(r.random() < 0.4)})
    rng = np.random.default_rng(3)
    clip = np.stack([unit(2 if a else 3) + 0.3 * unit(0) for a in t["asd"]]) \
        + rng.normal(0, 0.05, (len(t), D))
    return Manifest("cardiacnet_asd", t), Embeddings(t["sample_id"], clip, encoder={"name": "x"},
                                                     fingerprint="fp-asd")


def test_zero_shot_ef_within_one_point(ef_data):
    m, e = ef_data
    r = ev.evaluate(CATALOGUE.task("echonet_dynamic/ef"), "zero_shot", m, e, AnalyticEncoder(), FAST)
    assert r.status == "ok" and r.metrics["mae"]["value"] < 1.0
    assert r.metrics["mae"]["ci_low"] <= r.metrics["mae"]["value"] <= r.metrics["mae"]["ci_high"]
    assert r.baseline["mae"]["value"] > 5  # the floor is far above
    assert r.config["protocol_record"]["order"] == "rank_mean_then_median"
    r2 = ev.evaluate(CATALOGUE.task("echonet_dynamic/ef"), "zero_shot", m, e, AnalyticEncoder(),
                     {**FAST, "order": "median_then_mean"})
    assert r2.metrics["mae"]["value"] < 1.0


def test_aggregation_orders_hand_computed():
    # 10 prompts → k = 2; frame 1 ranks values (90, 0, ...), frame 2 ranks (0, 90, ...)
    values = np.arange(10) * 10.0
    sim = np.zeros((2, 10))
    sim[0, 9], sim[0, 0] = 1.0, 0.9   # frame 1: 90 first, 0 second
    sim[1, 0], sim[1, 9] = 1.0, 0.9   # frame 2: 0 first, 90 second
    sim[:, 1:9] = np.linspace(0.5, 0.1, 8)
    # EchoCLIP: mean ranked lists → [45, 45, ...] → lower median of top-2 = 45
    assert zero_shot.regression_from_similarity(sim, values, "rank_mean_then_median") == 45.0
    # reference: per-frame lower median of {90, 0} = 0, mean over frames = 0
    assert zero_shot.regression_from_similarity(sim, values, "median_then_mean") == 0.0


def test_zero_shot_binary_separable_and_threshold_train_only(asd_data):
    m, e = asd_data
    enc = AnalyticEncoder()
    r = ev.evaluate(CATALOGUE.task("cardiacnet_asd/asd"), "zero_shot", m, e, enc, FAST)
    assert r.metrics["accuracy"]["value"] == 100.0 and r.metrics["auroc"]["value"] == 100.0
    assert r.extras["metrics_other_decision"]["accuracy"]["value"] == 100.0  # argmax rule too
    thr = r.config["protocol_record"]["threshold"]["value"]
    flipped = m.table.copy()
    te = flipped["split"] == "test"
    flipped.loc[te, "asd"] = 1 - flipped.loc[te, "asd"]
    r2 = ev.evaluate(CATALOGUE.task("cardiacnet_asd/asd"), "zero_shot", Manifest("cardiacnet_asd", flipped), e,
                     enc, FAST)
    assert r2.config["protocol_record"]["threshold"]["value"] == thr
    assert r2.metrics["accuracy"]["value"] == 0.0


def test_threshold_calibration_rule():
    # scores / labels: best F1 at "score > 0.3" (all three positives above, one negative)
    s = np.array([0.1, 0.3, 0.35, 0.6, 0.9])
    y = np.array([0, 0, 1, 1, 1])
    assert zero_shot.calibrate_threshold(s, y) == 0.3


def test_zero_shot_view_and_not_applicable():
    t = _table(60, 1, 4, lambda r, p, v: {"view": VIEW_CLASSES[r.integers(0, 6)]})
    clip = np.stack([unit(4 + VIEW_CLASSES.index(v)) for v in t["view"]]) + 0.1 * unit(0)
    m = Manifest("tmed2", t.assign(study_id=t["patient_id"]))
    e = Embeddings(t["sample_id"], clip, encoder={"name": "analytic"}, fingerprint="fp-v")
    r = ev.evaluate(CATALOGUE.task("tmed2/view"), "zero_shot", m, e, AnalyticEncoder(), FAST)
    assert r.metrics["accuracy"]["value"] == 100.0
    p = r.predictions[[f"prob_{c}" for c in VIEW_CLASSES]].to_numpy()
    assert np.allclose(p.sum(1), 1) and p.max(1).min() > 0.9  # logit_scale used, not T=1
    na = ev.evaluate(CATALOGUE.task("tmed2/view"), "zero_shot", m, e, VisionOnly(), FAST)
    assert na.status == "not_applicable" and "text" in na.reason


def test_text_embeddings_cached(tmp_path, asd_data):
    m, e = asd_data
    enc = AnalyticEncoder()
    cache = zero_shot.TextEmbeddingCache(tmp_path)
    for _ in range(2):
        ev.evaluate(CATALOGUE.task("cardiacnet_asd/asd"), "zero_shot", m, e, enc, {**FAST, "text_cache": cache})
    assert cache.computed == 1 and len(list(tmp_path.glob("*.npy"))) == 1
    fresh = zero_shot.TextEmbeddingCache(tmp_path)
    fresh.get(enc, zero_shot.load_prompt_set("asd"))
    assert fresh.computed == 0  # read back from disk


def test_ridge_probe_beats_mean_and_sweep_recorded(ef_data):
    m, e = ef_data
    rng = np.random.default_rng(7)
    ef = m.table["ef"].to_numpy()
    X = np.c_[ef + rng.normal(0, 3, len(ef)), rng.normal(size=(len(ef), 20))] @ rng.normal(size=(21, 32))
    emb = Embeddings(e.sample_ids, X, encoder={"name": "feat"}, fingerprint="fp-x")
    r = ev.evaluate(CATALOGUE.task("echonet_dynamic/ef"), "linear_probe", m, emb, None, FAST)
    assert r.metrics["mae"]["value"] < 0.5 * r.baseline["mae"]["value"]
    rec = r.config["protocol_record"]
    assert rec["param"] == "alpha" and len(rec["sweep"]) == 17 and rec["refit_on"] == "train+val"
    # kNN with cosine on the EF-angle embeddings: neighbours share EF
    k = ev.evaluate(CATALOGUE.task("echonet_dynamic/ef"), "knn", m, e, None, FAST)
    assert k.metrics["mae"]["value"] < 0.2 * k.baseline["mae"]["value"]
    assert k.config["protocol_record"]["gallery"] == "train+val"


def test_camus_mean_over_views_and_subgroups():
    def extra(r, p, v):
        return {"view": ("A2C", "A4C")[v], "ef": 30.0 + p % 40, "sex": "FM"[p % 2], "age": 20 + p,
                "image_quality": ["good", "poor", "medium"][p % 3]}
    t = _table(90, 2, 5, extra)
    rng = np.random.default_rng(0)
    # the two views err in opposite directions: their mean is exact
    off = np.where(t["view"] == "A2C", 4.0, -4.0)
    X = np.c_[t["ef"] + off, rng.normal(size=len(t))]
    m = Manifest("camus", t)
    emb = Embeddings(t["sample_id"], X, encoder={"name": "f"}, fingerprint="fp")
    r = ev.evaluate(CATALOGUE.task("camus/ef"), "linear_probe", m, emb, None, FAST)
    n_test_pat = t.loc[t["split"] == "test", "patient_id"].nunique()
    assert r.n == n_test_pat and r.n_samples == 2 * n_test_pat
    assert r.metrics["mae"]["value"] < 2.0  # a single view would be ≈ 4 off
    assert {"Sex", "Age", "ImageQuality"} <= set(r.extras["subgroups"])
    groups = [g["group"] for g in r.extras["subgroups"]["Sex"]]
    assert groups == ["F", "M", "delta(max-min)"]


def test_run_suite_writes_results_and_leaderboard(tmp_path, asd_data):
    m, e = asd_data
    suite = {"runs": [{"tasks": ["cardiacnet_asd/asd"], "protocols": ["zero_shot", "linear_probe"],
                       "config": {"zero_shot": FAST, "linear_probe": FAST}}]}
    res = ev.evaluate_all(suite_entries(suite, CATALOGUE), {"cardiacnet_asd": m},
                          {"cardiacnet_asd": e}, VisionOnly(), tmp_path)
    assert [r.status for r in res] == ["not_applicable", "ok"]
    loaded = load_results(tmp_path, with_predictions=True)
    assert len(loaded) == 2
    ok = [r for r in loaded if r.status == "ok"][0]
    d = json.loads((tmp_path / ok.relpath()).read_text())
    assert d["schema_version"] == 1 and d["n"] == ok.n and d["metrics"]["auroc"]["value"] > 90
    assert set(d["provenance"]) >= {"git", "sklearn", "manifest_fingerprint", "cache_fingerprint",
                                    "seed", "wall_time_s", "timestamp"}
    assert len(ok.predictions) == ok.n
    # only the report layer writes leaderboards
    from cardiobench.report.leaderboard import write_leaderboard

    assert not (tmp_path / "leaderboard.md").exists()
    md = write_leaderboard(tmp_path).read_text()
    assert "cardiacnet_asd/asd (auroc)" in md and "vision_only · linear_probe" in md and "n/a" in md
    assert "baseline" in md
    from cardiobench.report.figures import forest
    png = forest([ok], "auroc", ok.task, tmp_path / "forest.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_suite_yaml_lists_every_task():
    entries = suite_entries(load_suite(), CATALOGUE)
    assert {e.task.name for e in entries} == set(CATALOGUE.tasks)
    assert len(entries) == 4 * len(CATALOGUE.tasks)


def test_task_registry():
    assert CATALOGUE.task("camus/ef").aggregate == "mean_per_patient"
    assert CATALOGUE.task("tmed2/aortic_stenosis").unit_column() == "study_id"
    assert {t for t in CATALOGUE.tasks if t.startswith("segrwma/rwma")} == {
        "segrwma/rwma_a2c", "segrwma/rwma_a3c", "segrwma/rwma_a4c"}
    assert sum(t.endswith("/view") for t in CATALOGUE.tasks) == 9
    with pytest.raises(KeyError, match="unknown task"):
        CATALOGUE.task("nope/ef")


def test_export_columns_match_reference_examples(tmp_path, examples):
    ex = examples
    checked = 0
    for name, task in CATALOGUE.tasks.items():
        path = export.export_result(fake_result(name), CATALOGUE.task(name), tmp_path)
        ref = ex / path.relative_to(tmp_path)
        assert ref.exists(), f"{name}: no reference file {ref}"
        ref_cols = [c for c in pd.read_csv(ref, nrows=1).columns if not c.startswith("Unnamed")]
        ours = pd.read_csv(path)
        assert list(ours.columns) == ref_cols, name
        if task.type.name == "binary":
            assert ours[ref_cols[[c.endswith("_pred") for c in ref_cols].index(True)]].dtype.kind == "i"
        checked += 1
    assert checked == len(CATALOGUE.tasks)


def test_alignment_protocol(ef_data, asd_data):
    m, e = ef_data
    r = ev.evaluate(CATALOGUE.task("echonet_dynamic/ef"), "alignment", m, e, AnalyticEncoder(), FAST)
    assert r.metrics["pearson"]["value"] > 95 and r.metrics["spearman"]["ci_low"] > 90
    m2, e2 = asd_data
    b = ev.evaluate(CATALOGUE.task("cardiacnet_asd/asd"), "alignment", m2, e2, AnalyticEncoder(), FAST)
    assert b.metrics["auroc"]["value"] == 100.0 and b.metrics["smd"]["value"] > 3
    na = ev.evaluate(CATALOGUE.task("cardiacnet_asd/asd"), "alignment", m2, e2, VisionOnly(), FAST)
    assert na.status == "not_applicable"


def test_single_class_probe_not_applicable_and_paired_compare(tmp_path, asd_data):
    from cardiobench.report.compare import compare_results
    t = _table(40, 1, 8, lambda r, p, v: {"view": "A4C"})
    m = Manifest("echonet_dynamic", t)
    emb = Embeddings(t["sample_id"], np.random.default_rng(0).normal(size=(40, 4)),
                     encoder={"name": "f"}, fingerprint="fp")
    r = ev.evaluate(CATALOGUE.task("echonet_dynamic/view"), "linear_probe", m, emb, None, FAST)
    assert r.status == "not_applicable" and "single class" in r.reason
    m2, e2 = asd_data
    good = ev.evaluate(CATALOGUE.task("cardiacnet_asd/asd"), "zero_shot", m2, e2, AnalyticEncoder(), FAST)
    noisy = Embeddings(e2.sample_ids, e2.clip + np.random.default_rng(1).normal(0, 0.6, e2.clip.shape),
                       encoder={"name": "noisy"}, fingerprint="fp-n")
    bad = ev.evaluate(CATALOGUE.task("cardiacnet_asd/asd"), "zero_shot", m2, noisy, AnalyticEncoder(), FAST)
    diff = compare_results(good, bad, n_boot=200)
    assert diff["auroc"].diff > 0 and diff["auroc"].ci_low > 0 and diff["auroc"].p_value < 0.05


def test_tmed2_study_aggregation_and_export(tmp_path):
    """Images → study: probabilities averaged per study; export keyed by study_id, hard 0/1."""
    def extra(r, p, v):
        return {"view": "PLAX", "aortic_stenosis": float(p % 3 == 0), "study_id": f"{p}s1"}
    t = _table(90, 3, 6, extra)
    t["sample_id"] = [f"{s}_{i}.png" for s, i in zip(t["study_id"], range(len(t)))]
    rng = np.random.default_rng(2)
    X = np.c_[t["aortic_stenosis"] + rng.normal(0, 0.7, len(t)), rng.normal(size=(len(t), 3))]
    m = Manifest("tmed2", t)
    emb = Embeddings(t["sample_id"], X, encoder={"name": "f"}, fingerprint="fp")
    r = ev.evaluate(CATALOGUE.task("tmed2/aortic_stenosis"), "linear_probe", m, emb, None, FAST)
    te = t[t["split"] == "test"]
    assert r.n == te["study_id"].nunique() and r.n_samples == len(te)
    assert r.extras["n_rows_per_unit"] == 3.0
    assert r.metrics["auroc"]["value"] > r.baseline["auroc"]["value"]
    path = export.export_result(r, CATALOGUE.task(r.task), tmp_path, "mymodel")
    assert path == tmp_path / "TMED2" / "AS" / "mymodel.csv"
    df = pd.read_csv(path)
    assert list(df.columns) == ["study_id", "as_pred", "prob_as"]
    assert set(df["as_pred"]) <= {0, 1} and df["as_pred"].dtype.kind == "i"
    assert set(df["study_id"]) == set(te["study_id"])


def test_fitted_protocols_refuse_an_in_sample_threshold(asd_data):
    m, e = asd_data
    enc = AnalyticEncoder()
    r = ev.evaluate(CATALOGUE.task("cardiacnet_asd/asd"), "linear_probe", m, e, enc, FAST)
    # no F1 threshold fitted on in-sample train scores
    assert "threshold" not in r.config["protocol_record"]
    with pytest.raises(ev.EvaluationError, match="zero_shot only"):
        ev.evaluate(CATALOGUE.task("cardiacnet_asd/asd"), "linear_probe", m, e, enc,
                    {**FAST, "decision": "threshold"})
