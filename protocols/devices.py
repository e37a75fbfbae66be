"""What the plans ask of the devices they drive, as bluesky protocols (:mod:`bluesky.protocols`).

The potentiostat channel is typed as :class:`drivers.device.PotentiostatChannel` itself (plans use
its flyer interface and its signals); the other devices are typed by what the plans do with them,
so any ophyd or ophyd-async device with those methods fits.
"""

from __future__ import annotations

from typing import Any, Protocol

from bluesky.protocols import Movable, Readable, Stoppable, Triggerable


class HeatingStage(Movable[float], Readable[Any], Stoppable, Protocol):
    """An oven or a hot plate: ``set(T)`` finishes once settled at ``T``, ``read`` gives the
    temperature, ``stop`` is its safe state (heater off)."""

    #: Set-point ramp rate, C/min (set only by a step that asks for one).
    ramp_rate: Movable[float]


class ScanSource(Triggerable, Readable[Any], Stoppable, Protocol):
    """A diffractometer: ``trigger`` finishes with the next finished scan, ``read`` gives it,
    ``stop`` ends the watching; its configuration signals go into the run's metadata."""

    #: Signals (``get()``) of one scan's duration (s) and the folder the scans are exported to.
    scan_time_s: Any
    export_dir: Any


class OperatorDevice(Movable[Any], Protocol):
    """The person at the bench: ``set(request)`` finishes once they have done it."""
