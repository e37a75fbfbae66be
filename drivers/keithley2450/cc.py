"""Constant current on a Keithley 2450, ended by the instrument at its cut-off.

The trigger model (:meth:`drivers.keithley2450.scpi.Keithley2450.start_logging`) takes a
reading at once and then runs these blocks, so that the instrument itself ends the step at its
cut-off (voltage, time or capacity) or the cell's limit, whether or not a host is polling::

    2  MEASure                the record-interval reading
    3  BRANch:LIMit:CONStant  it met the limit             -> 17 (output off: the step is over)
    4  BRANch:COUNter         N+1 readings of block 2     -> 6 (on; the (N+1)th falls through)
    5  BRANch:ALWays 17       the reading on the time or capacity cut-off: the step is over
    6  BRANch:LIMit:CONStant  it is near the limit         -> 9 (one record interval of fine readings)
    7  BRANch:DELTa           it moved less than DELTA_V since the one before -> 15 (coarse)
    8  NOP                    (it moves fast: on to the fine readings)
    9  DELay:CONStant fine interval;  10  MEASure  a fine reading
    11 BRANch:LIMit:CONStant  it met the limit             -> 17
    12 BRANch:COUNter         n-1 fine readings a record interval -> 9
    13 DELay:CONStant fine interval;  14  BRANch:ALWays 2  (the next record-interval reading)
    15 DELay:CONStant record interval;  16  BRANch:ALWays 2
    17 SOURce:STATe OFF       (the relay opens: output-off mode HIMP)

Far from the limit the instrument reads at the record interval (few readings to store and
read); near it, or while the voltage moved by DELTA_V or more in the last record interval, every
fine interval (the poll interval, cut to divide the record interval), a record interval's worth
at a time, so that a reading still falls on every record interval from the first one, always
at block 2. A duration or a capacity at constant current ends exactly on one (the record
interval is shortened so), the Nth after the first: the counter of block 4 ends the step there
with the output off, so a dead host does not charge a cell past a time or capacity cut-off
(without one, blocks 4 and 5 are NOPs). The voltage cut-off is met within one poll interval, as
a host polling at that interval would, and no hold at the cut-off follows.
The host follows the same branches to know when each reading is due (and ends the step itself
at the same reading when it is there).

A charge sources current with ``VLIM`` at the limit (a hardware clamp there); a discharge
sources the floor voltage with the current limit at the discharge current (the source sinks
exactly that current while the cell is above the floor and can never take it below), measuring
voltage in both cases: a reading's current is the set current (the source is in its limit).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from drivers.base import SafetyLimitError
from drivers.keithley2450.scpi import BUFFER
from drivers.keithley2450.segments import BATCH_S, Segment, _mAh_g, _sent

#: Readings closer than this to the limit are read every fine interval.
NEAR_V = 0.05
#: A voltage that moved by this much or more between two readings is read every fine interval.
DELTA_V = 0.025
#: The limit branch's margin: a reading this close to the limit (the clamp reads exactly it) meets it.
MATCH_V = 1e-6


@dataclass
class CcSegment(Segment):
    current_A: float = 0.0
    voltage_V: float | None = None
    capacity_mAh_g: float | None = None
    duration_s: float | None = None
    # the trigger model's branches as the host follows them (reset when the model starts)
    _fine_left: int = 0  # fine readings still to come before the next decision
    _previous: dict[int, float] = field(default_factory=dict)  # last reading of measure block 2
    _pace_V: float | None = None  # how far the voltage moved in the last record interval
    _last_two: tuple[tuple[float, float], ...] = ()  # (time, voltage) of the last two readings read
    #: The limits and intervals, asked for at every reading, computed once for what they depend on.
    _memo: dict[tuple[object, ...], tuple[float, float, float, float, int]] = field(default_factory=dict)

    @property
    def discharge(self) -> bool:
        return self.current_A < 0

    def limit_V(self) -> float:
        """The voltage the instrument ends the step at: the cut-off, or the cell's safety
        limit when that comes first (or there is no voltage cut-off)."""
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
            inst.sense_function = "voltage"
            inst.current_limit_A = abs(self.current_A)
            inst.source_voltage_V = self.limit_V()
        else:
            inst.source_function = "current"
            inst.sense_function = "voltage"
            inst.voltage_limit_V = self.limit_V()  # the hardware clamps at the limit on charge
            inst.source_current_A = self.current_A
        inst.output_enabled = True

    def source_setting(self) -> tuple[str, float]:
        if self.discharge:
            return "voltage", self.limit_V()
        return "current", self.current_A

    def apply_reading(self, measured: float, source: float) -> None:
        # measured voltage; on charge the source readback is the current actually flowing
        self.v, self.i = measured, self.current_A if self.discharge else source

    # --- the trigger model's limits -------------------------------------------------------
    def _limits(self) -> tuple[float, float, float, float, int]:
        """(limit, end-at, near, fine interval, fine readings per record interval)."""
        ctx = self.ctx
        key = (self.interval_s, ctx.poll_s, self.current_A, self.voltage_V, ctx.voltage_min_V, ctx.ceiling_V)
        memo = self._memo.get(key)
        if memo is None:
            limit = self.limit_V()
            sign = 1.0 if self.discharge else -1.0
            fine = _sent(self.interval_s / max(1, math.ceil(self.interval_s / ctx.poll_s - 1e-9)))
            chunk = max(1, round(self.interval_s / fine))
            memo = (limit, _sent(limit + sign * MATCH_V), _sent(limit + sign * NEAR_V), fine, chunk)
            self._memo.clear()
            self._memo[key] = memo
        return memo

    def fine_s(self) -> float:
        """The fine interval: the poll interval, cut to divide the record interval."""
        return self._limits()[3]

    def tolerance_s(self) -> float:
        return self.fine_s() / 2

    def _end_at_V(self) -> float:
        return self._limits()[1]

    def _near_V(self) -> float:
        return self._limits()[2]

    def met(self, value: float) -> bool:
        """The limit branch's test (block 3)."""
        return value < self._end_at_V() if self.discharge else value > self._end_at_V()

    def _chunk(self) -> int:
        """Fine readings per record interval."""
        return self._limits()[4]

    def branches(self) -> list[str] | None:
        kind = "BEL" if self.discharge else "ABOV"
        end, near, fine = self._end_at_V(), self._near_V(), self.fine_s()
        count = self._readings_to_end()
        off = 8 if self._chunk() == 1 else 17  # the block that turns the output off
        if count is None:  # no time or capacity cut-off: nothing to count
            counter = [":TRIG:BLOC:NOP 4", ":TRIG:BLOC:NOP 5"]
        else:  # the record-interval reading on the time or capacity cut-off is the last one
            counter = [f":TRIG:BLOC:BRAN:COUN 4, {count}, 6", f":TRIG:BLOC:BRAN:ALW 5, {off}"]
        if self._chunk() == 1:  # one interval: a reading, the limits, a delay
            return [f":TRIG:BLOC:BRAN:LIM:CONS 3, {kind}, {end:.9e}, {end:.9e}, {off}, 2", *counter,
                    f":TRIG:BLOC:DEL:CONS 6, {self.interval_s:.9e}", ":TRIG:BLOC:BRAN:ALW 7, 2",
                    ":TRIG:BLOC:SOUR:STAT 8, OFF"]  # fmt: skip
        return [
            f":TRIG:BLOC:BRAN:LIM:CONS 3, {kind}, {end:.9e}, {end:.9e}, 17, 2",
            *counter,
            f":TRIG:BLOC:BRAN:LIM:CONS 6, {kind}, {near:.9e}, {near:.9e}, 9, 2",
            f":TRIG:BLOC:BRAN:DELT 7, {DELTA_V:.9e}, 15, 2",
            ":TRIG:BLOC:NOP 8",
            f":TRIG:BLOC:DEL:CONS 9, {fine:.9e}",
            f':TRIG:BLOC:MEAS 10, "{BUFFER}", 1',
            f":TRIG:BLOC:BRAN:LIM:CONS 11, {kind}, {end:.9e}, {end:.9e}, 17, 10",
            f":TRIG:BLOC:BRAN:COUN 12, {self._chunk() - 1}, 9",
            f":TRIG:BLOC:DEL:CONS 13, {fine:.9e}",
            ":TRIG:BLOC:BRAN:ALW 14, 2",
            f":TRIG:BLOC:DEL:CONS 15, {self.interval_s:.9e}",
            ":TRIG:BLOC:BRAN:ALW 16, 2",
            ":TRIG:BLOC:SOUR:STAT 17, OFF",
        ]

    def reset_branches(self) -> None:
        self._pace_V, self._fine_left, self._previous, self._last_two = None, 0, {}, ()

    def _advance_schedule(self, t: float, measured: float) -> None:
        self._last_two = (*self._last_two[-1:], (t, measured))
        super()._advance_schedule(t, measured)

    def delay_after_s(self, value: float) -> float:
        """The blocks after a reading of ``value``, as the instrument runs them."""
        if self._chunk() == 1:
            return self.interval_s
        if self._fine_left > 0:  # a fine reading (block 10): a fine delay to the next one
            self._fine_left -= 1
            return self.fine_s()
        previous = self._previous.get(2)  # a record-interval reading (block 2)
        self._previous[2] = value
        self._pace_V = None if previous is None else abs(value - previous)
        near = value < self._near_V() if self.discharge else value > self._near_V()
        steady = previous is None or abs(previous - value) < DELTA_V
        if near or not steady:
            self._fine_left = self._chunk() - 1
            return self.fine_s()
        return self.interval_s

    def check(self) -> str | None:
        now = self.t_last  # the time of the reading checked
        if self.current_A != 0 and self.met(self.v):  # the instrument ended the step here
            if self.voltage_V is not None and self.limit_V() == self.voltage_V:
                return "voltage"
            bound = "voltage_min" if self.discharge else "voltage_max"
            raise SafetyLimitError(
                f"{self.ctx.inst.name}: the cell reached its {bound} of {self.limit_V():g} V "
                f"(at {self.v:.4f} V) before the step's cut-off; the instrument ended the step "
                "there and put the cell at open circuit"
            )
        rate = abs(_mAh_g(self.current_A, 1.0, self.ctx.mass_g))
        if self.capacity_mAh_g is not None and abs(self.q) >= self.capacity_mAh_g - max(
            rate * self.tol_s, 1e-9
        ):
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
        """The instrument's next reading, or several further on while the cell is far from the
        limit (predictive polling: a quarter of the readings the voltage would take to get near
        it at the last record interval's pace, at most :data:`BATCH_S` of them) and none of a
        time or capacity cut-off's readings would be passed. Among fine readings, a quarter of
        those the voltage would take to meet the limit at the faster of the last record
        interval's and the last two readings' pace, never past the record-interval reading that
        ends them (where the trigger model's next branch is taken)."""
        if self._fine_left > 0:
            return self.due_s(0.0, self._fine_readings_ahead(), self.fine_s())
        return self.due_s(0.0, self._readings_ahead())

    def _fine_readings_ahead(self) -> int:
        if self._next_t is None or self.missed_polls or len(self._last_two) < 2:
            return 0
        (t1, v1), (t2, v2) = self._last_two
        fine = self.fine_s()
        pace = abs(v2 - v1) * fine / (t2 - t1) if t2 > t1 else math.inf  # V per fine reading
        if self._pace_V is not None:
            pace = max(pace, self._pace_V / self._chunk())
        distance = (v2 - self._end_at_V()) if self.discharge else (self._end_at_V() - v2)
        if distance <= 0 or not math.isfinite(pace):
            return 0
        ahead = min(self._fine_left, int(BATCH_S / fine) - 1, int(0.25 * distance / max(pace, 1e-12)))
        return max(0, ahead)

    def _readings_ahead(self) -> int:
        if self._next_t is None or self._fine_left > 0 or self.missed_polls:
            return 0
        last, pace = self._previous.get(2), self._pace_V
        if last is None or pace is None:
            return 0
        distance = (last - self._near_V()) if self.discharge else (self._near_V() - last)
        ahead = min(int(BATCH_S / self.interval_s) - 1, int(0.25 * distance / max(pace, 1e-12)))
        span = self.span_s()
        if span is not None:  # poll at the reading of a time or capacity cut-off, not after it
            ahead = min(ahead, round((self.t0 + span - self._next_t) / self.interval_s))
        return max(0, ahead)
