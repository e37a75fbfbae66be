"""A rest, a constant-voltage hold and a sweep on the Keithley 2450 are ended by the instrument
(issue 14, deliverable 1): a host that dies mid-step never keeps the cell in them longer.

(sent, reply) tables for the trigger models the driver sends, then the same bytes on the
simulator: the host stops polling mid-step, simulated time runs far past the step's end, and
the instrument's output is off from the step's end; the host that comes back ends the step at
the last reading the instrument took, and the record is the one an uninterrupted host makes.
"""

from __future__ import annotations

import numpy as np
import pytest

from drivers.base import Point, StepProgress
from drivers.clock import SimClock
from drivers.keithley2450 import Keithley2450, Keithley2450Potentiostat
from drivers.keithley2450.sweep import END_MARGIN_S
from drivers.techniques import ConstantVoltage, Cutoffs, Rest, Sweep
from drivers.transport import InProcessTransport
from tests.keithley2450_helpers import new_host, poll, started_after_charge
from tests.protocol import expected_protocol

START = ':ABOR;:TRIG:LOAD "Empty";:TRAC:POIN 1000000, "defbuffer1";:TRIG:BLOC:BUFF:CLE 1, "defbuffer1";'
FIRST = ':TRIG:BLOC:MEAS 2, "defbuffer1", 1;'
CV_SETUP = [
    (":ABOR", None), (":SOUR:FUNC VOLT", None), (':SENS:FUNC "CURR"', None), (":SOUR:VOLT:ILIM 1.000000e-01", None),
    (":SOUR:VOLT 4.2", None), (":OUTP ON", None), (":SOUR:FUNC?", "VOLT"), (":SOUR:VOLT?", "+4.200000E+00"),
    (":OUTP?", "1"), (":SYST:ERR?", '0,"No error"'), (":TRIG:STAT?", "ABORTED;ABORTED;3"),
]  # fmt: skip
AFTER = [(":TRIG:STAT?", "RUNNING;RUNNING;3"), (":SYST:ERR?", '0,"No error"'),
         (':FETC? "defbuffer1", READ, SOUR, REL;:TRAC:ACT:END? "defbuffer1"', "1.0e-3,4.2,0;1")]  # fmt: skip


def _driver(clock: SimClock):
    def make(io) -> Keithley2450Potentiostat:
        d = Keithley2450Potentiostat(
            Keithley2450(InProcessTransport(io, name="k"), "k"), clock, poll_interval_s=10
        )
        d._initialised = True  # initialise() is tested elsewhere
        return d

    return make


@pytest.mark.parametrize(
    ("cutoffs", "blocks"),
    [
        (  # 60 s read every 10 s: six readings after the first, then output off
            Cutoffs(duration_s=60),
            ":TRIG:BLOC:NOP 5;:TRIG:BLOC:BRAN:COUN 6, 6, 3;",
        ),
        (  # |I| at or below 7 uA (1 mA/g on 7 mg) from the second reading: output off
            Cutoffs(current_mA_g=1),
            ":TRIG:BLOC:BRAN:LIM:CONS 5, IN, -7.000000000e-06, 7.000000000e-06, 7, 4;:TRIG:BLOC:BRAN:ALW 6, 3;",
        ),
        (  # whichever comes first
            Cutoffs(current_mA_g=1, duration_s=60),
            ":TRIG:BLOC:BRAN:LIM:CONS 5, IN, -7.000000000e-06, 7.000000000e-06, 7, 4;"
            ":TRIG:BLOC:BRAN:COUN 6, 6, 3;",
        ),
    ],
    ids=["duration", "current", "both"],
)
def test_a_hold_is_ended_by_its_trigger_model_protocol(cutoffs, blocks) -> None:
    program = (
        START + FIRST + ':TRIG:BLOC:DEL:CONS 3, 1.000000000e+01;:TRIG:BLOC:MEAS 4, "defbuffer1", 1;'
        + blocks + ":TRIG:BLOC:SOUR:STAT 7, OFF;:INIT"
    )  # fmt: skip
    clock = SimClock(start_s=1000.0)
    with expected_protocol(_driver(clock), [*CV_SETUP, (program, None), *AFTER]) as d:
        d.start_step(ConstantVoltage(4.2, cutoffs, record_interval_s=10), 0.007, 0)


SWEEP_SETUP = [
    (":ABOR", None), (":SOUR:FUNC VOLT", None), (':SENS:FUNC "CURR"', None), (":SOUR:VOLT:ILIM 1.000000e-01", None),
    (':SOUR:SWE:VOLT:LIN 4.150000000e+00, 4.250000000e+00, 101;:SOUR:CONF:LIST:SIZE? "VoltLinearSweepList"', "101"),
    (":SOUR:VOLT 4.2", None), (":OUTP ON", None), (":SOUR:FUNC?", "VOLT"), (":SOUR:VOLT?", "+4.200000E+00"),
    (":OUTP?", "1"), (":SYST:ERR?", '0,"No error"'), (":TRIG:STAT?", "ABORTED;ABORTED;3"),
]  # fmt: skip


def _leg(first: int, step: str, stairs: int) -> str:
    return (f':TRIG:BLOC:DEL:CONS {first}, 1.000000000e+01;:TRIG:BLOC:MEAS {first + 1}, "defbuffer1", 1;'
            f':TRIG:BLOC:CONF:{step} {first + 2}, "VoltLinearSweepList";:TRIG:BLOC:BRAN:COUN {first + 3}, {stairs}, {first};')  # fmt: skip


@pytest.mark.parametrize(
    ("cycles", "legs", "end"),
    [
        (  # up 50 mV, down 100 mV, up 50 mV back to the start, then the output off 1 s on
            1,
            _leg(5, "NEXT", 50) + _leg(9, "PREV", 100) + _leg(13, "NEXT", 50),
            ":TRIG:BLOC:DEL:CONS 17, 1.000000000e+00;:TRIG:BLOC:SOUR:STAT 18, OFF;",
        ),
        (  # three cycles: the middle cycles' pair of legs repeated by a counter (block 13, twice)
            3,
            _leg(5, "NEXT", 50) + _leg(9, "PREV", 100) + _leg(13, "NEXT", 100)
            + ":TRIG:BLOC:BRAN:COUN 17, 2, 9;" + _leg(18, "PREV", 100) + _leg(22, "NEXT", 50),
            ":TRIG:BLOC:DEL:CONS 26, 1.000000000e+00;:TRIG:BLOC:SOUR:STAT 27, OFF;",
        ),
    ],
    ids=["one-cycle", "three-cycles"],
)
def test_a_sweep_is_a_staircase_the_instrument_runs_protocol(cycles, legs, end) -> None:
    """The sweep's levels are the instrument's configuration list (1 mV apart from the lowest to
    the highest level); its trigger model holds each for a stair (1 mV at 0.1 mV/s: 10 s) and
    reads at the stair's end, leg by leg, then turns the output off 1 s after the end."""
    program = (
        START + FIRST + ':TRIG:BLOC:CONF:REC 3, "VoltLinearSweepList", 51;:TRIG:BLOC:SOUR:STAT 4, ON;'
        + legs + end + ":INIT"
    )  # fmt: skip
    clock = SimClock(start_s=1000.0)
    step = Sweep(4.2, 4.25, 4.15, scan_rate_mV_s=0.1, cycles=cycles, record_interval_s=10)
    with expected_protocol(_driver(clock), [*SWEEP_SETUP, (program, None), *AFTER]) as d:
        d.start_step(step, 0.007, 0)


# --- the simulator: the host dies, the instrument ends the step --------------------------------


def _killed_and_uninterrupted(step, away_after_s: float, end_after_s: float):
    """The step run to its end by one host, and by a host that dies ``away_after_s`` in and
    comes back 40 h later: (uninterrupted points, killed points, the run that came back, sim)."""
    runs: dict[bool, list[Point]] = {}
    for kill in (False, True):
        clock, sim, run = started_after_charge(step)
        if not kill:
            runs[kill] = poll(clock, run)
            continue
        before = poll(clock, run, clock.now() + away_after_s)
        t0 = before[0].time_s
        clock.set_time(t0 + end_after_s - 1.0)  # nobody polls: just before the end ...
        sim.tick()
        assert sim.output_on  # ... the instrument still runs the step
        clock.set_time(t0 + 40 * 3600)  # ... and long after it
        sim.tick()
        assert not sim.output_on and sim.trigger_state == "IDLE"  # the instrument ended it
        host2 = new_host(sim, "b", clock)
        host2.initialise(reset=False)
        run2 = host2.reattach(step, 0.007, StepProgress(1, t0, len(before), before[-1], t0))
        runs[kill] = before + poll(clock, run2)
        last_reading = sim.buffers["defbuffer1"].readings[-1]
    return runs[False], runs[True], run2, last_reading


@pytest.mark.parametrize(
    "step",
    [
        Rest(3 * 3600, record_interval_s=60),
        ConstantVoltage(4.2, Cutoffs(duration_s=3 * 3600), record_interval_s=60),
    ],
    ids=["rest", "cv"],
)
def test_a_rest_or_hold_left_alone_ends_at_its_duration_output_off(step) -> None:
    reference, killed, run2, last_reading = _killed_and_uninterrupted(step, 600, 3 * 3600)
    assert run2.end_reason == "time"
    t0 = killed[0].time_s
    assert last_reading.time_s - t0 == pytest.approx(3 * 3600)  # the instrument's last reading: on it
    assert killed[-1].time_s - t0 == pytest.approx(3 * 3600)  # and the record ends there
    assert np.array([(p.time_s - t0, p.voltage_V, p.current_A) for p in killed]) == pytest.approx(
        np.array([(p.time_s - reference[0].time_s, p.voltage_V, p.current_A) for p in reference])
    )


def test_a_hold_left_alone_ends_at_its_current_cut_off_output_off() -> None:
    step = ConstantVoltage(4.4, Cutoffs(current_mA_g=2), record_interval_s=60)
    clock, sim, run = started_after_charge(step)
    before = poll(clock, run, clock.now() + 600)
    assert run.end_reason is None and abs(before[-1].current_A) > 14e-6  # still above 2 mA/g
    clock.set_time(clock.now() + 200 * 3600)  # nobody polls
    sim.tick()
    assert not sim.output_on and sim.trigger_state == "IDLE"
    readings = sim.buffers["defbuffer1"].readings
    assert abs(readings[-1].value) <= 14e-6 < abs(readings[-2].value)  # off at the first one below
    host2 = new_host(sim, "b", clock)
    host2.initialise(reset=False)
    t0 = before[0].time_s
    run2 = host2.reattach(step, 0.007, StepProgress(1, t0, len(before), before[-1], t0))
    after = poll(clock, run2)
    assert run2.end_reason == "current"
    assert after[-1].time_s == pytest.approx(readings[-1].time_s)  # the record ends at that reading


def test_a_sweep_goes_on_while_the_host_is_away_and_nothing_is_lost() -> None:
    """The host dies half an hour into a 2 h sweep and comes back 40 h later: the instrument
    swept on, and the record read back from its buffer is the uninterrupted host's."""
    step = Sweep(4.2, 4.4, 3.8, scan_rate_mV_s=0.1, cycles=1, record_interval_s=60)  # 2 h
    span_s = 12000.0  # 200 + 600 + 400 mV at 0.1 mV/s
    reference, killed, run2, _ = _killed_and_uninterrupted(step, 1800, span_s + END_MARGIN_S)
    assert run2.end_reason == "time" and reference[-1].time_s - reference[0].time_s == pytest.approx(span_s)
    assert len(killed) == len(reference)
    assert np.array([(p.time_s, p.voltage_V, p.current_A) for p in killed]) == pytest.approx(
        np.array([(p.time_s, p.voltage_V, p.current_A) for p in reference])
    )


def test_a_sweep_left_alone_ends_at_its_start_level_and_turns_the_output_off_after_its_end() -> None:
    step = Sweep(4.2, 4.4, 3.8, scan_rate_mV_s=0.1, cycles=1, record_interval_s=60)
    clock, sim, run = started_after_charge(step)
    before = poll(clock, run, clock.now() + 1800)
    clock.set_time(before[0].time_s + 12000 + END_MARGIN_S / 2)  # past the end, within the margin
    sim.tick()
    assert sim.output_on and sim.voltage_V == pytest.approx(4.2)  # swept back to the start ...
    assert sim.buffers["defbuffer1"].readings[-1].time_s == pytest.approx(before[0].time_s + 12000)
    clock.set_time(before[0].time_s + 12000 + END_MARGIN_S)
    sim.tick()
    assert not sim.output_on  # ... and held no longer than the margin


def test_a_sweep_stopped_while_the_host_was_away_goes_on_from_the_stair_its_time_reached() -> None:
    """Someone aborts the trigger model half an hour into the sweep; the host that re-attaches
    an hour in starts it again at the level due then, and the sweep ends at most a stair late."""
    step = Sweep(4.2, 4.4, 3.8, scan_rate_mV_s=0.1, cycles=1, record_interval_s=60)  # 10 s stairs
    clock, sim, run = started_after_charge(step)
    before = poll(clock, run, clock.now() + 1800)
    t0 = before[0].time_s
    sim.connect().receive(b":ABOR\n")  # the front panel, another client ...
    clock.set_time(t0 + 3605.0)
    host2 = new_host(sim, "b", clock)
    host2.initialise(reset=False)
    run2 = host2.reattach(step, 0.007, StepProgress(1, t0, len(before), before[-1], t0))
    after = poll(clock, run2)
    assert run2.end_reason == "time"
    # 360 stairs reached: 200 up to 4.4 V and 160 down, so 4.24 V from 3605 s, then on down
    down = [p for p in after if t0 + 3615.0 <= p.time_s <= t0 + 3615.0 + 440 * 10]
    assert len(down) > 60
    for p in down:  # the level held for the stair each reading ends
        assert p.voltage_V == pytest.approx(4.24 - 0.001 * round((p.time_s - t0 - 3615.0) / 10), abs=1e-9)
    assert min(r.source for r in sim.buffers["defbuffer1"].readings) == pytest.approx(3.8)  # the vertex
    assert after[-1].time_s - t0 == pytest.approx(12005.0)  # the 840 stairs left, from 3605 s


@pytest.mark.parametrize(
    ("step", "travel_V"),
    [
        (Sweep(3.2, 4.8, 1.5, scan_rate_mV_s=0.05, cycles=2), 1.6 + 3 * 3.3 + 1.7),  # 1 mV stairs of 20 s
        (Sweep(3.0, 4.0, 2.0, scan_rate_mV_s=1e-5, cycles=1), 1.0 + 2.0 + 1.0),  # 1 mV would take 100,000 s
        (Sweep(3.0, 4.0, 2.0, scan_rate_mV_s=1000, cycles=3000), 1.0 + 5999 * 2.0 + 1.0),  # 12 million mV
    ],
    ids=["cv", "slower-than-a-delay-block", "more-stairs-than-the-buffer"],
)
def test_a_sweeps_staircase_keeps_its_scan_rate_within_the_instruments_limits(step, travel_V) -> None:
    """Lower stairs where a 1 mV stair would outlast the longest delay block, higher ones where
    the buffer could not hold a reading per stair: the sweep lasts its travel at its rate."""
    from drivers.keithley2450.scpi import BUFFER_POINTS, MAX_DELAY_S
    from drivers.keithley2450.sweep import SweepSegment

    segment = SweepSegment(None, 0, step.record_interval_s, sweep=step)  # type: ignore[arg-type]
    assert segment.span_s() == pytest.approx(travel_V / (step.scan_rate_mV_s / 1000), rel=1e-6)
    assert segment.stair_s() <= MAX_DELAY_S and segment.span_s() / segment.stair_s() < BUFFER_POINTS
