"""Keithley 2450: driver protocol tables, and the simulated instrument's SCPI."""

from __future__ import annotations

import pytest

from drivers.clock import SimClock
from drivers.keithley2450 import Keithley2450, Keithley2450Potentiostat
from drivers.transport import InProcessTransport, InstrumentError, InstrumentTimeout
from tests.protocol import expected_protocol, run_script


def keithley(io) -> Keithley2450:
    """The driver on a scripted byte endpoint, exactly as it talks to a simulator in-process."""
    return Keithley2450(InProcessTransport(io, name="k"), "k")


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
        (lambda k: setattr(k, "output_off_mode", "high_impedance"), [(":OUTP:SMOD HIMP", None)], None),
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
    assert run_script(keithley, table, action) == expected


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
    with expected_protocol(keithley, []) as k, pytest.raises(ValueError, match=control):
        setattr(k, control, value)  # nothing may reach the wire: the script is empty


def test_garbled_reply_names_instrument_and_command() -> None:
    # A reply of the wrong shape is asked again after resynchronising; when it stays garbled,
    # one error names the reply and the command.
    def one_retry(io) -> Keithley2450:
        k = keithley(io)
        k.retries = 1
        return k

    script = [(":MEAS:VOLT?", "volts!"), ("*ESE 101;*ESE?;*ESE 0", "101"), (":MEAS:VOLT?", "volts!")]
    with (
        expected_protocol(one_retry, script) as k,
        pytest.raises(InstrumentError, match=r"k: .*2 attempts.*garbled reply 'volts!'.*MEAS:VOLT\?"),
    ):
        _ = k.voltage_V


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


def test_output_off_state_is_per_source_function() -> None:
    # The 2450 stores the output-off state with the source function: setting the current
    # function's HIMP leaves the voltage function at NORM, which drains a battery after a CV step.
    from simulators.cell import Cell, Sample
    from simulators.keithley2450 import SimulatedKeithley2450
    from simulators.material import load_material

    def after_cv(off_mode_command: str) -> float:
        clock = SimClock()
        t = InProcessTransport(SimulatedKeithley2450(Cell(Sample(load_material(None)), 0.007), clock))
        for line in (
            off_mode_command,
            ":SOUR:FUNC CURR",
            ":SOUR:CURR 1.4e-4",
            ":SOUR:CURR:VLIM 4.5",
            ":OUTP ON",
        ):
            t.write_line(line)
        clock.set_time(clock.now() + 8 * 3600)
        for line in (":SOUR:FUNC VOLT", ":SOUR:VOLT 4.5", ":SOUR:VOLT:ILIM 1e-4", ":OUTP ON"):
            t.write_line(line)
        clock.set_time(clock.now() + 600)
        t.write_line(":OUTP OFF")
        clock.set_time(clock.now() + 48 * 3600)
        return float(t.query(":MEAS:VOLT?"))

    assert after_cv(":OUTP:CURR:SMOD HIMP") < after_cv(":OUTP:SMOD HIMP") - 0.1


def test_output_off_normal_mode_drains_a_battery_but_high_impedance_does_not() -> None:
    # The factory NORM off-state connects a 0 V source behind a small compliance current:
    # two days of "output off" discharge a 7 mg cell noticeably. HIMP opens the relay.
    assert _charged_sim("HIMP") - _charged_sim("NORM") > 0.1


def test_potentiostat_initialises_to_a_safe_battery_configuration(sim) -> None:
    clock, _, t = sim
    driver = Keithley2450Potentiostat(Keithley2450(t, "smu"), clock)
    assert "MODEL 2450" in driver.initialise()
    assert t.query(":OUTP:CURR:SMOD?;:OUTP:VOLT:SMOD?") == "HIMP;HIMP"  # in both source modes
    assert t.query(":OUTP?") == "0"


def test_potentiostat_refuses_a_current_beyond_the_channel(sim) -> None:
    from drivers.techniques import ConstantCurrent, Cutoffs

    clock, _, t = sim
    driver = Keithley2450Potentiostat(Keithley2450(t, "smu"), clock, max_current_A=0.01)
    with pytest.raises(ValueError, match="max_current_A"):
        driver.start_step(ConstantCurrent(20, Cutoffs(voltage_V=4.8)), active_mass_g=1.0, step_index=0)


# --- a new host re-attaches to a step the 2450 kept running -----------------------------------


def _run_for(clock: SimClock, run, seconds: float) -> list:
    points = []
    end = clock.now() + seconds
    while clock.now() < end and run.end_reason is None:
        clock.set_time(min(end, clock.now() + run.next_poll_delay_s()))
        points += run.poll()[0]
    return points


def _progress(points, step_index: int = 4):
    from drivers.base import StepProgress

    last = points[-1]
    first_of_substep = next(p.time_s for p in points if p.substep == last.substep)
    return StepProgress(step_index, points[0].time_s, len(points), last, first_of_substep)


def test_reattach_continues_a_charge_from_the_readings_the_instrument_kept(sim) -> None:
    from drivers.techniques import ConstantCurrent, Cutoffs

    clock, _, t = sim
    step = ConstantCurrent(20, Cutoffs(voltage_V=4.8), record_interval_s=60)
    host1 = Keithley2450Potentiostat(Keithley2450(t, "smu"), clock, poll_interval_s=10)
    host1.initialise()
    before = _run_for(clock, host1.start_step(step, 0.007, 4), 3600)
    clock.set_time(clock.now() + 1800)  # host 1 died; the 2450 kept sourcing 140 uA and reading
    host2 = Keithley2450Potentiostat(Keithley2450(t, "smu"), clock, poll_interval_s=10)
    host2.initialise(reset=False)  # identifies it without *RST, which would switch the output off
    run = host2.reattach(step, 0.007, _progress(before))
    after = _run_for(clock, run, 20 * 3600)
    assert run.end_reason == "voltage"
    # the half hour nobody polled is in the record, a point every record interval, no gap
    assert after[0].time_s - before[-1].time_s == pytest.approx(60.0)
    assert after[0].capacity_mAh_g - before[-1].capacity_mAh_g == pytest.approx(20.0 * 60 / 3600, rel=1e-6)
    times = [p.time_s for p in before + after]
    assert all(b > a for a, b in zip(times, times[1:], strict=False))
    assert 250 < after[-1].capacity_mAh_g < 320 and after[-1].voltage_V >= 4.8 - 1e-6


def test_reattach_moves_on_to_the_gitt_pulse_or_rest_the_instrument_is_in(sim) -> None:
    from drivers.techniques import GITT

    clock, _, t = sim
    step = GITT(current_mA_g=20, pulse_s=600, rest_s=1800, cutoff_voltage_V=4.8, record_interval_s=60)
    host1 = Keithley2450Potentiostat(Keithley2450(t, "smu"), clock)
    host1.initialise()
    before = _run_for(clock, host1.start_step(step, 0.007, 2), 2 * 2400 + 900)  # in the third rest
    assert before[-1].substep == 5
    host2 = Keithley2450Potentiostat(Keithley2450(t, "smu"), clock)
    run = host2.reattach(step, 0.007, _progress(before, 2))
    clock.set_time(clock.now() + 1600)  # past the rest's end (7200 s into the step)
    points = run.poll()[0]
    assert points[0].substep == 5 and points[0].current_A == 0.0
    assert points[-1].substep == 6 and points[-1].current_A > 0  # the rest ended; the next pulse began


@pytest.mark.parametrize(
    ("meddle", "message"),
    [
        (lambda t: t.write_line(":OUTP OFF"), "output is off"),
        (lambda t: t.write_line(":SOUR:CURR 1e-3"), "sources current at 0.001"),
    ],
)
def test_reattach_refuses_an_instrument_doing_something_else(sim, meddle, message) -> None:
    from drivers.techniques import ConstantCurrent, Cutoffs

    clock, _, t = sim
    step = ConstantCurrent(20, Cutoffs(voltage_V=4.8), record_interval_s=60)
    host1 = Keithley2450Potentiostat(Keithley2450(t, "smu"), clock)
    before = _run_for(clock, host1.start_step(step, 0.007, 1), 600)
    meddle(t)  # someone used the instrument meanwhile
    host2 = Keithley2450Potentiostat(Keithley2450(t, "smu"), clock)
    with pytest.raises(InstrumentError, match=message):
        host2.reattach(step, 0.007, _progress(before, 1))


# --- a busy link: every exchange takes clock time ---------------------------------------------


class SlowLink:
    """A byte endpoint in front of a simulator on which every request takes ``latency_s`` of
    the shared (simulated) clock, as on a loaded machine with a free-running served clock."""

    def __init__(self, endpoint, clock: SimClock, latency_s: float) -> None:
        self.endpoint, self.clock, self.latency_s = endpoint, clock, latency_s

    def receive(self, data: bytes) -> None:
        self.clock.set_time(self.clock.now() + self.latency_s)
        self.endpoint.receive(data)

    def take_output(self) -> bytes:
        return self.endpoint.take_output()


def test_a_rest_lasts_its_full_duration_between_its_points_on_a_slow_link() -> None:
    # The summary's rest_duration_h is the span of the rest's points: setting the rest up over
    # a slow link (a dozen exchanges) must not come out of the 24 h.
    from drivers.techniques import Rest
    from simulators.cell import Cell, Sample
    from simulators.keithley2450 import SimulatedKeithley2450
    from simulators.material import load_material

    clock = SimClock()
    cell = Cell(Sample(load_material(None)), active_mass_g=0.007)
    link = SlowLink(SimulatedKeithley2450(cell, clock), clock, latency_s=5.0)
    driver = Keithley2450Potentiostat(Keithley2450(InProcessTransport(link, name="smu"), "smu"), clock)
    driver.initialise()
    points = _run_for(clock, driver.start_step(Rest(86400, record_interval_s=600), 0.007, 1), 2 * 86400)
    span_s = points[-1].time_s - points[0].time_s
    assert 86400 <= span_s < 86400 + 5 * 5.0  # never short; late by at most one poll's exchanges
    assert all(b.time_s - a.time_s <= 600 + 5 * 5.0 for a, b in zip(points, points[1:], strict=False))
