"""Simulated Keithley 2450 SourceMeter: the SCPI subset relaxlab uses, on the cell model.

It parses the same bytes a real 2450 parses (``\\n``-terminated SCPI lines, short and long
forms in any case, several commands per line) and answers queries with ``\\n``-terminated
replies. Errors go to the error queue read by ``:SYST:ERR?`` (``0,"No error"`` when empty),
as on the real unit: an unknown header is ``-113``, a value outside the instrument's range is
``-222`` and leaves the setting unchanged.

Physics: the instrument is wired to a :class:`simulators.cell.Cell`. Whenever it is addressed
it first advances the cell from its last visit to ``clock.now()`` under the present source
state. The source's limits are symmetric magnitudes, as on the real unit: with the output on in
current mode the voltage limit clamps the output at +VLIM when sourcing and at -VLIM when
sinking (constant current turns into constant voltage and ``VLIM:TRIP?`` reports 1), so a
current source discharging a battery drives it through 0 V; in voltage mode the current limit
(``ILIM``) caps the current in either direction, so a voltage source below the cell's voltage
sinks exactly ILIM (constant current) until the cell reaches the set voltage, then holds it.
Source readback is on (the 2450's default): the ``SOUR`` element of ``:READ?`` is the measured
source value, i.e. the current actually flowing while VLIM clamps, and the cell's voltage while
ILIM limits. With the output off the cell rests
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
        self._ilim_key: tuple[float, float] | None = None
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
        volt_mode = self.output_on and self.source_function == "VOLT"
        if volt_mode and self._ilim_key != (self.voltage_V, self.ilim_A):
            # the voltage source (re)starts: it is in current limit unless the cell can follow
            self._ilim_key = (self.voltage_V, self.ilim_A)
            self._ilim_sign = 1.0 if self.voltage_V > self.cell.voltage_V() else -1.0
            self._ilim_active = True
            self._hold_current_A, self._hold_pull_A = 0.0, self.ilim_A
        elif not volt_mode:
            self._ilim_key = None
        if dt <= 0 and not (volt_mode and self._ilim_active):
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
            sign = 1.0 if self.current_A >= 0 else -1.0
            if not self._tripped:
                upper = self.vlim_V if sign > 0 else None
                lower = -self.vlim_V if sign < 0 else None
                adv = self.cell.constant_current(self.current_A, remaining, v_upper_V=upper, v_lower_V=lower)
                remaining -= adv.elapsed_s
                if adv.reason in ("v_upper", "v_lower"):
                    self._tripped = True
            if self._tripped and remaining > 0:
                self.cell.constant_voltage(sign * self.vlim_V, remaining)
        else:
            remaining, charge_As = dt, 0.0
            if self._ilim_active:
                limited = self._ilim_sign * self.ilim_A
                upper = self.voltage_V if limited > 0 else None
                lower = self.voltage_V if limited < 0 else None
                adv = self.cell.constant_current(limited, remaining, v_upper_V=upper, v_lower_V=lower)
                remaining -= adv.elapsed_s
                charge_As += limited * adv.elapsed_s
                if adv.reason in ("v_upper", "v_lower"):
                    self._ilim_active = False  # the cell reached the set voltage: held there
            if not self._ilim_active and remaining > 0:
                if self._ilim_sign < 0:
                    charge_As += self._hold_sinking(remaining)
                else:
                    self.cell.constant_voltage(self.voltage_V, remaining, current_limit_A=None)
            if dt > 0:
                self._hold_current_A = charge_As / dt  # what an integrating reading would see

    def _hold_sinking(self, duration_s: float) -> float:
        """Hold a cell that relaxes upwards at the set voltage, sinking at most ILIM.

        The source pulls the cell down to the set voltage with a current that halves each time
        the cell gets there (and may double again, never beyond ILIM, as it relaxes): a constant
        voltage within the current limit, stable where the cell model's own voltage hold is
        not (an empty cathode). The cell never goes below the set voltage; the current read is
        the mean since the last reading. Returns the charge passed, A s.
        """
        charge_As, left = 0.0, duration_s
        current = self._hold_pull_A
        while left > 1e-9:
            chunk = min(left, 60.0)
            left -= chunk
            current = min(self.ilim_A, 2.0 * current)
            while chunk > 1e-9:
                adv = self.cell.constant_current(-current, chunk, v_lower_V=self.voltage_V)
                charge_As -= current * adv.elapsed_s
                chunk -= adv.elapsed_s
                if adv.reason == "time":
                    break
                if current < self.ilim_A * 1e-9:  # nothing left to pull: the cell follows at rest
                    self.cell.rest(chunk)
                    break
                current /= 2.0
        self._hold_pull_A = current
        return charge_As

    def _source_readback(self) -> float:
        """The ``SOUR`` reading element: the measured source value (readback on)."""
        if not self.output_on:
            return self.current_A if self.source_function == "CURR" else self.voltage_V
        if self.source_function == "CURR":
            return float(self.cell.current_A) if self._tripped else self.current_A
        return float(self.cell.measured_voltage_V()) if self._ilim_active else self.voltage_V

    def _volt_current_A(self) -> float:
        """The current a voltage source passes: ILIM while limited, else what holds the level."""
        if self._ilim_active:
            return self._ilim_sign * self.ilim_A
        return self._hold_current_A if self._ilim_sign < 0 else float(self.cell.current_A)

    def _measure_voltage(self) -> float:
        if self.output_on and self.source_function == "VOLT" and not self._ilim_active:
            return self.voltage_V
        return float(self.cell.measured_voltage_V())

    def _measure_current(self) -> float:
        if self.output_on and self.source_function == "VOLT":
            return self._volt_current_A()
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
        # voltage source in current limit: (level, limit) it was set up for, direction, active
        self._ilim_key = None
        self._ilim_sign = -1.0
        self._ilim_active = False
        self._hold_current_A, self._hold_pull_A = 0.0, self.ilim_A

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
                values.append(self._source_readback())
            elif element in ("REL", "RELATIVE"):
                values.append(0.0)
            else:
                raise ScpiError(*DATA_OUT_OF_RANGE)
        return ",".join(f"{v:.9e}" for v in values)
