"""The instrument models that ship with relaxlab, registered in :mod:`drivers.registry`.

Importing this module makes them known to lab files; each model's package defines its ``MODEL``
(lab-file config, driver opener) next to the driver it describes (``drivers/<model>/__init__.py``).
"""

from __future__ import annotations

from drivers import emstat4, eurotherm, keithley2450
from drivers.contracts import DiffractometerDriver, OvenDriver, PotentiostatDriver
from drivers.registry import InstrumentModel, register
from drivers.xrd import ExportFolderWatcher

BUILT_IN: tuple[InstrumentModel, ...] = tuple(
    register(module.MODEL) for module in (keithley2450, emstat4, eurotherm)
)


def _contracts(
    keithley: keithley2450.Keithley2450Potentiostat,
    emstat: emstat4.EmStat4Driver,
    oven: eurotherm.EurothermDriver,
    scans: ExportFolderWatcher,
) -> tuple[PotentiostatDriver, PotentiostatDriver, OvenDriver, DiffractometerDriver]:
    """Never called: mypy checks here that every shipped driver implements its kind's contract."""
    return keithley, emstat, oven, scans
