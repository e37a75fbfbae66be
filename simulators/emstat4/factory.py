"""The simulator factory of the EmStat4, registered by :mod:`orchestrator.sim_instruments`.

``make_simulator(sim, name, config, index)`` gets the simulated lab (duck-typed: ``cell_for`` and
``clock``), the instrument's name, its lab-file config (``drivers.emstat4.EmStat4Config``, read
through its ``model`` only: a simulator never imports a driver) and its index in the lab.
"""

from __future__ import annotations

from typing import Any

from simulators.emstat4.simulator import SimulatedEmStat4


def make_simulator(sim: Any, name: str, config: Any, index: int) -> SimulatedEmStat4:
    return SimulatedEmStat4(
        sim.cell_for(name, index), sim.clock, serial=f"ES4{config.model}SIM{index:04d}", model=config.model
    )
