"""Benchmark: 1,000 simulated hours of 20 mA/g cycling 2.0-4.8 V, one point every 10 s.

Prints wall and CPU time (user+sys of this process, meaningful on a loaded machine) and the simulated/wall ratio for the per-call path (``constant_current`` with
10 s and voltage cut-offs, as a host-polled instrument would call it) and for the vectorised
``constant_current_sampled`` path. No assertions.
"""

from __future__ import annotations

import time

from simulators.cell import Cell, Sample
from simulators.material import load_material

MASS_G = 0.007
I_A = 20e-3 * MASS_G
SIM_S = 1000 * 3600.0
DT_S = 10.0


def per_call() -> tuple[float, int]:
    cell = Cell(Sample(load_material(None)), MASS_G)
    t_sim, calls, sign = 0.0, 0, 1
    t0 = time.perf_counter()
    while t_sim < SIM_S:
        if sign > 0:
            adv = cell.constant_current(I_A, DT_S, v_upper_V=4.8)
        else:
            adv = cell.constant_current(-I_A, DT_S, v_lower_V=2.0)
        t_sim += adv.elapsed_s
        calls += 1
        if adv.reason != "time":
            sign = -sign
    return time.perf_counter() - t0, calls


def sampled() -> tuple[float, int]:
    cell = Cell(Sample(load_material(None)), MASS_G)
    t_sim, points, sign = 0.0, 0, 1
    t0 = time.perf_counter()
    while t_sim < SIM_S:
        left = SIM_S - t_sim
        if sign > 0:
            adv, cur = cell.constant_current_sampled(I_A, DT_S, left, v_upper_V=4.8)
        else:
            adv, cur = cell.constant_current_sampled(-I_A, DT_S, left, v_lower_V=2.0)
        t_sim += adv.elapsed_s
        points += len(cur.time_s)
        sign = -sign
    return time.perf_counter() - t0, points


def main() -> None:
    """Run both paths and print the figures."""
    for name, fn in (
        ("per-call constant_current(10 s)", per_call),
        ("vectorised constant_current_sampled", sampled),
    ):
        cpu0 = time.process_time()
        wall, n = fn()
        cpu = time.process_time() - cpu0
        print(
            f"{name}: {n} points, 1000 h simulated in {wall:.3f} s wall ({cpu:.3f} s CPU), "
            f"sim/wall = {SIM_S / wall:,.0f}, {1e6 * wall / n:.1f} us/point"
        )
    cell = Cell(Sample(load_material(None)), MASS_G)
    n = 100_000
    t0 = time.perf_counter()
    for _ in range(n):
        cell.constant_current(I_A, 1.0, v_upper_V=4.8)
    print(f"1 s polling call: {1e6 * (time.perf_counter() - t0) / n:.1f} us/call")
    t0 = time.perf_counter()
    for _ in range(10_000):
        cell.rest(200 * 3600.0)
    print(f"200 h rest call: {1e6 * (time.perf_counter() - t0) / 10_000:.1f} us/call")


if __name__ == "__main__":
    main()
