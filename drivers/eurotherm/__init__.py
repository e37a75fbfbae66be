"""The Eurotherm 2400/3200 temperature controller (an oven): Modbus RTU on a serial line.

Everything the model needs lives in this package:

* :mod:`drivers.eurotherm.driver` - the driver (:class:`EurothermDriver`, under the
  :class:`drivers.oven.Oven` device) and :func:`open_driver`;
* :mod:`drivers.eurotherm.registers` - the protocol table: the register map of the manual;
* :mod:`drivers.eurotherm.sim_serial_port` - the pyserial-like port minimalmodbus talks through
  to an in-process simulator;
* :mod:`drivers.eurotherm.config` - the lab-file table (:class:`EurothermConfig`);
* :data:`MODEL` - what :mod:`drivers.registry` knows of it (registered in
  :mod:`drivers.instruments`). Its simulator is :mod:`simulators.eurotherm`.
"""

from __future__ import annotations

from drivers.eurotherm.config import EurothermConfig
from drivers.eurotherm.driver import EurothermDriver, open_driver
from drivers.registry import InstrumentModel

MODEL = InstrumentModel(
    "eurotherm", "oven", EurothermConfig, open_driver, "Eurotherm 2400/3200 oven controller"
)

__all__ = ["MODEL", "EurothermConfig", "EurothermDriver", "open_driver"]
