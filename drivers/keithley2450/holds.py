"""A rest and a constant-voltage hold on a Keithley 2450, ended by the instrument at their
duration (and a hold at its current cut-off), so a dead host never keeps a cell in them longer.

Both keep the output on (a rest sources 0 A, the voltage measured; a hold sources its voltage,
the current measured), so the trigger model (:meth:`drivers.keithley2450.scpi.Keithley2450.start_logging`)
takes a reading at once and then runs::

    2  MEASure                the first reading (never compared: the host does not end on it)
    3  DELay:CONStant         the record interval
    4  MEASure                a record-interval reading
    5  BRANch:LIMit:CONStant  INside -I..I of block 4 -> 7 (a hold's current cut-off; else NOP)
    6  BRANch:COUNter         N readings after the first -> 3 (the Nth falls through; no
                              duration: BRANch:ALWays 3)
    7  SOURce:STATe OFF       (the relay opens: output-off mode HIMP)

The record interval is shortened so that a reading falls on the duration (the Nth), so the
instrument ends the segment at the reading the host ends it at; a model started again on
re-attaching counts what is left of it. ``|I|`` at or below a hold's current cut-off is the
limit branch's ``INside`` of ``-I``..``I`` (the hold may charge or discharge), compared with
the record-interval readings from the second on, as the host does. A rest's dV/dt cut-off stays
host-ended (the instrument cannot compare slopes): a dead host's rest runs to its duration.
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.keithley2450.scpi import BUFFER
from drivers.keithley2450.segments import Segment, _sent

#: The block that turns the output off (the limit and counter branches go there).
OFF_BLOCK = 7


class _EndedOnInstrument(Segment):
    """A segment whose trigger model ends it, output off, at its duration or limit."""

    def limit_block(self) -> str:
        """Block 5: a limit branch that ends the segment (or a NOP)."""
        return ":TRIG:BLOC:NOP 5"

    def branches(self) -> list[str] | None:
        count = self._readings_to_end()
        if count is not None and count <= 1:  # the first reading is on the duration
            return [":TRIG:BLOC:SOUR:STAT 3, OFF"]
        counter = ":TRIG:BLOC:BRAN:ALW 6, 3" if count is None else f":TRIG:BLOC:BRAN:COUN 6, {count - 1}, 3"
        return [f":TRIG:BLOC:DEL:CONS 3, {self.interval_s:.9e}", f':TRIG:BLOC:MEAS 4, "{BUFFER}", 1',
                self.limit_block(), counter, f":TRIG:BLOC:SOUR:STAT {OFF_BLOCK}, OFF"]  # fmt: skip


@dataclass
class RestSegment(_EndedOnInstrument):
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
        """Nothing to watch at open circuit but the time: the host reads the readings every
        :meth:`batch_s` (and the one at the end as it is taken); a dV/dt cut-off, each one."""
        now = self.ctx.clock.now()
        ahead = 0
        if self.dvdt_V_s is None and self._next_t is not None and self.interval_s > 0:
            left = round((self.t0 + self.duration_s - self._next_t) / self.interval_s)
            ahead = max(0, min(int(self.batch_s() / self.interval_s) - 1, left))
        return self.due_s(max(min(self.record_s, self.t0 + self.duration_s - now), 0.0), ahead)


@dataclass
class CvSegment(_EndedOnInstrument):
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

    def limit_block(self) -> str:
        if self.stop_current_A is None:
            return super().limit_block()
        stop = _sent(abs(self.stop_current_A))
        return f":TRIG:BLOC:BRAN:LIM:CONS 5, IN, {-stop:.9e}, {stop:.9e}, {OFF_BLOCK}, 4"

    def check(self) -> str | None:
        now = self.t_last  # the time of the reading checked
        stop = self.stop_current_A  # the limit branch's test (block 5), from the second reading
        if stop is not None and now > self.t0 and abs(self.i) <= _sent(abs(stop)):
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
