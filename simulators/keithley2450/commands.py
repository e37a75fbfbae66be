"""The command table of the simulated Keithley 2450 (Model 2450 Reference Manual, SCPI command
reference): every header it answers, its handler and what it does (the docs table is generated
from it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from simulators.keithley2450.model import (
    FILTER_TYPES,
    SENSE_FUNCTIONS,
    SOURCE_FUNCTIONS,
    _b,
    _e,
    _mean,
    _stddev,
)
from simulators.keithley2450.trigger import _Trigger
from simulators.scpi import no_params, parse_bool, parse_choice, parse_number

Parse = Callable[[list[str]], Any]


def _between(low: float, high: float, default: float, cast: Callable[[float], Any] = float) -> Parse:
    """A numeric parameter within [low, high] (MIN/MAX/DEF accepted)."""
    return lambda params: cast(parse_number(params, low, high, default))


def _one_of(choices: dict[str, str]) -> Parse:
    """A character parameter: ``choices`` maps each accepted form to the canonical one."""
    return lambda params: parse_choice(params, choices)


class _Commands(_Trigger):
    """The command table."""

    def _declare(self) -> None:
        add, setting = self._parser.add, self._setting
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
        add("*TRG", self._cmd_trg, "bus trigger (counted; trigger-model blocks wait for none here)")
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
        setting("SOURce[1]:<function>:DELay:AUTO", "source", "delay_auto", parse_bool, _b,
                "source auto delay ON/OFF", src)  # fmt: skip
        setting("SOURce[1]:<function>:READ:BACK", "source", "readback", parse_bool, _b,
                "ON: the SOUR element is the measured source value; OFF: the programmed one", src)  # fmt: skip
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
            "[SENSe[1]]:<function>[:DC]:RANGe:AUTO",
            self._cmd_sense_autorange,
            "measure autorange ON/OFF",
            sens,
        )
        add(
            "[SENSe[1]]:<function>[:DC]:RANGe:AUTO?",
            lambda c: _b(self.sense[c.function].auto),
            "measure autorange",
            sens,
        )
        for header, attr, parse, show, doc in (
            ("NPLCycles", "nplc", _between(0.01, 10.0, 1.0), _e, "integration time, 0.01-10 power-line cycles"),
            ("AVERage[:STATe]", "average", parse_bool, _b, "averaging filter ON/OFF"),
            ("AVERage:COUNt", "average_count", _between(1, 100, 10, int), str, "filter count 1-100"),
            ("AVERage:TCONtrol", "average_type", _one_of(FILTER_TYPES), str, "filter type REPeat or MOVing"),
            ("RSENse", "four_wire", parse_bool, _b, "4-wire (ON) or 2-wire (OFF) sense"),
            ("AZERo[:STATe]", "autozero", parse_bool, _b, "autozero ON/OFF"),
        ):  # fmt: skip
            setting(f"[SENSe[1]]:<function>[:DC]:{header}", "sense", attr, parse, show, doc, sens)
        setting("[SENSe[1]]:<function>:OCOMpensated", "sense", "offset_compensated", parse_bool, _b,
                "offset-compensated ohms ON/OFF", {"RES": "RESistance"})  # fmt: skip
        add("AZERo:ONCE", lambda c: no_params(c), "refresh the autozero references once")
        add(
            "[SENSe[1]]:<function>[:DC]:RANGe:AUTO:LLIMit",
            self._cmd_autorange_low,
            "lowest range autorange picks (A 1e-8-1, V 0.02-200, ohm 2-2e8; the next range up)",
            sens,
        )
        add(
            "[SENSe[1]]:<function>[:DC]:RANGe:AUTO:LLIMit?",
            self._query_autorange_low,
            "autorange lower limit",
            sens,
        )
        add(
            "[SENSe[1]]:<function>[:DC]:RANGe:AUTO:ULIMit",
            self._cmd_autorange_high,
            "highest range autorange picks, ohm 20-2e8 (a query only for CURR and VOLT)",
            {"RES": "RESistance"},
        )
        add(
            "[SENSe[1]]:<function>[:DC]:RANGe:AUTO:ULIMit?",
            self._query_autorange_high,
            "autorange upper limit; readings beyond it are 9.9e37",
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
        add(
            "FORMat[:DATA]",
            self._cmd_format,
            "reading format: ASCii, REAL (#0 + doubles), SREal (#0 + floats)",
        )
        add("FORMat[:DATA]?", lambda c: self.data_format, "reading format")
        add("FORMat:ASCii:PRECision", self._cmd_ascii_precision, "ASCII significant digits, 1-16 (0 auto)")
        add("FORMat:ASCii:PRECision?", self._query_ascii_precision, "ASCII precision (0 = automatic)")
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
        self._declare_panel(add)
        self._declare_trigger(add)
