"""The Keithley 2450's wire protocol: its SCPI settings and queries, each declared once as in the
manual's command table with a strict validator, over any transport."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from drivers.scpi import (
    Control,
    Measurement,
    ScpiInstrument,
    parse_bool,
    strict_choice,
    strict_range,
)
from drivers.transport import InstrumentError, InstrumentTimeout

T = TypeVar("T")

MAX_CURRENT_A = 1.05
#: The longest constant delay of a trigger-model block (TRIGger:BLOCk:DELay:CONStant).
MAX_DELAY_S = 10_000.0
BUFFER = "defbuffer1"
#: The source configuration list ``:SOUR:SWE:VOLT:LIN`` makes of its levels (start to stop).
SWEEP_LIST = "VoltLinearSweepList"
#: Readings a step segment's buffer holds (sized at each segment's start; the 2450 takes up to
#: several million in a standard buffer): a segment longer than this many sampling intervals
#: samples less often (see ``Segment.sampling_interval_s``).
BUFFER_POINTS = 1_000_000
#: Readings asked for per ``:TRAC:DATA?`` (a reply line of some 20 kB).
READINGS_PER_QUERY = 500
#: Values of the resynchronisation marker (``*ESE <n>;*ESE?``), used in turn: three-digit
#: integers, which no query of this driver answers (numbers come as ``+1.234000E+00``, states
#: as ``0``/``1``), so a stale reply is never taken for the marker.
MARKERS = tuple(range(101, 255))


def _parse_identity(text: str) -> str:
    """``maker,model,serial,firmware``: anything else is not an identity."""
    fields = text.split(",")
    if len(fields) != 4 or not all(f.strip() for f in fields):
        raise ValueError(f"not maker,model,serial,firmware: {text!r}")
    return text


def _parse_reading(text: str) -> tuple[float, float]:
    measured, source = (float(x) for x in text.split(","))
    return measured, source


def _parse_error(text: str) -> tuple[int, str]:
    """``code,"message"``."""
    code_text, comma, message = text.partition(",")
    if not comma or not message.strip().startswith('"'):
        raise ValueError(f'not code,"message": {text!r}')
    return int(code_text), message.strip().strip('"')


TRIGGER_STATES = {"IDLE", "RUNNING", "WAITING", "EMPTY", "BUILDING", "FAILED", "ABORTING", "ABORTED"}


def _parse_trigger_state(text: str) -> str:
    """``state;state;block``: the model's overall state."""
    state = text.split(";")[0].strip().upper()
    if state not in TRIGGER_STATES or text.count(";") != 2:
        raise ValueError(f"not state;state;block: {text!r}")
    return state


def _parse_source_function(text: str) -> str:
    word = text.strip().upper()
    return {"CURR": "current", "VOLT": "voltage"}[word]


class Keithley2450(ScpiInstrument):
    """Wire protocol of the Keithley 2450 (native SCPI command set)."""

    identity = Measurement("*IDN?", "Manufacturer, model, serial number, firmware.", parse=_parse_identity)
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
    trigger_state = Measurement(":TRIG:STAT?", "Trigger model state: IDLE, RUNNING, ABORTED...",
                                parse=_parse_trigger_state)  # fmt: skip
    voltage_V = Measurement(":MEAS:VOLT?", "One voltage measurement, V.", parse=float)
    current_A = Measurement(":MEAS:CURR?", "One current measurement, A.", parse=float)

    #: Times a query is asked again after a lost, late or garbled reply (the link, not the
    #: instrument, failed: queries change nothing, so asking again is safe). Generous: the
    #: instrument keeps the cell inside its limits meanwhile, and a link that is down for a
    #: while costs at most this many transport timeouts before the cell is failed.
    retries = 20
    #: Stale lines a resynchronisation reads past before giving up on that attempt.
    max_stale_lines = 64

    def __init__(self, transport: Any, name: str) -> None:
        super().__init__(transport, name)
        #: False from a failed exchange until a marker query has come back: replies may be
        #: on their way that answer queries the driver gave up on.
        self.in_sync = True
        self._marker = MARKERS[-1]

    def ask(self, command: str) -> str:
        """Query, with the retries and resynchronisation of :meth:`query`."""
        return str(self.query(command))

    def query(self, command: str, parse: Callable[[str], T] | None = None) -> Any:
        """Query, asking again after a reply that was lost, late, garbled or of the wrong shape.

        ``parse`` is the reply's expected shape (it raises ValueError/IndexError/KeyError on
        anything else). After any failed exchange the link is *out of step*: a late reply to
        the failed query may still be on its way (over a socket it is, whatever the timeout),
        and the next line read could be it. So before the next query the driver
        resynchronises (:meth:`resync`): it throws away what has arrived, then sends a marker
        query whose reply it chooses and reads up to that reply, so every late reply is behind
        it. A reply of the wrong shape is such a failure too, never data. InstrumentError once
        ``retries`` more attempts have failed as well, naming the last failure.
        """
        failure: InstrumentError | None = None
        for _ in range(self.retries + 1):
            try:
                if not self.in_sync:
                    self.resync()
                self.write(command)
                reply = self.transport.read_line(self.termination, command=command)
            except InstrumentError as exc:
                if "closed" in str(exc):
                    raise
                failure, self.in_sync = exc, False
                continue
            if parse is None:
                return reply
            try:
                return parse(reply)
            except (ValueError, IndexError, KeyError) as exc:
                failure = InstrumentError(self.name, f"garbled reply {reply!r} ({exc})", command)
                self.in_sync = False
        assert failure is not None
        message = failure.args[0].removeprefix(f"{self.name}: ") if failure.args else str(failure)
        message = message.split(" (command ")[0]
        raise InstrumentError(
            self.name,
            f"no valid reply in {self.retries + 1} attempts, resynchronising before each; last: {message}",
            command,
        ) from failure

    def resync(self) -> None:
        """Get back in step with the instrument after a failed exchange.

        What has already arrived is thrown away (the transport's non-blocking read), then
        ``*ESE <n>;*ESE?;*ESE 0`` is sent with a marker ``n`` that changes every time: the
        instrument answers ``n`` after every reply still owed to earlier queries (a link keeps
        the order), so the lines up to ``n`` are stale and the next line is the answer to the
        next query. ``*ESE 0`` puts the event-status enable register back to its power-on
        value (this driver does not use it). InstrumentTimeout if the marker does not come
        back in time (the caller tries again, with the next marker).
        """
        self.transport.read_available()
        self._marker = MARKERS[(MARKERS.index(self._marker) + 1) % len(MARKERS)]
        expected = str(self._marker)
        command = f"*ESE {expected};*ESE?;*ESE 0"
        self.write(command)
        for _ in range(self.max_stale_lines):
            try:
                line = self.transport.read_line(self.termination, command=command)
            except InstrumentTimeout:
                raise
            except InstrumentError as exc:
                if "closed" in str(exc):
                    raise
                continue  # an undecodable stale line: read on
            if line.strip() == expected:
                self.in_sync = True
                return
        raise InstrumentError(
            self.name, f"more than {self.max_stale_lines} stale lines before the marker", command
        )

    def start_logging(self, interval_s: float, branches: list[str] | None = None, buffer: str = BUFFER) -> None:
        """Start the trigger model that keeps the step's readings on the instrument.

        One program message (a link delivers it whole or not at all): stop any running model,
        size and clear ``buffer``, then a block program that takes a reading at once (block 2)
        and then runs ``branches`` (block commands from block 3 on, e.g. limit branches that end
        the step on the instrument), by default one reading every ``interval_s`` (a constant
        delay, then back to the measure block) until ``:ABORt``, whether or not a host is there
        to read them. ``:TRIG:STAT?`` confirms it runs; sent again if the message was lost.
        InstrumentError if it never runs.
        """
        if branches is None:
            branches = [f":TRIG:BLOC:DEL:CONS 3, {interval_s:.9e}", ":TRIG:BLOC:BRAN:ALW 4, 2"]
        program = ";".join(
            [f':ABOR;:TRIG:LOAD "Empty";:TRAC:POIN {BUFFER_POINTS}, "{buffer}"',
             f':TRIG:BLOC:BUFF:CLE 1, "{buffer}";:TRIG:BLOC:MEAS 2, "{buffer}", 1', *branches, ":INIT"]
        )  # fmt: skip
        for _ in range(self.retries + 1):  # a model that ran to its end is emptied first, so that
            if self.trigger_state != "IDLE":  # IDLE after the program says it ran to its end at once
                break
            self.write(':ABOR;:TRIG:LOAD "Empty"')
        for _ in range(self.retries + 1):
            self.write(program)
            if self.trigger_state in ("RUNNING", "IDLE"):
                self.check_errors("starting the trigger model")
                return
        raise InstrumentError(self.name, "the trigger model does not run", program)

    def stop_logging(self) -> None:
        """Stop the trigger model (the source stays as it is)."""
        self.write(":ABOR")

    def buffer_end(self, buffer: str = BUFFER) -> int:
        """Index of the last reading in ``buffer`` (0 when empty)."""
        return self.query(f':TRAC:ACT:END? "{buffer}"', int)  # type: ignore[no-any-return]

    def latest_reading(self, buffer: str = BUFFER) -> tuple[tuple[float, float, float], int]:
        """The newest reading of ``buffer`` (measured, source, seconds since its first reading)
        and the index of the last reading, in one exchange (``:FETCh?`` then ``:TRAC:ACT:END?``,
        so a reading added in between shows as an index one further than the reading)."""

        def parse(text: str) -> tuple[tuple[float, float, float], int]:
            reading, end = text.split(";")
            measured, source, rel = (float(x) for x in reading.split(","))
            return (measured, source, rel), int(end)

        command = f':FETC? "{buffer}", READ, SOUR, REL;:TRAC:ACT:END? "{buffer}"'
        return self.query(command, parse)  # type: ignore[no-any-return]

    def buffer_readings(self, start: int, end: int, buffer: str = BUFFER) -> list[tuple[float, float, float]]:
        """Readings ``start``..``end`` (1-based) of ``buffer``: (measured, source, seconds since
        the buffer's first reading), at most :data:`READINGS_PER_QUERY` per query."""
        rows: list[tuple[float, float, float]] = []
        for first in range(start, end + 1, READINGS_PER_QUERY):
            last = min(end, first + READINGS_PER_QUERY - 1)

            def parse(text: str, n: int = last - first + 1) -> list[tuple[float, float, float]]:
                values = [float(x) for x in text.split(",")]
                if len(values) != 3 * n:
                    raise ValueError(f"{len(values)} values for {n} readings of 3 elements")
                return list(zip(values[0::3], values[1::3], values[2::3], strict=True))

            rows += self.query(f':TRAC:DATA? {first}, {last}, "{buffer}", READ, SOUR, REL', parse)
        return rows

    def sweep_levels(self, start_V: float, stop_V: float, points: int) -> None:
        """Make the source configuration list :data:`SWEEP_LIST` of ``points`` voltage levels
        evenly spaced from ``start_V`` to ``stop_V`` (``:SOUR:SWE:VOLT:LIN``, which also loads a
        sweep's trigger model: a block program loaded after it replaces that), for trigger-model
        blocks to step through (``:TRIG:BLOC:CONF:REC``/``NEXT``/``PREV``). The list's size is read
        back in the same program message (``:SOUR:CONF:LIST:SIZE?``: a message lost on the link
        is sent again whole). InstrumentError if the list does not hold ``points`` levels."""
        if points < 2:
            raise ValueError(f"{self.name}: a sweep list needs 2 points or more, got {points}")
        command = f':SOUR:SWE:VOLT:LIN {start_V:.9e}, {stop_V:.9e}, {points};:SOUR:CONF:LIST:SIZE? "{SWEEP_LIST}"'
        size = self.query(command, int)
        if size != points:
            raise InstrumentError(self.name, f"the sweep list holds {size} levels, not {points}", command)

    def read(self) -> tuple[float, float]:
        """Take a reading: (measured value, source value)."""
        return self.query(':READ? "defbuffer1", READ, SOUR', _parse_reading)  # type: ignore[no-any-return]

    def next_error(self) -> tuple[int, str]:
        """The oldest error of the queue: (code, message); (0, "No error") when empty."""
        return self.query(":SYST:ERR?", _parse_error)  # type: ignore[no-any-return]

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
