"""The Keithley 2450's wire protocol: its SCPI settings and queries, each declared once as in the
manual's command table with a strict validator, over any transport."""

from __future__ import annotations

from drivers.scpi import (
    Control,
    Measurement,
    ScpiInstrument,
    parse_bool,
    strict_choice,
    strict_range,
)
from drivers.transport import InstrumentError

MAX_CURRENT_A = 1.05


def _parse_source_function(text: str) -> str:
    word = text.strip().upper()
    return {"CURR": "current", "VOLT": "voltage"}[word]


class Keithley2450(ScpiInstrument):
    """Wire protocol of the Keithley 2450 (native SCPI command set)."""

    identity = Measurement("*IDN?", "Manufacturer, model, serial number, firmware.")
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
    voltage_V = Measurement(":MEAS:VOLT?", "One voltage measurement, V.", parse=float)
    current_A = Measurement(":MEAS:CURR?", "One current measurement, A.", parse=float)

    #: Times a query is asked again after a lost, late or garbled reply (the link, not the
    #: instrument, failed: queries change nothing, so asking again is safe). Generous: the
    #: instrument keeps the cell inside its limits meanwhile, and a link that is down for a
    #: while costs at most this many transport timeouts before the cell is failed.
    retries = 20

    def ask(self, command: str) -> str:
        """Query, asking again after a reply that was lost, late or garbled.

        After any failed exchange whatever is still on its way (a late reply to the failed
        query) is drained before the next query, so a late reply is never taken for the answer
        to a later one. InstrumentError once ``retries`` more attempts have failed too.
        """
        failure: InstrumentError | None = None
        for _ in range(self.retries + 1):
            try:
                if failure is not None:
                    self.transport.read_available()
                return super().ask(command)
            except InstrumentError as exc:
                if "closed" in str(exc):
                    raise
                failure = exc
        assert failure is not None
        raise InstrumentError(
            self.name,
            f"{failure.args[-1] if failure.args else failure} ({self.retries + 1} attempts)",
            command,
        ) from failure

    def read(self) -> tuple[float, float]:
        """Take a reading: (measured value, source value)."""
        command = ':READ? "defbuffer1", READ, SOUR'
        reply = ""
        for _ in range(self.retries + 1):
            reply = self.ask(command)
            try:
                measured, source = (float(x) for x in reply.split(","))
            except ValueError:
                self.transport.read_available()
                continue  # a garbled reply that still decoded: read again
            return measured, source
        raise InstrumentError(self.name, f"garbled reply {reply!r}", command)

    def next_error(self) -> tuple[int, str]:
        command = ":SYST:ERR?"
        reply = self.ask(command)
        code_text, _, message = reply.partition(",")
        try:
            code = int(code_text)
        except ValueError as exc:
            raise InstrumentError(self.name, f"garbled reply {reply!r}", command) from exc
        return code, message.strip().strip('"')

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
