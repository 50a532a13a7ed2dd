"""The in-memory form of one (dataset, encoder) embedding set, as protocols consume it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd


@dataclass
class Embeddings:
    """Cached embeddings of one dataset under one encoder fingerprint.

    ``clip[i]`` is the clip vector of ``sample_ids[i]`` (video encoders: the model's clip
    embedding; image encoders: the encoder's pooling of its frame embeddings). ``frames[i]`` holds
    that sample's per-frame embeddings ``(T_i, D)`` for image encoders and is ``None`` for video
    encoders. Samples that failed to decode are absent here and listed in ``failures``.
    """

    sample_ids: np.ndarray                     # (N,) str
    clip: np.ndarray                           # (N, Dc) float32
    frames: list[np.ndarray] | None = None     # per sample (T_i, D) float32, image encoders only
    encoder: dict[str, Any] = field(default_factory=dict)   # Encoder.describe()
    fingerprint: str = ""                      # cache key (encoder + sampling + dataset)
    failures: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["sample_id", "kind", "reason"]))

    def __post_init__(self) -> None:
        self.sample_ids = np.asarray(self.sample_ids, dtype=str)
        self.clip = np.asarray(self.clip, dtype=np.float32)
        if len(self.sample_ids) != len(self.clip):
            raise ValueError(f"{len(self.sample_ids)} sample_ids but {len(self.clip)} clip vectors")
        if self.frames is not None and len(self.frames) != len(self.clip):
            raise ValueError(f"{len(self.frames)} frame arrays but {len(self.clip)} clip vectors")

    def __len__(self) -> int:
        return len(self.sample_ids)

    def align(self, sample_ids: "np.ndarray | list[str] | pd.Series") -> np.ndarray:
        """Row positions of ``sample_ids`` in this set; -1 where a sample has no embedding."""
        pos = {s: i for i, s in enumerate(self.sample_ids)}
        return np.array([pos.get(str(s), -1) for s in sample_ids], dtype=np.int64)
