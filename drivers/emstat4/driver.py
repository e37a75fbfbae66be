"""PalmSens EmStat4 (HR/LR) potentiostat driver: MethodSCRIPT over a serial line.

Command table (one ``\\n``-terminated line each; the instrument echoes the first character):

==========  ==========================================================================
``t``       firmware version, several lines, the last one ending in ``*``
``v``       MethodSCRIPT version
``i``       serial number
``e``       load and run a script: ``e``, the script lines, an empty line
``Z``       abort the running script (reply ``Z``; ``Z!0006`` when nothing runs)
==========  ==========================================================================

Every step runs as ONE script on the instrument (see :func:`drivers.emstat4.methodscript.compile_step`):
the cut-offs are evaluated there at the instrument's sampling interval, the instrument
integrates the step's capacity itself, and ``on_finished:`` switches the cell off whether the
script ends, hits a cut-off or is aborted. The host only reads the stream:

* each data package carries the instrument's elapsed time (``eb``), the potential, the current,
  the capacity (``ja``, mAh/g), the substep (``jb``) and a package sequence number (``jc``);
  points are stamped ``started_at_s + eb`` (instrument time, not arrival time);
* ``send_string`` markers name the script (``Trelaxlab:<name>:<step>:<crc>``, first line of the
  run) and the cut-off that ended it (``Tcut:voltage`` ... before ``breakloop``);
* an empty line means the script has finished.

If the host goes away the script keeps running and the instrument buffers its output;
:meth:`EmStat4Driver.reattach` picks the stream up again and uses the sequence numbers to
skip points already stored and to count any that were lost.
"""

from __future__ import annotations

import math

from drivers.base import Point, StepProgress
from drivers.clock import Clock
from drivers.emstat4.config import EmStat4Config
from drivers.emstat4.methodscript import (
    CUT_PREFIX,
    IDENT_PREFIX,
    CompiledStep,
    Limits,
    compile_step,
    parse_error,
    parse_package,
)
from drivers.registry import open_transport
from drivers.techniques import GITT, ConstantCurrent, ConstantVoltage, Loop, Rest, Sweep
from drivers.transport import ByteEndpoint, InstrumentError, Transport

Step = ConstantCurrent | ConstantVoltage | Rest | Sweep | GITT | Loop

_FIELDS = {"eb": "t", "ab": "e", "da": "e", "ba": "i", "ja": "q", "jb": "s", "jc": "n"}


class EmStat4StepRun:
    """One script running on the EmStat4, read incrementally by :meth:`poll`."""

    def __init__(
        self,
        driver: EmStat4Driver,
        compiled: CompiledStep,
        started_at_s: float,
        points_already_seen: int = 0,
        count_scans: bool = False,
    ) -> None:
        self.driver = driver
        self.compiled = compiled
        self.started_at_s = started_at_s
        self.end_reason: str | None = None
        #: Packages the instrument numbered but this host never received (host loss).
        self.missing_points = 0
        #: Sequence number of the last package accepted.
        self.points_seen = points_already_seen
        #: Every ``cut:`` marker seen (a Loop's substeps report theirs here).
        self.cut_markers: list[str] = []
        self.texts: list[str] = []
        self.identified = False
        self._cut: str | None = None
        self._aborted = False
        self._done = False
        self._scan = 0
        self._scans_started = 0
        self._count_scans = count_scans
        self._held: list[Point] = []

    def next_poll_delay_s(self) -> float:
        """The script streams its packages; the driver's poll interval is all the host needs."""
        return self.driver.poll_interval_s

    @property
    def done(self) -> bool:
        return self._done

    def poll(self) -> tuple[list[Point], bool]:
        """New points since the last poll, and whether the script has finished."""
        points, self._held = self._held, []
        if self._done:
            return points, True
        lines = self.driver._read_lines()
        for index, line in enumerate(lines):
            point = self._handle(line)
            if point is not None:
                points.append(point)
            if self._done:
                self.driver._unread(lines[index + 1 :])
                break
        return points, self._done

    def abort(self) -> None:
        """Send ``Z``: the instrument stops the loop and runs ``on_finished:`` (cell off)."""
        if self._done:
            return
        self._aborted = True
        self.driver.transport.write(b"Z\n")
        points, _ = self.poll()
        self._held = points + self._held
        if self._done:
            self.end_reason = "aborted"

    # -- line handling
    def _handle(self, line: str) -> Point | None:
        if line == "":
            self._done = True
            if self._aborted and self._cut is None:
                self.end_reason = "aborted"
            else:
                self.end_reason = self._cut or self.compiled.default_end_reason
            return None
        head = line[0]
        if head == "P":
            return self._package(line)
        if head == "T":
            self._text(line[1:])
            return None
        error = parse_error(line) if head not in "MCLP*+-" else None
        if error is not None and error.busy and error.echo:
            return None  # a housekeeping command's "busy" reply, not this script's error
        if error is not None or head == "!":
            self._done = True
            self.end_reason = "error"
            self.driver._after_runtime_error()
            what = error.describe() if error else f"garbled error line {line!r}"
            raise InstrumentError(self.driver.name, f"script stopped: {what}")
        if line == "Z":
            self._aborted = True
        elif line[:1] == "C" and len(line) == 5 and self._count_scans:
            self._scans_started += 1  # C<4 hex> starts each scan of a multi-scan sweep
            self._scan = self._scans_started - 1
        return None  # M<id>, *, L, +, -, e, stray replies

    def _text(self, text: str) -> None:
        if text.startswith(IDENT_PREFIX):
            if text != self.compiled.ident:
                self._done = True
                self.end_reason = "error"
                raise InstrumentError(
                    self.driver.name,
                    f"the instrument is running another script ({text!r}, expected {self.compiled.ident!r})",
                )
            self.identified = True
        elif text.startswith(CUT_PREFIX):
            reason = text[len(CUT_PREFIX) :]
            self.cut_markers.append(reason)
            if self.compiled.cuts_end_step:
                self._cut = reason
        else:
            self.texts.append(text)

    def _package(self, line: str) -> Point | None:
        try:
            variables = parse_package(line)
        except ValueError as exc:
            raise InstrumentError(self.driver.name, f"garbled data package: {exc}") from exc
        values: dict[str, float] = {}
        for var in variables:
            key = _FIELDS.get(var.type)
            if key is not None:
                values[key] = var.value
        if set(values) != set(_FIELDS.values()):
            raise InstrumentError(self.driver.name, f"data package {line!r} is not from a relaxlab script")
        seq = int(values["n"])
        if seq <= self.points_seen:
            return None  # already delivered before a reattach
        if seq > self.points_seen + 1:
            self.missing_points += seq - self.points_seen - 1
        self.points_seen = seq
        return Point(
            time_s=self.started_at_s + values["t"],
            voltage_V=values["e"],
            current_A=values["i"],
            capacity_mAh_g=values["q"],
            temperature_C=math.nan,
            substep=int(values["s"]) + self._scan,
        )


class EmStat4Driver:
    """EmStat4 over any :class:`drivers.transport.Transport` (921600 baud on real hardware).

    Parameters
    ----------
    transport
        Byte pipe to the instrument (``SerialTransport("COM5", baudrate=921600)``,
        ``SerialTransport("socket://127.0.0.1:PORT")`` or ``InProcessTransport(sim)``).
    clock
        Shared clock; the host stamps a script's start with it.
    name
        Used in error messages and in the script identifier.
    poll_interval_s
        How often the channel device should poll a running step (seconds of clock time).
    model
        ``"HR"`` (100 nA-100 mA, +-6 V) or ``"LR"`` (1 nA-10 mA, +-3 V).
    sample_interval_s
        The instrument's sampling interval for constant-current / constant-voltage cut-offs
        (packages are still sent once per ``record_interval_s``).
    """

    def __init__(
        self,
        transport: Transport,
        clock: Clock,
        name: str = "emstat4",
        poll_interval_s: float = 10.0,
        model: str = "HR",
        sample_interval_s: float = 1.0,
    ) -> None:
        if not poll_interval_s > 0:
            raise ValueError(f"poll_interval_s must be > 0, got {poll_interval_s!r}")
        if not sample_interval_s > 0:
            raise ValueError(f"sample_interval_s must be > 0, got {sample_interval_s!r}")
        self.limits = Limits.for_model(model)
        self.transport = transport
        self.clock = clock
        self.name = name
        self.poll_interval_s = poll_interval_s
        self.model = model
        self.sample_interval_s = sample_interval_s
        self._pending = bytearray()
        self._queued: list[str] = []
        self.voltage_min_V: float | None = None
        self.voltage_max_V: float | None = None

    # -- line reading
    def _read_lines(self) -> list[str]:
        # pyserial's socket:// reports in_waiting as 0/1, so read until nothing is left
        while chunk := self.transport.read_available():
            self._pending += chunk
        lines, self._queued = self._queued, []
        while True:
            index = self._pending.find(b"\n")
            if index < 0:
                return lines
            raw = bytes(self._pending[:index])
            del self._pending[: index + 1]
            try:
                lines.append(raw.decode("ascii").rstrip("\r"))
            except UnicodeDecodeError as exc:
                raise InstrumentError(self.name, f"garbled reply {raw!r}") from exc

    def _unread(self, lines: list[str]) -> None:
        self._queued = lines + self._queued

    def _next_line(self, command: str) -> str:
        """One line, waiting as the transport allows (raises InstrumentTimeout)."""
        if self._queued:
            return self._queued.pop(0)
        index = self._pending.find(b"\n")
        if index >= 0:
            raw = bytes(self._pending[:index])
            del self._pending[: index + 1]
            return raw.decode("ascii", errors="replace").rstrip("\r")
        if self._pending:
            self._pending += self.transport.read_until(b"\n", command)
            return self._next_line(command)
        return self.transport.read_line(command=command)

    def _discard_stale(self) -> None:
        self._read_lines()

    # -- housekeeping
    def connect(self, reset: bool = True) -> str:
        """Identify the instrument (the contract's connect step).

        ``reset=True`` asks for the firmware version (reachable, and speaking MethodSCRIPT);
        ``reset=False`` asks only whether a script runs, keeping a running script's output for
        the step that re-attaches to it. Returns the identity (firmware version, or the model).
        """
        if reset:
            return self.firmware_version()
        running = self.script_running()
        return f"EmStat4 {self.model}" + (" (script running)" if running else "")

    def set_cell_limits(self, voltage_min_V: float, voltage_max_V: float) -> None:
        """The cell's safety limits: every script checks its potentials against the model's
        range (:class:`drivers.emstat4.methodscript.Limits`); the channel device watches these."""
        if not voltage_min_V < voltage_max_V:
            raise ValueError(f"{self.name}: voltage_min_V must be below voltage_max_V")
        self.voltage_min_V, self.voltage_max_V = voltage_min_V, voltage_max_V

    def _reply(self, command: str) -> str:
        """Send the one-letter ``command``; its reply line without the echoed letter.

        Raises
        ------
        InstrumentError
            When the instrument answers with an error code.
        """
        self._discard_stale()
        self.transport.write(command.encode() + b"\n")
        while True:
            line = self._next_line(command)
            if line.startswith(command):
                break
        error = parse_error(line)
        if error is not None:
            raise InstrumentError(self.name, error.describe(), command)
        return line[1:]

    def firmware_version(self) -> str:
        """``t``: the version lines joined by ``' '`` (the last one ends in ``*``)."""
        parts = [self._reply("t")]
        while not parts[-1].endswith("*"):
            parts.append(self._next_line("t"))
        return " ".join(parts)

    def serial_number(self) -> str:
        """``i``: the instrument's serial number."""
        return self._reply("i")

    def methodscript_version(self) -> str:
        """``v``: the MethodSCRIPT version the firmware implements."""
        return self._reply("v")

    def abort_script(self) -> bool:
        """``Z``; True if a script was running (its remaining output is discarded)."""
        self._discard_stale()
        self.transport.write(b"Z\n")
        while True:
            line = self._next_line("Z")
            if line.startswith("Z"):
                break
        if line != "Z":
            error = parse_error(line)
            if error is not None and error.code == 0x0006:
                return False
            raise InstrumentError(self.name, f"unexpected abort reply {line!r}", "Z")
        while self._next_line("Z") != "":
            pass
        return True

    def safe_state(self) -> None:
        """Abort whatever runs (its ``on_finished:`` switches the cell off). Idempotent."""
        self.transport.write(b"Z\n")

    def _after_runtime_error(self) -> None:
        # A runtime error skips on_finished:, so the cell may still be on.
        self.transport.write(b"e\ncell_off\n\n")

    def measure_voltage_V(self) -> float:
        """Open-circuit potential from a 100 ms OCP script.

        The reading exists only once 100 ms of clock time have passed; on an
        :class:`~drivers.transport.InProcessTransport` with a stopped SimClock this raises
        :class:`~drivers.transport.InstrumentTimeout`.
        """
        self._discard_stale()
        script = ["var e", "set_pgstat_chan 0", "set_pgstat_mode 3", "cell_off",
                  "meas_loop_ocp e 100m 100m", "  pck_start", "  pck_add e", "  pck_end",
                  "endloop", "on_finished:", "  cell_off"]  # fmt: skip
        self.transport.write(("e\n" + "".join(s + "\n" for s in script) + "\n").encode())
        voltage = math.nan
        while True:
            line = self._next_line("e")
            error = parse_error(line)
            if error is not None and error.busy:
                raise InstrumentError(self.name, "a script is already running", "e")
            if error is not None:
                raise InstrumentError(self.name, error.describe(), "e")
            if line.startswith("P"):
                voltage = parse_package(line)[0].value
            elif line == "" and not math.isnan(voltage):
                return voltage

    def close(self) -> None:
        self.transport.close()

    # -- steps
    def compile(self, step: Step, active_mass_g: float, step_index: int) -> CompiledStep:
        """The script :meth:`start_step` would send (ValueError if the EmStat4 cannot)."""
        return compile_step(
            step,
            active_mass_g,
            step_index,
            model=self.model,
            sample_interval_s=self.sample_interval_s,
            name=self.name,
        )

    def start_step(self, step: Step, active_mass_g: float, step_index: int) -> EmStat4StepRun:
        """Upload and start the step's script; returns once the instrument has started it."""
        compiled = self.compile(step, active_mass_g, step_index)
        self._discard_stale()
        started = self.clock.now()
        self.transport.write(compiled.text().encode("ascii"))
        while True:
            line = self._next_line("e")
            error = parse_error(line)
            if error is not None and error.busy:  # mapped by code, whatever echo precedes it
                raise InstrumentError(self.name, "a script is already running", "e")
            if error is not None:
                raise InstrumentError(self.name, f"script rejected: {error.describe()}", "e")
            if line == "T" + compiled.ident:
                break
        run = EmStat4StepRun(self, compiled, started, count_scans=isinstance(step, Sweep))
        run.identified = True
        return run

    def reattach(self, step: Step, active_mass_g: float, progress: StepProgress) -> EmStat4StepRun:
        """Pick up a script that kept running while the host was away.

        The returned run reads the output the instrument buffered meanwhile. Packages whose
        sequence number is ``<= progress.points_seen`` are skipped; a gap (packages the old
        host received but never stored) is counted in ``missing_points``. InstrumentError if
        the instrument runs no script and has no buffered output of one, or (on the first
        poll) an identifier line shows it runs another script.
        """
        compiled = self.compile(step, active_mass_g, progress.step_index)
        if not self.script_running() and not any(line == "" for line in self._queued):
            raise InstrumentError(
                self.name,
                f"no script is running and none left output: step {progress.step_index} "
                "is no longer on the instrument",
            )
        return EmStat4StepRun(
            self,
            compiled,
            progress.started_at_s,
            points_already_seen=progress.points_seen,
            count_scans=isinstance(step, Sweep),
        )

    def script_running(self) -> bool:
        """Whether a script is running, keeping its buffered output for the next poll.

        Sends ``i``: a running script answers ``i!0006`` (a script is running), an idle
        instrument its serial number.
        """
        kept = self._read_lines()
        self.transport.write(b"i\n")
        while True:
            line = self._next_line("i")
            if line.startswith("i"):
                break
            kept.append(line)
        kept += self._read_lines()
        self._queued = kept + self._queued
        error = parse_error(line)
        if error is None:
            return False
        if error.code == 0x0006:
            return True
        raise InstrumentError(self.name, error.describe(), "i")


def open_driver(
    name: str, config: EmStat4Config, clock: Clock, endpoint: ByteEndpoint | None
) -> EmStat4Driver:
    """The driver of a lab file's EmStat4 (not yet connected): ``endpoint`` is the in-process
    simulator (``resource = "sim"``), else None (open ``config.resource``)."""
    return EmStat4Driver(
        open_transport(name, config, endpoint),
        clock,
        name=name,
        poll_interval_s=config.poll_interval,
        model=config.model,
        sample_interval_s=config.sample_interval,
    )
