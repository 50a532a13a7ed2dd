"""The whole job as library calls: raw downloads → manifests → embeddings → results.

The CLI's ``demo`` and ``run`` commands are thin wrappers over these functions.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from cardiobench.datasets import layout_datasets
from cardiobench.embed import Embeddings, load_or_extract
from cardiobench.encoders import Encoder
from cardiobench.manifest import Manifest, ManifestError
from cardiobench.preprocessing import prepare

log = logging.getLogger(__name__)


@dataclass
class PreparedSuite:
    """Manifests that were prepared, and the datasets that failed with their reasons."""

    manifests: dict[str, Manifest] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


def prepare_all(raw_roots: dict[str, Path], manifest_dir: str | Path) -> PreparedSuite:
    """Harmonise every layout in ``raw_roots``; a dataset that fails is reported, not fatal."""
    out = PreparedSuite()
    manifest_dir = Path(manifest_dir)
    for layout, raw in raw_roots.items():
        try:
            names = layout_datasets(layout)
        except KeyError as exc:
            log.error("prepare %s failed: %s", layout, exc)
            out.failed[layout] = str(exc)
            continue
        for dataset in names:
            try:
                out.manifests[dataset] = prepare(dataset, raw, manifest_dir / f"{dataset}.csv")
            except (ManifestError, KeyError, ImportError, FileNotFoundError) as exc:
                log.error("prepare %s failed: %s", dataset, exc)
                out.failed[dataset] = str(exc)
    return out


def embed_all(manifests: dict[str, Manifest], encoder: Encoder, cache_root: str | Path,
              **kwargs: Any) -> dict[str, Embeddings]:
    """Embeddings for every manifest, extracting only what is not cached yet."""
    return {name: load_or_extract(m, encoder, cache_root, **kwargs)
            for name, m in manifests.items()}


def generate_phantom(root: str | Path, scale: str = "demo", seed: int = 0,
                     layouts: Iterable[str] | None = None) -> dict[str, Path]:
    """Write the phantom suite (every registered layout) and return ``{layout: raw root}``."""
    from cardiobench.phantom import generate_suite

    return generate_suite(Path(root), scale=scale, seed=seed,
                          datasets=list(layouts) if layouts is not None else None)


def check_on_phantom(encoder: Encoder, workdir: str | Path, seed: int = 0) -> dict[str, Any]:
    """Run ``encoder`` through the ``tiny`` EchoNet-Dynamic phantom and a quick EF probe.

    Returns what a user wants to know before spending GPU hours: samples that failed to decode,
    clip-vector dimension and finiteness, extraction throughput, and the linear probe's test MAE
    against the train+val mean predictor (with 95 % patient-bootstrap intervals).
    """
    import time

    import numpy as np

    from cardiobench.protocols.evaluate import evaluate

    workdir = Path(workdir)
    roots = generate_phantom(workdir / "raw", scale="tiny", seed=seed, layouts=["echonet_dynamic"])
    manifest = prepare("echonet_dynamic", roots["echonet_dynamic"])
    t0 = time.perf_counter()
    emb = load_or_extract(manifest, encoder, workdir / "cache", progress=False)
    seconds = time.perf_counter() - t0
    res = evaluate("echonet_dynamic/ef", "linear_probe", manifest, emb, encoder)
    mae = res.metrics.get("mae", {})
    base = (res.baseline or {}).get("mae", {})
    return {"phantom_samples": len(manifest), "embedded": len(emb),
            "failed": len(emb.failures), "clip_dim": int(emb.clip.shape[1]),
            "clip_finite": bool(np.isfinite(emb.clip).all()),
            "extract_samples_per_s": len(manifest) / seconds if seconds else float("nan"),
            "probe_mae": mae, "mean_predictor_mae": base,
            "probe_beats_mean": bool(mae and base and mae.get("value", np.inf) < base.get("value", 0))}
