"""The Keithley 2450 SourceMeter used as a galvanostat: SCPI over VISA.

Everything the model needs lives in this package:

* :mod:`drivers.keithley2450.driver` - the driver (:class:`Keithley2450Potentiostat`) and
  :func:`open_driver`;
* :mod:`drivers.keithley2450.scpi` - the protocol table: each SCPI setting and query declared
  once with a strict validator (:class:`Keithley2450`);
* :mod:`drivers.keithley2450.segments` (what they share), :mod:`drivers.keithley2450.cc`,
  :mod:`drivers.keithley2450.holds`, :mod:`drivers.keithley2450.sweep` and
  :mod:`drivers.keithley2450.steprun` - the techniques as segments the instrument ends itself,
  run one after another;
* :mod:`drivers.keithley2450.config` - the lab-file table (:class:`Keithley2450Config`);
* :data:`MODEL` - what :mod:`drivers.registry` knows of it (registered in
  :mod:`drivers.instruments`). Its simulator is :mod:`simulators.keithley2450`.
"""

from __future__ import annotations

from drivers.keithley2450.config import Keithley2450Config
from drivers.keithley2450.driver import Keithley2450Potentiostat, open_driver
from drivers.keithley2450.scpi import Keithley2450
from drivers.registry import InstrumentModel

MODEL = InstrumentModel(
    "keithley2450", "potentiostat", Keithley2450Config, open_driver, "Keithley 2450 SourceMeter"
)

__all__ = ["MODEL", "Keithley2450", "Keithley2450Config", "Keithley2450Potentiostat", "open_driver"]
