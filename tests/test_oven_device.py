"""The ophyd Oven device on the simulated controller, driven by a SimClock."""

from __future__ import annotations

import pytest

from drivers.clock import SimClock
from drivers.eurotherm import EurothermDriver
from drivers.oven import Oven, OverTemperatureError
from simulators.eurotherm import SimulatedEurotherm


def make_oven(**kwargs) -> tuple[Oven, SimulatedEurotherm, SimClock]:
    clock = SimClock()
    sim = SimulatedEurotherm(clock)
    oven = Oven(EurothermDriver.in_process(sim, name="glass oven"), clock, **kwargs)
    return oven, sim, clock


def run_until_done(clock: SimClock, status, limit_s: float = 4 * 3600) -> None:
    end = clock.now() + limit_s
    while not status.done and clock.now() < end:
        assert clock.advance_to_next(), "nothing scheduled while waiting"


def test_set_finishes_only_after_settling_for_the_settle_time():
    oven, sim, clock = make_oven(settle_time_s=120.0, tolerance_C=0.5, poll_interval_s=10.0)
    status = oven.set(140.0)
    assert not status.done
    polls = []  # (time, displayed PV) at every clock step while waiting
    while not status.done:
        clock.advance_to_next()
        polls.append((clock.now(), round(sim.oven.air_C, 1)))
    assert status.success
    finish = clock.now()
    # The last run of in-band polls began at least 120 s (and less than one poll more)
    # before the status finished; before that run the oven was out of band.
    run_start = finish
    for t, pv in reversed(polls):
        if abs(pv - 140.0) > 0.5:
            break
        run_start = t
    assert 120.0 <= finish - run_start < 130.0
    assert run_start > polls[0][0]  # it was out of band at first (heating from 25 C)
    assert abs(oven.temperature.get() - 140.0) <= 0.5


def test_ramp_rate_is_configuration_and_slows_heating():
    fast, _, fast_clock = make_oven()
    slow, _, slow_clock = make_oven()
    slow.ramp_rate.set(2.0)
    assert slow.read_configuration()["oven_ramp_rate"]["value"] == 2.0
    times = []
    for oven, clock in ((fast, fast_clock), (slow, slow_clock)):
        t0 = clock.now()
        status = oven.set(120.0)
        run_until_done(clock, status)
        assert status.success
        times.append(clock.now() - t0)
    assert times[1] >= (120.0 - 25.0) / 2.0 * 60.0  # 2 C/min from 25 C takes 47.5 min
    assert times[0] < times[1]


def test_readings_are_stamped_with_the_simulated_clock():
    oven, _, clock = make_oven()
    clock.advance_by(1234.0)
    reading = oven.read()
    assert reading["oven_temperature"]["timestamp"] == clock.now()
    assert reading["oven_temperature"]["value"] == 25.0
    assert set(reading) == {"oven_temperature", "oven_working_setpoint", "oven_output_power"}
    assert oven.hints == {"fields": ["oven_temperature"]}


def test_set_outside_limits_raises_before_anything_moves():
    oven, sim, _ = make_oven(over_temperature_C=180.0)
    with pytest.raises(ValueError, match="over-temperature"):
        oven.set(185.0)
    with pytest.raises(ValueError, match="glass oven.*target_setpoint"):
        oven.set(-10.0)
    assert sim.oven.settings.target_setpoint_C == 25.0


def test_over_temperature_trips_to_safe_state_and_fails_the_status():
    # A 5 C/min ramp to 140 C overshoots by a few degrees: a 141 C limit trips.
    oven, sim, clock = make_oven(over_temperature_C=141.0, safe_setpoint_C=20.0)
    oven.ramp_rate.set(5.0)
    status = oven.set(140.0)
    run_until_done(clock, status)
    assert status.done and not status.success
    with pytest.raises(OverTemperatureError, match=r"oven \(glass oven\).*limit 141.0 C.*safe state"):
        status.wait(0)
    driver = oven.driver
    assert driver.read_manual()
    assert driver.read_output_power_pct() == 0.0
    assert driver.read_target_setpoint_C() == 20.0
    assert clock.pending() == 0  # polling stopped
    assert not oven.trigger().success
    with pytest.raises(OverTemperatureError):
        oven.set(100.0)
    clock.advance_by(1800)  # cooled down meanwhile
    oven.reset_trip()
    assert not oven.set(100.0).done  # heating again, no trip


def test_over_temperature_during_a_hold_fails_the_next_trigger():
    oven, sim, clock = make_oven(over_temperature_C=150.0)
    status = oven.set(100.0)
    run_until_done(clock, status)
    assert status.success and oven.trigger().success
    sim.oven.air_C = sim.oven.heater_C = 200.0  # a fault (stuck relay) heats the chamber
    clock.advance_to_next()  # the watch poll notices
    assert oven.tripped is not None
    assert not oven.trigger().success
    assert oven.driver.read_manual()


def test_stop_is_safe_and_idempotent_and_fails_a_pending_set():
    oven, sim, clock = make_oven()
    status = oven.set(90.0)
    clock.advance_by(60)
    oven.stop()
    oven.stop()
    assert status.done and not status.success
    assert sim.oven.settings.manual and sim.oven.output_pct == 0.0
    assert sim.oven.settings.target_setpoint_C == 25.0
    assert clock.pending() == 0
    clock.advance_by(3 * 3600)
    assert oven.temperature.get() == pytest.approx(25.0, abs=0.5)


def test_a_new_set_supersedes_the_pending_one():
    oven, _, clock = make_oven()
    first = oven.set(90.0)
    clock.advance_by(30)
    second = oven.set(60.0)
    assert first.done and not first.success
    run_until_done(clock, second)
    assert second.success
    assert oven.temperature.get() == pytest.approx(60.0, abs=1.0)


def test_set_after_stop_returns_to_automatic_control():
    oven, sim, clock = make_oven()
    oven.stop()
    status = oven.set(70.0)
    run_until_done(clock, status)
    assert status.success and not sim.oven.settings.manual


def test_watch_interval_slows_polling_once_settled():
    oven, _, clock = make_oven(watch_interval_s=60.0, instrument_limit=False)  # the host's watch only
    status = oven.set(80.0)
    run_until_done(clock, status)
    polls_at_settle = oven.polls
    clock.advance_by(3600)
    assert oven.polls - polls_at_settle == 60


def test_watch_stretches_while_nothing_changes_and_comes_back_when_it_does():
    # The host's own watch (no limit on the controller) reads the process value.
    oven, sim, clock = make_oven(watch_interval_s=10.0, watch_max_interval_s=60.0, instrument_limit=False)
    status = oven.set(80.0)
    run_until_done(clock, status)
    clock.advance_by(3600)  # settled within tolerance first, then to the last display digit
    polls = oven.polls
    clock.advance_by(3600)
    assert oven.polls - polls == 60  # a settled oven reads the same: every 60 s, not every 10 s
    sim.oven.set_manual(True)  # a fault behind the driver's back: the heater stuck at 60 %
    sim.oven.set_manual_output(60.0)
    polls = oven.polls
    clock.advance_by(600)
    assert oven.polls - polls >= 50  # the first changed reading brings the watch back to 10 s
    # Without the limit on the controller, by default it does not stretch.
    steady, _, steady_clock = make_oven(watch_interval_s=10.0, instrument_limit=False)
    status = steady.set(80.0)
    run_until_done(steady_clock, status)
    polls = steady.polls
    steady_clock.advance_by(3600)
    assert steady.polls - polls == 360


def test_a_reading_takes_the_triggered_values_and_a_write_forgets_them():
    oven, sim, clock = make_oven()
    oven.set(120.0)
    clock.advance_by(300.0)
    frames = sim.frames
    oven.trigger()
    reading = oven.read()
    assert sim.frames - frames == 2  # one block read (registers 1..3) and register 5, for all three
    assert reading["oven_temperature"]["value"] == round(sim.oven.air_C, 1)
    assert reading["oven_temperature"]["timestamp"] == clock.now()
    oven.stop()  # manual, 0 % output, set point lowered: same clock time, new values
    assert oven.read()["oven_output_power"]["value"] == 0.0
    assert oven.read()["oven_working_setpoint"]["value"] == 25.0
