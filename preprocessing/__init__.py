"""Harmonisers: each dataset's native download layout → a :class:`~cardiobench.manifest.Manifest`.

One module per dataset defines ``harmonise(raw_root: Path, spec: SplitSpec) -> Manifest``; the
catalogue (:mod:`cardiobench.catalogue`) binds it to its dataset with the dataset's split spec.
A harmoniser reads the dataset's own files exactly as downloaded, assigns the published split,
records non-fatal findings in ``Manifest.problems`` (severity ``warning``) and raises
:class:`~cardiobench.manifest.ManifestError` naming the rows on anything that would corrupt a
benchmark. :func:`prepare` runs one with the media checks and the unusable-sample policy every
dataset shares.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Protocol

import pandas as pd

from cardiobench.manifest import Manifest, ManifestError, Problem, check
from cardiobench.splits import SplitSpec

log = logging.getLogger(__name__)

#: ``harmonise(raw_root, spec) -> Manifest``
Harmoniser = Callable[[Path, SplitSpec], Manifest]


class Preparable(Protocol):
    """What :func:`prepare` needs of a dataset (a catalogue :class:`Dataset` is one)."""

    name: str
    harmonise: Harmoniser
    #: globs (relative to the raw root) of the media files the side files list; a matching
    #: file no row lists is reported as unlisted
    media_globs: tuple[str, ...]

    def spec(self) -> SplitSpec: ...


ALLOW_FLAG = "--allow-incomplete"


def prepare(dataset: Preparable, raw_root: str | Path, out_csv: str | Path | None = None, *,
            media_check: bool = True, allow_incomplete: bool = False,
            workers: int | None = None, strict_root: bool = False) -> Manifest:
    """Harmonise ``raw_root``, check its media, apply the unusable-sample policy, validate, write.

    Unusable samples -- a bad or out-of-range label, a file that is missing, empty, unreadable
    or holds fewer frames than promised -- stop preparation with a :class:`ManifestError`
    listing each with its reason and naming :data:`ALLOW_FLAG`. With ``allow_incomplete`` they
    are left out of the manifest and kept (``sample_id, split, patient_id, path, reason``
    and the label a drawn split was stratified on, ``split_label``) in
    ``Manifest.excluded``, the sidecar and ``<manifest>.problems.csv``. ``media_check=False``
    (``--no-media-check``) only checks that each file exists and is non-empty, without decoding
    it. Dataset-level errors (patient leakage, duplicate IDs, a missing column) always stop.

    The manifest records the absolute, resolved ``raw_root`` and, per sample, the identity of
    its file (``media_stat``, ``media_hash``: :mod:`cardiobench.io.identity`; the first and last
    MiB of every file are read, also with ``--no-media-check``). A listed path whose letter case
    differs from the file on disk (``X.AVI`` for ``X.avi``) is matched and recorded as a
    warning; a listed file that is a link to a file outside ``raw_root`` is a warning, or an
    unusable sample with ``strict_root``.
    """
    from cardiobench.io.identity import record_identity
    from cardiobench.problems import log_summary

    name = dataset.name
    raw_root = Path(raw_root).expanduser()
    if not raw_root.exists():
        raise ManifestError(f"{name}: raw folder {raw_root} does not exist")
    raw_root = raw_root.resolve()
    if out_csv is not None:
        refuse_manifest_out(Path(out_csv), raw_root)
    manifest = dataset.harmonise(raw_root, dataset.spec())
    manifest.root = str(raw_root)
    unusable, others = _sample_problems(manifest, dataset.media_globs, media_check=media_check,
                                        workers=workers, strict_root=strict_root)
    if unusable:
        _set_aside(dataset, manifest, unusable, allow_incomplete)
    manifest.problems = unusable + others
    check(manifest, check_files=False)
    record_identity(manifest, workers)
    # One line here; the per-kind summary is for whoever presents the result (the CLI prints
    # it), so no report appears twice.
    if manifest.problems:
        log.info("%s: %d problem(s) of %d kind(s) recorded (Manifest.problems; written to "
                 "<manifest>.problems.csv)", name, len(manifest.problems),
                 len({p.kind for p in manifest.problems}))
    log_summary(log, name, manifest.problems, level=logging.DEBUG)
    if out_csv is not None:
        manifest.write(out_csv)
    return manifest


def _sample_problems(manifest: Manifest, media_globs: tuple[str, ...], *, media_check: bool,
                     workers: int | None, strict_root: bool) -> tuple[list[Problem], list[Problem]]:
    """Every problem of a harmonised manifest, as ``(unusable, others)``: the harmoniser's,
    labels it let through, paths in another letter case, links out of the raw root, the media
    check of every sample still intact, and files on disk that no side file lists."""
    from cardiobench.preprocessing.media import (check_media, match_case, name_near_misses,
                                                 outside_root, unlisted_files)

    unusable = [p for p in manifest.problems if p.severity == "unusable"]
    others = [p for p in manifest.problems if p.severity != "unusable"]
    unusable += _label_problems(manifest, unusable)
    others += match_case(manifest)
    t = manifest.table
    bad = _bad_rows(t, unusable)
    for p in outside_root(Manifest(dataset=manifest.dataset, table=t[~bad], root=manifest.root),
                          strict=strict_root):
        (unusable if p.severity == "unusable" else others).append(p)
    bad = _bad_rows(t, unusable)
    intact = t[~bad].reset_index(drop=True)
    probe_set = Manifest(dataset=manifest.dataset, table=intact, root=manifest.root)
    unusable += name_near_misses(check_media(probe_set, decode=media_check, workers=workers))
    extra = unlisted_files(manifest, media_globs)
    # one problem per file: the summary line counts them and names the first five
    others += [Problem("unlisted_file", "on disk but listed by no side file; left out",
                       file=rel, severity="warning") for rel in extra]
    return unusable, others


def _set_aside(dataset: Preparable, manifest: Manifest, unusable: list[Problem],
               allow_incomplete: bool) -> None:
    """The unusable-sample policy: stop, naming every unusable sample and :data:`ALLOW_FLAG`;
    with ``allow_incomplete``, move them from ``manifest.table`` to ``manifest.excluded``
    (stopping still when no sample is left)."""
    name, raw_root, t = dataset.name, manifest.root, manifest.table
    bad = _bad_rows(t, unusable)
    if not allow_incomplete:
        n_bad = len({str(p.sample_id) for p in unusable if p.sample_id is not None}
                    | set(t.loc[bad, "sample_id"].astype(str)))
        raise ManifestError(
            f"{name}: {n_bad} unusable sample(s) in {raw_root}; fix them, or rerun "
            f"with {ALLOW_FLAG} to write the manifest without them (they are then listed in "
            "the sidecar and <manifest>.problems.csv, and the results say so)", unusable)
    manifest.table = t[~bad].reset_index(drop=True)
    manifest.excluded = _excluded(t, bad, unusable, dataset.spec().draw_label)
    if not len(manifest.table):
        raise ManifestError(f"{name}: every sample of {raw_root} is unusable; nothing to "
                            "write", unusable)


def _excluded(table: pd.DataFrame, bad: "pd.Series[bool]", unusable: list[Problem],
              draw_label: str | None) -> pd.DataFrame:
    """The set-aside samples (:data:`~cardiobench.manifest.EXCLUDED_COLUMNS`): the ``bad``
    rows of ``table`` and the samples a harmoniser could not place in it, each with the
    reasons its problems give."""
    reasons: dict[str, list[str]] = {}
    for p in unusable:
        reasons.setdefault(str(p.sample_id), []).append(
            f"{p.kind}: {p.message}" + (f" ({p.file} line {p.line})" if p.line else ""))
    dropped = table[bad]
    # a split drawn by rule was drawn with these rows: verify needs their patient and
    # stratifying label to recompute the draw on the subset the manifest keeps
    excluded = pd.DataFrame({
        "sample_id": dropped["sample_id"].astype("string"),
        "split": dropped["split"],
        "patient_id": dropped["patient_id"],
        "path": dropped["path"],
        "reason": ["; ".join(reasons.get(str(s), ["see the problems file"]))
                   for s in dropped["sample_id"]],
        "split_label": dropped[draw_label] if draw_label in dropped else pd.NA,
    })
    # samples a harmoniser could not even place in its table (e.g. no label to split on)
    absent = sorted({str(p.sample_id) for p in unusable if p.sample_id is not None}
                    - set(table["sample_id"].astype(str)))
    if absent:
        excluded = pd.concat([excluded, pd.DataFrame({
            "sample_id": absent, "split": pd.NA, "patient_id": pd.NA, "path": pd.NA,
            "reason": ["; ".join(reasons[a]) for a in absent],
            "split_label": pd.NA})], ignore_index=True)
    return excluded.astype("string").reset_index(drop=True)


def refuse_manifest_out(out: Path, raw: Path) -> None:
    """A manifest and its sidecar must not be one file, nor overwrite a file of the download."""
    from cardiobench.atomic import OverwriteError
    from cardiobench.manifest import sidecar_path

    side = sidecar_path(out)
    if side.resolve() == out.resolve():
        raise OverwriteError(f"refusing to write the manifest to {out}: its JSON sidecar has the "
                             "same name and would overwrite it; give a .csv path")
    for target, what in ((out, "the manifest"), (side, "the manifest's sidecar")):
        t = target.resolve()
        if t.exists() and raw.resolve() in t.parents:
            raise OverwriteError(f"refusing to write {what} {target}: it would overwrite a file "
                                 f"of the download in {raw}; write it outside the download")


#: label faults of a harmonised table that cost only their own sample
_LABEL_KINDS = ("label_out_of_range", "label_not_numeric", "label_not_binary")


def _label_problems(manifest: Manifest, known: list[Problem]) -> list[Problem]:
    """An unusable problem per sample whose label is outside :data:`LABEL_RANGES` (or not a
    number, or not 0/1), unless its harmoniser already named it (with its file and line).

    The general rule behind each harmoniser's own checks: a label a harmoniser let through is
    never a whole-dataset refusal naming a row of an internal table.
    """
    from cardiobench.manifest import validate

    named = {str(p.sample_id) for p in known if p.sample_id is not None}
    t = manifest.table
    out = []
    for p in validate(manifest, check_files=False):
        if p.kind not in _LABEL_KINDS or p.sample_id is None or p.sample_id in named:
            continue
        path = t.at[p.row, "path"] if p.row is not None and "path" in t else None
        where = f" (the label of {path})" if path is not None and not pd.isna(path) else ""
        out.append(Problem(p.kind, f"{p.message}{where}", sample_id=p.sample_id, row=p.row,
                           severity="unusable"))
    return out


def _bad_rows(table: pd.DataFrame, unusable: list[Problem]) -> "pd.Series[bool]":
    """Rows named by an unusable problem: by ``sample_id``, else by the harmoniser's ``row``."""
    ids = {str(p.sample_id) for p in unusable if p.sample_id is not None}
    rows = {p.row for p in unusable if p.sample_id is None and p.row is not None}
    # a row without an ID or a path is no sample: its harmoniser named why (an empty cell)
    bad = table["sample_id"].astype(str).isin(ids) | table["sample_id"].isna()
    if "path" in table:
        bad |= table["path"].isna()
    if rows:
        bad |= pd.Series(table.index.isin(list(rows)), index=table.index)
    return bad


def prepare_summary(manifest: Manifest, out_csv: str | Path) -> str:
    """What :func:`prepare` wrote, for a terminal: counts per split, samples set aside, the
    problems by kind, and the split fingerprint."""
    from cardiobench.manifest import problems_path
    from cardiobench.problems import summarise

    lines = [f"{manifest.dataset}: {len(manifest)} samples -> {out_csv}"]
    lines += [f"  {split:5s} {c['samples']:6d} samples {c['patients']:6d} patients"
              for split, c in manifest.split_counts().items()]
    if len(manifest.excluded):
        counts = ", ".join(f"{k} {v}" for k, v in manifest.excluded_counts().items())
        lines.append(f"  {len(manifest.excluded)} unusable sample(s) set aside ({counts}): a "
                     "subset of the published split")
    lines += [f"  {line}" for line in summarise(manifest.problems)]
    if manifest.problems:
        lines.append(f"  full list: {problems_path(out_csv)}")
    lines.append(f"  split fingerprint {manifest.fingerprint}")
    return "\n".join(lines)
