"""The Keithley 2450 ends a constant current at its voltage cut-off itself (its trigger model's
limit branches), as precisely as a host polling every poll interval, and a poll that gets no
valid reply costs nothing while the instrument logs.

The simulator runs the same ``TRIGger:BLOCk:BRANch:LIMit:CONStant`` and ``...:DELTa`` blocks the
driver sends; a charge and a discharge left alone by a dead host end at the cut-off with the
output off (no hold at the cut-off), and the host that comes back ends the step at that reading.
A time or a capacity cut-off is ended on the instrument too (a ``...:BRANch:COUNter`` of record
intervals), at the reading that falls on it.
"""

from __future__ import annotations

import numpy as np
import pytest

from drivers.base import StepProgress
from drivers.clock import SimClock
from drivers.techniques import ConstantCurrent, Cutoffs
from drivers.transport import InProcessTransport
from tests.keithley2450_helpers import charge, new_host, poll, simulated_2450

# --- the simulator's limit and delta branches ------------------------------------------------


def test_simulated_limit_branch_ends_the_model_and_turns_the_output_off() -> None:
    clock = SimClock()
    sim = simulated_2450(clock)
    t = InProcessTransport(sim, name="sim")
    t.write_line(':SOUR:FUNC CURR;:SENS:FUNC "VOLT";:SOUR:CURR:VLIM 3.9;:SOUR:CURR 1.4e-4;:OUTP ON')
    t.write_line(
        ':TRIG:LOAD "Empty";:TRIG:BLOC:BUFF:CLE 1, "defbuffer1";:TRIG:BLOC:MEAS 2, "defbuffer1", 1;'
        ":TRIG:BLOC:BRAN:LIM:CONS 3, ABOVe, 0, 3.8, 7, 2;:TRIG:BLOC:BRAN:DELT 4, 0.5, 5, 2;"
        ":TRIG:BLOC:DEL:CONS 5, 60;:TRIG:BLOC:BRAN:ALW 6, 2;:TRIG:BLOC:SOUR:STAT 7, OFF;:INIT"
    )
    assert t.query(":TRIG:BLOC:LIST?").split(";")[2:4] == [
        "3) LIMIT ABOV, 0, 3.8, 7, 2",
        "4) DELTA 0.5, 5, 2",
    ]
    clock.set_time(clock.now() + 24 * 3600)  # nobody asks: the model runs on the simulated clock
    assert t.query(":TRIG:STAT?;:OUTP?") == "IDLE;IDLE;8;0"  # past block 7: the output is off
    n = int(t.query(':TRAC:ACT:END? "defbuffer1"'))
    rows = [float(x) for x in t.query(f':TRAC:DATA? {n - 1}, {n}, "defbuffer1", READ, REL').split(",")]
    assert rows[0] <= 3.8 < rows[2]  # the first reading above limit B was the last one
    assert rows[3] - rows[1] == pytest.approx(60.0)
    t.write_line(":TRIG:BLOC:BRAN:LIM:CONS 3, SIDEWAYS, 0, 1, 7, 2")
    assert t.query(":SYST:ERR?").startswith("-224")


# --- the driver: the cut-off met on the instrument ---------------------------------------------


@pytest.mark.parametrize("current", [20.0, -20.0])
def test_a_step_left_alone_ends_at_its_cut_off_within_one_poll_interval_output_off(current) -> None:
    cutoff = 4.5 if current > 0 else 2.0
    step = ConstantCurrent(current, Cutoffs(voltage_V=cutoff), record_interval_s=60)
    runs = {}
    for kill in (False, True):
        clock = SimClock()
        sim = simulated_2450(clock)
        if current < 0:
            charge(clock, sim, 4.5)
        host = new_host(sim, "a", clock)
        host.initialise(reset=current > 0)
        run = host.start_step(step, 0.007, 1)
        if not kill:
            runs[kill] = (poll(clock, run), clock.now())
            continue
        before = poll(clock, run, clock.now() + 3600)  # an hour, then the host dies
        clock.set_time(clock.now() + 40 * 3600)  # nobody polls for 40 h
        sim.tick()
        assert not sim.output_on and sim.trigger_state == "IDLE"  # the instrument ended the step
        buffer = sim.buffers["defbuffer1"].readings
        assert buffer[-1].time_s - buffer[-2].time_s == pytest.approx(10.0)  # read every poll interval
        host2 = new_host(sim, "b", clock)
        host2.initialise(reset=False)
        first = next(p for p in before if p.substep == before[-1].substep)
        run2 = host2.reattach(
            step, 0.007, StepProgress(1, before[0].time_s, len(before), before[-1], first.time_s)
        )
        runs[kill] = (before + poll(clock, run2), None)
        assert run2.end_reason == "voltage"
    (reference, ended_at), (killed, _) = runs[False], runs[True]
    # the uninterrupted host saw the end at the reading the instrument ended on, and went on at once
    assert ended_at == pytest.approx(reference[-1].time_s, abs=1e-6)
    assert np.array([(p.time_s, p.capacity_mAh_g) for p in killed]) == pytest.approx(
        np.array([(p.time_s, p.capacity_mAh_g) for p in reference])
    )
    assert all(1.5 <= p.voltage_V <= 4.6 for p in killed)
    last = killed[-1]
    assert (last.voltage_V >= cutoff - 1e-6) if current > 0 else (last.voltage_V <= cutoff + 1e-6)


class _DropWhile:
    """A link that loses every reply while ``down`` (more than a poll's retries in a row)."""

    def __init__(self, endpoint) -> None:
        self.endpoint, self.down = endpoint, False

    def receive(self, data: bytes) -> None:
        self.endpoint.receive(data)

    def take_output(self) -> bytes:
        out = self.endpoint.take_output()
        return b"" if self.down else out


def test_a_poll_without_a_valid_reply_loses_and_doubles_nothing() -> None:
    step = ConstantCurrent(20, Cutoffs(duration_s=3600), record_interval_s=60)
    results = []
    for outage in (None, 5):
        clock = SimClock()
        sim = simulated_2450(clock)
        link = _DropWhile(sim)
        host = new_host(sim, "a", clock, link)
        host.instrument.retries = 2  # fewer timeouts to wait through in the test
        host.initialise()
        run = host.start_step(step, 0.007, 0)
        points, polls = [], 0
        while run.end_reason is None:
            clock.set_time(clock.now() + run.next_poll_delay_s())
            polls += 1
            link.down = polls == outage  # one poll gets no valid reply at all
            points += run.poll()[0]
            link.down = False
        results.append(points)
    reference, faulty = results
    assert [(p.time_s, p.voltage_V, p.capacity_mAh_g) for p in faulty] == [
        (p.time_s, p.voltage_V, p.capacity_mAh_g) for p in reference
    ]


def test_a_host_that_died_after_storing_the_cut_off_reading_ends_the_step_on_re_attaching() -> None:
    clock = SimClock()
    sim = simulated_2450(clock)
    step = ConstantCurrent(20, Cutoffs(voltage_V=4.5), record_interval_s=60)
    host = new_host(sim, "a", clock)
    host.initialise()
    run = host.start_step(step, 0.007, 1)
    points = poll(clock, run)  # up to the cut-off's reading, stored ...
    clock.set_time(clock.now() + 600)  # ... then the host died before the step's end was
    # journalled
    host2 = new_host(sim, "b", clock)
    host2.initialise(reset=False)
    run2 = host2.reattach(
        step, 0.007, StepProgress(1, points[0].time_s, len(points), points[-1], points[0].time_s)
    )
    assert run2.poll() == ([], True) and run2.end_reason == "voltage"  # nothing new, nothing doubled


# --- time and capacity cut-offs: a counter branch ends them on the instrument -----------------


@pytest.mark.parametrize(
    "cutoffs", [Cutoffs(capacity_mAh_g=100), Cutoffs(duration_s=5 * 3600)], ids=["capacity", "time"]
)
def test_a_time_or_capacity_limited_current_left_alone_stops_at_its_cut_off_on_the_instrument(
    cutoffs,
) -> None:
    step = ConstantCurrent(20, cutoffs, record_interval_s=60)  # 100 mAh/g at 20 mA/g: 5 h
    clock = SimClock()
    sim = simulated_2450(clock)
    host = new_host(sim, "a", clock)
    host.initialise()
    run = host.start_step(step, 0.007, 0)
    before = poll(clock, run, clock.now() + 600)  # ten minutes, then the host dies
    clock.set_time(clock.now() + 40 * 3600)  # nobody polls for 40 h
    sim.tick()
    assert not sim.output_on and sim.trigger_state == "IDLE"  # the instrument ended the step
    buffer = sim.buffers["defbuffer1"].readings
    charged_mAh_g = 20 * (buffer[-1].time_s - buffer[0].time_s) / 3600
    assert charged_mAh_g == pytest.approx(100, abs=20 * 60 / 3600)  # within one reading
    assert buffer[-1].value < 4.6  # nowhere near the cell's limit: it stopped on the count
    host2 = new_host(sim, "b", clock)
    host2.initialise(reset=False)
    run2 = host2.reattach(
        step, 0.007, StepProgress(0, before[0].time_s, len(before), before[-1], before[0].time_s)
    )
    after = poll(clock, run2)
    assert run2.end_reason == ("capacity" if cutoffs.capacity_mAh_g else "time")
    assert after[-1].time_s - before[0].time_s == pytest.approx(5 * 3600)  # the last reading on it
    assert after[-1].capacity_mAh_g == pytest.approx(100)
