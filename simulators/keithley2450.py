"""Simulated Keithley 2450 SourceMeter speaking SCPI (the 2450 command set), on the cell model.

It parses the same bytes a real 2450 parses, following the Model 2450 Reference Manual
(SCPI command reference): ``\\n``-terminated program messages, short and long forms in any
case, several units per message (relative headers, common commands anywhere), strings in
either quote style. The replies of all queries in one message come back as one line, joined
by ``;`` (IEEE 488.2). Errors go to the error queue (``:SYST:ERR?``, ``0,"No error"`` when
empty) and set the standard event status register: an unknown header is ``-113`` (command
error), a value outside the instrument's range is ``-222`` (execution error) and leaves the
setting unchanged. :meth:`SimulatedKeithley2450.command_table` lists every command.

Connections. Each host connection (:meth:`SimulatedKeithley2450.connect`) has its own input
buffer and output queue, as each interface of the real unit does, while settings, buffers,
the error queue and the physics belong to the instrument. A message longer than
:data:`MAX_MESSAGE_BYTES` is discarded up to its terminator with ``-223,"Too much data"``, so
memory stays bounded whatever a host sends; a connection closed mid-message leaves nothing
behind. ``receive``/``take_output`` on the instrument itself use a default connection (the
in-process transport).

Physics: the instrument is wired to a :class:`simulators.cell.Cell`. Whenever it is addressed
it first advances the cell from its last visit to ``clock.now()`` under the present source
state. Source limits are symmetric and always applied: in current mode the voltage limit
``VLIM`` clamps the terminal voltage to ``[-VLIM, +VLIM]`` (constant current turns into
constant voltage, ``:SOUR:CURR:VLIM:TRIP?`` reports 1); in voltage mode the current limit
``ILIM`` bounds ``|I|`` (the source drives ``±ILIM`` until the cell reaches the set voltage,
``:SOUR:VOLT:ILIM:TRIP?`` reports 1 meanwhile, then holds it). A voltage source (or a
clamped current source) takes over with the current that puts the terminal at its level at
that instant (the ohmic step; a hold after a constant current at the same voltage starts at
that current), or the limit in that direction; which way it holds follows the cell, never what
the source did before. The current read while it holds is the current flowing then (the cell
model's last time step; for a hold that sinks, its mean over the last minute or since the last
reading), so readings times the time between them add up to the charge that flowed. With the output off the
output-off state of the present source function applies (``:OUTP:<function>:SMOD``): ``HIMP``
opens the relay (the cell rests); ``NORM`` connects 0 V behind a limit of 0.5 % of the present
current range and ``ZERO`` 0 V behind its full scale, both of which discharge a battery, as on
the real instrument; ``GUAR`` sources 0 A.
"""

from __future__ import annotations

import math
import struct
import time as _time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

from simulators.scpi import (
    DATA_OUT_OF_RANGE,
    ILLEGAL_PARAMETER,
    MISSING_PARAMETER,
    PARAMETER_NOT_ALLOWED,
    QUEUE_OVERFLOW,
    SETTINGS_CONFLICT,
    TOO_MUCH_DATA,
    Call,
    CommandInfo,
    ScpiError,
    ScpiParser,
    is_string,
    no_params,
    parse_bool,
    parse_choice,
    parse_number,
    unquote,
)

IDN = "KEITHLEY INSTRUMENTS,MODEL 2450,04567890,1.7.12b"
CURRENT_RANGES_A = (10e-9, 100e-9, 1e-6, 10e-6, 100e-6, 1e-3, 10e-3, 100e-3, 1.0)
VOLTAGE_RANGES_V = (20e-3, 200e-3, 2.0, 20.0, 200.0)
RESISTANCE_RANGES_OHM = (20.0, 200.0, 2e3, 20e3, 200e3, 2e6, 20e6, 200e6)
RANGES = {"CURR": CURRENT_RANGES_A, "VOLT": VOLTAGE_RANGES_V, "RES": RESISTANCE_RANGES_OHM}
MAX_CURRENT_A = 1.05
MAX_VOLTAGE_V = 210.0
ERROR_QUEUE_SIZE = 32
MAX_MESSAGE_BYTES = 65536
"""Longest program message accepted (bytes, terminator excluded); longer ones are refused
with -223 "Too much data" and discarded up to their terminator."""
OVERFLOW = 9.9e37  # what the 2450 returns for an overrange reading
MAX_BUFFER_POINTS = 11_000_020
BUFFER_ELEMENTS = {
    "READ": "READ", "READING": "READ", "REL": "REL", "RELATIVE": "REL", "SEC": "SEC",
    "SECONDS": "SEC", "FRAC": "FRAC", "FRACTIONAL": "FRAC", "DATE": "DATE", "TIME": "TIME",
    "TST": "TST", "TSTAMP": "TST", "UNIT": "UNIT", "SOUR": "SOUR", "SOURCE": "SOUR",
    "SOURUNIT": "SOURUNIT", "SOURSTAT": "SOURSTAT", "SOURSTATUS": "SOURSTAT", "STAT": "STAT",
    "STATUS": "STAT", "FORM": "FORM", "FORMATTED": "FORM", "SOURFORM": "SOURFORM",
    "SOURFORMATTED": "SOURFORM",
}  # fmt: skip
NUMERIC_ELEMENTS = {"READ", "REL", "SEC", "FRAC", "SOUR", "STAT", "SOURSTAT"}
UNITS = {"CURR": "Amp DC", "VOLT": "Volt DC", "RES": "Ohm"}
SYMBOLS = {"CURR": "A", "VOLT": "V", "RES": "Ohm"}
SOURCE_FUNCTIONS = {"CURR": "CURRent", "VOLT": "VOLTage"}
SENSE_FUNCTIONS = {"CURR": "CURRent", "VOLT": "VOLTage", "RES": "RESistance"}
OFF_MODES = {"HIMP": "HIMP", "HIMPEDANCE": "HIMP", "NORM": "NORM", "NORMAL": "NORM", "ZERO": "ZERO",
             "GUAR": "GUAR", "GUARD": "GUAR"}  # fmt: skip
OVP_LEVELS = ("NONE", "PROT2", "PROT5", "PROT10", "PROT20", "PROT40", "PROT60", "PROT80", "PROT100",
              "PROT120", "PROT140", "PROT160", "PROT180")  # fmt: skip
# status byte bits (IEEE 488.2 and the 2450's status model)
MSB, EAV, QSB, MAV, ESB, MSS, OSB = 1, 4, 8, 16, 32, 64, 128
# standard event status register bits
OPC, QYE, DDE, EXE, CME, PON = 1, 4, 8, 16, 32, 128


SINK_READING_S = 60.0
"""A sinking voltage hold adjusts its current at least this often, and a reading of it is its
mean current over this long (or since the last visit, if shorter)."""


def _recent_mean_A(pieces: list[tuple[float, float]], window_s: float) -> float:
    """Mean current (A) over the last ``window_s`` of ``pieces`` ((duration s, charge A s))."""
    span, charge = 0.0, 0.0
    for duration, q in reversed(pieces):
        if duration <= 0:
            continue
        take = min(duration, window_s - span)
        span += take
        charge += q * take / duration
        if span >= window_s:
            break
    return charge / span if span > 0 else 0.0


class ClockLike(Protocol):
    def now(self) -> float: ...


def _range_for(value: float, ranges: tuple[float, ...]) -> float:
    """Smallest range whose full scale (with the 5 % over-range) holds ``|value|``."""
    for rng in ranges:
        if abs(value) <= rng * 1.05:
            return rng
    return ranges[-1]


def _current_range_for(level_A: float) -> float:
    return _range_for(level_A, CURRENT_RANGES_A)


def _e(value: float) -> str:
    return f"{value:.6E}"


@dataclass
class _Sense:
    """Per-function measurement settings."""

    range: float
    auto: bool = True
    nplc: float = 1.0
    average: bool = False
    average_count: int = 10
    average_type: str = "REP"
    four_wire: bool = False
    autozero: bool = True


@dataclass
class _Source:
    """Per-function source settings."""

    level: float = 0.0
    range: float = 0.0
    auto: bool = True
    delay_s: float = 0.0
    delay_auto: bool = True
    readback: bool = True
    off_mode: str = "NORM"


@dataclass(frozen=True, slots=True)
class _Reading:
    time_s: float
    value: float
    function: str
    source: float
    source_function: str
    status: int
    source_status: int


@dataclass
class _Buffer:
    capacity: int
    fill_once: bool = False
    readings: deque[_Reading] = field(default_factory=deque)
    first_time_s: float | None = None

    def add(self, reading: _Reading) -> None:
        if len(self.readings) >= self.capacity:
            if self.fill_once:
                return
            self.readings.popleft()
        if self.first_time_s is None:
            self.first_time_s = reading.time_s
        self.readings.append(reading)

    def clear(self) -> None:
        self.readings.clear()
        self.first_time_s = None


class Connection:
    """One host connection: its own input buffer and output queue on a shared instrument."""

    def __init__(self, instrument: SimulatedKeithley2450) -> None:
        self.instrument = instrument
        self._inbuf = bytearray()
        self._discarding = False  # inside a message that was too long
        self._out = bytearray()
        self.closed = False

    def receive(self, data: bytes) -> None:
        if self.closed:
            return
        start = 0
        while start <= len(data):
            end = data.find(b"\n", start)
            chunk = data[start:] if end < 0 else data[start:end]
            if self._discarding:
                pass
            elif len(self._inbuf) + len(chunk) > MAX_MESSAGE_BYTES:
                self._inbuf.clear()
                self._discarding = True
                self.instrument.push_error(ScpiError(*TOO_MUCH_DATA))
            else:
                self._inbuf += chunk
            if end < 0:
                return
            if self._discarding:
                self._discarding = False
            else:
                message = bytes(self._inbuf)
                self._inbuf.clear()
                self._out += self.instrument.execute(message, self)
            start = end + 1

    def take_output(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    @property
    def pending_output(self) -> bool:
        return bool(self._out)

    @property
    def buffered_input_bytes(self) -> int:
        return len(self._inbuf)

    def close(self) -> None:
        """The host went away: whatever it had half sent is forgotten."""
        self.closed = True
        self._inbuf.clear()
        self._out.clear()


class SimulatedKeithley2450:
    """A simulated 2450 wired to a cell: :meth:`connect` per host, or ``receive``/``take_output``."""

    def __init__(self, cell: Any, clock: ClockLike, serial: str = "04567890") -> None:
        self.cell = cell
        self.clock = clock
        self.idn = IDN.replace("04567890", serial)
        self._t = clock.now()
        self.errors: list[tuple[int, str]] = []
        self.esr = PON  # power-on
        self.ese = 0
        self.sre = 0
        self.status_enable = {"OPER": 0, "QUES": 0, "MEAS": 0}
        self.language = "SCPI"
        self.bus_triggers = 0
        self.beeps: deque[tuple[float, float]] = deque(maxlen=16)
        self._last_drive: tuple[str, float, float] | None = None
        self._reset_state()
        self._default = Connection(self)
        self._connection = self._default
        self._parser = ScpiParser(self.push_error)
        self._declare()

    # --- connections -----------------------------------------------------------------
    def connect(self) -> Connection:
        """A new host connection (own input buffer and output queue)."""
        return Connection(self)

    def receive(self, data: bytes) -> None:
        self._default.receive(data)

    def take_output(self) -> bytes:
        return self._default.take_output()

    def execute(self, message: bytes, connection: Connection) -> bytes:
        """Run one program message; the reply line (b"" when it held no query)."""
        self._catch_up()
        try:
            text = message.decode("ascii").strip()
        except UnicodeDecodeError:
            self.push_error(ScpiError(-101, "Invalid character"))
            return b""
        self._connection = connection
        replies = self._parser.execute_message(text)
        if not replies:
            return b""
        return b";".join(r if isinstance(r, bytes) else r.encode("ascii") for r in replies) + b"\n"

    @classmethod
    def command_table(cls) -> list[CommandInfo]:
        """Every command this simulator answers, with what it does (for the docs)."""
        from simulators.cell import Cell, Sample
        from simulators.material import load_material

        class _Still:
            def now(self) -> float:
                return 0.0

        instrument = cls(Cell(Sample(load_material(None))), _Still())
        return list(instrument._parser.info)

    # --- physics ---------------------------------------------------------------------
    def _present_current_range(self) -> float:
        if self.source_function == "CURR":
            src = self.source["CURR"]
            return _current_range_for(src.level) if src.auto else src.range
        sense = self.sense["CURR"]
        return _current_range_for(self.ilim_A) if sense.auto else sense.range

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

    def _catch_up(self) -> None:
        now = self.clock.now()
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
        self._hold_pull_A = abs(current)

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
        there. Holding, a source that passes charge into the cell is the cell model's voltage
        hold (its current solved step by step; the reading is the current of the last step,
        flowing now); one that takes charge out is :meth:`_hold_sinking` (its current flips
        between halves and doubles, so its reading is the mean over the last
        :data:`SINK_READING_S` or since the last visit if shorter: the current flowing now at
        the resolution of the hold). The hold changes direction when the cell does: the
        sourcing hold turns sinking when its current turns negative, the sinking hold turns
        sourcing when nothing is left to pull and the cell would fall below the level.
        ``_hold_current_A`` is the held current a reading shows.
        """
        if dt <= 0:
            return
        remaining = dt
        pieces: list[tuple[float, float]] = []  # (duration s, charge A s), oldest first
        if self._voltage_limited:
            current = self._hold_sign * ilim_A
            adv = self.cell.constant_current(
                current,
                remaining,
                v_upper_V=level_V if current > 0 else None,
                v_lower_V=level_V if current < 0 else None,
            )
            remaining -= adv.elapsed_s
            pieces.append((adv.elapsed_s, current * adv.elapsed_s))
            if adv.reason in ("v_upper", "v_lower"):
                self._voltage_limited = False
                self._hold_pull_A = ilim_A
                self._hold_current_A = current  # until the hold has run
            else:
                self._hold_current_A = current
                return
        if self._hold_sign < 0 and remaining > 1e-9:
            remaining -= self._hold_sinking(level_V, ilim_A, remaining, pieces)
            self._hold_current_A = _recent_mean_A(pieces, SINK_READING_S)
            if remaining > 1e-9:  # nothing left to pull: the cell would fall below the level
                self._hold_sign = 1.0
        if self._hold_sign > 0 and remaining > 1e-9:
            self.cell.constant_voltage(level_V, remaining)
            current = float(self.cell.current_A)
            if abs(current) < ilim_A * 1e-9:  # the model holds inside its hysteresis: no current
                current = 0.0
            self._hold_current_A = current
            if current > ilim_A * (1 + 1e-9):
                self._voltage_limited = True
                self.cell.set_current_A(ilim_A)
            elif current < 0:  # the cell relaxes above the level: the source sinks from now on
                self._hold_sign = -1.0
                self._hold_pull_A = -current

    def _hold_sinking(
        self, level_V: float, ilim_A: float, duration_s: float, pieces: list[tuple[float, float]]
    ) -> float:
        """Hold a cell that relaxes upwards at ``level_V``, sinking at most ``ilim_A``.

        The source pulls the cell down to the set voltage with a current that halves each time
        the cell gets there (and may double again, never beyond the limit, as it relaxes): a
        constant voltage within the current limit, stable where the cell model's own voltage
        hold is not (an empty cathode). When nothing is left to pull the cell stays at open
        circuit while it relaxes upwards; once it would fall below the set voltage, the hold
        must source: it returns early. Appends (duration s, charge A s) of what it did to
        ``pieces``; returns the time held (s).
        """
        left = duration_s
        current = self._hold_pull_A
        while left > 1e-9:
            chunk = min(left, SINK_READING_S)
            current = min(ilim_A, 2.0 * current)
            while chunk > 1e-9:
                adv = self.cell.constant_current(-current, chunk, v_lower_V=level_V, plan=False)
                pieces.append((adv.elapsed_s, -current * adv.elapsed_s))
                chunk -= adv.elapsed_s
                left -= adv.elapsed_s
                if adv.reason == "time":
                    break
                if current < ilim_A * 1e-9:  # nothing left to pull: at open circuit a while
                    probe = min(chunk, 1.0)
                    self.cell.rest(probe)
                    pieces.append((probe, 0.0))
                    left -= probe
                    if self.cell.voltage_V() < level_V:  # it falls below the level: source
                        self._hold_pull_A = current
                        return duration_s - left
                    self.cell.rest(chunk - probe)  # it relaxes upwards: pull again later
                    pieces.append((chunk - probe, 0.0))
                    left -= chunk - probe
                    break
                current /= 2.0
        self._hold_pull_A = current
        return duration_s

    def _in_limit(self) -> bool:
        if self._drive() != self._last_drive:
            self._catch_up()  # a setting changed in this message: re-evaluate the limits
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
        if not sense.auto and abs(value) > sense.range * 1.05:
            return OVERFLOW
        return value

    def _source_value(self) -> float:
        function = self.source_function
        if not self.source[function].readback:
            return self.source[function].level
        if function == "CURR":
            return self._current_now()
        return self._terminal_voltage()

    def _take_readings(self, buffer_name: str, count: int | None = None) -> _Reading:
        buffer = self._buffer(buffer_name)
        reading = None
        for _ in range(count or self.sense_count):
            status_bits = (8 if self._in_limit() else 0) | (
                16 if self.sense[self.sense_function].four_wire else 0
            )
            reading = _Reading(
                time_s=self.clock.now(),
                value=self._measure(self.sense_function),
                function=self.sense_function,
                source=self._source_value(),
                source_function=self.source_function,
                status=0,
                source_status=status_bits
                | (2 if self.source[self.source_function].readback else 0)
                | (32 if self.output_on else 0),
            )
            buffer.add(reading)
        assert reading is not None
        return reading

    def _element(self, element: str, r: _Reading, buffer: _Buffer) -> str | float:
        if element == "READ":
            return r.value
        if element == "SOUR":
            return r.source
        if element == "REL":
            return r.time_s - (buffer.first_time_s if buffer.first_time_s is not None else r.time_s)
        if element == "SEC":
            return float(math.floor(r.time_s))
        if element == "FRAC":
            return r.time_s - math.floor(r.time_s)
        if element == "STAT":
            return float(r.status)
        if element == "SOURSTAT":
            return float(r.source_status)
        if element == "UNIT":
            return UNITS[r.function]
        if element == "SOURUNIT":
            return UNITS[r.source_function]
        if element == "FORM":
            return f"{r.value:+.6g} {SYMBOLS[r.function]}"
        if element == "SOURFORM":
            return f"{r.source:+.6g} {SYMBOLS[r.source_function]}"
        stamp = _time.gmtime(math.floor(r.time_s))
        frac = f"{r.time_s - math.floor(r.time_s):.9f}"[1:]
        if element == "DATE":
            return _time.strftime("%m/%d/%Y", stamp)
        if element == "TIME":
            return _time.strftime("%H:%M:%S", stamp) + frac
        return _time.strftime("%m/%d/%Y %H:%M:%S", stamp) + frac  # TST

    def _elements(self, params: list[str]) -> list[str]:
        words = [unquote(p).strip() for p in params]
        # elements may also come as one quoted list: "READ,SOUR"
        elements = [w.strip().upper() for word in words for w in word.split(",") if w.strip()]
        if len(elements) > 14:
            raise ScpiError(*PARAMETER_NOT_ALLOWED)
        out = []
        for element in elements or ["READ"]:
            if element not in BUFFER_ELEMENTS:
                raise ScpiError(*ILLEGAL_PARAMETER)
            canonical = BUFFER_ELEMENTS[element]
            if self.data_format != "ASC" and canonical not in NUMERIC_ELEMENTS:
                raise ScpiError(*SETTINGS_CONFLICT)
            out.append(canonical)
        return out

    def _format(self, values: list[str | float]) -> str | bytes:
        if self.data_format == "ASC":
            return ",".join(v if isinstance(v, str) else f"{v:.9e}" for v in values)
        order = ">" if self.byte_order == "NORM" else "<"
        code = "d" if self.data_format == "REAL" else "f"
        return b"#0" + struct.pack(f"{order}{len(values)}{code}", *[float(v) for v in values])

    def _report(self, readings: list[_Reading], buffer: _Buffer, params: list[str]) -> str | bytes:
        elements = self._elements(params)
        return self._format([self._element(e, r, buffer) for r in readings for e in elements])

    def _buffer(self, name: str) -> _Buffer:
        try:
            return self.buffers[name]
        except KeyError:
            raise ScpiError(*ILLEGAL_PARAMETER) from None

    @staticmethod
    def _buffer_name(params: list[str], index: int = 0) -> str:
        if len(params) <= index:
            return "defbuffer1"
        if not is_string(params[index]) and params[index].lower() not in ("defbuffer1", "defbuffer2"):
            raise ScpiError(-104, "Data type error")
        return unquote(params[index])

    # --- state -------------------------------------------------------------------------
    def _reset_state(self) -> None:
        self.source_function = "VOLT"
        self.source = {"CURR": _Source(range=1e-4), "VOLT": _Source(range=20.0)}
        self.vlim_V = 21.0
        self.ilim_A = 105e-6
        self.ovp = "NONE"
        self.output_on = False
        self.sense_function = "CURR"
        self.sense = {"CURR": _Sense(1e-4), "VOLT": _Sense(20.0), "RES": _Sense(200e3)}
        self.sense_count = 1
        self.terminals = "FRON"
        self.data_format = "ASC"
        self.byte_order = "SWAP"
        self.buffers = {"defbuffer1": _Buffer(100_000), "defbuffer2": _Buffer(10)}
        self._tripped = False
        self._clamp_V = 0.0
        self._voltage_limited = True
        self._last_drive = None
        self._hold_sign = 1.0
        self._hold_current_A, self._hold_pull_A = 0.0, self.ilim_A

    # the source levels keep their historical attribute names
    @property
    def current_A(self) -> float:
        return self.source["CURR"].level

    @property
    def voltage_V(self) -> float:
        return self.source["VOLT"].level

    @property
    def off_mode(self) -> str:
        return self.source[self.source_function].off_mode

    def push_error(self, exc: ScpiError) -> None:
        code = exc.code
        if -199 <= code <= -100:
            self.esr |= CME
        elif -299 <= code <= -200:
            self.esr |= EXE
        elif -399 <= code <= -300:
            self.esr |= DDE
        elif -499 <= code <= -400:
            self.esr |= QYE
        if len(self.errors) >= ERROR_QUEUE_SIZE:
            self.errors[-1] = QUEUE_OVERFLOW
            return
        self.errors.append((exc.code, exc.message))

    def _status_byte(self) -> int:
        stb = 0
        if self.errors:
            stb |= EAV
        if self._connection.pending_output:
            stb |= MAV
        if self.esr & self.ese:
            stb |= ESB
        if stb & self.sre & ~MSS:
            stb |= MSS
        return stb

    # --- the command table --------------------------------------------------------------
    def _declare(self) -> None:
        add = self._parser.add
        src, sens = SOURCE_FUNCTIONS, SENSE_FUNCTIONS

        # IEEE 488.2 common commands
        add("*IDN?", lambda c: self.idn, "identification: maker, model, serial number, firmware")
        add("*RST", self._cmd_rst, "reset every setting to its default; output off; buffers cleared")
        add("*CLS", self._cmd_cls, "clear the error queue and the event registers")
        add("*OPC", self._cmd_opc, "set the operation-complete bit of the event status register")
        add("*OPC?", lambda c: "1", "1 once every pending operation is complete")
        add("*WAI", lambda c: None, "wait for pending operations (none stay pending here)")
        add("*STB?", lambda c: str(self._status_byte()), "status byte (EAV 4, MAV 16, ESB 32, MSS 64)")
        add("*ESR?", self._cmd_esr, "read and clear the standard event status register")
        add("*ESE", self._set_ese, "standard event status enable register (0-255)")
        add("*ESE?", lambda c: str(self.ese), "standard event status enable register")
        add("*SRE", self._set_sre, "service request enable register (0-255)")
        add("*SRE?", lambda c: str(self.sre), "service request enable register")
        add("*TST?", lambda c: "0", "self-test: 0 = passed")
        add("*TRG", self._cmd_trg, "bus trigger (counted; no trigger model is simulated)")
        add("*LANG", self._cmd_lang, "command set after a reboot: SCPI, TSP, SCPI2400 (stays SCPI here)")
        add("*LANG?", lambda c: self.language, "command set selected with *LANG")

        # status model
        add("STATus:PRESet", self._cmd_status_preset, "status enable registers to their defaults")
        add("STATus:CLEar", lambda c: None, "clear the event registers")
        add(
            "STATus:<function>[:EVENt]?",
            lambda c: "0",
            "OPER/QUES/MEAS event register (reads 0)",
            {"OPER": "OPERation", "QUES": "QUEStionable", "MEAS": "MEASurement"},
        )
        add(
            "STATus:<function>:CONDition?",
            lambda c: "0",
            "OPER/QUES/MEAS condition register (reads 0)",
            {"OPER": "OPERation", "QUES": "QUEStionable", "MEAS": "MEASurement"},
        )
        add(
            "STATus:<function>:ENABle",
            self._set_status_enable,
            "OPER/QUES/MEAS enable register",
            {"OPER": "OPERation", "QUES": "QUEStionable", "MEAS": "MEASurement"},
        )
        add(
            "STATus:<function>:ENABle?",
            lambda c: str(self.status_enable[c.function]),
            "OPER/QUES/MEAS enable register",
            {"OPER": "OPERation", "QUES": "QUEStionable", "MEAS": "MEASurement"},
        )

        # system
        add("SYSTem:ERRor[:NEXT]?", self._cmd_error, 'oldest error: code,"message" (0,"No error")')
        add("SYSTem:ERRor:CODE[:NEXT]?", self._cmd_error_code, "code of the oldest error")
        add("SYSTem:ERRor:COUNt?", lambda c: str(len(self.errors)), "number of errors in the queue")
        add("SYSTem:ERRor:ALL?", self._cmd_error_all, "every error in the queue, oldest first")
        add("SYSTem:CLEar", self._cmd_system_clear, "clear the error queue")
        add("SYSTem:BEEPer[:IMMediate]", self._cmd_beep, "beep: frequency 20-8000 Hz, duration 0.001-100 s")
        add("SYSTem:LFRequency?", lambda c: "60", "power-line frequency (Hz)")
        add("ROUTe:TERMinals", self._cmd_terminals, "FRONt or REAR terminals")
        add("ROUTe:TERMinals?", lambda c: self.terminals, "FRON or REAR")

        # output
        add("OUTPut[1][:STATe]", self._cmd_output, "source output ON/OFF (1/0)")
        add("OUTPut[1][:STATe]?", lambda c: "1" if self.output_on else "0", "source output (1/0)")
        add(
            "OUTPut[1]:<function>:SMODe",
            self._cmd_off_mode,
            "output-off state of a source function: HIMP, NORM, ZERO, GUAR",
            src,
        )
        add(
            "OUTPut[1]:<function>:SMODe?",
            lambda c: self.source[c.function].off_mode,
            "output-off state of a source function",
            src,
        )
        add("OUTPut[1]:SMODe", self._cmd_off_mode, "output-off state of every source function")
        add("OUTPut[1]:SMODe?", lambda c: self.off_mode, "output-off state of the present source function")

        # source
        add("SOURce[1]:FUNCtion[:MODE]", self._cmd_source_function, "source VOLTage or CURRent; output off")
        add("SOURce[1]:FUNCtion[:MODE]?", lambda c: self.source_function, "VOLT or CURR")
        add(
            "SOURce[1]:<function>[:LEVel][:IMMediate][:AMPLitude]",
            self._cmd_level,
            "source level (A: ±1.05, V: ±210; MIN/MAX/DEF)",
            src,
        )
        add(
            "SOURce[1]:<function>[:LEVel][:IMMediate][:AMPLitude]?",
            self._query_level,
            "source level (MIN/MAX/DEF give the bounds)",
            src,
        )
        add(
            "SOURce[1]:CURRent:VLIMit[:LEVel]",
            self._cmd_vlim,
            "voltage limit in current mode, 0.02-210 V (±)",
        )
        add("SOURce[1]:CURRent:VLIMit[:LEVel]?", self._query_vlim, "voltage limit")
        add(
            "SOURce[1]:CURRent:VLIMit[:LEVel]:TRIPped?",
            lambda c: self._trip("CURR"),
            "1 while the voltage limit clamps the output",
        )
        add(
            "SOURce[1]:VOLTage:ILIMit[:LEVel]",
            self._cmd_ilim,
            "current limit in voltage mode, 1 nA-1.05 A (±)",
        )
        add("SOURce[1]:VOLTage:ILIMit[:LEVel]?", self._query_ilim, "current limit")
        add(
            "SOURce[1]:VOLTage:ILIMit[:LEVel]:TRIPped?",
            lambda c: self._trip("VOLT"),
            "1 while the current limit holds the output",
        )
        add(
            "SOURce[1]:<function>:RANGe",
            self._cmd_source_range,
            "source range; turns source autorange off",
            src,
        )
        add("SOURce[1]:<function>:RANGe?", self._query_source_range, "source range", src)
        add("SOURce[1]:<function>:RANGe:AUTO", self._cmd_source_autorange, "source autorange ON/OFF", src)
        add(
            "SOURce[1]:<function>:RANGe:AUTO?",
            lambda c: _b(self.source[c.function].auto),
            "source autorange",
            src,
        )
        add(
            "SOURce[1]:<function>:DELay",
            self._cmd_source_delay,
            "source delay 0-10000 s; auto delay off",
            src,
        )
        add("SOURce[1]:<function>:DELay?", lambda c: _e(self.source[c.function].delay_s), "source delay", src)
        add("SOURce[1]:<function>:DELay:AUTO", self._cmd_source_delay_auto, "source auto delay ON/OFF", src)
        add(
            "SOURce[1]:<function>:DELay:AUTO?",
            lambda c: _b(self.source[c.function].delay_auto),
            "source auto delay",
            src,
        )
        add(
            "SOURce[1]:<function>:READ:BACK",
            self._cmd_readback,
            "ON: the SOUR element is the measured source value; OFF: the programmed one",
            src,
        )
        add(
            "SOURce[1]:<function>:READ:BACK?",
            lambda c: _b(self.source[c.function].readback),
            "source readback",
            src,
        )
        add(
            "SOURce[1]:VOLTage:PROTection[:LEVel]",
            self._cmd_ovp,
            "overvoltage protection: NONE, PROT2...PROT180",
        )
        add("SOURce[1]:VOLTage:PROTection[:LEVel]?", lambda c: self.ovp, "overvoltage protection")
        add("SOURce[1]:VOLTage:PROTection:TRIPped?", lambda c: "0", "1 if the overvoltage protection tripped")

        # sense
        add("[SENSe[1]]:FUNCtion[:ON]", self._cmd_sense_function, 'measure function: "VOLT", "CURR" or "RES"')
        add(
            "[SENSe[1]]:FUNCtion[:ON]?",
            lambda c: f'"{self.sense_function}:DC"' if self.sense_function != "RES" else '"RES"',
            "measure function",
        )
        add(
            "[SENSe[1]]:<function>[:DC]:RANGe[:UPPer]",
            self._cmd_sense_range,
            "measure range (MIN/MAX/DEF); turns autorange off",
            sens,
        )
        add(
            "[SENSe[1]]:<function>[:DC]:RANGe[:UPPer]?",
            lambda c: _e(self._sense_range(c.function)),
            "measure range in use",
            sens,
        )
        add(
            "[SENSe[1]]:<function>[:DC]:RANGe:AUTO", self._cmd_sense_autorange, "measure autorange ON/OFF", sens
        )
        add(
            "[SENSe[1]]:<function>[:DC]:RANGe:AUTO?",
            lambda c: _b(self.sense[c.function].auto),
            "measure autorange",
            sens,
        )
        add(
            "[SENSe[1]]:<function>[:DC]:NPLCycles",
            self._cmd_nplc,
            "integration time, 0.01-10 power-line cycles",
            sens,
        )
        add("[SENSe[1]]:<function>[:DC]:NPLCycles?", lambda c: _e(self.sense[c.function].nplc), "NPLC", sens)
        add("[SENSe[1]]:<function>[:DC]:AVERage[:STATe]", self._cmd_average, "averaging filter ON/OFF", sens)
        add(
            "[SENSe[1]]:<function>[:DC]:AVERage[:STATe]?",
            lambda c: _b(self.sense[c.function].average),
            "averaging filter",
            sens,
        )
        add("[SENSe[1]]:<function>[:DC]:AVERage:COUNt", self._cmd_average_count, "filter count 1-100", sens)
        add(
            "[SENSe[1]]:<function>[:DC]:AVERage:COUNt?",
            lambda c: str(self.sense[c.function].average_count),
            "filter count",
            sens,
        )
        add(
            "[SENSe[1]]:<function>[:DC]:AVERage:TCONtrol",
            self._cmd_average_type,
            "filter type REPeat or MOVing",
            sens,
        )
        add(
            "[SENSe[1]]:<function>[:DC]:AVERage:TCONtrol?",
            lambda c: self.sense[c.function].average_type,
            "filter type",
            sens,
        )
        add("[SENSe[1]]:<function>[:DC]:RSENse", self._cmd_rsense, "4-wire (ON) or 2-wire (OFF) sense", sens)
        add(
            "[SENSe[1]]:<function>[:DC]:RSENse?",
            lambda c: _b(self.sense[c.function].four_wire),
            "4-wire sense",
            sens,
        )
        add("[SENSe[1]]:<function>[:DC]:AZERo[:STATe]", self._cmd_autozero, "autozero ON/OFF", sens)
        add(
            "[SENSe[1]]:<function>[:DC]:AZERo[:STATe]?",
            lambda c: _b(self.sense[c.function].autozero),
            "autozero",
            sens,
        )
        add("[SENSe[1]]:COUNt", self._cmd_count, "readings per READ?/MEAS?/INIT, 1-300000")
        add("[SENSe[1]]:COUNt?", lambda c: str(self.sense_count), "readings per measure request")

        # measure
        add("READ?", self._cmd_read, 'measure into a buffer: READ? ["buffer"[, elements]]')
        add("MEASure?", self._cmd_read, "as READ? with the present function")
        add(
            "MEASure:<function>[:DC]?",
            self._cmd_measure_function,
            "select the measure function, then as READ?",
            sens,
        )
        add("FETCh?", self._cmd_fetch, 'latest reading of a buffer: FETCh? ["buffer"[, elements]]')
        add("INITiate[:IMMediate]", self._cmd_initiate, "take COUNt readings into defbuffer1")
        add("ABORt", lambda c: None, "stop the trigger model (none runs here)")
        add(
            "FORMat[:DATA]",
            self._cmd_format,
            "reading format: ASCii, REAL (#0 + doubles), SREal (#0 + floats)",
        )
        add("FORMat[:DATA]?", lambda c: self.data_format, "reading format")
        add("FORMat:BORDer", self._cmd_border, "binary byte order: NORMal (big-endian) or SWAPped")
        add("FORMat:BORDer?", lambda c: self.byte_order, "binary byte order")

        # reading buffers
        add("TRACe:MAKE", self._cmd_make, 'new buffer: TRACe:MAKE "name", size[, STANdard|COMPact|FULL]')
        add("TRACe:DELete", self._cmd_delete, 'delete a user buffer: TRACe:DELete "name"')
        add("TRACe:CLEar", self._cmd_clear, "empty a buffer (defbuffer1 by default)")
        add("TRACe:POINts", self._cmd_points, 'buffer size (clears it): TRACe:POINts n[, "name"]')
        add("TRACe:POINts?", lambda c: str(self._buffer(self._buffer_name(c.params)).capacity), "buffer size")
        add(
            "TRACe:ACTual?",
            lambda c: str(len(self._buffer(self._buffer_name(c.params)).readings)),
            "readings in a buffer",
        )
        add(
            "TRACe:ACTual:STARt?",
            lambda c: "1" if self._buffer(self._buffer_name(c.params)).readings else "0",
            "index of the first reading",
        )
        add(
            "TRACe:ACTual:END?",
            lambda c: str(len(self._buffer(self._buffer_name(c.params)).readings)),
            "index of the last reading",
        )
        add(
            "TRACe:DATA?", self._cmd_trace_data, 'readings start..end: TRACe:DATA? s, e[, "name"[, elements]]'
        )
        add("TRACe:TRIGger", self._cmd_trace_trigger, "one reading into a buffer")
        add("TRACe:FILL:MODE", self._cmd_fill_mode, 'CONTinuous (wrap) or ONCE[, "name"]')
        add(
            "TRACe:FILL:MODE?",
            lambda c: "ONCE" if self._buffer(self._buffer_name(c.params)).fill_once else "CONT",
            "fill mode",
        )
        for word, long, fn in (
            ("AVERage", "mean", _mean), ("MAXimum", "largest", max), ("MINimum", "smallest", min),
            ("PK2Pk", "peak-to-peak", lambda v: max(v) - min(v)), ("STDDev", "standard deviation", _stddev),
        ):  # fmt: skip
            add(f"TRACe:STATistics:{word}?", self._statistic(fn), f"{long} of a buffer's readings")
        add(
            "TRACe:STATistics:CLEar", lambda c: None, "clear the statistics (computed from the readings here)"
        )

    # --- handlers ----------------------------------------------------------------------
    def _cmd_rst(self, c: Call) -> None:
        no_params(c)
        self._reset_state()

    def _cmd_cls(self, c: Call) -> None:
        self.errors.clear()
        self.esr = 0

    def _cmd_opc(self, c: Call) -> None:
        self.esr |= OPC

    def _cmd_esr(self, c: Call) -> str:
        value, self.esr = self.esr, 0
        return str(value)

    def _set_ese(self, c: Call) -> None:
        self.ese = int(parse_number(c.params, 0, 255))

    def _set_sre(self, c: Call) -> None:
        self.sre = int(parse_number(c.params, 0, 255)) & ~MSS

    def _cmd_trg(self, c: Call) -> None:
        self.bus_triggers += 1

    def _cmd_lang(self, c: Call) -> None:
        self.language = parse_choice(c.params, {"SCPI": "SCPI", "TSP": "TSP", "SCPI2400": "SCPI2400"})

    def _cmd_status_preset(self, c: Call) -> None:
        self.status_enable = {"OPER": 0, "QUES": 0, "MEAS": 0}

    def _set_status_enable(self, c: Call) -> None:
        self.status_enable[c.function] = int(parse_number(c.params, 0, 65535))

    def _cmd_error(self, c: Call) -> str:
        code, message = self.errors.pop(0) if self.errors else (0, "No error")
        return f'{code},"{message}"'

    def _cmd_error_code(self, c: Call) -> str:
        code, _ = self.errors.pop(0) if self.errors else (0, "")
        return str(code)

    def _cmd_error_all(self, c: Call) -> str:
        errors, self.errors = self.errors or [(0, "No error")], []
        return ",".join(f'{code},"{message}"' for code, message in errors)

    def _cmd_system_clear(self, c: Call) -> None:
        self.errors.clear()

    def _cmd_beep(self, c: Call) -> None:
        if len(c.params) != 2:
            raise ScpiError(*MISSING_PARAMETER)
        self.beeps.append((parse_number(c.params, 20, 8000), parse_number(c.params, 0.001, 100, index=1)))

    def _cmd_terminals(self, c: Call) -> None:
        self.terminals = parse_choice(c.params, {"FRON": "FRON", "FRONT": "FRON", "REAR": "REAR"})

    def _cmd_output(self, c: Call) -> None:
        self._catch_up()
        self.output_on = parse_bool(c.params)

    def _cmd_off_mode(self, c: Call) -> None:
        mode = parse_choice(c.params, OFF_MODES)
        for function in c.functions or list(SOURCE_FUNCTIONS):
            self.source[function].off_mode = mode

    def _cmd_source_function(self, c: Call) -> None:
        function = parse_choice(
            c.params, {"CURR": "CURR", "CURRENT": "CURR", "VOLT": "VOLT", "VOLTAGE": "VOLT"}
        )
        if function != self.source_function:
            self.output_on = False  # changing the source function turns the output off
        self.source_function = function

    def _level_bounds(self, function: str) -> tuple[float, float]:
        top = MAX_CURRENT_A if function == "CURR" else MAX_VOLTAGE_V
        src = self.source[function]
        if not src.auto:
            top = min(top, src.range * 1.05)
        return -top, top

    def _cmd_level(self, c: Call) -> None:
        low, high = self._level_bounds(c.function)
        self.source[c.function].level = parse_number(c.params, low, high, 0.0)

    def _query_level(self, c: Call) -> str:
        if c.params:
            return _e(_bound(c.params, *self._level_bounds(c.function), 0.0))
        return _e(self.source[c.function].level)

    def _cmd_vlim(self, c: Call) -> None:
        self.vlim_V = parse_number(c.params, 0.02, MAX_VOLTAGE_V, 21.0)

    def _query_vlim(self, c: Call) -> str:
        return _e(_bound(c.params, 0.02, MAX_VOLTAGE_V, 21.0) if c.params else self.vlim_V)

    def _cmd_ilim(self, c: Call) -> None:
        self.ilim_A = parse_number(c.params, 1e-9, MAX_CURRENT_A, 105e-6)

    def _query_ilim(self, c: Call) -> str:
        return _e(_bound(c.params, 1e-9, MAX_CURRENT_A, 105e-6) if c.params else self.ilim_A)

    def _trip(self, function: str) -> str:
        if not self.output_on or self.source_function != function:
            return "0"
        return "1" if self._in_limit() else "0"

    def _cmd_source_range(self, c: Call) -> None:
        ranges = RANGES[c.function]
        value = parse_number(c.params, -ranges[-1] * 1.05, ranges[-1] * 1.05, ranges[-1])
        if c.params[0].upper().startswith("MIN"):
            value = ranges[0]
        src = self.source[c.function]
        src.range, src.auto = _range_for(value, ranges), False

    def _query_source_range(self, c: Call) -> str:
        src = self.source[c.function]
        if src.auto:
            return _e(_range_for(src.level, RANGES[c.function]))
        return _e(src.range)

    def _cmd_source_autorange(self, c: Call) -> None:
        src = self.source[c.function]
        src.auto = parse_bool(c.params)
        if not src.auto:
            src.range = _range_for(src.level, RANGES[c.function])

    def _cmd_source_delay(self, c: Call) -> None:
        src = self.source[c.function]
        src.delay_s, src.delay_auto = parse_number(c.params, 0.0, 10_000.0, 0.0), False

    def _cmd_source_delay_auto(self, c: Call) -> None:
        self.source[c.function].delay_auto = parse_bool(c.params)

    def _cmd_readback(self, c: Call) -> None:
        self.source[c.function].readback = parse_bool(c.params)

    def _cmd_ovp(self, c: Call) -> None:
        self.ovp = parse_choice(c.params, {level: level for level in OVP_LEVELS})

    def _cmd_sense_function(self, c: Call) -> None:
        if not c.params:
            raise ScpiError(*MISSING_PARAMETER)
        word = unquote(c.params[0]).strip().upper()
        word = word[:-3] if word.endswith(":DC") else word
        choices = {"VOLT": "VOLT", "VOLTAGE": "VOLT", "CURR": "CURR", "CURRENT": "CURR",
                   "RES": "RES", "RESISTANCE": "RES"}  # fmt: skip
        if word not in choices:
            raise ScpiError(*ILLEGAL_PARAMETER)
        self.sense_function = choices[word]

    def _sense_range(self, function: str) -> float:
        sense = self.sense[function]
        if not sense.auto:
            return sense.range
        if function == "CURR":
            return self._present_current_range()
        if function == "VOLT":
            return _range_for(self._terminal_voltage(), VOLTAGE_RANGES_V)
        return sense.range

    def _cmd_sense_range(self, c: Call) -> None:
        ranges = RANGES[c.function]
        low = 0.0 if c.function == "RES" else -ranges[-1] * 1.05
        value = parse_number(c.params, low, ranges[-1] * 1.05, ranges[-1])
        if c.params[0].upper().startswith("MIN"):
            value = ranges[0]
        sense = self.sense[c.function]
        sense.range, sense.auto = _range_for(value, ranges), False

    def _cmd_sense_autorange(self, c: Call) -> None:
        sense = self.sense[c.function]
        sense.auto = parse_bool(c.params)
        if not sense.auto:
            sense.range = self._sense_range(c.function) if c.function != "RES" else sense.range

    def _cmd_nplc(self, c: Call) -> None:
        self.sense[c.function].nplc = parse_number(c.params, 0.01, 10.0, 1.0)

    def _cmd_average(self, c: Call) -> None:
        self.sense[c.function].average = parse_bool(c.params)

    def _cmd_average_count(self, c: Call) -> None:
        self.sense[c.function].average_count = int(parse_number(c.params, 1, 100, 10))

    def _cmd_average_type(self, c: Call) -> None:
        self.sense[c.function].average_type = parse_choice(
            c.params, {"REP": "REP", "REPEAT": "REP", "MOV": "MOV", "MOVING": "MOV"}
        )

    def _cmd_rsense(self, c: Call) -> None:
        self.sense[c.function].four_wire = parse_bool(c.params)

    def _cmd_autozero(self, c: Call) -> None:
        self.sense[c.function].autozero = parse_bool(c.params)

    def _cmd_count(self, c: Call) -> None:
        self.sense_count = int(parse_number(c.params, 1, 300_000, 1))

    def _cmd_read(self, c: Call) -> str | bytes:
        name = self._buffer_name(c.params)
        self._elements(c.params[1:])  # refuse bad elements before measuring
        reading = self._take_readings(name)
        return self._report([reading], self.buffers[name], c.params[1:])

    def _cmd_measure_function(self, c: Call) -> str | bytes:
        self.sense_function = c.function
        return self._cmd_read(c)

    def _cmd_fetch(self, c: Call) -> str | bytes:
        name = self._buffer_name(c.params)
        buffer = self._buffer(name)
        if not buffer.readings:
            raise ScpiError(-230, "Data corrupt or stale")
        return self._report([buffer.readings[-1]], buffer, c.params[1:])

    def _cmd_initiate(self, c: Call) -> None:
        self._take_readings("defbuffer1")

    def _cmd_format(self, c: Call) -> None:
        self.data_format = parse_choice(
            c.params, {"ASC": "ASC", "ASCII": "ASC", "REAL": "REAL", "SRE": "SRE", "SREAL": "SRE"}
        )

    def _cmd_border(self, c: Call) -> None:
        self.byte_order = parse_choice(c.params, {"NORM": "NORM", "NORMAL": "NORM", "SWAP": "SWAP",
                                                  "SWAPPED": "SWAP"})  # fmt: skip

    def _cmd_make(self, c: Call) -> None:
        if len(c.params) < 2:
            raise ScpiError(*MISSING_PARAMETER)
        if not is_string(c.params[0]):
            raise ScpiError(-104, "Data type error")
        name = unquote(c.params[0])
        if name in self.buffers or not name or len(name) > 31:
            raise ScpiError(*ILLEGAL_PARAMETER)
        size = int(parse_number(c.params, 1, MAX_BUFFER_POINTS, index=1))
        if len(c.params) > 2:
            parse_choice(c.params, {"STAN": "STAN", "STANDARD": "STAN", "COMP": "COMP", "COMPACT": "COMP",
                                    "FULL": "FULL"}, index=2)  # fmt: skip
        if len(self.buffers) >= 16:
            raise ScpiError(*SETTINGS_CONFLICT)
        self.buffers[name] = _Buffer(size)

    def _cmd_delete(self, c: Call) -> None:
        name = self._buffer_name(c.params)
        if name in ("defbuffer1", "defbuffer2") or not c.params:
            raise ScpiError(*ILLEGAL_PARAMETER)
        self._buffer(name)
        del self.buffers[name]

    def _cmd_clear(self, c: Call) -> None:
        self._buffer(self._buffer_name(c.params)).clear()

    def _cmd_points(self, c: Call) -> None:
        size = int(parse_number(c.params, 1, MAX_BUFFER_POINTS, 100_000))
        buffer = self._buffer(self._buffer_name(c.params, 1))
        buffer.capacity = size
        buffer.clear()

    def _cmd_trace_data(self, c: Call) -> str | bytes:
        if len(c.params) < 2:
            raise ScpiError(*MISSING_PARAMETER)
        buffer = self._buffer(self._buffer_name(c.params, 2))
        n = len(buffer.readings)
        start = int(parse_number(c.params, 1, max(n, 1)))
        end = int(parse_number(c.params, 1, max(n, 1), index=1))
        if n == 0 or end < start:
            raise ScpiError(*DATA_OUT_OF_RANGE)
        readings = [buffer.readings[i] for i in range(start - 1, end)]
        return self._report(readings, buffer, c.params[3:])

    def _cmd_trace_trigger(self, c: Call) -> None:
        self._take_readings(self._buffer_name(c.params), count=1)

    def _cmd_fill_mode(self, c: Call) -> None:
        mode = parse_choice(c.params, {"CONT": "CONT", "CONTINUOUS": "CONT", "ONCE": "ONCE"})
        self._buffer(self._buffer_name(c.params, 1)).fill_once = mode == "ONCE"

    def _statistic(self, fn: Any) -> Any:
        def handler(c: Call) -> str:
            values = [r.value for r in self._buffer(self._buffer_name(c.params)).readings]
            return _e(fn(values)) if values else _e(OVERFLOW)

        return handler


def _bound(params: list[str], low: float, high: float, default: float) -> float:
    """A query's MIN/MAX/DEF parameter: the bound it names."""
    if params[0].upper() not in ("MIN", "MINIMUM", "MAX", "MAXIMUM", "DEF", "DEFAULT"):
        raise ScpiError(*ILLEGAL_PARAMETER)
    return parse_number(params, low, high, default)


def _b(flag: bool) -> str:
    return "1" if flag else "0"


def _mean(values: list[float]) -> float:
    return math.fsum(values) / len(values)


def _stddev(values: list[float]) -> float:
    if len(values) < 2:
        return 0.0
    m = _mean(values)
    return math.sqrt(math.fsum((v - m) ** 2 for v in values) / (len(values) - 1))
