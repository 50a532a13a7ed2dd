"""Forest plots of a results folder (the per-task figure kinds live in
:mod:`cardiobench.report.figures`; the full report in :mod:`cardiobench.report.html`)."""

from __future__ import annotations

from pathlib import Path

from cardiobench.report.figures import forest
from cardiobench.report.leaderboard import headline_of
from cardiobench.results import Result, load_results


def forest_plot(results: list[Result], task: str, out: str | Path) -> Path:
    """Headline metric with its 95 % interval for every (encoder, protocol) on ``task``."""
    rows = [r for r in results if r.task == task and r.status == "ok"]
    if not rows:
        raise ValueError(f"no ok results for task {task!r}")
    return forest(rows, headline_of(rows[0]), task, out)


def plot_all(results_dir: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """One forest plot per task under ``<out_dir or results_dir>/plots/``."""
    results = load_results(results_dir)
    out_dir = Path(out_dir) if out_dir else Path(results_dir) / "plots"
    paths = []
    for task in sorted({r.task for r in results if r.status == "ok"}):
        paths.append(forest_plot(results, task, out_dir / f"{task.replace('/', '__')}.png"))
    return paths
