"""``cardiobench reproduce`` on a fake evaluator tree written here (the published folder layout,
its config.py conventions and the CSVs its scripts write, with our own test code), so working
copy, export, registration, collection, the side-by-side table, the expected differences and the
exit codes are tested without the published repository; and on the real published evaluators
where a checkout is named by ``CARDIOBENCH_REFERENCE_REPO`` (skipped otherwise, saying why)."""

from __future__ import annotations

import hashlib
import os
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cardiobench.cli import main
from cardiobench.encoders import build_encoder
from cardiobench.phantom.layouts import write_layout
from cardiobench.job import EmbedOptions, Job
from cardiobench.preprocessing import prepare
from cardiobench.protocols import reproduce as rp
from cardiobench.protocols.evaluate import evaluate
from cardiobench.results import write_result

from helpers import CATALOGUE

N_BOOT = 30

CONFIG = f'''
B = {N_BOOT}
SEED = 42
SPLIT = "test"
VIEW_CLASS_NAMES = ["A2C", "A3C", "A4C", "PSAX", "PLAX", "Other"]
HMCQU_CSV = "data/splits/hmcqu_split.csv"
STEMI_PRED_DIR = "evaluation/example_predictions/HMCQU/stemi"
VIEW_PRED_DIR = "evaluation/example_predictions/HMCQU/view"
HMCQU_OUT_DIR = "evaluation/output/HMCQU/"
CAMUS_SPLIT_CSV = "data/splits/camus_split.csv"
CAMUS_EF_PRED_DIR = "evaluation/example_predictions/CAMUS/EF"
CAMUS_VIEW_PRED_DIR = "evaluation/example_predictions/CAMUS/view"
CAMUS_OUTPUT_DIR = "evaluation/output/CAMUS/"
GT_ECHONET_DYNAMIC = "data/splits/EchoNet-Dynamic/FileList.csv"
EF_MODELS = {{"modelname": "evaluation/example_predictions/EchoNet-Dynamic/EF/modelname.csv"}}
VIEW_MODELS = {{"modelname": "evaluation/example_predictions/EchoNet-Dynamic/view/modelname.csv"}}
ECHONETDYNAMIC_OUT_DIR = "evaluation/output/EchoNet-Dynamic/"
'''

# the fake scripts restate what the published ones do for the tables tested here: inner join on
# the ID, hard-label metrics, B row-bootstrap replicates from default_rng(SEED), each rounded
HMCQU = '''
import glob, os
import numpy as np, pandas as pd
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score
from config import B, SEED, SPLIT, HMCQU_CSV, STEMI_PRED_DIR, VIEW_PRED_DIR, HMCQU_OUT_DIR

def metrics(y, p):
    return {"Accuracy(%)": round(100 * accuracy_score(y, p), 4),
            "Balanced_Accuracy(%)": round(100 * balanced_accuracy_score(y, p), 4),
            "F1(%)": round(100 * f1_score(y, p, labels=np.unique(y), average="macro"), 4)}

gt = pd.read_csv(HMCQU_CSV)
gt = gt[gt["split"] == SPLIT]
rows, dist = [], []
for path in sorted(glob.glob(os.path.join(STEMI_PRED_DIR, "*.csv"))):
    model = os.path.splitext(os.path.basename(path))[0]
    m = gt[["unique_id", "STEMI"]].merge(pd.read_csv(path)[["unique_id", "stemi_pred"]],
                                         on="unique_id")
    if m.empty:
        print(f"[WARN] No overlap for {model} on TEST split.")
        continue
    y, p = m["STEMI"].to_numpy(float), m["stemi_pred"].to_numpy(float)
    base, rng, bags = metrics(y, p), np.random.default_rng(SEED), []
    for _ in range(B):
        i = rng.integers(0, len(y), size=len(y))
        bags.append(metrics(y[i], p[i]))
    row = {"model": model, "n": len(y)}
    for k, v in base.items():
        x = np.array([b[k] for b in bags])
        row.update({k: v + OFFSET, f"{k}_mean": round(float(np.mean(x)), 4),
                    f"{k}_ci_lo": round(float(np.quantile(x, 0.025)), 4),
                    f"{k}_ci_hi": round(float(np.quantile(x, 0.975)), 4)})
    rows.append(row)
for path in sorted(glob.glob(os.path.join(VIEW_PRED_DIR, "*.csv"))):
    pred = pd.read_csv(path)
    if pred.empty:
        continue
    cnt = pred["view_pred"].value_counts()
    dist.append({"model": os.path.splitext(os.path.basename(path))[0],
                 **{c: int(cnt.get(c, 0)) for c in ["A2C", "A3C", "A4C", "PSAX", "PLAX", "Other"]}})
os.makedirs(HMCQU_OUT_DIR, exist_ok=True)
pd.DataFrame(rows).sort_values("model").to_csv(os.path.join(HMCQU_OUT_DIR, "hmcqu_stemi_metrics.csv"), index=False)
pd.DataFrame(dist).to_csv(os.path.join(HMCQU_OUT_DIR, "hmcqu_view_pred_distribution.csv"), index=False)
'''

# CAMUS: per-patient EF subgroups with the published typo ("80" listed for the "≥80" bin)
CAMUS = '''
import glob, os
import numpy as np, pandas as pd
from config import SPLIT, CAMUS_SPLIT_CSV, CAMUS_EF_PRED_DIR, CAMUS_OUTPUT_DIR

gt = pd.read_csv(CAMUS_SPLIT_CSV)
t = gt[gt["split"] == SPLIT].sort_values("patient_id").drop_duplicates("patient_id")
t["AgeBin"] = pd.cut(t["Age"], [-np.inf, 45, 65, 80, np.inf], labels=["≤45", "46–65", "66–80", "≥80"])
rows, overall = [], []
for path in sorted(glob.glob(os.path.join(CAMUS_EF_PRED_DIR, "*.csv"))):
    model = os.path.splitext(os.path.basename(path))[0]
    m = t.merge(pd.read_csv(path), on="patient_id")
    overall.append({"model": model, "n": len(m), "MAE": round(float((m.EF_pred - m.EF).abs().mean()), 2)})
    sub = []
    for g in ["≤45", "46–65", "66–80", "80"]:
        s = m[m["AgeBin"].astype(str) == g]
        if len(s):
            sub.append({"model": model, "grouping": "AgeBin", "group": g, "n": len(s),
                        "MAE": round(float((s.EF_pred - s.EF).abs().mean()), 2)})
    rows += sub
    mae = [r["MAE"] for r in sub]
    rows.append({"model": model, "grouping": "AgeBin", "group": "delta(max−min)",
                 "n": sum(r["n"] for r in sub), "delta MAE": max(mae) - min(mae), "MAE": np.nan})
os.makedirs(CAMUS_OUTPUT_DIR, exist_ok=True)
pd.DataFrame(overall).sort_values("model").to_csv(os.path.join(CAMUS_OUTPUT_DIR, "EF_overall.csv"), index=False)
pd.DataFrame(rows).to_csv(os.path.join(CAMUS_OUTPUT_DIR, "EF_subgroups.csv"), index=False)
'''

# EchoNet-Dynamic: the model list comes from config.py's EF_MODELS, not from the folder
DYNAMIC = '''
import os
import pandas as pd
from config import SPLIT, GT_ECHONET_DYNAMIC, EF_MODELS, ECHONETDYNAMIC_OUT_DIR

fl = pd.read_csv(GT_ECHONET_DYNAMIC)
test = fl[fl["Split"] == SPLIT]
rows = []
for name, path in EF_MODELS.items():
    if not os.path.exists(path):
        print(f"[WARN] EF file missing for {name}: {path}")
        continue
    m = test[["FileName", "EF"]].merge(pd.read_csv(path), on="FileName")
    rows.append({"model": name, "n": len(m), "MAE": round(float((m.EF_pred - m.EF).abs().mean()), 2)})
os.makedirs(ECHONETDYNAMIC_OUT_DIR, exist_ok=True)
pd.DataFrame(rows).sort_values("model").to_csv(os.path.join(ECHONETDYNAMIC_OUT_DIR, "EF_metrics_bootstrap.csv"), index=False)
'''


def fake_reference(root: Path, offset: float = 0.0, extra_import: str = "") -> Path:
    """The published layout: evaluation/{config,hmcqu,camus,echonet_dynamic}.py, their example
    predictions (which must not be evaluated) and data/splits/ with the HMC-QU split CSV."""
    ev = root / "evaluation"
    (ev / "example_predictions" / "HMCQU" / "stemi").mkdir(parents=True)
    (ev / "example_predictions" / "HMCQU" / "stemi" / "modelname.csv").write_text(
        "unique_id,stemi_pred\nx,1\n")
    (ev / "config.py").write_text(CONFIG)
    (ev / "hmcqu.py").write_text(extra_import + HMCQU.replace("OFFSET", repr(offset)))
    (ev / "camus.py").write_text(CAMUS)
    (ev / "echonet_dynamic.py").write_text(DYNAMIC)
    (root / "data" / "splits").mkdir(parents=True)
    return root


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def our_results(tmp_path_factory: pytest.TempPathFactory):
    """Linear-probe and kNN results (``ci: reference``, B = 30) on tiny HMC-QU, CAMUS and
    EchoNet-Dynamic phantoms, one CAMUS test patient made older than 80."""
    tmp = tmp_path_factory.mktemp("repro")
    manifests = {}
    for ds in ("hmcqu", "camus", "echonet_dynamic"):
        truth = write_layout(CATALOGUE.layout(ds), tmp / "raw" / ds, "tiny", seed=2)
        manifests[ds] = prepare(CATALOGUE.dataset(ds), tmp / "raw" / ds)
        assert len(truth)
    cam = manifests["camus"].table
    old = sorted(cam.loc[cam["split"] == "test", "patient_id"].unique())[:1]
    cam.loc[cam["patient_id"].isin(old), "age"] = 85.0
    enc = build_encoder("pixels", n_frames=2)
    emb = Job(manifests, enc, tmp / "cache", options=EmbedOptions(workers=0, progress=False)).load_or_embed()
    results = []
    for task in ("hmcqu/stemi", "hmcqu/view", "camus/ef", "echonet_dynamic/ef"):
        ds = task.split("/")[0]
        for proto in ("linear_probe", "knn"):
            r = evaluate(CATALOGUE.task(task), proto, manifests[ds], emb[ds], enc,
                         {"n_boot": N_BOOT, "ci": "reference", "min_clusters": 2})  # tiny splits
            write_result(r, tmp / "results")
            results.append(r)
    # the HMC-QU split CSV the published repository commits, here from our phantom
    h = manifests["hmcqu"].table
    split_csv = pd.DataFrame({"unique_id": h["sample_id"], "STEMI": h["stemi"],
                              "view": h["view"], "split": h["split"]})
    return tmp, manifests, results, split_csv


def _reference(tmp: Path, split_csv: pd.DataFrame, name: str, **kw) -> Path:
    ref = fake_reference(tmp / name, **kw)
    split_csv.to_csv(ref / "data" / "splits" / "hmcqu_split.csv", index=False)
    return ref


def test_every_value_side_by_side_and_the_checkout_untouched(our_results, tmp_path) -> None:
    tmp, manifests, results, split_csv = our_results
    ref = _reference(tmp_path, split_csv, "ref")
    before = _snapshot(ref)
    rep = rp.reproduce(ref, results, manifests, CATALOGUE.tasks, CATALOGUE.datasets, tmp_path / "out",
                       protocols=["linear_probe", "knn"],
                       evaluators=["hmcqu", "camus", "echonet_dynamic"])
    assert _snapshot(ref) == before  # the user's checkout is only read
    t = rep.table
    assert {(r.protocol, r.evaluator, r.status) for r in rep.runs} == {
        (p, e, "ok") for p in ("linear_probe", "knn") for e in ("hmcqu", "camus", "echonet_dynamic")}
    # HMC-QU: three binary metrics × (value, mean, bounds) + n, per protocol, equal to 4 decimals
    st = t[(t["task"] == "hmcqu/stemi")]
    assert len(st) == 2 * (1 + 3 * 4) and st["equal"].all()
    by = {(r.task, r.protocol): r for r in results}
    acc = st[(st["protocol"] == "knn") & (st["metric"] == "Accuracy(%)") & (st["field"] == "ci_low")]
    assert acc["ours"].item() == by[("hmcqu/stemi", "knn")].metrics["accuracy"]["ci_low"]
    # the view distribution comes from our hard predictions, class by class (zeros included)
    dist = t[(t["task"] == "hmcqu/view") & (t["section"] == "distribution")]
    assert len(dist) == 12 and dist["equal"].all()
    assert dist["theirs"].sum() == by[("hmcqu/view", "knn")].n + by[("hmcqu/view", "linear_probe")].n
    # EchoNet-Dynamic lists models in config.py: ours were registered there, in the copy only
    dyn = t[t["task"] == "echonet_dynamic/ef"]
    assert set(dyn["metric"]) == {"n", "MAE"} and dyn["equal"].all()
    cfg = (tmp_path / "out" / "work" / "knn" / "evaluation" / "config.py").read_text()
    assert 'EF_MODELS = {"pixels": "evaluation/example_predictions/EchoNet-Dynamic/EF/pixels.csv"}' in cfg
    assert "modelname" not in set(t["model"])  # their example predictions were not evaluated
    # CAMUS: the >80 group the script drops (typo) is an expected difference, with its reason
    cam = t[(t["task"] == "camus/ef") & (t["section"] == "subgroup:AgeBin")]
    over = cam[cam["group"] == "≥80"]
    # one patient over 80: MAE, MSE and RMSE are defined (no range, no correlation)
    assert len(over) == 2 * 3 and (over["status"] == "expected").all()
    assert over["theirs"].isna().all() and over["ours"].notna().all()
    assert "typo" in over["reason"].iloc[0]
    rest = cam[~cam["group"].isin(["≥80", "delta(max-min)"])]
    assert len(rest) and rest["equal"].all()
    assert rep.ok and rep.counts()["different"] == 0
    # the table is saved as CSV and Markdown
    saved = pd.read_csv(tmp_path / "out" / rp.TABLE_CSV)
    assert len(saved) == len(t) and list(saved.columns[:5]) == ["task", "protocol", "model",
                                                                "evaluator", "table"]
    md = (tmp_path / "out" / rp.TABLE_MD).read_text()
    assert f"{len(t)} values compared" in md and "## Expected differences" in md


def test_an_unexplained_difference_fails(our_results, tmp_path) -> None:
    tmp, manifests, results, split_csv = our_results
    ref = _reference(tmp_path, split_csv, "ref", offset=0.01)  # their point value 0.01 off
    rep = rp.reproduce(ref, results, manifests, CATALOGUE.tasks, CATALOGUE.datasets, tmp_path / "out", protocols=["linear_probe"],
                       evaluators=["hmcqu"])
    diff = rep.table[rep.table["status"] == "different"]
    assert set(diff["metric"]) == {"Accuracy(%)", "Balanced_Accuracy(%)", "F1(%)"}
    assert set(diff["field"]) == {"value"} and not rep.ok
    np.testing.assert_allclose(diff["difference"], -0.01, atol=1e-9)


def test_a_failing_script_and_a_skipped_model_are_reported(our_results, tmp_path) -> None:
    tmp, manifests, results, split_csv = our_results
    ref = _reference(tmp_path, split_csv, "ref")
    (ref / "evaluation" / "hmcqu.py").write_text("raise SystemExit('boom')\n")
    rep = rp.reproduce(ref, results, manifests, CATALOGUE.tasks, CATALOGUE.datasets, tmp_path / "out", protocols=["linear_probe"],
                       evaluators=["hmcqu"])
    [run] = rep.runs
    assert run.status == "failed" and "boom" in run.reason and not rep.ok
    missing = rep.table[rep.table["status"] == "different"]
    assert set(missing["task"]) == {"hmcqu/stemi", "hmcqu/view"}
    assert "wrote no row" in missing["reason"].iloc[0]


def test_a_missing_dependency_names_the_package_and_the_python_option(our_results, tmp_path) -> None:
    tmp, manifests, results, split_csv = our_results
    ref = _reference(tmp_path, split_csv, "ref", extra_import="import cardiobench_no_such_pkg\n")
    with pytest.raises(rp.EvaluatorDependencyError, match=r"cardiobench_no_such_pkg.*--python PATH"):
        rp.reproduce(ref, results, manifests, CATALOGUE.tasks, CATALOGUE.datasets, tmp_path / "out", evaluators=["hmcqu"])
    assert {"numpy", "pandas", "sklearn", "cardiobench_no_such_pkg"} <= set(
        rp.imported_modules(ref / "evaluation"))
    assert "config" not in rp.imported_modules(ref / "evaluation")  # their own modules
    with pytest.raises(rp.EvaluatorDependencyError, match=r"import cardiobench_no_such_pkg,"):
        rp.check_dependencies(sys.executable, ["numpy", "cardiobench_no_such_pkg"])
    assert "install scikit-learn" in str(rp._missing("py", ["sklearn"]))


def test_out_inside_the_checkout_is_refused(our_results, tmp_path) -> None:
    tmp, manifests, results, split_csv = our_results
    ref = _reference(tmp_path, split_csv, "ref")
    with pytest.raises(ValueError, match="inside the reference checkout"):
        rp.reproduce(ref, results, manifests, CATALOGUE.tasks, CATALOGUE.datasets, ref / "out")
    with pytest.raises(FileNotFoundError, match="evaluation/config.py"):
        rp.reproduce(tmp_path, results, manifests, CATALOGUE.tasks, CATALOGUE.datasets, tmp_path / "o2")


def test_cli_reproduce_exit_codes(our_results, tmp_path, capsys) -> None:
    tmp, manifests, results, split_csv = our_results
    paths = []
    for name, m in manifests.items():
        paths.append(str(tmp_path / "m" / f"{name}.csv"))
        m.write(paths[-1])
    args = ["reproduce", "--results", str(tmp / "results"), "--manifest", *paths,
            "--protocols", "linear_probe", "--evaluator", "hmcqu", "camus"]
    good = _reference(tmp_path, split_csv, "good")
    assert main([*args, "--reference", str(good), "--out", str(tmp_path / "o1")]) == 0
    text = capsys.readouterr().out
    assert "linear_probe  hmcqu              ok" in text
    # the >80 MAE/MSE/RMSE, and the Age max−min where the >80 group is the extreme
    assert re.search(r"expected \([34] value\(s\)\): upstream typo", text)
    assert "0 unexplained; 0 evaluator(s) failed" in text
    bad = _reference(tmp_path, split_csv, "bad", offset=1.0)
    assert main([*args, "--reference", str(bad), "--out", str(tmp_path / "o2")]) == 1
    assert "DIFFERENT hmcqu/stemi linear_probe pixels Accuracy(%) value" in capsys.readouterr().out
    dep = _reference(tmp_path, split_csv, "dep", extra_import="import cardiobench_no_such_pkg\n")
    assert main([*args, "--reference", str(dep), "--out", str(tmp_path / "o3")]) == 2
    assert "--python PATH" in capsys.readouterr().err


# ----------------------------------------------------------------------------- the real ones
# Runs only where CARDIOBENCH_REFERENCE_REPO names a checkout of the published repository
# (e0bc185): CI has no copy of it, so conftest.py leaves it out of the run (deselected, with the
# reason in the header) instead of reporting a skip on every machine.
REAL = os.environ.get("CARDIOBENCH_REFERENCE_REPO")


@pytest.mark.reference_repo
def test_real_hmcqu_evaluator_digit_for_digit(tmp_path) -> None:
    from helpers import hmcqu_samples
    from published_facts import published_split

    raw = tmp_path / "hmcqu"
    write_layout(CATALOGUE.layout("hmcqu"), raw, "ids", samples=hmcqu_samples(published_split("hmcqu_split.csv")))
    m = prepare(CATALOGUE.dataset("hmcqu"), raw, media_check=False)
    enc = build_encoder("pixels", n_frames=2)
    emb = Job({"hmcqu": m}, enc, tmp_path / "cache",
              options=EmbedOptions(workers=0, progress=False)).load_or_embed()["hmcqu"]
    results = [evaluate(CATALOGUE.task(t), p, m, emb, enc, {"n_boot": 1000, "ci": "reference"})
               for t in ("hmcqu/stemi", "hmcqu/view") for p in ("linear_probe", "knn")]
    rep = rp.reproduce(REAL, results, {"hmcqu": m}, CATALOGUE.tasks, CATALOGUE.datasets,
                       tmp_path / "out",
                       python=os.environ.get("CARDIOBENCH_REFERENCE_PYTHON"),
                       protocols=["linear_probe", "knn"], evaluators=["hmcqu"])
    t = rep.table
    assert rep.ok and len(t) > 50 and t["equal"].all(), t[~t["equal"]].to_string()
    # intervals included: every bootstrap mean and bound of both protocols
    assert {"mean", "ci_low", "ci_high"} <= set(t["field"])


def test_an_interval_withheld_for_too_few_clusters_is_an_expected_difference(our_results,
                                                                           tmp_path) -> None:
    tmp, manifests, results, split_csv = our_results
    m = manifests["hmcqu"]
    enc = build_encoder("pixels", n_frames=2)
    emb = Job({"hmcqu": m}, enc, tmp / "cache",
              options=EmbedOptions(workers=0, progress=False)).load_or_embed()["hmcqu"]
    r = evaluate(CATALOGUE.task("hmcqu/stemi"), "linear_probe", m, emb, enc,
                 {"n_boot": N_BOOT, "ci": "reference"})  # the default minimum of 10 clusters
    assert r.config["bootstrap"]["n_clusters"] < 10 and r.metrics["accuracy"]["ci_low"] is None
    ref = _reference(tmp_path, split_csv, "ref")
    rep = rp.reproduce(ref, [r], manifests, CATALOGUE.tasks, CATALOGUE.datasets,
                       tmp_path / "out", protocols=["linear_probe"], evaluators=["hmcqu"])
    t = rep.table[rep.table["task"] == "hmcqu/stemi"]
    withheld = t[t["field"].isin(["mean", "ci_low", "ci_high"])]
    assert len(withheld) and (withheld["status"] == "expected").all()
    assert withheld["reason"].str.contains("fewer than min_clusters = 10").all()
    assert (t.loc[t["field"] == "value", "status"] == "equal").all() and rep.ok
