"""cardiobench: benchmark echocardiography foundation models on eight public datasets.

The command line is a thin layer over the library (and the only part of it that prints).
Verbs mean one thing: ``embed`` computes embeddings, ``evaluate`` scores cached ones (and refuses,
naming what is missing), ``run`` does both. Library modules are imported inside the commands so
``cardiobench --help`` stays fast.

The module is longer than ~400 lines on purpose: each verb is one ``cmd_*`` function plus one
small ``_parser_*`` function beside the shared option helpers, so a verb's options and its
behaviour are read (and changed) in one file without touching the other verbs.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

log = logging.getLogger("cardiobench")

DEFAULT_CACHE = Path(os.environ.get("CARDIOBENCH_CACHE", ".cardiobench/cache"))
DEFAULT_MANIFESTS = Path(".cardiobench/manifests")


# -- helpers -------------------------------------------------------------------------------------
def _encoder(args: argparse.Namespace, side: str = ""):
    """Build the encoder named by the encoder options (``side`` "a"/"b" for the cka pair)."""
    from cardiobench.encoders import build_encoder

    pre = f"{side}_" if side else ""
    kwargs: dict[str, Any] = {}
    for item in getattr(args, f"{pre}encoder_arg", None) or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--{pre.replace('_', '-')}encoder-arg expects KEY=VALUE, got {item!r}")
        kwargs[key] = _literal(value)
    if getattr(args, f"{pre}weights", None):
        kwargs["weights"] = getattr(args, f"{pre}weights")
    encoder = build_encoder(getattr(args, side or "encoder"), **kwargs)
    if getattr(args, "device", None):
        encoder.to(args.device)
    return encoder


def _literal(value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def _manifests(paths: Sequence[str]):
    from cardiobench.manifest import Manifest

    out = {}
    for p in _only_manifests(paths):
        m = Manifest.read(p)
        out[m.dataset] = m
    return out


def _only_manifests(paths: Sequence[str]) -> list[str]:
    """Manifest CSVs among ``paths`` (a shell glob also matches the problems reports)."""
    from cardiobench.manifest import manifest_csvs

    return [str(p) for p in manifest_csvs(paths)]


def _manifest_paths(args: argparse.Namespace) -> list[str]:
    """``--manifest`` or every CSV where ``prepare`` writes; none at all is an error."""
    paths = _only_manifests(args.manifest or sorted(str(p) for p in DEFAULT_MANIFESTS.glob("*.csv")))
    if not paths:
        raise FileNotFoundError(f"no manifests given and none in {DEFAULT_MANIFESTS}; run "
                                "`cardiobench prepare <dataset> --raw <folder>` first")
    return paths


def _shard(args: argparse.Namespace):
    from cardiobench.embed.extract import parse_shard

    return parse_shard(getattr(args, "shard", None))


def _init_distributed() -> None:
    """Join the torchrun process group when launched by torchrun (gloo on CPU, nccl on GPU)."""
    import torch

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend)
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))


def _embed(args: argparse.Namespace, encoder: Any, paths: Sequence[str]) -> tuple[bool, list[str]]:
    """Embed every manifest (this rank's or ``--shard``'s slice); returns whether all are
    finalized, and one line per dataset that cannot be scored (all, or all test, samples failed)."""
    from cardiobench.embed import extract
    from cardiobench.manifest import Manifest

    done, unusable = True, []
    _refuse_outputs_over_manifests([args.cache], paths)
    # every manifest validated before any is embedded: a bad second one wastes no GPU time
    manifests = [Manifest.read(path) for path in _only_manifests(paths)]
    for m in manifests:
        rep = extract(m, encoder, args.cache, batch_size=args.batch_size,
                      batch_frames=args.batch_frames, num_workers=args.workers,
                      device=args.device, precision=args.precision, shard_size=args.shard_size,
                      shard=_shard(args))
        print(f"{m.dataset}: {len(rep.computed_shards)} shard(s) computed, "
              f"{len(rep.skipped_shards)} cached, {rep.n_failed} failed sample(s), "
              f"{rep.seconds:.1f}s -> {rep.cache_dir}{'' if rep.finalized else ' (not finalized)'}")
        if rep.retried:
            print(f"  retried {len(rep.retried)} previously failed sample(s) whose file changed")
        if rep.finalized and rep.n_failed:
            why = _print_failure_summary(m, rep, Path(rep.cache_dir) / "failures.csv")
            if why:
                unusable.append(f"{m.dataset}: {why}")
        done &= rep.finalized
    for line in unusable:
        print(f"cardiobench: error: {line}; nothing can be scored from it", file=sys.stderr)
    return done, unusable


def _print_failure_summary(m: Any, rep: Any, failures_csv: Path) -> str | None:
    """Print failed/total per split with the failure kinds; return why the dataset is unusable
    (every sample, or every test sample, failed) or None."""
    from cardiobench.embed import failure_summary

    table = failure_summary(m, rep.failures)
    print(f"  failures per split (details: {failures_csv}):")
    for row in table.itertuples():
        print(f"    {row.split:5s} {row.failed:6d} of {row.samples:6d} failed  {row.kinds}")
    if int(table["failed"].sum()) == len(m.table) and len(m.table):
        return f"all {len(m.table)} samples failed to embed"
    test = table[table["split"] == "test"]
    if len(test) and int(test["samples"].iat[0]) and int(test["failed"].iat[0]) == int(
            test["samples"].iat[0]):
        return f"all {int(test['samples'].iat[0])} test samples failed to embed"
    return None


def _refuse_manifest_out(out: Path, raw: Path, inputs: Sequence[Path] = ()) -> None:
    """A manifest and its sidecar must not be one file, nor overwrite a file of the download."""
    from cardiobench.atomic import OverwriteError, refuse_overwrite
    from cardiobench.manifest import sidecar_path

    side = sidecar_path(out)
    if side.resolve() == out.resolve():
        raise OverwriteError(f"refusing to write the manifest to {out}: its JSON sidecar has the "
                             "same name and would overwrite it; give a .csv path")
    for target, what in ((out, "the manifest"), (side, "the manifest's sidecar")):
        refuse_overwrite(target, list(inputs), what)
        t = target.resolve()
        if t.exists() and raw.resolve() in t.parents:
            raise OverwriteError(f"refusing to write {what} {target}: it would overwrite a file "
                                 f"of the download in {raw}; write it outside the download")


def _refuse_outputs_over_manifests(outputs: Sequence[str | Path],
                                   manifests: Sequence[str] | None) -> None:
    """Results, cache and export folders must not be a manifest or its sidecar."""
    from cardiobench.atomic import refuse_overwrite
    from cardiobench.manifest import sidecar_path

    inputs = [q for p in manifests or [] for q in (Path(p), sidecar_path(p))]
    for out in outputs:
        refuse_overwrite(out, inputs, "output")


def _cached_embeddings(manifests: dict[str, Any], encoder: Any, cache_root: str | Path,
                       paths: Sequence[str]) -> dict[str, Any]:
    """Finished embeddings of every manifest; refuses (FileNotFoundError) naming each one that is
    missing, unfinished or computed for another version of the manifest."""
    from cardiobench.embed import EmbeddingCache
    from cardiobench.embed.extract import cache_is_current

    out, missing = {}, []
    for (name, m), path in zip(manifests.items(), paths):
        cache = EmbeddingCache(cache_root, name, encoder.fingerprint())
        if not cache.read_meta():
            why = "nothing cached"
        elif not cache.is_complete():
            why = "not finalized (shards missing or `embed --finalize-only` not run)"
        elif not cache_is_current(m, cache, cache.shard_size() or 64):
            why = ("cached for a different version of the manifest, with a damaged shard, or "
                   "with failed samples whose files have changed since")
        else:
            out[name] = cache.load()
            continue
        missing.append(f"{name} ({path}): {why} in {cache.dir}")
    if missing:
        raise FileNotFoundError(
            f"evaluate scores cached embeddings only; for {encoder.name} "
            f"({encoder.fingerprint()[:12]}):\n  " + "\n  ".join(missing) +
            "\nrun `cardiobench embed` with the same encoder options (or `cardiobench run`)")
    return out


def _score(args: argparse.Namespace, encoder: Any, paths: Sequence[str]) -> int:
    """Run the suite on cached embeddings, then write and print the leaderboard."""
    from cardiobench.protocols.evaluate import load_suite, run_suite

    manifests = _manifests(paths)
    embeddings = _cached_embeddings(manifests, encoder, args.cache, paths)
    suite = load_suite(args.suite)
    if getattr(args, "ci", None):
        suite["ci"] = args.ci
    results = run_suite(suite, manifests, embeddings, encoder, args.results)
    print(f"{len(results)} result(s) -> {args.results} (bootstrap CIs: "
          f"{suite.get('ci', 'patient')})")
    return cmd_report(argparse.Namespace(results=args.results, out=None))


class _LazyNames:
    """Choices that are looked up only when argparse needs them (keeps ``--help`` fast)."""

    def __init__(self, load: Callable[[], Sequence[str]]):
        self._load = load
        self._names: tuple[str, ...] | None = None

    def _get(self) -> tuple[str, ...]:
        if self._names is None:
            self._names = tuple(self._load())
        return self._names

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __contains__(self, name: object) -> bool:
        return name in self._get()

    def __len__(self) -> int:
        return len(self._get())


def _dataset_names() -> list[str]:
    from cardiobench.preprocessing import datasets

    return datasets()


def _layout_names() -> list[str]:
    from cardiobench.datasets import layouts

    return sorted(layouts())


def _protocol_names() -> list[str]:
    from cardiobench.protocols.evaluate import protocols

    return list(protocols())


def cmd_phantom(args: argparse.Namespace) -> int:
    from cardiobench.pipeline import generate_phantom

    roots = generate_phantom(args.out, scale=args.scale, seed=args.seed, layouts=args.datasets)
    for layout, root in roots.items():
        print(f"{layout:20s} {root}")
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from cardiobench.manifest import problems_path
    from cardiobench.preprocessing import prepare
    from cardiobench.problems import summarise

    out = Path(args.out) if args.out else DEFAULT_MANIFESTS / f"{args.dataset}.csv"
    _refuse_manifest_out(out, Path(args.raw))
    m = prepare(args.dataset, args.raw, out, media_check=not args.no_media_check,
                allow_incomplete=args.allow_incomplete, workers=args.workers)
    print(f"{args.dataset}: {len(m)} samples -> {out}")
    for split, c in m.split_counts().items():
        print(f"  {split:5s} {c['samples']:6d} samples {c['patients']:6d} patients")
    if len(m.excluded):
        counts = ", ".join(f"{k} {v}" for k, v in m.excluded_counts().items())
        print(f"  {len(m.excluded)} unusable sample(s) set aside ({counts}): a subset of the "
              "published split")
    for line in summarise(m.problems):
        print(f"  {line}")
    if m.problems:
        print(f"  full list: {problems_path(out)}")
    print(f"  split fingerprint {m.fingerprint}")
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    from cardiobench.embed import finalize_cache
    from cardiobench.manifest import Manifest

    _init_distributed()
    encoder = _encoder(args)
    if args.finalize_only:
        for path in _only_manifests(args.manifest):
            m = Manifest.read(path)
            index = finalize_cache(m, encoder, args.cache, shard_size=args.shard_size)
            print(f"{m.dataset}: finalized {len(index)} samples")
        return 0
    _, unusable = _embed(args, encoder, args.manifest)
    return 1 if unusable else 0


def cmd_splits(args: argparse.Namespace) -> int:
    import cardiobench.splits as splits
    from cardiobench.manifest import Manifest

    if args.splits_cmd == "verify":
        ok = True
        for path in _only_manifests(args.manifest):
            # an edited split is what verify reports on, so the sidecar's fingerprint may differ
            report = splits.verify(Manifest.read(path, check_sidecar_split=False))
            print(report)
            ok &= bool(report.ok)
        return 0 if ok else 1
    if args.splits_cmd == "export":
        _refuse_outputs_over_manifests([args.out], args.manifest)
        for path in _only_manifests(args.manifest):
            written = splits.export(Manifest.read(path), args.out)
            print(f"{path} -> {written}")
        return 0
    if args.splits_cmd == "show":
        for path in _only_manifests(args.manifest):
            m = Manifest.read(path)
            print(f"== {m.dataset}")
            print(splits.show(m).to_string())
        return 0
    if args.splits_cmd == "import":
        m = splits.import_published(args.csv, args.raw, dataset=args.dataset)
        out = Path(args.out) if args.out else DEFAULT_MANIFESTS / f"{m.dataset}.csv"
        m.write(out)
        print(f"{m.dataset}: {len(m)} samples imported -> {out}")
        return 0
    raise AssertionError(args.splits_cmd)


def cmd_evaluate(args: argparse.Namespace) -> int:
    return _score(args, _encoder(args), _manifest_paths(args))


def cmd_run(args: argparse.Namespace) -> int:
    from cardiobench.embed.extract import distributed_rank

    _init_distributed()
    encoder = _encoder(args)
    paths = _manifest_paths(args)
    _refuse_outputs_over_manifests([args.results], paths)
    finished, unusable = _embed(args, encoder, paths)
    if unusable:
        return 1
    if distributed_rank()[0] != 0:
        return 0  # rank 0 scores once every rank has embedded its slice
    if not finished:
        print("not every shard is embedded yet (other --shard tasks still to run): rerun "
              "`cardiobench run` or `cardiobench evaluate` once they have finished")
        return 0
    return _score(args, encoder, paths)


def cmd_report(args: argparse.Namespace) -> int:
    from cardiobench.report.leaderboard import write_leaderboard

    out = getattr(args, "out", None)
    if out and not str(out).endswith(".md"):  # a folder: the offline HTML report
        from cardiobench.report.html import build_report

        files = build_report(args.results, out, cache=getattr(args, "cache", None),
                             manifests=getattr(args, "manifests", None),
                             compare=[tuple(p) for p in getattr(args, "compare", None) or []],
                             command=" ".join(["cardiobench", *sys.argv[1:]]))
        for note in files.notes:
            print(f"note: {note}")
        print(f"{len(files.figures)} figure(s), tables {', '.join(p.name for p in files.tables)}")
        print(f"report: {files.index.resolve()}  (open in a browser; works offline)")
        return 0
    path = write_leaderboard(args.results, out)
    print(path.read_text())
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from cardiobench.encoders import build_encoder
    from cardiobench.pipeline import embed_all, generate_phantom, prepare_all
    from cardiobench.protocols.evaluate import load_suite, run_suite
    from cardiobench.report.leaderboard import write_leaderboard

    out = Path(args.out)
    t0 = time.perf_counter()
    print(f"[1/4] phantom suite ({args.scale}) -> {out / 'raw'}")
    roots = generate_phantom(out / "raw", scale=args.scale, seed=args.seed, layouts=args.datasets)
    print(f"[2/4] harmonising {len(roots)} download layout(s)")
    prepared = prepare_all(roots, out / "manifests")
    for name, reason in prepared.failed.items():
        print(f"  ! {name}: {reason.splitlines()[0]}")
    encoders = args.encoder or ["pixels"]
    all_results = []
    for name in encoders:
        encoder = build_encoder(name)
        print(f"[3/4] embedding with {name} ({encoder.fingerprint()[:12]})")
        embeddings = embed_all(prepared.manifests, encoder, out / "cache",
                               num_workers=args.workers, device=args.device,
                               precision=args.precision)
        print(f"[4/4] protocols for {name}")
        all_results += run_suite(load_suite(args.suite), prepared.manifests, embeddings, encoder,
                                 out / "results")
    print()
    print(write_leaderboard(out / "results", out / "leaderboard.md").read_text())
    from cardiobench.report.html import build_report

    report = build_report(out / "results", out / "report", cache=out / "cache",
                          manifests=out / "manifests",
                          command=" ".join(["cardiobench", *sys.argv[1:]]))
    print(f"\n{len(all_results)} result(s) in {time.perf_counter() - t0:.0f}s; "
          f"leaderboard: {out / 'leaderboard.md'}")
    print(f"report: {report.index.resolve()}  (open this file in a browser)")
    return 1 if prepared.failed and not prepared.manifests else 0


def cmd_check_encoder(args: argparse.Namespace) -> int:
    import tempfile

    from cardiobench.encoders.check import check_encoder
    from cardiobench.pipeline import check_on_phantom

    encoder = _encoder(args)
    if args.quick:
        # dims, norms, determinism and text only, on 2 samples: no phantom probe (minutes on CPU)
        report = check_encoder(encoder, n=2)
        print(json.dumps(report, indent=2, default=str))
        print(f"\n{encoder.name}: {'OK' if report['ok'] else 'PROBLEMS FOUND'} (quick: phantom "
              "probe skipped)")
        return 0 if report["ok"] else 1
    report = check_encoder(encoder)
    with tempfile.TemporaryDirectory(prefix="cardiobench-check-") as tmp:
        report["phantom"] = check_on_phantom(encoder, tmp)
    print(json.dumps(report, indent=2, default=str))
    ok = bool(report.get("ok")) and report["phantom"]["failed"] == 0 \
        and report["phantom"]["clip_finite"]
    print(f"\n{encoder.name}: {'OK' if ok else 'PROBLEMS FOUND'}; phantom EF probe MAE "
          f"{report['phantom']['probe_mae'].get('value', float('nan')):.2f} vs mean predictor "
          f"{report['phantom']['mean_predictor_mae'].get('value', float('nan')):.2f}")
    return 0 if ok else 1


def cmd_compare(args: argparse.Namespace) -> int:
    from cardiobench.report.compare import compare_suite
    from cardiobench.results import load_results

    comps = compare_suite(load_results(args.results, with_predictions=True), args.a, args.b,
                          task=args.task, n_boot=args.n_boot, seed=args.seed)
    if not comps:
        print(f"no (task, protocol) scored by both {args.a!r} and {args.b!r} in {args.results}")
        return 1
    print(f"{args.a} minus {args.b}: paired patient bootstrap ({args.n_boot} replicates, "
          f"seed {args.seed}), 95 % CI,"
          " on the units both results scored")
    for c in comps:
        drop = f"; dropped {len(c.only_a)} unit(s) only A scored, {len(c.only_b)} only B scored" \
            if c.only_a or c.only_b else ""
        print(f"{c.task:32s} {c.protocol:13s} n={c.n_common} {c.unit} "
              f"(A {c.n_a}, B {c.n_b}; {c.n_clusters} bootstrap clusters){drop}")
        for metric, d in c.diffs.items():
            print(f"    {metric:18s} {d.diff:9.3f} [{d.ci_low:9.3f}, {d.ci_high:9.3f}]  "
                  f"p={d.p_value:.4f}")
    if args.plot:
        from cardiobench.report.figures import delta_forest

        print(f"delta forest plot -> {delta_forest(comps, args.a, args.b, args.plot)}")
    return 0


def cmd_cka(args: argparse.Namespace) -> int:
    from cardiobench.embed import load_or_extract
    from cardiobench.protocols.alignment import cka_between

    encoders = [_encoder(args, "a"), _encoder(args, "b")]
    print(f"linear CKA of clip vectors, {args.a} vs {args.b}, {args.split} split")
    for name, m in _manifests(args.manifest).items():
        a, b = (load_or_extract(m, e, args.cache, num_workers=args.workers, device=args.device,
                                precision=args.precision) for e in encoders)
        ids = m.subset(args.split)["sample_id"].astype(str).to_numpy()
        value, n = cka_between(a, b, ids)
        print(f"{name:20s} n={n:5d}  CKA={value:.4f}")
    return 0


def cmd_export_predictions(args: argparse.Namespace) -> int:
    from cardiobench.protocols.export import (EXPORT_PROTOCOLS, check_export, export_predictions,
                                              write_ground_truth)
    from cardiobench.results import load_results

    if args.check:
        findings = check_export(args.out)
        for f in findings:
            print(f)
        errors = sum(f.level == "error" for f in findings)
        print(f"{args.out}: {errors} error(s), {len(findings) - errors} warning(s)"
              + ("" if errors else "; the published evaluators can read it"))
        return 1 if errors else 0
    protocols = list(EXPORT_PROTOCOLS) if args.protocol == "all" else [args.protocol]
    results = [r for r in load_results(args.results, with_predictions=True)
               if not args.encoder or args.encoder in (r.encoder_name, r.encoder_key)]
    report = export_predictions(results, args.out, protocols, args.model_name, args.format)
    for f in report.files:
        note = "" if f.status == "ok" else f"  [header only: {f.status}]"
        print(f"{f.task:32s} {f.protocol:13s} -> {f.path}{note}")
    for proto, why in report.skipped.items():
        print(f"{proto:13s} -> no tree written: {why}")
    for name, m in report.models.items():
        print(f"model {name!r} = {m['encoder_key']}")
    if args.with_ground_truth:
        paths = args.manifest or sorted(str(p) for p in DEFAULT_MANIFESTS.glob("*.csv"))
        for path in write_ground_truth(_manifests(paths), args.out):
            print(f"ground truth -> {path}")
    n_ok = sum(f.status == "ok" for f in report.files)
    print(f"{n_ok} file(s) with predictions, {len(report.files) - n_ok} header-only, index "
          f"{report.index}")
    return 0 if n_ok else 1


def cmd_reproduce(args: argparse.Namespace) -> int:
    from cardiobench.protocols.export import EXPORT_PROTOCOLS
    from cardiobench.protocols.reproduce import reproduce
    from cardiobench.results import load_results

    results = [r for r in load_results(args.results, with_predictions=True)
               if not args.encoder or args.encoder in (r.encoder_name, r.encoder_key)]
    if not results:
        raise FileNotFoundError(f"no results in {args.results}" + (
            f" for encoder {args.encoder!r}" if args.encoder else ""))
    protocols = list(EXPORT_PROTOCOLS) if "all" in args.protocol else args.protocol
    rep = reproduce(args.reference, results, _manifests(_manifest_paths(args)), args.out,
                    args.python, protocols, args.model_name, args.evaluator)
    for run in rep.runs:
        print(f"{run.protocol:13s} {run.evaluator:18s} {run.status:8s} {run.reason or ''}")
    for proto, why in rep.protocols_not_run.items():
        print(f"{proto:13s} {'(all)':18s} not run  {why}")
    t = rep.table
    for reason, n in t.loc[t["status"] == "expected", "reason"].value_counts().items():
        print(f"expected ({n} value(s)): {reason}")
    diff = t[t["status"] == "different"]
    for r in diff.head(args.show).itertuples(index=False):
        what = f"{r.section} {r.group} {r.metric} {r.field}".replace("overall  ", "")
        print(f"DIFFERENT {r.task} {r.protocol} {r.model} {what}: theirs {r.theirs} ours "
              f"{r.ours} {r.reason}")
    if len(diff) > args.show:
        print(f"... {len(diff) - args.show} more in {rep.files['csv']}")
    c = rep.counts()
    print(f"{len(t)} values compared: {c['equal']} equal within the evaluator's rounding, "
          f"{c['expected']} expected (documented reason), {c['different']} unexplained; "
          f"{len(rep.failed_runs())} evaluator(s) failed")
    print(f"table: {rep.files['csv']} and {rep.files['md']}")
    return 0 if rep.ok else 1


def cmd_encoders(args: argparse.Namespace) -> int:
    from cardiobench.encoders import available_encoders

    for name, desc in available_encoders().items():
        print(f"{name:16s} {desc}")
    return 0


# -- parser --------------------------------------------------------------------------------------
# One small function per subcommand, so options added to one verb stay local to it.
ENCODER_HELP = ("registered name (`cardiobench encoders` lists them), plugin entry-point name, "
                "or module:Class")
WORKERS_HELP = ("decoding threads, which also preprocess on CPU (default: one per core; 0 "
                "decodes in the main thread). The video decoder is $CARDIOBENCH_VIDEO_DECODER: "
                "auto (PyAV, else decord, else OpenCV), pyav, decord or opencv")


def _add_encoder_args(p: argparse.ArgumentParser, side: str = "", positional: bool = False,
                      device: bool = True) -> None:
    """The encoder options every verb that builds an encoder takes: the encoder,
    ``--weights``, ``--encoder-arg`` and (with ``device``) ``--device``. ``side`` ("a"/"b")
    prefixes them for verbs that build two encoders."""
    pre = f"{side}-" if side else ""
    what = f"encoder {side.upper()}: " if side else ""
    if positional or side:
        p.add_argument(side or "encoder", metavar=side.upper() or "ENCODER",
                       help=what + ENCODER_HELP)
    else:
        p.add_argument("--encoder", required=True, help=ENCODER_HELP)
    p.add_argument(f"--{pre}weights", metavar="PATH",
                   help=what + "local weights file or directory (default: where the encoder "
                        "looks by itself, e.g. the Hugging Face cache)")
    p.add_argument(f"--{pre}encoder-arg", action="append", metavar="KEY=VALUE",
                   help=what + "extra argument for the encoder's constructor, VALUE parsed as "
                        "JSON when it is JSON (repeatable)")
    if device:
        p.add_argument("--device", help="torch device, e.g. cpu, cuda, cuda:1 (default: cuda "
                                        "when available, else cpu)")


def _add_extraction_args(p: argparse.ArgumentParser, shard: bool = True) -> None:
    """How embeddings are computed: precision, decoding workers, batches and shards."""
    p.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp16", "fp32"],
                   help="autocast dtype on GPU; auto = bf16 on GPU, fp32 on CPU (default: auto)")
    p.add_argument("--workers", type=int, default=None, help=WORKERS_HELP)
    if not shard:
        return
    p.add_argument("--batch-size", type=int, default=8,
                   help="samples decoded per loader step (default: 8)")
    p.add_argument("--batch-frames", type=int, default=64,
                   help="frames per forward pass (default: 64)")
    p.add_argument("--shard-size", type=int, default=None,
                   help="samples per cache shard, the unit of resume (default: what the cache "
                        "was built with, 64 for a new cache; another size re-packs without "
                        "re-embedding)")
    p.add_argument("--shard", metavar="i/N",
                   help="compute only this job-array task's slice of shards; the task that "
                        "finds every shard present finalizes the cache (default: all shards, or "
                        "torchrun's rank)")


def _add_cache_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cache", default=str(DEFAULT_CACHE),
                   help="embedding cache folder (default: $CARDIOBENCH_CACHE or "
                        ".cardiobench/cache)")


def _add_scoring_args(p: argparse.ArgumentParser) -> None:
    """Which manifests and suite are scored, and where results go."""
    p.add_argument("--manifest", nargs="+", default=None, metavar="CSV",
                   help="manifest CSVs (default: every CSV in .cardiobench/manifests, where "
                        "`prepare` writes them)")
    p.add_argument("--suite", default=None, metavar="YAML",
                   help="suite YAML (default: the packaged CardioBench suite)")
    p.add_argument("--results", default="results",
                   help="results folder: one JSON + predictions CSV per (task, protocol, "
                        "encoder), and leaderboard.md (default: results)")
    p.add_argument("--ci", choices=["patient", "reference"], default=None,
                   help="bootstrap CIs: patient (the suite's default) or reference (the published "
                        "evaluators' row bootstrap with per-replicate rounding, to compare with "
                        "the paper)")


def _parser_phantom(sub: Any) -> None:
    p = sub.add_parser("phantom", help="write the synthetic phantom suite in native layouts")
    p.add_argument("--out", required=True, help="folder to write one raw layout per dataset into")
    p.add_argument("--scale", default="tiny", choices=["tiny", "demo"],
                   help="tiny: ~40 samples per dataset; demo: ~240 (default: tiny)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--datasets", nargs="*", choices=_LazyNames(_layout_names), metavar="LAYOUT",
                   help="layouts to write, of: %(choices)s (default: all)")
    p.set_defaults(func=cmd_phantom)


def _parser_prepare(sub: Any) -> None:
    p = sub.add_parser("prepare", help="harmonise a raw download into a manifest")
    p.add_argument("dataset", choices=_LazyNames(_dataset_names), metavar="DATASET",
                   help="one of: %(choices)s")
    p.add_argument("--raw", required=True, help="the dataset's download folder, unmodified")
    p.add_argument("--out", help="manifest CSV (default .cardiobench/manifests/<dataset>.csv)")
    p.add_argument("--allow-incomplete", action="store_true",
                   help="write the manifest without unusable samples (bad label cell, missing, "
                        "empty, unreadable or truncated file) instead of stopping; they are "
                        "listed in the sidecar and <manifest>.problems.csv")
    p.add_argument("--no-media-check", action="store_true",
                   help="only check that each listed file exists and is non-empty; do not open "
                        "and decode it (faster; broken files then fail later, at embed)")
    p.add_argument("--workers", type=int, default=None,
                   help="threads for the media check (default: min(8, 2 x CPU cores))")
    p.set_defaults(func=cmd_prepare)


def _parser_splits(sub: Any) -> None:
    p = sub.add_parser("splits", help="verify, export, import or show split manifests")
    ssub = p.add_subparsers(dest="splits_cmd", required=True)
    q = ssub.add_parser("verify", help="fingerprint and counts against splits/<dataset>.yaml")
    q.add_argument("manifest", nargs="+", help="manifest CSVs")
    q = ssub.add_parser("export", help="CSV + JSON manifests for other tools")
    q.add_argument("manifest", nargs="+", help="manifest CSVs")
    q.add_argument("--out", required=True, help="folder for <dataset>.splits.csv/.json")
    q = ssub.add_parser("show", help="per-split table of patients, samples, labels")
    q.add_argument("manifest", nargs="+", help="manifest CSVs")
    q = ssub.add_parser("import", help="build a manifest from a published split CSV")
    q.add_argument("csv", help="the published split CSV")
    q.add_argument("--raw", required=True, help="the dataset's download folder, unmodified")
    q.add_argument("--dataset", default="segrwma", choices=_LazyNames(_dataset_names),
                   metavar="DATASET", help="dataset of the CSV, one of: %(choices)s "
                                           "(default: segrwma)")
    q.add_argument("--out", help="manifest CSV (default .cardiobench/manifests/<dataset>.csv)")
    p.set_defaults(func=cmd_splits)


def _parser_embed(sub: Any) -> None:
    p = sub.add_parser("embed", help="compute embeddings into the resumable cache (no scoring)")
    _add_encoder_args(p)
    p.add_argument("--manifest", nargs="+", required=True, metavar="CSV", help="manifest CSVs")
    _add_cache_arg(p)
    _add_extraction_args(p)
    p.add_argument("--finalize-only", action="store_true",
                   help="compute nothing: merge and verify the shards other tasks wrote")
    p.set_defaults(func=cmd_embed)


def _scoring_verb(sub: Any, name: str, help_: str, embeds: bool) -> argparse.ArgumentParser:
    """``evaluate`` and ``run``: the same options, plus the extraction ones where it embeds."""
    p = sub.add_parser(name, help=help_)
    _add_encoder_args(p)
    _add_scoring_args(p)
    _add_cache_arg(p)
    if embeds:
        _add_extraction_args(p)
    return p


def _parser_evaluate(sub: Any) -> None:
    p = _scoring_verb(sub, "evaluate", "score cached embeddings with every protocol of the "
                                       "suite; refuses when embeddings are missing", embeds=False)
    p.set_defaults(func=cmd_evaluate)


def _parser_run(sub: Any) -> None:
    p = _scoring_verb(sub, "run", "embed what is missing, then evaluate (= embed + evaluate)",
                      embeds=True)
    p.set_defaults(func=cmd_run)


def _parser_report(sub: Any) -> None:
    p = sub.add_parser("report", help="offline HTML report (--out DIR) or Markdown leaderboard")
    p.add_argument("--results", default="results", help="results folder (default: results)")
    p.add_argument("--out", help="folder for index.html, figures and leaderboard.md/.csv/.tex "
                                 "(a path ending in .md writes only the Markdown there; default: "
                                 "<results>/leaderboard.md only)")
    p.add_argument("--cache", help="embedding cache, for the embedding maps")
    p.add_argument("--manifests", help="folder of manifest CSVs, for the embedding maps")
    p.add_argument("--compare", nargs=2, action="append", metavar=("A", "B"),
                   help="add a comparison of encoder A minus B (repeatable)")
    p.set_defaults(func=cmd_report)


def _parser_demo(sub: Any) -> None:
    p = sub.add_parser("demo", help="phantom → manifests → embeddings → protocols → leaderboard")
    p.add_argument("--out", default="results/demo", help="output folder (default: results/demo)")
    p.add_argument("--scale", default="demo", choices=["tiny", "demo"],
                   help="tiny: ~40 samples per dataset; demo: ~240 (default: demo)")
    p.add_argument("--seed", type=int, default=0, help="phantom seed (default: 0)")
    p.add_argument("--datasets", nargs="*", choices=_LazyNames(_layout_names), metavar="LAYOUT",
                   help="phantom layouts to run, of: %(choices)s (default: all)")
    p.add_argument("--encoder", action="append",
                   help=ENCODER_HELP + "; repeat for several (default: pixels)")
    p.add_argument("--suite", default=None, metavar="YAML",
                   help="suite YAML (default: the packaged CardioBench suite)")
    p.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    _add_extraction_args(p, shard=False)
    p.set_defaults(func=cmd_demo)


def _parser_check_encoder(sub: Any) -> None:
    p = sub.add_parser("check-encoder", help="dims, norms, determinism, speed, phantom probe")
    # the phantom extraction inside picks its own device, so --device would not hold throughout
    _add_encoder_args(p, positional=True, device=False)
    p.add_argument("--quick", action="store_true",
                   help="skip the phantom probe: dims, norms, determinism, text (seconds on CPU)")
    p.set_defaults(func=cmd_check_encoder)


def _parser_compare(sub: Any) -> None:
    p = sub.add_parser("compare", help="paired bootstrap deltas between two encoders' results")
    p.add_argument("a", help="encoder key or display name of the first results (A in A − B)")
    p.add_argument("b", help="encoder key or display name of the second results")
    p.add_argument("--results", default="results", help="results folder (default: results)")
    p.add_argument("--task", help="only this task, e.g. echonet_dynamic/ef (default: every task "
                                  "both encoders scored)")
    p.add_argument("--n-boot", type=int, default=1000,
                   help="bootstrap replicates (default: 1000)")
    p.add_argument("--seed", type=int, default=42, help="bootstrap seed (default: 42)")
    p.add_argument("--plot", help="also write the headline deltas as a forest plot (PNG/SVG)")
    p.set_defaults(func=cmd_compare)


def _parser_cka(sub: Any) -> None:
    p = sub.add_parser("cka", help="linear CKA between two encoders on the same samples "
                                   "(embeds what is not cached)")
    _add_encoder_args(p, side="a", device=False)
    _add_encoder_args(p, side="b", device=True)
    p.add_argument("--manifest", nargs="+", required=True, metavar="CSV", help="manifest CSVs")
    p.add_argument("--split", default="test", choices=["train", "val", "test"],
                   help="samples compared (default: test)")
    _add_cache_arg(p)
    _add_extraction_args(p, shard=False)
    p.set_defaults(func=cmd_cka)


def _parser_export_predictions(sub: Any) -> None:
    p = sub.add_parser("export-predictions",
                       help="per-task CSVs in the published evaluators' format")
    p.add_argument("out", help="output folder (with --check: the export to validate)")
    p.add_argument("--format", default="reference", choices=["reference", "long"],
                   help="reference: the evaluators' per-task files; long: one tidy CSV "
                        "(default: reference)")
    p.add_argument("--results", default="results", help="results folder (default: results)")
    p.add_argument("--protocol", default="linear_probe",
                   choices=["zero_shot", "linear_probe", "knn", "all"],
                   help="protocol whose predictions are exported, of: %(choices)s "
                        "(default: linear_probe)")
    p.add_argument("--encoder", help="display name or encoder key to export (default: all)")
    p.add_argument("--model-name", help="file name the evaluators see (made safe: letters, "
                                        "digits, '-'); default: the encoder's display name")
    p.add_argument("--with-ground-truth", action="store_true",
                   help="also write the ground-truth CSVs of CAMUS, EchoNet-Dynamic/-LVH/"
                        "-Pediatric from the manifests")
    p.add_argument("--manifest", nargs="+", default=None,
                   help="manifests for --with-ground-truth (default: .cardiobench/manifests)")
    p.add_argument("--check", action="store_true",
                   help="validate the export in OUT against the evaluators' format instead")
    p.set_defaults(func=cmd_export_predictions)


def _parser_reproduce(sub: Any) -> None:
    p = sub.add_parser("reproduce", help="run the published evaluators on our predictions and "
                                         "compare every value they write with ours")
    p.add_argument("--reference", required=True,
                   help="your checkout of the published CardioBench repository (only read)")
    p.add_argument("--results", default="results", help="results folder (default: results)")
    p.add_argument("--manifest", nargs="+", default=None,
                   help="manifests for the ground truth (default: .cardiobench/manifests)")
    p.add_argument("--out", default="reproduce",
                   help="working copies, logs, reproduce.csv/.md (default: reproduce)")
    p.add_argument("--python", default=None,
                   help="Python with the evaluators' requirements (numpy, pandas, scipy, "
                        "scikit-learn, matplotlib); default: this one")
    p.add_argument("--protocol", nargs="+", default=["all"],
                   choices=["zero_shot", "linear_probe", "knn", "all"],
                   help="protocols to reproduce (default: all)")
    p.add_argument("--evaluator", nargs="+", default=None,
                   choices=["camus", "cardiacnet", "echonet_dynamic", "echonet_lvh",
                            "echonet_pediatric", "hmcqu", "rwma", "tmed2"],
                   help="evaluator scripts to run (default: all)")
    p.add_argument("--encoder", help="display name or encoder key (default: all)")
    p.add_argument("--model-name", help="model name the evaluators see (one encoder only)")
    p.add_argument("--show", type=int, default=20, help="unexplained differences printed")
    p.set_defaults(func=cmd_reproduce)


def _parser_encoders(sub: Any) -> None:
    p = sub.add_parser("encoders", help="list registered encoders")
    p.set_defaults(func=cmd_encoders)


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="cardiobench",
        description="Benchmark echocardiography foundation models: harmonise the public "
                    "datasets, embed, run zero-shot / linear-probe / retrieval protocols.")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="debug logging, and full tracebacks on errors")
    sub = parser.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    for add in (_parser_phantom, _parser_prepare, _parser_splits, _parser_embed,
                _parser_evaluate, _parser_run, _parser_report, _parser_demo,
                _parser_check_encoder, _parser_compare, _parser_cka,
                _parser_export_predictions, _parser_reproduce, _parser_encoders):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cardiobench`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
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
        print(f"cardiobench: {kind}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
