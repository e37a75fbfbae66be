"""The simulated Eurotherm 2400/3200: a Modbus RTU slave on an oven model.

* :mod:`simulators.eurotherm.simulator` - the controller (:class:`SimulatedEurotherm`);
* :mod:`simulators.eurotherm.factory` - :func:`make_simulator`, registered for lab files by
  :mod:`orchestrator.sim_instruments`.

The oven's thermal model is :mod:`simulators.oven` (shared with the simulated lab). The driver is
:mod:`drivers.eurotherm`.
"""

from __future__ import annotations

from simulators.eurotherm.factory import make_simulator
from simulators.eurotherm.simulator import SimulatedEurotherm

__all__ = ["SimulatedEurotherm", "make_simulator"]
