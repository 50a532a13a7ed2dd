"""Harmonisers: each dataset's native download layout → a :class:`~cardiobench.manifest.Manifest`.

One module per dataset registers a function ``harmonise(raw_root: Path) -> Manifest`` with
:func:`register_dataset`; which module serves which dataset is read from
:mod:`cardiobench.datasets`. A harmoniser reads the dataset's own files exactly as downloaded,
assigns the published split, records non-fatal findings in ``Manifest.problems`` (severity
``warning``) and raises :class:`~cardiobench.manifest.ManifestError` naming the rows on anything
that would corrupt a benchmark.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

from cardiobench.manifest import Manifest, ManifestError, check

log = logging.getLogger(__name__)

Harmoniser = Callable[[Path], Manifest]
_HARMONISERS: dict[str, Harmoniser] = {}


def register_dataset(name: str) -> Callable[[Harmoniser], Harmoniser]:
    """Decorator registering ``harmonise(raw_root) -> Manifest`` under a dataset name."""

    def deco(fn: Harmoniser) -> Harmoniser:
        _HARMONISERS[name] = fn
        return fn

    return deco


def forget_harmoniser(name: str) -> None:
    """Drop a registered harmoniser (:func:`cardiobench.datasets.unregister` calls this)."""
    _HARMONISERS.pop(name, None)


def datasets() -> list[str]:
    """Every registered dataset (:mod:`cardiobench.datasets`)."""
    from cardiobench.datasets import dataset_names

    return dataset_names()


def get_harmoniser(name: str) -> Harmoniser:
    """The harmoniser for ``name``; unknown names list the known ones."""
    from cardiobench.datasets import get_dataset

    dataset = get_dataset(name)
    if name not in _HARMONISERS:
        dataset.load_harmoniser()
    if name not in _HARMONISERS:
        raise KeyError(f"dataset {name!r}: module {dataset.harmoniser} registered no harmoniser "
                       f"under that name")
    return _HARMONISERS[name]


def prepare(name: str, raw_root: str | Path, out_csv: str | Path | None = None,
            check_files: bool = True) -> Manifest:
    """Harmonise ``raw_root``, validate (raising on errors), and write the manifest if asked."""
    raw_root = Path(raw_root)
    if not raw_root.exists():
        raise ManifestError(f"{name}: raw folder {raw_root} does not exist")
    manifest = get_harmoniser(name)(raw_root)
    check(manifest, check_files=check_files)
    for p in manifest.problems:
        log.warning("%s: %s", name, p)
    if out_csv is not None:
        manifest.write(out_csv)
    return manifest
