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

import pytest
import torch

from cardiobench.encoders import build_encoder
from cardiobench.phantom.layouts import Scale
from cardiobench.pipeline import embed_all, generate_phantom, prepare_all
from cardiobench.protocols.evaluate import load_suite, run_suite, suite_entries
from cardiobench.protocols.tasks import TASKS, get_task
from test_encoders_clip import ECHO_CFG

NOT_APPLICABLE_FOR_TEXTLESS = {"zero_shot", "alignment"}


@pytest.fixture(scope="module")
def suite_data(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("e2e")
    roots = generate_phantom(root / "raw", scale="tiny", seed=3)
    prepared = prepare_all(roots, root / "manifests")
    assert not prepared.failed, prepared.failed
    return root, prepared.manifests


def _entries() -> list[tuple[str, str]]:
    return [(t, p) for t, p, _ in suite_entries(load_suite())]


def _run(root: Path, manifests, encoder, name: str):
    emb = embed_all(manifests, encoder, root / f"cache-{name}", num_workers=0, progress=False)
    results = run_suite(load_suite(), manifests, emb, encoder, root / f"results-{name}")
    return {(r.task, r.protocol): r for r in results}


def test_every_task_and_protocol_runs_for_pixels(suite_data) -> None:
    root, manifests = suite_data
    results = _run(root, manifests, build_encoder("pixels"), "pixels")
    expected = _entries()
    # 13 endpoint tasks (EF x3, LVH x3, ASD, PAH, STEMI, AS, RWMA per view x3) + 9 view tasks
    assert len(TASKS) == 22 and len(expected) == 22 * 4 and set(results) == set(expected)
    for (task, proto), r in results.items():
        assert r.status in ("ok", "not_applicable"), (task, proto, r.status, r.reason)
        if proto in NOT_APPLICABLE_FOR_TEXTLESS:
            assert r.status == "not_applicable" and "text" in r.reason
        if r.status == "ok":
            assert r.n > 0 and r.metrics, (task, proto)
    # single-class view tasks cannot train a probe: recorded, not skipped
    assert results[("echonet_dynamic/view", "linear_probe")].status == "not_applicable"
    # each result JSON is on disk with its predictions beside it
    files = list((root / "results-pixels").rglob("*.json"))
    assert len(files) >= len(expected)
    one = json.loads(files[0].read_text())
    assert one["schema_version"] == 1 and "provenance" in one
    assert (root / "results-pixels" / "leaderboard.md").exists()


@pytest.fixture(scope="module")
def tiny_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-init open_clip checkpoint in open_clip's own local layout."""
    import open_clip

    d = tmp_path_factory.mktemp("tinyclip")
    (d / "open_clip_config.json").write_text(json.dumps(ECHO_CFG))
    torch.manual_seed(0)
    model = open_clip.create_model("local-dir:" + str(d), pretrained=None, load_weights=False)
    torch.save(model.state_dict(), d / "open_clip_pytorch_model.bin")
    return d


def test_every_task_runs_for_a_random_clip_with_a_text_tower(suite_data, tiny_clip_dir) -> None:
    root, manifests = suite_data
    enc = build_encoder("open_clip", weights=str(tiny_clip_dir), name="tiny-clip",
                        spec_overrides={"resolution": 64})
    assert enc.has_text and enc.logit_scale and enc.logit_scale > 1
    results = _run(root, manifests, enc, "clip")
    assert set(results) == set(_entries())
    for (task, proto), r in results.items():
        assert r.status in ("ok", "not_applicable"), (task, proto, r.status, r.reason)
        if proto == "zero_shot":
            assert r.status == "ok", (task, r.reason)
            assert r.config.get("prompt_set") or r.config.get("prompts") or r.config
    ef = results[("echonet_dynamic/ef", "zero_shot")]
    preds = ef.predictions if ef.predictions is not None else None
    assert ef.metrics["mae"]["value"] >= 0
    if preds is not None:
        assert preds["y_pred"].between(0, 100).all()  # predictions come from the EF value grid


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
    enc = build_encoder("pixels")
    emb = embed_all(manifests, enc, tmp_path / "cache", num_workers=0, progress=False)
    suite = {"runs": [{"tasks": list(SIGNAL_TASKS), "protocols": ["linear_probe"]}]}
    results = {r.task: r for r in run_suite(suite, manifests, emb, enc, tmp_path / "results")}
    for name in SIGNAL_TASKS:
        r = results[name]
        head = get_task(name).headline
        probe, base = r.metrics[head]["value"], r.baseline[head]["value"]
        if head in ("mae", "rmse"):
            assert probe < base, (name, probe, base)
        else:
            assert probe > base, (name, probe, base)
    ef = results["echonet_dynamic/ef"]
    # the "clear margin": the EF probe at most 70 % of the mean predictor's MAE
    assert ef.metrics["mae"]["value"] < 0.7 * ef.baseline["mae"]["value"]
