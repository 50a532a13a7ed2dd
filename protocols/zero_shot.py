"""Zero-shot prediction from text prompts: value grids, binary prompt sets, view prompt sets.

Definitions (recorded in every result's config):

* **Regression** (EF, LVIDd, IVSd, LVPWd). Prompts = templates × value grid; each prompt carries
  its value. For a frame with similarities ``S_t`` to the ``P`` prompts, the *ranked values* are
  the prompt values sorted by decreasing similarity; ``k = max(1, int(0.2·P))``; "median" is the
  **lower** median (as ``torch.median``). Two aggregation orders over frames:

  - ``rank_mean_then_median`` (default; EchoCLIP's published order): average the ranked-value
    lists over frames position by position, then the median of the first ``k``.
  - ``median_then_mean`` (the CardioBench reference): median of each frame's first ``k`` ranked
    values, then the mean over frames.

  Video encoders (no per-frame embeddings) use their clip embedding as a single frame, where the
  two orders coincide.
* **Binary**. ``s+``/``s−`` = mean cosine of the pooled (clip) embedding to the positive/negative
  prompts; ``p = softmax(logit_scale·[s+, s−] + logit_bias)[0] = σ(logit_scale·(s+ − s−))`` (a
  SigLIP bias cancels in the two-way softmax and is recorded only). Decision rules: ``argmax``
  (``p ≥ 0.5``, i.e. ``s+ ≥ s−``) and ``threshold`` (``p > t`` with ``t`` maximising F1 on the
  **train** units; see :func:`calibrate_threshold`).
* **View**. Class score = mean cosine to the class's prompts (six classes including ``Other``);
  probabilities = softmax(``logit_scale`` · scores).

Text embeddings are computed once per (encoder fingerprint, prompt-set hash) and cached in memory
and, optionally, on disk as ``.npy`` files (read with ``allow_pickle=False``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import yaml

from cardiobench.atomic import atomic_path
from cardiobench.protocols.config_schema import Field
from cardiobench.protocols.runners import (EvaluationError, NotApplicable, Protocol, RowData,
                                           Runner)

if TYPE_CHECKING:  # pragma: no cover
    from cardiobench.protocols.tasks import Task

log = logging.getLogger(__name__)

Order = Literal["rank_mean_then_median", "median_then_mean"]
ORDERS: tuple[str, ...] = ("rank_mean_then_median", "median_then_mean")
TOP_FRACTION = 0.2
DEFAULT_LOGIT_SCALE = 1.0  # used (and recorded) only when a text encoder exposes no temperature


@dataclass(frozen=True)
class PromptSet:
    """A prompt set: texts plus, per text, its value (regression) or class index.

    Binary sets use class 1 = positive, 0 = negative; ``classes`` names the class indices.
    """

    name: str
    kind: Literal["regression", "binary", "multiclass"]
    texts: tuple[str, ...]
    targets: tuple[float, ...]
    classes: tuple[str, ...] = ()

    @property
    def sha256(self) -> str:
        """Hash of kind, texts and targets: the text-embedding cache key part."""
        payload = json.dumps([self.kind, self.texts, self.targets, self.classes])
        return hashlib.sha256(payload.encode()).hexdigest()

    def record(self) -> dict[str, Any]:
        """Config entry for results (all prompts, so a result is self-describing)."""
        return {"name": self.name, "sha256": self.sha256, "n_prompts": len(self.texts),
                "texts": list(self.texts), "targets": list(self.targets),
                "classes": list(self.classes)}


def load_prompt_set(name: str, directory: str | Path | None = None) -> PromptSet:
    """Read ``protocols/prompts/<name>.yaml`` (or ``<directory>/<name>.yaml``)."""
    if directory is None:
        res = resources.files("cardiobench.protocols").joinpath("prompts", f"{name}.yaml")
        if not res.is_file():
            raise ValueError(f"no packaged prompt set {name!r}; packaged: " + ", ".join(sorted(
                p.name[:-5] for p in resources.files("cardiobench.protocols").joinpath(
                    "prompts").iterdir() if p.name.endswith(".yaml"))))
        text, where = res.read_text(), f"prompts/{name}.yaml"
    else:
        where = str(Path(directory) / f"{name}.yaml")
        text = Path(where).read_text()
    return parse_prompt_set(name, yaml.safe_load(text), where)


def parse_prompt_set(name: str, spec: Any, where: str) -> PromptSet:
    """A prompt set from its parsed form (a packaged YAML, or a cohort's inline prompts)."""
    if not isinstance(spec, dict):
        raise ValueError(f"{where}: a prompt set is a mapping with 'kind', got {spec!r}")
    kind = spec.get("kind")
    if kind == "regression":
        g = spec["grid"]
        n = int(round((g["stop"] - g["start"]) / g["step"])) + 1
        values = [round(g["start"] + i * g["step"], 6) for i in range(n)]
        texts, targets = [], []
        for tpl in spec["templates"]:
            for v in values:
                texts.append(tpl.format(value=g.get("format", "{}").format(v)))
                targets.append(float(v))
        return PromptSet(name, "regression", tuple(texts), tuple(targets))
    if kind == "binary":
        pos, neg = list(spec["positive"]), list(spec["negative"])
        return PromptSet(name, "binary", tuple(pos + neg), tuple([1.0] * len(pos) + [0.0] * len(neg)),
                         ("negative", "positive"))
    if kind == "multiclass":
        classes = tuple(spec["classes"])
        texts, targets = [], []
        for i, c in enumerate(classes):
            for t in spec["classes"][c]:
                texts.append(t)
                targets.append(float(i))
        return PromptSet(name, "multiclass", tuple(texts), tuple(targets), classes)
    raise ValueError(f"{where}: unknown prompt-set kind {kind!r}")


class TextEmbeddingCache:
    """Text embeddings per (encoder fingerprint, prompt-set hash), in memory and optionally on disk."""

    def __init__(self, directory: str | Path | None = None):
        self.directory = Path(directory) if directory else None
        self._mem: dict[tuple[str, str], np.ndarray] = {}
        self.computed = 0  # how many times the text tower actually ran (for tests and logs)

    def get(self, encoder: Any, prompts: PromptSet) -> np.ndarray:
        """``(P, D)`` L2-normalised float32 embeddings of ``prompts.texts`` under ``encoder``."""
        key = (encoder.fingerprint(), prompts.sha256)
        if key in self._mem:
            return self._mem[key]
        path = (self.directory / f"{key[0][:16]}_{key[1][:16]}.npy") if self.directory else None
        if path is not None and path.exists():
            emb = np.load(path, allow_pickle=False)
        else:
            import torch

            with torch.no_grad():
                emb = encoder.encode_text(list(prompts.texts)).detach().float().cpu().numpy()
            self.computed += 1
            if path is not None:
                with atomic_path(path) as tmp:
                    with open(tmp, "wb") as f:
                        np.save(f, emb, allow_pickle=False)
        emb = l2_normalize(np.asarray(emb, dtype=np.float32))
        self._mem[key] = emb
        return emb


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation (zero rows stay zero)."""
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(n > 0, n, 1.0)


def _lower_median(a: np.ndarray, axis: int = -1) -> np.ndarray:
    """Lower median along ``axis`` (torch.median semantics)."""
    s = np.sort(a, axis=axis)
    return np.take(s, (s.shape[axis] - 1) // 2, axis=axis)


def regression_from_similarity(sim: np.ndarray, values: np.ndarray,
                               order: Order = "rank_mean_then_median",
                               top_fraction: float = TOP_FRACTION) -> float:
    """One sample's value from its ``(T, P)`` frame-to-prompt similarities (module docstring)."""
    sim = np.atleast_2d(sim)
    values = np.asarray(values, dtype=np.float64)
    k = max(1, int(top_fraction * sim.shape[1]))
    ranked = values[np.argsort(-sim, axis=1, kind="stable")]  # (T, P)
    if order == "rank_mean_then_median":
        return float(_lower_median(ranked.mean(axis=0)[:k]))
    if order == "median_then_mean":
        return float(_lower_median(ranked[:, :k], axis=1).mean())
    raise ValueError(f"unknown aggregation order {order!r}; use one of {ORDERS}")


def predict_regression(frames: list[np.ndarray] | None, clip: np.ndarray, text: np.ndarray,
                       values: np.ndarray, order: Order = "rank_mean_then_median",
                       top_fraction: float = TOP_FRACTION) -> np.ndarray:
    """Zero-shot values for every sample (frames if available, else the clip vector)."""
    out = np.empty(len(clip))
    for i in range(len(clip)):
        v = l2_normalize(frames[i]) if frames is not None else l2_normalize(clip[i][None, :])
        out[i] = regression_from_similarity(v @ text.T, values, order, top_fraction)
    return out


def class_scores(clip: np.ndarray, text: np.ndarray, targets: np.ndarray, n_classes: int) -> np.ndarray:
    """``(N, n_classes)`` mean cosine between each clip vector and each class's prompts."""
    sim = l2_normalize(clip) @ text.T
    onehot = np.eye(n_classes)[np.asarray(targets).astype(int)]  # (P, C)
    return (sim @ onehot) / onehot.sum(axis=0)


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax, numerically stable."""
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def predict_binary(clip: np.ndarray, text: np.ndarray, targets: np.ndarray,
                   logit_scale: float) -> np.ndarray:
    """P(positive) = σ(logit_scale · (s+ − s−)) per sample."""
    s = class_scores(clip, text, targets, 2)  # column 0 negative, 1 positive
    return softmax(logit_scale * s)[:, 1]


def predict_view(clip: np.ndarray, text: np.ndarray, targets: np.ndarray, n_classes: int,
                 logit_scale: float) -> np.ndarray:
    """``(N, n_classes)`` softmax(logit_scale · class scores)."""
    return softmax(logit_scale * class_scores(clip, text, targets, n_classes))


def calibrate_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """Threshold maximising F1 (positive class) of ``score > t`` on the given (train) data.

    Candidates: ``min − 1e-6``, every unique score, ``max + 1e-6``, ascending; the first best
    wins (as the reference). Labels of other splits are never seen by this function.
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(int)
    cands = np.concatenate([[scores.min() - 1e-6], np.unique(scores), [scores.max() + 1e-6]])
    # F1 of "score > t" for every candidate at once: counts of scores strictly above t
    n_pos = int(labels.sum())
    tp = n_pos - np.searchsorted(np.sort(scores[labels == 1]), cands, side="right")
    pp = len(scores) - np.searchsorted(np.sort(scores), cands, side="right")
    den = n_pos + pp
    f1 = np.where(den > 0, 2.0 * tp / np.where(den > 0, den, 1), 0.0)
    return float(cands[int(np.argmax(f1))])  # argmax returns the first (lowest) best


# ----------------------------------------------------------------------------- the protocol
class ZeroShot(Runner):
    """Prompts scored against clip (or frame) vectors; needs a text tower (module docstring)."""

    name = "zero_shot"
    definition = ("Zero-shot: no training; text prompts embedded by the model's text tower "
                  "score each video (value grid for regression, class prompts for "
                  "classification).")
    order = 30
    defaults = {"order": "rank_mean_then_median", "top_fraction": TOP_FRACTION,
                "decision": "threshold", "prompt_dir": None}
    fields = {"order": Field("choice", choices=ORDERS),
              "top_fraction": Field("float", low=0.0, high=1.0, low_open=True),
              "decision": Field("choice", choices=("threshold", "argmax")),
              "prompt_dir": Field("path", nullable=True)}
    needs_text = True

    def _prompts(self, task: Task, missing: type[Exception]) -> None:
        """Load the task's prompt set and its (cached) text embeddings."""
        if task.prompt_set is None:  # a cohort task may declare no prompts: nothing to score
            raise NotApplicable(f"{task.name} declares no prompt set")
        prompts = (parse_prompt_set(task.prompt_set, task.prompt_spec, f"{task.name} prompts")
                   if task.prompt_spec else load_prompt_set(task.prompt_set, self.cfg["prompt_dir"]))
        try:
            task.type.check_prompts(task, prompts)
        except ValueError as exc:
            raise missing(str(exc)) from None
        text = (self.text_cache or TextEmbeddingCache()).get(self.encoder, prompts)
        self.prompts, self.text = task.type.prompts_for(task, prompts, text)
        self.targets = np.asarray(self.prompts.targets)
        self.record = {"prompts": self.prompts.record()}

    def fit(self, data: RowData) -> None:
        """No labels are used: the prompts and the encoder's logit scale define the model."""
        task = data.task
        self._prompts(task, EvaluationError)
        scale = getattr(self.encoder, "logit_scale", None)
        self.record.update({"logit_scale": scale,
                            "logit_bias": getattr(self.encoder, "logit_bias", None),
                            "logit_scale_used": scale if scale is not None else
                            DEFAULT_LOGIT_SCALE})

    def predict(self, data: RowData) -> np.ndarray:
        """Zero-shot value, P(positive) or class probabilities for every row."""
        emb = data.embeddings
        frames = [emb.frames[i] for i in data.pos] if emb.frames is not None else None
        return data.task.type.zero_shot(data.task, self.prompts, self.text, data.X, frames,
                                        self.record["logit_scale_used"], self.cfg, self.record)


PROTOCOL = Protocol.of(ZeroShot)
