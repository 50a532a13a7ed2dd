"""Write the whole phantom suite: every registered layout under ``root/<folder>/``.

Ground truth goes to ``root/_truth/<layout>.csv``, outside the raw roots, so each raw root holds
exactly the files of the native download and nothing else. ``root`` is marked with
:data:`MARKER`; a non-empty ``root`` without it (a real download, say) is refused.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable

from cardiobench.atomic import atomic_write_text, claim_folder
from cardiobench.phantom.layouts import PhantomLayout, Scale, write_layout
from cardiobench.phantom.layouts.common import layout_seed

log = logging.getLogger(__name__)

TRUTH_FOLDER = "_truth"
#: the file that marks a folder as written by the phantom generator
MARKER = ".cardiobench-phantom"


def generate_suite(root: str | Path, layouts: Iterable[PhantomLayout],
                   scale: str | Scale = "tiny", seed: int = 0) -> dict[str, Path]:
    """Write each layout under ``root/<layout.folder>``; return ``{layout name: raw root}``.

    A non-empty ``root`` the phantom did not write raises
    :class:`~cardiobench.atomic.OverwriteError`. Each layout's seed is
    :func:`~cardiobench.phantom.layouts.common.layout_seed` of its name, so adding a layout does
    not change the others.
    """
    root = Path(root)
    claim_folder(root, MARKER, "phantom")
    out: dict[str, Path] = {}
    for layout in layouts:
        raw = root / layout.folder
        truth = write_layout(layout, raw, scale=scale, seed=layout_seed(seed, layout.name))
        atomic_write_text(root / TRUTH_FOLDER / f"{layout.name}.csv", truth.to_csv(index=False))
        log.info("phantom %s: %d samples under %s", layout.name, len(truth), raw)
        out[layout.name] = raw
    return out
