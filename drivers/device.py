"""The ophyd Device for one potentiostat channel, whatever instrument drives it.

A step is run flyer-style, so that a 200-hour rest streams its points into the bluesky run as
it goes:

``prepare(step)``
    choose the technique (a :mod:`drivers.techniques` value object); ``prepare(step,
    resume=progress)`` re-attaches to a step the instrument kept running while no host was there;
``kickoff()``
    start it on the instrument (done when started);
``complete()``
    a Status that finishes when the step has ended, for whatever reason: ``end_reason`` says
    which cut-off, and ``fault`` holds the error when an instrument fault or a safety limit
    ended it;
``trigger()``
    a Status that finishes when a page of points is ready (``page_size`` points, ``page_age_s``
    of clock time, or the end of the step);
``collect_pages()``
    the points measured since the last collect, as one event page.

``stop()`` puts the cell at open circuit and is idempotent. The device never sleeps: it polls
the driver on the shared :class:`~drivers.clock.Clock`. Safety limits (``voltage_max_V``,
``voltage_min_V``) are checked on every point; crossing one aborts the step, puts the
instrument in its safe state and records a :class:`SafetyLimitError` saying so in ``fault``.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable, Iterator
from typing import Any

from ophyd import Component as Cpt
from ophyd import Device, Kind, Signal
from ophyd.status import Status

from drivers.base import Point, PotentiostatDriver, SafetyLimitError, StepProgress, StepRun
from drivers.clock import Clock, SimClock
from drivers.techniques import Loop, Technique

#: Columns of each point, with units, as they appear in event pages.
POINT_KEYS: dict[str, tuple[str, str]] = {
    "voltage_V": ("V", "voltage"),
    "current_A": ("A", "current"),
    "specific_current_mA_g": ("mA/g", "specific_current"),
    "capacity_mAh_g": ("mAh/g", "specific_capacity"),
    "temperature_C": ("degC", "temperature"),
    "step": ("", "step"),
    "substep": ("", "substep"),
}

#: Default age of a page of points in simulated time (6 simulated hours; 60 s on the wall clock).
SIM_PAGE_AGE_S = 6 * 3600.0

__all__ = ["POINT_KEYS", "SIM_PAGE_AGE_S", "PotentiostatChannel", "SafetyLimitError"]


class _Setting(Signal):
    """A configuration value whose ``set`` takes effect at once (no thread): plans set it with a
    'set' message that is done when it returns."""

    def set(self, value: Any, **kwargs: Any) -> Status:
        self.put(value)
        status = Status(obj=self)
        status.set_finished()
        return status


class PotentiostatChannel(Device):
    """One channel of a potentiostat, cell attached.

    Parameters
    ----------
    driver
        Any :class:`drivers.base.PotentiostatDriver`; a simulated instrument differs only in
        the driver's transport.
    clock
        The clock shared with the orchestrator.
    active_mass_g, channel, voltage_max_V, voltage_min_V, temperature_C
        Configuration, recorded in every descriptor.
    page_size, page_age_s
        When a page of points is handed to the run (``page_age_s`` of clock time; default 60 s
        on the wall clock, :data:`SIM_PAGE_AGE_S` (6 h) in simulated time).
    """

    voltage = Cpt(Signal, value=math.nan, kind=Kind.hinted)
    current = Cpt(Signal, value=0.0, kind=Kind.normal)
    specific_capacity = Cpt(Signal, value=0.0, kind=Kind.normal)
    step = Cpt(Signal, value=0, kind=Kind.normal)
    temperature = Cpt(Signal, value=25.0, kind=Kind.hinted)

    active_mass_g = Cpt(_Setting, value=0.0, kind=Kind.config)
    channel = Cpt(Signal, value=1, kind=Kind.config)
    voltage_max_V = Cpt(Signal, value=5.0, kind=Kind.config)
    voltage_min_V = Cpt(Signal, value=0.5, kind=Kind.config)
    instrument = Cpt(Signal, value="", kind=Kind.config)

    def __init__(
        self,
        *,
        name: str,
        driver: PotentiostatDriver,
        clock: Clock,
        active_mass_g: float,
        channel: int = 1,
        voltage_max_V: float = 5.0,
        voltage_min_V: float = 0.5,
        temperature_C: float = 25.0,
        page_size: int = 1000,
        page_age_s: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, **kwargs)
        if active_mass_g <= 0:
            raise ValueError(f"{name}: active_mass_g must be > 0, got {active_mass_g}")
        if not voltage_min_V < voltage_max_V:
            raise ValueError(f"{name}: voltage_min_V must be below voltage_max_V")
        self.driver = driver
        self.clock = clock
        self.active_mass_g.put(active_mass_g)
        self.channel.put(channel)
        self.voltage_max_V.put(voltage_max_V)
        self.voltage_min_V.put(voltage_min_V)
        self.temperature.put(temperature_C)
        self.instrument.put(driver.name)
        self.page_size = page_size
        # Live data: a page at least every minute in real time; in simulated time, where a
        # simulated hour of a rest passes in a millisecond, a page per SIM_PAGE_AGE_S is just as
        # live on the wall clock, and each page (RunEngine, journal, catalog) costs ~1 ms.
        default_age_s = SIM_PAGE_AGE_S if clock.simulated else 60.0
        self.page_age_s = page_age_s if page_age_s is not None else default_age_s
        self._lock = threading.RLock()
        self._technique: Technique | Loop | None = None
        self._resume: StepProgress | None = None
        self._step_index = -1
        #: Clock time the present (or last) step started, and its number on this channel.
        self.step_started_s = math.nan
        self._run: StepRun | None = None
        self._timer: Any = None
        self._polls_scheduled = 0  # the number of the poll scheduled last (an older one is stale)
        self._reattaching = False
        self._buffer: list[Point] = []
        self._page_started = 0.0
        self._complete_status: Status | None = None
        self._page_status: Status | None = None
        self.end_reason: str | None = None
        #: The exception that ended the last step early (instrument fault or safety limit).
        self.fault: Exception | None = None
        #: Why the last ``stop()`` could not confirm the safe state (the instrument unreachable).
        self.stop_error: Exception | None = None
        #: Called with (channel, step index, points) the moment points are read, before they
        #: wait in memory for their page: the orchestrator's spool makes them durable at once.
        self.spool: Callable[[PotentiostatChannel, int, list[Point]], None] | None = None

    @property
    def points_missing(self) -> int:
        """Points of the present step the instrument numbered but no host ever stored (lost in
        transit when a host died; counted when a later host re-attached)."""
        return self._run.missing_points if self._run is not None else 0

    @property
    def step_index(self) -> int:
        """This channel's number for the present (or last) step."""
        return self._step_index

    # --- flyer interface -------------------------------------------------------------
    def prepare(self, technique: Technique | Loop, resume: StepProgress | None = None) -> Status:
        """Choose the next step; it starts at ``kickoff``.

        With ``resume`` (how far it got, from the stored points), ``kickoff`` re-attaches to
        the step still running on the instrument instead of starting it.
        """
        with self._lock:
            if self._run is not None and self.end_reason is None:
                raise RuntimeError(f"{self.name}: a step is still running")
            self._technique = technique
            self._resume = resume
            self._step_index = resume.step_index if resume is not None else self._step_index + 1
            self.step.put(self._step_index)
            self.end_reason = None
            self.fault = None
        return _done()

    def kickoff(self) -> Status:
        if self._technique is None:
            raise RuntimeError(f"{self.name}: prepare a step before kickoff")
        if isinstance(self.clock, SimClock):
            self.clock.check_driven(f"channel {self.name!r}")
        mass = float(self.active_mass_g.get())
        # instruments that can keep the cell inside its limits themselves do so
        self.driver.set_cell_limits(float(self.voltage_min_V.get()), float(self.voltage_max_V.get()))
        with self._lock:
            self._complete_status = Status(obj=self)
            self._page_started = self.clock.now()
            self._reattaching = self._resume is not None
            if self._resume is not None:
                self.step_started_s = self._resume.started_at_s
                self._run = self.driver.reattach(self._technique, mass, self._resume)
            else:
                self.step_started_s = self.clock.now()
                self._run = self.driver.start_step(self._technique, mass, self._step_index)
                # a driver that stamps points from the instrument's start time knows it best
                self.step_started_s = float(self._run.started_at_s)
            self._schedule(self._next_delay())
        return _done()

    def complete(self) -> Status:
        if self._complete_status is None:
            raise RuntimeError(f"{self.name}: kickoff before complete")
        return self._complete_status

    def trigger(self) -> Status:
        """A Status finishing when a page of points is ready (or the step is over)."""
        with self._lock:
            status = Status(obj=self)
            self._page_status = status
            if self._page_ready():
                self._finish(status)
            return status

    def describe_collect(self) -> dict[str, dict[str, Any]]:
        return {
            key: {
                "source": f"{self.driver.name}:{self.name}:{key}",
                "dtype": "number" if key not in ("step", "substep") else "integer",
                "shape": [],
                "units": units,
                "precision": 6,
            }
            for key, (units, _) in POINT_KEYS.items()
        }

    def collect_pages(self) -> Iterator[dict[str, Any]]:
        with self._lock:
            if not self._page_ready() and self._timer is not None:
                # collected before its page is due (a plan keeping the points measured so far
                # when something else failed): read what the instrument measured since the
                # last poll first (a driver reading in batches has not read the last ones)
                self._timer.cancel()
                self._timer = None
                self._poll()
            points, self._buffer = self._buffer, []
            self._page_started = self.clock.now()
        if not points:
            return
        mass = float(self.active_mass_g.get())
        temperature = float(self.temperature.get())
        step = self._step_index
        times = [p.time_s for p in points]
        data: dict[str, list[Any]] = {
            "voltage_V": [p.voltage_V for p in points],
            "current_A": [p.current_A for p in points],
            "specific_current_mA_g": [p.current_A * 1000.0 / mass for p in points],
            "capacity_mAh_g": [p.capacity_mAh_g for p in points],
            "temperature_C": [
                temperature if math.isnan(p.temperature_C) else p.temperature_C for p in points
            ],
            "step": [step] * len(points),
            "substep": [p.substep for p in points],
        }
        yield {
            "data": data,
            "timestamps": {key: times for key in data},
            "time": times,
            "seq_num": list(range(1, len(points) + 1)),
        }

    def stop(self, *, success: bool = False) -> None:
        """Open circuit now. Safe to call at any time, any number of times."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            run = self._run
            if run is not None and self.end_reason is None:
                run.abort()
                self.end_reason = "aborted"
                self._collect_remaining(run)
        try:
            self.driver.safe_state()
        except Exception as exc:  # an unreachable instrument: the caller's own error says why
            self.stop_error = exc
        with self._lock:
            # Finish (not fail) the step's statuses: whoever stopped us knows why, and a failed
            # status would make the RunEngine report "step stopped" instead of the real cause.
            for status in (self._complete_status, self._page_status):
                if status is not None and not status.done:
                    status.set_finished()
        super().stop(success=success)

    # --- polling ---------------------------------------------------------------------
    def _next_delay(self) -> float:
        assert self._run is not None
        return float(self._run.next_poll_delay_s())

    def _schedule(self, delay_s: float) -> None:
        self._polls_scheduled += 1
        scheduled = self._polls_scheduled
        self._timer = self.clock.call_later(delay_s, lambda: self._poll(scheduled))

    def _poll(self, scheduled: int | None = None) -> None:
        with self._lock:
            run = self._run
            if run is None or self.end_reason is not None:
                return
            if scheduled is not None and scheduled != self._polls_scheduled:
                return  # a poll made meanwhile (collect_pages) scheduled the next one
            try:
                points, done = run.poll()
                self._accept(points)
                self._check_limits(points)  # also the last points of a step (a cut-off found late)
                self._reattaching = False
            except Exception as exc:  # instrument fault or limit: make safe, then report
                self._fail(exc)
                return
            if done:
                self.end_reason = run.end_reason or "done"
                self._finish(self._complete_status)
                if self._page_status is not None:
                    self._finish(self._page_status)
                return
            if self._page_status is not None and self._page_ready():
                self._finish(self._page_status)
            self._schedule(self._next_delay())

    def _accept(self, points: list[Point]) -> None:
        if not points:
            return
        if self.spool is not None:
            self.spool(self, self._step_index, points)
        self._buffer.extend(points)
        last = points[-1]
        self.voltage.put(last.voltage_V)
        self.current.put(last.current_A)
        self.specific_capacity.put(last.capacity_mAh_g)

    def _check_limits(self, points: list[Point]) -> None:
        vmax, vmin = float(self.voltage_max_V.get()), float(self.voltage_min_V.get())
        for p in points:
            if not vmin <= p.voltage_V <= vmax:
                where = ""
                if self._reattaching:
                    where = (f" on re-attaching to step {self._step_index} after the orchestrator was "
                             "away (the cell went there while no host watched it)")  # fmt: skip
                raise SafetyLimitError(
                    f"{self.name}: voltage {p.voltage_V:.4f} V outside the safety limits "
                    f"{vmin:g}-{vmax:g} V{where}; cell put at open circuit"
                )

    def _collect_remaining(self, run: StepRun) -> None:
        try:
            points, _ = run.poll()
            self._buffer.extend(points)
        except Exception:  # the instrument may be gone; keep what we have
            pass

    def _fail(self, exc: Exception) -> None:
        self.end_reason = "limit" if isinstance(exc, SafetyLimitError) else "fault"
        with contextlib.suppress(Exception):
            if self._run is not None:
                self._run.abort()
        with contextlib.suppress(Exception):
            self.driver.safe_state()
        # Both statuses finish normally so the plan collects the points measured before the
        # fault; the plan then raises ``fault`` itself (see protocols.stubs.run_step), so the
        # run's stop document carries this message rather than a status repr.
        self.fault = exc
        self._finish(self._page_status)
        self._finish(self._complete_status)

    def _page_ready(self) -> bool:
        if self.end_reason is not None:
            return True
        if len(self._buffer) >= self.page_size:
            return True
        return bool(self._buffer) and self.clock.now() - self._page_started >= self.page_age_s

    # Statuses finish through the clock so that, in simulated time, every callback due at the
    # same instant has run before the RunEngine moves on.
    def _finish(self, status: Status | None) -> None:
        if status is not None and not status.done:
            self.clock.call_later(0.0, lambda: status.done or status.set_finished())

    def _fail_status(self, status: Status, exc: Exception) -> None:
        self.clock.call_later(0.0, lambda: status.done or status.set_exception(exc))


def _done() -> Status:
    status = Status()
    status.set_finished()
    return status
