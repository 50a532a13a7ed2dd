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
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from cardiobench.io import MediaError, probe
from cardiobench.manifest import Manifest, ManifestError, Problem
from cardiobench.splits import SplitSpec

log = logging.getLogger(__name__)

CAMUS_VIEWS = {"2CH": "A2C", "4CH": "A4C"}
REQUIRED_KEYS = ("ED", "ES", "NbFrame", "EF")
_INT_KEYS = ("ED", "ES", "NbFrame")
_FLOAT_KEYS = ("EF", "Age", "FrameRate")


def read_cfg(path: Path) -> dict[str, str | int | float]:
    """Parse a CAMUS ``Info_*.cfg``; any malformed line or value raises ManifestError naming it."""
    info: dict[str, str | int | float] = {}
    lines: dict[str, int] = {}
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
        efs = {}
        for cam_view, view in CAMUS_VIEWS.items():
            seq = pdir / f"{pid}_{cam_view}_half_sequence.nii.gz"
            cfg = pdir / f"Info_{cam_view}.cfg"
            sid = f"{pid}_{cam_view}"
            if not seq.exists() and not cfg.exists():
                continue
            if not cfg.exists():
                errors.append(Problem("missing_file", f"{cfg} not found (the half sequence "
                                      "exists)", sample_id=sid))
                continue
            try:
                info = read_cfg(cfg)
            except ManifestError as exc:
                # a malformed cfg costs its own sample, named with the file and line
                warnings.append(Problem("bad_cfg", str(exc), sample_id=sid,
                                        severity="unusable", file=str(cfg)))
                continue
            if not seq.exists():
                warnings.append(Problem("missing_file", f"{seq} not found (its cfg exists)",
                                        sample_id=sid, severity="unusable", file=str(seq)))
                n_stored = None
            else:
                try:
                    n_stored = probe(seq).n_frames  # header only
                except MediaError as exc:
                    # the sample is unusable, not the dataset: prepare names it and stops, or
                    # sets it aside with --allow-incomplete
                    warnings.append(Problem(f"media_{exc.kind}", f"{seq}: {exc.reason}",
                                            sample_id=sid, severity="unusable", file=str(seq)))
                    n_stored = None
            if n_stored is not None and n_stored != info["NbFrame"]:
                warnings.append(Problem("frame_count_mismatch", f"{seq} holds {n_stored} "
                                        f"frames, {cfg} says NbFrame={info['NbFrame']}",
                                        sample_id=sid, severity="warning"))
            efs[cam_view] = info["EF"]
            rows.append({
                "sample_id": sid, "patient_id": pid, "split": split_of.get(pid, pd.NA),
                "path": seq.relative_to(raw_root).as_posix(), "view": view,
                "ed_frame": int(info["ED"]) - 1, "es_frame": int(info["ES"]) - 1,
                "fps": info.get("FrameRate", float("nan")), "n_frames": info["NbFrame"],
                "ef": info["EF"], "sex": str(info.get("Sex", "")).strip().upper() or pd.NA,
                "age": info.get("Age", float("nan")),
                "image_quality": str(info.get("ImageQuality", "")).strip().title() or pd.NA,
            })
        if len(set(efs.values())) > 1:
            warnings.append(Problem("ef_differs_between_views", f"{pid}: EF {efs} differs "
                                    "between cfgs; CAMUS EF is a patient-level biplane value",
                                    sample_id=pid, severity="warning"))
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


def ground_truth(manifest: Manifest) -> dict[str, pd.DataFrame]:
    """The split file the published evaluator reads (``data/splits/camus_split.csv``)."""
    t = manifest.table.reset_index(drop=True)
    view = t["view"].map({"A2C": "2CH", "A4C": "4CH"})
    return {"camus_split.csv": pd.DataFrame({
        "patient_id": t["patient_id"], "view": view, "path": t["path"], "split": t["split"],
        "Sex": t["sex"], "Age": t["age"], "EF": t["ef"], "FrameRate": t["fps"],
        "ImageQuality": t["image_quality"], "unique_id": t["sample_id"]})}
