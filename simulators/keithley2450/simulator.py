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

The parts, one idea each: :mod:`simulators.keithley2450.model` (ranges, settings, readings and
buffers as data), :mod:`~simulators.keithley2450.physics` (the output on the cell and what a
measurement reads), :mod:`~simulators.keithley2450.buffers` (readings, elements, formats),
:mod:`~simulators.keithley2450.settings` (common commands, status, source and sense settings),
:mod:`~simulators.keithley2450.panel` (display, trigger-model templates and sweeps) and
:mod:`~simulators.keithley2450.commands` (the command table); this module holds the connections
and the instrument that joins them.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from simulators.keithley2450.commands import _Commands
from simulators.keithley2450.model import (
    CME,
    DDE,
    ERROR_QUEUE_SIZE,
    EXE,
    IDN,
    MAX_MESSAGE_BYTES,
    PON,
    QYE,
    ClockLike,
)
from simulators.scpi import (
    QUEUE_OVERFLOW,
    TOO_MUCH_DATA,
    CommandInfo,
    ScpiError,
    ScpiParser,
)


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


class SimulatedKeithley2450(_Commands):
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
        self._run_trigger()  # what a running trigger model had due by now, each at its instant
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
