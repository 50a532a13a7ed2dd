"""Run the published evaluators on our predictions and set every value they write beside ours.

``reproduce(reference, results, manifests, out)`` is job 1 in one call (docs/reproducing.md):

1. **working copy**: the user's ``evaluation/`` and ``data/`` are copied under
   ``out/work/<protocol>/`` (their checkout is never written to; their example predictions and
   old outputs are left behind);
2. **export**: every protocol's predictions are exported into the copy's
   ``evaluation/example_predictions/`` (:func:`~cardiobench.protocols.export.export_predictions`:
   no tree for a protocol without rows) and the ground truth the reference does not ship into
   its ``data/splits/`` (:func:`~cardiobench.protocols.export.write_ground_truth`);
3. **registration**: a block appended to the copy's ``evaluation/config.py`` points every
   prediction folder and output folder the scripts read at the copy, and lists our model names in
   the dictionaries two scripts read instead of listing a folder (``reference_evaluators.yaml``);
4. **run**: each script whose predictions exist runs with a Python that has its imports (ours,
   or ``python=``); a missing import is an :class:`EvaluatorDependencyError` naming the package;
5. **collect and compare**: every value of every table the scripts write (overall metrics with
   their bootstrap mean and interval, subgroups and their max−min rows, per-class accuracy, the
   predicted-view counts) beside our result's, equal when both round to the same number at the
   script's decimals. A difference is *expected* only when a documented rule explains it
   (:data:`EXPECTED_RULES`); any other difference, a script that fails, or a model a script
   skipped is *unexplained*.

The scripts' own rounding: regression and view tables 2 decimals, binary tables 4, counts 0. A
max−min row is compared with the max−min of our group values rounded the same way (theirs is a
difference of rounded values).
"""

from __future__ import annotations

import ast
import json
import logging
import math
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import pandas as pd

from cardiobench.atomic import atomic_write_text
from cardiobench.protocols import export
from cardiobench.results import Result

log = logging.getLogger(__name__)

TABLE_CSV = "reproduce.csv"
TABLE_MD = "reproduce.md"
#: the export folder the scripts' config.py points at, relative to a working copy
PREDICTIONS = Path("evaluation") / "example_predictions"
#: import name → PyPI name where they differ (for the missing-dependency message)
PYPI_NAMES = {"sklearn": "scikit-learn", "cv2": "opencv-python-headless", "PIL": "Pillow",
              "yaml": "pyyaml"}
STATUSES = ("equal", "expected", "different")


class EvaluatorDependencyError(RuntimeError):
    """The Python chosen to run the published evaluators cannot import what they import."""


# ----------------------------------------------------------------------------- spec
@dataclass(frozen=True)
class TableSpec:
    """One CSV a script writes (see ``reference_evaluators.yaml``)."""

    file: str
    kind: str
    decimals: int
    dir: str | None = None
    by_column: dict[str, dict[str, str]] | None = None


@dataclass(frozen=True)
class EvaluatorSpec:
    """One published evaluator script and what it reads and writes."""

    name: str
    script: str
    output: dict[str, str]
    tables: tuple[TableSpec, ...]
    dirs: dict[str, str] = field(default_factory=dict)
    models: dict[str, str] = field(default_factory=dict)
    ground_truth: tuple[str, ...] = ()
    needs: tuple[tuple[str, ...], ...] = ()
    groupings: dict[str, dict[str, Any]] = field(default_factory=dict)


@lru_cache(maxsize=1)
def load_spec() -> dict[str, Any]:
    """The packaged ``reference_evaluators.yaml``: ``metrics``, ``fields`` and evaluators."""
    import yaml

    text = resources.files("cardiobench.protocols").joinpath("reference_evaluators.yaml").read_text()
    raw = yaml.safe_load(text)
    evaluators = {}
    for name, e in raw["evaluators"].items():
        tables = tuple(TableSpec(**t) for t in e["tables"])
        evaluators[name] = EvaluatorSpec(
            name=name, script=e["script"], output=e["output"], tables=tables,
            dirs=e.get("dirs", {}), models=e.get("models", {}),
            ground_truth=tuple(e.get("ground_truth", ())),
            needs=tuple(tuple(g) for g in e.get("needs", ())), groupings=e.get("groupings", {}))
    return {"metrics": raw["metrics"], "fields": raw["fields"], "evaluators": evaluators}


def _task_folder(task: str) -> str:
    return str(Path(export.load_contract()[task]["file"]).parent)


def _stems(folder: str, models: Iterable[str]) -> dict[str, tuple[str, str]]:
    """File stem the script uses as model name → (task, our export name), for ``folder``."""
    out = {}
    for tname, entry in export.load_contract().items():
        if str(Path(entry["file"]).parent) == folder:
            for m in models:
                out[Path(entry["file"].format(model=m)).stem] = (tname, m)
    return out


def _folders_of(spec: EvaluatorSpec) -> set[str]:
    tops = set(spec.dirs.values()) | set(spec.models.values())
    folders = set()
    for tname, entry in export.load_contract().items():
        folder = str(Path(entry["file"]).parent)
        if any(folder == t or folder.startswith(t + "/") for t in tops):
            folders.add(folder)
    return folders


# ----------------------------------------------------------------------------- working copy
def working_copy(reference: str | Path, dest: str | Path) -> Path:
    """Copy ``reference``'s ``evaluation/`` (without example predictions and outputs) and
    ``data/`` to ``dest``; the user's checkout is only read."""
    reference, dest = Path(reference), Path(dest)
    ev = reference / "evaluation"
    if not (ev / "config.py").is_file():
        raise FileNotFoundError(f"{reference} is not a checkout of the published CardioBench "
                                "repository: evaluation/config.py not found")
    if dest.exists():
        shutil.rmtree(dest)
    ignore = shutil.ignore_patterns("example_predictions", "output", "__pycache__")
    shutil.copytree(ev, dest / "evaluation", ignore=ignore)
    if (reference / "data").is_dir():
        shutil.copytree(reference / "data", dest / "data",
                        ignore=shutil.ignore_patterns("raw", "__pycache__"))
    (dest / "data" / "splits").mkdir(parents=True, exist_ok=True)
    return dest


def register(copy_root: Path, specs: Iterable[EvaluatorSpec], model_names: Sequence[str]) -> str:
    """Append to the copy's ``evaluation/config.py`` the folders and model dictionaries the
    scripts read, pointing at our export in the copy; returns the block written."""
    lines = ["", "", "# --- written by `cardiobench reproduce` into this working copy only: the",
             "# --- prediction and output folders of cardiobench's export, and its model names"]
    for spec in specs:
        for var, folder in spec.dirs.items():
            lines.append(f"{var} = {str(PREDICTIONS / folder)!r}")
        for var, folder in spec.models.items():
            files = {Path(export.load_contract()[t]["file"].format(model=m)).stem:
                     str(PREDICTIONS / export.load_contract()[t]["file"].format(model=m))
                     for t in export.load_contract() if _task_folder(t) == folder
                     for m in model_names}
            lines.append(f"{var} = {json.dumps(files, ensure_ascii=False)}")
        for var, folder in spec.output.items():
            lines.append(f"{var} = {str(Path('evaluation') / 'output' / folder) + '/'!r}")
    block = "\n".join(lines) + "\n"
    cfg = copy_root / "evaluation" / "config.py"
    atomic_write_text(cfg, cfg.read_text() + block)
    return block


# ----------------------------------------------------------------------------- dependencies
def imported_modules(evaluation_dir: str | Path) -> list[str]:
    """Top-level modules the scripts of ``evaluation_dir`` import, their own modules excluded."""
    folder = Path(evaluation_dir)
    local = {p.stem for p in folder.glob("*.py")}
    mods: set[str] = set()
    for p in folder.glob("*.py"):
        tree = ast.parse(p.read_text(), filename=str(p))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                mods |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                mods.add(node.module.split(".")[0])
    return sorted(mods - local - {"__future__"})


def check_dependencies(python: str, modules: Sequence[str]) -> None:
    """Raise :class:`EvaluatorDependencyError` naming every module ``python`` cannot import."""
    probe = ("import importlib.util, json, sys; print(json.dumps([m for m in sys.argv[1:] "
             "if importlib.util.find_spec(m) is None]))")
    try:
        res = subprocess.run([python, "-c", probe, *modules], capture_output=True, text=True,
                             timeout=120, check=False)
    except OSError as exc:
        raise EvaluatorDependencyError(f"cannot run --python {python}: {exc}") from exc
    if res.returncode != 0:
        raise EvaluatorDependencyError(f"--python {python} failed to start: {res.stderr.strip()}")
    missing = json.loads(res.stdout.strip().splitlines()[-1])
    if missing:
        raise _missing(python, missing)


def _missing(python: str, modules: Sequence[str]) -> EvaluatorDependencyError:
    pkgs = [PYPI_NAMES.get(m, m) for m in modules]
    return EvaluatorDependencyError(
        f"the published evaluators import {', '.join(modules)}, which {python} cannot import: "
        f"install {' '.join(pkgs)} into it, or pass --python PATH of a Python that has the "
        "evaluators' requirements (numpy, pandas, scipy, scikit-learn, matplotlib)")


# ----------------------------------------------------------------------------- running
@dataclass
class EvaluatorRun:
    """How one script ran on one protocol's working copy."""

    evaluator: str
    protocol: str
    status: str  # ok | failed | skipped
    reason: str | None = None
    returncode: int | None = None
    log: str | None = None


def _has_rows(report: export.ExportReport, folder: str) -> bool:
    return any(f.status == "ok" and f.n > 0 and _task_folder(f.task) == folder
               for f in report.files)


def run_evaluator(spec: EvaluatorSpec, copy_root: Path, python: str, report: export.ExportReport,
                  protocol: str, timeout: float = 3600.0) -> EvaluatorRun:
    """Run ``spec``'s script in ``copy_root`` when it has predictions and every folder it needs
    has rows; log to ``copy_root/logs/<name>.log``."""
    folders = _folders_of(spec)
    if not any(_has_rows(report, f) for f in folders):
        return EvaluatorRun(spec.name, protocol, "skipped", "no predictions for its tasks")
    for group in spec.needs:
        if not any(_has_rows(report, f) for f in group):
            return EvaluatorRun(spec.name, protocol, "skipped",
                                f"no model has rows in {' or '.join(group)}: the script sorts "
                                "that empty summary by model and stops (upstream, unguarded)")
    logs = copy_root / "logs"
    logs.mkdir(exist_ok=True)
    path = logs / f"{spec.name}.log"
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONHASHSEED": "0"}
    log.info("%s: running %s", protocol, spec.script)
    try:
        res = subprocess.run([python, spec.script], cwd=copy_root, capture_output=True, text=True,
                             timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired:
        return EvaluatorRun(spec.name, protocol, "failed", f"timed out after {timeout:.0f} s",
                            None, str(path))
    atomic_write_text(path, f"$ {python} {spec.script}\n--- stdout\n{res.stdout}\n--- stderr\n"
                            f"{res.stderr}")
    if res.returncode != 0:
        m = re.search(r"No module named '([^'.]+)", res.stderr)
        if m:
            raise _missing(python, [m.group(1)])
        last = [ln for ln in res.stderr.strip().splitlines() if ln.strip()][-1:] or ["?"]
        return EvaluatorRun(spec.name, protocol, "failed", f"exit {res.returncode}: {last[0]}",
                            res.returncode, str(path))
    return EvaluatorRun(spec.name, protocol, "ok", None, 0, str(path))


# ----------------------------------------------------------------------------- collecting
def _read(path: Path) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def _split_metric(col: str) -> tuple[str, str] | None:
    """``MAE_ci_lo`` → (``MAE``, ``ci_low``); None for a column that is not a metric."""
    spec = load_spec()
    for suffix, fld in sorted(spec["fields"].items(), key=lambda kv: -len(kv[0])):
        base = col[: len(col) - len(suffix)] if suffix and col.endswith(suffix) else col
        if (suffix == "" or col.endswith(suffix)) and base in spec["metrics"]:
            return base, fld
    return None


def collect(spec: EvaluatorSpec, copy_root: Path, protocol: str,
            model_names: Sequence[str]) -> list[dict[str, Any]]:
    """Every value of every table ``spec``'s script wrote, one record each (``theirs``)."""
    out_dir = copy_root / "evaluation" / "output" / next(iter(spec.output.values()))
    rows: list[dict[str, Any]] = []
    for t in spec.tables:
        df = _read(out_dir / t.file)
        if df is None or df.empty or "model" not in df:
            continue
        for _, r in df.iterrows():
            folder = t.dir
            if t.by_column:
                col, mapping = next(iter(t.by_column.items()))
                folder = mapping.get(str(r[col]))
            hit = _stems(folder, model_names).get(str(r["model"])) if folder else None
            if hit is None:
                continue  # not one of ours (e.g. a stray file in the folder)
            task, model = hit
            base = dict(protocol=protocol, evaluator=spec.name, table=t.file, task=task,
                        model=model, decimals=t.decimals)
            rows += _records(t, r, base, spec)
    return rows


def _records(t: TableSpec, r: pd.Series, base: dict[str, Any],
             spec: EvaluatorSpec) -> list[dict[str, Any]]:
    out = []
    if t.kind == "overall":
        if "n" in r:
            out.append({**base, "section": "overall", "group": "", "metric": "n", "field": "n",
                        "theirs": r["n"], "decimals": 0})
        for col, v in r.items():
            mf = _split_metric(str(col))
            if mf:
                out.append({**base, "section": "overall", "group": "", "metric": mf[0],
                            "field": mf[1], "theirs": v})
    elif t.kind == "subgroups":
        section = f"subgroup:{r['grouping']}"
        if str(r.get("group", "")).startswith("delta"):
            # a max−min row: its values are in the "delta <metric>" columns ("delta R2" = R2(%))
            for col, v in r.items():
                name = str(col)[len("delta "):] if str(col).startswith("delta ") else None
                mf = _split_metric("R2(%)" if name == "R2" else name) if name else None
                if mf and mf[1] == "value":
                    out.append({**base, "section": section, "group": "delta(max-min)",
                                "metric": mf[0], "field": "delta", "theirs": v})
        else:
            out.append({**base, "section": section, "group": str(r["group"]), "metric": "n",
                        "field": "n", "theirs": r["n"], "decimals": 0})
            for col, v in r.items():
                if str(col) in load_spec()["metrics"]:
                    out.append({**base, "section": section, "group": str(r["group"]),
                                "metric": str(col), "field": "value", "theirs": v})
    elif t.kind == "per_class":
        for col, v in r.items():
            col = str(col)
            if col == "model" or (isinstance(v, float) and math.isnan(v)):
                continue
            m = re.fullmatch(r"Acc_(.+)\(%\)", col) or re.fullmatch(r"n_(.+)", col)
            if m:
                cls = m.group(1)
                out.append({**base, "section": "per_class", "group": cls,
                            "metric": "accuracy" if col.startswith("Acc_") else "n",
                            "field": "value", "theirs": v,
                            "decimals": base["decimals"] if col.startswith("Acc_") else 0})
    elif t.kind == "distribution":
        for col, v in r.items():
            if str(col) != "model":
                out.append({**base, "section": "distribution", "group": str(col),
                            "metric": "count", "field": "value", "theirs": v, "decimals": 0})
    else:
        raise ValueError(f"unknown table kind {t.kind!r} in reference_evaluators.yaml")
    return out


# ----------------------------------------------------------------------------- ours
def _num(v: Any) -> float:
    try:
        return float(v) if v is not None else math.nan
    except (TypeError, ValueError):
        return math.nan


def our_value(rec: Mapping[str, Any], result: Result, spec: EvaluatorSpec) -> float:
    """Our value for one collected record (NaN where we have none)."""
    metrics = load_spec()["metrics"]
    sec, metric, fld = rec["section"], rec["metric"], rec["field"]
    if sec == "overall":
        if metric == "n":
            return float(result.n)
        m = result.metrics.get(metrics[metric], {})
        return _num(m.get(fld))
    if sec == "per_class":
        if rec["group"] == "overall_GTonly":
            return float(result.n) if metric == "n" else _num(
                result.metrics.get("accuracy", {}).get("value"))
        pc = (result.extras.get("per_class_accuracy") or {}).get(rec["group"])
        return math.nan if pc is None else _num(pc["n"] if metric == "n" else pc["accuracy"])
    if sec == "distribution":
        return float((result.extras.get("pred_distribution") or {}).get(rec["group"], 0))
    grouping = sec.split(":", 1)[1]
    gmap = spec.groupings.get(grouping, {})
    records = (result.extras.get("subgroups") or {}).get(gmap.get("ours", grouping)) or []
    groups = {str(r["group"]): r for r in records if not str(r["group"]).startswith("delta")}
    key = metrics.get(metric, metric)
    if fld == "delta":
        vals = [round(_num(r.get(key)), rec["decimals"]) for r in groups.values()]
        vals = [v for v in vals if not math.isnan(v)]
        return max(vals) - min(vals) if vals else math.nan
    ours = gmap.get("groups", {}).get(rec["group"], rec["group"])
    r = groups.get(ours)
    if r is None:
        return math.nan
    return _num(r.get("n")) if metric == "n" else _num(r.get(key))


def _ours_only(spec: EvaluatorSpec, theirs: list[dict[str, Any]], result: Result,
               base: dict[str, Any]) -> list[dict[str, Any]]:
    """Groups we report in a grouping the script reports, that it did not write (e.g. CAMUS
    ``>80``: its age grouping lists ``80`` for ``≥80``)."""
    out = []
    seen = {(r["section"], r["group"]) for r in theirs}
    written = {r["section"] for r in theirs}
    for grouping, gmap in spec.groupings.items():
        if f"subgroup:{grouping}" not in written:
            continue  # a grouping the script did not report at all: nothing to set beside
        ours_name = gmap.get("ours", grouping)
        back = {v: k for k, v in gmap.get("groups", {}).items()}
        for r in (result.extras.get("subgroups") or {}).get(ours_name) or []:
            g = str(r["group"])
            if g.startswith("delta") or (f"subgroup:{grouping}", back.get(g, g)) in seen:
                continue
            for metric, key in load_spec()["metrics"].items():
                if key in r and not math.isnan(_num(r[key])) and metric in (
                        "MAE", "NMAE(%)", "MSE", "RMSE", "R2(%)", "Pearson_r(%)", "Spearman_rho(%)"):
                    out.append({**base, "section": f"subgroup:{grouping}", "group": back.get(g, g),
                                "metric": metric, "field": "value", "theirs": math.nan,
                                "ours": _num(r[key]), "decimals": 2})
    return out


# ----------------------------------------------------------------------------- expected
def _camus_age(rec: Mapping[str, Any], ctx: Mapping[str, Any]) -> str | None:
    """CAMUS ≥80: the script bins ages into ``≤45, 46–65, 66–80, ≥80`` but lists the groups to
    report as ``≤45, 46–65, 66–80, 80`` (a typo for ≥80), so patients over 80 are in no subgroup
    row and not in the Age max−min; we keep the group (``>80``)."""
    if rec["evaluator"] == "camus" and rec["section"] == "subgroup:AgeBin" and \
            rec["group"] in ("≥80", "delta(max-min)"):
        return ("upstream typo: camus.py lists the age group '80' for '≥80', so it drops "
                "patients over 80 from its subgroup table; cardiobench keeps the group (>80)")
    return None


def _patient_ci(rec: Mapping[str, Any], ctx: Mapping[str, Any]) -> str | None:
    """Results computed with ``ci: patient`` (the default) resample patients without rounding:
    their bootstrap mean and bounds are not the scripts' (row bootstrap, rounded replicates)."""
    if rec["section"] == "overall" and rec["field"] in ("mean", "ci_low", "ci_high") and \
            ctx.get("ci") != "reference":
        return (f"our result used ci: {ctx.get('ci')} (patient bootstrap); rerun with "
                "--ci reference for the scripts' row bootstrap")
    return None


def _pediatric_bmi(rec: Mapping[str, Any], ctx: Mapping[str, Any]) -> str | None:
    """EchoNet-Pediatric BMI groups need the FileList's Weight/Height in the ground truth; a
    manifest prepared before cardiobench kept them has only BMI, so the script's BMI rows are
    empty."""
    if rec["evaluator"] == "echonet_pediatric" and rec["section"] == "subgroup:BMI_bin" and \
            not ctx.get("pediatric_weight"):
        return ("the EchoNet-Pediatric manifest has no weight/height columns (prepared by an "
                "older cardiobench): the script's BMI groups are empty; run prepare again")
    return None


def _interval_withheld(rec: Mapping[str, Any], ctx: Mapping[str, Any]) -> str | None:
    """Our interval is n/a where the test units hold fewer bootstrap clusters than the
    documented minimum (``min_clusters``, docs/metrics.md); the scripts report one anyway."""
    boot = ctx.get("bootstrap") or {}
    n, low = boot.get("n_clusters"), boot.get("min_clusters")
    if rec["field"] in ("mean", "ci_low", "ci_high") and ctx.get("ours_missing") and \
            n is not None and low is not None and n < low:
        return (f"our interval is n/a: {n} bootstrap cluster(s), fewer than min_clusters = "
                f"{low}; set min_clusters (suite config) to compare intervals this small")
    return None


#: documented reasons a value may differ (docs/reproducing.md, "Expected differences")
EXPECTED_RULES: tuple[Callable[[Mapping[str, Any], Mapping[str, Any]], str | None], ...] = (
    _camus_age, _patient_ci, _pediatric_bmi, _interval_withheld)


def _equal(theirs: float, ours: float, decimals: int) -> bool:
    if math.isnan(theirs) and math.isnan(ours):
        return True
    if math.isnan(theirs) or math.isnan(ours):
        return False
    return abs(round(theirs, decimals) - round(ours, decimals)) < 0.5 * 10.0 ** -(decimals + 2)


def compare(records: list[dict[str, Any]], results: Mapping[tuple[str, str, str], Result],
            specs: Mapping[str, EvaluatorSpec], ctx: Mapping[str, Any]) -> pd.DataFrame:
    """Side-by-side table of collected records and our values, with status and reason."""
    rows = []
    for rec in records:
        res = results[(rec["task"], rec["protocol"], rec["model"])]
        ours = rec["ours"] if "ours" in rec else our_value(rec, res, specs[rec["evaluator"]])
        theirs = _num(rec["theirs"])
        c = {**ctx, "ci": res.config.get("ci", "patient"),
             "bootstrap": res.config.get("bootstrap"), "ours_missing": math.isnan(ours)}
        status, reason = "equal", rec.get("reason")
        if reason:
            status = "different"
        elif not _equal(theirs, ours, rec["decimals"]):
            why = next((w for rule in EXPECTED_RULES if (w := rule(rec, c))), None)
            status, reason = ("expected", why) if why else ("different", None)
        diff = ours - theirs if not (math.isnan(ours) or math.isnan(theirs)) else math.nan
        rows.append({**{k: rec[k] for k in ("task", "protocol", "model", "evaluator", "table",
                                             "section", "group", "metric", "field")},
                     "theirs": theirs, "ours": ours, "difference": diff,
                     "decimals": rec["decimals"], "equal": status == "equal", "status": status,
                     "reason": reason or ""})
    cols = ["task", "protocol", "model", "evaluator", "table", "section", "group", "metric",
            "field", "theirs", "ours", "difference", "decimals", "equal", "status", "reason"]
    return pd.DataFrame(rows, columns=cols)


# ----------------------------------------------------------------------------- the whole job
@dataclass
class ReproduceReport:
    """What :func:`reproduce` did and found."""

    out: str
    table: pd.DataFrame
    runs: list[EvaluatorRun]
    protocols_not_run: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """Values per status (equal, expected, different)."""
        vc = self.table["status"].value_counts()
        return {s: int(vc.get(s, 0)) for s in STATUSES}

    def failed_runs(self) -> list[EvaluatorRun]:
        """Scripts that ran and failed."""
        return [r for r in self.runs if r.status == "failed"]

    def summary(self, show: int = 20) -> str:
        """What a terminal shows: each evaluator run, the expected differences with their
        reasons, the first ``show`` unexplained ones, and the counts."""
        lines = [f"{run.protocol:13s} {run.evaluator:18s} {run.status:8s} {run.reason or ''}"
                 for run in self.runs]
        lines += [f"{proto:13s} {'(all)':18s} not run  {why}"
                  for proto, why in self.protocols_not_run.items()]
        t = self.table
        lines += [f"expected ({n} value(s)): {reason}" for reason, n in
                  t.loc[t["status"] == "expected", "reason"].value_counts().items()]
        diff = t[t["status"] == "different"]
        for r in diff.head(show).itertuples(index=False):
            what = f"{r.section} {r.group} {r.metric} {r.field}".replace("overall  ", "")
            lines.append(f"DIFFERENT {r.task} {r.protocol} {r.model} {what}: theirs {r.theirs} "
                         f"ours {r.ours} {r.reason}")
        if len(diff) > show:
            lines.append(f"... {len(diff) - show} more in {self.files['csv']}")
        c = self.counts()
        lines.append(f"{len(t)} values compared: {c['equal']} equal within the evaluator's "
                     f"rounding, {c['expected']} expected (documented reason), {c['different']} "
                     f"unexplained; {len(self.failed_runs())} evaluator(s) failed")
        lines.append(f"table: {self.files['csv']} and {self.files['md']}")
        return "\n".join(lines)

    @property
    def ok(self) -> bool:
        """No unexplained difference and no failed script."""
        return self.counts()["different"] == 0 and not self.failed_runs()


def reproduce(reference: str | Path, results: Sequence[Result], manifests: Mapping[str, Any],
              tasks: Mapping[str, Any], datasets: Mapping[str, Any], out: str | Path,
              python: str | None = None, protocols: Sequence[str] | None = None,
              model_name: str | None = None, evaluators: Sequence[str] | None = None,
              timeout: float = 3600.0) -> ReproduceReport:
    """Run the published evaluators of ``reference`` on ``results`` (see the module docstring)
    and write ``out/reproduce.csv`` and ``out/reproduce.md``. ``tasks`` and ``datasets`` are the
    catalogue's (export formats, ground-truth writers); ``protocols`` defaults to every
    exportable one."""
    protocols = list(protocols or export.exportable_protocols())
    out = Path(out).resolve()
    reference = Path(reference).resolve()
    if not (reference / "evaluation" / "config.py").is_file():
        raise FileNotFoundError(f"{reference} is not a checkout of the published CardioBench "
                                "repository: evaluation/config.py not found")
    if out == reference or reference in out.parents:
        raise ValueError(f"--out {out} is inside the reference checkout {reference}: choose a "
                         "folder outside it (the checkout is only read)")
    python = python or sys.executable
    specs = load_spec()["evaluators"]
    chosen = [specs[e] for e in (evaluators or specs)]
    check_dependencies(python, imported_modules(reference / "evaluation"))
    gt_files = export.write_ground_truth(manifests, datasets, out / "ground_truth_tmp")
    gt_root = out / "ground_truth_tmp" / export.GROUND_TRUTH_DIR / "data"
    ok_results = [r for r in results if r.protocol in protocols]
    records: list[dict[str, Any]] = []
    runs: list[EvaluatorRun] = []
    not_run: dict[str, str] = {}
    by_key: dict[tuple[str, str, str], Result] = {}
    for proto in protocols:
        mine = [r for r in ok_results if r.protocol == proto and r.task in export.load_contract()]
        if not mine:
            not_run[proto] = "no results of this protocol"
            continue
        copy_root = working_copy(reference, out / "work" / proto)
        rep = export.export_predictions(mine, tasks, copy_root / PREDICTIONS, [proto], model_name)
        if proto in rep.skipped:
            not_run[proto] = rep.skipped[proto]
            shutil.rmtree(copy_root)
            continue
        if gt_files:
            shutil.copytree(gt_root, copy_root / "data", dirs_exist_ok=True)
        names = list(rep.models)
        register(copy_root, chosen, names)
        for r in mine:
            name = next(n for n, m in rep.models.items() if m["encoder_key"] == r.encoder_key)
            by_key[(r.task, proto, name)] = r
        for spec in chosen:
            run = run_evaluator(spec, copy_root, python, rep, proto, timeout)
            runs.append(run)
            if run.status == "skipped":
                continue
            got = collect(spec, copy_root, proto, names)
            got = [g for g in got if (g["task"], proto, g["model"]) in by_key]
            records += got + _missing_rows(spec, rep, got, proto, run)
            for key, res in by_key.items():
                if key[1] == proto and _task_folder(key[0]) in _folders_of(spec) and res.status == "ok":
                    records += _ours_only(spec, [g for g in got if g["task"] == key[0]
                                                 and g["model"] == key[2]], res,
                                          dict(protocol=proto, evaluator=spec.name,
                                               table=_subgroup_table(spec), task=key[0],
                                               model=key[2]))
    shutil.rmtree(out / "ground_truth_tmp", ignore_errors=True)
    ped = manifests.get("echonet_pediatric")
    ctx = {"pediatric_weight": ped is None or ("weight" in ped.table
                                               and bool(ped.table["weight"].notna().any()))}
    table = compare(records, by_key, specs, ctx)
    report = ReproduceReport(str(out), table, runs, not_run)
    report.files = write_report(report, out)
    return report


def _subgroup_table(spec: EvaluatorSpec) -> str:
    return next((t.file for t in spec.tables if t.kind == "subgroups"), "")


def _missing_rows(spec: EvaluatorSpec, rep: export.ExportReport, got: list[dict[str, Any]],
                  proto: str, run: EvaluatorRun) -> list[dict[str, Any]]:
    """A record for every exported file with rows whose model the script wrote no row for."""
    have = {(g["task"], g["model"]) for g in got}
    out = []
    folders = _folders_of(spec)
    for f in rep.files:
        if f.status == "ok" and f.n > 0 and _task_folder(f.task) in folders and \
                (f.task, f.model) not in have:
            why = (f"{spec.script} wrote no row for this model"
                   + (f" ({run.status}: {run.reason})" if run.reason else "; see its log"))
            out.append(dict(protocol=proto, evaluator=spec.name, table="", task=f.task,
                            model=f.model, section="overall", group="", metric="n", field="n",
                            theirs=math.nan, decimals=0, reason=why))
    return out


# ----------------------------------------------------------------------------- report files
def _fmt(v: Any, decimals: int) -> str:
    v = _num(v)
    return "" if math.isnan(v) else f"{v:.{max(decimals, 0)}f}"


def write_report(report: ReproduceReport, out: Path) -> dict[str, str]:
    """``out/reproduce.csv`` (every value) and ``out/reproduce.md`` (summary, runs, expected
    and unexplained differences, then every value), both written atomically."""
    t = report.table
    csv = atomic_write_text(out / TABLE_CSV, t.to_csv(index=False))
    c = report.counts()
    lines = ["# cardiobench reproduce: the published evaluators on our predictions", "",
             f"{len(t)} values compared: {c['equal']} equal within the evaluator's rounding, "
             f"{c['expected']} expected differences (documented reason), {c['different']} "
             "unexplained.", "", "## Evaluator runs", "",
             "| protocol | evaluator | status | note |", "|---|---|---|---|"]
    for r in report.runs:
        lines.append(f"| {r.protocol} | {r.evaluator} | {r.status} | {r.reason or ''} |")
    for p, why in report.protocols_not_run.items():
        lines.append(f"| {p} | (all) | not run | {why} |")
    for title, status in (("Unexplained differences", "different"),
                          ("Expected differences", "expected")):
        sub = t[t["status"] == status]
        lines += ["", f"## {title} ({len(sub)})", ""]
        if len(sub):
            lines += _md_rows(sub)
    lines += ["", "## Every value", ""] + _md_rows(t)
    md = atomic_write_text(out / TABLE_MD, "\n".join(lines) + "\n")
    return {"csv": str(csv), "md": str(md)}


def _md_rows(t: pd.DataFrame) -> list[str]:
    head = ["| task | protocol | model | metric | theirs | ours | difference | equal | reason |",
            "|---|---|---|---|---|---|---|---|---|"]
    rows = []
    for r in t.itertuples(index=False):
        what = r.metric if r.field in ("value", "n") else f"{r.metric} {r.field}"
        if r.section != "overall":
            what = f"{r.section} {r.group}: {what}"
        rows.append(f"| {r.task} | {r.protocol} | {r.model} | {what} | "
                    f"{_fmt(r.theirs, r.decimals)} | {_fmt(r.ours, r.decimals)} | "
                    f"{_fmt(r.difference, r.decimals)} | {'yes' if r.equal else 'no'} | "
                    f"{r.reason} |")
    return head + rows
