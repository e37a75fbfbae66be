"""A potential sweep on a Keithley 2450: the host steps the voltage, and the instrument turns the
output off shortly after the sweep's end unless the host comes first.

The host steps the level in 1 mV stairs (at most every poll, at least every record interval),
each in one program message (:meth:`drivers.keithley2450.scpi.Keithley2450.step_and_read`):
stop the trigger model, take a reading at the level held so far (the end of its stair, as a
host reading before it steps on would), set the next level, and start a trigger model that
only waits (constant delays, repeated by a counter branch) until :data:`END_MARGIN_S` after the
sweep's end and then turns the output off (``SOURce:STATe OFF``, the relay opens). A host that
dies mid-sweep therefore leaves the cell at the last level it set, and no longer than that: the
output goes off :data:`END_MARGIN_S` after the sweep's end (the margin lets the host's reading at
the end come first). The 2450's native sweeps (``:SOUR:SWE:VOLT:LIN``, source configuration
lists) are not used: a loaded sweep runs every level at once in the simulator, which does not
pace it in time, so the host keeps stepping.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from drivers.base import Point
from drivers.keithley2450.segments import Segment
from drivers.techniques import Sweep

#: How long after the sweep's end the instrument turns the output off if no host ended it.
END_MARGIN_S = 1.0


@dataclass
class SweepSegment(Segment):
    """The host steps the voltage, reading at each poll; the instrument ends it if the host dies."""

    sweep: Sweep | None = None
    current_limit_A: float = 0.1
    logs = False

    def _legs(self) -> list[tuple[float, float]]:
        assert self.sweep is not None
        s = self.sweep
        legs = [(s.start_V, s.vertex1_V)]
        if not s.linear:
            for _ in range(s.cycles):
                legs += [(s.vertex1_V, s.vertex2_V), (s.vertex2_V, s.vertex1_V)]
            legs[-1] = (s.vertex2_V, s.start_V)
        return legs

    def _rate_V_s(self) -> float:
        assert self.sweep is not None
        return self.sweep.scan_rate_mV_s / 1000.0

    def span_s(self) -> float:
        """The sweep's length: every leg at the scan rate."""
        return math.fsum(abs(b - a) for a, b in self._legs()) / self._rate_V_s()

    def _profile(self, elapsed_s: float) -> tuple[float, bool]:
        rate = self._rate_V_s()
        t = elapsed_s
        for a, b in self._legs():
            span = abs(b - a) / rate
            if t <= span:
                return a + math.copysign(rate * t, b - a), False
            t -= span
        return self._legs()[-1][1], True

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

    def _readings(self) -> list[tuple[float, float, float]]:
        """A reading at the level held so far (the end of its stair), then the level due now
        (and the instrument's timeout re-armed); after the sweep's end, a reading at the last
        level and no new timeout (the host ends the step with this reading)."""
        now = self.ctx.clock.now()
        level, done = self._profile(now - self.t0)
        off_after = None if done else self.t0 + self.span_s() + END_MARGIN_S - now
        return [(now, *self.ctx.inst.step_and_read(level, off_after))]

    def resume(self, t0: float, last: Point | None) -> None:
        """A sweep whose end passed while no host polled: the instrument turned the output off
        there, and the stored points end where the host that died left them."""
        inst = self.ctx.inst
        if self._profile(self.ctx.clock.now() - t0)[1] and not inst.output_enabled:
            self.t0 = t0
            if last is not None:
                self.t_last = self.t_record = last.time_s
                self.q, self.v, self.i = last.capacity_mAh_g, last.voltage_V, last.current_A
            self.ended_on_instrument, self.end_reason = True, "time"
            return
        super().resume(t0, last)

    def next_due_s(self) -> float:
        """The host steps the voltage in 1 mV stairs (at most every poll, at least every record),
        and reads once at the sweep's end."""
        assert self.sweep is not None
        stair_s = 1.0 / self.sweep.scan_rate_mV_s
        end_s = self.t0 + self.span_s() - self.ctx.clock.now()
        due = min(self.record_s, max(self.ctx.poll_s, stair_s))
        return max(min(due, end_s) if end_s > 0 else due, 1e-6)

    def check(self) -> str | None:
        if self.t_last - self.t0 >= self.span_s() - 1e-9:
            return "time"
        return None
