"""Matplotlib figures from a results folder (Agg backend, no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (backend must be chosen first)

from cardiobench.atomic import atomic_path  # noqa: E402
from cardiobench.report.leaderboard import headline_of  # noqa: E402
from cardiobench.results import Result, load_results  # noqa: E402


def forest_plot(results: list[Result], task: str, out: str | Path) -> Path:
    """Headline metric with its 95 % interval for every (encoder, protocol) on ``task``."""
    rows = [r for r in results if r.task == task and r.status == "ok"]
    if not rows:
        raise ValueError(f"no ok results for task {task!r}")
    h = headline_of(rows[0])
    rows = [r for r in rows if r.metrics.get(h, {}).get("value") is not None]
    labels = [f"{r.encoder_name} / {r.protocol}" for r in rows]
    vals = [r.metrics[h]["value"] for r in rows]
    lo = [r.metrics[h].get("ci_low") for r in rows]
    hi = [r.metrics[h].get("ci_high") for r in rows]
    err = [[v - (a if a is not None else v) for v, a in zip(vals, lo)],
           [(b if b is not None else v) - v for v, b in zip(vals, hi)]]
    fig, ax = plt.subplots(figsize=(6, 0.4 * len(rows) + 1.2))
    ax.errorbar(vals, range(len(rows)), xerr=err, fmt="o", capsize=3)
    ax.set_yticks(range(len(rows)), labels)
    ax.set_xlabel(f"{h} (95 % patient-bootstrap CI)")
    ax.set_title(task)
    fig.tight_layout()
    out = Path(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format=out.suffix.lstrip(".") or "png", dpi=120)
    plt.close(fig)
    return out


def plot_all(results_dir: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """One forest plot per task under ``<out_dir or results_dir>/plots/``."""
    results = load_results(results_dir)
    out_dir = Path(out_dir) if out_dir else Path(results_dir) / "plots"
    paths = []
    for task in sorted({r.task for r in results if r.status == "ok"}):
        paths.append(forest_plot(results, task, out_dir / f"{task.replace('/', '__')}.png"))
    return paths
