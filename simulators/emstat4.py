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

import math
from collections.abc import Iterator
from typing import Any, NamedTuple, Protocol

from simulators.methodscript import (
    CURRENT_RANGES,
    GALVANOSTAT_MODE,
    MAX_POTENTIAL_V,
    POTENTIOSTAT_MODES,
    STATUS_OVERLOAD,
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
_R_J_MOL_K = 8.314462618


class ClockLike(Protocol):
    def now(self) -> float: ...


class CommandRow(NamedTuple):
    """One row of the docs table of ``docs/simulators.md``."""

    pattern: str
    doc: str


class SimulatedEmStat4:
    """Byte endpoint (``receive``/``take_output``) of an EmStat4 wired to a cell model."""

    #: One owner per port (read by the TCP server).
    one_connection = True
    #: What a second connection gets before it is closed.
    refusal = b"!0006: the port is in use by another connection\n"

    def __init__(self, cell: Any, clock: ClockLike, serial: str = "ES4HR25SIM001", model: str = "HR") -> None:
        if model not in CURRENT_RANGES:
            raise ValueError(f"model must be 'HR' or 'LR', got {model!r}")
        self.cell = cell
        self.clock = clock
        self.serial = serial
        self.model = model
        self.ranges = CURRENT_RANGES[model]
        self.max_current_A = self.ranges[-1][0]
        self.max_potential_V = MAX_POTENTIAL_V[model]
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
        self._t_cell = clock.now()
        self.mode = 0
        self.cell_is_on = False
        self.set_current_A = 0.0
        self.applied_voltage_V = 0.0
        # current range indices (into self.ranges): start range and autorange bounds
        self._range_start = len(self.ranges) - 1
        self._auto = (0, len(self.ranges) - 1)
        self._range_now = self._range_start
        self._applied: tuple[str, float] = ("rest", 0.0)
        self.scripts_run = 0

    @classmethod
    def command_table(cls) -> list[CommandRow]:
        """Every online and script command the simulator takes (for ``docs/simulators.md``)."""
        from simulators.methodscript import DEVICE_SPECIFIC, command_table

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
        elif head == "r":
            if self._loaded is None:
                self._out.append("r!000C")
            else:
                self._out.append("r")
                self._start(list(self._loaded), now)
        elif head == "Fmscr":
            if self._loaded is None:
                self._out.append("F!000C")
            else:
                self._flash = list(self._loaded)
                self._out.append("F")
        elif head == "Lmscr":
            if self._flash is None:
                self._out.append("L!000C")
            else:
                self._loaded = list(self._flash)
                self._out.append("L")
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
    def _advance(self, to_s: float) -> None:
        dt = to_s - self._t_cell
        if dt <= 0:
            return
        kind, level = self._applied if self.cell_is_on else ("rest", 0.0)
        if kind == "cc":
            self.cell.constant_current(level, dt)
        elif kind == "cv":
            self.cell.constant_voltage(level, dt)
        else:
            self.cell.rest(dt)
        self._t_cell = to_s

    def advance(self, to_s: float) -> None:
        """Simulate the cell up to script time ``to_s``."""
        self._advance(to_s + self._offset)

    def _sync(self) -> None:
        if self._interp is not None:
            self.advance(self._interp.t)

    def measure(self) -> tuple[float, float]:
        """(potential, current) now; the potential saturates at the compliance (+-6 V HR)."""
        kind, level = self._applied if self.cell_is_on else ("rest", 0.0)
        if kind != "cv":  # a new current setting shows at once (the ohmic step)
            self.cell.set_current_A(level if kind == "cc" else 0.0)
        current = self.cell.current_A if self.cell_is_on else 0.0
        voltage = self.cell.measured_voltage_V()
        limit = self.max_potential_V
        return min(max(voltage, -limit), limit), current

    def rest(self) -> None:
        self._applied = ("rest", 0.0)

    def apply_current(self, current_A: float) -> None:
        self._applied = ("cc", current_A)

    def apply_voltage(self, voltage_V: float) -> None:
        self.applied_voltage_V = voltage_V
        self._applied = ("cv", voltage_V)

    def end_loop(self) -> None:
        """After a measurement loop the galvanostat returns to ``set_i``'s current."""
        if self.mode == GALVANOSTAT_MODE:
            self._applied = ("cc", self.set_current_A)

    def check_potential(self, voltage_V: float, line: int) -> None:
        if abs(voltage_V) > self.max_potential_V:
            raise ScriptError(0x4205, line)

    def read_current(self, current_A: float) -> tuple[float, int, int]:
        """(reported current, status nibble, range index) of a measured current.

        Autoranging picks the smallest range within the bounds that holds the current (the
        upper bound when none does); the reading is clipped at that range's full scale and
        flagged overload.
        """
        lo, hi = self._auto
        level = abs(current_A)
        chosen = hi
        for k in range(lo, hi + 1):
            if level <= self.ranges[k][0]:
                chosen = k
                break
        self._range_now = chosen
        full_scale, index = self.ranges[chosen]
        if level > full_scale:
            return math.copysign(full_scale, current_A), STATUS_OVERLOAD, index
        return current_A, 0, index

    def applied_metadata(self, current_A: float) -> tuple[int, int]:
        """(status, range index) of an applied (galvanostatic) current: the range holding it."""
        for rng, index in self.ranges:
            if abs(current_A) <= rng * (1 + 1e-9):
                return 0, index
        return STATUS_OVERLOAD, self.ranges[-1][1]

    def impedance(self, frequency_Hz: float) -> complex:
        """The cell's Randles circuit: R_ohm + R_rc / (1 + j w R_rc C), C = tau_fast / R_rc."""
        kinetics = self.cell.material.kinetics
        t_k = self.cell.temperature_C + 273.15
        f_pol = math.exp(kinetics.Ea_polarisation_kJ_mol * 1e3 / _R_J_MOL_K * (1.0 / t_k - 1.0 / 298.15))
        ohm_per_mA_g = f_pol / (self.cell.active_mass_g * 1e-3)  # V per (mA/g) -> ohm
        r_s = kinetics.r_ohm_V_per_mA_g * ohm_per_mA_g
        r_ct = kinetics.r_rc_V_per_mA_g * ohm_per_mA_g
        if r_ct == 0:
            return complex(r_s, 0.0)
        capacitance = kinetics.tau_fast_s / r_ct
        return r_s + r_ct / (1 + 2j * math.pi * frequency_Hz * r_ct * capacitance)

    def command(self, name: str, args: list[Any], line: int) -> None:
        self._sync()
        if name == "set_pgstat_chan":
            if int(args[0]) != 0:
                raise ScriptError(0x4205, line)
        elif name == "set_pgstat_mode":
            mode = int(args[0])
            if mode not in (0, *POTENTIOSTAT_MODES, GALVANOSTAT_MODE):
                raise ScriptError(0x0021, line)
            self.mode = mode
            self._applied = ("cc", self.set_current_A) if mode == GALVANOSTAT_MODE else (
                "cv", self.applied_voltage_V)  # fmt: skip
        elif name in ("set_max_bandwidth", "set_acquisition_frac_autoadjust"):
            if args[0] <= 0:
                raise ScriptError(0x4204, line)
        elif name in ("set_range", "set_autoranging", "set_range_minmax"):
            self._range(name, args, line)
        elif name == "set_e":
            self.check_potential(args[0], line)
            if self.mode == GALVANOSTAT_MODE:
                raise ScriptError(0x0023, line)
            self.apply_voltage(args[0])
        elif name == "set_i":
            if self.mode != GALVANOSTAT_MODE:
                raise ScriptError(0x0023, line)
            if abs(args[0]) > self.max_current_A:
                raise ScriptError(0x4205, line)
            self.set_current_A = args[0]
            self._applied = ("cc", args[0])
        elif name == "cell_on":
            if self.mode == 0:
                raise ScriptError(0x0023, line)
            if args and self.mode != GALVANOSTAT_MODE:  # cell_on ocp(v): switch on at E = v
                self.check_potential(args[0], line)
                self.apply_voltage(args[0])
            self.cell_is_on = True
        elif name == "cell_off":
            self.cell_is_on = False

    def _range_index(self, value: float) -> int:
        """The smallest range holding ``value`` (the largest if none does)."""
        for k, (rng, _) in enumerate(self.ranges):
            if value <= rng * (1 + 1e-9):
                return k
        return len(self.ranges) - 1

    def _range(self, name: str, args: list[Any], line: int) -> None:
        vtype, values = args[0], [float(v) for v in args[1:]]
        if vtype in ("ba", "db"):
            if any(v < 0 for v in values):
                raise ScriptError(0x4200, line)
            if name == "set_range_minmax":
                return
            indices = [self._range_index(v) for v in values]
            if name == "set_range":
                self._range_start = indices[0]
                if vtype == "ba":
                    lo, hi = self._auto
                    self._range_now = min(max(indices[0], lo), hi)
            else:
                if values[0] > values[1]:
                    raise ScriptError(0x0007, line)
                if vtype == "ba":
                    self._auto = (indices[0], indices[1])
        elif vtype not in ("ab", "da"):
            raise ScriptError(0x0007, line)


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


def docs_markdown() -> str:
    """The docs page ``docs/simulator-emstat4.md``, generated from the simulator's tables."""
    from simulators.methodscript import DEVICE_SPECIFIC, ERROR_CODES, command_table

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    out = [
        "# Simulated EmStat4: supported MethodSCRIPT",
        "",
        "Generated from `simulators/emstat4.py` and `simulators/methodscript.py` by "
        "`python -m simulators.emstat4 > docs/simulator-emstat4.md` (a test checks it is up to date).",
        "",
        "## Online commands",
        "",
        "| command | reply |",
        "|---|---|",
        *(f"| `{name}` | {cell(doc)} |" for name, doc in ONLINE_COMMANDS.items()),
        "",
        "Any other command answers `<first character>!0003`; while a script runs, commands other "
        "than `Z`, `h` and `H` answer `<first character>!0006`. A served EmStat4 takes one TCP "
        "connection at a time (a second one gets `" + SimulatedEmStat4.refusal.decode().strip() + "` "
        "and is closed); when it closes, what it had not finished sending (half a line, a script "
        "still loading) is dropped, while a running script goes on and its output waits for the "
        "next connection.",
        "",
        "## Script commands",
        "",
        "| command | arguments | what the simulator does |",
        "|---|---|---|",
        *(f"| `{name}` | {cell(args)} | {cell(doc)} |" for name, args, doc in command_table()),
        "",
        "Technique ids after `M`: LSV, CV, CA, CP, OCP and EIS as in the manual and PalmSens' "
        "output; DPV, SWV, NPV, ACV and PAD follow PalmSens' technique numbering; LSP (`0013`) "
        "and GEIS (`0015`) are the simulator's assumption. An LSV from E_begin to E_end has "
        "round(abs(E_end - E_begin) / E_step) + 1 points, both ends included (-500m to 500m in "
        "10m steps: 101); each further segment of a CV scan adds round(abs(dE) / E_step). "
        "Timing: sweeps take E_step / scan_rate per point, SWV half a period per half-step, "
        "DPV/NPV/PAD sample at the end of each pulse and (DPV, PAD) just before it, EIS/GEIS "
        "three periods (at least 0.1 s) per frequency.",
        "",
        "Operands are literals (`500m`, `10i`, `0x1F`), variables or array elements (`a[i]`). "
        "Data packages carry the variable types above; `ba` currents carry status and range "
        "metadata (`,1x,2xx`), `ab` potentials a status.",
        "",
        "## Device-specific commands (refused with `!001B`)",
        "",
        "These need hardware the simulated EmStat4 does not have; a script using one is refused "
        "at load time with `!001B: Line L, Col C` and nothing runs:",
        "",
        ", ".join(f"`{name}`" for name in DEVICE_SPECIFIC),
        "",
        "## Error codes",
        "",
        "Parse errors: `!XXXX: Line L, Col C` then an empty line; runtime errors: the open "
        "scopes closed (`-`, `*`, `+`), `!XXXX: Line L`, an empty line (on_finished: is not run).",
        "",
        "| code | meaning |",
        "|---|---|",
        *(f"| `{code:04X}` | {cell(text)} |" for code, text in ERROR_CODES.items()),
        "",
    ]
    return "\n".join(out)


if __name__ == "__main__":  # pragma: no cover
    print(docs_markdown(), end="")
