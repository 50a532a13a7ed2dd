"""The whole pipeline on the phantom suite: raw layouts → manifests → cache → every task.

One `tiny` suite is generated per module. Every (task × protocol) of the CardioBench suite must
run for the `pixels` baseline and for a random-weight open_clip model with a text tower (a tiny
faithful config: ConvNeXt-atto image tower, 1-layer CLIP text tower, saved in open_clip's own
checkpoint layout). A larger phantom of the signal-carrying endpoints checks that the probe
beats the trivial predictor.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from sklearn.metrics import mean_absolute_error, roc_auc_score

from cardiobench.embed import EmbeddingCache

from cardiobench.encoders import build_encoder
from cardiobench.phantom.layouts import Scale
from cardiobench.job import EmbedOptions, Job, generate_phantom, prepare_all
from cardiobench.suite import load_suite, suite_entries

from helpers import CATALOGUE

NOT_APPLICABLE_FOR_TEXTLESS = {"zero_shot", "alignment"}


def _entries() -> list[tuple[str, str]]:
    return [(e.task.name, e.protocol) for e in suite_entries(load_suite(), CATALOGUE)]


def test_every_task_and_protocol_runs_for_pixels(suite_run) -> None:
    results = suite_run.results["pixels"]
    expected = _entries()
    # 13 endpoint tasks (EF x3, LVH x3, ASD, PAH, STEMI, AS, RWMA per view x3) + 9 view tasks
    assert len(CATALOGUE.tasks) == 22 and len(expected) == 22 * 4 and set(results) == set(expected)
    for (task, proto), r in results.items():
        assert r.status in ("ok", "not_applicable"), (task, proto, r.status, r.reason)
        if proto in NOT_APPLICABLE_FOR_TEXTLESS:
            assert r.status == "not_applicable" and r.reason == "pixels has no text tower"
        if r.status == "ok":
            assert r.n > 0 and r.metrics, (task, proto)
    # single-class view tasks cannot train a probe: recorded, not skipped
    lp_view = results[("echonet_dynamic/view", "linear_probe")]
    assert lp_view.status == "not_applicable" and "single class" in lp_view.reason
    # the phantom's LV cavity and CAMUS views are visible in pixels: the probe beats the trivial
    # predictor by a wide margin (seed-3 tiny phantom). The thin-wall targets (IVSd, LVPWd) need
    # more samples than the tiny scale has: the slow 120-sample test below covers them.
    r = results[("echonet_lvh/lvidd", "linear_probe")]
    assert r.metrics["mae"]["value"] < 0.3 * r.baseline["mae"]["value"]
    assert results[("camus/view", "linear_probe")].metrics["accuracy"]["value"] == 100.0
    assert results[("camus/view", "linear_probe")].baseline["accuracy"]["value"] == 50.0
    # each result JSON is on disk with its predictions beside it; only the report layer
    # writes a leaderboard
    pixels_files = [p for p in suite_run.results_dir.rglob("*.json")
                    if p.stem.startswith("pixels-")]
    assert len(pixels_files) == len(expected)
    one = json.loads(pixels_files[0].read_text())
    assert one["schema_version"] == 1 and one["provenance"]["seed"] == 42
    assert not (suite_run.results_dir / "leaderboard.md").exists()


def test_reported_metrics_equal_an_independent_computation_from_the_predictions(suite_run):
    res = suite_run.results["pixels"]
    ef = res[("echonet_lvh/lvidd", "linear_probe")]
    p = ef.predictions
    assert ef.metrics["mae"]["value"] == pytest.approx(mean_absolute_error(p["y_true"],
                                                                           p["y_pred"]))
    # per-patient aggregation: one prediction per patient, the mean of the patient's videos
    camus = res[("camus/ef", "linear_probe")]
    assert camus.predictions["patient_id"].is_unique and camus.extras["n_rows_per_unit"] > 1
    stemi = res[("hmcqu/stemi", "linear_probe")]
    sp = stemi.predictions
    assert stemi.metrics["auroc"]["value"] == pytest.approx(100 * roc_auc_score(sp["y_true"],
                                                                                sp["prob"]))
    assert (sp["y_pred"] == (sp["prob"] >= 0.5).astype(int)).all()  # argmax decision


def test_every_task_runs_for_a_random_clip_with_a_text_tower(suite_run, tiny_clip_dir,
                                                             tiny_manifests) -> None:
    results = suite_run.results["tiny-clip"]
    assert set(results) == set(_entries())
    for (task, proto), r in results.items():
        assert r.status in ("ok", "not_applicable"), (task, proto, r.status, r.reason)
        if proto == "zero_shot":
            assert r.status == "ok", (task, r.reason)
            record = r.config["protocol_record"]
            assert record["prompts"]["name"] == CATALOGUE.task(task).prompt_set, task
            # open_clip initialises the logit scale to 1/0.07 and the checkpoint keeps it
            assert record["logit_scale_used"] == pytest.approx(1 / 0.07, rel=1e-5), task
    ef = results[("echonet_dynamic/ef", "zero_shot")]
    preds = ef.predictions
    assert ef.metrics["mae"]["value"] == pytest.approx(
        mean_absolute_error(preds["y_true"], preds["y_pred"]))
    # a video's value: at each prompt rank, the mean over its frames of the ranked prompts' EF
    # (points of the grid 0, 1, ..., 100 of protocols/prompts/ef.yaml), then the lower median
    # over the top ranks; so a multiple of 1/T for T frames (16: uniform sampling, last repeated)
    assert ef.encoder["spec"]["sampling"]["n_frames"] == 16
    sixteenths = preds["y_pred"].to_numpy() * 16
    assert np.allclose(sixteenths, np.round(sixteenths), rtol=0, atol=1e-9)
    assert preds["y_pred"].between(0, 100).all()
    # zero-shot binary tasks decide with the threshold calibrated on train units
    stemi = results[("hmcqu/stemi", "zero_shot")]
    thr = stemi.config["protocol_record"]["threshold"]["value"]
    sp = stemi.predictions
    assert thr is not None and (sp["y_pred"] == (sp["prob"] > thr).astype(int)).all()
    # alignment: one config shape with the predictive protocols, its own headline metric
    al = results[("echonet_dynamic/ef", "alignment")]
    assert al.config["headline"] == "pearson" and al.config["baseline"] is None
    assert set(al.config) >= {"protocol_record", "task", "bootstrap", "headline"}
    view = results[("camus/view", "alignment")]
    assert view.metrics["recall@1"]["ci_low"] is None and view.config["bootstrap"] is None
    # recall@1 recomputed here: each view's prompt centroid (prompts read from the YAML) ranks
    # the test videos by cosine similarity; a query with no video of its view is left out
    enc = build_encoder("open_clip", weights=str(tiny_clip_dir), name="tiny-clip",
                        spec_overrides={"resolution": 64})
    classes = yaml.safe_load((Path(__file__).resolve().parents[1] / "protocols" / "prompts" /
                              "view.yaml").read_text())["classes"]
    test = tiny_manifests["camus"].subset("test")
    emb = EmbeddingCache(suite_run.cache_dir, "camus", enc.fingerprint()).load()
    video = emb.clip[emb.align(test["sample_id"].astype(str).to_numpy())].astype(np.float64)
    video /= np.linalg.norm(video, axis=1, keepdims=True)
    hits = []
    for view_name, prompts in classes.items():
        if not (test["view"] == view_name).any():
            continue
        t = enc.encode_text(prompts).double().numpy()
        q = (t / np.linalg.norm(t, axis=1, keepdims=True)).mean(axis=0)
        hits.append(test["view"].iloc[int(np.argmax(video @ q))] == view_name)
    assert len(hits) == 2  # CAMUS has A2C and A4C videos only
    assert view.metrics["recall@1"]["value"] == pytest.approx(100 * np.mean(hits))


SIGNAL = Scale("signal", n_samples=120, n_frames=32)
#: endpoints whose phantom carries label signal that the pixels baseline can see
SIGNAL_TASKS = ("echonet_dynamic/ef", "echonet_lvh/ivsd", "echonet_lvh/lvidd",
                "cardiacnet_asd/asd", "cardiacnet_pah/pah", "hmcqu/stemi", "camus/view")


@pytest.mark.slow
def test_probe_beats_the_trivial_predictor_where_the_phantom_has_signal(tmp_path: Path) -> None:
    roots = generate_phantom(tmp_path / "raw", scale=SIGNAL, seed=11,
                             layouts=["echonet_dynamic", "echonet_lvh", "cardiacnet", "hmcqu",
                                      "camus"])
    manifests = prepare_all(roots, tmp_path / "manifests").manifests
    suite = {"runs": [{"tasks": list(SIGNAL_TASKS), "protocols": ["linear_probe"]}]}
    job = Job(manifests, build_encoder("pixels"), tmp_path / "cache", tmp_path / "results",
              entries=suite_entries(suite, CATALOGUE),
              options=EmbedOptions(workers=0, progress=False))
    results = {r.task: r for r in job.score(job.load_or_embed())}
    for name in SIGNAL_TASKS:
        r = results[name]
        head = CATALOGUE.task(name).headline
        probe, base = r.metrics[head]["value"], r.baseline[head]["value"]
        if head in ("mae", "rmse"):
            assert probe < base, (name, probe, base)
        else:
            assert probe > base, (name, probe, base)
    ef = results["echonet_dynamic/ef"]
    # the "clear margin": the EF probe at most 70 % of the mean predictor's MAE
    assert ef.metrics["mae"]["value"] < 0.7 * ef.baseline["mae"]["value"]
