"""The instrument models that ship with relaxlab, registered in :mod:`drivers.registry`.

Importing this module makes them known to lab files; each model's driver module defines its
``MODEL`` (lab-file config, driver opener) next to the driver it describes.
"""

from __future__ import annotations

from drivers import emstat4, eurotherm, keithley2450
from drivers.registry import InstrumentModel, register

BUILT_IN: tuple[InstrumentModel, ...] = tuple(
    register(module.MODEL) for module in (keithley2450, emstat4, eurotherm)
)
