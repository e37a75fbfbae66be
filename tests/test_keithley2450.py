"""Keithley 2450: driver protocol tables, and the simulated instrument's SCPI."""

from __future__ import annotations

import pytest

from drivers.clock import SimClock
from drivers.keithley2450 import Keithley2450, Keithley2450Potentiostat
from drivers.transport import InProcessTransport, InstrumentError, InstrumentTimeout


class ScriptedTransport:
    """Test double: checks every line the driver sends against a (sent, reply) table."""

    name = "scripted 2450"

    def __init__(self, table: list[tuple[str, str | None]]) -> None:
        self.table = list(table)
        self.pending: str | None = None

    def write_line(self, line: str, termination: str = "\n") -> None:
        assert self.table, f"unexpected command {line!r}"
        sent, reply = self.table.pop(0)
        assert line == sent
        self.pending = reply

    def read_line(self, termination: str = "\n", command: str | None = None) -> str:
        assert self.pending is not None, f"no reply scripted for {command!r}"
        reply, self.pending = self.pending, None
        return reply

    def close(self) -> None:
        pass


@pytest.mark.parametrize(
    ("action", "table", "expected"),
    [
        (
            lambda k: k.identity,
            [("*IDN?", "KEITHLEY INSTRUMENTS,MODEL 2450,04096218,1.7.12b")],
            "KEITHLEY INSTRUMENTS,MODEL 2450,04096218,1.7.12b",
        ),
        (lambda k: setattr(k, "source_function", "current"), [(":SOUR:FUNC CURR", None)], None),
        (lambda k: setattr(k, "source_current_A", 1.4e-4), [(":SOUR:CURR 1.400000e-04", None)], None),
        (lambda k: setattr(k, "source_current_A", -1.4e-4), [(":SOUR:CURR -1.400000e-04", None)], None),
        (lambda k: setattr(k, "voltage_limit_V", 4.8), [(":SOUR:CURR:VLIM 4.8", None)], None),
        (lambda k: k.voltage_limit_tripped, [(":SOUR:CURR:VLIM:TRIP?", "1")], True),
        (lambda k: setattr(k, "sense_function", "voltage"), [(':SENS:FUNC "VOLT"', None)], None),
        (lambda k: setattr(k, "voltage_nplc", 1), [(":SENS:VOLT:NPLC 1", None)], None),
        (lambda k: setattr(k, "output_enabled", True), [(":OUTP ON", None)], None),
        (lambda k: setattr(k, "output_enabled", False), [(":OUTP OFF", None)], None),
        (lambda k: k.output_enabled, [(":OUTP?", "0")], False),
        (lambda k: setattr(k, "output_off_mode", "high_impedance"), [(":OUTP:CURR:SMOD HIMP", None)], None),
        (lambda k: k.voltage_V, [(":MEAS:VOLT?", "4.123456789E+00")], 4.123456789),
        (lambda k: k.read(), [(':READ? "defbuffer1", READ, SOUR', "3.9E+00,1.4E-04")], (3.9, 1.4e-4)),
        (
            lambda k: k.next_error(),
            [(":SYST:ERR?", '-222,"Parameter data out of range"')],
            (-222, "Parameter data out of range"),
        ),
        (
            lambda k: k.errors(),
            [(":SYST:ERR?", '-113,"Undefined header"'), (":SYST:ERR?", '0,"No error"')],
            [(-113, "Undefined header")],
        ),
    ],
)
def test_driver_protocol_table(action, table, expected) -> None:
    transport = ScriptedTransport(table)
    result = action(Keithley2450(transport, "k"))
    assert result == expected
    assert not transport.table, "not every scripted command was sent"


@pytest.mark.parametrize(
    ("control", "value"),
    [
        ("source_current_A", 1.2),
        ("source_current_A", -2.0),
        ("voltage_limit_V", 0.001),
        ("voltage_limit_V", 250),
        ("voltage_nplc", 20),
        ("output_off_mode", "open"),
        ("source_function", "resistance"),
    ],
)
def test_out_of_range_values_raise_before_anything_is_sent(control, value) -> None:
    transport = ScriptedTransport([])
    with pytest.raises(ValueError, match=control):
        setattr(Keithley2450(transport, "k"), control, value)


def test_garbled_reply_names_instrument_and_command() -> None:
    transport = ScriptedTransport([(":MEAS:VOLT?", "volts!")])
    with pytest.raises(InstrumentError, match=r"k: garbled reply 'volts!'.*MEAS:VOLT\?"):
        _ = Keithley2450(transport, "k").voltage_V


# --- the simulated 2450 parses the same bytes ---------------------------------------------


@pytest.fixture
def sim():
    from simulators.cell import Cell, Sample
    from simulators.keithley2450 import SimulatedKeithley2450
    from simulators.material import load_material

    clock = SimClock()
    cell = Cell(Sample(load_material(None)), active_mass_g=0.007)
    instrument = SimulatedKeithley2450(cell, clock)
    return clock, cell, InProcessTransport(instrument, name="sim2450")


@pytest.mark.parametrize(
    "command",
    [":SOUR:CURR:VLIM 4.5", ":source:current:vlimit 4.5", "SOUR1:CURR:VLIM:LEV 4.5", ":Sour:Curr:VLIMit 4.5"],
)
def test_simulator_accepts_short_long_and_mixed_case(sim, command) -> None:
    _, _, t = sim
    t.write_line(command)
    assert float(t.query(":SOUR:CURR:VLIM?")) == 4.5
    assert t.query(":SYST:ERR?") == '0,"No error"'


def test_simulator_reports_unknown_and_out_of_range_through_the_error_queue(sim) -> None:
    _, _, t = sim
    t.write_line(":SOUR:CURR 0.001")
    t.write_line(":SOUR:CURR 5")  # beyond 1.05 A: refused, level unchanged
    t.write_line(":SOUR:BANANA 3")
    assert float(t.query(":SOUR:CURR?")) == pytest.approx(0.001)
    assert t.query(":SYST:ERR?") == '-222,"Parameter data out of range"'
    assert t.query(":SYST:ERR?") == '-113,"Undefined header"'
    assert t.query(":SYST:ERR?") == '0,"No error"'


def test_simulator_several_commands_on_one_line(sim) -> None:
    _, _, t = sim
    t.write_line(":SOUR:FUNC CURR;:SOUR:CURR 2e-4;:SOUR:CURR?")
    assert float(t.read_line()) == pytest.approx(2e-4)


def test_missing_reply_is_a_timeout_naming_the_command(sim) -> None:
    _, _, t = sim
    t.write_line(":SOUR:CURR 1e-4")  # a setting has no reply
    with pytest.raises(InstrumentTimeout, match=r"sim2450: no reply.*SOUR:CURR\?"):
        t.read_line(command=":SOUR:CURR?")


def test_voltage_limit_clamps_the_cell(sim) -> None:
    clock, cell, t = sim
    for line in (":SOUR:FUNC CURR", ":SOUR:CURR 1.4e-4", ":SOUR:CURR:VLIM 3.9", ":OUTP ON"):
        t.write_line(line)
    clock.set_time(clock.now() + 6 * 3600)
    assert float(t.query(":MEAS:VOLT?")) == pytest.approx(3.9, abs=1e-3)
    assert t.query(":SOUR:CURR:VLIM:TRIP?") == "1"


def _charged_sim(off_mode: str) -> float:
    from simulators.cell import Cell, Sample
    from simulators.keithley2450 import SimulatedKeithley2450
    from simulators.material import load_material

    clock = SimClock()
    cell = Cell(Sample(load_material(None)), active_mass_g=0.007)
    t = InProcessTransport(SimulatedKeithley2450(cell, clock))
    for line in (":SOUR:FUNC CURR", ":SOUR:CURR 1.4e-4", ":SOUR:CURR:VLIM 4.8", ":OUTP ON"):
        t.write_line(line)
    clock.set_time(clock.now() + 8 * 3600)
    t.write_line(f":OUTP:CURR:SMOD {off_mode}")
    t.write_line(":OUTP OFF")
    clock.set_time(clock.now() + 48 * 3600)
    return float(t.query(":MEAS:VOLT?"))


def test_output_off_normal_mode_drains_a_battery_but_high_impedance_does_not() -> None:
    # The factory NORM off-state connects a 0 V source behind a small compliance current:
    # two days of "output off" discharge a 7 mg cell noticeably. HIMP opens the relay.
    assert _charged_sim("HIMP") - _charged_sim("NORM") > 0.1


def test_potentiostat_initialises_to_a_safe_battery_configuration(sim) -> None:
    clock, _, t = sim
    driver = Keithley2450Potentiostat(Keithley2450(t, "smu"), clock)
    assert "MODEL 2450" in driver.initialise()
    assert t.query(":OUTP:CURR:SMOD?") == "HIMP"
    assert t.query(":OUTP?") == "0"


def test_potentiostat_refuses_a_current_beyond_the_channel(sim) -> None:
    from drivers.techniques import ConstantCurrent, Cutoffs

    clock, _, t = sim
    driver = Keithley2450Potentiostat(Keithley2450(t, "smu"), clock, max_current_A=0.01)
    with pytest.raises(ValueError, match="max_current_A"):
        driver.start_step(ConstantCurrent(20, Cutoffs(voltage_V=4.8)), active_mass_g=1.0, step_index=0)
