"""One benchmark job: plan → embed → score → write. ``run``, ``evaluate``, ``embed``, ``demo``, the
test fixtures and the library API all go through :class:`Job`, so they follow one set of rules:

* **plan** — manifests are read and validated before any work (a bad second manifest wastes no
  GPU time), one dataset given twice is refused naming both files, and the suite is expanded
  against the catalogue (:func:`cardiobench.suite.suite_entries`);
* **embed** — each dataset is embedded into the resumable cache
  (:func:`cardiobench.embed.extract`); a dataset whose every sample, or every test sample,
  failed is *unusable* and nothing is scored from it;
* **score** — only finished, current caches are scored (:meth:`Job.cached_embeddings` refuses
  the others, naming each); every (task, protocol) becomes a result JSON, ``failed`` results
  included;
* **write** — the leaderboard of the results folder.

:class:`JobOutcome` says what happened; :attr:`JobOutcome.ok` is false when a dataset was
unusable, a requested result failed, or nothing was scored, so a command can exit non-zero.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from cardiobench.atomic import refuse_overwrite
from cardiobench.catalogue import Catalogue, default_catalogue
from cardiobench.catalogue.own import catalogue_for
from cardiobench.embed import EmbeddingCache, Embeddings, ExtractReport, extract, failure_summary
from cardiobench.embed.extract import cache_is_current, distributed_rank, load_or_extract
from cardiobench.manifest import Manifest, ManifestError, manifest_csvs, sidecar_path
from cardiobench.preprocessing import prepare
from cardiobench.protocols.evaluate import SuiteEntry, evaluate_all
from cardiobench.results import Result
from cardiobench.suite import load_suite, suite_entries

log = logging.getLogger(__name__)


@dataclass
class EmbedOptions:
    """How embeddings are computed (the ``embed``/``run`` extraction options)."""

    batch_size: int = 8
    batch_frames: int = 64
    workers: int | None = None  # decoding threads; 0 = the calling thread; None = one per core
    device: str | None = None
    precision: str = "auto"
    shard_size: int | None = None
    shard: tuple[int, int] | None = None
    progress: bool = True


@dataclass
class DatasetEmbedding:
    """What embedding one dataset did: the extraction report, failures per split, and why the
    dataset cannot be scored (``unusable``) when every sample or every test sample failed."""

    dataset: str
    manifest_path: str
    report: ExtractReport
    failures_per_split: pd.DataFrame
    unusable: str | None = None

    def summary(self) -> str:
        """Shards computed and cached, failures per split with their kinds (for a terminal)."""
        rep = self.report
        lines = [f"{self.dataset}: {len(rep.computed_shards)} shard(s) computed, "
                 f"{len(rep.skipped_shards)} cached, {rep.n_failed} failed sample(s), "
                 f"{rep.seconds:.1f}s -> {rep.cache_dir}"
                 f"{'' if rep.finalized else ' (not finalized)'}"]
        if rep.retried:
            lines.append(f"  retried {len(rep.retried)} previously failed sample(s) whose file "
                         "changed")
        if rep.media_changed:
            lines.append(f"  {len(rep.media_changed)} file(s) changed since prepare were embedded "
                         f"from their current bytes (listed in {Path(rep.cache_dir) / 'meta.json'})"
                         "; their labels come from the old prepare: rerun `cardiobench prepare`")
        if rep.finalized and rep.n_failed:
            lines.append(f"  failures per split (details: {Path(rep.cache_dir) / 'failures.csv'}):")
            lines += [f"    {row.split:5s} {row.failed:6d} of {row.samples:6d} failed  {row.kinds}"
                      for row in self.failures_per_split.itertuples()]
        return "\n".join(lines)


@dataclass
class JobOutcome:
    """The outcome of :meth:`Job.run`: embeddings, results, and whether all of it succeeded."""

    embedded: list[DatasetEmbedding] = field(default_factory=list)
    results: list[Result] = field(default_factory=list)
    #: False when other ranks or job-array tasks still have shards to embed
    finished: bool = True
    scored: bool = False

    @property
    def unusable(self) -> list[DatasetEmbedding]:
        """Datasets nothing could be scored from."""
        return [e for e in self.embedded if e.unusable]

    @property
    def failed(self) -> list[Result]:
        """Requested results that failed (their reason is in the result)."""
        return [r for r in self.results if r.status == "failed"]

    @property
    def ok(self) -> bool:
        """True when no dataset was unusable, no result failed and, where scoring was asked
        for, at least one result was written."""
        return not self.unusable and not self.failed and (not self.scored or bool(self.results))

    def problems(self) -> list[str]:
        """Why the job is not :attr:`ok`, one line each (empty when it is)."""
        lines = [f"{e.dataset}: {e.unusable}; nothing can be scored from it"
                 for e in self.unusable]
        lines += [f"{r.task} {r.protocol}{' ' + r.variant if r.variant else ''}: failed: "
                  f"{r.reason}" for r in self.failed]
        if self.scored and not self.results:
            lines.append("no result was written: no task of the suite has a manifest here")
        return lines

    def summary(self) -> dict[str, dict[str, str]]:
        """``{task: {protocol: status}}`` of every result written (``protocol variant`` where a
        protocol writes several results per task, e.g. ``transfer from_camus_ef--knn``)."""
        out: dict[str, dict[str, str]] = {}
        for r in self.results:
            key = f"{r.protocol} {r.variant}" if r.variant else r.protocol
            out.setdefault(r.task, {})[key] = r.status
        return out


def read_manifests(paths: Sequence[str | Path],
                   raw: Sequence[str] | None = None) -> dict[str, Manifest]:
    """``{dataset: manifest}`` of the manifest CSVs among ``paths`` (a folder means its
    manifests), each validated, each reading its media from the folder ``raw`` gives it
    (``--raw [DATASET=]DIR``, a moved download) or else the one its sidecar records; one dataset
    given twice is refused, naming both files."""
    from cardiobench.manifest import read_manifests as read_each

    files = manifest_csvs(paths)
    if not files:
        raise FileNotFoundError(f"no manifest CSV in {', '.join(map(str, paths))}")
    out: dict[str, Manifest] = {}
    for m in read_each(files, raw):
        if m.dataset in out:
            raise ManifestError(f"dataset {m.dataset!r} is given twice: {out[m.dataset].path} "
                                f"and {m.path}; pass one manifest per dataset")
        out[m.dataset] = m
    return out


class Job:
    """A benchmark run of one encoder over some manifests (module docstring)."""

    def __init__(self, manifests: Mapping[str, Manifest], encoder: Any,
                 cache_root: str | Path, results_dir: str | Path | None = None, *,
                 catalogue: Catalogue | None = None, entries: Sequence[SuiteEntry] | None = None,
                 suite: Mapping[str, Any] | None = None, options: EmbedOptions | None = None):
        # a cohort described by its user enters the catalogue from its manifest's sidecar
        self.catalogue = catalogue_for(manifests.values(), catalogue or default_catalogue())
        self.manifests = dict(manifests)
        self.encoder = encoder
        self.cache_root = Path(cache_root)
        self.results_dir = Path(results_dir) if results_dir is not None else None
        self.entries = list(entries) if entries is not None else \
            suite_entries(suite or load_suite(), self.catalogue)
        self.options = options or EmbedOptions()
        inputs = [q for m in self.manifests.values() if m.path is not None
                  for q in (m.path, sidecar_path(m.path))]
        for out in (self.cache_root, self.results_dir):
            if out is not None:
                for p in inputs:
                    refuse_overwrite(out, [p], "output")

    @classmethod
    def from_paths(cls, paths: Sequence[str | Path], encoder: Any, cache_root: str | Path,
                   results_dir: str | Path | None = None, *, catalogue: Catalogue | None = None,
                   suite: str | Path | Mapping[str, Any] | None = None,
                   tasks: Sequence[str] | None = None, protocols: Sequence[str] | None = None,
                   ci: str | None = None, raw: Sequence[str] | None = None,
                   options: EmbedOptions | None = None) -> "Job":
        """A job over the manifests at ``paths``, scoring the suite narrowed by ``tasks`` and
        ``protocols`` globs (``ci`` overrides the suite's bootstrap mode; ``raw`` points
        manifests at moved downloads, as :func:`read_manifests`)."""
        manifests = read_manifests(paths, raw)
        catalogue = catalogue_for(manifests.values(), catalogue or default_catalogue())
        spec = dict(suite) if isinstance(suite, Mapping) else load_suite(suite)
        if ci:
            spec["ci"] = ci
        entries = suite_entries(spec, catalogue, tasks, protocols,
                                source=suite if isinstance(suite, (str, Path)) else "suite")
        return cls(manifests, encoder, cache_root, results_dir, catalogue=catalogue,
                   entries=entries, options=options)

    # -- embed -------------------------------------------------------------------------------
    def embed(self) -> list[DatasetEmbedding]:
        """Embed every manifest (this rank's or ``options.shard``'s slice of shards)."""
        o = self.options
        out = []
        for name, m in self.manifests.items():
            rep = extract(m, self.encoder, self.cache_root, batch_size=o.batch_size,
                          batch_frames=o.batch_frames, num_workers=o.workers, device=o.device,
                          precision=o.precision, shard_size=o.shard_size, shard=o.shard,
                          progress=o.progress)
            table = failure_summary(m, rep.failures)
            out.append(DatasetEmbedding(name, str(m.path), rep, table,
                                        _unusable(m, table) if rep.finalized else None))
        return out

    def cached_embeddings(self) -> dict[str, Embeddings]:
        """Finished embeddings of every manifest; refuses (``FileNotFoundError``) naming each
        one that is missing, unfinished or computed for another version of the manifest."""
        out, missing = {}, []
        fp = self.encoder.fingerprint()
        for name, m in self.manifests.items():
            cache = EmbeddingCache(self.cache_root, name, fp)
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
            missing.append(f"{name} ({m.path}): {why} in {cache.dir}")
        if missing:
            raise FileNotFoundError(
                f"evaluate scores cached embeddings only; for {self.encoder.name} "
                f"({fp[:12]}):\n  " + "\n  ".join(missing) +
                "\nrun `cardiobench embed` with the same encoder options (or `cardiobench run`)")
        return out

    def load_or_embed(self) -> dict[str, Embeddings]:
        """Cached embeddings, computing whatever is missing first (the demo and fixtures)."""
        o = self.options
        return {name: load_or_extract(m, self.encoder, self.cache_root, num_workers=o.workers,
                                      device=o.device, precision=o.precision,
                                      progress=o.progress)
                for name, m in self.manifests.items()}

    # -- score ---------------------------------------------------------------------------------
    def score(self, embeddings: Mapping[str, Embeddings]) -> list[Result]:
        """Evaluate every planned entry on ``embeddings``; one result file each. A manifest of
        a dataset the catalogue does not know is refused (``KeyError``): it has no task."""
        for name in self.manifests:
            self.catalogue.dataset(name)
        if self.results_dir is None:
            raise ValueError("this job has no results folder to write to")
        return evaluate_all(self.entries, self.manifests, embeddings, self.encoder,
                            self.results_dir)

    def run(self, *, embed: bool = True, score: bool = True) -> JobOutcome:
        """``embed`` then ``score`` (``evaluate`` is ``embed=False``: cached embeddings only).
        Under torchrun only rank 0 scores, once every rank has embedded its slice."""
        outcome = JobOutcome()
        if score:  # a dataset nothing can score is refused before any embedding
            for name in self.manifests:
                self.catalogue.dataset(name)
        if embed:
            outcome.embedded = self.embed()
            outcome.finished = all(e.report.finalized for e in outcome.embedded)
            if outcome.unusable or not score or not outcome.finished \
                    or distributed_rank()[0] != 0:
                return outcome
        if score:
            outcome.scored = True
            outcome.results = self.score(self.cached_embeddings())
        return outcome


def _unusable(manifest: Manifest, table: pd.DataFrame) -> str | None:
    """Why nothing can be scored from a dataset (every sample, or every test sample, failed)."""
    if len(manifest.table) and int(table["failed"].sum()) == len(manifest.table):
        return f"all {len(manifest.table)} samples failed to embed"
    test = table[table["split"] == "test"]
    if len(test) and int(test["samples"].iat[0]) and \
            int(test["failed"].iat[0]) == int(test["samples"].iat[0]):
        return f"all {int(test['samples'].iat[0])} test samples failed to embed"
    return None


# ----------------------------------------------------------------------------- phantom and demo
@dataclass
class PreparedSuite:
    """Manifests that were prepared, and the datasets that failed with their reasons."""

    manifests: dict[str, Manifest] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


def generate_phantom(root: str | Path, layouts: Sequence[str] | None = None,
                     scale: str = "demo", seed: int = 0,
                     catalogue: Catalogue | None = None) -> dict[str, Path]:
    """Write the phantom suite (every layout of the catalogue, or those named) and return
    ``{layout: raw root}``."""
    from cardiobench.phantom import generate_suite

    catalogue = catalogue or default_catalogue()
    chosen = [catalogue.layout(n) for n in layouts] if layouts is not None \
        else list(catalogue.layouts().values())
    return generate_suite(Path(root), chosen, scale=scale, seed=seed)


def prepare_all(raw_roots: Mapping[str, Path], manifest_dir: str | Path,
                catalogue: Catalogue | None = None) -> PreparedSuite:
    """Harmonise every layout in ``raw_roots`` into ``manifest_dir``; a dataset that fails is
    reported, not fatal."""
    catalogue = catalogue or default_catalogue()
    out = PreparedSuite()
    manifest_dir = Path(manifest_dir)
    for layout, raw in raw_roots.items():
        try:
            datasets = catalogue.layout_datasets(layout) or _cohorts_in(raw, catalogue)
        except (KeyError, ManifestError) as exc:
            log.error("prepare %s failed: %s", layout, exc)
            out.failed[layout] = str(exc)
            continue
        for dataset in datasets:
            try:
                out.manifests[dataset.name] = prepare(dataset, raw,
                                                      manifest_dir / f"{dataset.name}.csv")
            except (ManifestError, KeyError, FileNotFoundError) as exc:
                log.error("prepare %s failed: %s", dataset.name, exc)
                out.failed[dataset.name] = str(exc)
    return out


def _cohorts_in(raw: Path, catalogue: Catalogue) -> tuple[Any, ...]:
    """The cohort a layout of the user's kind wrote: every cohort YAML in its root."""
    from cardiobench.catalogue.own import cohort_dataset
    from cardiobench.preprocessing.own import read_cohort

    found = tuple(cohort_dataset(read_cohort(p)) for p in sorted(Path(raw).glob("*.yaml")))
    if not found:
        raise ManifestError(f"{raw}: no dataset of the catalogue is written by this layout and "
                            "no cohort YAML is in it")
    return found


def check_on_phantom(encoder: Any, workdir: str | Path, seed: int = 0,
                     catalogue: Catalogue | None = None) -> dict[str, Any]:
    """Run ``encoder`` through the ``tiny`` EchoNet-Dynamic phantom and a quick EF probe.

    Returns what a user wants to know before spending GPU hours: samples that failed to decode,
    clip-vector dimension and finiteness, extraction throughput, and the linear probe's test MAE
    against the train+val mean predictor (with 95 % patient-bootstrap intervals).
    """
    import time

    import numpy as np

    from cardiobench.protocols.evaluate import evaluate

    catalogue = catalogue or default_catalogue()
    workdir = Path(workdir)
    roots = generate_phantom(workdir / "raw", ["echonet_dynamic"], scale="tiny", seed=seed,
                             catalogue=catalogue)
    manifest = prepare(catalogue.dataset("echonet_dynamic"), roots["echonet_dynamic"])
    t0 = time.perf_counter()
    emb = load_or_extract(manifest, encoder, workdir / "cache", progress=False)
    seconds = time.perf_counter() - t0
    res = evaluate(catalogue.task("echonet_dynamic/ef"), "linear_probe", manifest, emb, encoder)
    mae = res.metrics.get("mae", {})
    base = (res.baseline or {}).get("mae", {})
    return {"phantom_samples": len(manifest), "embedded": len(emb),
            "failed": len(emb.failures), "clip_dim": int(emb.clip.shape[1]),
            "clip_finite": bool(np.isfinite(emb.clip).all()),
            "extract_samples_per_s": len(manifest) / seconds if seconds else float("nan"),
            "probe_mae": mae, "mean_predictor_mae": base,
            "probe_beats_mean": bool(mae and base and mae.get("value", np.inf) < base.get("value", 0))}
