"""The simulated lab diffractometer: scan jobs writing vendor files into an export folder.

* :mod:`simulators.xrd.simulator` - :class:`SimulatedDiffractometer`.

It has no lab-file factory (the diffractometer is not a lab-file instrument): the in-situ and
example labs build it (:mod:`orchestrator.insitu_lab`). The driver is :mod:`drivers.xrd`.
"""

from __future__ import annotations

from simulators.xrd.simulator import SimulatedDiffractometer

__all__ = ["SimulatedDiffractometer"]
