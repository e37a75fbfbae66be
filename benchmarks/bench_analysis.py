"""Benchmark: plateau split and dQ/dV on a 1,000,000-point discharge curve.

Run ``python benchmarks/bench_analysis.py``; prints times and the ratio to the 0.3 s target.
"""

from __future__ import annotations

import time

import numpy as np

from analysis.dqdv import dqdv
from analysis.plateaus import discharge_plateaus, plateau_capacities
from analysis.synthetic import DISCHARGE_Q, DISCHARGE_V, standard_cycle, synthetic_run

N = 1_000_000
TARGET_S = 0.3


def best_of(fn, repeats: int = 3) -> float:
    """Best wall time of a few calls (s)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    """Time the curve analyses and print the figures."""
    rng = np.random.default_rng(0)
    q = np.linspace(0.0, DISCHARGE_Q[-1], N)
    v = np.interp(q, DISCHARGE_Q, DISCHARGE_V) + rng.normal(0.0, 0.002, N)
    cap = -q

    t_plateau = best_of(lambda: plateau_capacities(v, cap))
    t_dqdv = best_of(lambda: dqdv(v, cap))
    total = t_plateau + t_dqdv
    res = plateau_capacities(v, cap)
    print(f"points: {N:,}")
    print(f"plateau split: {t_plateau * 1e3:7.1f} ms  (Ni {res['ni_plateau_mAh_g']:.2f}, "
          f"O {res['o_plateau_mAh_g']:.2f} mAh/g)")  # fmt: skip
    print(f"dQ/dV:         {t_dqdv * 1e3:7.1f} ms")
    print(
        f"together:      {total * 1e3:7.1f} ms  target {TARGET_S * 1e3:.0f} ms  ratio {total / TARGET_S:.2f}"
    )

    # the whole-run path (segmentation + per-cycle plateaus) on a 1,000,000-point run table
    per_step = N // 4
    df = synthetic_run(standard_cycle(n=per_step) + standard_cycle(n=per_step))
    t_run = best_of(lambda: discharge_plateaus(df), repeats=1)
    print(f"run table of {len(df):,} points, segmentation + per-cycle plateaus: {t_run * 1e3:.0f} ms "
          "(information, no target)")  # fmt: skip


if __name__ == "__main__":
    main()
