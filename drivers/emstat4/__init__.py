"""The PalmSens EmStat4 (HR/LR) potentiostat: MethodSCRIPT over a serial line.

Everything the model needs lives in this package:

* :mod:`drivers.emstat4.driver` - the driver (:class:`EmStat4Driver`, its steps
  :class:`EmStat4StepRun`) and :func:`open_driver`;
* :mod:`drivers.emstat4.methodscript` - the protocol table: techniques compiled to one
  MethodSCRIPT per step, cut-offs and markers;
* :mod:`drivers.emstat4.format` - MethodSCRIPT literals, data packages and error replies;
* :mod:`drivers.emstat4.config` - the lab-file table (:class:`EmStat4Config`);
* :data:`MODEL` - what :mod:`drivers.registry` knows of it (registered in
  :mod:`drivers.instruments`). Its simulator is :mod:`simulators.emstat4`.
"""

from __future__ import annotations

from drivers.emstat4.config import EmStat4Config
from drivers.emstat4.driver import EmStat4Driver, EmStat4StepRun, open_driver
from drivers.registry import InstrumentModel

MODEL = InstrumentModel(
    "emstat4", "potentiostat", EmStat4Config, open_driver, "PalmSens EmStat4 (MethodSCRIPT)"
)

__all__ = ["MODEL", "EmStat4Config", "EmStat4Driver", "EmStat4StepRun", "open_driver"]
