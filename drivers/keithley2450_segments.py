"""Techniques run host-side on a Keithley 2450: one segment per constant current, rest, constant
voltage or sweep, each setting the instrument up so that it keeps the cell inside its cut-off
and limits itself, and :class:`HostStepRun` running segments one after another on the shared
clock (see :mod:`drivers.keithley2450`)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from drivers.base import Point, SafetyLimitError
from drivers.clock import Clock
from drivers.keithley2450_scpi import BUFFER_POINTS, Keithley2450
from drivers.techniques import (
    Sweep,
)
from drivers.transport import InstrumentError

MAX_DELAY_S = 10_000.0  # the longest constant delay of a 2450 trigger-model block


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
    #: The instrument keeps the segment's readings in its buffer (a trigger model takes one
    #: every ``interval_s``, host or no host); False: the host reads one at each poll.
    logs = True
    interval_s: float = 0.0
    t_base: float = 0.0  # host time of the buffer's first reading
    n_read: int = 0  # buffer readings already read
    tol_s: float = 1e-9  # how close a reading's time must come to a time it is checked against
    _after_s: float = -math.inf  # readings up to this time were used (by this host or one before)
    _sched_t: float | None = None  # the instrument's next reading time, as its delays add up

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
            self.record(force=True)

    def _start_logging(self) -> None:
        if not self.logs:
            return
        self.interval_s = self.sampling_interval_s()
        self.tol_s = self.interval_s / 2  # the reading nearest a due time is the one due then
        self.t_base, self.n_read, self._sched_t = self.ctx.clock.now(), 0, None
        self.ctx.inst.start_logging(self.interval_s)

    def span_s(self) -> float | None:
        """How long the segment will last if a time or capacity cut-off ends it (None: unknown)."""
        return None

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

    def _readings(self) -> list[tuple[float, float, float]]:
        """New readings since the last one used: (host time, measured, source), oldest first."""
        if not self.logs:
            now = self.ctx.clock.now()
            return [(now, *self.ctx.inst.read())]
        inst = self.ctx.inst
        end = inst.buffer_end()
        if end < self.n_read:  # the buffer was cleared or wrapped: read it all again
            self.n_read = 0
        rows = inst.buffer_readings(self.n_read + 1, end) if end > self.n_read else []
        self.n_read = end
        readings = [(self.t_base + rel, measured, source) for measured, source, rel in rows]
        fresh = [r for r in readings if r[0] > self._after_s]  # not those used before a re-attach
        if fresh:
            self._after_s = fresh[-1][0] + self.tol_s
        return fresh

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
        self.tol_s, self.t_base, self.n_read, self._sched_t = self.interval_s / 2, t0, 0, None
        self._after_s = -math.inf if last is None else last.time_s + self.tol_s
        if inst.trigger_state != "RUNNING":  # it never started, or stopped: log from now on
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
        for t, measured, source in self._readings():
            self.apply_reading(measured, source)
            self.q += _mAh_g(self.i, t - self.t_last, self.ctx.mass_g)
            self.t_last = t
            self.end_reason = self.check()
            self.record(force=self.end_reason is not None)
            if self.end_reason is not None:
                return True
        return False

    def due_s(self, due: float) -> float:
        """``due`` (s from now) moved to the first reading of the instrument's at or after it.

        The instrument's reading times are added up delay by delay from the first, as its
        trigger model does (the same sums, so a host on the instrument's clock asks exactly when
        a reading is there); a reading that is late is looked for again a tenth of an interval on.
        """
        if not self.logs:
            return max(due, 1e-6)
        now, step = self.ctx.clock.now(), self.interval_s
        if self._sched_t is None:
            self._sched_t = self.t_base
        while self._sched_t <= self._after_s:  # readings already used
            self._sched_t += step
        at = self._sched_t
        while at < now + due - step * 1e-6:
            at += step
        return at - now if at > now else step / 10

    def check(self) -> str | None:
        raise NotImplementedError

    def next_due_s(self) -> float:
        """Seconds until the next poll is needed."""
        return self.due_s(min(self.ctx.poll_s, self.record_s))


@dataclass
class CcSegment(Segment):
    current_A: float = 0.0
    voltage_V: float | None = None
    capacity_mAh_g: float | None = None
    duration_s: float | None = None
    _last_reading: tuple[float, float] | None = None

    @property
    def discharge(self) -> bool:
        return self.current_A < 0

    def limit_V(self) -> float:
        """The voltage the instrument holds the cell at once it gets there: the cut-off, or
        the cell's safety limit when that comes first (or there is no voltage cut-off)."""
        ctx = self.ctx
        if self.discharge:
            return max(ctx.voltage_min_V, self.voltage_V if self.voltage_V is not None else -math.inf)
        return min(ctx.ceiling_V, self.voltage_V if self.voltage_V is not None else math.inf)

    def configure(self) -> None:
        inst = self.ctx.inst
        if self.discharge:
            # A current source would sink through 0 V (VLIM is a symmetric magnitude): source the
            # floor voltage instead, its current limit being the discharge current.
            inst.source_function = "voltage"
            inst.sense_function = "current"
            inst.current_limit_A = abs(self.current_A)
            inst.source_voltage_V = self.limit_V()
        else:
            inst.source_function = "current"
            inst.sense_function = "voltage"
            inst.voltage_limit_V = self.limit_V()  # the hardware clamps at the cut-off on charge
            inst.source_current_A = self.current_A
        inst.output_enabled = True

    def source_setting(self) -> tuple[str, float]:
        if self.discharge:
            return "voltage", self.limit_V()
        return "current", self.current_A

    def apply_reading(self, measured: float, source: float) -> None:
        if self.discharge:  # measured current, source readback = the cell's voltage
            self.v, self.i = source, measured
        else:  # measured voltage, source readback = the current actually flowing
            self.v, self.i = measured, source

    def held_at_limit(self) -> bool:
        """The instrument holds the voltage (the current fell below the set level) or the
        voltage reached the level the instrument would hold it at."""
        if self.current_A == 0:
            return False
        limit = self.limit_V()
        reached = self.v <= limit + 1e-9 if self.discharge else self.v >= limit - 1e-9
        return reached or abs(self.i) < 0.99 * abs(self.current_A)

    def _voltage_due_s(self) -> float:
        """Predictive polling: far from the voltage cut-off, poll less often.

        The time to the cut-off is extrapolated linearly from the last two readings; the next
        poll comes after a quarter of it, never sooner than the poll interval and never later
        than the record interval. The instrument reads every record interval whatever the host
        does, so this only says how many of its readings the host reads at once.
        """
        now = self.ctx.clock.now()
        previous = self._last_reading
        self._last_reading = (now, self.v)
        if previous is None or now <= previous[0] or self.voltage_V is None:
            return self.ctx.poll_s
        slope = (self.v - previous[1]) / (now - previous[0])
        remaining = self.voltage_V - self.v
        if slope == 0 or remaining / slope <= 0:
            return self.ctx.poll_s
        return min(self.record_s, 0.25 * remaining / slope)

    def check(self) -> str | None:
        now = self.t_last  # the time of the reading checked
        if self.held_at_limit():
            if self.voltage_V is not None and self.limit_V() == self.voltage_V:
                return "voltage"
            bound = "voltage_min" if self.discharge else "voltage_max"
            raise SafetyLimitError(
                f"{self.ctx.inst.name}: the cell reached its {bound} of {self.limit_V():g} V "
                f"(at {self.v:.4f} V) before the step's cut-off; the instrument held it there and "
                "the cell was put at open circuit"
            )
        rate = abs(_mAh_g(self.current_A, 1.0, self.ctx.mass_g))
        if self.capacity_mAh_g is not None and abs(self.q) >= self.capacity_mAh_g - max(rate * self.tol_s, 1e-9):
            return "capacity"
        if self.duration_s is not None and now - self.t0 >= self.duration_s - self.tol_s:
            return "time"
        return None

    def span_s(self) -> float | None:
        spans = [] if self.duration_s is None else [self.duration_s]
        if self.capacity_mAh_g is not None and self.current_A != 0:
            spans.append(self.capacity_mAh_g / abs(_mAh_g(self.current_A, 1.0, self.ctx.mass_g)))
        return min(spans) if spans else None

    def next_due_s(self) -> float:
        due = min(self.ctx.poll_s, self.record_s)
        now = self.ctx.clock.now()
        if self.ctx.predictive and self.voltage_V is not None:
            due = max(due, self._voltage_due_s())
        if self.duration_s is not None:
            due = min(due, self.t0 + self.duration_s - now)
        if self.capacity_mAh_g is not None and self.current_A != 0:
            rate = abs(_mAh_g(self.current_A, 1.0, self.ctx.mass_g))
            due = min(due, (self.capacity_mAh_g - abs(self.q)) / rate)
        return self.due_s(max(due, 0.0))


@dataclass
class RestSegment(Segment):
    duration_s: float = 0.0
    dvdt_V_s: float | None = None
    _prev: tuple[float, float] | None = None

    def configure(self) -> None:
        inst = self.ctx.inst
        inst.source_function = "current"
        inst.sense_function = "voltage"
        inst.voltage_limit_V = self.ctx.ceiling_V
        inst.source_current_A = 0.0
        inst.output_enabled = True

    def source_setting(self) -> tuple[str, float]:
        return "current", 0.0

    def check(self) -> str | None:
        now = self.t_last  # the time of the reading checked
        if self.dvdt_V_s is not None and now - self.t_record >= self.record_s - self.tol_s:
            if self._prev is not None and now > self._prev[0]:
                slope = abs(self.v - self._prev[1]) / (now - self._prev[0])
                if slope < self.dvdt_V_s:
                    return "dvdt"
            self._prev = (now, self.v)
        if now - self.t0 >= self.duration_s - self.tol_s:
            return "time"
        return None

    def span_s(self) -> float | None:
        return self.duration_s

    def next_due_s(self) -> float:
        now = self.ctx.clock.now()
        return self.due_s(max(min(self.record_s, self.t0 + self.duration_s - now), 0.0))


@dataclass
class CvSegment(Segment):
    voltage_V: float = 0.0
    current_limit_A: float = 0.1
    stop_current_A: float | None = None
    duration_s: float | None = None

    def configure(self) -> None:
        inst = self.ctx.inst
        inst.source_function = "voltage"
        inst.sense_function = "current"
        inst.current_limit_A = self.current_limit_A
        inst.source_voltage_V = self.voltage_V
        inst.output_enabled = True

    def source_setting(self) -> tuple[str, float]:
        return "voltage", self.voltage_V

    def apply_reading(self, measured: float, source: float) -> None:
        self.v, self.i = source, measured

    def check(self) -> str | None:
        now = self.t_last  # the time of the reading checked
        if self.stop_current_A is not None and abs(self.i) <= self.stop_current_A and now > self.t0:
            return "current"
        if self.duration_s is not None and now - self.t0 >= self.duration_s - self.tol_s:
            return "time"
        return None

    def span_s(self) -> float | None:
        return self.duration_s

    def next_due_s(self) -> float:
        due = min(self.ctx.poll_s, self.record_s)
        if self.duration_s is not None:
            due = min(due, self.t0 + self.duration_s - self.ctx.clock.now())
        return self.due_s(max(due, 0.0))


@dataclass
class SweepSegment(Segment):
    """The host steps the voltage, reading at each poll (no trigger model: a dead host's sweep
    stops at the last level it set)."""

    sweep: Sweep | None = None
    current_limit_A: float = 0.1
    logs = False

    def _profile(self, elapsed_s: float) -> tuple[float, bool]:
        assert self.sweep is not None
        s = self.sweep
        rate = s.scan_rate_mV_s / 1000.0
        legs = [(s.start_V, s.vertex1_V)]
        if not s.linear:
            for _ in range(s.cycles):
                legs += [(s.vertex1_V, s.vertex2_V), (s.vertex2_V, s.vertex1_V)]
            legs[-1] = (s.vertex2_V, s.start_V)
        t = elapsed_s
        for a, b in legs:
            span = abs(b - a) / rate
            if t <= span:
                return a + math.copysign(rate * t, b - a), False
            t -= span
        return legs[-1][1], True

    def configure(self) -> None:
        inst = self.ctx.inst
        inst.source_function = "voltage"
        inst.sense_function = "current"
        inst.current_limit_A = self.current_limit_A
        inst.source_voltage_V = self._profile(0.0)[0]
        inst.output_enabled = True

    def apply_reading(self, measured: float, source: float) -> None:
        self.v, self.i = source, measured

    def source_setting(self) -> tuple[str, float]:
        # The host steps the voltage: the instrument holds the last level the old host set.
        return "voltage", float(self.ctx.inst.source_voltage_V)

    def next_due_s(self) -> float:
        """The host steps the voltage in 1 mV stairs (at most every poll, at least every record)."""
        assert self.sweep is not None
        stair_s = 1.0 / self.sweep.scan_rate_mV_s
        return min(self.record_s, max(self.ctx.poll_s, stair_s))

    def check(self) -> str | None:
        target, done = self._profile(self.ctx.clock.now() - self.t0)
        if done:
            return "time"
        self.ctx.inst.source_voltage_V = target
        return None
