"""Export predictions in the published evaluators' CSV formats (docs/published_benchmark.md §5), and check an export against them.

The format contract (one directory per task, one file per model, the evaluator's ID column and
spelling, hard 0/1 integers for binary predictions, ``prob_*`` columns) lives in
``reference_contract.yaml`` next to this module: per task the file name rule, the columns, the
number of published test units and a SHA-256 of their sorted IDs (docs/reproducing.md).

What an export holds (``export_predictions``):

* one file for **every** task file the published evaluators open, for every exported model and
  protocol. A task whose protocol was not applicable (a single view class in train, no text
  tower for zero-shot) or that was not run gets an **empty file with the right header**, so an
  evaluator that lists the task directory finds it (a missing directory made the EchoNet-LVH
  evaluator die before it saved its regression table);
* **no tree** for a protocol in which no model has rows for any task (zero-shot of encoders
  without a text tower): all eight evaluators sort their summary table by model name without
  checking it is empty and fail; the index lists the protocol under ``protocols_not_written``;
* model names the evaluators accept: only letters, digits and ``-`` (an ``_`` sends the TMED-2
  evaluator down its per-image path and makes the EchoNet-Pediatric one skip the file);
* ``cardiobench_export.json``: which export name is which encoder key, and the status of every
  file written (``ok``, ``not_applicable``, ``failed`` or ``missing`` with the reason);
* optionally the ground-truth split CSVs four evaluators read but the reference does not ship
  (:func:`write_ground_truth`), and a tidy long CSV instead of the per-task files
  (``fmt="long"``).

View files carry the five ``prob_<view>`` columns the evaluators read (plus ``prob_Other`` for
TMED-2, whose example has it). The evaluators ignore any ``prob_Other``: they recompute it as
``clip(1 − Σ five)`` and divide each row by its sum. In floating point that is *not* the identity
on six probabilities that sum to 1 (the last bit moves), and a last bit decides the argmax of a
tied row and the 15-bin ECE bin of a confidence exactly on an edge, both common for kNN vote
shares (multiples of 1/k); and pandas < 3's default CSV parser reads some 17-digit values an
ulp off. So the scorer stores view probabilities already in a form the evaluators rebuild bit
for bit (:func:`cardiobench.stats.canonical_view_proba`): five named values with 15 significant
digits (read exactly by any parser) whose sum is at most 1, and ``Other == clip(1 − Σ five)``, so
their row sum is exactly 1.0; we score those numbers and export them unchanged, and argmax, ECE
bins and every metric agree digit for digit. Regression predictions are scored and written with
15 significant digits for the same reason (near-ties must not split or merge on the way).
We chose this over binning our ECE "as the evaluator will" on other numbers than we score, and
over nudging exported values toward intended bins: the latter is impossible in general (a
three-way tie at 1/3 with 15 bins cannot keep both the first-class argmax and the lower bin).

The module is longer than ~400 lines on purpose: writing an export, writing the ground truth
and checking an export are three readings of one format contract (``reference_contract.yaml``),
and keeping them together keeps them from drifting apart.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from cardiobench.atomic import atomic_write_text
from cardiobench.manifest import VIEWS
from cardiobench.protocols.tasks import Task
from cardiobench.results import Result
from cardiobench.spreadsheet import neutralise_frame, refuse_formula_cells

log = logging.getLogger(__name__)

#: Output formats: the evaluators' per-task files, or one tidy long CSV.
FORMATS: tuple[str, ...] = ("reference", "long")
INDEX_FILE = "cardiobench_export.json"
LONG_FILE = "predictions_long.csv"
GROUND_TRUTH_DIR = "ground_truth"
_UNSAFE = re.compile(r"[^A-Za-z0-9-]+")


# ----------------------------------------------------------------------------- contract
@lru_cache(maxsize=1)
def load_contract() -> dict[str, dict[str, Any]]:
    """The packaged per-task format contract, ``{task name: entry}`` (see the module docstring)."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    text = resources.files("cardiobench.protocols").joinpath("reference_contract.yaml").read_text()
    return yaml.load(text, Loader=loader)["tasks"]


def published_order(task: str) -> list[str] | None:
    """Test IDs of ``task`` in the order of the ground-truth CSV its evaluator reads, where that
    CSV is committed in the reference repository; ``None`` where the evaluator reads a file
    written from our manifest (whose order is the manifest's)."""
    entry = load_contract().get(task)
    return list(entry["gt_order"]) if entry and "gt_order" in entry else None


def ids_sha256(ids: Iterable[Any]) -> str:
    """SHA-256 of the sorted IDs joined by newlines (the contract's ``ids_sha256``)."""
    return hashlib.sha256("\n".join(sorted(str(i) for i in ids)).encode()).hexdigest()


def safe_model_name(name: str) -> str:
    """``name`` with every run of characters other than letters, digits and ``-`` replaced by
    one ``-`` (no ``_``, ``[``, ``/``, ``.`` or spaces reach the evaluators); never empty."""
    out = _UNSAFE.sub("-", str(name)).strip("-")
    return out or "model"


def _file_name(task: str, model: str) -> str:
    return load_contract()[task]["file"].format(model=model)


# ----------------------------------------------------------------------------- one table
def exportable_protocols() -> tuple[str, ...]:
    """Protocols whose per-unit outputs are predictions of the label (alignment scores are not)."""
    from cardiobench.protocols import protocols

    return tuple(name for name, p in protocols().items() if p.exportable)


def export_frame(result: Result, task: Task) -> pd.DataFrame:
    """The evaluator-ready table for one ``ok`` result with predictions of ``task``."""
    spec = task.export
    if spec is None:
        raise ValueError(f"task {task.name} has no reference export format")
    if result.status != "ok" or result.predictions is None:
        raise ValueError(f"{task.name}/{result.protocol}: no predictions to export "
                         f"(status {result.status})")
    p = result.predictions
    out = {}
    for col in spec.columns:
        if col == spec.id_column:
            if spec.id_source not in p:
                raise KeyError(f"{task.name}: predictions lack id column {spec.id_source!r}")
            out[col] = p[spec.id_source].astype(str)
        elif col.endswith("_pred"):
            out[col] = task.type.export_prediction(p)
        elif col.startswith("prob_"):
            out[col] = task.type.export_probability(p, col)
        elif col == "view":
            out[col] = p["view"] if "view" in p else pd.NA
        else:
            raise KeyError(f"{task.name}: no rule to fill export column {col!r}")
    frame = pd.DataFrame(out, columns=list(spec.columns))
    refuse_formula_cells(frame, f"{task.name} export of {result.encoder_key} ({result.protocol})")
    return frame


def empty_frame(task: Task) -> pd.DataFrame:
    """A header-only table in ``task``'s export format (for a task without predictions)."""
    return pd.DataFrame(columns=list(task.export.columns))


def export_result(result: Result, task: Task, root: str | Path, model: str | None = None) -> Path:
    """Write ``<root>/<task dir>/<file>`` for ``result`` of ``task``; returns the path.
    ``model`` defaults to the safe form of the encoder's display name."""
    name = safe_model_name(model or result.encoder_name)
    path = Path(root) / _file_name(task.name, name)
    atomic_write_text(path, export_frame(result, task).to_csv(index=False))
    return path


# ----------------------------------------------------------------------------- whole exports
@dataclass
class ExportedFile:
    """One file of an export and why it holds what it holds."""

    path: str
    task: str
    protocol: str
    model: str
    encoder_key: str
    status: str
    n: int
    reason: str | None = None


@dataclass
class ExportReport:
    """What :func:`export_predictions` wrote: model names, files, ground truth, index path."""

    root: str
    fmt: str
    models: dict[str, dict[str, str]] = field(default_factory=dict)
    files: list[ExportedFile] = field(default_factory=list)
    ground_truth: list[str] = field(default_factory=list)
    index: str | None = None
    #: protocol → why no tree was written for it (no model has predictions for any task)
    skipped: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        """What a terminal shows: every file (header-only ones marked), protocols with no tree
        and why, the model names, the ground truth written, and the counts."""
        lines = [f"{f.task:32s} {f.protocol:13s} -> {f.path}"
                 + ("" if f.status == "ok" else f"  [header only: {f.status}]") for f in self.files]
        lines += [f"{proto:13s} -> no tree written: {why}" for proto, why in self.skipped.items()]
        lines += [f"model {name!r} = {m['encoder_key']}" for name, m in self.models.items()]
        lines += [f"ground truth -> {path}" for path in self.ground_truth]
        n_ok = sum(f.status == "ok" for f in self.files)
        lines.append(f"{n_ok} file(s) with predictions, {len(self.files) - n_ok} header-only, "
                     f"index {self.index}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON form of the index file."""
        return {"format": self.fmt, "models": self.models,
                "files": [asdict(f) for f in self.files], "ground_truth": self.ground_truth,
                "protocols_not_written": self.skipped}


def model_names(results: Sequence[Result], model_name: str | None = None) -> dict[str, str]:
    """Export name per encoder key: ``model_name`` (made safe) when one encoder is exported,
    else the safe display name, suffixed with the fingerprint prefix where two encoder
    configurations would share a name."""
    keys = {r.encoder_key: r for r in results}
    if model_name is not None:
        if len(keys) > 1:
            raise ValueError(f"--model-name names one model but the results hold {len(keys)} "
                             f"encoder configurations ({sorted(keys)}); select one with --encoder")
        return {k: safe_model_name(model_name) for k in keys}
    base = {k: safe_model_name(r.encoder_name) for k, r in keys.items()}
    clash = {b for b in base.values() if list(base.values()).count(b) > 1}
    return {k: safe_model_name(f"{b}-{keys[k].encoder.get('fingerprint', '')[:8]}")
            if b in clash else b for k, b in base.items()}


def _long_rows(result: Result, task: Task, model: str) -> pd.DataFrame:
    p = result.predictions
    out = pd.DataFrame({"task": task.name, "protocol": result.protocol, "model": model,
                        "encoder_key": result.encoder_key,
                        "unit_id": p[task.export.id_source if task.export
                                     else task.unit_column()].astype(str).to_numpy(),
                        "y_true": p["y_true"].to_numpy(), "y_pred": p["y_pred"].to_numpy()})
    for col, values in task.type.long_columns(task, p, VIEWS).items():
        out[col] = values
    return out


def _status(r: Result | None) -> tuple[str, str | None]:
    """Export status and reason of one (encoder, protocol, task) result (``None``: not run)."""
    if r is None:
        return "missing", "no result for this task, protocol and encoder"
    if r.status == "ok" and r.predictions is None:
        return "missing", "result has no predictions file"
    return r.status, r.reason


def export_predictions(results: Sequence[Result], tasks: Mapping[str, Task], out: str | Path,
                       protocols: Sequence[str] = ("linear_probe",), model_name: str | None = None,
                       fmt: str = "reference") -> ExportReport:
    """Export ``results`` (of the catalogue's ``tasks``) under ``out`` (see the module
    docstring) and write the index file.

    With one protocol the evaluators' tree is ``out`` itself; with several, ``out/<protocol>``
    per protocol (each a tree the evaluators can be pointed at). A protocol for which no model
    has predictions for any task gets **no tree** (``report.skipped`` and the index's
    ``protocols_not_written`` say why): every published evaluator fails on it. ``fmt="long"``
    writes one tidy CSV (task, protocol, model, encoder_key, unit_id, y_true, y_pred, prob,
    prob_<view>) instead.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; known: {list(FORMATS)}")
    exportable = exportable_protocols()
    bad = [p for p in protocols if p not in exportable]
    if bad:
        raise ValueError(f"cannot export protocol(s) {bad}; exportable: {list(exportable)}")
    out = Path(out)
    # the evaluators' tree holds only the tasks they read; the long CSV holds every task
    # (a user's own cohort among them)
    in_format = load_contract() if fmt == "reference" else {r.task: None for r in results}
    chosen = [r for r in results if r.protocol in protocols and r.task in in_format]
    outside = sorted({r.task for r in results if r.protocol in protocols} - set(in_format))
    if outside:
        log.warning("%d task(s) have no published evaluator and are left out of the reference "
                    "format (use --format long): %s", len(outside), ", ".join(outside))
    if not chosen:
        raise ValueError(f"no results of protocol(s) {list(protocols)} to export"
                         + (f" in the {fmt} format (tasks {outside} have no published "
                            "evaluator: use --format long)" if outside else ""))
    names = model_names(chosen, model_name)
    report = ExportReport(root=str(out), fmt=fmt)
    for key, name in names.items():
        enc = next(r for r in chosen if r.encoder_key == key)
        report.models[name] = {"encoder_key": key, "encoder_name": enc.encoder_name}
    by = {(r.encoder_key, r.protocol, r.task): r for r in chosen}
    long_parts = []
    for proto in protocols:
        root = out if len(protocols) == 1 else out / proto
        planned = [(key, name, tname, *_status(by.get((key, proto, tname))))
                   for key, name in names.items() for tname in in_format]
        if not any(status == "ok" for *_, status, _ in planned):
            # every evaluator sorts its label-task summary by model name unguarded: a tree in
            # which no model has rows (zero-shot of an encoder without a text tower) makes all
            # eight fail, so no such tree is written
            reasons = sorted({f"{status}: {reason}" for *_, status, reason in planned})
            report.skipped[proto] = ("no model has predictions for any task ("
                                     + "; ".join(reasons[:3]) + ("; ..." if len(reasons) > 3 else "")
                                     + "): the published evaluators would all fail on the empty "
                                     "summary table, so no tree was written")
            log.warning("%s: %s", proto, report.skipped[proto])
            continue
        for key, name, tname, status, reason in planned:
            r, task = by.get((key, proto, tname)), tasks[tname]
            if fmt == "long":
                if status == "ok":
                    long_parts.append(_long_rows(r, task, name))
                continue
            frame = export_frame(r, task) if status == "ok" else empty_frame(task)
            path = root / _file_name(tname, name)
            atomic_write_text(path, frame.to_csv(index=False))
            report.files.append(ExportedFile(str(path.relative_to(out)), tname, proto, name,
                                             key, status, len(frame), reason))
            if status != "ok":
                log.debug("%s %s: header-only file (%s: %s)", tname, proto, status, reason)
    if fmt == "long":
        table = pd.concat(long_parts, ignore_index=True) if long_parts else pd.DataFrame()
        atomic_write_text(out / LONG_FILE, neutralise_frame(table).to_csv(index=False))
        report.files.append(ExportedFile(LONG_FILE, "*", ",".join(protocols), ",".join(names.values()),
                                         ",".join(names), "ok", len(table)))
    report.index = str(out / INDEX_FILE)
    atomic_write_text(report.index, json.dumps(report.to_dict(), indent=2))
    return report


# ----------------------------------------------------------------------------- ground truth
def write_ground_truth(manifests: Mapping[str, Any], datasets: Mapping[str, Any],
                       out: str | Path) -> list[Path]:
    """The ground-truth split CSVs that the CAMUS, EchoNet-Dynamic, EchoNet-LVH and
    EchoNet-Pediatric evaluators read and the reference does not ship, written from our
    manifests under ``out/ground_truth/data/splits/`` (copy ``data/`` into the reference
    checkout). Each dataset's catalogue entry says what its files hold (``Dataset.ground_truth``);
    rows keep the manifest order, so the reference bootstrap resamples them in our order."""
    base = Path(out) / GROUND_TRUTH_DIR / "data" / "splits"
    written = []
    for name, manifest in manifests.items():
        writer = getattr(datasets.get(name), "ground_truth", None)
        for rel, frame in (writer(manifest) if writer else {}).items():
            refuse_formula_cells(frame, str(base / rel))
            written.append(atomic_write_text(base / rel, frame.to_csv(index=False)))
    return written


# ----------------------------------------------------------------------------- check
@dataclass(frozen=True)
class Finding:
    """One problem of an export: ``error`` (an evaluator crashes or scores the wrong set) or
    ``warning`` (it runs but skips or scores fewer rows)."""

    level: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.level.upper():7s} {self.path}: {self.message}"


def _tagged() -> dict[str, tuple[str, ...]]:
    """Task directories whose files carry a tag (``_a2c``, ``_asd``): directory → suffixes."""
    out: dict[str, tuple[str, ...]] = {}
    for e in load_contract().values():
        suffix = Path(e["file"]).name.split("{model}", 1)[1]
        if suffix != ".csv":
            d = str(Path(e["file"]).parent)
            out[d] = out.get(d, ()) + (suffix,)
    return out


def _roots(out: Path) -> list[Path]:
    tops = {e["file"].split("/")[0] for e in load_contract().values()}
    if any((out / t).is_dir() for t in tops):
        return [out]
    return sorted(p for p in out.iterdir() if p.is_dir() and any((p / t).is_dir() for t in tops))


def _check_values(entry: dict[str, Any], df: pd.DataFrame, rel: str) -> list[Finding]:
    f: list[Finding] = []
    pred = [c for c in entry["required"] if c.endswith("_pred")]
    kind = entry["kind"]
    for c in pred:
        col = df[c]
        if kind == "binary":
            ok = pd.to_numeric(col, errors="coerce").isin([0, 1])
            if not ok.all():
                bad = col[~ok].head(3).tolist()
                f.append(Finding("error", rel, f"{c} must be hard 0/1 labels (the evaluators "
                                 f"score it as the predicted class); found {bad}"))
        elif kind == "regression":
            vals = pd.to_numeric(col, errors="coerce")
            n_bad = int((~np.isfinite(vals.to_numpy(dtype=float))).sum())
            if n_bad:
                f.append(Finding("warning", rel, f"{n_bad} row(s) with a non-numeric or non-finite "
                                 f"{c}: the evaluator drops them"))
        else:
            unknown = sorted(set(col.astype(str)) - set(VIEWS))
            if unknown:
                f.append(Finding("warning", rel, f"view_pred values {unknown[:5]} are not in "
                                 f"{list(VIEWS)}: counted as Other in the distribution"))
    for c in [c for c in df.columns if c.startswith("prob_")]:
        vals = pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=float)
        if (~np.isfinite(vals)).any() or (vals < 0).any() or (vals > 1).any():
            f.append(Finding("error", rel, f"{c} has values outside [0, 1] or non-numeric"))
    return f


def check_export(out: str | Path) -> list[Finding]:
    """Check an export (or a tree of per-protocol exports) against the contract: every task
    directory present, file names the evaluators accept, required columns, the published test
    IDs, value ranges. Returns the findings (empty = an official script reads it as intended)."""
    out = Path(out)
    if not out.is_dir():
        return [Finding("error", str(out), "not a directory")]
    roots = _roots(out)
    if not roots:
        return [Finding("error", str(out), "no evaluator task directory found (expected e.g. "
                        "EchoNet-Dynamic/EF/ here or in one sub-folder per protocol)")]
    findings: list[Finding] = []
    for root in roots:
        findings += _check_root(root, out)
    return findings


def _check_root(root: Path, out: Path) -> list[Finding]:
    findings: list[Finding] = []
    seen_dirs: dict[str, list[Path]] = {}
    for tname, entry in load_contract().items():
        cdir = str(Path(entry["file"]).parent)
        d = root / cdir
        rel_d = str(d.relative_to(out))
        if not d.is_dir():
            findings.append(Finding("error", rel_d, f"missing directory for {tname}: the "
                                    "evaluator lists it and crashes (os.listdir) before saving"))
            continue
        if cdir not in seen_dirs:
            seen_dirs[cdir] = sorted(d.glob("*.csv"))
        pattern = Path(entry["file"]).name
        suffix = pattern.split("{model}", 1)[1]  # ".csv" or "_a2c.csv" / "_asd.csv"
        files = [p for p in seen_dirs[cdir] if p.name.endswith(suffix)]
        if not files:
            findings.append(Finding("error", rel_d, f"no '*{suffix}' file for {tname}"))
        for p in files:
            rel = str(p.relative_to(out))
            model = p.name[: -len(suffix)]
            if model != safe_model_name(model):
                findings.append(Finding("error", rel, f"model name {model!r} has characters the "
                                        "evaluators mis-handle ('_' makes TMED-2 switch to per-"
                                        "image IDs and EchoNet-Pediatric skip the file); use "
                                        f"{safe_model_name(model)!r}"))
            findings += _check_file(entry, p, rel)
    for cdir, files in seen_dirs.items():
        tags = _tagged().get(cdir)
        for p in files if tags else ():
            if not any(p.name.endswith(t) for t in tags):
                findings.append(Finding("warning", str(p.relative_to(out)), "no tag "
                                        f"{list(tags)} in the name: the evaluator skips it"))
    return findings


def id_difference(entry: dict[str, Any], ids: Iterable[Any]) -> str:
    """How ``ids`` differ from a contract entry's published test IDs: counts, and the first
    IDs missing and extra (the entry's ``gt_order`` or ``ids`` list)."""
    got = {str(i) for i in ids}
    published = set(map(str, entry.get("gt_order") or entry.get("ids") or ()))
    text = f"{len(got)} ID(s) against the published {entry['n']}"
    if not published:
        return text + " (published ID list not packaged; SHA-256 differs)"
    absent, extra = sorted(published - got), sorted(got - published)
    return (f"{text}; {len(absent)} published ID(s) absent{_eg(absent)}, {len(extra)} not "
            f"published{_eg(extra)}")


def _eg(ids: Sequence[str], k: int = 5) -> str:
    return f" ({', '.join(ids[:k])}{', ...' if len(ids) > k else ''})" if ids else ""


def _check_file(entry: dict[str, Any], path: Path, rel: str) -> list[Finding]:
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        return [Finding("error", rel, "empty file without a header: the evaluator cannot parse it")]
    except Exception as exc:  # pandas raises several parser errors
        return [Finding("error", rel, f"unreadable CSV: {exc}")]
    missing = [c for c in entry["required"] if c not in df.columns]
    if missing:
        return [Finding("error", rel, f"missing column(s) {missing}; the evaluator needs "
                        f"{entry['required']}")]
    if df.empty:
        return [Finding("warning", rel, "header only (task not applicable or not run): the "
                        "evaluator skips this model ('no overlap'); if no file of a label-task "
                        "folder (EF, LVH measurements, ASD/PAH, STEMI, RWMA, AS) has rows, its "
                        "evaluator stops when it sorts the empty summary table by model")]
    f: list[Finding] = []
    ids = df[entry["id_column"]]
    dup = int(ids.duplicated().sum())
    if dup:
        f.append(Finding("warning", rel, f"{dup} duplicate ID(s): the evaluator keeps the first"))
    uniq = ids.drop_duplicates()
    if len(uniq) != entry["n"] or ids_sha256(uniq) != entry["ids_sha256"]:
        f.append(Finding("error", rel, f"{entry['id_column']} does not list the published test "
                         f"set: {id_difference(entry, uniq)}; the evaluator scores only the "
                         "IDs both sides share" + (f" ({entry['id_note']})"
                                                   if entry.get("id_note") else "")))
    return f + _check_values(entry, df, rel)


def findings_summary(out: str | Path, findings: Sequence[Finding]) -> str:
    """:func:`check_export`'s findings for a terminal, and the verdict line."""
    errors = sum(f.level == "error" for f in findings)
    return "\n".join([str(f) for f in findings] + [
        f"{out}: {errors} error(s), {len(findings) - errors} warning(s)"
        + ("" if errors else "; the published evaluators can read it")])
