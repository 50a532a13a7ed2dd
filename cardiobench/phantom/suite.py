"""Write the whole phantom suite: every registered layout under ``root/<folder>/``.

Ground truth goes to ``root/_truth/<layout>.csv``, outside the raw roots, so each raw root holds
exactly the files of the native download and nothing else.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable

from cardiobench.atomic import atomic_write_text
from cardiobench.phantom.layouts import LAYOUT_MODULES, Scale, get_layout, write_layout

log = logging.getLogger(__name__)

TRUTH_FOLDER = "_truth"


def generate_suite(root: str | Path, scale: str | Scale = "tiny", seed: int = 0,
                   datasets: Iterable[str] | None = None) -> dict[str, Path]:
    """Write every (or each named) layout under ``root``; return ``{layout: raw root}``.

    A layout whose module does not exist yet is skipped with a logged warning; an unknown name
    in ``datasets`` raises ``KeyError``. Each layout gets its own seed offset so that adding a
    layout does not change the others.
    """
    root = Path(root)
    names = list(LAYOUT_MODULES) if datasets is None else list(datasets)
    out: dict[str, Path] = {}
    for k, name in enumerate(names):
        if name not in LAYOUT_MODULES:
            raise KeyError(f"unknown phantom layout {name!r}; known: {', '.join(LAYOUT_MODULES)}")
        try:
            _, folder = get_layout(name)
        except ModuleNotFoundError as exc:
            if exc.name != f"cardiobench.phantom.layouts.{LAYOUT_MODULES[name]}":
                raise  # a real import error inside an existing layout module
            log.warning("phantom layout %r is not implemented yet (%s); skipped", name, exc)
            continue
        raw = root / folder
        layout_seed = seed * 1000 + sorted(LAYOUT_MODULES).index(name)
        truth = write_layout(name, raw, scale=scale, seed=layout_seed)
        atomic_write_text(root / TRUTH_FOLDER / f"{name}.csv", truth.to_csv(index=False))
        log.info("phantom %s: %d samples under %s", name, len(truth), raw)
        out[name] = raw
    return out
