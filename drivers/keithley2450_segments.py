"""Techniques run host-side on a Keithley 2450: one segment per constant current, rest, constant
voltage or sweep, each setting the instrument up so that it keeps the cell inside its cut-off
and limits itself, and :class:`HostStepRun` running segments one after another on the shared
clock (see :mod:`drivers.keithley2450`)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from drivers.base import Point, SafetyLimitError, StepProgress
from drivers.clock import Clock
from drivers.keithley2450_scpi import Keithley2450
from drivers.techniques import (
    Sweep,
)
from drivers.transport import InstrumentError

# --- host-side techniques ------------------------------------------------------------


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

    def start(self) -> None:
        """Set the instrument up, then take the first point: the segment's time (its duration
        cut-off, the rest's length) counts from that point, so it lasts its full duration
        between its first and last points however long setting up took on a busy link."""
        self.configure_verified()
        self.ctx.inst.check_errors(f"starting {type(self).__name__}")
        self.t_last = self.ctx.clock.now()
        self.measure()
        self.t0 = self.t_last
        self.record(force=True)

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
        self.measure()
        self.record(force=True)

    def measure(self) -> None:
        """Read the instrument; the reading is stamped with the time it was asked for."""
        now = self.ctx.clock.now()
        measured, source = self.ctx.inst.read()
        self.apply_reading(measured, source)
        self.q += _mAh_g(self.i, now - self.t_last, self.ctx.mass_g)
        self.t_last = now

    def apply_reading(self, measured: float, source: float) -> None:
        self.v, self.i = measured, source

    def record(self, force: bool = False) -> None:
        now = self.t_last  # the time of the reading, not of storing it (a free-running clock moves)
        if force or now - self.t_record >= self.record_s - 1e-9:
            self.t_record = now
            self.ctx.emit(Point(now, self.v, self.i, self.q, substep=self.substep))

    def poll(self) -> bool:
        self.measure()
        self.end_reason = self.check()
        self.record(force=self.end_reason is not None)
        return self.end_reason is not None

    def check(self) -> str | None:
        raise NotImplementedError

    def next_due_s(self) -> float:
        """Seconds until the next poll is needed."""
        return min(self.ctx.poll_s, self.record_s)


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
        than the record interval. Near the cut-off every poll interval is used, so the cut-off
        is still met within one poll interval.
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
        if self.capacity_mAh_g is not None and abs(self.q) >= self.capacity_mAh_g - 1e-9:
            return "capacity"
        if self.duration_s is not None and now - self.t0 >= self.duration_s - 1e-9:
            return "time"
        return None

    def next_due_s(self) -> float:
        due = super().next_due_s()
        now = self.ctx.clock.now()
        if self.ctx.predictive and self.voltage_V is not None:
            due = max(due, self._voltage_due_s())
        if self.duration_s is not None:
            due = min(due, self.t0 + self.duration_s - now)
        if self.capacity_mAh_g is not None and self.current_A != 0:
            rate = abs(_mAh_g(self.current_A, 1.0, self.ctx.mass_g))
            due = min(due, (self.capacity_mAh_g - abs(self.q)) / rate)
        return max(due, 1e-6)


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
        if self.dvdt_V_s is not None and now - self.t_record >= self.record_s - 1e-9:
            if self._prev is not None and now > self._prev[0]:
                slope = abs(self.v - self._prev[1]) / (now - self._prev[0])
                if slope < self.dvdt_V_s:
                    return "dvdt"
            self._prev = (now, self.v)
        if now - self.t0 >= self.duration_s - 1e-9:
            return "time"
        return None

    def next_due_s(self) -> float:
        # Nothing to watch at open circuit but the time: poll at the record interval.
        now = self.ctx.clock.now()
        return max(min(self.record_s, self.t0 + self.duration_s - now), 1e-6)


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
        if self.duration_s is not None and now - self.t0 >= self.duration_s - 1e-9:
            return "time"
        return None

    def next_due_s(self) -> float:
        due = super().next_due_s()
        if self.duration_s is not None:
            due = min(due, self.t0 + self.duration_s - self.ctx.clock.now())
        return max(due, 1e-6)


@dataclass
class SweepSegment(Segment):
    sweep: Sweep | None = None
    current_limit_A: float = 0.1

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


class HostStepRun:
    """A technique run by polling from the host; segments follow one another."""

    def __init__(
        self,
        ctx: SegmentContext,
        segments: Callable[[], Segment | None],
        resume: StepProgress | None = None,
    ) -> None:
        self._ctx = ctx
        self._next_segment = segments
        self._points: list[Point] = []
        ctx.emit = self._points.append
        self.end_reason: str | None = None
        #: The host starts the step, so its clock stamps the start (kept from the first host).
        self.started_at_s = resume.started_at_s if resume is not None else ctx.clock.now()
        #: Points are read as they are measured; none is numbered, so none can go missing.
        self.missing_points = 0
        if resume is None:
            self._segment = self._next_segment()
            if self._segment is None:
                raise ValueError("a step needs at least one segment")
            self._segment.start()
            return
        last = resume.last
        for _ in range(last.substep if last is not None else 0):  # segments already over
            if self._next_segment() is None:
                raise ValueError(f"the step has no substep {last.substep if last else 0}")
        self._segment = self._next_segment()
        if self._segment is None:
            raise ValueError("a step needs at least one segment")
        t0 = resume.substep_started_s if resume.substep_started_s is not None else resume.started_at_s
        self._segment.resume(t0, last)

    def next_poll_delay_s(self) -> float:
        return self._segment.next_due_s() if self._segment else self._ctx.poll_s

    def poll(self) -> tuple[list[Point], bool]:
        if self.end_reason is None and self._segment is not None and self._segment.poll():
            reason = self._segment.end_reason
            following = self._next_segment()
            if following is None:
                self.end_reason = reason
                self._ctx.inst.output_enabled = False
            else:
                self._segment = following
                following.start()
        points, self._points = self._points, []
        self._ctx.emit = self._points.append
        return points, self.end_reason is not None

    def abort(self) -> None:
        self._ctx.inst.output_enabled = False
        if self.end_reason is None:
            self.end_reason = "aborted"
