"""EmStat4 driver end to end on the simulated EmStat4: in-process, over TCP, host loss."""

from __future__ import annotations

import os
import select
import socket
import socketserver
import threading
from collections.abc import Callable, Iterator

import pytest

from drivers.base import Point, StepProgress
from drivers.clock import SimClock
from drivers.emstat4 import EmStat4Driver, EmStat4StepRun
from drivers.techniques import GITT, ConstantCurrent, ConstantVoltage, Cutoffs, Loop, Rest, Sweep
from drivers.transport import InProcessTransport, InstrumentError, SerialTransport
from simulators.cell import Cell, Sample
from simulators.emstat4 import SimulatedEmStat4
from simulators.material import load_material

MASS_G = 0.007


class Rig:
    def __init__(self, sample_interval_s: float = 1.0) -> None:
        self.clock = SimClock()
        self.cell = Cell(Sample(load_material(None)), active_mass_g=MASS_G)
        self.sim = SimulatedEmStat4(self.cell, self.clock)
        self.driver = EmStat4Driver(
            InProcessTransport(self.sim), self.clock, poll_interval_s=600.0,
            sample_interval_s=sample_interval_s,
        )  # fmt: skip

    def run(self, run: EmStat4StepRun, limit_s: float = 3e7) -> list[Point]:
        """Poll every poll_interval_s of simulated time until the step ends."""
        points: list[Point] = []
        end = self.clock.now() + limit_s
        state = {"done": False}

        def poll() -> None:
            new, state["done"] = run.poll()
            points.extend(new)
            if not state["done"]:
                self.clock.call_later(self.driver.poll_interval_s, poll)

        self.clock.call_later(self.driver.poll_interval_s, poll)
        while not state["done"] and self.clock.advance_to_next(limit_s=end):
            pass
        assert state["done"], "step did not finish"
        return points


@pytest.fixture
def rig() -> Rig:
    return Rig()


def test_housekeeping(rig: Rig) -> None:
    assert rig.driver.firmware_version().endswith("*")
    assert rig.driver.serial_number() == "ES4HR25SIM001"
    assert rig.driver.abort_script() is False  # Z!0006: nothing running


def test_cc_charge_stops_on_instrument_at_voltage_cutoff(rig: Rig) -> None:
    start = rig.clock.now()
    run = rig.driver.start_step(ConstantCurrent(100, Cutoffs(voltage_V=4.2)), MASS_G, 0)
    points = rig.run(run)
    assert run.end_reason == "voltage"
    assert points[-1].voltage_V >= 4.2
    assert points[-2].voltage_V < 4.2
    # instrument time stamps: the first sample (1 s), then every record interval (10 s) after
    # it, the last at the cut-off
    assert [p.time_s - start for p in points[:3]] == pytest.approx([1, 11, 21])
    # the instrument's own capacity integral equals I * t at constant current
    last = points[-1]
    assert last.capacity_mAh_g == pytest.approx(100 * (last.time_s - start) / 3600, rel=1e-6)
    assert rig.cell.current_A == 0.0  # on_finished: cell_off


def test_capacity_cutoff_overshoot_is_within_one_sample(rig: Rig) -> None:
    run = rig.driver.start_step(ConstantCurrent(20, Cutoffs(capacity_mAh_g=10)), MASS_G, 0)
    points = rig.run(run)
    assert run.end_reason == "capacity"
    assert 10 <= points[-1].capacity_mAh_g <= 10 + 20 * 1.0 / 3600 + 1e-9


def test_discharge_time_cutoff(rig: Rig) -> None:
    run = rig.driver.start_step(ConstantCurrent(-50, Cutoffs(duration_s=600)), MASS_G, 0)
    points = rig.run(run)
    assert run.end_reason == "time"
    assert len(points) == 61  # the first sample, then one per 10 s record interval
    assert points[-1].capacity_mAh_g == pytest.approx(-50 * 600 / 3600, rel=1e-6)
    assert all(p.current_A < 0 for p in points)


def test_voltage_hold_ends_on_current(rig: Rig) -> None:
    charge = rig.driver.start_step(ConstantCurrent(100, Cutoffs(voltage_V=4.1)), MASS_G, 0)
    rig.run(charge)
    hold = ConstantVoltage(4.1, Cutoffs(current_mA_g=20, duration_s=36000), record_interval_s=30)
    run = rig.driver.start_step(hold, MASS_G, 1)
    points = rig.run(run)
    assert run.end_reason == "current"
    assert abs(points[-1].current_A) < 20 * MASS_G / 1000
    assert all(p.voltage_V == pytest.approx(4.1) for p in points)


def test_rest_ends_on_dvdt(rig: Rig) -> None:
    rig.run(rig.driver.start_step(ConstantCurrent(100, Cutoffs(duration_s=1800)), MASS_G, 0))
    run = rig.driver.start_step(Rest(86400, record_interval_s=60, dvdt_V_s=1e-6), MASS_G, 1)
    points = rig.run(run)
    assert run.end_reason == "dvdt"
    assert points[-1].time_s - points[0].time_s < 86400 - 60
    assert abs(points[-1].voltage_V - points[-2].voltage_V) < 60e-6
    assert all(p.current_A == 0 for p in points)


def test_cyclic_sweep_counts_scans(rig: Rig) -> None:
    sweep = Sweep(3.7, 4.0, 3.5, scan_rate_mV_s=1.0, cycles=2, record_interval_s=10)
    run = rig.driver.start_step(sweep, MASS_G, 0)
    points = rig.run(run)
    assert run.end_reason == "count"
    assert {p.substep for p in points} == {0, 1}
    assert max(p.voltage_V for p in points) == pytest.approx(4.0, abs=1e-6)
    assert min(p.voltage_V for p in points) == pytest.approx(3.5, abs=1e-6)


def test_gitt_with_200_hour_rests(rig: Rig) -> None:
    step = GITT(current_mA_g=20, pulse_s=1800, rest_s=200 * 3600, cutoff_voltage_V=4.8,
                max_pulses=3)  # fmt: skip
    rig.driver.poll_interval_s = 3600 * 24
    start = rig.clock.now()
    run = rig.driver.start_step(step, MASS_G, 0)
    points = rig.run(run)
    assert run.end_reason == "count"
    assert sorted({p.substep for p in points}) == [0, 1, 2, 3, 4, 5]
    assert points[-1].time_s - start == pytest.approx(3 * (1800 + 720000))
    assert points[-1].capacity_mAh_g == pytest.approx(3 * 10.0, rel=1e-6)
    rests = [p for p in points if p.substep % 2]
    assert all(p.current_A == 0 for p in rests)


def test_gitt_stops_at_voltage_cutoff() -> None:
    rig = Rig(sample_interval_s=10.0)
    step = GITT(current_mA_g=200, pulse_s=3600, rest_s=600, cutoff_voltage_V=4.0, max_pulses=50)
    run = rig.driver.start_step(step, MASS_G, 0)
    points = rig.run(run)
    assert run.end_reason == "voltage"
    assert points[-1].voltage_V >= 4.0
    assert points[-1].substep % 2 == 0  # ended inside a pulse


def test_loop_runs_count_times(rig: Rig) -> None:
    loop = Loop(
        steps=(ConstantCurrent(200, Cutoffs(duration_s=300)), Rest(300, record_interval_s=60)),
        count=3,
    )
    run = rig.driver.start_step(loop, MASS_G, 0)
    points = rig.run(run)
    assert run.end_reason == "count"
    assert sorted({p.substep for p in points}) == list(range(6))
    # capacity restarts with every substep
    assert max(p.capacity_mAh_g for p in points) == pytest.approx(200 * 300 / 3600, rel=1e-6)


def test_abort_leaves_cell_at_open_circuit(rig: Rig) -> None:
    run = rig.driver.start_step(ConstantCurrent(100, Cutoffs(duration_s=7200)), MASS_G, 0)
    rig.clock.set_time(rig.clock.now() + 100)
    first, _ = run.poll()
    run.abort()
    rest, done = run.poll()
    assert done and run.end_reason == "aborted"
    assert len(first) == 10
    assert rig.sim.cell_is_on is False
    rig.clock.set_time(rig.clock.now() + 60)
    rig.sim.take_output()
    assert rig.cell.current_A == 0.0  # the cell has been resting since the abort
    rig.driver.safe_state()  # idempotent with nothing running
    assert rig.driver.abort_script() is False


def test_out_of_range_current_raises_before_anything_is_sent(rig: Rig) -> None:
    with pytest.raises(ValueError, match="largest current range"):
        rig.driver.start_step(ConstantCurrent(20000, Cutoffs(duration_s=60)), MASS_G, 0)
    assert rig.sim.scripts_run == 0


def test_runtime_error_is_reported_with_code(rig: Rig) -> None:
    rig.driver.transport.write(b"e\nvar e\nset_pgstat_mode 3\ncell_on\nmeas_loop_ocp e 1 10\nendloop\n\n")
    from drivers.emstat4 import EmStat4StepRun as Run
    from drivers.emstat4.methodscript import CompiledStep

    run = Run(rig.driver, CompiledStep((), "x", "time", 1.0), rig.clock.now())
    with pytest.raises(InstrumentError, match="0x0014.*OCP"):
        run.poll()
    rig.clock.set_time(rig.clock.now() + 1)
    rig.driver._read_lines()
    assert rig.sim.cell_is_on is False  # the driver switched the cell off afterwards


def _reference_points(step: Rest | GITT, horizon_s: float) -> list[Point]:
    rig = Rig()
    run = rig.driver.start_step(step, MASS_G, 7)
    points: list[Point] = []
    done = False
    while not done:
        rig.clock.set_time(rig.clock.now() + horizon_s)
        new, done = run.poll()
        points += new
    return points


def test_reattach_in_process_loses_and_duplicates_nothing(rig: Rig) -> None:
    step = Rest(36000, record_interval_s=60)
    reference = _reference_points(step, 36000)
    run = rig.driver.start_step(step, MASS_G, 7)
    rig.clock.set_time(rig.clock.now() + 5000)
    before, _ = run.poll()
    started = run.started_at_s
    # the host dies; the instrument keeps running and buffers; a new process reattaches
    rig.clock.set_time(rig.clock.now() + 12000)
    driver2 = EmStat4Driver(InProcessTransport(rig.sim), rig.clock)
    run2 = driver2.reattach(step, MASS_G, StepProgress(7, started, len(before)))
    rig.clock.set_time(rig.clock.now() + 40000)
    after, done = run2.poll()
    assert done and run2.end_reason == "time"
    assert run2.missing_points == 0
    assert before + after == reference


def test_reattach_skips_points_already_stored_and_counts_gaps(rig: Rig) -> None:
    step = Rest(3600, record_interval_s=60)
    run = rig.driver.start_step(step, MASS_G, 1)
    rig.clock.set_time(rig.clock.now() + 600)
    seen, _ = run.poll()
    # pretend only 7 of the 10 points were stored before the crash: 3 are gone for good
    driver2 = EmStat4Driver(InProcessTransport(rig.sim), rig.clock)
    run2 = driver2.reattach(step, MASS_G, StepProgress(1, run.started_at_s, 7))
    rig.clock.set_time(rig.clock.now() + 3600)
    after, done = run2.poll()
    assert done and run2.missing_points == 3 and len(after) == 50
    assert after[0].time_s == seen[-1].time_s + 60


def test_reattach_rejects_another_script(rig: Rig) -> None:
    rig.driver.transport.write(b'e\nsend_string "relaxlab:other:1:0"\n\n')
    run = rig.driver.reattach(Rest(60), MASS_G, StepProgress(1, rig.clock.now(), 0))
    with pytest.raises(InstrumentError, match="another script"):
        run.poll()


def test_reattach_to_an_idle_instrument_says_the_step_is_gone(rig: Rig) -> None:
    step = Rest(600, record_interval_s=60)
    run = rig.driver.start_step(step, MASS_G, 3)
    rig.clock.set_time(rig.clock.now() + 700)
    run.poll()  # the host read everything, to the end: nothing is left on the instrument
    with pytest.raises(InstrumentError, match="no longer on the instrument"):
        rig.driver.reattach(step, MASS_G, StepProgress(3, run.started_at_s, 10))


def test_reattach_keeps_output_buffered_while_checking_the_script_runs(rig: Rig) -> None:
    step = Rest(3600, record_interval_s=60)
    reference = _reference_points(step, 3600)
    run = rig.driver.start_step(step, MASS_G, 2)
    rig.clock.set_time(rig.clock.now() + 600)
    # the host died before reading anything after the identifier
    driver2 = EmStat4Driver(InProcessTransport(rig.sim), rig.clock)
    run2 = driver2.reattach(step, MASS_G, StepProgress(2, run.started_at_s, 0))
    rig.clock.set_time(rig.clock.now() + 3600)
    points, done = run2.poll()
    assert done and run2.missing_points == 0 and points == reference


# ----------------------------------------------------------------------------- over TCP


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def _serve(endpoint: SimulatedEmStat4) -> tuple[_Server, int]:
    lock = threading.Lock()

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            sock: socket.socket = self.request
            while True:
                readable, _, _ = select.select([sock], [], [], 0.002)
                with lock:
                    if readable:
                        data = sock.recv(65536)
                        if not data:
                            return
                        endpoint.receive(data)
                    out = endpoint.take_output()
                if out:
                    sock.sendall(out)

    server = _Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


def _poll_until(
    run: EmStat4StepRun, transport: SerialTransport, stop: Callable[[list[Point], bool], bool]
) -> Iterator[Point]:
    points: list[Point] = []
    done = False
    for _ in range(2000):
        new, done = run.poll()
        points += new
        if stop(points, done):
            return iter(points)
        select.select([transport.port._socket], [], [], 2.0)  # wait for bytes, not for time
    raise AssertionError("no progress over TCP")


@pytest.mark.tcp
@pytest.mark.skipif(os.environ.get("RELAXLAB_NO_TCP") == "1", reason="TCP disabled")
def test_over_tcp_with_disconnect_in_the_middle_of_a_rest() -> None:
    rig = Rig()
    step = Rest(7200, record_interval_s=60)
    reference = _reference_points(step, 7200)
    server, port = _serve(rig.sim)
    try:
        t1 = SerialTransport(f"socket://127.0.0.1:{port}", timeout_s=5.0)
        driver = EmStat4Driver(t1, rig.clock)
        assert driver.serial_number() == "ES4HR25SIM001"
        run = driver.start_step(step, MASS_G, 7)
        rig.clock.set_time(rig.clock.now() + 1800)
        before = list(_poll_until(run, t1, lambda p, d: len(p) >= 30))
        t1.close()  # host loss in the middle of the rest
        rig.clock.set_time(rig.clock.now() + 3000)
        t2 = SerialTransport(f"socket://127.0.0.1:{port}", timeout_s=5.0)
        driver2 = EmStat4Driver(t2, rig.clock)
        run2 = driver2.reattach(step, MASS_G, StepProgress(7, run.started_at_s, len(before)))
        rig.clock.set_time(rig.clock.now() + 3000)
        after = list(_poll_until(run2, t2, lambda p, d: d))
        t2.close()
    finally:
        server.shutdown()
        server.server_close()
    assert run2.end_reason == "time" and run2.missing_points == 0
    assert before + after == reference
