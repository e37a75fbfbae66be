"""The potentiostat contract: what a driver offers the ophyd channel device.

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
    #: Clock time the step started: the instrument's own start when the driver knows it (its
    #: points are stamped from it), else the host's clock when the step was started.
    started_at_s: float
    #: Points the instrument numbered but no host stored (lost while no host was polling),
    #: counted when a later host re-attached; 0 for instruments that do not number points.
    missing_points: int

    def poll(self) -> tuple[list[Point], bool]:
        """New points since the last poll, and whether the step has finished."""
        ...

    def abort(self) -> None:
        """Stop the step and leave the cell at open circuit."""
        ...

    def next_poll_delay_s(self) -> float:
        """Clock seconds until the next poll is worth making (the driver's poll interval, or
        sooner when the driver predicts a cut-off)."""
        ...


class PotentiostatDriver(Protocol):
    """What every potentiostat driver offers the channel device (and the lab's connect step).

    The life of a driver: built on a transport by its model's ``build`` function
    (:mod:`drivers.registry`), :meth:`connect` ed (identified; reset or not), then steps are
    started (:meth:`start_step`) or re-attached (:meth:`reattach`), the cell is put at open
    circuit with :meth:`safe_state`, and :meth:`close` releases the transport.
    """

    name: str
    #: How often the host should poll a running step, seconds of clock time.
    poll_interval_s: float

    def connect(self, reset: bool = True) -> str:
        """Identify the instrument (raising :class:`~drivers.transport.InstrumentError` when it
        is not the expected model or does not answer) and return its identity.

        ``reset=True`` puts it in a known, safe configuration; ``reset=False`` (an orchestrator
        coming back to steps that may still run) touches nothing a running step needs and keeps
        what the instrument buffered.
        """
        ...

    def set_cell_limits(self, voltage_min_V: float, voltage_max_V: float) -> None:
        """The cell's safety limits, given before every step; drivers that can make the
        instrument itself keep the cell inside them do so (the channel checks them too)."""
        ...

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
