"""Write the whole phantom suite: every registered layout under ``root/<folder>/``.

Ground truth goes to ``root/_truth/<layout>.csv``, outside the raw roots, so each raw root holds
exactly the files of the native download and nothing else.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable

from cardiobench.atomic import atomic_write_text
from cardiobench.phantom.layouts import Scale, get_layout, write_layout
from cardiobench.phantom.layouts.common import layout_seed

log = logging.getLogger(__name__)

TRUTH_FOLDER = "_truth"


def generate_suite(root: str | Path, scale: str | Scale = "tiny", seed: int = 0,
                   datasets: Iterable[str] | None = None) -> dict[str, Path]:
    """Write every (or each named) layout under ``root``; return ``{layout: raw root}``.

    An unknown name in ``datasets`` raises ``KeyError``. Each layout's seed is
    :func:`~cardiobench.phantom.layouts.common.layout_seed` of its name, so adding a layout does
    not change the others.
    """
    from cardiobench.datasets import layouts

    root = Path(root)
    names = list(layouts()) if datasets is None else list(datasets)
    out: dict[str, Path] = {}
    for name in names:
        _, folder = get_layout(name)
        raw = root / folder
        truth = write_layout(name, raw, scale=scale, seed=layout_seed(seed, name))
        atomic_write_text(root / TRUTH_FOLDER / f"{name}.csv", truth.to_csv(index=False))
        log.info("phantom %s: %d samples under %s", name, len(truth), raw)
        out[name] = raw
    return out
