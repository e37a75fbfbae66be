"""One contract per instrument kind: what the lab's devices and connect step ask of a driver.

* :class:`~drivers.base.PotentiostatDriver` (with :class:`~drivers.base.StepRun`): a
  potentiostat channel's driver - connect (identify; reset or not), steps, re-attach, safe state;
* :class:`OvenDriver`: a temperature controller under the :class:`~drivers.oven.Oven` device;
* :class:`DiffractometerDriver`: the scan source under the :class:`~drivers.xrd.Diffractometer`
  device (an export-folder watcher: lab diffractometers have no open remote API).

Every contract is a :class:`typing.Protocol` checked by mypy where the devices and the
registry (:mod:`drivers.registry`) use it; a new instrument model implements the contract of
its kind and registers itself (see ``docs/adding-an-instrument.md``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from drivers.base import PotentiostatDriver, StepRun

#: The kinds of instrument a lab holds.
Kind = Literal["potentiostat", "oven", "diffractometer"]

__all__ = ["DiffractometerDriver", "InstrumentLimit", "Kind", "OvenDriver", "PotentiostatDriver", "StepRun"]


@runtime_checkable
class InstrumentLimit(Protocol):
    """What an oven driver offers when its controller can hold the over-temperature limit itself
    (the Eurotherm's alarm 1, whose relay must be wired to cut the heater)."""

    name: str

    def arm_high_limit_C(self, limit_C: float) -> None:
        """Write the limit and read it back (InstrumentError on a mismatch)."""
        ...

    def read_high_limit_C(self) -> float: ...

    def read_alarm_active(self) -> bool:
        """Tripped (latched until acknowledged)."""
        ...

    def acknowledge_alarms(self) -> None: ...

    def read_process_value_C(self) -> float: ...


class OvenDriver(Protocol):
    """What every oven (temperature controller) driver offers the ``Oven`` device.

    Temperatures in degC, rates in degC/min, output in percent. Writes out of the
    controller's range raise :class:`ValueError` before anything is sent; a controller that
    does not answer raises :class:`~drivers.transport.InstrumentError`.

    A controller that can hold the over-temperature limit itself also offers
    ``arm_high_limit_C(limit_C)`` (write it, read it back, InstrumentError on a mismatch),
    ``read_high_limit_C()``, ``read_alarm_active()`` (tripped, latched until acknowledged) and
    ``acknowledge_alarms()``; the ``Oven`` device then arms it before heating (the Eurotherm's
    alarm 1, whose relay must be wired to cut the heater).
    """

    name: str

    def connect(self, reset: bool = True) -> str:
        """Identify the controller (reachable, answering at its address) and return its identity.

        A controller's configuration is the operator's: ``reset=True`` changes nothing on it
        either; ``reset=False`` (re-attaching to an oven that went on heating) likewise leaves
        its set point alone, so the ``Oven`` device can read what it heats to
        (:meth:`read_target_setpoint_C`).
        """
        ...

    def validate_setpoint_C(self, temperature_C: float) -> float:
        """``temperature_C`` if the controller accepts it as a set point, else ValueError."""
        ...

    def heat_to(self, temperature_C: float) -> None:
        """Automatic mode, target set point ``temperature_C``."""
        ...

    def safe_state(self, setpoint_C: float | None = None) -> None:
        """Heater off (manual, 0 % output), set point lowered to ``setpoint_C``. Idempotent."""
        ...

    def read_process_value_C(self) -> float: ...

    def read_target_setpoint_C(self) -> float: ...

    def read_working_setpoint_C(self) -> float: ...

    def read_output_power_pct(self) -> float: ...

    def read_rate_limit_C_min(self) -> float: ...

    def write_rate_limit_C_min(self, rate_C_min: float) -> None: ...

    def close(self) -> None: ...


class DiffractometerDriver(Protocol):
    """What the ``Diffractometer`` device asks of its scan source.

    The source hands out finished scans (with their fitted lattice parameter) and the files it
    could not read; the device acknowledges each once it is published, so a restarted source
    (re-attaching to a job that went on scanning) neither loses nor repeats one.
    """

    export_dir: Path
    scan_time_s: float

    def poll(self) -> tuple[list[Any], list[Any]]:
        """Finished scans not handed out yet, and the files found unreadable."""
        ...

    def acknowledge(self, filename: str, status: str = "ok") -> None:
        """Remember ``filename`` as consumed (persisted)."""
        ...
