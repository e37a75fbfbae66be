"""A fourth potentiostat model, added the way docs/adding-an-instrument.md says: everything it
needs lives in this package (wire protocol, driver, lab-file config, simulator, registration).

The "Acme POT-1" speaks a tiny line protocol (``*IDN?``, ``RST``, ``OFF``, ``MEAS?`` answering
``<volts>,<amps>``) and can only hold a cell at open circuit (``rest`` steps): enough to show a
model joining lab files, the connect step, the simulated lab and a protocol run.
"""

from __future__ import annotations

from drivers.registry import InstrumentModel, register, register_simulator
from tests.acmepot.driver import AcmeConfig, open_driver
from tests.acmepot.simulator import simulator

MODEL = InstrumentModel("acmepot", "potentiostat", AcmeConfig, open_driver, "Acme POT-1 (test model)")


def install() -> None:
    """Register the model and its simulator (tests call :func:`drivers.registry.unregister` after)."""
    register(MODEL)
    register_simulator(MODEL.driver, simulator)
