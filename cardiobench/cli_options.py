"""The command line's options: one small function per verb, shared option groups, and the
deprecated spellings that still work for one release. Choices come from the catalogue, looked
up only when argparse needs them, so ``cardiobench --help`` stays fast."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

DEFAULT_CACHE = Path(os.environ.get("CARDIOBENCH_CACHE", ".cardiobench/cache"))
DEFAULT_MANIFESTS = Path(".cardiobench/manifests")
ENCODER_HELP = ("registered name (`cardiobench encoders` lists them), plugin entry-point name, "
                "or module:Class")
WORKERS_HELP = ("threads for decoding (and preprocessing on CPU); 0 = in the calling thread "
                "(default: one per core). The video decoder is $CARDIOBENCH_VIDEO_DECODER: auto "
                "(PyAV, else decord, else OpenCV), pyav, decord or opencv")
MANIFEST_HELP = ("manifest CSVs, or folders of them (default: .cardiobench/manifests, where "
                 "`prepare` writes)")


def deprecated(old: str, new: str) -> None:
    """Say once on stderr that ``old`` is an old spelling of ``new`` (it still works)."""
    print(f"cardiobench: note: {old} is deprecated; use {new} (the old spelling is removed in "
          "the next release)", file=sys.stderr)


def modernise(args: argparse.Namespace) -> argparse.Namespace:
    """Rewrite the old spellings a command line may still use into today's, saying so once.

    Commands then read only the new names (``--manifest``, ``--out``, ``--protocols``, ...).
    """
    if getattr(args, "manifest_positional", None):
        deprecated("a positional manifest", "--manifest PATH…")
        args.manifest = args.manifest or args.manifest_positional
    if args.cmd in ("embed", "evaluate", "run") and args.results:
        deprecated("--results (where run/evaluate write)", "--out")
        args.out = args.out or args.results
    if args.cmd == "report":
        if args.format is None and args.out and str(args.out).endswith(".md"):
            deprecated("report --out FILE.md", "report --format markdown --out FILE.md")
            args.format = "markdown"
        if args.manifests:
            deprecated("--manifests DIR", "--manifest DIR")
            args.manifest = args.manifest or [args.manifests]
    if args.cmd == "export-predictions":
        if args.out_positional:
            deprecated("export-predictions OUT", "export-predictions --out OUT")
            args.out = args.out or args.out_positional
        if args.check:
            deprecated("export-predictions --check", "check-export")
        if args.protocol:
            deprecated("--protocol", "--protocols (globs)")
            args.protocols = args.protocols or ["*" if args.protocol == "all" else args.protocol]
    return args


class _Lazy:
    """Choices looked up only when argparse needs them."""

    def __init__(self, load: Callable[[], Sequence[str]]):
        self._load, self._names = load, None

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


def _catalogue() -> Any:
    from cardiobench.catalogue import default_catalogue

    return default_catalogue()


class _DatasetsOrCohort(_Lazy):
    """The catalogue's datasets, or any cohort YAML (``*.yaml``/``*.yml``) a user describes."""

    def __contains__(self, name: object) -> bool:
        return str(name).lower().endswith((".yaml", ".yml")) or super().__contains__(name)


DATASETS = _DatasetsOrCohort(lambda: list(_catalogue().datasets))
LAYOUTS = _Lazy(lambda: list(_catalogue().layouts()))
IMPORTABLE = _Lazy(lambda: [d.name for d in _catalogue().datasets.values() if d.import_split])


# -- option groups -------------------------------------------------------------------------------
def _encoder_args(p: argparse.ArgumentParser, side: str = "", positional: bool = False,
                  device: bool = True) -> None:
    """The encoder, ``--weights``, ``--encoder-arg`` and (with ``device``) ``--device``; ``side``
    ("a"/"b") prefixes them for verbs that build two encoders."""
    pre, what = (f"{side}-", f"encoder {side.upper()}: ") if side else ("", "")
    if positional or side:
        p.add_argument(side or "encoder", metavar=side.upper() or "ENCODER",
                       help=what + ENCODER_HELP)
    else:
        p.add_argument("--encoder", required=True, help=ENCODER_HELP)
    p.add_argument(f"--{pre}weights", metavar="PATH", help=what + "local weights file or folder "
                   "(default: where the encoder looks by itself, e.g. the Hugging Face cache)")
    p.add_argument(f"--{pre}encoder-arg", action="append", metavar="KEY=VALUE",
                   help=what + "constructor argument, VALUE parsed as JSON when it is JSON")
    p.add_argument(f"--{pre}mask-outside-us-region", action="store_true",
                   help=what + "zero DICOM pixels outside the ultrasound regions the file declares "
                   "(burned-in annotations); recorded in the encoder fingerprint")
    if device:
        p.add_argument("--device", help="torch device, e.g. cpu, cuda:1 (default: cuda if any)")


def _manifest_arg(p: argparse.ArgumentParser, positional: bool = False) -> None:
    p.add_argument("--manifest", nargs="+", metavar="PATH", help=MANIFEST_HELP)
    if positional:  # the old spelling
        p.add_argument("manifest_positional", nargs="*", help=argparse.SUPPRESS)


def _extraction_args(p: argparse.ArgumentParser, shard: bool = True) -> None:
    p.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp16", "fp32"],
                   help="autocast dtype on GPU; auto = bf16 on GPU, fp32 on CPU")
    p.add_argument("--workers", type=int, default=None, help=WORKERS_HELP)
    if not shard:
        return
    p.add_argument("--batch-size", type=int, default=8, help="samples per loader step")
    p.add_argument("--batch-frames", type=int, default=64, help="frames per forward pass")
    p.add_argument("--shard-size", type=int, default=None,
                   help="samples per cache shard, the unit of resume (default: the cache's, 64 "
                        "for a new one; another size re-packs without re-embedding)")
    p.add_argument("--shard", metavar="i/N",
                   help="compute only this job-array task's slice of shards (default: all, or "
                        "torchrun's rank)")


def _raw_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--raw", action="append", metavar="[DATASET=]DIR",
                   help="read the media from DIR instead of the download folder recorded at "
                        "prepare (a moved download); DATASET=DIR per manifest when several are "
                        "given (repeatable; recorded in the results)")


def _cache_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cache", default=str(DEFAULT_CACHE),
                   help="embedding cache folder (default: $CARDIOBENCH_CACHE or .cardiobench/cache)")


def _scoring_args(p: argparse.ArgumentParser) -> None:
    """What is scored and where results go (``evaluate``, ``run``)."""
    _manifest_arg(p)
    p.add_argument("--out", help="results folder: one JSON + predictions CSV per (task, "
                                 "protocol, encoder), and leaderboard.md (default: results)")
    p.add_argument("--results", help=argparse.SUPPRESS)  # the old spelling of --out
    p.add_argument("--suite", metavar="YAML", help="suite YAML (default: the packaged suite)")
    p.add_argument("--tasks", nargs="+", metavar="GLOB",
                   help="only these tasks, e.g. 'echonet_*/ef' (`cardiobench catalogue tasks`)")
    p.add_argument("--protocols", nargs="+", metavar="GLOB",
                   help="only these protocols (`cardiobench catalogue protocols`)")
    _raw_arg(p)
    p.add_argument("--ci", choices=["patient", "reference"],
                   help="bootstrap CIs: patient (the suite's default) or reference (the published "
                        "evaluators' row bootstrap, to compare with the paper)")
    _cache_arg(p)


# -- verbs ---------------------------------------------------------------------------------------
def _verbs(sub: Any) -> None:
    p = sub.add_parser("phantom", help="write the synthetic phantom suite in native layouts")
    p.add_argument("--out", required=True, help="folder to write one raw layout per dataset into")
    p.add_argument("--scale", default="tiny", choices=["tiny", "demo"],
                   help="tiny: ~40 samples per dataset; demo: ~240 (default: tiny)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--datasets", nargs="*", choices=LAYOUTS, metavar="LAYOUT",
                   help="layouts to write, of: %(choices)s (default: all)")

    p = sub.add_parser("prepare", help="harmonise a raw download, or your own cohort described "
                                       "in a YAML file, into a manifest")
    p.add_argument("dataset", choices=DATASETS, metavar="DATASET|COHORT.yaml",
                   help="one of: %(choices)s; or a cohort YAML (docs/own_data.md)")
    p.add_argument("--raw", help="the dataset's download folder, unmodified (a cohort: default "
                                 "its YAML's root)")
    p.add_argument("--out", help="manifest CSV (default .cardiobench/manifests/<dataset>.csv)")
    p.add_argument("--allow-incomplete", action="store_true",
                   help="write the manifest without unusable samples instead of stopping; they "
                        "are listed in the sidecar and <manifest>.problems.csv")
    p.add_argument("--no-media-check", action="store_true",
                   help="only check that each listed file exists and is non-empty")
    p.add_argument("--workers", type=int, default=None,
                   help="threads for the media check; 0 = in the calling thread (default: "
                        "min(8, 2 x CPU cores))")
    p.add_argument("--strict-root", action="store_true",
                   help="a listed file that links to a file outside --raw is an unusable sample "
                        "(default: a warning)")

    p = sub.add_parser("splits", help="verify, export, import or show split manifests")
    ssub = p.add_subparsers(dest="splits_cmd", required=True)
    for verb, what in (("verify", "fingerprint and counts against the dataset's split spec"),
                       ("export", "CSV + JSON manifests for other tools"),
                       ("show", "per-split table of patients, samples, labels")):
        q = ssub.add_parser(verb, help=what)
        _manifest_arg(q, positional=True)
        if verb == "export":
            q.add_argument("--out", required=True, help="folder for <dataset>.splits.csv/.json")
    q = ssub.add_parser("import", help="build a manifest from a published split CSV")
    q.add_argument("csv", help="the published split CSV")
    q.add_argument("--raw", required=True, help="the dataset's download folder, unmodified")
    q.add_argument("--dataset", default="segrwma", choices=IMPORTABLE, metavar="DATASET",
                   help="dataset of the CSV, one of: %(choices)s (default: segrwma)")
    q.add_argument("--out", help="manifest CSV (default .cardiobench/manifests/<dataset>.csv)")

    p = sub.add_parser("embed", help="compute embeddings into the resumable cache (no scoring)")
    _encoder_args(p)
    _manifest_arg(p)
    _raw_arg(p)
    _cache_arg(p)
    _extraction_args(p)
    p.add_argument("--finalize-only", action="store_true",
                   help="compute nothing: merge and verify the shards other tasks wrote")
    p.set_defaults(out=None, results=None, suite=None, tasks=None, protocols=None, ci=None)

    for verb, what, embeds in (
            ("evaluate", "score cached embeddings; refuses when embeddings are missing", False),
            ("run", "embed what is missing, then evaluate (= embed + evaluate)", True)):
        p = sub.add_parser(verb, help=what)
        _encoder_args(p)
        _scoring_args(p)
        if embeds:
            _extraction_args(p)

    p = sub.add_parser("report", help="offline HTML report folder, or the Markdown leaderboard")
    p.add_argument("--results", default="results", help="results folder (default: results)")
    p.add_argument("--out", help="HTML: the report folder; markdown: the leaderboard file "
                                 "(default: print and write <results>/leaderboard.md)")
    p.add_argument("--format", choices=["html", "markdown"],
                   help="html (index.html, figures, leaderboard.md/.csv/.tex) or markdown "
                        "(default: html when --out is given)")
    p.add_argument("--cache", help="embedding cache, for the embedding maps")
    _manifest_arg(p)
    p.add_argument("--manifests", help=argparse.SUPPRESS)  # the old spelling of --manifest
    p.add_argument("--compare", nargs=2, action="append", metavar=("A", "B"),
                   help="add a comparison of encoder A minus B (repeatable)")

    p = sub.add_parser("demo", help="phantom → manifests → embeddings → protocols → report")
    p.add_argument("--out", default="results/demo", help="output folder (default: results/demo)")
    p.add_argument("--scale", default="demo", choices=["tiny", "demo"],
                   help="tiny: ~40 samples per dataset; demo: ~240 (default: demo)")
    p.add_argument("--seed", type=int, default=0, help="phantom seed (default: 0)")
    p.add_argument("--datasets", nargs="*", choices=LAYOUTS, metavar="LAYOUT",
                   help="phantom layouts to run, of: %(choices)s (default: all)")
    p.add_argument("--encoder", action="append",
                   help=ENCODER_HELP + "; repeat for several (default: pixels)")
    p.add_argument("--suite", metavar="YAML", help="suite YAML (default: the packaged suite)")
    p.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    _extraction_args(p, shard=False)

    p = sub.add_parser("check-encoder", help="dims, norms, determinism, speed, phantom probe")
    # the phantom extraction inside picks its own device, so --device would not hold throughout
    _encoder_args(p, positional=True, device=False)
    p.add_argument("--quick", action="store_true",
                   help="skip the phantom probe: dims, norms, determinism, text (seconds on CPU)")

    p = sub.add_parser("compare", help="paired bootstrap deltas between two encoders' results")
    p.add_argument("a", help="encoder key or display name of the first results (A in A − B)")
    p.add_argument("b", help="encoder key or display name of the second results")
    p.add_argument("--results", default="results", help="results folder (default: results)")
    p.add_argument("--task", help="only this task (default: every task both encoders scored)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap replicates (default: 1000)")
    p.add_argument("--seed", type=int, default=42, help="bootstrap seed (default: 42)")
    p.add_argument("--plot", help="also write the headline deltas as a forest plot (PNG/SVG)")

    p = sub.add_parser("cka", help="linear CKA between two encoders on the same samples")
    _encoder_args(p, side="a", device=False)
    _encoder_args(p, side="b", device=True)
    _manifest_arg(p)
    p.add_argument("--split", default="test", choices=["train", "val", "test"],
                   help="samples compared (default: test)")
    _cache_arg(p)
    _extraction_args(p, shard=False)

    p = sub.add_parser("export-predictions",
                       help="per-task CSVs in the published evaluators' format")
    p.add_argument("--out", help="output folder")
    p.add_argument("out_positional", nargs="?", help=argparse.SUPPRESS)  # the old spelling
    p.add_argument("--format", default="reference", choices=["reference", "long"],
                   help="reference: the evaluators' per-task files; long: one tidy CSV")
    p.add_argument("--results", default="results", help="results folder (default: results)")
    p.add_argument("--protocols", nargs="+", metavar="GLOB",
                   help="protocols whose predictions are exported (default: linear_probe)")
    p.add_argument("--protocol", help=argparse.SUPPRESS)  # the old spelling of --protocols
    p.add_argument("--encoder", help="display name or encoder key to export (default: all)")
    p.add_argument("--model-name", help="file name the evaluators see (made safe: letters, "
                                        "digits, '-'); default: the encoder's display name")
    p.add_argument("--with-ground-truth", action="store_true",
                   help="also write the ground-truth CSVs the evaluators need from --manifest")
    _manifest_arg(p)
    p.add_argument("--check", action="store_true", help=argparse.SUPPRESS)  # now check-export

    p = sub.add_parser("reproduce", help="run the published evaluators on our predictions and "
                                         "compare every value they write with ours")
    p.add_argument("--reference", required=True,
                   help="your checkout of the published CardioBench repository (only read)")
    p.add_argument("--results", default="results", help="results folder (default: results)")
    _manifest_arg(p)
    p.add_argument("--out", default="reproduce",
                   help="working copies, logs, reproduce.csv/.md (default: reproduce)")
    p.add_argument("--python", help="Python with the evaluators' requirements (numpy, pandas, "
                                    "scipy, scikit-learn, matplotlib); default: this one")
    p.add_argument("--protocols", nargs="+", metavar="GLOB",
                   help="protocols to reproduce (default: every exportable one)")
    p.add_argument("--evaluator", nargs="+", metavar="NAME",
                   help="evaluator scripts to run, e.g. camus echonet_dynamic (default: all)")
    p.add_argument("--encoder", help="display name or encoder key (default: all)")
    p.add_argument("--model-name", help="model name the evaluators see (one encoder only)")
    p.add_argument("--show", type=int, default=20, help="unexplained differences printed")

    p = sub.add_parser("check-export",
                       help="validate an export against the published evaluators' format")
    p.add_argument("export", help="the export folder")

    sub.add_parser("encoders", help="list registered encoders")
    p = sub.add_parser("catalogue", help="list the datasets, tasks, protocols, metrics or task "
                                         "types cardiobench knows")
    p.add_argument("what", nargs="?", default="tasks",
                   choices=["datasets", "tasks", "protocols", "metrics", "task-types"],
                   help="what to list, of: %(choices)s (default: tasks)")


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree of every subcommand (``args.cmd`` names the verb)."""
    parser = argparse.ArgumentParser(
        prog="cardiobench",
        description="Benchmark echocardiography foundation models: harmonise the public "
                    "datasets, embed, run zero-shot / linear-probe / retrieval protocols.")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="debug logging, and full tracebacks on errors")
    _verbs(parser.add_subparsers(dest="cmd", required=True, metavar="COMMAND"))
    return parser
