"""The simulated Keithley 2450: SCPI parsed from the bytes the real one gets, over the cell model.

* :mod:`simulators.keithley2450.simulator` - the instrument (:class:`SimulatedKeithley2450`:
  message framing, the error queue, the command table);
* :mod:`simulators.keithley2450.commands`, :mod:`~simulators.keithley2450.settings`,
  :mod:`~simulators.keithley2450.panel`, :mod:`~simulators.keithley2450.buffers` and
  :mod:`~simulators.keithley2450.trigger` - the commands by subsystem;
* :mod:`simulators.keithley2450.model` and :mod:`~simulators.keithley2450.physics` - its state
  and what the source does to the cell;
* :mod:`simulators.keithley2450.factory` - :func:`make_simulator`, registered for lab files by
  :mod:`orchestrator.sim_instruments`. The driver is :mod:`drivers.keithley2450`.
"""

from __future__ import annotations

from simulators.keithley2450.factory import make_simulator
from simulators.keithley2450.simulator import MAX_MESSAGE_BYTES, SimulatedKeithley2450

__all__ = ["MAX_MESSAGE_BYTES", "SimulatedKeithley2450", "make_simulator"]
