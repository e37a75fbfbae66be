"""Source-measure physics of the simulated Keithley 2450: what the output does to the cell
(current and voltage sources, their symmetric limits, the output-off states) and what a
measurement reads."""

from __future__ import annotations

import math

from simulators.keithley2450.model import (
    OVERFLOW,
    RANGES,
    VOLTAGE_RANGES_V,
    _current_range_for,
    _range_for,
    _State,
)


class _Physics(_State):
    """The output on the cell and the measurements of :class:`simulators.keithley2450.SimulatedKeithley2450`."""

    def _present_current_range(self) -> float:
        if self.source_function == "CURR":
            src = self.source["CURR"]
            return _current_range_for(src.level) if src.auto else src.range
        sense = self.sense["CURR"]
        return self._autorange("CURR", _current_range_for(self.ilim_A)) if sense.auto else sense.range

    def _autorange(self, function: str, wanted: float) -> float:
        """The range autorange picks for a value that wants ``wanted``: within RANGe:AUTO:LLIMit/ULIMit."""
        ranges, sense = RANGES[function], self.sense[function]
        return min(max(wanted, _range_for(sense.low, ranges)), _range_for(sense.high, ranges))

    def _drive(self) -> tuple[str, float, float]:
        """What the output does now: ("open"|"I"|"V", level, limit)."""
        if self.output_on:
            if self.source_function == "CURR":
                return "I", self.current_A, self.vlim_V
            return "V", self.voltage_V, self.ilim_A
        mode = self.source[self.source_function].off_mode
        if mode == "HIMP":
            return "open", 0.0, 0.0
        if mode == "NORM":
            return "V", 0.0, 0.005 * self._present_current_range()
        if mode == "ZERO":
            return "V", 0.0, self._present_current_range()
        return "I", 0.0, 0.1 * _range_for(self.vlim_V, VOLTAGE_RANGES_V)  # GUAR

    def _catch_up(self, until_s: float | None = None) -> None:
        """Advance the cell to ``until_s`` (the clock's now by default; never back in time)."""
        now = max(self.clock.now() if until_s is None else until_s, self._t)
        dt = now - self._t
        self._t = now
        drive = self._drive()
        if drive != self._last_drive:
            self._last_drive = drive
            self._tripped = False
            self._voltage_limited = False
            # the new drive at this very instant: no current through an open relay or a 0 A
            # source; a source already beyond its limit is in compliance from the start
            kind, level, limit = drive
            if kind == "open" or (kind == "I" and level == 0.0):
                self.cell.rest(0.0)
            elif kind == "I":
                self._source_current(level, limit, 0.0)
            else:
                self._start_voltage(level, limit)
        if dt <= 0:
            return
        kind, level, limit = drive
        if kind == "open" or (kind == "I" and level == 0.0):
            self.cell.rest(dt)
        elif kind == "I":
            self._source_current(level, limit, dt)
        else:
            self._source_voltage(level, limit, dt)

    def _source_current(self, level_A: float, vlim_V: float, dt: float) -> None:
        remaining = dt
        if not self._tripped:
            adv = self.cell.constant_current(level_A, remaining, v_upper_V=vlim_V, v_lower_V=-vlim_V)
            remaining -= adv.elapsed_s
            if adv.reason in ("v_upper", "v_lower"):
                # in compliance: a voltage source at the limit that never passes more than |level|
                # (beyond the limit from the start, it pulls the cell back at |level|)
                self._tripped = True
                self._clamp_V = vlim_V if adv.reason == "v_upper" else -vlim_V
                self._start_voltage(self._clamp_V, abs(level_A))
        if self._tripped and remaining > 0:
            self._source_voltage(self._clamp_V, abs(level_A), remaining)

    def _start_voltage(self, level_V: float, ilim_A: float) -> None:
        """A voltage source takes over at this instant (a new level, or a voltage limit reached).

        At once the current that puts the terminal at ``level_V`` flows (the ohmic step, so a
        hold that follows a constant current at the same voltage starts at that current), or
        the limit in that direction when more would be needed. The direction of the hold is
        the sign of that current, whatever the source did before.
        """
        needed = self._needed_current_A(level_V, ilim_A)
        self._hold_sign = 1.0 if needed >= 0 else -1.0
        self._voltage_limited = abs(needed) > ilim_A * (1 + 1e-9)
        current = self._hold_sign * ilim_A if self._voltage_limited else needed
        self.cell.set_current_A(current)
        self._hold_current_A = current

    def _needed_current_A(self, level_V: float, scale_A: float) -> float:
        """The current that would put the terminal at ``level_V`` now (the ohmic step alone)."""
        cell = self.cell
        present = float(cell.current_A)
        cell.set_current_A(0.0)
        v_open = float(cell.voltage_V())
        probe = max(scale_A, 1e-12)
        cell.set_current_A(probe)
        r_ohm = (float(cell.voltage_V()) - v_open) / probe  # the terminal voltage is linear in I
        cell.set_current_A(present)
        return (level_V - v_open) / r_ohm if r_ohm > 0 else math.copysign(math.inf, level_V - v_open)

    def _source_voltage(self, level_V: float, ilim_A: float, dt: float) -> None:
        """Hold ``level_V`` within ``±ilim_A`` for ``dt`` (from the state :meth:`_start_voltage` set).

        In current limit the source drives the limit towards the level until the cell gets
        there. Then it holds the level, sourcing or sinking whatever current that takes (the
        2450 is a four-quadrant source whose output settles within 200 us and stays within
        ``0.015 % + 2.4 mV`` of the level on the 20 V range, SPEC-2450): the cell model's own
        voltage hold, its current solved over adaptive substeps (:meth:`Cell.constant_voltage`);
        the reading is the current of the last substep, flowing now. A hold whose current
        grows beyond the limit goes back to the limit.
        """
        if dt <= 0:
            return
        remaining = dt
        if self._voltage_limited:
            current = self._hold_sign * ilim_A
            adv = self.cell.constant_current(
                current,
                remaining,
                v_upper_V=level_V if current > 0 else None,
                v_lower_V=level_V if current < 0 else None,
            )
            remaining -= adv.elapsed_s
            self._hold_current_A = current
            if adv.reason not in ("v_upper", "v_lower"):
                return
            self._voltage_limited = False
        if remaining <= 1e-9:
            return
        self.cell.constant_voltage(level_V, remaining)
        current = float(self.cell.current_A)
        if abs(current) < ilim_A * 1e-9:  # the model holds inside its hysteresis: no current
            current = 0.0
        self._hold_current_A = current
        if abs(current) > ilim_A * (1 + 1e-9):
            self._voltage_limited = True
            self._hold_sign = 1.0 if current > 0 else -1.0
            self.cell.set_current_A(self._hold_sign * ilim_A)
        elif current != 0.0:
            self._hold_sign = 1.0 if current > 0 else -1.0

    def _in_limit(self) -> bool:
        if self._drive() != self._last_drive:
            self._catch_up(self._t)  # a setting changed: re-evaluate the limits at this instant
        kind, _, _ = self._drive()
        return (kind == "I" and self._tripped) or (kind == "V" and self._voltage_limited)

    # --- measurements ------------------------------------------------------------------
    def _terminal_voltage(self) -> float:
        kind, level, _ = self._drive()
        if kind == "V" and not self._voltage_limited:
            return level
        if kind == "I" and self._tripped and not self._voltage_limited:
            return self._clamp_V
        return float(self.cell.measured_voltage_V())

    def _switch_current(self) -> None:
        """A new current setting shows at once (the ohmic step), not only after time has passed."""
        kind, level, limit = self._drive()
        if kind == "open":
            self.cell.set_current_A(0.0)
        elif kind == "I" and not self._tripped:
            self.cell.set_current_A(level)
        elif self._voltage_limited:  # a voltage source (or a tripped current source) at its limit
            self.cell.set_current_A(self._hold_sign * (limit if kind == "V" else abs(level)))

    def _current_now(self) -> float:
        """The current flowing now, as the instrument measures it (without noise)."""
        kind, level, _ = self._drive()
        if kind == "open":
            return 0.0
        if kind == "I" and not self._tripped:
            return level  # the source is regulating: its level flows from the first instant
        if self._voltage_limited:
            return float(self.cell.current_A)  # at the limit
        return self._hold_current_A  # holding a voltage (or a tripped current source's clamp)

    def _measure(self, function: str) -> float:
        sense = self.sense[function]
        self._switch_current()
        if function == "VOLT":
            value = self._terminal_voltage()
        elif function == "CURR":
            noise = float(self.cell.measured_current_A(self._present_current_range())) - self.cell.current_A
            value = self._current_now() + noise
        else:
            current = self._current_now()
            value = OVERFLOW if abs(current) < 1e-15 else abs(self._terminal_voltage() / current)
        top = _range_for(sense.high, RANGES[function]) if sense.auto else sense.range
        if abs(value) > top * 1.05:  # beyond the fixed range, or the autorange upper limit
            return OVERFLOW
        return value

    def _source_value(self) -> float:
        function = self.source_function
        if not self.source[function].readback:
            return self.source[function].level
        if function == "CURR":
            return self._current_now()
        return self._terminal_voltage()
