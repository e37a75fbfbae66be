"""The simulator factory of the Eurotherm, registered by :mod:`orchestrator.sim_instruments`.

``make_simulator(sim, name, config, index)`` gets the simulated lab (duck-typed: its ``clock``),
the instrument's name, its lab-file config (``drivers.eurotherm.EurothermConfig``, read through
``address`` and ``series`` only: a simulator never imports a driver) and its index in the lab.
The controller heats a fresh :class:`simulators.oven.OvenModel`.
"""

from __future__ import annotations

from typing import Any

from simulators.eurotherm.simulator import SimulatedEurotherm
from simulators.oven import OvenModel


def make_simulator(sim: Any, name: str, config: Any, index: int) -> SimulatedEurotherm:
    return SimulatedEurotherm(sim.clock, OvenModel(sim.clock), address=config.address, series=config.series)
