"""The simulators of the built-in instrument models, registered in :mod:`drivers.registry`.

This is the orchestrator's simulated side (drivers never import a simulator): each model's
simulator package holds its factory (``simulators.<model>.factory.make_simulator``), which builds
the simulated instrument that speaks the model's wire protocol, given the simulated lab
(:class:`orchestrator.simlab.SimulatedLab`, which builds the cell physics), the instrument's name,
its lab-file config and its index in the lab. This module only registers them; a new model
registers its own factory the same way.
"""

from __future__ import annotations

from drivers.registry import register_simulator
from simulators import emstat4, eurotherm, keithley2450

for _driver, _factory in (
    ("keithley2450", keithley2450.make_simulator),
    ("emstat4", emstat4.make_simulator),
    ("eurotherm", eurotherm.make_simulator),
):
    register_simulator(_driver, _factory)
