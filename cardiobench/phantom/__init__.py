"""The phantom suite: miniature copies of every dataset in its exact native layout.

:func:`generate` writes one dataset's phantom download; :func:`generate_suite` writes them all.
The pictures come from :mod:`cardiobench.phantom.heart`.
"""

from __future__ import annotations

from cardiobench.phantom.layouts import SCALES, Scale
from cardiobench.phantom.layouts import write_layout as generate
from cardiobench.phantom.suite import generate_suite

__all__ = ["SCALES", "Scale", "generate", "generate_suite"]
