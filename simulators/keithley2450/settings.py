"""Settings handlers of the simulated Keithley 2450: IEEE 488.2 common commands and the status
registers, the error queue, system, output, source and sense settings."""

from __future__ import annotations

from simulators.keithley2450.buffers import _Buffers
from simulators.keithley2450.model import (
    AUTORANGE_LIMITS,
    EAV,
    ESB,
    MAV,
    MAX_CURRENT_A,
    MAX_VOLTAGE_V,
    MSS,
    OFF_MODES,
    OPC,
    OVP_LEVELS,
    RANGES,
    SOURCE_FUNCTIONS,
    VOLTAGE_RANGES_V,
    _bound,
    _e,
    _range_for,
    _Sense,
    _Source,
)
from simulators.scpi import (
    ILLEGAL_PARAMETER,
    MISSING_PARAMETER,
    SETTINGS_CONFLICT,
    Call,
    ScpiError,
    no_params,
    parse_bool,
    parse_choice,
    parse_number,
    unquote,
)


class _Settings(_Buffers):
    """Handlers of the settings commands."""

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
        self._fixed_range(self.source[c.function], c.function, c.params, low=-1.05 * RANGES[c.function][-1])

    @staticmethod
    def _fixed_range(settings: _Source | _Sense, function: str, params: list[str], low: float) -> None:
        """A fixed range: the smallest range that holds the value (MIN the lowest); autorange off."""
        ranges = RANGES[function]
        value = parse_number(params, low, ranges[-1] * 1.05, ranges[-1])
        if params[0].upper().startswith("MIN"):
            value = ranges[0]
        settings.range, settings.auto = _range_for(value, ranges), False

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
            return self._autorange("VOLT", _range_for(self._terminal_voltage(), VOLTAGE_RANGES_V))
        return self._autorange("RES", sense.range)

    def _cmd_autorange_low(self, c: Call) -> None:
        ranges, sense = RANGES[c.function], self.sense[c.function]
        low = _range_for(parse_number(c.params, *AUTORANGE_LIMITS[c.function], ranges[0]), ranges)
        if low > _range_for(sense.high, ranges):
            raise ScpiError(*SETTINGS_CONFLICT)  # the lower limit must not pass the upper one
        sense.low = low

    def _query_autorange_low(self, c: Call) -> str:
        ranges = RANGES[c.function]
        if c.params:
            return _e(_range_for(_bound(c.params, *AUTORANGE_LIMITS[c.function], ranges[0]), ranges))
        return _e(_range_for(self.sense[c.function].low, ranges))

    def _cmd_autorange_high(self, c: Call) -> None:
        ranges, sense = RANGES["RES"], self.sense["RES"]
        high = _range_for(parse_number(c.params, ranges[0], ranges[-1], ranges[-1]), ranges)
        if high < _range_for(sense.low, ranges):
            raise ScpiError(*SETTINGS_CONFLICT)
        sense.high = high

    def _query_autorange_high(self, c: Call) -> str:
        ranges = RANGES[c.function]
        if c.params:
            low = ranges[0] if c.function == "RES" else ranges[-1]
            return _e(_bound(c.params, low, ranges[-1], ranges[-1]))
        return _e(_range_for(self.sense[c.function].high, ranges))

    def _cmd_sense_range(self, c: Call) -> None:
        low = 0.0 if c.function == "RES" else -1.05 * RANGES[c.function][-1]
        self._fixed_range(self.sense[c.function], c.function, c.params, low)

    def _cmd_sense_autorange(self, c: Call) -> None:
        sense = self.sense[c.function]
        sense.auto = parse_bool(c.params)
        if not sense.auto:
            sense.range = self._sense_range(c.function) if c.function != "RES" else sense.range

    def _cmd_count(self, c: Call) -> None:
        self.sense_count = int(parse_number(c.params, 1, 300_000, 1))
