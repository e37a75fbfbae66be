"""Instrument-side protection on the Keithley 2450: a host that dies mid-step never drives a cell
past its cut-off or its limits, on charge as on discharge (issue 14, deliverable 1).

The 2450's source limits are symmetric magnitudes: a current source sinking current from a cell
(a discharge) is bounded only by -VLIM, far below 0 V. The simulator models that; the driver
therefore discharges through a voltage source at the cut-off with the discharge current as its
current limit.
"""

from __future__ import annotations

import math

import pytest

from drivers.base import Point, SafetyLimitError, StepProgress
from drivers.clock import SimClock
from drivers.device import PotentiostatChannel
from drivers.keithley2450 import Keithley2450, Keithley2450Potentiostat
from drivers.techniques import ConstantCurrent, ConstantVoltage, Cutoffs
from drivers.transport import InProcessTransport


@pytest.fixture
def charged():
    """A 7 mg cell charged to 4.8 V on a simulated 2450, and the driver's host."""
    from simulators.cell import Cell, Sample
    from simulators.keithley2450 import SimulatedKeithley2450
    from simulators.material import load_material

    clock = SimClock()
    cell = Cell(Sample(load_material(None)), active_mass_g=0.007)
    instrument = SimulatedKeithley2450(cell, clock)
    t = InProcessTransport(instrument, name="sim2450")
    host = Keithley2450Potentiostat(Keithley2450(t, "smu"), clock, poll_interval_s=10)
    host.initialise()
    host.set_cell_limits(1.0, 4.95)
    run = host.start_step(ConstantCurrent(20, Cutoffs(voltage_V=4.8)), 0.007, 0)
    _run_for(clock, run, 30 * 3600)
    assert run.end_reason == "voltage"
    return clock, cell, instrument, t, host


def _run_for(clock: SimClock, run, seconds: float) -> list[Point]:
    points: list[Point] = []
    end = clock.now() + seconds
    while clock.now() < end and run.end_reason is None:
        clock.set_time(min(end, clock.now() + run.next_poll_delay_s()))
        points += run.poll()[0]
    return points


def test_simulated_2450_current_source_sinks_a_cell_through_0_V_as_the_real_one_does(charged) -> None:
    # VLIM is a magnitude: sinking 140 uA with VLIM 5 V the output may go down to -5 V. This is
    # why the driver never discharges through a current source.
    clock, cell, _, t, _ = charged
    for line in (":SOUR:FUNC CURR", ":SOUR:CURR -1.4e-4", ":SOUR:CURR:VLIM 5", ":OUTP ON"):
        t.write_line(line)
    clock.set_time(clock.now() + 40 * 3600)
    assert float(t.query(":MEAS:VOLT?")) == pytest.approx(-5.0, abs=0.01)
    assert t.query(":SOUR:CURR:VLIM:TRIP?") == "1"


def test_simulated_2450_voltage_source_sinks_at_most_its_current_limit(charged) -> None:
    clock, cell, _, t, _ = charged
    for line in (
        ":SOUR:FUNC VOLT",
        ':SENS:FUNC "CURR"',
        ":SOUR:VOLT:ILIM 1.4e-4",
        ":SOUR:VOLT 1.85",
        ":OUTP ON",
    ):
        t.write_line(line)
    readings = []
    for _ in range(40):  # 80 h: the constant-current part, then the hold at 1.85 V
        clock.set_time(clock.now() + 2 * 3600)
        readings.append([float(x) for x in t.query(':READ? "defbuffer1", READ, SOUR').split(",")])
    currents = [r[0] for r in readings]
    voltages = [r[1] for r in readings]
    assert all(-1.4e-4 - 1e-12 <= i <= 0 for i in currents)  # never more than ILIM, always sinking
    assert currents[0] == pytest.approx(-1.4e-4) and voltages[0] > 3.0  # limited: constant current
    assert voltages[-1] == pytest.approx(1.85) and abs(currents[-1]) < 1e-5  # held at the set voltage
    assert min(voltages) >= 1.85 - 1e-9 and cell.voltage_V() >= 1.85 - 1e-6


@pytest.mark.parametrize("cutoff", [1.85, None])
def test_a_discharge_left_alone_by_a_dead_host_stops_at_the_cut_off_or_voltage_min(charged, cutoff) -> None:
    clock, cell, instrument, t, host = charged
    step = ConstantCurrent(-20, Cutoffs(voltage_V=cutoff, capacity_mAh_g=None if cutoff else 400))
    run = host.start_step(step, 0.007, 1)
    points = _run_for(clock, run, 3600)  # an hour of discharge, then the host dies
    assert run.end_reason is None and points[-1].current_A == pytest.approx(-1.4e-4)
    floor = cutoff or 1.0
    for _ in range(7 * 24):  # a week without a host
        clock.set_time(clock.now() + 3600)
        assert float(t.query(":MEAS:VOLT?")) >= floor - 1e-6
        assert cell.voltage_V() >= floor - 1e-6  # the cell itself, not only the reading
    assert not instrument.output_on  # its trigger model ended the step at the floor: relay open


def test_a_charge_left_alone_stops_at_voltage_max_when_it_has_no_voltage_cut_off(charged) -> None:
    clock, cell, instrument, t, host = charged
    host.start_step(ConstantCurrent(-20, Cutoffs(voltage_V=3.0)), 0.007, 1)
    clock.set_time(clock.now() + 10 * 3600)
    host.start_step(ConstantCurrent(20, Cutoffs(capacity_mAh_g=900)), 0.007, 2)
    clock.set_time(clock.now() + 80 * 3600)
    assert t.query(":TRIG:STAT?").startswith("IDLE")  # its trigger model ran to its end
    readings = instrument.buffers["defbuffer1"].readings
    assert max(r.value for r in readings) == pytest.approx(4.95, abs=1e-3)  # charged up to voltage_max
    assert not instrument.output_on and float(t.query(":MEAS:VOLT?")) < 4.95  # and ended there: open circuit


def test_the_host_ends_a_capacity_discharge_at_voltage_min_as_a_safety_fault(charged) -> None:
    clock, _, instrument, _, host = charged
    run = host.start_step(ConstantCurrent(-20, Cutoffs(capacity_mAh_g=400)), 0.007, 1)
    with pytest.raises(SafetyLimitError, match="reached its voltage_min of 1 V"):
        _run_for(clock, run, 40 * 3600)


def test_discharge_capacity_and_cut_off_through_the_voltage_source(charged) -> None:
    clock, _, _, _, host = charged
    run = host.start_step(ConstantCurrent(-20, Cutoffs(voltage_V=1.85)), 0.007, 1)
    points = _run_for(clock, run, 40 * 3600)
    assert run.end_reason == "voltage"
    assert all(p.voltage_V >= 1.85 - 1e-9 for p in points)
    assert all(p.current_A < 0 for p in points[1:])
    assert 200 < -points[-1].capacity_mAh_g < 300  # the paper's ~250 mAh/g after a 4.8 V charge


@pytest.mark.parametrize(
    "step",
    [ConstantVoltage(5.2, Cutoffs(duration_s=60)), ConstantVoltage(0.5, Cutoffs(duration_s=60)),
     ConstantCurrent(20, Cutoffs(voltage_V=5.0)), ConstantCurrent(-20, Cutoffs(voltage_V=0.8))],
)  # fmt: skip
def test_levels_outside_the_cells_limits_are_refused_before_the_output_moves(charged, step) -> None:
    _, _, instrument, t, host = charged
    source = t.query(":SOUR:FUNC?")
    with pytest.raises(ValueError, match=r"outside the cell's limits 1-4.95 V"):
        host.start_step(step, 0.007, 1)
    assert not instrument.output_on and t.query(":SOUR:FUNC?") == source


class _DeadHostAftermath:
    """Test double of a driver whose instrument was left sinking current by an old host: on
    re-attach, the first poll finds the cut-off long passed, at -17.6 V (the issue's record)."""

    name = "smu-double"
    poll_interval_s = 10.0

    def __init__(self) -> None:
        self.safe = False

    def set_cell_limits(self, voltage_min_V: float, voltage_max_V: float) -> None:
        pass

    def reattach(self, step, mass, progress):
        driver = self

        class Run:
            end_reason = None
            started_at_s = progress.started_at_s
            missing_points = 0

            def next_poll_delay_s(self) -> float:
                return 10.0

            def poll(self):
                self.end_reason = "voltage"
                return [Point(progress.last.time_s + 7200, -17.6, -1.4e-4, -300.0)], True

            def abort(self) -> None:
                driver.safe = True

        return Run()

    def safe_state(self) -> None:
        self.safe = True


def test_a_point_outside_the_limits_found_on_resume_is_a_safety_fault_never_done() -> None:
    clock = SimClock()
    driver = _DeadHostAftermath()
    channel = PotentiostatChannel(name="K1", driver=driver, clock=clock, active_mass_g=0.005,
                                  voltage_min_V=1.0, voltage_max_V=4.95)  # fmt: skip
    last = Point(clock.now(), 3.5, -1.4e-4, -100.0)
    progress = StepProgress(3, clock.now() - 3600, 360, last, clock.now() - 3600)
    channel.prepare(ConstantCurrent(-20, Cutoffs(voltage_V=1.85)), resume=progress)
    channel.kickoff()
    done = channel.complete()
    clock.advance_by(10)
    assert done.done
    assert channel.end_reason == "limit"
    assert isinstance(channel.fault, SafetyLimitError)
    assert "-17.6000 V outside the safety limits 1-4.95 V on re-attaching to step 3" in str(channel.fault)
    assert driver.safe and not math.isnan(channel.step_started_s)
