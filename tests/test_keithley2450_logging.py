"""The Keithley 2450 keeps a step's readings on the instrument (its trigger model and reading
buffer), so a host that died and comes back reads every reading taken while it was away.

(sent, reply) tables for the wire protocol, the simulator's trigger model filling its buffer as
simulated time passes with no host, and a charge killed shortly before its cut-off and resumed
after a long absence that ends with the capacity of the same charge run uninterrupted.
"""

from __future__ import annotations

import pytest

from drivers.base import StepProgress
from drivers.clock import SimClock
from drivers.keithley2450 import Keithley2450, Keithley2450Potentiostat
from drivers.techniques import ConstantCurrent, Cutoffs, Rest
from drivers.transport import InProcessTransport
from tests.protocol import expected_protocol

PROGRAM = (
    ':ABOR;:TRIG:LOAD "Empty";:TRAC:POIN 1000000, "defbuffer1";:TRIG:BLOC:BUFF:CLE 1, "defbuffer1";'
    ':TRIG:BLOC:MEAS 2, "defbuffer1", 1;:TRIG:BLOC:DEL:CONS 3, 1.000000000e+01;'
    ":TRIG:BLOC:BRAN:ALW 4, 2;:INIT"
)


#: A rest of 20 s read every 10 s: two readings after the first, then the output off (holds.py).
REST_PROGRAM = (
    ':ABOR;:TRIG:LOAD "Empty";:TRAC:POIN 1000000, "defbuffer1";:TRIG:BLOC:BUFF:CLE 1, "defbuffer1";'
    ':TRIG:BLOC:MEAS 2, "defbuffer1", 1;:TRIG:BLOC:DEL:CONS 3, 1.000000000e+01;:TRIG:BLOC:MEAS 4, "defbuffer1", 1;'
    ":TRIG:BLOC:NOP 5;:TRIG:BLOC:BRAN:COUN 6, 2, 3;:TRIG:BLOC:SOUR:STAT 7, OFF;:INIT"
)
LATEST = ':FETC? "defbuffer1", READ, SOUR, REL;:TRAC:ACT:END? "defbuffer1"'


def keithley(io) -> Keithley2450:
    return Keithley2450(InProcessTransport(io, name="k"), "k")


@pytest.mark.parametrize(
    ("action", "table", "expected"),
    [
        (  # a reading at once, then one every 10 s, until :ABOR; confirmed running
            lambda k: k.start_logging(10.0),
            [(":TRIG:STAT?", "ABORTED;ABORTED;3"), (PROGRAM, None), (":TRIG:STAT?", "RUNNING;RUNNING;3"),
             (":SYST:ERR?", '0,"No error"')],  # fmt: skip
            None,
        ),
        (  # a model that ran to its end is emptied first: IDLE after the program then means this one did
            lambda k: k.start_logging(10.0),
            [(":TRIG:STAT?", "IDLE;IDLE;11"), (':ABOR;:TRIG:LOAD "Empty"', None), (":TRIG:STAT?", "EMPTY;EMPTY;1"),
             (PROGRAM, None), (":TRIG:STAT?", "IDLE;IDLE;11"), (":SYST:ERR?", '0,"No error"')],  # fmt: skip
            None,
        ),
        (  # the message was lost: the model is idle, so it is sent again
            lambda k: k.start_logging(10.0),
            [(":TRIG:STAT?", "EMPTY;EMPTY;1"), (PROGRAM, None), (":TRIG:STAT?", "EMPTY;EMPTY;1"), (PROGRAM, None),
             (":TRIG:STAT?", "RUNNING;RUNNING;3"), (":SYST:ERR?", '0,"No error"')],  # fmt: skip
            None,
        ),
        (lambda k: k.stop_logging(), [(":ABOR", None)], None),
        (lambda k: k.trigger_state, [(":TRIG:STAT?", "ABORTED;ABORTED;3")], "ABORTED"),
        (lambda k: k.buffer_end(), [(':TRAC:ACT:END? "defbuffer1"', "3")], 3),
        (  # the newest reading and the buffer's end in one exchange
            lambda k: k.latest_reading(),
            [(LATEST, "3.900000000e+00,1.400000000e-04,2.000000000e+01;3")],
            ((3.9, 1.4e-4, 20.0), 3),
        ),
        (
            lambda k: k.buffer_readings(2, 3),
            [(':TRAC:DATA? 2, 3, "defbuffer1", READ, SOUR, REL',
              "3.900000000e+00,1.400000000e-04,1.000000000e+01,3.910000000e+00,1.400000000e-04,2.000000000e+01")],
            [(3.9, 1.4e-4, 10.0), (3.91, 1.4e-4, 20.0)],
        ),  # fmt: skip
    ],
)
def test_trigger_model_and_buffer_protocol(action, table, expected) -> None:
    with expected_protocol(keithley, table) as k:
        assert action(k) == expected


def test_a_short_buffer_reply_is_asked_again_not_taken_for_data() -> None:
    query = ':TRAC:DATA? 1, 2, "defbuffer1", READ, SOUR, REL'
    table = [(query, "3.9,1.4e-4,0"), ("*ESE 101;*ESE?;*ESE 0", "101"), (query, "3.9,1.4e-4,0,3.9,1.4e-4,10")]
    with expected_protocol(keithley, table) as k:
        assert k.buffer_readings(1, 2) == [(3.9, 1.4e-4, 0.0), (3.9, 1.4e-4, 10.0)]


def test_a_step_polls_the_buffer_not_the_measurement() -> None:
    """Start a rest of 20 s read every 10 s: configure, start the trigger model (that ends the
    rest, output off, at its third reading), read its first reading; at the next poll, the
    reading the instrument took since."""
    setup = [
        (":ABOR", None), (":SOUR:FUNC CURR", None), (':SENS:FUNC "VOLT"', None), (":SOUR:CURR:VLIM 5", None),
        (":SOUR:CURR 0.000000e+00", None), (":OUTP ON", None), (":SOUR:FUNC?", "CURR"),
        (":SOUR:CURR?", "+0.000000E+00"), (":OUTP?", "1"), (":SYST:ERR?", '0,"No error"'),
        (":TRIG:STAT?", "ABORTED;ABORTED;3"), (REST_PROGRAM, None), (":TRIG:STAT?", "RUNNING;RUNNING;3"),
        (":SYST:ERR?", '0,"No error"'), (LATEST, "3.5,0,0;1"), (LATEST, "3.6,0,10;2"),
    ]  # fmt: skip
    clock = SimClock(start_s=1000.0)

    def driver(io) -> Keithley2450Potentiostat:
        d = Keithley2450Potentiostat(keithley(io), clock, poll_interval_s=10)
        d._initialised = True  # initialise() is tested elsewhere
        return d

    with expected_protocol(driver, setup) as d:
        run = d.start_step(Rest(20, record_interval_s=10), 0.005, 0)
        clock.set_time(1000.0 + run.next_poll_delay_s())
        points, done = run.poll()
    assert [(p.time_s, p.voltage_V) for p in points] == [(1000.0, 3.5), (1010.0, 3.6)]
    assert not done


# --- the simulator: a running trigger model fills the buffer as simulated time passes -----


def _sim(clock: SimClock):
    from simulators.cell import Cell, Sample
    from simulators.keithley2450 import SimulatedKeithley2450
    from simulators.material import load_material

    return SimulatedKeithley2450(Cell(Sample(load_material(None)), active_mass_g=0.007), clock)


def test_simulated_trigger_model_reads_on_its_own_time_with_no_host() -> None:
    clock = SimClock()
    sim = _sim(clock)
    t = InProcessTransport(sim, name="sim")
    t.write_line(':SOUR:FUNC CURR;:SENS:FUNC "VOLT";:SOUR:CURR:VLIM 4.8;:SOUR:CURR 1.4e-4;:OUTP ON')
    t.write_line(PROGRAM)
    assert t.query(':TRIG:STAT?;:TRAC:ACT:END? "defbuffer1"') == "RUNNING;RUNNING;3;1"
    clock.set_time(clock.now() + 3600 + 5)  # an hour with nobody asking
    sim.tick()  # a served lab's clock moved: the instrument ran on
    assert len(sim.buffers["defbuffer1"].readings) == 361
    rows = [float(x) for x in t.query(':TRAC:DATA? 1, 361, "defbuffer1", READ, SOUR, REL').split(",")]
    volts, amps, rel = rows[0::3], rows[1::3], rows[2::3]
    assert rel == pytest.approx([10.0 * k for k in range(361)])  # each stamped with its own instant
    assert amps == pytest.approx([1.4e-4] * 361)
    assert volts == sorted(volts) and volts[-1] > volts[0]  # the cell charged reading by reading
    t.write_line(":ABOR")
    clock.set_time(clock.now() + 600)
    assert t.query(':TRIG:STAT?;:TRAC:ACT:END? "defbuffer1";:OUTP?') == "ABORTED;ABORTED;3;361;1"
    assert t.query(":SYST:ERR?") == '0,"No error"'


def test_simulated_templates_run_in_time() -> None:
    clock = SimClock()
    t = InProcessTransport(_sim(clock), name="sim")
    t.write_line(':TRAC:MAKE "loop", 100;:TRIG:LOAD "SimpleLoop", 5, 2, "loop";:INIT')
    clock.set_time(clock.now() + 5)
    assert t.query(':TRAC:ACT? "loop";:TRIG:STAT?') == "2;RUNNING;RUNNING;1"  # waiting in the delay before the third
    clock.set_time(clock.now() + 100)
    assert t.query(':TRAC:ACT? "loop";:TRIG:STAT?') == "5;IDLE;IDLE;4"
    t.write_line(':TRAC:CLE "loop";:TRIG:LOAD "DurationLoop", 30, 10, "loop";:INIT')
    clock.set_time(clock.now() + 100)
    assert t.query(':TRAC:ACT? "loop";:TRIG:STAT?') == "3;IDLE;IDLE;5"
    t.write_line(':TRAC:CLE "loop";:TRIG:LOAD "DurationLoop", 1, 0, "loop";:INIT')  # no delay: at most
    clock.set_time(clock.now() + 2)  # so many blocks per instant, then on at the next one
    assert t.query(":TRIG:STAT?") == "IDLE;IDLE;5"
    t.write_line(':TRIG:LOAD "Empty";:TRIG:BLOC:DEL:CONS 1, 1e-9')  # below 167 ns
    assert t.query(":SYST:ERR?").startswith("-222")


# --- a charge killed shortly before its cut-off, resumed after a long absence ---------------


def _poll_until(clock: SimClock, run, until_s: float | None = None) -> list:
    points = []
    while run.end_reason is None and (until_s is None or clock.now() < until_s):
        wait = run.next_poll_delay_s()
        if until_s is not None:
            wait = min(wait, until_s - clock.now())
        clock.set_time(clock.now() + wait)
        points += run.poll()[0]
    return points


def _charge(kill_before_s: float | None, away_s: float) -> tuple[list, float]:
    """A 20 mA/g charge to 4.5 V on a simulated 2450; with ``kill_before_s`` the host dies that
    long before the uninterrupted run's cut-off (found by running it first) and a new host
    re-attaches ``away_s`` later. The points, and the interval the instrument read at."""
    clock = SimClock()
    sim = _sim(clock)
    step = ConstantCurrent(20, Cutoffs(voltage_V=4.5), record_interval_s=60)
    host = Keithley2450Potentiostat(Keithley2450(InProcessTransport(sim, name="a"), "a"), clock, poll_interval_s=10)
    host.initialise()
    run = host.start_step(step, 0.007, 1)
    if kill_before_s is None:
        return _poll_until(clock, run), run._segment.interval_s
    before = _poll_until(clock, run, kill_before_s)
    clock.set_time(clock.now() + away_s)  # nobody polls; the 2450 holds at 4.5 V, reading on
    host2 = Keithley2450Potentiostat(Keithley2450(InProcessTransport(sim, name="b"), "b"), clock, poll_interval_s=10)
    host2.initialise(reset=False)
    first = next(p for p in before if p.substep == before[-1].substep)
    progress = StepProgress(1, before[0].time_s, len(before), before[-1], first.time_s)
    run2 = host2.reattach(step, 0.007, progress)
    return before + _poll_until(clock, run2), run2._segment.interval_s


def test_a_charge_killed_before_its_cut_off_keeps_every_reading_and_its_capacity() -> None:
    reference, interval_s = _charge(None, 0.0)
    end_s = reference[-1].time_s
    killed, _ = _charge(end_s - 150.0, 843.0)  # the drill's case: killed 150 s before, 843 s away
    times = [p.time_s for p in killed]
    assert all(b > a for a, b in zip(times, times[1:], strict=False))  # in order, none doubled
    # none missing: every recorded point of the uninterrupted run is there, same time, same charge
    assert times == pytest.approx([p.time_s for p in reference])
    # the cut-off was met at the same reading; what separates the two is at most the charge of one
    # reading interval at the step's current (integration on the same readings: none in practice)
    one_interval_mAh_g = 20.0 * interval_s / 3600.0
    assert abs(killed[-1].capacity_mAh_g - reference[-1].capacity_mAh_g) <= one_interval_mAh_g
    assert killed[-1].voltage_V >= 4.5 - 1e-6 and killed[-1].time_s == pytest.approx(end_s)


@pytest.mark.parametrize("step", [Rest(2 * 3600, record_interval_s=10), None], ids=["rest", "charge"])
def test_predictive_polling_off_reads_each_reading_as_taken_with_the_same_points(step) -> None:
    """With ``predictive_polling`` (the default) the host reads the buffered readings several at
    a time where nothing can end the step; off, one poll per reading. The points are the same."""
    from drivers.techniques import ConstantCurrent, Cutoffs

    step = step or ConstantCurrent(20, Cutoffs(voltage_V=4.2), record_interval_s=60)
    results = {}
    for predictive in (True, False):
        clock = SimClock(start_s=0.0)
        sim = _sim(clock)
        host = Keithley2450Potentiostat(keithley(sim), clock, poll_interval_s=10, predictive_polling=predictive)
        host.set_cell_limits(1.5, 4.6)
        host.initialise()
        run = host.start_step(step, 0.007, 0)
        points, polls = [], 0
        while run.end_reason is None:
            clock.set_time(clock.now() + run.next_poll_delay_s())
            points += run.poll()[0]
            polls += 1
        results[predictive] = (polls, [(p.time_s, p.voltage_V) for p in points])
    (batched, with_batches), (single, one_by_one) = results[True], results[False]
    assert one_by_one == with_batches
    assert single >= len(one_by_one) - 1  # a poll for every reading after the first
    assert batched < single / 2  # at most half as many exchanges
