"""What every segment of a step run host-side on a Keithley 2450 shares: :class:`Segment` (the
trigger model that keeps its readings in the instrument's buffer and ends the segment there,
reading that buffer, polling when the instrument takes each reading). The constant current is
:mod:`drivers.keithley2450.cc`, the rest and the constant-voltage hold
:mod:`drivers.keithley2450.holds`, the sweep :mod:`drivers.keithley2450.sweep`;
:class:`HostStepRun` runs segments one after another :mod:`drivers.keithley2450.steprun` (see
:mod:`drivers.keithley2450`)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from drivers.base import Point
from drivers.clock import Clock
from drivers.keithley2450.scpi import BUFFER_POINTS, MAX_DELAY_S, Keithley2450
from drivers.transport import InstrumentError

#: Polls in a row without a valid reply before a logging segment fails (the readings wait in the
#: instrument's buffer meanwhile; each poll already tried ``Keithley2450.retries`` times).
MAX_MISSED_POLLS = 10
#: Longest time the host leaves readings in the buffer where nothing can end a segment early
#: (a rest by time; a constant current far from its voltage limit): it reads them in one go.
BATCH_S = 120.0
#: The same in simulated time, where a simulated hour passes in a fraction of a wall second: as
#: live on the wall clock as BATCH_S in real time (the device's page of points is an hour too).
SIM_BATCH_S = 3600.0


def _sent(value: float) -> float:
    """A number as the instrument gets it (and compares with)."""
    return float(f"{value:.9e}")


def _mAh_g(current_A: float, dt_s: float, mass_g: float) -> float:
    return current_A * dt_s / 3.6 / mass_g


@dataclass
class SegmentContext:
    inst: Keithley2450
    clock: Clock
    mass_g: float
    poll_s: float
    compliance_V: float
    emit: Callable[[Point], None]
    predictive: bool = True
    #: The cell's safety limits, enforced by the instrument (``voltage_max`` by ``VLIM`` on
    #: charge, ``voltage_min`` by a voltage source on discharge).
    voltage_min_V: float = 0.0
    voltage_max_V: float | None = None

    @property
    def ceiling_V(self) -> float:
        return self.compliance_V if self.voltage_max_V is None else self.voltage_max_V


@dataclass
class Segment:
    """One host-run segment (a CC pulse, a rest, a hold, a sweep)."""

    ctx: SegmentContext
    substep: int
    record_s: float
    t0: float = 0.0
    t_last: float = 0.0
    t_record: float = -math.inf
    q: float = 0.0
    v: float = math.nan
    i: float = 0.0
    end_reason: str | None = None
    history: list[tuple[float, float]] = field(default_factory=list)
    ended_on_instrument: bool = False  # a resumed segment whose trigger model ran to its end
    #: The instrument keeps the segment's readings in its buffer (a trigger model takes one
    #: every ``interval_s``, host or no host); False: the host reads one at each poll.
    logs = True
    interval_s: float = 0.0
    t_base: float = 0.0  # host time of the buffer's first reading
    n_read: int = 0  # buffer readings already read
    _last_rel: float = -math.inf  # the buffer time of the last reading read
    tol_s: float = 1e-9  # how close a reading's time must come to a time it is checked against
    _after_s: float = -math.inf  # readings up to this time were used (by this host or one before)
    _next_t: float | None = None  # when the instrument takes its next reading (None: at once)
    #: The instrument's reading times, its delays added up one by one from the first as its
    #: trigger model adds them (None after a re-attach: the branches taken meanwhile are unknown).
    _sched_t: float | None = None
    _poll_t: float | None = None  # the next poll after a missed one (None: at the next reading)
    _planned_t: float | None = None  # the reading the next poll is due at (None: the next one)
    _last_delay_s: float = 0.0  # the delay the instrument took after the last reading read
    missed_polls: int = 0  # polls in a row that got no valid reply (the readings wait in the buffer)

    def start(self) -> None:
        """Set the instrument up, then take the first point: the segment's time (its duration
        cut-off, the rest's length) counts from that point, so it lasts its full duration
        between its first and last points however long setting up took on a busy link."""
        self.ctx.inst.stop_logging()
        self.configure_verified()
        self.ctx.inst.check_errors(f"starting {type(self).__name__}")
        self.t_last = self.t0 = self.ctx.clock.now()
        self._after_s = -math.inf
        self._start_logging()
        for t, measured, source in self._readings()[:1]:  # the first reading: the first point
            self.apply_reading(measured, source)
            self.t_last = self.t0 = t
            self.end_reason = self.check()  # a cell already at its limit: the model ended at once
            self.record(force=True)
            self._advance_schedule(t, measured)

    def _start_logging(self) -> None:
        if not self.logs:
            return
        self.interval_s = self.sampling_interval_s()
        self.tol_s = self.tolerance_s()
        self.t_base, self.n_read, self._next_t = self.ctx.clock.now(), 0, None
        self._sched_t = self.t_base
        self.reset_branches()
        self.ctx.inst.start_logging(self.interval_s, self.branches())

    def branches(self) -> list[str] | None:
        """The trigger-model blocks after the measure block (None: a reading every interval)."""
        return None

    def reset_branches(self) -> None:
        """The trigger model starts again (from its first measure block)."""

    def delay_after_s(self, value: float) -> float:
        """The delay the trigger model waits after a reading of ``value``, as its branches
        decide (a segment with branches follows them reading by reading)."""
        return self.interval_s

    def span_s(self) -> float | None:
        """How long the segment will last if a time or capacity cut-off ends it (None: unknown)."""
        return None

    def _readings_to_end(self) -> int | None:
        """Record-interval readings from the model's first to the one on a time or capacity
        cut-off, the one the host ends the segment at (a counter branch's count; a model started
        again on re-attaching counts what is left of the segment), None without such a cut-off."""
        span = self.span_s()
        if span is None or span <= 0 or self.interval_s <= 0:
            return None
        left_s = self.t0 + span - self.t_base
        return max(0, math.ceil((left_s - self.tol_s) / self.interval_s)) + 1

    def wanted_interval_s(self) -> float:
        """The record interval: every reading is a point (a voltage cut-off is met within one;
        the instrument holds the cell at it meanwhile)."""
        return self.record_s

    def sampling_interval_s(self) -> float:
        """The instrument's reading interval: the record interval, shortened so that a
        reading falls exactly on a predictable end (a duration, a capacity at constant
        current), and long enough for the buffer to hold the segment."""
        wanted = min(self.wanted_interval_s(), MAX_DELAY_S)
        span = self.span_s()
        if span is not None and span > 0:
            wanted = span / min(max(1, math.ceil(span / wanted - 1e-9)), BUFFER_POINTS - 2)
        return float(f"{wanted:.9e}")  # the value the instrument is sent (and parses)

    def batch_s(self) -> float:
        """Longest time readings wait in the buffer where nothing can end the segment early:
        :data:`BATCH_S`, or :data:`SIM_BATCH_S` on a simulated clock."""
        return SIM_BATCH_S if self.ctx.clock.simulated else BATCH_S

    def tolerance_s(self) -> float:
        """Half the shortest delay between readings: the reading nearest a due time is the one due."""
        return self.interval_s / 2

    def _readings(self) -> list[tuple[float, float, float]]:
        """New readings since the last one used: (host time, measured, source), oldest first.

        While the instrument logs, a poll that gets no valid reply (a link fault outlasting the
        driver's retries) is not fatal: the readings wait in the buffer and the next poll reads
        them, so nothing is lost or doubled; :data:`MAX_MISSED_POLLS` in a row fail the step.
        """
        if not self.logs:
            now = self.ctx.clock.now()
            return [(now, *self.ctx.inst.read())]
        try:
            rows = self._buffer_rows()
        except InstrumentError as exc:
            if "closed" in str(exc) or self.missed_polls >= MAX_MISSED_POLLS:
                raise
            self.missed_polls += 1
            # the next poll: at the reading after the one missed (the same delay again)
            # (a poll that read several at once was due at a later reading than the next one)
            missed_at = self._next_t
            if self._planned_t is not None:
                missed_at = max(self._planned_t, self._next_t or -math.inf)
            self._poll_t = max(self._poll_t or -math.inf, missed_at or self.ctx.clock.now()) + (
                self._last_delay_s or self.interval_s
            )
            return []
        self.missed_polls, self._poll_t = 0, None
        readings = [(self.t_base + rel, measured, source) for measured, source, rel in rows]
        fresh = [r for r in readings if r[0] > self._after_s]  # not those used before a re-attach
        if fresh:
            self._after_s = fresh[-1][0] + self.tol_s
        return fresh

    def _buffer_rows(self) -> list[tuple[float, float, float]]:
        """The buffer's readings after the ones read: the newest one and the buffer's end in one
        exchange (a poll when one reading is due), the others asked for when there are more."""
        inst = self.ctx.inst
        latest, end = inst.latest_reading()
        if end < self.n_read:  # the buffer was cleared or wrapped: read it all again
            self.n_read, self._last_rel = 0, -math.inf
        if end == self.n_read:
            return []
        if end == self.n_read + 1 and latest[2] > self._last_rel:
            rows = [latest]
        else:
            rows = inst.buffer_readings(self.n_read + 1, end)
        self.n_read, self._last_rel = end, rows[-1][2]
        return rows

    def configure(self) -> None:
        raise NotImplementedError

    def configure_verified(self) -> None:
        """Configure, then read back what the instrument sources: a command lost on the link
        (nothing answers a setting) is found and the configuration sent again."""
        inst = self.ctx.inst
        for _ in range(inst.retries + 1):
            self.configure()
            function, level = self.source_setting()
            actual = inst.source_function
            actual_level = inst.source_current_A if actual == "current" else inst.source_voltage_V
            same = actual == function and math.isclose(actual_level, level, rel_tol=1e-4, abs_tol=1e-9)
            if same and inst.output_enabled:
                return
        raise InstrumentError(
            inst.name, f"the instrument does not keep the settings of {type(self).__name__}"
        )

    def source_setting(self) -> tuple[str, float]:
        """What the instrument sources during this segment: (function, level)."""
        raise NotImplementedError

    def resume(self, t0: float, last: Point | None) -> None:
        """Carry on a segment the instrument kept sourcing while no host polled it.

        The charge passed meanwhile is integrated with the current read now (exact at constant
        current and at rest; an estimate while holding a voltage). InstrumentError if the
        instrument is not sourcing what this segment set.
        """
        inst = self.ctx.inst
        function, level = self.source_setting()
        actual = inst.source_function
        actual_level = inst.source_current_A if actual == "current" else inst.source_voltage_V
        if actual != function or not math.isclose(actual_level, level, rel_tol=1e-4, abs_tol=1e-9):
            raise InstrumentError(
                inst.name,
                f"the instrument sources {actual} at {actual_level:g}, but the step being resumed "
                f"sets {function} at {level:g}: not re-attaching",
            )
        self.t0 = t0
        if last is not None:
            self.t_last = self.t_record = last.time_s
            self.q, self.v, self.i = last.capacity_mAh_g, last.voltage_V, last.current_A
        else:
            self.t_last = t0
        if not self.logs:
            self.poll()
            self.record(force=True)
            return
        # The buffer's first reading is the substep's first point (t0): every reading the
        # instrument took meanwhile is read at the next poll, from the first one after ``last``.
        self.interval_s = self.sampling_interval_s()
        self.tol_s, self.t_base, self.n_read, self._next_t = self.tolerance_s(), t0, 0, None
        self._sched_t = None
        self._last_rel = -math.inf
        self.reset_branches()
        self._after_s = -math.inf if last is None else last.time_s + self.tol_s
        state = inst.trigger_state
        if state == "IDLE" and not inst.output_enabled:
            self.ended_on_instrument = True  # it met its limit: the buffer ends with that reading
            if last is not None:  # ... already stored by the host that died: the segment is over
                self.end_reason = self.check()
        elif state not in ("RUNNING", "WAITING"):  # it never started, or stopped: log from now on
            self._start_logging()

    def apply_reading(self, measured: float, source: float) -> None:
        self.v, self.i = measured, source

    def record(self, force: bool = False) -> None:
        now = self.t_last  # the time of the reading, not of storing it (a free-running clock moves)
        if force or now - self.t_record >= self.record_s - self.tol_s:
            self.t_record = now
            self.ctx.emit(Point(now, self.v, self.i, self.q, substep=self.substep))

    def poll(self) -> bool:
        """Use every new reading in order (charge: each reading's current times the time since
        the one before); True once one of them meets the segment's end (the rest are after it)."""
        if self.end_reason is not None:
            return True
        for t, measured, source in self._readings():
            self.apply_reading(measured, source)
            self.q += _mAh_g(self.i, t - self.t_last, self.ctx.mass_g)
            self.t_last = t
            self.end_reason = self.check()
            self.record(force=self.end_reason is not None)
            if self.end_reason is not None:
                return True
            self._advance_schedule(t, measured)
        if self.ended_on_instrument:
            raise InstrumentError(
                self.ctx.inst.name, f"the trigger model of {type(self).__name__} ended without a reading at its limit"
            )
        return False

    def _advance_schedule(self, t: float, measured: float) -> None:
        """After the reading at ``t``: when the instrument takes the next one."""
        delay = self._last_delay_s = self.delay_after_s(measured)
        if self._sched_t is not None and abs(t - self._sched_t) > self.tol_s:
            self._sched_t = None  # not the reading expected: follow the readings' own times
        if self._sched_t is not None:
            self._sched_t += delay  # the same sums as the instrument's (to the bit)
            self._next_t = self._sched_t
        else:
            self._next_t = t + delay

    def due_s(self, due: float, ahead: int = 0, step_s: float | None = None) -> float:
        """When to poll: at the instrument's next reading (the host follows the trigger model's
        delays as its branches choose them, so it reads each reading as it is taken), or ``due``
        s from now for a segment that does not log, or ``ahead`` readings (``step_s`` apart,
        default the record interval) after the next one, to read several at once (unless the
        driver's ``predictive_polling`` is off: then each reading as it is taken); after a missed
        poll, at the reading after the one missed; a reading that is late is looked for again a
        tenth of a delay on."""
        if not self.logs:
            return max(due, 1e-6)
        now = self.ctx.clock.now()
        if self._next_t is None:
            return 1e-6
        at = self._next_t if self._poll_t is None else self._poll_t
        self._planned_t = None
        if self._poll_t is None and self._sched_t is not None and ahead > 0 and self.ctx.predictive:
            step = self.interval_s if step_s is None else step_s
            for _ in range(ahead):  # readings further on, ``step`` apart (the same sums)
                at += step
            self._planned_t = at
        if at <= now:
            return self.tol_s / 5
        delay = at - now
        while now + delay < at:  # a clock adds the delay to its now: not a bit before the reading
            delay = math.nextafter(delay, math.inf)
        return delay

    def check(self) -> str | None:
        raise NotImplementedError

    def next_due_s(self) -> float:
        """Seconds until the next poll is needed."""
        return self.due_s(min(self.ctx.poll_s, self.record_s))
