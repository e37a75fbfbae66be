"""The simulated PalmSens EmStat4: MethodSCRIPT parsed from the bytes the real one gets.

* :mod:`simulators.emstat4.simulator` - the instrument (:class:`SimulatedEmStat4`: online
  commands, script loading, output buffering); :mod:`simulators.emstat4.frontend` its line
  handling;
* :mod:`simulators.emstat4.methodscript` and its ``methodscript_*`` modules - the language:
  spec, parser, interpreter state, commands and techniques;
* :mod:`simulators.emstat4.docs` - ``docs/simulator-emstat4.md`` from those tables;
* :mod:`simulators.emstat4.factory` - :func:`make_simulator`, registered for lab files by
  :mod:`orchestrator.sim_instruments`. The driver is :mod:`drivers.emstat4`.
"""

from __future__ import annotations

from simulators.emstat4.factory import make_simulator
from simulators.emstat4.simulator import SimulatedEmStat4

__all__ = ["SimulatedEmStat4", "make_simulator"]
