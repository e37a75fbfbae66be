"""Benchmark: a 24 h heated relaxation at 140 C with the oven simulated (prints figures).

Run: ``python -m benchmarks.bench_oven`` from the repository root.

Cases (all in simulated time on a :class:`drivers.clock.SimClock`):

1. thermal model alone, caught up every 10 s;
2. device level: ``Oven.set(140)`` to settled, 24 h hold, cooling to 25 C, the device
   polling the controller over Modbus RTU (minimalmodbus + simulated Eurotherm) every 10 s;
3. the same with polling every 10 s while settling and every 60 s once settled;
4. the ``heated_relaxation`` plan through a RunEngine (temperature logged every 60 s), with
   a minimal harness that advances the SimClock while the RunEngine sleeps or waits.

A charged powder sample sits in the oven when the physics model is available.
"""

from __future__ import annotations

import time
from typing import Any

from drivers.clock import SimClock
from drivers.eurotherm import EurothermDriver
from drivers.oven import Oven
from simulators.eurotherm import SimulatedEurotherm
from simulators.oven import OvenModel

HOLD_S = 24 * 3600.0
T_HOLD_C = 140.0


def _sample() -> Any | None:
    try:
        from simulators.cell import Sample, SampleState
        from simulators.material import load_material
    except ImportError:
        return None
    material = load_material(None)
    return Sample(material, SampleState(h_ni_mAh_g=material.lmct.H_ref_mAh_g))


def bench_model() -> None:
    clock = SimClock()
    model = OvenModel(clock)
    t0 = time.perf_counter()
    model.set_target(T_HOLD_C)
    for _ in range(int(HOLD_S // 10)):
        clock.set_time(clock.now() + 10.0)
        model.advance()
    wall = time.perf_counter() - t0
    print(f"1. model alone, 24 h caught up every 10 s: {wall * 1e3:7.1f} ms wall "
          f"({model.substeps} substeps)")  # fmt: skip


def _lab(watch_s: float | None) -> tuple[SimClock, SimulatedEurotherm, Oven, Any]:
    clock = SimClock()
    sim = SimulatedEurotherm(clock)
    sample = _sample()
    if sample is not None:
        sim.oven.add_sample(sample)
    oven = Oven(EurothermDriver.in_process(sim), clock, poll_interval_s=10.0,
                watch_interval_s=watch_s)  # fmt: skip
    return clock, sim, oven, sample


def bench_device(watch_s: float | None, label: str) -> None:
    clock, sim, oven, sample = _lab(watch_s)
    t0 = time.perf_counter()
    status = oven.set(T_HOLD_C)
    while not status.done:
        clock.advance_to_next()
    t_settled = clock.now()
    end = t_settled + HOLD_S
    while clock.now() < end and clock.advance_to_next(limit_s=end):
        pass
    clock.set_time(end)
    status = oven.set(25.0)
    while not status.done:
        clock.advance_to_next()
    oven.stop()
    wall = time.perf_counter() - t0
    sim_h = (clock.now() - t_settled) / 3600
    extra = ""
    if sample is not None:
        ref = sim.oven.samples[0].material.lmct.H_ref_mAh_g  # .samples flushes
        extra = f", sample conversion {1 - sample.state.h_ni_mAh_g / ref:.3f}"
    print(f"{label}: {wall * 1e3:7.1f} ms wall for {sim_h:.2f} h after settling "
          f"({oven.polls} polls, {sim.frames} Modbus frames, {sim.oven.substeps} substeps"
          f"{extra})")  # fmt: skip


def bench_plan() -> None:
    from bluesky import RunEngine

    from protocols.heating import heated_relaxation

    clock, sim, oven, _ = _lab(None)
    RE = RunEngine({})

    async def sim_sleep(msg: Any) -> None:
        clock.advance_by(msg.args[0])

    RE.register_command("sleep", sim_sleep)
    waiting: dict[str, Any] = {"statuses": None}

    def step() -> None:
        statuses = waiting["statuses"]
        if statuses and not all(st.done for st in statuses) and clock.advance_to_next():
            RE.loop.call_soon(step)

    def hook(statuses: Any) -> None:
        waiting["statuses"] = statuses
        if statuses:
            RE.loop.call_soon(step)

    RE.waiting_hook = hook
    events = []
    RE.subscribe(lambda name, doc: events.append(1) if name == "event" else None)
    t0 = time.perf_counter()
    RE(heated_relaxation(oven, T_HOLD_C, HOLD_S, cool_to_C=25.0, log_interval_s=60.0))
    wall = time.perf_counter() - t0
    print(f"4. heated_relaxation plan via RunEngine, log every 60 s: {wall * 1e3:7.1f} ms wall "
          f"({len(events)} events, {oven.polls} polls, {sim.frames} Modbus frames)")  # fmt: skip


def main() -> None:
    print("24 h heated relaxation at 140 C, oven simulated (figures, no assertions)")
    bench_model()
    bench_device(None, "2. device, poll every 10 s throughout       ")
    bench_device(60.0, "3. device, poll 10 s settling / 60 s watch  ")
    bench_plan()


if __name__ == "__main__":
    main()
