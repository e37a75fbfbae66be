"""Contracts between potentiostat drivers and the ophyd channel device.

A driver turns one :mod:`drivers.techniques` step into work on its instrument and hands back
measured :class:`Point` s when polled. The device (:mod:`drivers.device`) polls on the shared
clock, so a driver never sleeps and never reads the wall clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from drivers.techniques import Loop, Technique


class SafetyLimitError(RuntimeError):
    """A cell's safety limit was reached or crossed; the instrument was put in its safe state."""


@dataclass(frozen=True, slots=True)
class Point:
    """One measured data point.

    ``time_s`` is a clock timestamp (POSIX seconds). ``current_A`` is positive on charge.
    ``capacity_mAh_g`` is the charge passed within the step per gram of active material,
    signed like the current (so it grows on charge and falls on discharge).
    ``substep`` numbers pulses/rests inside composite techniques (GITT, loops), else 0.
    """

    time_s: float
    voltage_V: float
    current_A: float
    capacity_mAh_g: float
    temperature_C: float = float("nan")
    substep: int = 0


@dataclass(frozen=True, slots=True)
class StepProgress:
    """How far a step got before the host went away: what a driver needs to re-attach to it.

    ``step_index`` is the channel's step number the step was started with, ``started_at_s`` the
    clock time it started, ``points_seen`` how many of its points are stored, ``last`` the last
    of them and ``substep_started_s`` when its substep (a GITT pulse, a loop's step) began.
    """

    step_index: int
    started_at_s: float
    points_seen: int
    last: Point | None = None
    substep_started_s: float | None = None


class StepRun(Protocol):
    """A step under way on an instrument."""

    #: Why the step ended ("voltage", "capacity", "time", "current", "dvdt", "aborted",
    #: "limit", "count") or None while it runs.
    end_reason: str | None

    def poll(self) -> tuple[list[Point], bool]:
        """New points since the last poll, and whether the step has finished."""
        ...

    def abort(self) -> None:
        """Stop the step and leave the cell at open circuit."""
        ...


class PotentiostatDriver(Protocol):
    """What every potentiostat driver offers the channel device."""

    name: str
    #: How often the host should poll a running step, seconds of clock time.
    poll_interval_s: float

    def start_step(self, step: Technique | Loop, active_mass_g: float, step_index: int) -> StepRun: ...

    def safe_state(self) -> None:
        """Output off / cell off. Idempotent; never raises for an already safe instrument."""
        ...

    def reattach(self, step: Technique | Loop, active_mass_g: float, progress: StepProgress) -> StepRun:
        """Pick up a step the instrument went on running while no host was polling it.

        Raises :class:`~drivers.transport.InstrumentError` when the instrument is not running it.
        """
        ...

    def measure_voltage_V(self) -> float: ...

    def close(self) -> None: ...
