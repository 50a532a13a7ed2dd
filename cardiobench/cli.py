"""cardiobench: benchmark echocardiography foundation models on eight public datasets.

The command line is a thin layer over the library (and the only part of it that prints)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

log = logging.getLogger("cardiobench")

DEFAULT_CACHE = Path(os.environ.get("CARDIOBENCH_CACHE", ".cardiobench/cache"))
DEFAULT_MANIFESTS = Path(".cardiobench/manifests")


# -- helpers -------------------------------------------------------------------------------------
def _encoder(args: argparse.Namespace):
    from cardiobench.encoders import build_encoder

    kwargs: dict[str, Any] = {}
    for item in getattr(args, "encoder_arg", None) or []:
        key, _, value = item.partition("=")
        kwargs[key] = _literal(value)
    if getattr(args, "weights", None):
        kwargs["weights"] = args.weights
    return build_encoder(args.encoder, **kwargs)


def _literal(value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def _manifests(paths: Sequence[str]):
    from cardiobench.manifest import Manifest

    out = {}
    for p in paths:
        m = Manifest.read(p)
        out[m.dataset] = m
    return out


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


# -- commands ------------------------------------------------------------------------------------
def cmd_phantom(args: argparse.Namespace) -> int:
    from cardiobench.pipeline import generate_phantom

    roots = generate_phantom(args.out, scale=args.scale, seed=args.seed, layouts=args.datasets)
    for layout, root in roots.items():
        print(f"{layout:20s} {root}")
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from cardiobench.preprocessing import prepare

    out = Path(args.out) if args.out else DEFAULT_MANIFESTS / f"{args.dataset}.csv"
    m = prepare(args.dataset, args.raw, out, check_files=not args.no_file_check)
    print(f"{args.dataset}: {len(m)} samples -> {out}")
    for split, c in m.split_counts().items():
        print(f"  {split:5s} {c['samples']:6d} samples {c['patients']:6d} patients")
    for p in m.problems:
        print(f"  {p}")
    print(f"  split fingerprint {m.fingerprint}")
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    from cardiobench.embed import extract, finalize_cache
    from cardiobench.manifest import Manifest

    _init_distributed()
    encoder = _encoder(args)
    for path in args.manifest:
        m = Manifest.read(path)
        if args.finalize_only:
            index = finalize_cache(m, encoder, args.cache, shard_size=args.shard_size)
            print(f"{m.dataset}: finalized {len(index)} samples")
            continue
        rep = extract(m, encoder, args.cache, batch_size=args.batch_size,
                      batch_frames=args.batch_frames, num_workers=args.workers,
                      device=args.device, precision=args.precision, shard_size=args.shard_size,
                      shard=_shard(args))
        print(f"{m.dataset}: {len(rep.computed_shards)} shard(s) computed, "
              f"{len(rep.skipped_shards)} cached, {rep.n_failed} failed sample(s), "
              f"{rep.seconds:.1f}s -> {rep.cache_dir}{'' if rep.finalized else ' (not finalized)'}")
    return 0


def cmd_splits(args: argparse.Namespace) -> int:
    import cardiobench.splits as splits
    from cardiobench.manifest import Manifest

    if args.splits_cmd == "verify":
        ok = True
        for path in args.manifest:
            report = splits.verify(Manifest.read(path))
            print(report)
            ok &= bool(report.ok)
        return 0 if ok else 1
    if args.splits_cmd == "export":
        for path in args.manifest:
            written = splits.export(Manifest.read(path), args.out)
            print(f"{path} -> {written}")
        return 0
    if args.splits_cmd == "show":
        for path in args.manifest:
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
    from cardiobench.embed import load_or_extract
    from cardiobench.protocols.evaluate import load_suite, run_suite

    encoder = _encoder(args)
    paths = args.manifest or sorted(str(p) for p in DEFAULT_MANIFESTS.glob("*.csv"))
    if not paths:
        raise FileNotFoundError(f"no manifests given and none in {DEFAULT_MANIFESTS}; run "
                                "`cardiobench prepare <dataset> --raw <folder>` first")
    manifests = _manifests(paths)
    embeddings = {name: load_or_extract(m, encoder, args.cache, num_workers=args.workers)
                  for name, m in manifests.items()}
    results = run_suite(load_suite(args.suite), manifests, embeddings, encoder, args.results)
    print(f"{len(results)} result(s) -> {args.results}")
    return cmd_report(argparse.Namespace(results=args.results, out=None))


def cmd_report(args: argparse.Namespace) -> int:
    from cardiobench.report.leaderboard import write_leaderboard

    path = write_leaderboard(args.results, args.out)
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
    roots = generate_phantom(out / "raw", scale=args.scale, seed=args.seed)
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
                               num_workers=args.workers)
        print(f"[4/4] protocols for {name}")
        all_results += run_suite(load_suite(args.suite), prepared.manifests, embeddings, encoder,
                                 out / "results")
    print()
    print(write_leaderboard(out / "results", out / "leaderboard.md").read_text())
    print(f"\n{len(all_results)} result(s) in {time.perf_counter() - t0:.0f}s; "
          f"leaderboard: {out / 'leaderboard.md'}")
    return 1 if prepared.failed and not prepared.manifests else 0


def cmd_check_encoder(args: argparse.Namespace) -> int:
    import tempfile

    from cardiobench.encoders.check import check_encoder
    from cardiobench.pipeline import check_on_phantom

    encoder = _encoder(args)
    if getattr(args, "quick", False):
        # dims, norms, determinism and text only, on 2 samples: no phantom probe (minutes on CPU)
        report = check_encoder(encoder, n=2)
        print(json.dumps(report, indent=2, default=str))
        print(f"\n{encoder.name}: {'OK' if report['ok'] else 'PROBLEMS FOUND'} (quick: phantom probe skipped)")
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
    from cardiobench.report.compare import compare_results
    from cardiobench.results import load_results

    results = load_results(args.results, with_predictions=True)
    by_key: dict[tuple[str, str, str], Any] = {}
    for r in results:
        if r.status == "ok":
            by_key[(r.encoder_name, r.task, r.protocol)] = r
    rows = []
    for (enc, task, proto), ra in sorted(by_key.items()):
        if enc != args.a or (args.task and task != args.task):
            continue
        rb = by_key.get((args.b, task, proto))
        if rb is None:
            continue
        for metric, d in compare_results(ra, rb).items():
            rows.append(f"{task:32s} {proto:13s} {metric:18s} {d.diff:9.3f} "
                        f"[{d.ci_low:9.3f}, {d.ci_high:9.3f}]  p={d.p_value:.4f}")
    if not rows:
        print(f"no (task, protocol) scored by both {args.a!r} and {args.b!r} in {args.results}")
        return 1
    print(f"{args.a} minus {args.b}: paired patient bootstrap (1000 replicates, seed 42), 95 % CI")
    print("\n".join(rows))
    return 0


def cmd_cka(args: argparse.Namespace) -> int:
    from cardiobench.embed import load_or_extract
    from cardiobench.encoders import build_encoder
    from cardiobench.protocols.alignment import cka_between

    encoders = [build_encoder(args.a), build_encoder(args.b)]
    print(f"linear CKA of clip vectors, {args.a} vs {args.b}, {args.split} split")
    for name, m in _manifests(args.manifest).items():
        a, b = (load_or_extract(m, e, args.cache, num_workers=args.workers) for e in encoders)
        ids = m.subset(args.split)["sample_id"].astype(str).to_numpy()
        value, n = cka_between(a, b, ids)
        print(f"{name:20s} n={n:5d}  CKA={value:.4f}")
    return 0


def cmd_export_predictions(args: argparse.Namespace) -> int:
    from cardiobench.protocols.export import export_result
    from cardiobench.results import load_results

    n = 0
    for r in load_results(args.results, with_predictions=True):
        if r.status != "ok" or r.protocol != args.protocol:
            continue
        if args.encoder and r.encoder_name != args.encoder:
            continue
        path = export_result(r, args.out)
        n += 1
        print(f"{r.task:32s} -> {path}")
    print(f"{n} file(s) in the published evaluators' format under {args.out}")
    return 0 if n else 1


def cmd_encoders(args: argparse.Namespace) -> int:
    from cardiobench.encoders import available_encoders

    for name, desc in available_encoders().items():
        print(f"{name:16s} {desc}")
    return 0


# -- parser --------------------------------------------------------------------------------------
def _add_encoder_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--encoder", required=True, help="registered name, entry point, or module:Class")
    p.add_argument("--weights", help="local weights file or directory")
    p.add_argument("--encoder-arg", action="append", metavar="KEY=VALUE",
                   help="extra encoder argument (JSON value), repeatable")


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="cardiobench",
        description="Benchmark echocardiography foundation models: harmonise the public "
                    "datasets, embed, run zero-shot / linear-probe / retrieval protocols.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("phantom", help="write the synthetic phantom suite in native layouts")
    p.add_argument("--out", required=True)
    p.add_argument("--scale", default="tiny", choices=["tiny", "demo"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--datasets", nargs="*", help="layouts to write (default: all)")
    p.set_defaults(func=cmd_phantom)

    p = sub.add_parser("prepare", help="harmonise a raw download into a manifest")
    p.add_argument("dataset")
    p.add_argument("--raw", required=True, help="the dataset's download folder, unmodified")
    p.add_argument("--out", help="manifest CSV (default .cardiobench/manifests/<dataset>.csv)")
    p.add_argument("--no-file-check", action="store_true")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("splits", help="verify, export, import or show split manifests")
    ssub = p.add_subparsers(dest="splits_cmd", required=True)
    q = ssub.add_parser("verify", help="fingerprint and counts against splits/<dataset>.yaml")
    q.add_argument("manifest", nargs="+")
    q = ssub.add_parser("export", help="CSV + JSON manifests for other tools")
    q.add_argument("manifest", nargs="+")
    q.add_argument("--out", required=True)
    q = ssub.add_parser("show", help="per-split table of patients, samples, labels")
    q.add_argument("manifest", nargs="+")
    q = ssub.add_parser("import", help="build a manifest from a published split CSV")
    q.add_argument("csv")
    q.add_argument("--raw", required=True)
    q.add_argument("--dataset", default="segrwma")
    q.add_argument("--out")
    p.set_defaults(func=cmd_splits)

    p = sub.add_parser("embed", help="extract embeddings into the resumable cache")
    _add_encoder_args(p)
    p.add_argument("--manifest", nargs="+", required=True)
    p.add_argument("--cache", default=str(DEFAULT_CACHE))
    p.add_argument("--batch-size", type=int, default=8, help="samples decoded per step")
    p.add_argument("--batch-frames", type=int, default=64, help="frames per forward pass")
    p.add_argument("--workers", type=int, default=None,
                   help="decoding processes (default: CPU cores - 1)")
    p.add_argument("--device")
    p.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp16", "fp32"])
    p.add_argument("--shard-size", type=int, default=64)
    p.add_argument("--shard", help="i/N: this job-array task's slice of shards")
    p.add_argument("--finalize-only", action="store_true", help="merge and verify shards")
    p.set_defaults(func=cmd_embed)

    for name, help_ in (("evaluate", "run the protocols on cached embeddings"),
                        ("run", "embed what is missing and run the whole suite for one encoder")):
        p = sub.add_parser(name, help=help_)
        _add_encoder_args(p)
        p.add_argument("--manifest", nargs="+", default=None,
                       help="manifest CSVs (default: every CSV in .cardiobench/manifests, where "
                            "`prepare` writes them)")
        p.add_argument("--suite", default=None, help="suite YAML (default: the CardioBench suite)")
        p.add_argument("--cache", default=str(DEFAULT_CACHE))
        p.add_argument("--results", default="results")
        p.add_argument("--workers", type=int, default=None,
                       help="decoding processes (default: CPU cores - 1)")
        p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("report", help="leaderboard from a results folder")
    p.add_argument("--results", default="results")
    p.add_argument("--out", help="write the Markdown here too")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("demo", help="phantom → manifests → embeddings → protocols → leaderboard")
    p.add_argument("--out", default="results/demo")
    p.add_argument("--scale", default="demo", choices=["tiny", "demo"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--encoder", action="append", help="encoder(s) to run (default: pixels)")
    p.add_argument("--suite", default=None)
    p.add_argument("--workers", type=int, default=None,
                   help="decoding processes (default: CPU cores - 1)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("check-encoder", help="dims, norms, determinism, speed, phantom probe")
    p.add_argument("encoder", help="registered name, entry point, or module:Class")
    p.add_argument("--weights")
    p.add_argument("--encoder-arg", action="append", metavar="KEY=VALUE")
    p.add_argument("--quick", action="store_true",
                   help="skip the phantom probe: dims, norms, determinism, text (seconds on CPU)")
    p.set_defaults(func=cmd_check_encoder)

    p = sub.add_parser("compare", help="paired bootstrap deltas between two encoders' results")
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--results", default="results")
    p.add_argument("--task")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("cka", help="linear CKA between two encoders on the same samples")
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--manifest", nargs="+", required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--cache", default=str(DEFAULT_CACHE))
    p.add_argument("--workers", type=int, default=None)
    p.set_defaults(func=cmd_cka)

    p = sub.add_parser("export-predictions",
                       help="per-task CSVs in the published evaluators' format")
    p.add_argument("out")
    p.add_argument("--format", default="cardiobench-ref", choices=["cardiobench-ref"])
    p.add_argument("--results", default="results")
    p.add_argument("--protocol", default="linear_probe")
    p.add_argument("--encoder")
    p.set_defaults(func=cmd_export_predictions)

    p = sub.add_parser("encoders", help="list registered encoders")
    p.set_defaults(func=cmd_encoders)
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
