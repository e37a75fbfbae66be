"""Keithley 2450 SourceMeter used as a galvanostat (SCPI over pyvisa, pyserial or in-process).

:class:`Keithley2450` is the wire protocol: each setting and query is declared once, as in the
manual's command table, with a strict validator. :class:`Keithley2450Potentiostat` runs the
technique set host-side on top of it: the 2450 has no on-instrument program here, so the host
polls on the shared clock and ends each step at its cut-off. Cut-offs that the host can predict
(time, and capacity at constant current) are polled exactly when due; voltage cut-offs are met
within one poll interval.

The instrument itself keeps the cell inside its voltage cut-off and its limits
(``voltage_min``/``voltage_max``), so a host that dies mid-step never drives a cell past them.
The 2450's limits are symmetric magnitudes (``:SOUR:CURR:VLIM`` bounds the output to
±VLIM), which protects a charge but not a discharge: a current source sinking current from a
cell drives it through 0 V towards -VLIM. So

* a charge sources current with ``VLIM`` at the cut-off (or ``voltage_max``, whichever is
  lower): at the cut-off the source turns into a voltage hold there;
* a discharge sources *voltage* at the cut-off (or ``voltage_min``, whichever is higher) with
  the current limit (``:SOUR:VOLT:ILIM``) at the discharge current: while the cell is above the
  set voltage the source sinks exactly the limit current (constant current), and at the set
  voltage it holds there, so the cell can never go below it;
* a constant-voltage hold or a sweep refuses levels outside the cell's limits.

Readings use the 2450's default source readback (``:SOUR:<function>:READ:BACK ON``, restored by
``*RST``): the ``SOUR`` element of ``:READ?`` is the *measured* source value, so while a limit
holds the cell the host sees the current fall (charge) or the voltage it is held at (discharge).
A step whose limit is the cell's own safety limit rather than its cut-off ends there with a
:class:`~drivers.base.SafetyLimitError`.

Open circuit is sourcing 0 A with the output on (the voltage is still measured); the safe state
is output off with the output-off mode ``HIMP`` (relay open), never the factory ``NORM`` mode,
which connects a 0 V source and slowly discharges a battery.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from drivers.base import Point, SafetyLimitError, StepProgress
from drivers.clock import Clock
from drivers.lab_config import InstrumentConfig, Volts
from drivers.registry import InstrumentModel, open_transport
from drivers.scpi import (
    Control,
    Measurement,
    ScpiInstrument,
    parse_bool,
    strict_choice,
    strict_range,
)
from drivers.techniques import (
    GITT,
    ConstantCurrent,
    ConstantVoltage,
    Loop,
    Rest,
    Sweep,
    Technique,
)
from drivers.transport import ByteEndpoint, InstrumentError

MAX_CURRENT_A = 1.05


def _parse_source_function(text: str) -> str:
    word = text.strip().upper()
    return {"CURR": "current", "VOLT": "voltage"}[word]


class Keithley2450(ScpiInstrument):
    """Wire protocol of the Keithley 2450 (native SCPI command set)."""

    identity = Measurement("*IDN?", "Manufacturer, model, serial number, firmware.")
    source_function = Control(
        ":SOUR:FUNC?",
        ":SOUR:FUNC {}",
        "Source 'current' or 'voltage'.",
        validator=strict_choice({"current": "CURR", "voltage": "VOLT"}),
        parse=_parse_source_function,
    )
    source_current_A = Control(
        ":SOUR:CURR?",
        ":SOUR:CURR {:.6e}",
        "Source current level, A (positive charges the cell on HI).",
        validator=strict_range(-MAX_CURRENT_A, MAX_CURRENT_A),
        parse=float,
    )
    voltage_limit_V = Control(
        ":SOUR:CURR:VLIM?",
        ":SOUR:CURR:VLIM {:.6g}",
        "Voltage limit while sourcing current, V; the source clamps there.",
        validator=strict_range(0.02, 210.0),
        parse=float,
    )
    voltage_limit_tripped = Measurement(
        ":SOUR:CURR:VLIM:TRIP?", "True when the voltage limit is clamping.", parse=parse_bool
    )
    source_voltage_V = Control(
        ":SOUR:VOLT?",
        ":SOUR:VOLT {:.6g}",
        "Source voltage level, V.",
        validator=strict_range(-210.0, 210.0),
        parse=float,
    )
    current_limit_A = Control(
        ":SOUR:VOLT:ILIM?",
        ":SOUR:VOLT:ILIM {:.6e}",
        "Current limit while sourcing voltage, A.",
        validator=strict_range(1e-9, MAX_CURRENT_A),
        parse=float,
    )
    sense_function: Control[str] = Control(
        None,
        ':SENS:FUNC "{}"',
        "Measure 'voltage' or 'current'.",
        validator=strict_choice({"voltage": "VOLT", "current": "CURR"}),
    )
    voltage_nplc = Control(
        ":SENS:VOLT:NPLC?",
        ":SENS:VOLT:NPLC {:g}",
        "Voltage integration time in power-line cycles.",
        validator=strict_range(0.01, 10.0),
        parse=float,
    )
    output_enabled = Control(
        ":OUTP?",
        ":OUTP {}",
        "Output on (True) or off (False).",
        validator=strict_choice({True: "ON", False: "OFF"}),
        parse=parse_bool,
    )
    output_off_mode = Control(
        ":OUTP:CURR:SMOD?",
        ":OUTP:SMOD {}",  # every source function: the 2450 keeps one output-off state per function
        "What 'output off' means: 'high_impedance' opens the relay (use this for batteries).",
        validator=strict_choice(
            {"high_impedance": "HIMP", "normal": "NORM", "zero": "ZERO", "guard": "GUAR"}
        ),
        parse=lambda s: {
            "HIMP": "high_impedance",
            "NORM": "normal",
            "ZERO": "zero",
            "GUAR": "guard",
        }[s.strip().upper()],
    )
    voltage_V = Measurement(":MEAS:VOLT?", "One voltage measurement, V.", parse=float)
    current_A = Measurement(":MEAS:CURR?", "One current measurement, A.", parse=float)

    #: Times a query is asked again after a lost, late or garbled reply (the link, not the
    #: instrument, failed: queries change nothing, so asking again is safe). Generous: the
    #: instrument keeps the cell inside its limits meanwhile, and a link that is down for a
    #: while costs at most this many transport timeouts before the cell is failed.
    retries = 20

    def ask(self, command: str) -> str:
        """Query, asking again after a reply that was lost, late or garbled.

        After any failed exchange whatever is still on its way (a late reply to the failed
        query) is drained before the next query, so a late reply is never taken for the answer
        to a later one. InstrumentError once ``retries`` more attempts have failed too.
        """
        failure: InstrumentError | None = None
        for _ in range(self.retries + 1):
            try:
                if failure is not None:
                    self.transport.read_available()
                return super().ask(command)
            except InstrumentError as exc:
                if "closed" in str(exc):
                    raise
                failure = exc
        assert failure is not None
        raise InstrumentError(
            self.name,
            f"{failure.args[-1] if failure.args else failure} ({self.retries + 1} attempts)",
            command,
        ) from failure

    def read(self) -> tuple[float, float]:
        """Take a reading: (measured value, source value)."""
        command = ':READ? "defbuffer1", READ, SOUR'
        reply = ""
        for _ in range(self.retries + 1):
            reply = self.ask(command)
            try:
                measured, source = (float(x) for x in reply.split(","))
            except ValueError:
                self.transport.read_available()
                continue  # a garbled reply that still decoded: read again
            return measured, source
        raise InstrumentError(self.name, f"garbled reply {reply!r}", command)

    def next_error(self) -> tuple[int, str]:
        command = ":SYST:ERR?"
        reply = self.ask(command)
        code_text, _, message = reply.partition(",")
        try:
            code = int(code_text)
        except ValueError as exc:
            raise InstrumentError(self.name, f"garbled reply {reply!r}", command) from exc
        return code, message.strip().strip('"')

    def errors(self) -> list[tuple[int, str]]:
        """Drain the error queue."""
        found = []
        for _ in range(11):
            code, message = self.next_error()
            if code == 0:
                break
            found.append((code, message))
        return found

    def check_errors(self, context: str) -> None:
        """Raise InstrumentError listing every queued error (after ``context``)."""
        found = self.errors()
        if found:
            listed = "; ".join(f"{code} {message}" for code, message in found)
            raise InstrumentError(self.name, f"instrument reported errors after {context}: {listed}")

    def reset(self) -> None:
        self.write("*RST")
        self.write("*CLS")


# --- host-side techniques ------------------------------------------------------------


def _mAh_g(current_A: float, dt_s: float, mass_g: float) -> float:
    return current_A * dt_s / 3.6 / mass_g


@dataclass
class _Ctx:
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
class _Segment:
    """One host-run segment (a CC pulse, a rest, a hold, a sweep)."""

    ctx: _Ctx
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
        self.t0 = self.t_last = self.ctx.clock.now()
        self.configure_verified()
        self.ctx.inst.check_errors(f"starting {type(self).__name__}")
        self.measure()
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
        now = self.ctx.clock.now()
        measured, source = self.ctx.inst.read()
        self.apply_reading(measured, source)
        self.q += _mAh_g(self.i, now - self.t_last, self.ctx.mass_g)
        self.t_last = now

    def apply_reading(self, measured: float, source: float) -> None:
        self.v, self.i = measured, source

    def record(self, force: bool = False) -> None:
        now = self.ctx.clock.now()
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
class _CC(_Segment):
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
        now = self.ctx.clock.now()
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
class _Rest(_Segment):
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
        now = self.ctx.clock.now()
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
class _CV(_Segment):
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
        now = self.ctx.clock.now()
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
class _Sweep(_Segment):
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
        ctx: _Ctx,
        segments: Callable[[], _Segment | None],
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


class Keithley2450Potentiostat:
    """The technique set on a Keithley 2450, run host-side on the shared clock."""

    def __init__(
        self,
        instrument: Keithley2450,
        clock: Clock,
        poll_interval_s: float = 1.0,
        compliance_V: float = 5.0,
        max_current_A: float = 0.1,
        predictive_polling: bool = True,
    ) -> None:
        if poll_interval_s <= 0:
            raise ValueError(f"poll_interval_s must be > 0, got {poll_interval_s}")
        self.instrument = instrument
        self.clock = clock
        self.name = instrument.name
        self.poll_interval_s = poll_interval_s
        self.compliance_V = compliance_V
        self.max_current_A = max_current_A
        self.predictive_polling = predictive_polling
        self.voltage_min_V = 0.0
        self.voltage_max_V: float | None = None
        self._initialised = False

    def set_cell_limits(self, voltage_min_V: float, voltage_max_V: float) -> None:
        """The cell's safety limits: every step is set up so that the instrument itself keeps
        the cell inside them (see the module's docstring)."""
        if not voltage_min_V < voltage_max_V:
            raise ValueError(f"{self.name}: voltage_min_V must be below voltage_max_V")
        self.voltage_min_V, self.voltage_max_V = voltage_min_V, voltage_max_V

    def connect(self, reset: bool = True) -> str:
        """The contract's connect step (:class:`drivers.base.PotentiostatDriver`): :meth:`initialise`."""
        return self.initialise(reset=reset)

    def initialise(self, reset: bool = True) -> str:
        """Identify the instrument and put it in a known, safe configuration.

        ``reset=False`` (an orchestrator coming back to a step that may still be running)
        identifies it and makes sure output-off opens the relay, touching nothing else.
        """
        idn = self.instrument.identity
        if "2450" not in idn:
            raise InstrumentError(self.name, f"expected a Keithley 2450, got {idn!r}", "*IDN?")
        inst = self.instrument
        if reset:
            inst.reset()
        inst.output_off_mode = "high_impedance"
        if reset:
            inst.sense_function = "voltage"
            inst.voltage_nplc = 1.0
        inst.check_errors("initialisation")
        self._initialised = True
        return idn

    def _ctx(self, mass_g: float) -> _Ctx:
        if not self._initialised:
            self.initialise()
        return _Ctx(
            self.instrument,
            self.clock,
            mass_g,
            self.poll_interval_s,
            self.compliance_V,
            lambda p: None,
            self.predictive_polling,
            self.voltage_min_V,
            self.voltage_max_V,
        )

    def _check_level(self, ctx: _Ctx, what: str, level_V: float) -> None:
        if not ctx.voltage_min_V <= level_V <= ctx.ceiling_V:
            raise ValueError(
                f"{self.name}: {what} {level_V:g} V is outside the cell's limits "
                f"{ctx.voltage_min_V:g}-{ctx.ceiling_V:g} V (voltage_min/voltage_max); e.g. a "
                f"cut-off of {min(ctx.ceiling_V, max(ctx.voltage_min_V, 4.5)):g} V"
            )

    def _current_A(self, current_mA_g: float, mass_g: float) -> float:
        current = current_mA_g * mass_g / 1000.0
        if abs(current) > self.max_current_A:
            raise ValueError(
                f"{self.name}: {current_mA_g} mA/g on {mass_g * 1000:g} mg is {current:.4g} A, "
                f"above this channel's max_current_A = {self.max_current_A} A"
            )
        return current

    def _segments(self, step: Technique | Loop, ctx: _Ctx) -> list[Callable[[int], _Segment]]:
        """Factories (taking a substep number) for the segments of a step, in order."""
        mass = ctx.mass_g
        if isinstance(step, ConstantCurrent):
            c = step.cutoffs
            current = self._current_A(step.current_mA_g, mass)
            if c.voltage_V is not None:
                self._check_level(ctx, "the voltage cut-off", c.voltage_V)
            return [
                lambda n: _CC(
                    ctx,
                    n,
                    step.record_interval_s,
                    current_A=current,
                    voltage_V=c.voltage_V,
                    capacity_mAh_g=c.capacity_mAh_g,
                    duration_s=c.duration_s,
                )
            ]
        if isinstance(step, Rest):
            return [
                lambda n: _Rest(
                    ctx,
                    n,
                    step.record_interval_s,
                    duration_s=step.duration_s,
                    dvdt_V_s=step.dvdt_V_s,
                )
            ]
        if isinstance(step, ConstantVoltage):
            c = step.cutoffs
            stop = None if c.current_mA_g is None else c.current_mA_g * mass / 1000.0
            self._check_level(ctx, "the held voltage", step.voltage_V)
            return [
                lambda n: _CV(
                    ctx,
                    n,
                    step.record_interval_s,
                    voltage_V=step.voltage_V,
                    current_limit_A=self.max_current_A,
                    stop_current_A=stop,
                    duration_s=c.duration_s,
                )
            ]
        if isinstance(step, Sweep):
            levels = [step.start_V, step.vertex1_V] + ([] if step.linear else [step.vertex2_V])
            for level in levels:
                self._check_level(ctx, "a level of the sweep", level)
            return [
                lambda n: _Sweep(
                    ctx, n, step.record_interval_s, sweep=step, current_limit_A=self.max_current_A
                )
            ]
        if isinstance(step, Loop):
            body = [f for s in step.steps for f in self._segments(s, ctx)]
            return body * step.count
        raise TypeError(f"{self.name}: technique {type(step).__name__} is not supported")

    def start_step(self, step: Technique | Loop, active_mass_g: float, step_index: int) -> HostStepRun:
        if active_mass_g <= 0:
            raise ValueError(f"active_mass_g must be > 0, got {active_mass_g}")
        return self._run(step, self._ctx(active_mass_g))

    def _run(self, step: Technique | Loop, ctx: _Ctx, resume: StepProgress | None = None) -> HostStepRun:
        if isinstance(step, GITT):
            return self._start_gitt(step, ctx, resume)
        factories = iter(enumerate(self._segments(step, ctx)))

        def next_segment() -> _Segment | None:
            item = next(factories, None)
            return None if item is None else item[1](item[0])

        return HostStepRun(ctx, next_segment, resume)

    def reattach(self, step: Technique | Loop, active_mass_g: float, progress: StepProgress) -> HostStepRun:
        """Carry on a step the instrument went on sourcing while no host polled it.

        The 2450 runs no program here: it kept the source where the step set it (a charge
        clamped at its cut-off by ``VLIM``) and measured nothing for the host meanwhile, so the
        step's record has a gap from the last stored point to now; a cut-off that fell in the
        gap ends the step at the first poll. InstrumentError if the output is off or the source
        is not what the step set.
        """
        if not self._initialised:
            self.initialise(reset=False)
        if not self.instrument.output_enabled:
            raise InstrumentError(
                self.name,
                f"the output is off: step {progress.step_index} is no longer running on the instrument",
                ":OUTP?",
            )
        return self._run(step, self._ctx(active_mass_g), progress)

    def _start_gitt(self, step: GITT, ctx: _Ctx, resume: StepProgress | None = None) -> HostStepRun:
        current = self._current_A(step.current_mA_g, ctx.mass_g)
        self._check_level(ctx, "the GITT cut-off", step.cutoff_voltage_V)
        segments: list[_Segment] = []

        def next_segment() -> _Segment | None:
            n = len(segments)
            previous = segments[-1] if segments else None
            if isinstance(previous, _CC) and previous.end_reason == "voltage":
                return None  # the pulse met the cut-off voltage: GITT is over
            if n >= 2 * step.max_pulses:
                return None
            if n % 2 == 0:
                seg: _Segment = _CC(
                    ctx,
                    n,
                    step.record_interval_s,
                    current_A=current,
                    voltage_V=step.cutoff_voltage_V,
                    duration_s=step.pulse_s,
                )
            else:
                seg = _Rest(ctx, n, step.record_interval_s, duration_s=step.rest_s)
            segments.append(seg)
            return seg

        return HostStepRun(ctx, next_segment, resume)

    def safe_state(self) -> None:
        """Output off (the relay opens: high impedance), read back, sent again if it was lost."""
        for _ in range(self.instrument.retries + 1):
            self.instrument.output_enabled = False
            try:
                if not self.instrument.output_enabled:
                    return
            except InstrumentError:
                continue
        raise InstrumentError(self.name, "could not switch the output off", ":OUTP OFF")

    def measure_voltage_V(self) -> float:
        return float(self.instrument.voltage_V)

    def close(self) -> None:
        try:
            self.safe_state()
        finally:
            self.instrument.transport.close()


# ----------------------------------------------------------------------------- lab-file model
class Keithley2450Config(InstrumentConfig):
    """``[instruments.NAME]`` of a Keithley 2450 (a VISA resource: USB, GPIB, TCPIP)."""

    driver: Literal["keithley2450"]
    compliance: Volts = 5.0


def _open(
    name: str, config: Keithley2450Config, clock: Clock, endpoint: ByteEndpoint | None
) -> Keithley2450Potentiostat:
    transport = open_transport(name, config, endpoint)
    return Keithley2450Potentiostat(
        Keithley2450(transport, name),
        clock,
        poll_interval_s=config.poll_interval,
        compliance_V=config.compliance,
    )


MODEL = InstrumentModel(
    "keithley2450", "potentiostat", Keithley2450Config, _open, "Keithley 2450 SourceMeter"
)
