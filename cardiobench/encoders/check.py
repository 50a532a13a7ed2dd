"""``check_encoder``: run any encoder on synthetic inputs shaped by its InputSpec and report.

Composable on purpose: :func:`synthetic_batch` makes the input, :func:`check_encoder` returns a
plain dict of measured facts (dims, finiteness, norms, determinism, text/image agreement, speed),
so a caller can add suite runs or probes and decide what counts as a failure.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import torch

from cardiobench.encoders.base import Encoder
from cardiobench.transforms import preprocess

log = logging.getLogger(__name__)

PROBE_TEXTS = ("the left ventricular ejection fraction is 55%", "severe dilated left ventricle")


def synthetic_batch(encoder: Encoder, n: int, *, height: int = 96, width: int = 128,
                    seed: int = 0) -> torch.Tensor:
    """A deterministic model-ready batch for ``encoder``: uint8 noise frames run through
    :func:`cardiobench.transforms.preprocess` with the encoder's spec.

    Image encoders: ``(n, 3, R, R)``; video encoders: ``(n, T, 3, R, R)`` with ``T`` the spec's
    ``sampling.n_frames``. Frames are non-square on purpose so cropping is exercised.
    """
    g = torch.Generator().manual_seed(seed)
    spec = encoder.spec
    t = spec.sampling.n_frames if spec.kind == "video" else 1
    raw = torch.randint(0, 256, (n * t, 3, height, width), dtype=torch.uint8, generator=g)
    x = preprocess(raw, spec)
    return x.reshape(n, t, *x.shape[1:]) if spec.kind == "video" else x


def _encode(encoder: Encoder, x: torch.Tensor) -> torch.Tensor:
    fn = encoder.encode_clips if encoder.spec.kind == "video" else encoder.encode_frames
    return fn(x).detach().float().cpu()


def check_encoder(encoder: Encoder, *, n: int = 8, inputs: torch.Tensor | None = None,
                  texts: tuple[str, ...] = PROBE_TEXTS, atol: float = 1e-5) -> dict[str, Any]:
    """Run ``encoder`` twice on ``n`` synthetic samples (or ``inputs``) and report measured facts.

    Keys: ``name``, ``kind``, ``input_shape``, ``output_shape``, ``embed_dim``, ``dim_ok``,
    ``finite``, ``norm_min`` / ``norm_max``, ``unit_norm`` (None where the encoder does not
    normalise), ``deterministic`` (max abs difference of two runs ≤ ``atol``), ``max_abs_diff``,
    ``has_text``, ``text_shape``, ``text_dim_ok`` (None without a text tower), ``text_unit_norm``,
    ``logit_scale``, ``logit_bias``, ``samples_per_s`` and ``frames_per_s``, ``ok`` (all checks).
    """
    x = inputs if inputs is not None else synthetic_batch(encoder, n)
    t0 = time.perf_counter()
    out = _encode(encoder, x)
    elapsed = time.perf_counter() - t0
    again = _encode(encoder, x)
    frames = x.shape[0] * (x.shape[1] if x.ndim == 5 else 1)
    norms = out.norm(dim=-1)
    diff = float((out - again).abs().max()) if out.numel() else 0.0
    report: dict[str, Any] = {
        "name": encoder.name, "kind": encoder.spec.kind, "input_shape": list(x.shape),
        "output_shape": list(out.shape), "embed_dim": encoder.embed_dim,
        "dim_ok": out.ndim == 2 and out.shape == (x.shape[0], encoder.embed_dim),
        "finite": bool(torch.isfinite(out).all()),
        "norm_min": float(norms.min()), "norm_max": float(norms.max()),
        "unit_norm": bool(torch.allclose(norms, torch.ones_like(norms), atol=1e-3))
        if encoder.normalized else None,
        "deterministic": diff <= atol, "max_abs_diff": diff,
        "has_text": encoder.has_text, "text_shape": None, "text_dim_ok": None, "text_unit_norm": None,
        "logit_scale": encoder.logit_scale, "logit_bias": encoder.logit_bias,
        "samples_per_s": x.shape[0] / elapsed if elapsed > 0 else float("inf"),
        "frames_per_s": frames / elapsed if elapsed > 0 else float("inf"),
    }
    if encoder.has_text:
        txt = encoder.encode_text(list(texts)).detach().float().cpu()
        report["text_shape"] = list(txt.shape)
        report["text_dim_ok"] = txt.shape == (len(texts), out.shape[-1])
        tn = txt.norm(dim=-1)
        report["text_unit_norm"] = bool(torch.allclose(tn, torch.ones_like(tn), atol=1e-3))
    checks = [report["dim_ok"], report["finite"], report["deterministic"],
              report["unit_norm"] is not False, report["text_dim_ok"] is not False,
              report["text_unit_norm"] is not False]
    report["ok"] = all(checks)
    log.info("check_encoder %s: ok=%s dim=%s %.1f frames/s", encoder.name, report["ok"],
             report["output_shape"], report["frames_per_s"])
    return report


def check_verdict(report: dict[str, Any]) -> tuple[bool, str]:
    """Whether a ``check-encoder`` report is clean, and the one line that says so (the phantom
    probe's MAE against the mean predictor when the report has the phantom part)."""
    ph = report.get("phantom")
    if ph is None:
        return bool(report["ok"]), ("OK" if report["ok"] else "PROBLEMS FOUND") + \
            " (quick: phantom probe skipped)"
    ok = bool(report.get("ok")) and ph["failed"] == 0 and ph["clip_finite"]
    return ok, (f"{'OK' if ok else 'PROBLEMS FOUND'}; phantom EF probe MAE "
                f"{ph['probe_mae'].get('value', float('nan')):.2f} vs mean predictor "
                f"{ph['mean_predictor_mae'].get('value', float('nan')):.2f}")
