"""cardiobench: benchmark echocardiography foundation models on eight public datasets.

The command line parses and prints; the work is the library's (:mod:`cardiobench.job` for
``embed``/``evaluate``/``run``/``demo``). One vocabulary across verbs: manifests are always
``--manifest PATH…`` (a folder means its manifests), outputs ``--out``, selections ``--tasks`` and
``--protocols`` (shell globs), ``--workers 0`` means "in the calling thread" everywhere. Choices
and help come from the catalogue. Old spellings still work for one release, with a notice.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

from cardiobench.cli_options import DEFAULT_MANIFESTS, build_parser, modernise

# -- helpers -------------------------------------------------------------------------------------
def _encoder(args: argparse.Namespace, side: str = "") -> Any:
    """The encoder of the encoder options (``side`` "a"/"b" for the two encoders of ``cka``)."""
    from cardiobench.encoders import build_encoder

    pre = f"{side}_" if side else ""
    kwargs: dict[str, Any] = {}
    for item in getattr(args, f"{pre}encoder_arg", None) or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--{pre.replace('_', '-')}encoder-arg expects KEY=VALUE, got {item!r}")
        try:
            kwargs[key] = json.loads(value)
        except json.JSONDecodeError:
            kwargs[key] = value
    if getattr(args, f"{pre}weights", None):
        kwargs["weights"] = getattr(args, f"{pre}weights")
    encoder = build_encoder(getattr(args, side or "encoder"), **kwargs)
    if getattr(args, f"{pre}mask_outside_us_region", False):
        encoder.spec = replace(encoder.spec, mask_outside_us_region=True)
    if getattr(args, "device", None):
        encoder.to(args.device)
    return encoder


def _manifest_paths(args: argparse.Namespace) -> list[str]:
    """``--manifest``, else where ``prepare`` writes."""
    return list(args.manifest or [str(DEFAULT_MANIFESTS)])


def _options(args: argparse.Namespace) -> Any:
    from cardiobench.embed.extract import parse_shard
    from cardiobench.job import EmbedOptions

    return EmbedOptions(**{k: getattr(args, k) for k in ("batch_size", "batch_frames", "workers",
                                                         "device", "precision", "shard_size")
                           if getattr(args, k, None) is not None},
                        shard=parse_shard(getattr(args, "shard", None)))


def _job(args: argparse.Namespace, encoder: Any) -> Any:
    from cardiobench.job import Job

    return Job.from_paths(_manifest_paths(args), encoder, args.cache, args.out or "results",
                          suite=args.suite, tasks=args.tasks, protocols=args.protocols,
                          ci=args.ci, raw=args.raw, options=_options(args))


def _results_of(args: argparse.Namespace) -> list[Any]:
    """The results under ``--results`` with their predictions, of ``--encoder`` if given."""
    from cardiobench.results import load_results

    return [r for r in load_results(args.results, with_predictions=True)
            if not args.encoder or args.encoder in (r.encoder_name, r.encoder_key)]


def _print_embedded(embedded: Sequence[Any]) -> None:
    print("\n".join(e.summary() for e in embedded))
    for e in (e for e in embedded if e.unusable):
        print(f"cardiobench: error: {e.dataset}: {e.unusable}; nothing can be scored from it",
              file=sys.stderr)


def _print_scored(outcome: Any, job: Any) -> int:
    """The results summary, each failed result with its reason, and the leaderboard."""
    from cardiobench.report.leaderboard import write_leaderboard

    ci = {e.config.get("ci", "patient") for e in job.entries} or {"patient"}
    print(f"{len(outcome.results)} result(s) -> {job.results_dir} (bootstrap CIs: "
          f"{', '.join(sorted(ci))})")
    if outcome.results:
        print(write_leaderboard(job.results_dir).read_text())
    for line in outcome.problems():
        print(f"cardiobench: error: {line}", file=sys.stderr)
    return 0 if outcome.ok else 1


# -- commands ------------------------------------------------------------------------------------
def cmd_phantom(args: argparse.Namespace) -> int:
    from cardiobench.job import generate_phantom

    for layout, root in generate_phantom(args.out, args.datasets, args.scale, args.seed).items():
        print(f"{layout:20s} {root}")
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from cardiobench.catalogue import default_catalogue
    from cardiobench.catalogue.own import dataset_to_prepare
    from cardiobench.preprocessing import prepare, prepare_summary

    dataset, raw = dataset_to_prepare(args.dataset, args.raw, default_catalogue())
    out = Path(args.out) if args.out else DEFAULT_MANIFESTS / f"{dataset.name}.csv"
    m = prepare(dataset, raw, out,
                media_check=not args.no_media_check, allow_incomplete=args.allow_incomplete,
                workers=args.workers, strict_root=args.strict_root)
    print(prepare_summary(m, out))
    return 0


def cmd_splits(args: argparse.Namespace) -> int:
    import cardiobench.splits as splits
    from cardiobench.catalogue import default_catalogue
    from cardiobench.catalogue.own import catalogue_for
    from cardiobench.manifest import Manifest, manifest_csvs

    cat = default_catalogue()
    if args.splits_cmd == "import":
        ds = cat.dataset(args.dataset)
        m = splits.import_published(args.csv, args.raw, ds.spec(), ds.import_split)
        out = Path(args.out) if args.out else DEFAULT_MANIFESTS / f"{m.dataset}.csv"
        m.write(out)
        print(f"{m.dataset}: {len(m)} samples imported -> {out}")
        return 0
    ok = True
    for path in manifest_csvs(_manifest_paths(args)):
        # an edited split is what verify reports on, so the sidecar's fingerprint may differ
        m = Manifest.read(path, check_sidecar_split=args.splits_cmd != "verify")
        if args.splits_cmd == "verify":
            report = splits.verify(m, catalogue_for([m], cat).dataset(m.dataset).spec())
            print(report)
            ok &= bool(report.ok)
        elif args.splits_cmd == "export":
            print(f"{path} -> {splits.export(m, args.out)}")
        else:
            print(f"== {m.dataset}\n{splits.show(m).to_string()}")
    return 0 if ok else 1


def cmd_embed(args: argparse.Namespace) -> int:
    from cardiobench.embed.extract import init_distributed

    init_distributed()
    job = _job(args, _encoder(args))
    if args.finalize_only:
        from cardiobench.embed import finalize_cache

        for name, m in job.manifests.items():
            index = finalize_cache(m, job.encoder, job.cache_root, shard_size=args.shard_size)
            print(f"{name}: finalized {len(index)} samples")
        return 0
    embedded = job.embed()
    _print_embedded(embedded)
    return 1 if any(e.unusable for e in embedded) else 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    job = _job(args, _encoder(args))
    return _print_scored(job.run(embed=False), job)


def cmd_run(args: argparse.Namespace) -> int:
    from cardiobench.embed.extract import init_distributed

    init_distributed()
    job = _job(args, _encoder(args))
    outcome = job.run()
    _print_embedded(outcome.embedded)
    if outcome.unusable:
        return 1
    if not outcome.scored:  # under torchrun, rank 0 scores once every rank has embedded
        if not outcome.finished:
            print("not every shard is embedded yet (other --shard tasks still to run): rerun "
                  "`cardiobench run` or `cardiobench evaluate` once they have finished")
        return 0
    return _print_scored(outcome, job)


def cmd_report(args: argparse.Namespace) -> int:
    if args.format == "markdown" or not args.out:
        from cardiobench.report.leaderboard import write_leaderboard

        print(write_leaderboard(args.results, args.out).read_text())
        return 0
    from cardiobench.report.html import build_report

    files = build_report(args.results, args.out, cache=args.cache,
                         manifests=args.manifest,
                         compare=[tuple(p) for p in args.compare or []],
                         command=" ".join(["cardiobench", *sys.argv[1:]]))
    print(files.summary())
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from cardiobench.atomic import claim_folder
    from cardiobench.encoders import build_encoder
    from cardiobench.job import Job, generate_phantom, prepare_all
    from cardiobench.report.html import build_report
    from cardiobench.report.leaderboard import write_leaderboard
    from cardiobench.suite import load_suite

    out, t0 = Path(args.out), time.perf_counter()
    claim_folder(out, ".cardiobench-demo", "demo")
    print(f"[1/4] phantom suite ({args.scale}) -> {out / 'raw'}")
    roots = generate_phantom(out / "raw", args.datasets, args.scale, args.seed)
    print(f"[2/4] harmonising {len(roots)} download layout(s)")
    prepared = prepare_all(roots, out / "manifests")
    for name, reason in prepared.failed.items():
        print(f"  ! {name}: {reason.splitlines()[0]}")
    n_results = 0
    for name in args.encoder or ["pixels"]:
        encoder = build_encoder(name)
        job = Job(prepared.manifests, encoder, out / "cache", out / "results",
                  suite=load_suite(args.suite), options=_options(args))
        print(f"[3/4] embedding with {name} ({encoder.fingerprint()[:12]})")
        embeddings = job.load_or_embed()
        print(f"[4/4] protocols for {name}")
        n_results += len(job.score(embeddings))
    print()
    print(write_leaderboard(out / "results", out / "leaderboard.md").read_text())
    report = build_report(out / "results", out / "report", cache=out / "cache",
                          manifests=[out / "manifests"],
                          command=" ".join(["cardiobench", *sys.argv[1:]]))
    print(f"\n{n_results} result(s) in {time.perf_counter() - t0:.0f}s; "
          f"leaderboard: {out / 'leaderboard.md'}")
    print(f"report: {report.index.resolve()}  (open this file in a browser)")
    return 1 if prepared.failed and not prepared.manifests else 0


def cmd_check_encoder(args: argparse.Namespace) -> int:
    import tempfile

    from cardiobench.encoders.check import check_encoder, check_verdict
    from cardiobench.job import check_on_phantom

    encoder = _encoder(args)
    report = check_encoder(encoder, n=2) if args.quick else check_encoder(encoder)
    if not args.quick:
        with tempfile.TemporaryDirectory(prefix="cardiobench-check-") as tmp:
            report["phantom"] = check_on_phantom(encoder, tmp)
    print(json.dumps(report, indent=2, default=str))
    ok, verdict = check_verdict(report)
    print(f"\n{encoder.name}: {verdict}")
    return 0 if ok else 1


def cmd_compare(args: argparse.Namespace) -> int:
    from cardiobench.report.compare import compare_suite
    from cardiobench.results import load_results

    comps = compare_suite(load_results(args.results, with_predictions=True), args.a, args.b,
                          task=args.task, n_boot=args.n_boot, seed=args.seed)
    for line in comps.refused:
        print(f"cardiobench: not compared: {line}", file=sys.stderr)
    if not comps:
        print(f"no (task, protocol) scored by both {args.a!r} and {args.b!r} in {args.results}")
        return 1
    print(f"{args.a} minus {args.b}: paired patient bootstrap ({args.n_boot} replicates, "
          f"seed {args.seed}), 95 % CI, on the units both results scored")
    for c in comps:
        print(c)
    if args.plot:
        from cardiobench.report.figures import delta_forest

        print(f"delta forest plot -> {delta_forest(comps, args.a, args.b, args.plot)}")
    return 0


def cmd_cka(args: argparse.Namespace) -> int:
    from cardiobench.embed import load_or_extract
    from cardiobench.job import read_manifests
    from cardiobench.protocols.alignment import cka_between

    encoders = [_encoder(args, "a"), _encoder(args, "b")]
    print(f"linear CKA of clip vectors, {args.a} vs {args.b}, {args.split} split")
    for name, m in read_manifests(_manifest_paths(args)).items():
        a, b = (load_or_extract(m, e, args.cache, num_workers=args.workers, device=args.device,
                                precision=args.precision) for e in encoders)
        value, n = cka_between(a, b, m.subset(args.split)["sample_id"].astype(str).to_numpy())
        print(f"{name:20s} n={n:5d}  CKA={value:.4f}")
    return 0


def cmd_export_predictions(args: argparse.Namespace) -> int:
    from cardiobench.catalogue import default_catalogue
    from cardiobench.protocols.export import exportable_protocols, export_predictions
    from cardiobench.report import task_of

    out = args.out
    if args.check:
        return cmd_check_export(argparse.Namespace(export=out))
    if not out:
        raise ValueError("export-predictions needs --out FOLDER")
    cat = default_catalogue()
    names = [p.name for p in cat.select_protocols(args.protocols or ["linear_probe"])
             if p.name in exportable_protocols()]
    results = _results_of(args)
    tasks = {**cat.tasks, **{r.task: task_of(r.task, results) for r in results}}
    report = export_predictions(results, tasks, out, names, args.model_name, args.format)
    if args.with_ground_truth:
        from cardiobench.job import read_manifests
        from cardiobench.protocols.export import write_ground_truth

        report.ground_truth = [str(p) for p in write_ground_truth(
            read_manifests(_manifest_paths(args)), cat.datasets, out)]
    print(report.summary())
    return 0 if any(f.status == "ok" for f in report.files) else 1


def cmd_check_export(args: argparse.Namespace) -> int:
    from cardiobench.protocols.export import check_export, findings_summary

    findings = check_export(args.export)
    print(findings_summary(args.export, findings))
    return 1 if any(f.level == "error" for f in findings) else 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    from cardiobench.catalogue import default_catalogue
    from cardiobench.job import read_manifests
    from cardiobench.protocols.reproduce import reproduce

    results = _results_of(args)
    if not results:
        raise FileNotFoundError(f"no results in {args.results}" + (
            f" for encoder {args.encoder!r}" if args.encoder else ""))
    cat = default_catalogue()
    protocols = [p.name for p in cat.select_protocols(args.protocols) if p.exportable]
    rep = reproduce(args.reference, results, read_manifests(_manifest_paths(args)), cat.tasks,
                    cat.datasets, args.out, args.python, protocols, args.model_name,
                    args.evaluator)
    print(rep.summary(args.show))
    return 0 if rep.ok else 1


def cmd_encoders(args: argparse.Namespace) -> int:
    from cardiobench.encoders import available_encoders

    for name, desc in available_encoders().items():
        print(f"{name:16s} {desc}")
    return 0


def cmd_catalogue(args: argparse.Namespace) -> int:
    from cardiobench.catalogue import default_catalogue

    for name, text in default_catalogue().listing(args.what):
        print(f"{name:24s} {text}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cardiobench`` console script."""
    args = modernise(build_parser().parse_args(argv))
    args.func = globals()[f"cmd_{args.cmd.replace('-', '_')}"]
    # our own INFO lines; other packages' (a codec's per-tile chatter) only from WARNING
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("cardiobench").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted; finished shards are kept and a rerun resumes", file=sys.stderr)
        return 130
    except Exception as exc:  # one clear line for users; -v for the traceback
        if args.verbose:
            raise
        from cardiobench.manifest import ManifestError

        kind = "error" if isinstance(exc, (ManifestError, KeyError, FileNotFoundError,
                                           ValueError)) else type(exc).__name__
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"cardiobench: {kind}: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
