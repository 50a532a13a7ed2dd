"""Every CLI verb on the tiny phantom, each with asserts on the numbers it produces.

``run`` = ``embed`` + ``evaluate``; ``evaluate`` never embeds and says what is missing;
``compare`` pairs two encoders over a whole suite (per-patient tasks included); the help of
every option exists and tells the defaults the code uses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cardiobench.cli import build_parser, main
from cardiobench.results import load_results

from helpers import CATALOGUE

SMALL_SUITE = {"runs": [{"tasks": ["camus/ef", "hmcqu/stemi"],
                         "protocols": ["linear_probe", "knn"], "config": {}}]}


@pytest.fixture(scope="module")
def small_suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("suite") / "small.yaml"
    path.write_text(json.dumps(SMALL_SUITE))  # JSON is YAML
    return path


def _csv(tiny_phantom, *datasets: str) -> list[str]:
    return [str(tiny_phantom.manifest_dir / f"{d}.csv") for d in datasets]


def _metrics(results_dir: Path, encoder: str) -> dict:
    return {(r.task, r.protocol): r.metrics for r in load_results(results_dir)
            if r.encoder_name == encoder}


def test_evaluate_scores_cached_embeddings_exactly_as_the_library(
        tiny_phantom, suite_run, small_suite: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "results"
    assert main(["evaluate", "--encoder", "pixels", "--manifest",
                 *_csv(tiny_phantom, "camus", "hmcqu"), "--cache", str(suite_run.cache_dir),
                 "--suite", str(small_suite), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "4 result(s)" in printed and "camus/ef (mae)" in printed
    got = _metrics(out, "pixels")
    assert len(got) == 4
    for key, metrics in got.items():
        assert metrics == suite_run.results["pixels"][key].metrics, key
    assert (out / "leaderboard.md").read_text().strip() in printed


def test_evaluate_refuses_without_embeddings_and_computes_nothing(
        tiny_phantom, small_suite: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cache = tmp_path / "empty-cache"
    code = main(["evaluate", "--encoder", "pixels", "--manifest",
                 *_csv(tiny_phantom, "camus", "hmcqu"), "--cache", str(cache),
                 "--suite", str(small_suite), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2
    assert "camus (" in err and "hmcqu (" in err and "nothing cached" in err
    assert "cardiobench embed" in err
    assert not cache.exists() and not (tmp_path / "r").exists()


def test_run_embeds_then_scores_and_resumes_by_shard(
        tiny_phantom, small_suite: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cache, out = tmp_path / "cache", tmp_path / "results"
    common = ["--encoder", "helpers:PluginEncoder", "--manifest", *_csv(tiny_phantom, "camus"),
              "--cache", str(cache), "--suite", str(small_suite), "--out", str(out),
              "--workers", "0", "--shard-size", "8", "--device", "cpu", "--precision", "fp32"]
    # first job-array task: half of the shards, nothing scored yet
    assert main(["run", *common, "--shard", "0/2"]) == 0
    printed = capsys.readouterr().out
    assert "(not finalized)" in printed and "not every shard is embedded yet" in printed
    assert not out.exists()
    n_shards = -(-len(tiny_phantom.manifests["camus"]) // 8)
    assert f"camus: {(n_shards + 1) // 2} shard(s) computed" in printed
    # second task: the rest, then the cache is finalized and the suite scored
    assert main(["run", *common, "--shard", "1/2"]) == 0
    printed = capsys.readouterr().out
    assert f"camus: {n_shards // 2} shard(s) computed" in printed and "2 result(s)" in printed
    first = _metrics(out, "plugin-mean-colour")
    assert set(first) == {("camus/ef", "linear_probe"), ("camus/ef", "knn")}
    # evaluate on the same cache reproduces the numbers without embedding again
    again = tmp_path / "again"
    assert main(["evaluate", "--encoder", "helpers:PluginEncoder", "--manifest",
                 *_csv(tiny_phantom, "camus"), "--cache", str(cache), "--suite",
                 str(small_suite), "--out", str(again)]) == 0
    assert _metrics(again, "plugin-mean-colour") == first


def test_embed_only_embeds(tiny_phantom, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cache = tmp_path / "cache"
    assert main(["embed", "--encoder", "helpers:PluginEncoder", "--manifest",
                 *_csv(tiny_phantom, "hmcqu"), "--cache", str(cache), "--workers", "0"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("hmcqu: 1 shard(s) computed, 0 cached, 0 failed")
    assert list(tmp_path.iterdir()) == [cache]  # no results, no leaderboard


def test_compare_pairs_every_task_of_a_suite(suite_run, capsys: pytest.CaptureFixture) -> None:
    assert main(["compare", "pixels", "tiny-clip", "--results", str(suite_run.results_dir),
                 "--n-boot", "200", "--seed", "7"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ("pixels minus tiny-clip: paired patient bootstrap (200 replicates, "
                        "seed 7), 95 % CI, on the units both results scored")
    # one unindented line per (task, protocol) with its paired n, then one indented line per metric
    metric_rows: dict[tuple[str, str], dict[str, list[str]]] = {}
    paired_n: dict[tuple[str, str], str] = {}
    for ln in lines[1:]:
        if not ln.startswith(" "):
            task, proto, n = ln.split()[:3]
            key = (task, proto)
            metric_rows[key], paired_n[key] = {}, n
        else:
            parts = ln.split()
            metric_rows[key][parts[0]] = parts
    pairs = set(metric_rows)
    both_ok = {k for k, r in suite_run.results["pixels"].items()
               if r.status == "ok" and k[1] != "alignment"
               and suite_run.results["tiny-clip"][k].status == "ok"}
    # camus/ef is scored per patient: the pairing joins on patient_id
    assert ("camus/ef", "linear_probe") in pairs and pairs == both_ok
    # both encoders scored the same test units of the same phantom: n is each result's own n
    assert paired_n == {k: f"n={suite_run.results['pixels'][k].n}" for k in pairs}
    assert all(suite_run.results["tiny-clip"][k].n == suite_run.results["pixels"][k].n
               for k in pairs)
    # the paired point difference is the difference of the two results' own values
    mae = metric_rows[("camus/ef", "linear_probe")]["mae"]
    want = (suite_run.results["pixels"][("camus/ef", "linear_probe")].metrics["mae"]["value"]
            - suite_run.results["tiny-clip"][("camus/ef", "linear_probe")].metrics["mae"]["value"])
    assert float(mae[1]) == pytest.approx(want, abs=1e-3)


def test_report_writes_what_it_prints(suite_run, tmp_path: Path,
                                      capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "board.md"
    assert main(["report", "--results", str(suite_run.results_dir), "--format", "markdown",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    text = out.read_text()
    assert printed.strip() == text.strip()
    lvh = suite_run.results["pixels"][("echonet_lvh/lvidd", "linear_probe")].metrics["mae"]
    row = next(ln for ln in text.splitlines() if ln.startswith("| echonet_lvh/lvidd (mae)"))
    if lvh["ci_low"] is None:  # the tiny phantom's test split: fewer clusters than the minimum
        assert lvh["status"] == "no_interval"
        assert f"{lvh['value']:.2f} [CI n/a: {lvh['na_reason']}]" in row
        assert "bootstrap cluster" in lvh["na_reason"]
    else:
        assert f"{lvh['value']:.2f} [{lvh['ci_low']:.2f}, {lvh['ci_high']:.2f}]" in row
    assert "pixels · linear_probe" in text and "tiny-clip · zero_shot" in text


def test_encoders_lists_the_registry(capsys: pytest.CaptureFixture) -> None:
    from cardiobench.encoders import available_encoders

    assert main(["encoders"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = [ln.split()[0] for ln in lines]
    assert names == list(available_encoders()) and {"pixels", "echoclip"} <= set(names)


def test_demo_at_tiny_scale(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--scale", "tiny", "--datasets", "camus", "--out", str(out),
                 "--workers", "0", "--seed", "3"]) == 0
    printed = capsys.readouterr().out
    # camus/ef and camus/view × 4 protocols; the zero-shot/alignment ones not applicable
    assert "8 result(s)" in printed
    results = {(r.task, r.protocol): r for r in load_results(out / "results")}
    assert len(results) == 8
    assert sum(r.status == "not_applicable" for r in results.values()) == 4
    assert results[("camus/view", "linear_probe")].metrics["accuracy"]["value"] == 100.0
    assert (out / "leaderboard.md").read_text() in printed
    assert not (out / "results" / "leaderboard.md").exists()


def test_splits_import_matches_prepare(tiny_phantom, tmp_path: Path,
                                       capsys: pytest.CaptureFixture) -> None:
    raw = tiny_phantom.raw["segrwma"]
    out = tmp_path / "segrwma.csv"
    assert main(["splits", "import", str(raw / "segrwma_split.csv"), "--raw", str(raw),
                 "--dataset", "segrwma", "--out", str(out)]) == 0
    prepared = tiny_phantom.manifests["segrwma"].table.set_index("sample_id")
    assert capsys.readouterr().out.strip() == \
        f"segrwma: {len(prepared)} samples imported -> {out}"
    got = pd.read_csv(out).set_index("sample_id")
    assert (got["split"] == prepared.loc[got.index, "split"]).all()
    assert (got["rwma"] == prepared.loc[got.index, "rwma"]).all()


# ----------------------------------------------------------------------------- help
def _subparsers(parser):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield name, sub
                yield from ((f"{name} {n}", s) for n, s in _subparsers(sub))


def test_every_option_has_help_and_choices_are_listed() -> None:
    missing = []
    for name, sub in _subparsers(build_parser()):
        for action in sub._actions:
            if action.dest not in ("help", "splits_cmd") and not action.help:
                missing.append(f"{name} {action.option_strings or action.dest}")
    assert not missing, missing
    prepare = dict(_subparsers(build_parser()))["prepare"].format_help()
    for d in CATALOGUE.datasets:
        assert d in prepare


def test_workers_help_states_the_default_the_code_uses(monkeypatch) -> None:
    from cardiobench.cli_options import WORKERS_HELP
    from cardiobench.embed.extract import default_workers

    assert "default: one per core" in WORKERS_HELP
    for cores, want in ((1, 1), (2, 2), (6, 6), (64, 32)):
        monkeypatch.setattr(os, "sched_getaffinity", lambda _pid, c=cores: set(range(c)),
                            raising=False)
        assert default_workers() == want, cores


def test_every_encoder_verb_takes_the_same_encoder_options() -> None:
    subs = dict(_subparsers(build_parser()))
    for verb in ("embed", "evaluate", "run", "check-encoder"):
        opts = {o for a in subs[verb]._actions for o in a.option_strings}
        assert {"--weights", "--encoder-arg"} <= opts, verb
    for verb in ("embed", "run"):
        opts = {o for a in subs[verb]._actions for o in a.option_strings}
        assert {"--encoder", "--device", "--precision", "--shard", "--workers"} <= opts, verb
    cka = {o for a in subs["cka"]._actions for o in a.option_strings}
    assert {"--a-weights", "--a-encoder-arg", "--b-weights", "--b-encoder-arg", "--device",
            "--precision"} <= cka


def test_top_level_help_imports_nothing_heavy() -> None:
    code = ("import sys\nfrom cardiobench.cli import main\ntry:\n    main(['--help'])\n"
            "except SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'pandas', 'numpy', 'sklearn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "COLUMNS": "200"})
    assert out.stdout.strip().splitlines()[-1] == "[]"
    # the verbs say what they do
    assert "compute embeddings into the resumable cache (no scoring)" in out.stdout
    assert "score cached embeddings" in out.stdout and "= embed + evaluate" in out.stdout


def test_embedding_with_pixels_imports_no_model_library(tmp_path: Path) -> None:
    """``embed --encoder pixels`` needs torch, pandas, OpenCV and PyAV; model zoos (torchvision
    models, open_clip, timm, transformers), nibabel (until a NIfTI is read) and decord stay
    unimported, since each costs start-up time on every run."""
    from cardiobench.io import write_video

    write_video(tmp_path / "v.avi", np.zeros((4, 16, 16), np.uint8), fps=25)
    code = f"""
import sys
from cardiobench.embed import extract
from cardiobench.encoders import build_encoder
from cardiobench.io import read_frames
build_encoder("pixels")
read_frames({str(tmp_path / "v.avi")!r}, [0])
heavy = ("torchvision.models", "open_clip", "timm", "transformers", "nibabel", "decord")
print(sorted(m for m in heavy if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=300)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout


def test_old_spellings_still_work_and_say_so(tiny_phantom, suite_run, small_suite: Path,
                                              tmp_path: Path,
                                              capsys: pytest.CaptureFixture) -> None:
    """One release of grace: ``--results`` for run/evaluate's output, a positional manifest for
    ``splits``, ``report --out X.md``, ``export-predictions OUT --check``."""
    out = tmp_path / "old"
    assert main(["evaluate", "--encoder", "pixels", "--manifest",
                 *_csv(tiny_phantom, "camus"), "--cache", str(suite_run.cache_dir),
                 "--suite", str(small_suite), "--results", str(out)]) == 0
    err = capsys.readouterr().err
    assert "--results (where run/evaluate write) is deprecated; use --out" in err
    assert len(load_results(out)) == 2
    assert main(["splits", "show", *_csv(tiny_phantom, "camus")]) == 0
    got = capsys.readouterr()
    assert "a positional manifest is deprecated" in got.err and "== camus" in got.out
    assert main(["report", "--results", str(out), "--out", str(tmp_path / "b.md")]) == 0
    assert "report --out FILE.md is deprecated" in capsys.readouterr().err
    assert (tmp_path / "b.md").read_text().startswith("#")


def test_tasks_and_protocols_select_with_globs(tiny_phantom, suite_run, tmp_path: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "sel"
    assert main(["evaluate", "--encoder", "pixels", "--manifest", str(tiny_phantom.manifest_dir),
                 "--cache", str(suite_run.cache_dir), "--tasks", "echonet_*/ef",
                 "--protocols", "linear*", "--out", str(out)]) == 0
    got = {(r.task, r.protocol) for r in load_results(out)}
    assert got == {("echonet_dynamic/ef", "linear_probe"), ("echonet_pediatric/ef", "linear_probe")}
    assert main(["evaluate", "--encoder", "pixels", "--manifest", str(tiny_phantom.manifest_dir),
                 "--cache", str(suite_run.cache_dir), "--tasks", "nope/*",
                 "--out", str(tmp_path / "x")]) == 2
    assert "--tasks 'nope/*' matches no task; known: echonet_dynamic/ef" in capsys.readouterr().err


def test_one_dataset_twice_is_refused_naming_both_files(tiny_phantom, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    import shutil

    sub = tmp_path / "sub"
    sub.mkdir()
    for suffix in (".csv", ".json"):
        shutil.copy(tiny_phantom.manifest_dir / f"camus{suffix}", sub / f"camus{suffix}")
    code = main(["run", "--encoder", "pixels", "--manifest", *_csv(tiny_phantom, "camus"),
                 str(sub / "camus.csv"), "--cache", str(tmp_path / "c"), "--out",
                 str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "dataset 'camus' is given twice" in err
    assert str(sub / "camus.csv") in err and str(tiny_phantom.manifest_dir / "camus.csv") in err
    assert not (tmp_path / "c").exists() and not (tmp_path / "r").exists()


def test_catalogue_lists_what_the_choices_come_from(capsys: pytest.CaptureFixture) -> None:
    assert main(["catalogue", "tasks"]) == 0
    names = [ln.split()[0] for ln in capsys.readouterr().out.splitlines()]
    assert names == list(CATALOGUE.tasks)
    assert main(["catalogue", "protocols"]) == 0
    assert [ln.split()[0] for ln in capsys.readouterr().out.splitlines()] == [
        "linear_probe", "knn", "zero_shot", "alignment", "transfer", "label_efficiency"]
