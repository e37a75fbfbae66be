"""Simulated Keithley 2450 SourceMeter: the SCPI subset relaxlab uses, on the cell model.

It parses the same bytes a real 2450 parses (``\\n``-terminated SCPI lines, short and long
forms in any case, several commands per line) and answers queries with ``\\n``-terminated
replies. Errors go to the error queue read by ``:SYST:ERR?`` (``0,"No error"`` when empty),
as on the real unit: an unknown header is ``-113``, a value outside the instrument's range is
``-222`` and leaves the setting unchanged.

Physics: the instrument is wired to a :class:`simulators.cell.Cell`. Whenever it is addressed
it first advances the cell from its last visit to ``clock.now()`` under the present source
state. With the output on in current mode the voltage limit clamps the cell (constant current
turns into constant voltage and ``VLIM:TRIP?`` reports 1). With the output off the cell rests
only if the output-off state is ``HIMP`` (relay open); the default ``NORM`` state connects a
0 V source with a small compliance current (0.5 % of the current range), which slowly
discharges a battery, just as it does on the real instrument.
"""

from __future__ import annotations

from typing import Any, Protocol

from simulators.scpi import (
    DATA_OUT_OF_RANGE,
    ILLEGAL_PARAMETER,
    ScpiError,
    ScpiParser,
    parse_bool,
    parse_number,
)

IDN = "KEITHLEY INSTRUMENTS,MODEL 2450,04567890,1.7.12b"
CURRENT_RANGES_A = (10e-9, 100e-9, 1e-6, 10e-6, 100e-6, 1e-3, 10e-3, 100e-3, 1.0)
MAX_CURRENT_A = 1.05
MAX_VOLTAGE_V = 210.0
ERROR_QUEUE_SIZE = 10


class ClockLike(Protocol):
    def now(self) -> float: ...


def _current_range_for(level_A: float) -> float:
    for rng in CURRENT_RANGES_A:
        if abs(level_A) <= rng * 1.05:
            return rng
    return CURRENT_RANGES_A[-1]


class SimulatedKeithley2450:
    """Byte endpoint (``receive``/``take_output``) of a simulated 2450 wired to a cell."""

    def __init__(self, cell: Any, clock: ClockLike, serial: str = "04567890") -> None:
        self.cell = cell
        self.clock = clock
        self.idn = IDN.replace("04567890", serial)
        self._t = clock.now()
        self._inbuf = bytearray()
        self._out = bytearray()
        self.errors: list[tuple[int, str]] = []
        self._tripped = False
        self._reset_state()
        self._parser = ScpiParser(self._push_error)
        p = self._parser
        p.add("*IDN?", lambda a: self.idn)
        p.add("*RST", self._cmd_rst)
        p.add("*CLS", self._cmd_cls)
        p.add("*OPC?", lambda a: "1")
        p.add("SOURce[1]:FUNCtion[:MODE]", self._cmd_source_function)
        p.add("SOURce[1]:FUNCtion[:MODE]?", lambda a: self.source_function)
        p.add("SOURce[1]:CURRent[:LEVel][:IMMediate][:AMPLitude]", self._cmd_current)
        p.add("SOURce[1]:CURRent[:LEVel][:IMMediate][:AMPLitude]?", lambda a: f"{self.current_A:.6e}")
        p.add("SOURce[1]:CURRent:VLIMit[:LEVel]", self._cmd_vlim)
        p.add("SOURce[1]:CURRent:VLIMit[:LEVel]?", lambda a: f"{self.vlim_V:.6e}")
        p.add("SOURce[1]:CURRent:VLIMit[:LEVel]:TRIPped?", lambda a: "1" if self._tripped else "0")
        p.add("SOURce[1]:VOLTage[:LEVel][:IMMediate][:AMPLitude]", self._cmd_voltage)
        p.add("SOURce[1]:VOLTage[:LEVel][:IMMediate][:AMPLitude]?", lambda a: f"{self.voltage_V:.6e}")
        p.add("SOURce[1]:VOLTage:ILIMit[:LEVel]", self._cmd_ilim)
        p.add("SOURce[1]:VOLTage:ILIMit[:LEVel]?", lambda a: f"{self.ilim_A:.6e}")
        p.add("SENSe[1]:FUNCtion[:ON]", self._cmd_sense_function)
        p.add("SENSe[1]:FUNCtion[:ON]?", lambda a: f'"{self.sense_function}:DC"')
        p.add("SENSe[1]:VOLTage[:DC]:NPLCycles", self._cmd_nplc)
        p.add("SENSe[1]:VOLTage[:DC]:NPLCycles?", lambda a: f"{self.nplc:g}")
        p.add("OUTPut[1][:STATe]", self._cmd_output)
        p.add("OUTPut[1][:STATe]?", lambda a: "1" if self.output_on else "0")
        p.add("OUTPut[1]:CURRent:SMODe", self._cmd_off_mode)
        p.add("OUTPut[1]:CURRent:SMODe?", lambda a: self.off_mode)
        p.add("MEASure[1]:VOLTage[:DC]?", lambda a: f"{self._measure_voltage():.9e}")
        p.add("MEASure[1]:CURRent[:DC]?", lambda a: f"{self._measure_current():.9e}")
        p.add("READ?", self._cmd_read)
        p.add("SYSTem:ERRor[:NEXT]?", self._cmd_error)
        p.add("SYSTem:ERRor:COUNt?", lambda a: str(len(self.errors)))

    # --- byte endpoint ---------------------------------------------------------------
    def receive(self, data: bytes) -> None:
        self._inbuf += data
        while True:
            index = self._inbuf.find(b"\n")
            if index < 0:
                return
            raw = bytes(self._inbuf[:index])
            del self._inbuf[: index + 1]
            self._catch_up()
            try:
                line = raw.decode("ascii").strip()
            except UnicodeDecodeError:
                self._push_error(ScpiError(-101, "Invalid character"))
                continue
            for reply in self._parser.execute_line(line):
                self._out += reply.encode("ascii") + b"\n"

    def take_output(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    # --- physics ---------------------------------------------------------------------
    def _catch_up(self) -> None:
        now = self.clock.now()
        dt = now - self._t
        self._t = now
        if dt <= 0:
            return
        if not self.output_on:
            if self.off_mode == "HIMP":
                self.cell.rest(dt)
            else:
                # A 0 V source behind a compliance of 0.5 % of the range drains the cell.
                drain = -0.005 * _current_range_for(self.current_A)
                self.cell.constant_current(drain, dt, v_lower_V=0.0)
            return
        if self.source_function == "CURR":
            remaining = dt
            if not self._tripped:
                upper = self.vlim_V if self.current_A > 0 else None
                adv = self.cell.constant_current(self.current_A, remaining, v_upper_V=upper)
                remaining -= adv.elapsed_s
                if adv.reason == "v_upper":
                    self._tripped = True
            if self._tripped and remaining > 0:
                self.cell.constant_voltage(self.vlim_V, remaining)
        else:
            self.cell.constant_voltage(self.voltage_V, dt, current_limit_A=None)

    def _switch_current(self) -> None:
        """A new current setting shows at once (the ohmic step), not only after time has passed."""
        if not self.output_on:
            if self.off_mode == "HIMP":
                self.cell.set_current_A(0.0)
        elif self.source_function == "CURR" and not self._tripped:
            self.cell.set_current_A(self.current_A)

    def _measure_voltage(self) -> float:
        if self.output_on and self.source_function == "VOLT":
            return self.voltage_V
        self._switch_current()
        return float(self.cell.measured_voltage_V())

    def _measure_current(self) -> float:
        self._switch_current()
        return float(self.cell.current_A)

    # --- state and commands ------------------------------------------------------------
    def _reset_state(self) -> None:
        self.source_function = "VOLT"
        self.sense_function = "CURR"
        self.current_A = 0.0
        self.voltage_V = 0.0
        self.vlim_V = 21.0
        self.ilim_A = 105e-6
        self.nplc = 1.0
        self.output_on = False
        self.off_mode = "NORM"
        self._tripped = False

    def _push_error(self, exc: ScpiError) -> None:
        if len(self.errors) >= ERROR_QUEUE_SIZE:
            self.errors[-1] = (-350, "Queue overflow")
            return
        self.errors.append((exc.code, exc.message))

    def _cmd_rst(self, args: list[str]) -> None:
        self._reset_state()

    def _cmd_cls(self, args: list[str]) -> None:
        self.errors.clear()

    def _cmd_error(self, args: list[str]) -> str:
        code, message = self.errors.pop(0) if self.errors else (0, "No error")
        return f'{code},"{message}"'

    def _cmd_source_function(self, args: list[str]) -> None:
        word = args[0].upper() if args else ""
        if word in ("CURR", "CURRENT"):
            self.source_function = "CURR"
        elif word in ("VOLT", "VOLTAGE"):
            self.source_function = "VOLT"
        else:
            raise ScpiError(*ILLEGAL_PARAMETER)
        self.output_on = False  # changing the source function turns the output off

    def _cmd_sense_function(self, args: list[str]) -> None:
        word = args[0].strip('"').upper().split(":")[0] if args else ""
        if word in ("VOLT", "VOLTAGE"):
            self.sense_function = "VOLT"
        elif word in ("CURR", "CURRENT"):
            self.sense_function = "CURR"
        else:
            raise ScpiError(*ILLEGAL_PARAMETER)

    def _cmd_current(self, args: list[str]) -> None:
        self.current_A = parse_number(args, -MAX_CURRENT_A, MAX_CURRENT_A)
        self._tripped = False

    def _cmd_voltage(self, args: list[str]) -> None:
        self.voltage_V = parse_number(args, -MAX_VOLTAGE_V, MAX_VOLTAGE_V)

    def _cmd_vlim(self, args: list[str]) -> None:
        self.vlim_V = parse_number(args, 0.02, MAX_VOLTAGE_V)
        self._tripped = False

    def _cmd_ilim(self, args: list[str]) -> None:
        self.ilim_A = parse_number(args, 1e-9, MAX_CURRENT_A)

    def _cmd_nplc(self, args: list[str]) -> None:
        self.nplc = parse_number(args, 0.01, 10.0)

    def _cmd_output(self, args: list[str]) -> None:
        self.output_on = parse_bool(args)
        self._tripped = False

    def _cmd_off_mode(self, args: list[str]) -> None:
        word = args[0].upper() if args else ""
        modes = {
            "HIMP": "HIMP",
            "HIMPEDANCE": "HIMP",
            "NORM": "NORM",
            "NORMAL": "NORM",
            "ZERO": "ZERO",
            "GUAR": "GUAR",
            "GUARD": "GUAR",
        }
        if word not in modes:
            raise ScpiError(*ILLEGAL_PARAMETER)
        self.off_mode = modes[word]

    def _cmd_read(self, args: list[str]) -> str:
        # :READ? ["buffer"[, elements...]] with elements READ, SOUR, REL
        elements = [a.upper() for a in args[1:]] or ["READ"]
        values = []
        for element in elements:
            if element in ("READ", "READING"):
                values.append(
                    self._measure_voltage() if self.sense_function == "VOLT" else self._measure_current()
                )
            elif element in ("SOUR", "SOURCE"):
                values.append(self.current_A if self.source_function == "CURR" else self.voltage_V)
            elif element in ("REL", "RELATIVE"):
                values.append(0.0)
            else:
                raise ScpiError(*DATA_OUT_OF_RANGE)
        return ",".join(f"{v:.9e}" for v in values)
