"""The simulator factory of the Keithley 2450, registered by :mod:`orchestrator.sim_instruments`.

``make_simulator(sim, name, config, index)`` gets the simulated lab (duck-typed: ``cell_for`` and
``clock``), the instrument's name, its lab-file config (unused: a simulator never imports a
driver) and its index in the lab.
"""

from __future__ import annotations

from typing import Any

from simulators.keithley2450.simulator import SimulatedKeithley2450


def make_simulator(sim: Any, name: str, config: Any, index: int) -> SimulatedKeithley2450:
    return SimulatedKeithley2450(sim.cell_for(name, index), sim.clock, serial=f"SIM{index:05d}")
