"""CAMUS: ``database_nifti/patientXXXX`` + ``database_split`` → one row per (patient, view) (§1.4).

Per patient folder: ``patientXXXX_{2CH,4CH}_half_sequence.nii.gz`` (the ED→ES half cycle) and
``Info_{2CH,4CH}.cfg`` (``key: value`` lines: ``ED, ES, NbFrame, Sex, Age, ImageQuality, EF,
FrameRate``). ``_gt`` and single-frame ``_ED``/``_ES`` files are ignored. The split comes from
``database_split/subgroup_{training,validation,testing}.txt`` (one patient per line).

``sample_id`` = ``<patient>_<2CH|4CH>`` (the published ``unique_id``), view 2CH → A2C, 4CH → A4C.

**ED/ES are 1-based in the cfg; the manifest stores 0-based indices** (``ed_frame = ED - 1``).
Evidence: in the half sequences the cfg has ``ED: 1`` and ``ES == NbFrame`` (the sequence runs
from ED to ES, so 1-based numbering is the only reading that keeps ES inside the clip), and
public CAMUS loaders subtract 1 before indexing the array ("the cfg numbers frames from 1; numpy
indexes from 0"). About 2 % of sequences run ES→ED (``ED > ES``); that order is kept as given.

**Unusable samples** (named at ``prepare`` with file and line; ``--allow-incomplete`` sets them
aside): a malformed cfg or one whose ``EF`` is outside 0-100; a half sequence whose stored shape
cannot be the cfg's ``NbFrame``-frame sequence (``media_bad_shape``, e.g. a volume stored
time-first ``(t, x, y)``, whose image slices would otherwise be encoded as frames); and both
videos of a patient whose two cfgs give different ``EF`` values (CAMUS EF is one biplane value per
patient, so the patient's label is unknown).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from cardiobench.io import MediaError, probe
from cardiobench.manifest import LABEL_RANGES, Manifest, ManifestError, Problem
from cardiobench.splits import SplitSpec

log = logging.getLogger(__name__)

CAMUS_VIEWS = {"2CH": "A2C", "4CH": "A4C"}
REQUIRED_KEYS = ("ED", "ES", "NbFrame", "EF")
_INT_KEYS = ("ED", "ES", "NbFrame")
_FLOAT_KEYS = ("EF", "Age", "FrameRate")


def read_cfg(path: Path, lines: dict[str, int] | None = None) -> dict[str, str | int | float]:
    """Parse a CAMUS ``Info_*.cfg``; any malformed line or value (an EF outside
    :data:`~cardiobench.manifest.LABEL_RANGES`, a frame outside ``1..NbFrame``) raises
    ManifestError naming it. ``lines``, when given, receives the line of each key."""
    info: dict[str, str | int | float] = {}
    lines = {} if lines is None else lines
    for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        if ":" not in line:
            raise ManifestError(f"{path} line {n}: expected 'key: value', got {line!r}")
        key, value = (part.strip() for part in line.split(":", 1))
        if not key:
            raise ManifestError(f"{path} line {n}: empty key in {line!r}")
        info[key], lines[key] = value, n
    missing = [k for k in REQUIRED_KEYS if k not in info]
    if missing:
        raise ManifestError(f"{path}: missing keys {missing} (found {sorted(info)})")
    for key in _INT_KEYS + _FLOAT_KEYS:
        if key not in info:
            continue
        try:
            num = float(info[key])
            if key in _INT_KEYS:
                if num != int(num):
                    raise ValueError
                num = int(num)
        except ValueError:
            raise ManifestError(f"{path} line {lines[key]}: {key} = {info[key]!r} is not "
                                f"{'an integer' if key in _INT_KEYS else 'a number'}") from None
        info[key] = num
    lo, hi = LABEL_RANGES["ef"]
    if not lo <= float(info["EF"]) <= hi:
        raise ManifestError(f"{path} line {lines['EF']}: EF = {info['EF']:g} is outside "
                            f"[{lo:g}, {hi:g}] %")
    if not (1 <= int(info["ED"]) <= int(info["NbFrame"])
            and 1 <= int(info["ES"]) <= int(info["NbFrame"])):
        raise ManifestError(f"{path}: ED={info['ED']} / ES={info['ES']} outside the 1-based "
                            f"frame range 1..NbFrame={info['NbFrame']}")
    return info


def read_split_files(raw_root: Path, files: dict[str, str]) -> tuple[dict[str, str], list[Problem]]:
    """patient → split from the subgroup files (``files``: split → path under ``raw_root``, from
    ``splits/camus.yaml``); a patient in two files is an error naming both."""
    where: dict[str, list[str]] = {}
    split_of_file = {Path(rel).name: split for split, rel in files.items()}
    for fname, split in split_of_file.items():
        path = raw_root / files[split]
        if not path.exists():
            raise ManifestError(f"camus: split file {path} not found")
        for line in path.read_text(encoding="utf-8-sig").splitlines():
            if line.strip():
                where.setdefault(line.strip(), []).append(fname)
    problems = [Problem("patient_in_two_splits", f"{pid} is listed in {names}", sample_id=pid)
                for pid, names in sorted(where.items()) if len(names) > 1]
    return {pid: split_of_file[names[0]] for pid, names in where.items()}, problems


def sequence_shape_problem(shape: tuple[int, ...], n_frames: int) -> str | None:
    """Why a NIfTI of ``shape`` (nibabel's axes, ``(x, y, t)`` expected) cannot hold the
    ``n_frames``-frame sequence its cfg describes, or None when it can.

    The frames are read along the one non-singleton axis after ``(x, y)``; a volume stored
    time-first ``(t, x, y)`` would otherwise have its x-slices encoded as frames.
    """
    extra = [s for s in shape[2:] if s > 1]
    stored = extra[0] if extra else 1
    if stored == n_frames:
        return None
    hint = ""
    if n_frames in shape[:2]:
        hint = (f"; axis {shape.index(n_frames)} has {n_frames} entries: the volume looks "
                "stored time-first (t, x, y), and reading it would encode image slices as "
                "frames")
    return (f"shape {tuple(shape)} holds {stored} frame(s) along its time axis (the frames are "
            f"read from axes (x, y, t)), the cfg describes {n_frames}{hint}")


def harmonise(raw_root: Path, spec: SplitSpec) -> Manifest:
    """One manifest row per patient and view with a half sequence and an Info cfg."""
    raw_root = Path(raw_root)
    nifti_dir = raw_root / "database_nifti"
    if not nifti_dir.is_dir():
        raise ManifestError(f"camus: {nifti_dir} not found (expected the CAMUS_public folder)")
    split_files = dict(spec.params["files"])
    split_of, errors = read_split_files(raw_root, split_files)
    warnings: list[Problem] = []
    rows = []
    patients = sorted(p for p in nifti_dir.glob("patient*") if p.is_dir())
    for pdir in patients:
        pid = pdir.name
        if pid not in split_of:
            errors.append(Problem("patient_without_split", f"{pdir} is in no subgroup_*.txt "
                                  "file", sample_id=pid))
        efs: dict[str, tuple[float, Path, int]] = {}
        for cam_view in CAMUS_VIEWS:
            read = _read_view(pdir, cam_view, raw_root, errors, warnings)
            if read is not None:
                row, efs[cam_view] = read
                rows.append({**row, "split": split_of.get(pid, pd.NA)})
        warnings += _ef_disagreement(pid, efs)
    listed_absent = sorted(set(split_of) - {p.name for p in patients})
    if listed_absent:
        warnings.append(Problem("listed_patient_missing", f"{len(listed_absent)} patient(s) in "
                                f"the split files have no folder: {listed_absent[:10]}",
                                severity="warning"))
    if errors:
        raise ManifestError(f"camus: {len(errors)} problem(s) in {raw_root}", errors)
    if not rows:
        raise ManifestError(f"camus: no half sequences found under {nifti_dir}")
    return Manifest(
        dataset="camus", table=pd.DataFrame(rows), root=str(raw_root),
        split_rule={"rule": "official", "files": list(split_files.values())},
        source={"nifti": "database_nifti", "split_dir": "database_split",
                "frame_index": "cfg ED/ES are 1-based; manifest ed_frame/es_frame are 0-based"},
        problems=warnings)


def _read_view(pdir: Path, cam_view: str, raw_root: Path, errors: list[Problem],
               warnings: list[Problem]) -> tuple[dict[str, object], tuple[float, Path, int]] | None:
    """One patient's view: its manifest row (without the split) and ``(EF, cfg, EF's line)``,
    or None when the view has no cfg (neither file: no sample; only the sequence: an error)
    or a malformed one (the sample is unusable). A sequence that is missing, unreadable or of
    another shape than its cfg describes makes the sample unusable but still gives its row
    (``prepare`` names and sets aside rows with unusable problems). Problems go to the sinks.
    """
    pid = pdir.name
    seq = pdir / f"{pid}_{cam_view}_half_sequence.nii.gz"
    cfg = pdir / f"Info_{cam_view}.cfg"
    sid = f"{pid}_{cam_view}"
    if not seq.exists() and not cfg.exists():
        return None
    if not cfg.exists():
        errors.append(Problem("missing_file", f"{cfg} not found (the half sequence "
                              "exists)", sample_id=sid))
        return None
    cfg_lines: dict[str, int] = {}
    try:
        info = read_cfg(cfg, cfg_lines)
    except ManifestError as exc:
        # a malformed cfg costs its own sample, named with the file and line
        warnings.append(Problem("bad_cfg", str(exc), sample_id=sid,
                                severity="unusable", file=str(cfg)))
        return None
    problem = _sequence_problem(seq, sid, info, cfg, cfg_lines)
    if problem is not None:
        warnings.append(problem)
    row = {
        "sample_id": sid, "patient_id": pid,
        "path": seq.relative_to(raw_root).as_posix(), "view": CAMUS_VIEWS[cam_view],
        "ed_frame": int(info["ED"]) - 1, "es_frame": int(info["ES"]) - 1,
        "fps": info.get("FrameRate", float("nan")), "n_frames": info["NbFrame"],
        "ef": info["EF"], "sex": str(info.get("Sex", "")).strip().upper() or pd.NA,
        "age": info.get("Age", float("nan")),
        "image_quality": str(info.get("ImageQuality", "")).strip().title() or pd.NA,
    }
    return row, (float(info["EF"]), cfg, cfg_lines["EF"])


def _sequence_problem(seq: Path, sid: str, info: dict[str, str | int | float], cfg: Path,
                      cfg_lines: dict[str, int]) -> Problem | None:
    """Why the half sequence ``seq`` cannot be the sequence its cfg describes -- absent,
    unreadable (header only is read), or of another shape -- as an unusable problem, or None."""
    if not seq.exists():
        return Problem("missing_file", f"{seq} not found (its cfg exists)",
                       sample_id=sid, severity="unusable", file=str(seq))
    try:
        info_seq = probe(seq)  # header only
    except MediaError as exc:
        # the sample is unusable, not the dataset: prepare names it and stops, or sets it
        # aside with --allow-incomplete
        return Problem(f"media_{exc.kind}", f"{seq}: {exc.reason}",
                       sample_id=sid, severity="unusable", file=str(seq))
    why = sequence_shape_problem(info_seq.shape or (info_seq.width, info_seq.height,
                                                    info_seq.n_frames), int(info["NbFrame"]))
    if why is None:
        return None
    return Problem("media_bad_shape", f"{seq}: {why} ({cfg} line {cfg_lines['NbFrame']}: "
                   f"NbFrame = {info['NbFrame']})", sample_id=sid, severity="unusable",
                   file=str(seq))


def _ef_disagreement(pid: str, efs: dict[str, tuple[float, Path, int]]) -> list[Problem]:
    """An unusable problem per view when the views' cfgs give the patient different EFs.

    CAMUS EF is one biplane value per patient: two values make the patient's label unknown,
    and the patient-level task cannot score a patient with two labels.
    """
    if len({ef for ef, _, _ in efs.values()}) <= 1:
        return []
    said = "; ".join(f"{f} line {n}: EF = {ef:g}" for ef, f, n in efs.values())
    return [Problem("ef_differs_between_views", f"{pid}: the cfgs disagree on the patient's "
                    f"biplane EF ({said}); both of its videos are unusable until they agree",
                    sample_id=f"{pid}_{cam_view}", severity="unusable", file=str(f), line=n)
            for cam_view, (_, f, n) in efs.items()]


def ground_truth(manifest: Manifest) -> dict[str, pd.DataFrame]:
    """The split file the published evaluator reads (``data/splits/camus_split.csv``)."""
    t = manifest.table.reset_index(drop=True)
    view = t["view"].map({"A2C": "2CH", "A4C": "4CH"})
    return {"camus_split.csv": pd.DataFrame({
        "patient_id": t["patient_id"], "view": view, "path": t["path"], "split": t["split"],
        "Sex": t["sex"], "Age": t["age"], "EF": t["ef"], "FrameRate": t["fps"],
        "ImageQuality": t["image_quality"], "unique_id": t["sample_id"]})}
