"""Keithley 2450 SourceMeter used as a galvanostat (SCPI over pyvisa, pyserial or in-process).

:class:`Keithley2450` is the wire protocol: each setting and query is declared once, as in the
manual's command table, with a strict validator. :class:`Keithley2450Potentiostat` runs the
technique set host-side on top of it: the host sets each segment of a step up and ends it at its
cut-off, but the readings are the instrument's: a trigger model takes one into ``defbuffer1``
every sampling interval (host or no host) and the host reads the buffer, so a host that died and
comes back finds every reading taken meanwhile. Readings fall exactly on cut-offs that can be
predicted (time, and capacity at constant current). A constant current's voltage cut-off is met
by the instrument: limit branches of its trigger model end the step at the first reading past
it, output off, reading every poll interval near it (:mod:`drivers.keithley2450.cc`), so it is
met within one poll interval, with or without a host, and never held.

Every step with a duration or a cut-off is ended by the instrument, so a dead host never keeps a
cell in a step longer than asked: a constant current's time and capacity cut-offs by a counter
branch (:mod:`drivers.keithley2450.cc`); a rest and a constant-voltage hold at their duration
(a counter branch) and a hold at its current cut-off (a limit branch, ``|I|`` inside the
cut-off), output off (:mod:`drivers.keithley2450.holds`); a sweep is a staircase the instrument
runs from a source configuration list, output off just after the sweep's end
(:mod:`drivers.keithley2450.sweep`). Only a rest's dV/dt cut-off is the host's (within the
rest's duration).

The instrument itself keeps the cell inside its voltage cut-off and its limits
(``voltage_min``/``voltage_max``), so a host that dies mid-step never drives a cell past them.
The 2450's limits are symmetric magnitudes (``:SOUR:CURR:VLIM`` bounds the output to
±VLIM), which protects a charge but not a discharge: a current source sinking current from a
cell drives it through 0 V towards -VLIM. So

* a charge sources current with ``VLIM`` at the cut-off (or ``voltage_max``, whichever is
  lower): the hardware clamps there, and the limit branch turns the output off at that reading;
* a discharge sources *voltage* at the cut-off (or ``voltage_min``, whichever is higher) with
  the current limit (``:SOUR:VOLT:ILIM``) at the discharge current: while the cell is above the
  set voltage the source sinks exactly the limit current (constant current), so the cell can
  never go below it, and the limit branch turns the output off when it gets there;
* a constant-voltage hold or a sweep refuses levels outside the cell's limits.

Readings use the 2450's default source readback (``:SOUR:<function>:READ:BACK ON``, restored by
``*RST``): the ``SOUR`` element of ``:READ?`` is the *measured* source value, so while a limit
holds the cell the host sees the current fall (a charge's last reading). A step whose limit is the cell's own safety limit rather than its cut-off ends there with a
:class:`~drivers.base.SafetyLimitError`.

Open circuit is sourcing 0 A with the output on (the voltage is still measured); the safe state
is output off with the output-off mode ``HIMP`` (relay open), never the factory ``NORM`` mode,
which connects a 0 V source and slowly discharges a battery.

The SCPI command table is :mod:`drivers.keithley2450.scpi`; the host-side segments are
:mod:`drivers.keithley2450.cc` (constant current), :mod:`drivers.keithley2450.holds` (rest,
constant voltage), :mod:`drivers.keithley2450.sweep` and :mod:`drivers.keithley2450.segments`
(what they share), and :class:`HostStepRun`, which runs them one after another,
:mod:`drivers.keithley2450.steprun`.
"""

from __future__ import annotations

from collections.abc import Callable

from drivers.base import StepProgress
from drivers.clock import Clock
from drivers.keithley2450.cc import CcSegment
from drivers.keithley2450.config import Keithley2450Config
from drivers.keithley2450.holds import CvSegment, RestSegment
from drivers.keithley2450.scpi import Keithley2450 as Keithley2450
from drivers.keithley2450.segments import Segment, SegmentContext
from drivers.keithley2450.steprun import HostStepRun as HostStepRun
from drivers.keithley2450.sweep import SweepSegment
from drivers.registry import open_transport
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


class Keithley2450Potentiostat:
    """The technique set on a Keithley 2450, run host-side on the shared clock.

    ``predictive_polling`` (default on): where no reading can end the step (far from a cut-off,
    a rest ending on time), the host reads several of the instrument's buffered readings in one
    poll; off, it reads each reading as the instrument takes it (more bus traffic, the same
    points).
    """

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

    def _ctx(self, mass_g: float) -> SegmentContext:
        if not self._initialised:
            self.initialise()
        return SegmentContext(
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

    def _check_level(self, ctx: SegmentContext, what: str, level_V: float) -> None:
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

    def _segments(self, step: Technique | Loop, ctx: SegmentContext) -> list[Callable[[int], Segment]]:
        """Factories (taking a substep number) for the segments of a step, in order."""
        mass = ctx.mass_g
        if isinstance(step, ConstantCurrent):
            c = step.cutoffs
            current = self._current_A(step.current_mA_g, mass)
            if c.voltage_V is not None:
                self._check_level(ctx, "the voltage cut-off", c.voltage_V)
            return [
                lambda n: CcSegment(
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
                lambda n: RestSegment(
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
                lambda n: CvSegment(
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
                lambda n: SweepSegment(
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

    def _run(
        self, step: Technique | Loop, ctx: SegmentContext, resume: StepProgress | None = None
    ) -> HostStepRun:
        if isinstance(step, GITT):
            return self._start_gitt(step, ctx, resume)
        factories = iter(enumerate(self._segments(step, ctx)))

        def next_segment() -> Segment | None:
            item = next(factories, None)
            return None if item is None else item[1](item[0])

        return HostStepRun(ctx, next_segment, resume)

    def reattach(self, step: Technique | Loop, active_mass_g: float, progress: StepProgress) -> HostStepRun:
        """Carry on a step the instrument went on sourcing while no host polled it.

        The 2450 kept the source where the step set it and its trigger model kept reading into
        the buffer: the first poll reads every reading after the last stored point, so the
        record goes on without a gap. A segment whose trigger model met its limit or its
        duration meanwhile ended there on the instrument (output off, model idle): the step ends
        at that reading (a sweep past its end: at the last point stored). A trigger model that no longer runs is started again (the record
        then has a gap up to now). InstrumentError if the output is off while no trigger model
        ran to its end, or the source is not what the step set.
        """
        if not self._initialised:
            self.initialise(reset=False)
        if not self.instrument.output_enabled and self.instrument.trigger_state != "IDLE":
            raise InstrumentError(
                self.name,
                f"the output is off: step {progress.step_index} is no longer running on the instrument",
                ":OUTP?",
            )
        return self._run(step, self._ctx(active_mass_g), progress)

    def _start_gitt(self, step: GITT, ctx: SegmentContext, resume: StepProgress | None = None) -> HostStepRun:
        current = self._current_A(step.current_mA_g, ctx.mass_g)
        self._check_level(ctx, "the GITT cut-off", step.cutoff_voltage_V)
        segments: list[Segment] = []

        def next_segment() -> Segment | None:
            n = len(segments)
            previous = segments[-1] if segments else None
            if isinstance(previous, CcSegment) and previous.end_reason == "voltage":
                return None  # the pulse met the cut-off voltage: GITT is over
            if n >= 2 * step.max_pulses:
                return None
            if n % 2 == 0:
                seg: Segment = CcSegment(
                    ctx,
                    n,
                    step.record_interval_s,
                    current_A=current,
                    voltage_V=step.cutoff_voltage_V,
                    duration_s=step.pulse_s,
                )
            else:
                seg = RestSegment(ctx, n, step.record_interval_s, duration_s=step.rest_s)
            segments.append(seg)
            return seg

        return HostStepRun(ctx, next_segment, resume)

    def safe_state(self) -> None:
        """Output off (the relay opens: high impedance), read back, sent again if it was lost."""
        for _ in range(self.instrument.retries + 1):
            self.instrument.stop_logging()
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


def open_driver(
    name: str, config: Keithley2450Config, clock: Clock, endpoint: ByteEndpoint | None
) -> Keithley2450Potentiostat:
    transport = open_transport(name, config, endpoint)
    return Keithley2450Potentiostat(
        Keithley2450(transport, name),
        clock,
        poll_interval_s=config.poll_interval,
        compliance_V=config.compliance,
    )

