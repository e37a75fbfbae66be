"""A simulated Keithley 2450 with a cell, the hosts that drive it, and the poll loop, shared by
the 2450 tests that leave a step to the instrument (a host dies, another re-attaches)."""

from __future__ import annotations

from typing import Any

from drivers.base import Point
from drivers.clock import SimClock
from drivers.keithley2450 import Keithley2450, Keithley2450Potentiostat
from drivers.techniques import ConstantCurrent, Cutoffs
from drivers.transport import InProcessTransport


def simulated_2450(clock: SimClock) -> Any:
    """A simulated 2450 on a fresh 7 mg cell of the default material."""
    from simulators.cell import Cell, Sample
    from simulators.keithley2450 import SimulatedKeithley2450
    from simulators.material import load_material

    return SimulatedKeithley2450(Cell(Sample(load_material(None)), active_mass_g=0.007), clock)


def new_host(sim: Any, name: str, clock: SimClock, link: Any = None) -> Keithley2450Potentiostat:
    """A host polling every 10 s with cell limits 1.5-4.6 V, on ``sim`` (or on ``link`` to it)."""
    transport = InProcessTransport(link or sim, name=name)
    driver = Keithley2450Potentiostat(Keithley2450(transport, name), clock, poll_interval_s=10)
    driver.set_cell_limits(1.5, 4.6)
    return driver


def poll(clock: SimClock, run: Any, until_s: float | None = None) -> list[Point]:
    """Poll ``run`` when it asks, until it ends (or the clock reaches ``until_s``)."""
    points: list[Point] = []
    while run.end_reason is None and (until_s is None or clock.now() < until_s):
        clock.set_time(clock.now() + run.next_poll_delay_s())
        points += run.poll()[0]
    return points


def charge(clock: SimClock, sim: Any, to_V: float) -> None:
    """Charge the simulated cell at 20 mA/g to ``to_V`` (a host of its own)."""
    prep = new_host(sim, "prep", clock)
    prep.initialise()
    poll(
        clock, prep.start_step(ConstantCurrent(20, Cutoffs(voltage_V=to_V), record_interval_s=600), 0.007, 0)
    )


def started_after_charge(step: Any, to_V: float = 4.2) -> tuple[SimClock, Any, Any]:
    """``step`` started (as step 1) by host "a" on a cell charged to ``to_V``: (clock, sim, run)."""
    clock = SimClock()
    sim = simulated_2450(clock)
    charge(clock, sim, to_V)
    first = new_host(sim, "a", clock)
    first.initialise(reset=False)
    return clock, sim, first.start_step(step, 0.007, 1)
