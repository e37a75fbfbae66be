"""Simulated PalmSens EmStat4 (HR or LR) speaking MethodSCRIPT over a byte endpoint.

Online commands (one ``\\n``-terminated line each):

======  ======================================================================
``t``   firmware version, two lines, the last ending in ``*``
``i``   serial number (``i<serial>``)
``e``   load and run a script: ``e`` is echoed, the script's lines follow, an empty
        line ends it. Parse errors answer ``!XXXX: Line L, Col C`` and an empty line.
``Z``   abort the running script: ``Z``, ``*`` if a measurement loop was running,
        the ``on_finished:`` block, then the empty line. With nothing running:
        ``Z!0006``.
======  ======================================================================

Anything else answers ``<first char>!0003``. While a script runs, commands other than ``Z``
answer ``<first char>!0006``.

Execution is lazy and deterministic: :meth:`SimulatedEmStat4.take_output` runs the script
forward to ``clock.now()`` (each measurement-loop iteration advances the cell by the loop's
interval under the present setting and then samples it), so a 200 h rest with a 60 s
interval is 12,000 cheap iterations. Output nobody takes is buffered without limit, which is
what a host that crashed or disconnected finds when it comes back.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from simulators.methodscript import (
    CURRENT_RANGES,
    GALVANOSTAT_MODE,
    MAX_POTENTIAL_V,
    POTENTIOSTAT_MODES,
    Interpreter,
    ScriptError,
    parse,
)

FIRMWARE = {"HR": "es4_hr1300#Jan  6 2026 10:00:00", "LR": "es4_lr1300#Jan  6 2026 10:00:00"}


class ClockLike(Protocol):
    def now(self) -> float: ...


class SimulatedEmStat4:
    """Byte endpoint (``receive``/``take_output``) of an EmStat4 wired to a cell model."""

    def __init__(self, cell: Any, clock: ClockLike, serial: str = "ES4HR25SIM001", model: str = "HR") -> None:
        if model not in CURRENT_RANGES:
            raise ValueError(f"model must be 'HR' or 'LR', got {model!r}")
        self.cell = cell
        self.clock = clock
        self.serial = serial
        self.model = model
        self.max_current_A = CURRENT_RANGES[model][-1][0]
        self.max_potential_V = MAX_POTENTIAL_V[model]
        self._inbuf = bytearray()
        self._out: list[str] = []
        self._loading: list[str] | None = None
        self._interp: Interpreter | None = None
        self._gen: Iterator[float] | None = None
        self._wake = 0.0
        self._t_cell = clock.now()
        self.mode = 0
        self.cell_is_on = False
        self.set_current_A = 0.0
        self.applied_voltage_V = 0.0
        self.current_range_A = self.max_current_A
        self._applied: tuple[str, float] = ("rest", 0.0)
        self.scripts_run = 0

    # ------------------------------------------------------------------ byte endpoint
    def receive(self, data: bytes) -> None:
        """Take bytes written by the host; complete lines are handled at ``clock.now()``."""
        self._inbuf += data
        while True:
            index = self._inbuf.find(b"\n")
            if index < 0:
                return
            raw = bytes(self._inbuf[:index]).decode("ascii", errors="replace").rstrip("\r")
            del self._inbuf[: index + 1]
            self._line(raw)

    def take_output(self) -> bytes:
        """Run the script up to ``clock.now()`` and return every line produced since."""
        self._catch_up(self.clock.now())
        if not self._out:
            return b""
        text = "".join(line + "\n" for line in self._out)
        self._out.clear()
        return text.encode("ascii")

    @property
    def running(self) -> bool:
        return self._gen is not None

    # ------------------------------------------------------------------ commands
    def _line(self, line: str) -> None:
        now = self.clock.now()
        if self._loading is not None:
            if line.strip():
                self._loading.append(line)
            else:
                lines, self._loading = self._loading, None
                self._start(lines, now)
            return
        if not line.strip():
            return
        self._catch_up(now)
        head = line.strip()
        if head == "Z":
            self._abort(now)
        elif self._gen is not None:
            self._out.append(head[0] + "!0006")
        elif head == "e":
            self._out.append("e")
            self._loading = []
        elif head == "t":
            self._out += ["t" + FIRMWARE[self.model], "R*"]
        elif head == "i":
            self._out.append("i" + self.serial)
        else:
            self._out.append(head[0] + "!0003")

    def _start(self, lines: list[str], now: float) -> None:
        try:
            program = parse(lines)
        except ScriptError as exc:
            self._out += [exc.reply(), ""]
            return
        self._advance(now)
        self.scripts_run += 1
        self._interp = Interpreter(program, self, self._out.append, now)
        self._gen = self._interp.run()
        self._wake = now
        self._catch_up(now)

    def _abort(self, now: float) -> None:
        if self._gen is None or self._interp is None:
            self._out.append("Z!0006")
            return
        interp = self._interp
        self._out.append("Z")
        in_meas = interp.in_meas
        self._gen.close()  # type: ignore[attr-defined]
        self._gen = None
        if in_meas:
            self._out.append("*")
        self._advance(now)
        interp.t = now
        self._finish(interp)

    def _finish(self, interp: Interpreter) -> None:
        try:
            interp.run_on_finished()
        except ScriptError as exc:
            self._out.append(exc.reply())
        self._out.append("")
        self._interp = None

    def _catch_up(self, now: float) -> None:
        while self._gen is not None and self._wake <= now + 1e-9:
            try:
                self._wake = next(self._gen)
            except StopIteration:
                self._gen = None
                assert self._interp is not None
                self._finish(self._interp)
            except ScriptError as exc:  # runtime error: on_finished is NOT executed
                self._gen = None
                self._interp = None
                self._out += [exc.reply(), ""]
        if self._gen is None:
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
        self._advance(to_s)

    def _sync(self) -> None:
        if self._interp is not None:
            self._advance(self._interp.t)

    def measure(self) -> tuple[float, float]:
        kind, level = self._applied if self.cell_is_on else ("rest", 0.0)
        if kind != "cv":  # a new current setting shows at once (the ohmic step)
            self.cell.set_current_A(level if kind == "cc" else 0.0)
        current = self.cell.current_A if self.cell_is_on else 0.0
        return self.cell.measured_voltage_V(), current

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

    def current_metadata(self, current_A: float) -> tuple[int, int]:
        """(status nibble, range index) for a measured current."""
        for rng, index in CURRENT_RANGES[self.model]:
            if abs(current_A) <= rng:
                status = 2 if abs(current_A) > self.current_range_A * 1.05 else 0
                return status, index
        return 2, CURRENT_RANGES[self.model][-1][1]

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
        elif name == "set_max_bandwidth":
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
            self.cell_is_on = True
        elif name == "cell_off":
            self.cell_is_on = False

    def _range(self, name: str, args: list[Any], line: int) -> None:
        vtype, values = args[0], [float(v) for v in args[1:]]
        if vtype in ("ba", "db"):
            if any(v <= 0 for v in values):
                raise ScriptError(0x4204, line)
            if any(v > self.max_current_A * 1.0001 for v in values):
                raise ScriptError(0x4205, line)
            if name == "set_range":
                self.current_range_A = values[0]
        elif vtype in ("ab", "da"):
            if any(abs(v) > self.max_potential_V for v in values):
                raise ScriptError(0x4205, line)
        else:
            raise ScriptError(0x0007, line)
        if len(values) == 2 and values[0] > values[1]:
            raise ScriptError(0x0007, line)
