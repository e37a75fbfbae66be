"""Commands a user's script sends to a 2450 beyond source and measure (Model 2450 Reference
Manual): autorange limits, ASCII precision, the front panel, trigger-model templates; each is
stored and read back, or refused with the manual's error and nothing changed."""

from __future__ import annotations

import pytest

from drivers.clock import SimClock
from simulators.cell import Cell, Sample
from simulators.keithley2450 import SimulatedKeithley2450
from simulators.material import load_material
from tests.test_keithley2450_sim import Host


@pytest.fixture
def host() -> Host:
    cell = Cell(Sample(load_material(None)), active_mass_g=0.007)
    return Host(SimulatedKeithley2450(cell, SimClock()))


@pytest.mark.parametrize(
    ("setting", "query", "expected"),
    [
        (":SENS:CURR:RANG:AUTO:LLIM 1e-6", ":SENS:CURR:RANG:AUTO:LLIM?", "1.000000E-06"),
        (":SENS:CURR:RANG:AUTO:LLIM 3e-6", ":SENS:CURR:RANG:AUTO:LLIM?", "1.000000E-05"),  # next range up
        (
            ":SENS:VOLT:RANG:AUTO:LLIM 15",
            ":SENS:VOLT:RANG:AUTO:LLIM?",
            "2.000000E+01",
        ),  # the manual's example
        (":SENS:RES:RANG:AUTO:ULIM 2e6", ":SENS:RES:RANG:AUTO:ULIM?", "2.000000E+06"),
        ("*RST", ":SENS:CURR:RANG:AUTO:LLIM?;:SENS:CURR:RANG:AUTO:ULIM?", "1.000000E-08;1.000000E+00"),
        ("*RST", ":SENS:CURR:RANG:AUTO:LLIM? MAX;:SENS:VOLT:RANG:AUTO:ULIM?", "1.000000E+00;2.000000E+02"),
        (":FORM:ASC:PREC 16", ":FORM:ASC:PREC?", "16"),
        (":FORM:ASC:PREC MIN", ":FORM:ASC:PREC?;:FORM:ASC:PREC? MAX", "0;16"),
        (":DISP:LIGH:STAT ON25", ":DISP:LIGH:STAT?", "ON25"),
        (":DISP:LIGH:STAT BLACkout", ":DISP:LIGH:STAT?", "BLAC"),
        (":DISP:CURR:DIG 6", ":DISP:CURR:DIG?;:DISP:VOLT:DIG?", "6;5"),
        (":DISP:READ:FORM EXP", ":DISP:READ:FORM?", "EXP"),
        (":SENS:RES:OCOM ON", ":SENS:RES:OCOM?", "1"),
    ],
)
def test_settings_are_stored_and_read_back(host, setting, query, expected) -> None:
    host.write(setting)
    assert host.query(query) == expected
    assert host.errors() == []


@pytest.mark.parametrize(
    ("command", "error"),
    [
        (":SENS:CURR:RANG:AUTO:LLIM 2", "-222"),
        (":SENS:RES:RANG:AUTO:ULIM 10", "-222"),
        (":SENS:CURR:RANG:AUTO:ULIM 1", "-113"),  # a query only for current
        (":FORM:ASC:PREC 17", "-222"),
        (":DISP:LIGH:STAT DIM", "-224"),
        (":DISP:CURR:DIG 7", "-222"),
        (":DISP:SCR KITCHEN", "-224"),
        (":DISP:USER1:TEXT Batch", "-104"),  # text is a string
        (':TRIG:LOAD "LoopUntilEvent", DIG3, 50', "-224"),  # a template not simulated
        (':TRIG:LOAD "DurationLoop", 1e6', "-222"),  # at most 100 ks
        (':TRIG:LOAD "SimpleLoop", 0', "-222"),
        (':TRIG:LOAD "SimpleLoop", 5, 0, "nobuffer"', "-224"),
    ],
)
def test_bad_values_are_refused_and_change_nothing(host, command, error) -> None:
    state = ":SENS:CURR:RANG:AUTO:LLIM?;:FORM:ASC:PREC?;:DISP:LIGH:STAT?;:DISP:CURR:DIG?;:TRAC:ACT?"
    before = host.query(state)
    host.write(command)
    host.write(":INIT")
    assert [e.split(",")[0] for e in host.errors()] == [error]
    assert host.query(state).rsplit(";", 1)[0] == before.rsplit(";", 1)[0]
    assert host.query(":TRAC:ACT?") == "1"  # INIT took its one reading: no template was loaded


def test_a_lower_limit_above_the_upper_one_is_a_settings_conflict(host) -> None:
    host.write(":SENS:RES:RANG:AUTO:ULIM 2e3")
    host.write(":SENS:RES:RANG:AUTO:LLIM 2e4")
    assert [e.split(",")[0] for e in host.errors()] == ["-221"]
    assert host.query(":SENS:RES:RANG:AUTO:LLIM?") == "2.000000E+01"


def test_autorange_stays_within_its_limits(host) -> None:
    # a voltage source in a 105 uA limit autoranges current to 100 uA; a lower limit of 1 mA holds
    assert host.query(":SENS:CURR:RANG?") == "1.000000E-04"
    host.write(":SENS:CURR:RANG:AUTO:LLIM 1e-3")
    assert host.query(":SENS:CURR:RANG?") == "1.000000E-03"
    host.write(':SENS:FUNC "VOLT";:SENS:VOLT:RANG:AUTO:LLIM 20')
    assert host.query(":SENS:VOLT:RANG?") == "2.000000E+01"  # 0 V would want 20 mV


def test_ascii_precision_sets_the_significant_digits_of_readings(host) -> None:
    host.write(":SOUR:FUNC VOLT;:SOUR:VOLT 1.23456789;:SOUR:VOLT:READ:BACK OFF")  # SOUR: the level set
    auto = host.query(':MEAS? "defbuffer1", SOUR')
    host.write(":FORM:ASC:PREC 4")
    assert host.query(':MEAS? "defbuffer1", SOUR') == "1.235E+00"
    host.write(":FORM:ASC:PREC 0")
    assert host.query(':MEAS? "defbuffer1", SOUR') == auto
    assert host.errors() == []


def test_user_text_longer_than_the_line_is_shortened_with_an_error(host) -> None:
    host.write(':DISP:USER1:TEXT "Batch A122"')
    assert host.errors() == []
    host.write(':DISP:USER1:TEXT "this text is longer than twenty"')
    assert [e.split(",")[0] for e in host.errors()] == ["-223"]
    host.write(":DISP:SCR SWIPE_USER;:DISP:CLE")
    assert host.errors() == []


def test_a_simple_loop_template_makes_initiate_take_its_count(host) -> None:
    host.write(':TRAC:MAKE "loop", 100;:TRIG:LOAD "SimpleLoop", 7, 0, "loop"')
    host.write(":INIT;*WAI")
    assert host.query(':TRAC:ACT? "loop";:TRAC:ACT?') == "7;0"
    host.write(':TRIG:LOAD "Empty";:INIT')
    assert host.query(':TRAC:ACT? "loop";:TRAC:ACT?') == "7;1"
    assert host.errors() == []


def test_a_linear_voltage_sweep_reads_one_current_per_level_around_the_cells_voltage(host) -> None:
    ocv = float(host.query(':SENS:FUNC "VOLT";:OUTP:SMOD HIMP;:MEAS?'))
    lo, hi = round(ocv - 0.01, 3), round(ocv + 0.01, 3)
    host.write(':SENS:FUNC "CURR";:SOUR:VOLT:ILIM 0.1;:SOUR:VOLT:READ:BACK OFF;:TRAC:CLE')
    host.write(f':SOUR:SWE:VOLT:LIN {lo}, {hi}, 5, 0, 1, BEST, OFF, OFF, "defbuffer1"')
    host.write(":INIT;*WAI")
    assert host.query(":OUTP?;:SOUR:FUNC?;:TRAC:ACT?") == "1;VOLT;5"
    rows = [float(v) for v in host.query(':TRAC:DATA? 1, 5, "defbuffer1", SOUR, READ').split(",")]
    levels, currents = rows[0::2], rows[1::2]
    assert levels == pytest.approx([lo + k * (hi - lo) / 4 for k in range(5)])
    assert currents[0] < 0 < currents[-1]  # below the cell's voltage it discharges, above it charges
    assert currents == sorted(currents)
    assert host.errors() == []


def test_a_sweep_into_its_limit_stops_there_when_fail_abort_is_on(host) -> None:
    host.write(":SOUR:VOLT:ILIM 1e-6;:SOUR:SWE:VOLT:LIN:STEP 0, 1, 0.25")  # 0 V on a charged cell
    host.write(":INIT")
    assert host.query(":TRAC:ACT?;:SOUR:VOLT:ILIM:TRIP?") == "1;1"
    assert host.errors() == []


@pytest.mark.parametrize(
    ("command", "error"),
    [
        (":SOUR:SWE:VOLT:LIN 0, 1", "-109"),
        (":SOUR:SWE:VOLT:LIN 0, 300, 5", "-222"),
        (":SOUR:SWE:CURR:LIN 0, 1e-3, 1", "-222"),
        (":SOUR:SWE:VOLT:LIN:STEP 0, 1, 0", "-222"),
        (':SOUR:SWE:VOLT:LIN 0, 1, 5, 0, 1, SOMETIMES', "-224"),
    ],
)
def test_bad_sweeps_are_refused_and_load_nothing(host, command, error) -> None:
    host.write(command)
    host.write(":INIT")
    assert [e.split(",")[0] for e in host.errors()] == [error]
    assert host.query(":TRAC:ACT?;:OUTP?") == "1;0"  # INIT took one reading; the output stayed off


def test_a_block_program_steps_through_the_sweeps_configuration_list_in_time() -> None:
    """The list a sweep command makes ("VoltLinearSweepList", start to stop) is stepped by
    CONFig:RECall/NEXT/PREVious blocks, each level held for its delay: the readings are 10 s
    apart, at the levels in the blocks' order, NEXT wrapping past the last index to the first
    and PREVious before the first to the last."""
    clock = SimClock()
    host = Host(SimulatedKeithley2450(Cell(Sample(load_material(None)), active_mass_g=0.007), clock))
    host.write(':SENS:FUNC "CURR";:SOUR:VOLT:ILIM 0.1;:SOUR:SWE:VOLT:LIN 4.0, 4.2, 3')
    assert host.query(':SOUR:CONF:LIST:SIZE? "VoltLinearSweepList"') == "3"
    host.write(
        ':TRIG:LOAD "Empty";:TRAC:CLE;:TRIG:BLOC:CONF:REC 1, "VoltLinearSweepList", 2;:TRIG:BLOC:SOUR:STAT 2, ON;'
        ':TRIG:BLOC:DEL:CONS 3, 10;:TRIG:BLOC:MEAS 4;:TRIG:BLOC:CONF:NEXT 5, "VoltLinearSweepList";'
        ":TRIG:BLOC:BRAN:COUN 6, 3, 3;"  # 4.1, 4.2, then 4.0 (after the last, the first)
        ':TRIG:BLOC:DEL:CONS 7, 10;:TRIG:BLOC:MEAS 8;:TRIG:BLOC:CONF:PREV 9, "VoltLinearSweepList";'
        ":TRIG:BLOC:BRAN:COUN 10, 3, 7;:TRIG:BLOC:SOUR:STAT 11, OFF"  # 4.1, 4.0, then 4.2 (before the first, the last)
    )  # fmt: skip
    assert host.query(":TRIG:BLOC:LIST?").split(";")[0] == '1) CONFIG_RECALL "VoltLinearSweepList", 2'
    host.write(":INIT")
    assert host.query(":TRAC:ACT?") == "0"  # the first reading is a delay away
    clock.set_time(clock.now() + 60)
    rows = [float(v) for v in host.query(':TRAC:DATA? 1, 6, "defbuffer1", SOUR, REL').split(",")]
    assert rows[0::2] == pytest.approx([4.1, 4.2, 4.0, 4.1, 4.0, 4.2])
    assert rows[1::2] == pytest.approx([0, 10, 20, 30, 40, 50])
    assert host.query(":OUTP?;:TRIG:STAT?") == "0;IDLE;IDLE;12"
    assert host.errors() == []


@pytest.mark.parametrize(
    ("command", "error"),
    [
        (':TRIG:BLOC:CONF:NEXT 1, "NoSuchList"', "-224"),  # the list must exist
        (':TRIG:BLOC:CONF:REC 1, "VoltLinearSweepList", 4', "-222"),  # index past the list's end
        (":TRIG:BLOC:CONF:NEXT 1, VoltLinearSweepList", "-104"),  # a name is a string
        (':TRIG:BLOC:CONF:PREV 1, "VoltLinearSweepList", 2', "-108"),  # no index for PREVious
        (':SOUR:CONF:LIST:SIZE? "NoSuchList"', "-224"),
    ],
)
def test_bad_configuration_list_blocks_are_refused(host, command, error) -> None:
    host.write(":SOUR:SWE:VOLT:LIN 4.0, 4.2, 3")
    host.write(command)
    assert [e.split(",")[0] for e in host.errors()] == [error]
    assert host.query(":TRIG:BLOC:LIST?") == "EMPTY"


def test_a_clients_staircase_in_long_form_runs_as_written() -> None:
    """The way lab code in the wild drives a 2450 staircase: a sweep command for its list, then
    its own trigger model in long-form headers, single-quoted names and a numeric output state,
    jumping over the step on the first pass (``BRANCH:ALWAYS 4, 6``)."""
    clock = SimClock()
    host = Host(SimulatedKeithley2450(Cell(Sample(load_material(None)), active_mass_g=0.007), clock))
    for command in (
        "*RST", "SOUR:FUNC VOLT", "SOUR:VOLT:RANG 20", "SOUR:VOLT:ILIM 0.1", "SENS:FUNC 'CURR'",
        "SOUR:SWE:VOLT:LIN 3.0, 3.1, 11, 0.5", "TRIGGER:LOAD 'Empty'", "TRIGGER:BLOCK:BUFFER:CLEAR 1",
        "TRIGGER:BLOCK:CONFIG:RECALL 2, 'VoltLinearSweepList'", "TRIGGER:BLOCK:SOURCE:STATE 3, 1",
        "TRIGGER:BLOCK:BRANCH:ALWAYS 4, 6", "TRIGGER:BLOCK:CONFIG:NEXT 5, 'VoltLinearSweepList'",
        "TRIGGER:BLOCK:DELAY:CONSTANT 6, 0.5", "TRIGGER:BLOCK:MEASURE 7", "TRIGGER:BLOCK:BRANCH:COUNTER 8, 11, 5",
        "INITIATE",
    ):  # fmt: skip
        host.write(command)
    assert host.errors() == []
    clock.set_time(clock.now() + 10)
    assert host.query(":TRIG:STAT?;:TRAC:ACT?") == "IDLE;IDLE;9;11"
    rows = [float(v) for v in host.query(':TRAC:DATA? 1, 11, "defbuffer1", SOUR, REL').split(",")]
    assert rows[0::2] == pytest.approx([3.0 + 0.01 * k for k in range(11)])
    assert rows[1::2] == pytest.approx([0.5 * k for k in range(11)])  # each level held 0.5 s
