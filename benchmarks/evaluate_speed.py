"""Vectorised patient bootstrap vs a per-replicate loop calling scikit-learn/scipy.

Both use the same draws (seed 42, 1000 replicates over patients) and must give equal intervals;
prints the median of repeated timings for each and their ratio.

    python benchmarks/evaluate_speed.py [--n-patients 600] [--per 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path
from functools import partial

import numpy as np

from cardiobench import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import oracles  # noqa: E402  (the sklearn/scipy oracles live beside the tests)

log = logging.getLogger("evaluate_speed")


def _time(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    """Run the comparison for regression and binary metric sets."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-patients", type=int, default=600)
    ap.add_argument("--per", type=int, default=2, help="rows per patient")
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    rng = np.random.default_rng(0)
    pid = np.repeat(np.arange(args.n_patients), args.per).astype(str)
    n = len(pid)
    y = rng.normal(50, 10, n)
    p = y + rng.normal(0, 6, n)
    yb = (rng.random(n) < 0.3).astype(int)
    prob = np.clip(0.4 * yb + rng.uniform(0, 0.6, n), 0, 1)
    hard = (prob > 0.5).astype(int)

    cases = {
        "regression": (partial(stats.regression_metrics, y, p),
                       lambda i: oracles.regression_metrics_sklearn(y[i], p[i])),
        "binary": (partial(stats.binary_metrics, yb, hard, prob),
                   lambda i: oracles.binary_metrics_sklearn(yb[i], hard[i], prob[i])),
    }
    log.info("rows %d, patients %d, replicates %d, repeats %d", n, args.n_patients, args.n_boot,
             args.repeats)
    for name, (vec_fn, loop_fn) in cases.items():
        tv, rv = _time(lambda: stats.bootstrap_metrics(vec_fn, n, pid, args.n_boot), args.repeats)
        tl, rl = _time(lambda: oracles.bootstrap_metrics_loop(loop_fn, n, pid, args.n_boot),
                       max(1, args.repeats // 2))
        worst = max(abs(getattr(rv[k], f) - getattr(rl[k], f))
                    for k in rv for f in ("value", "ci_low", "ci_high", "mean"))
        log.info("%-10s vectorised %.3f s | sklearn loop %.3f s | speed-up %.0fx | "
                 "max |difference| %.2e", name, tv, tl, tl / tv, worst)


if __name__ == "__main__":
    main()
