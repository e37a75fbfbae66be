"""EmStat4 figures on the simulated instrument (prints, asserts nothing).

1. Cut-off overshoot at 20 mA/g with the instrument's 1 s sampling: capacity passed beyond a
   capacity cut-off, and voltage beyond a voltage cut-off (targets: <= 0.05 mAh/g).
2. Long-period GITT: 10 pulses of 0.5 h at 20 mA/g with 200 h rests (~2,000 simulated h),
   wall time through driver + simulator in-process (target <= 10 s).

Run: ``python benchmarks/bench_emstat4.py``
"""

from __future__ import annotations

import time

from drivers.clock import SimClock
from drivers.emstat4 import EmStat4Driver, EmStat4StepRun
from drivers.techniques import GITT, ConstantCurrent, Cutoffs
from drivers.transport import InProcessTransport
from simulators.cell import Cell, Sample
from simulators.emstat4 import SimulatedEmStat4
from simulators.material import load_material

MASS_G = 0.007


def _rig(sample_interval_s: float = 1.0) -> tuple[SimClock, EmStat4Driver]:
    clock = SimClock()
    cell = Cell(Sample(load_material(None)), active_mass_g=MASS_G)
    sim = SimulatedEmStat4(cell, clock)
    return clock, EmStat4Driver(InProcessTransport(sim), clock, sample_interval_s=sample_interval_s)


def _finish(clock: SimClock, run: EmStat4StepRun, poll_s: float) -> list:
    points, done = [], False
    while not done:
        clock.set_time(clock.now() + poll_s)
        new, done = run.poll()
        points += new
    return points


def overshoot() -> None:
    for sample_s in (1.0, 10.0):
        clock, driver = _rig(sample_s)
        run = driver.start_step(ConstantCurrent(20, Cutoffs(capacity_mAh_g=50.003)), MASS_G, 0)
        pts = _finish(clock, run, 600)
        print(f"capacity cut-off 50.003 mAh/g at 20 mA/g, sampling {sample_s:g} s: "
              f"end {run.end_reason}, overshoot {pts[-1].capacity_mAh_g - 50.003:.5f} mAh/g")  # fmt: skip
        clock, driver = _rig(sample_s)
        run = driver.start_step(ConstantCurrent(20, Cutoffs(voltage_V=4.4)), MASS_G, 0)
        t0 = time.perf_counter()
        pts = _finish(clock, run, 3600)
        wall = time.perf_counter() - t0
        dq = 20 * sample_s / 3600
        print(f"voltage cut-off 4.4 V at 20 mA/g, sampling {sample_s:g} s: end {run.end_reason}, "
              f"overshoot {1000 * (pts[-1].voltage_V - 4.4):.3f} mV, last sample before "
              f"{1000 * (4.4 - pts[-2].voltage_V):.3f} mV below (record interval), capacity "
              f"overshoot <= {dq:.4f} mAh/g; {pts[-1].capacity_mAh_g:.1f} mAh/g charged, "
              f"wall {wall:.2f} s")  # fmt: skip


def long_gitt() -> None:
    clock, driver = _rig()
    step = GITT(current_mA_g=20, pulse_s=1800, rest_s=200 * 3600, cutoff_voltage_V=4.8,
                max_pulses=10)  # fmt: skip
    t0 = time.perf_counter()
    run = driver.start_step(step, MASS_G, 0)
    pts = _finish(clock, run, 3600.0)
    wall = time.perf_counter() - t0
    hours = (pts[-1].time_s - run.started_at_s) / 3600
    print(f"GITT 10 x (0.5 h @ 20 mA/g + 200 h rest): {hours:.0f} simulated h, {len(pts)} points, "
          f"end {run.end_reason}, wall {wall:.2f} s (poll every simulated hour)")  # fmt: skip


if __name__ == "__main__":
    overshoot()
    long_gitt()
