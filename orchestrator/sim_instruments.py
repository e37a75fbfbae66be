"""The simulators of the built-in instrument models, registered in :mod:`drivers.registry`.

This is the orchestrator's simulated side (drivers never import a simulator): each factory
builds the simulated instrument that speaks the model's wire protocol, given the simulated lab
(:class:`orchestrator.simlab.SimulatedLab`, which builds the cell physics), the instrument's name,
its lab-file config and its index in the lab. A new model registers its own factory the same way.
"""

from __future__ import annotations

from typing import Any

from drivers.emstat4 import EmStat4Config
from drivers.eurotherm import EurothermConfig
from drivers.registry import register_simulator
from simulators.emstat4 import SimulatedEmStat4
from simulators.eurotherm import SimulatedEurotherm
from simulators.keithley2450 import SimulatedKeithley2450
from simulators.oven import OvenModel


def keithley2450(sim: Any, name: str, config: Any, index: int) -> SimulatedKeithley2450:
    return SimulatedKeithley2450(sim.cell_for(name, index), sim.clock, serial=f"SIM{index:05d}")


def emstat4(sim: Any, name: str, config: EmStat4Config, index: int) -> SimulatedEmStat4:
    return SimulatedEmStat4(
        sim.cell_for(name, index), sim.clock, serial=f"ES4{config.model}SIM{index:04d}", model=config.model
    )


def eurotherm(sim: Any, name: str, config: EurothermConfig, index: int) -> SimulatedEurotherm:
    return SimulatedEurotherm(sim.clock, OvenModel(sim.clock), address=config.address, series=config.series)


for _driver, _factory in (("keithley2450", keithley2450), ("emstat4", emstat4), ("eurotherm", eurotherm)):
    register_simulator(_driver, _factory)
