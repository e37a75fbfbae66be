"""Simulated PalmSens EmStat4 (HR or LR) speaking MethodSCRIPT over a byte endpoint.

Online commands (one ``\\n``-terminated line each; the reply echoes the first character):

==========  =================================================================================
``t``       firmware version, two lines, the last ending in ``*``
``v``       MethodSCRIPT version (``v`` + :data:`MSCRIPT_VERSION`)
``i``       serial number (``i<serial>``)
``e``       load and run a script: ``e`` is echoed, the script's lines follow, an empty
            line ends it. Parse errors answer ``!XXXX: Line L, Col C`` and an empty line.
``l``       load a script without running it: ``l``, then an empty line (or the parse error
            and an empty line) once the script's empty line has arrived
``r``       run the loaded script (output as after ``e``); ``r!000C`` if none is loaded
``Fmscr``   store the loaded script in (simulated) flash: ``F``; ``F!000C`` if none
``Lmscr``   load the script stored in flash: ``L``; ``L!000C`` if flash is empty
``G<hh>``   read register ``hh`` (hex): ``G`` + 8 hex digits; registers never written with
            ``S`` answer ``G!0007`` (no device register is simulated)
``S<hh><v>``  write register ``hh``: ``S``
``h``       halt the running script (its clock stops; the cell keeps its setting): ``h``
``H``       resume a halted script: ``H``
``Z``       abort the running script: ``Z``, ``-``/``*``/``+`` closing the open scans,
            measurement loops and loops, the ``on_finished:`` block, then the empty line.
            With nothing running: ``Z!0006``.
==========  =================================================================================

Anything else answers ``<first char>!0003``. While a script runs, commands other than ``Z``,
``h`` and ``H`` answer ``<first char>!0006``; ``h``/``H`` with nothing to halt or resume
answer ``h!0006``/``H!0006``.

Execution is lazy and deterministic: :meth:`SimulatedEmStat4.take_output` runs the script
forward to ``clock.now()`` (each measurement-loop iteration advances the cell by the loop's
interval under the present setting and then samples it), so a 200 h rest with a 60 s
interval is 12,000 cheap iterations. Output nobody takes is buffered without limit, which is
what a host that crashed or disconnected finds when it comes back.

Currents are measured in the range autoranging picks between the ``set_autoranging``
bounds (or the ``set_range`` range when the bounds are one range) and are clipped at that
range's full scale with the overload status bit (``,12``) set. Impedance (EIS, GEIS, ACV) is
the cell's Randles circuit: its ohmic resistance in series with its RC element (the cell
model's ``r_ohm`` and ``r_rc``, time constant ``tau_fast``), at the cell's temperature.

A served EmStat4 has one owner, as a serial port has: :attr:`one_connection` tells the TCP
server to refuse a second connection with :attr:`refusal`. When the owner's connection closes,
what it had not finished sending (half a line, a script still loading) is dropped: the next
owner starts clean.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple, Protocol

from simulators.emstat4.frontend import _FrontEnd
from simulators.emstat4.methodscript import (
    CURRENT_RANGES,
    Interpreter,
    ScriptError,
    parse,
)

FIRMWARE = {"HR": "es4_hr1300#Jan  6 2026 10:00:00", "LR": "es4_lr1300#Jan  6 2026 10:00:00"}
#: Longest line taken (longer ones answer ``!0008``, "command exceeds maximum length").
MAX_LINE_BYTES = 1024
#: Largest script taken (larger ones answer ``!4005``, "too large for the script memory").
MAX_SCRIPT_BYTES = 256 * 1024
#: What ``v`` answers after the ``v`` (the MethodSCRIPT version the simulator follows).
MSCRIPT_VERSION = "1.8"


class ClockLike(Protocol):
    def now(self) -> float: ...


class CommandRow(NamedTuple):
    """One row of the docs table of ``docs/simulators.md``."""

    pattern: str
    doc: str


class SimulatedEmStat4(_FrontEnd):
    """Byte endpoint (``receive``/``take_output``) of an EmStat4 wired to a cell model."""

    #: One owner per port (read by the TCP server).
    one_connection = True
    #: What a second connection gets before it is closed.
    refusal = b"!0006: the port is in use by another connection\n"

    def __init__(self, cell: Any, clock: ClockLike, serial: str = "ES4HR25SIM001", model: str = "HR") -> None:
        if model not in CURRENT_RANGES:
            raise ValueError(f"model must be 'HR' or 'LR', got {model!r}")
        super().__init__(cell, model, clock.now())
        self.clock = clock
        self.serial = serial
        self._owner: _Connection | None = None
        self._inbuf = bytearray()
        self._overlong = False
        self._discarding = False
        self._loaded_bytes = 0
        self._out: list[str] = []
        self._loading: list[str] | None = None
        self._load_only = False
        self._loaded: list[str] | None = None
        self._flash: list[str] | None = None
        self._registers: dict[int, int] = {}
        self._interp: Interpreter | None = None
        self._gen: Iterator[float] | None = None
        self._wake = 0.0
        self._offset = 0.0  # instrument time = script time + offset (grows while halted)
        self._halted_at: float | None = None
        self.scripts_run = 0

    @classmethod
    def command_table(cls) -> list[CommandRow]:
        """Every online and script command the simulator takes (for ``docs/simulators.md``)."""
        from simulators.emstat4.methodscript import DEVICE_SPECIFIC, command_table

        rows = [CommandRow(name, f"online command: {doc}") for name, doc in ONLINE_COMMANDS.items()]
        for name, args, doc in command_table():
            if args[:1].isdigit():  # an argument count
                rows.append(CommandRow(name, f"{doc} ({args} argument{'' if args == '1' else 's'})"))
            else:
                rows.append(CommandRow(f"{name} {args}".strip(), doc))
        rows.append(CommandRow(" ".join(DEVICE_SPECIFIC), "need hardware the simulated unit lacks (GPIO, "
                               "files, I2C, display, multiplexer, RTC, bipotentiostat, auxiliary DAC, "
                               "other boards' channels): a script using one is refused at load time "
                               "with `!001B: Line L, Col C`, nothing runs"))  # fmt: skip
        return rows

    # ------------------------------------------------------------------ byte endpoint
    def receive(self, data: bytes) -> None:
        """Take bytes written by the host; complete lines are handled at ``clock.now()``.

        A line longer than :data:`MAX_LINE_BYTES` is dropped as it arrives (memory stays
        bounded) and answered ``!0008`` when its newline comes; a script loading at the time
        is abandoned.
        """
        self._inbuf += data
        while True:
            index = self._inbuf.find(b"\n")
            if index < 0:
                if len(self._inbuf) > MAX_LINE_BYTES:
                    self._overlong = True
                    self._inbuf.clear()
                return
            if self._overlong or index > MAX_LINE_BYTES:
                self._overlong = False
                del self._inbuf[: index + 1]
                self._too_long()
                continue
            raw = bytes(self._inbuf[:index]).decode("ascii", errors="replace").rstrip("\r")
            del self._inbuf[: index + 1]
            self._line(raw)

    def _too_long(self) -> None:
        if self._loading is not None:
            self._loading = None  # the script is abandoned; its other lines are dropped
            self._out += ["!0008", ""]
            self._discarding = True
        else:
            self._out.append("!0008")

    def take_output(self) -> bytes:
        """Run the script up to ``clock.now()`` and return every line produced since.

        While a connection owns the port (:meth:`connect`), its session takes the output and
        this returns nothing: nobody else reads the owner's data.
        """
        if self._owner is not None:
            return b""
        return self._take_output()

    def connect(self) -> _Connection:
        """The port's owner session (for a server that gives each connection a session).

        Raises OSError while another connection owns the port: a serial port has one owner.
        Output produced while nobody owns the port is kept for the next owner.
        """
        if self._owner is not None:
            raise OSError("the port is in use by another connection")
        self._owner = _Connection(self)
        return self._owner

    def _drop_unfinished_input(self) -> None:
        self._inbuf.clear()
        self._overlong = False
        self._loading = None
        self._discarding = False

    def _release(self, session: _Connection) -> None:
        if self._owner is session:
            self._owner = None

    def _take_output(self) -> bytes:
        self._catch_up(self.clock.now())
        if not self._out:
            return b""
        text = "".join(line + "\n" for line in self._out)
        self._out.clear()
        return text.encode("ascii", errors="replace")

    @property
    def running(self) -> bool:
        return self._gen is not None

    # ------------------------------------------------------------------ commands
    def _line(self, line: str) -> None:
        now = self.clock.now()
        if self._loading is not None:
            if line.strip():
                self._loading.append(line)
                self._loaded_bytes += len(line) + 1
                if self._loaded_bytes > MAX_SCRIPT_BYTES:
                    self._loading = None
                    self._out += ["!4005", ""]
                    self._discarding = True
            else:
                lines, self._loading = self._loading, None
                if self._load_only:
                    self._load(lines)
                else:
                    self._start(lines, now)
            return
        if self._discarding:  # the rest of a script too large for the script memory
            self._discarding = bool(line.strip())
            return
        if not line.strip():
            return
        self._catch_up(now)
        head = line.strip()
        if head == "Z":
            self._abort(now)
        elif head in ("h", "H"):
            self._halt(head, now)
        elif self._gen is not None:
            self._out.append(head[0] + "!0006")
        elif head in ("e", "l"):
            self._out.append(head)
            self._loading = []
            self._loaded_bytes = 0
            self._load_only = head == "l"
        elif head in ("r", "Fmscr", "Lmscr"):
            self._stored_script(head, now)
        elif head == "t":
            self._out += ["t" + FIRMWARE[self.model], "R*"]
        elif head == "v":
            self._out.append("v" + MSCRIPT_VERSION)
        elif head == "i":
            self._out.append("i" + self.serial)
        elif head[0] == "G":
            self._get_register(head)
        elif head[0] == "S":
            self._set_register(head)
        else:
            self._out.append(head[0] + "!0003")


    def _stored_script(self, head: str, now: float) -> None:
        """``r`` runs the loaded script, ``Fmscr`` stores it in flash, ``Lmscr`` loads the one in
        flash; each answers its letter, or with ``!000C`` when there is no script to use."""
        script = self._flash if head == "Lmscr" else self._loaded
        if script is None:
            self._out.append(head[0] + "!000C")
            return
        if head == "Fmscr":
            self._flash = list(script)
        elif head == "Lmscr":
            self._loaded = list(script)
        self._out.append(head[0])
        if head == "r":
            self._start(list(script), now)
    def _get_register(self, head: str) -> None:
        try:
            register = int(head[1:3], 16)
        except ValueError:
            self._out.append("G!0007")
            return
        if len(head) != 3 or register not in self._registers:
            self._out.append("G!0007")
        else:
            self._out.append(f"G{self._registers[register]:08X}")

    def _set_register(self, head: str) -> None:
        try:
            register, value = int(head[1:3], 16), int(head[3:], 16)
        except ValueError:
            self._out.append("S!0007")
            return
        if len(head) < 4 or not 0 <= value <= 0xFFFFFFFF:
            self._out.append("S!0007")
        else:
            self._registers[register] = value
            self._out.append("S")

    def _load(self, lines: list[str]) -> None:
        try:
            parse(lines)
        except ScriptError as exc:
            self._out += [exc.reply(), ""]
            return
        self._loaded = lines
        self._out.append("")

    def _start(self, lines: list[str], now: float) -> None:
        try:
            program = parse(lines)
        except ScriptError as exc:
            self._out += [exc.reply(), ""]
            return
        self._advance(now)
        self.scripts_run += 1
        self._offset = 0.0
        self._halted_at = None
        self._interp = Interpreter(program, self, self._out.append, now)
        self._gen = self._interp.run()
        self._wake = now
        self._catch_up(now)

    def _halt(self, head: str, now: float) -> None:
        if self._gen is None or (head == "h") == (self._halted_at is not None):
            self._out.append(head + "!0006")
            return
        if head == "h":
            self._halted_at = now
        else:
            assert self._halted_at is not None
            self._advance(now)
            self._offset += now - self._halted_at
            self._halted_at = None
        self._out.append(head)

    def _abort(self, now: float) -> None:
        if self._gen is None or self._interp is None:
            self._out.append("Z!0006")
            return
        interp = self._interp
        self._out.append("Z")
        self._gen.close()  # type: ignore[attr-defined]
        self._gen = None
        interp.close_scopes()
        self._advance(now)
        interp.t = now - self._offset
        self._halted_at = None
        self._finish(interp)

    def _finish(self, interp: Interpreter) -> None:
        try:
            interp.run_on_finished()
        except ScriptError as exc:
            self._out.append(exc.reply())
        self._out.append("")
        self._interp = None

    def _catch_up(self, now: float) -> None:
        stalled = 0  # checkpoints without time moving: a tight loop gets a slice per call
        while self._gen is not None and self._halted_at is None and self._wake + self._offset <= now + 1e-9:
            try:
                previous, self._wake = self._wake, next(self._gen)
                stalled = stalled + 1 if self._wake <= previous else 0
                if stalled > 16:
                    break
            except StopIteration:
                self._gen = None
                assert self._interp is not None
                self._finish(self._interp)
            except ScriptError as exc:  # runtime error: on_finished is NOT executed
                self._gen = None
                assert self._interp is not None
                self._interp.close_scopes()
                self._interp = None
                self._out += [exc.reply(), ""]
        if self._gen is None or self._halted_at is not None:
            self._advance(now)

    # ------------------------------------------------------------------ front end (used by Interpreter)
    # (the analog part: simulators/emstat4/frontend.py)
    def advance(self, to_s: float) -> None:
        """Simulate the cell up to script time ``to_s``."""
        self._advance(to_s + self._offset)

    def _sync(self) -> None:
        if self._interp is not None:
            self.advance(self._interp.t)


class _Connection:
    """The session of the connection that owns a served EmStat4's port."""

    def __init__(self, instrument: SimulatedEmStat4) -> None:
        self.instrument = instrument
        self.closed = False

    def receive(self, data: bytes) -> None:
        if not self.closed:
            self.instrument.receive(data)

    def take_output(self) -> bytes:
        return b"" if self.closed else self.instrument._take_output()

    def close(self) -> None:
        """The owner left: whatever it had not finished sending (half a line, a script whose
        closing empty line never came) is dropped, so the next owner starts clean; a script
        already running goes on, its output buffered for the next owner (a host that died
        mid-script finds it on return)."""
        if self.closed:
            return
        self.closed = True
        self.instrument._drop_unfinished_input()
        self.instrument._release(self)


#: Online commands (outside scripts) and their replies, for the docs table.
ONLINE_COMMANDS: dict[str, str] = {
    "t": "firmware version: `t<version>` then `R*`",
    "v": f"MethodSCRIPT version: `v{MSCRIPT_VERSION}`",
    "i": "serial number: `i<serial>`",
    "e": "load and run a script (lines until an empty line): `e`, its output, an empty line",
    "l": "load a script without running it: `l`, then an empty line (or the error and an empty line)",
    "r": "run the loaded script: `r`, its output, an empty line; `r!000C` if none is loaded",
    "Fmscr": "store the loaded script in flash: `F`; `F!000C` if none is loaded",
    "Lmscr": "load the script stored in flash: `L`; `L!000C` if flash is empty",
    "G<hh>": "read register hh: `G` + 8 hex digits; `G!0007` for a register never written",
    "S<hh><value>": "write register hh (hex value): `S`",
    "h": "halt the running script (its clock stops): `h`; `h!0006` if none runs",
    "H": "resume a halted script: `H`; `H!0006` if none is halted",
    "Z": "abort: `Z`, `-`/`*`/`+` closing the open scopes, on_finished: output, an empty line; "
    "`Z!0006` if none runs",
}
