"""CardiacNet ASD and PAH (A4C NIfTI videos), as unzipped from Kaggle.

Layout (raw root = the ``CardiacNet`` folder)::

    CardiacNet-ASD/{ASD,Non-ASD}/NNN_image.nii/<stem>_image.nii   case wrapped in a directory
    CardiacNet-ASD/Non-ASD/111_image.nii/PHI01.nii                  (its name need not say image)
    CardiacNet-PAH/{PAH,Non-PAH}/NNN_image.nii                      or a plain file
    .../NNN_label.nii, .../NNN_label.nii/PHI01.nii                  masks, skipped

**Masks.** A file is a mask, never a video, when its own name or any folder between the class
folder and it mentions ``label`` (case-insensitive): the downloads wrap masks like videos, in
``NNN_label.nii/`` folders, and inside them keep the video's file name (``PHI01.nii``).

Label = class folder (disease 1, ``Non-`` 0). ``sample_id`` = the published ``unique_id`` =
``parent + "_" + stem`` (parent = case folder without ``.nii``, or the class folder for plain
files; stem = file name without ``_image.nii``/``.nii``). ``patient_id`` follows the reference's
heuristic (Appendix A): the file stem, collapsed to ``patient-<n>`` when it starts ``patient-``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path, PurePosixPath

import pandas as pd

from cardiobench.manifest import Manifest, ManifestError
from cardiobench.splits import SplitSpec, stratified_patient_split

log = logging.getLogger(__name__)

#: dataset → (subset folder, disease folder, normal folder, label column)
SUBSETS: dict[str, tuple[str, str, str, str]] = {
    "cardiacnet_asd": ("CardiacNet-ASD", "ASD", "Non-ASD", "asd"),
    "cardiacnet_pah": ("CardiacNet-PAH", "PAH", "Non-PAH", "pah"),
}


def patient_from_stem(stem: str) -> str:
    """The reference's patient heuristic: ``patient-2-4_image`` → ``patient-2``, else the stem."""
    if stem.startswith("patient-"):
        return "-".join(stem.split("-")[:2])
    return stem


def unique_id(rel: PurePosixPath) -> str:
    """Published ``unique_id`` of a case path relative to its class folder's parent."""
    name = rel.name
    parent = rel.parent.name
    parent = parent[: -len(".nii")] if parent.lower().endswith(".nii") else parent
    for suffix in ("_image.nii.gz", "_image.nii", ".nii.gz", ".nii"):
        if name.lower().endswith(suffix):  # ".NII" too: extensions in any letter case
            name = name[: -len(suffix)]
            break
    return f"{parent}_{name}"


def is_mask(rel: PurePosixPath) -> bool:
    """True for a mask: ``label`` in the file's name or in any folder of ``rel`` (the path below
    the class folder), whatever the file itself is called."""
    return any("label" in part.lower() for part in rel.parts)


def _walk_cases(class_dir: Path) -> list[Path]:
    """NIfTI files under ``class_dir`` (recursively) that are not masks (:func:`is_mask`)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(class_dir):
        # a mask folder is not entered at all, whatever its files are called
        dirnames[:] = sorted(d for d in dirnames if "label" not in d.lower())
        for f in sorted(filenames):
            path = Path(dirpath) / f
            rel = PurePosixPath(path.relative_to(class_dir).as_posix())
            if f.lower().endswith((".nii", ".nii.gz")) and not is_mask(rel):
                found.append(path)
    return found


def scan(raw_root: Path, dataset: str) -> pd.DataFrame:
    """Rows ``path, <label>, patient_id, sample_id`` for one subset, sorted by path."""
    subset, disease, normal, label = SUBSETS[dataset]
    rows = []
    for folder, y in ((disease, 1), (normal, 0)):
        class_dir = raw_root / subset / folder
        if not class_dir.is_dir():
            raise ManifestError(f"{dataset}: class folder {class_dir} does not exist (expected "
                                f"{subset}/{{{disease},{normal}}} under {raw_root})")
        for f in _walk_cases(class_dir):
            rel = PurePosixPath(f.relative_to(raw_root).as_posix())
            # the reference's stem drops only the last suffix (".nii.gz" keeps ".nii")
            rows.append({"path": str(rel), label: y, "patient_id": patient_from_stem(f.stem),
                         "sample_id": unique_id(rel)})
    if not rows:
        raise ManifestError(f"{dataset}: no .nii/.nii.gz videos under {raw_root / subset}")
    return pd.DataFrame(rows).sort_values("path", kind="stable").reset_index(drop=True)


def harmonise(raw_root: Path, spec: SplitSpec) -> Manifest:
    """CardiacNet raw root → the manifest of ``spec.dataset`` (``cardiacnet_asd`` or
    ``cardiacnet_pah``: one download, two datasets)."""
    raw_root = Path(raw_root)
    dataset = spec.dataset
    label = SUBSETS[dataset][3]
    table = scan(raw_root, dataset)
    p = spec.params
    table["split"] = stratified_patient_split(table, label, test_size=float(p["test_size"]),
                                              val_size=float(p["val_size"]), seed=int(p["seed"]))
    table["view"] = "A4C"
    table["key_frame"] = 0
    log.info("%s: %d videos, %d patients", dataset, len(table), table["patient_id"].nunique())
    return Manifest(dataset=dataset, table=table, root=str(raw_root),
                    split_rule={"rule": spec.rule, **p}, source={"subset": SUBSETS[dataset][0]})

