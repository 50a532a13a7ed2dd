"""Text–vision alignment analyses and representation similarity.

* **EF text axis** — ``u`` = first principal component of the L2-normalised EF prompt
  embeddings (one per EF value, templates averaged then re-normalised), sign-fixed so that the
  projection of the prompts correlates positively with their EF. Each L2-normalised clip
  embedding is projected on ``u`` (:func:`project`); the alignment scorer reports Pearson r,
  Spearman ρ and R² of the least-squares line of projection on true EF (all ×100, with
  bootstrap intervals: :func:`cardiobench.stats.correlation_metrics`).
* **Binary prompt direction** — ``u = normalise(mean(positive prompts) − mean(negative
  prompts))`` (:func:`binary_direction`); margin = clip·u; the scorer reports the mean margin
  per class, AUROC and the standardised mean difference ``(μ₁ − μ₀) / s_pooled`` (pooled sample
  std; :func:`cardiobench.stats.separation_metrics`).
* **Linear CKA** between two encoders' embeddings of the same samples (Kornblith et al. 2019):
  centre columns, ``‖YᵀX‖²_F / (‖XᵀX‖_F ‖YᵀY‖_F)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from cardiobench.protocols.config_schema import Field
from cardiobench.protocols.runners import NotApplicable, Protocol, RowData
from cardiobench.protocols.zero_shot import ZeroShot

if TYPE_CHECKING:  # pragma: no cover
    from cardiobench.embed.embeddings import Embeddings


def _l2(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(n > 0, n, 1.0)


def ef_text_axis(text: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Unit EF axis from prompt embeddings ``(P, D)`` and their EF values ``(P,)``.

    Prompts sharing a value (several templates) are averaged and re-normalised first.
    """
    values = np.asarray(values, dtype=np.float64)
    uniq = np.unique(values)
    per_value = _l2(np.stack([_l2(text)[values == v].mean(axis=0) for v in uniq]))
    centred = per_value - per_value.mean(axis=0)
    u = np.linalg.svd(centred, full_matrices=False)[2][0]
    if np.corrcoef(per_value @ u, uniq)[0, 1] < 0:
        u = -u
    return u


def project(clip: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """Per-sample score: each L2-normalised clip embedding projected on the unit ``axis``."""
    return _l2(clip) @ axis


def binary_direction(text: np.ndarray, is_positive: np.ndarray) -> np.ndarray:
    """Unit prompt direction ``normalise(mean(positive prompts) − mean(negative prompts))``."""
    t = _l2(text)
    pos = np.asarray(is_positive, dtype=bool)
    return _l2(t[pos].mean(axis=0) - t[~pos].mean(axis=0))


def linear_cka(X: np.ndarray, Y: np.ndarray) -> float:
    """Linear CKA between ``X (n, d1)`` and ``Y (n, d2)`` (rows = the same samples)."""
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    if len(X) != len(Y):
        raise ValueError(f"CKA needs the same samples: {len(X)} vs {len(Y)} rows")
    X = X - X.mean(axis=0)
    Y = Y - Y.mean(axis=0)
    hsic = np.linalg.norm(Y.T @ X) ** 2
    return float(hsic / (np.linalg.norm(X.T @ X) * np.linalg.norm(Y.T @ Y)))


def cka_between(a: "Embeddings", b: "Embeddings", sample_ids: "np.ndarray | list[str]"
                ) -> tuple[float, int]:
    """Linear CKA of two encoders' clip vectors over the ``sample_ids`` both have embedded.

    Returns ``(cka, n)``; samples missing from either cache are left out of both.
    """
    ids = np.asarray(sample_ids, dtype=str)
    pa, pb = a.align(ids), b.align(ids)
    keep = (pa >= 0) & (pb >= 0)
    if keep.sum() < 3:
        raise ValueError(f"only {int(keep.sum())} samples are embedded by both encoders")
    return linear_cka(a.clip[pa[keep]], b.clip[pb[keep]]), int(keep.sum())


# ----------------------------------------------------------------------------- the protocol
class Alignment(ZeroShot):
    """How the video space lines up with the text space; scores, not predictions.

    Regression: projection on the first principal axis of the value prompts; binary: margin on
    the normalised positive−negative prompt direction; multiclass: cosine similarity to each
    class's prompt centroid (the queries of text→video retrieval). Each is the task type's
    ``text_direction`` and ``alignment_scores``.
    """

    name = "alignment"
    definition = ("Alignment: how the video embeddings line up with the text tower's prompt "
                  "directions (correlation with the label, margin separation, text→video "
                  "recall).")
    order = 40
    defaults = {"prompt_dir": None, "ks": [1, 5, 10]}
    fields = {"prompt_dir": Field("path", nullable=True), "ks": Field("ints", low=1)}
    output = "alignment"

    def fit(self, data: RowData) -> None:
        """Build the text direction(s) from the prompts; no labels are used."""
        task = data.task
        self._prompts(task, NotApplicable)
        self.direction, self.record["analysis"] = task.type.text_direction(task, self.text,
                                                                            self.targets)

    def predict(self, data: RowData) -> np.ndarray:
        """Score per row (regression, binary) or ``(n, C)`` similarity to each class query."""
        return data.task.type.alignment_scores(self.direction, data.X)


PROTOCOL = Protocol.of(Alignment)
