"""A potential sweep on a Keithley 2450: a staircase the instrument runs on its own, from a source
configuration list, while the host reads the buffer.

The levels are one source configuration list, the instrument's own (``:SOUR:SWE:VOLT:LIN`` from
the lowest to the highest level of the sweep in stairs of :data:`STAIR_V`; see
:meth:`drivers.keithley2450.scpi.Keithley2450.sweep_levels`). The trigger model (started by
:meth:`drivers.keithley2450.scpi.Keithley2450.start_logging`) takes a reading at the start level
at once and then, leg by leg::

    3   CONFig:RECall "VoltLinearSweepList", start index;  4  SOURce:STATe ON
    5   DELay:CONStant stair          the level held for a stair
    6   MEASure                       a reading at the stair's end (the current has settled)
    7   CONFig:NEXT | CONFig:PREVious the next level up or down
    8   BRANch:COUNter m, 5           the leg's m stairs
    ...                               the next leg (a cycle's two legs repeated by a counter)
    n   DELay:CONStant END_MARGIN_S;  n+1  SOURce:STATe OFF

So the cell is swept at the scan rate whether or not a host is polling, every reading stays in
the buffer, and the output goes off :data:`END_MARGIN_S` after the sweep's end unless the host
ends the step first (at the reading on the sweep's end). A host that dies mid-sweep finds on
coming back every reading taken meanwhile. The host polls once per :meth:`Segment.batch_s` of
readings (a sweep has no cut-off that could end it early), so a long sweep costs a few exchanges
instead of one per stair. Levels sit on the list's grid: a start between two grid levels is
swept from the nearer one (at most half a stair away).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

from drivers.base import Point
from drivers.keithley2450.scpi import BUFFER, BUFFER_POINTS, MAX_DELAY_S, SWEEP_LIST
from drivers.keithley2450.segments import Segment, _sent
from drivers.techniques import Sweep

#: How long after the sweep's end the instrument turns the output off if no host ended it.
END_MARGIN_S = 1.0
#: The stair height: the staircase approximating the linear sweep.
STAIR_V = 1e-3

#: A leg of the staircase: (+1 up the list, -1 down it; stairs).
Leg = tuple[int, int]


@dataclass
class SweepSegment(Segment):
    """The instrument steps the voltage from a configuration list; the host reads the buffer."""

    sweep: Sweep | None = None
    current_limit_A: float = 0.1

    #: Stairs already swept when the trigger model starts (a sweep started again on re-attaching).
    from_stair: int = 0
    _configured_V: float | None = None  # the start level this host set
    _end_s: float | None = None  # when this host's trigger model takes the reading on the end

    # --- the staircase ------------------------------------------------------------------------
    def _grid(self) -> tuple[float, float, int]:
        return self._staircase[0]

    @cached_property
    def _staircase(self) -> tuple[tuple[float, float, int], list[Leg], float, int]:
        """(the list's lowest level, highest level and stairs between them; the legs; the stair's
        length in s; the stairs of all legs), computed once: the sweep does not change (the
        sweep's end is checked at every reading)."""
        grid = self._list_grid()
        legs = self._legs_on(grid)
        low, high, stairs = grid
        assert self.sweep is not None
        height = (high - low) / stairs if high > low else STAIR_V
        stair = _sent(height / (self.sweep.scan_rate_mV_s / 1000.0))
        return grid, legs, stair, sum(m for _, m in legs)

    def _list_grid(self) -> tuple[float, float, int]:
        """The list: (lowest level, highest level, stairs between them), stairs of about
        :data:`STAIR_V`: lower ones where a stair at the scan rate would outlast the longest
        delay block (the sweep keeps its rate), higher ones where the buffer could not hold a
        reading per stair."""
        assert self.sweep is not None
        s = self.sweep
        corners = [s.start_V, s.vertex1_V] + ([] if s.linear else [s.vertex2_V])
        low, high = min(corners), max(corners)
        if high <= low:
            return low, high, 1
        span, rate_V_s = high - low, s.scan_rate_mV_s / 1000.0
        stairs = max(1, round(span / STAIR_V), math.ceil(span / (rate_V_s * MAX_DELAY_S)))
        travel = sum(abs(b - a) for a, b in self._corners_path())
        most = max(1, math.floor(span * (BUFFER_POINTS - 2) / travel))  # readings the buffer holds
        return low, high, min(stairs, most)

    def _corners_path(self) -> list[tuple[float, float]]:
        """The sweep's legs as voltages: start to vertex 1, then cycles between the vertices,
        the last leg back to the start."""
        assert self.sweep is not None
        s = self.sweep
        legs = [(s.start_V, s.vertex1_V)]
        if not s.linear:
            for _ in range(s.cycles):
                legs += [(s.vertex1_V, s.vertex2_V), (s.vertex2_V, s.vertex1_V)]
            legs[-1] = (s.vertex2_V, s.start_V)
        return legs

    @staticmethod
    def _index_on(grid: tuple[float, float, int], level_V: float) -> int:
        low, high, stairs = grid
        return round((level_V - low) / (high - low) * stairs) if high > low else 0

    def _index(self, level_V: float) -> int:
        """The list index (0 = the lowest level) nearest ``level_V``."""
        return self._index_on(self._grid(), level_V)

    def _legs_on(self, grid: tuple[float, float, int]) -> list[Leg]:
        legs: list[Leg] = []
        for a, b in self._corners_path():
            m = self._index_on(grid, b) - self._index_on(grid, a)
            if m:
                legs.append((1 if m > 0 else -1, abs(m)))
        return legs

    def _legs(self) -> list[Leg]:
        """Every leg of the staircase with its stairs (legs of no stair dropped)."""
        return self._staircase[1]

    def stair_s(self) -> float:
        """How long each level is held: a stair's height at the scan rate (as sent)."""
        return self._staircase[2]

    def _stairs(self) -> int:
        return self._staircase[3]

    def span_s(self) -> float:
        """The sweep's length: every stair of every leg."""
        return self._stairs() * self.stair_s()

    def start_level_V(self) -> float:
        assert self.sweep is not None
        low, high, stairs = self._grid()
        return low + (high - low) * self._index(self.sweep.start_V) / stairs if high > low else low

    # --- the trigger model ------------------------------------------------------------------
    def sampling_interval_s(self) -> float:
        return self.stair_s()

    def branches(self) -> list[str] | None:
        return self.program(*self._remaining(self.from_stair))

    def _remaining(self, done: int) -> tuple[list[Leg], int]:
        """The legs left once ``done`` stairs are swept, and the list index reached then."""
        assert self.sweep is not None
        legs, position = list(self._legs()), self._index(self.sweep.start_V)
        while done > 0 and legs:
            direction, stairs = legs[0]
            taken = min(done, stairs)
            position += direction * taken
            done -= taken
            legs = ([(direction, stairs - taken)] if stairs > taken else []) + legs[1:]
        return legs, position

    def program(self, legs: list[Leg], start_index: int) -> list[str]:
        """The blocks from 3 on: recall the start level, each leg's stairs, then the output off
        :data:`END_MARGIN_S` after the last reading; a cycle's pair of legs repeated by a counter."""
        stair = self.stair_s()
        blocks = [f':TRIG:BLOC:CONF:REC 3, "{SWEEP_LIST}", {start_index + 1}', ":TRIG:BLOC:SOUR:STAT 4, ON"]
        i = 0
        while i < len(legs):
            repeats = 1
            while legs[i : i + 2] == legs[i + 2 * repeats : i + 2 * repeats + 2] and i + 1 < len(legs):
                repeats += 1
            group = legs[i : i + 2] if repeats > 1 else legs[i : i + 1]
            first = len(blocks) + 3
            for direction, stairs in group:
                n = len(blocks) + 3
                step = "NEXT" if direction > 0 else "PREV"
                blocks += [f":TRIG:BLOC:DEL:CONS {n}, {stair:.9e}", f':TRIG:BLOC:MEAS {n + 1}, "{BUFFER}", 1',
                           f':TRIG:BLOC:CONF:{step} {n + 2}, "{SWEEP_LIST}"',
                           f":TRIG:BLOC:BRAN:COUN {n + 3}, {stairs}, {n}"]  # fmt: skip
            if repeats > 1:
                blocks.append(f":TRIG:BLOC:BRAN:COUN {len(blocks) + 3}, {repeats}, {first}")
            i += len(group) * repeats
        n = len(blocks) + 3
        blocks += [f":TRIG:BLOC:DEL:CONS {n}, {END_MARGIN_S:.9e}", f":TRIG:BLOC:SOUR:STAT {n + 1}, OFF"]
        return blocks

    # --- the host's side ----------------------------------------------------------------------
    def configure(self) -> None:
        inst = self.ctx.inst
        low, high, stairs = self._grid()
        inst.source_function = "voltage"
        inst.sense_function = "current"
        inst.current_limit_A = self.current_limit_A
        inst.sweep_levels(low, high if high > low else low + STAIR_V, stairs + 1)
        self._configured_V = self.start_level_V()
        inst.source_voltage_V = self._configured_V
        inst.output_enabled = True

    def apply_reading(self, measured: float, source: float) -> None:
        self.v, self.i = source, measured

    def source_setting(self) -> tuple[str, float]:
        # The start level once configured; on re-attaching, whichever level of the list the
        # instrument has stepped to.
        if self._configured_V is not None:
            return "voltage", self._configured_V
        return "voltage", float(self.ctx.inst.source_voltage_V)

    def resume(self, t0: float, last: Point | None) -> None:
        """Carry on reading a sweep the instrument kept running (or ended) while no host polled.
        A sweep whose trigger model no longer runs and did not end goes on from the stair the
        time has reached (the levels due from then on; it ends up to a stair late)."""
        self.from_stair = min(int((self.ctx.clock.now() - t0) / self.stair_s()), self._stairs())
        super().resume(t0, last)

    def next_due_s(self) -> float:
        """The reading a batch of readings on (see :meth:`Segment.batch_s`: nothing ends a sweep
        early), never past the one on the sweep's end."""
        if self._next_t is None or self.missed_polls:
            return self.due_s(0.0)
        left = round((self._sweep_end_s() - self._next_t) / self.interval_s)
        ahead = max(0, min(int(self.batch_s() / self.interval_s) - 1, left))
        return self.due_s(0.0, ahead)

    def _start_logging(self) -> None:
        super()._start_logging()
        self._end_s = self.t_base + (self._stairs() - self.from_stair) * self.stair_s()

    def _sweep_end_s(self) -> float:
        """When the reading on the sweep's end is taken: the span after the start, or after a
        trigger model started again on re-attaching, the stairs left after that."""
        return self._end_s if self._end_s is not None else self.t0 + self.span_s()

    def check(self) -> str | None:
        if self.t_last >= self._sweep_end_s() - self.tol_s:
            return "time"
        return None
