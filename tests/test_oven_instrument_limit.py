"""The over-temperature limit held by the controller itself (Eurotherm alarm 1, its relay wired to
cut the heater): the simulator's registers on the wire, and an oven whose host stops watching."""

from __future__ import annotations

import pytest

from drivers.clock import SimClock
from drivers.eurotherm import EurothermDriver
from drivers.oven import ARMED_WATCH_MAX_S, Oven, OverTemperatureError
from simulators.eurotherm import SimulatedEurotherm
from tests.protocol import modbus_frame


def exchange(sim: SimulatedEurotherm, clock: SimClock, table: list[tuple[float, str, str]]) -> None:
    """(seconds to let pass first, request body, expected reply body): CRCs from tests/protocol.py."""
    for wait_s, request, reply in table:
        clock.set_time(clock.now() + wait_s)
        sim.receive(modbus_frame(request))
        assert sim.take_output() == modbus_frame(reply), f"after {request}"


@pytest.fixture
def clock() -> SimClock:
    return SimClock()


def test_alarm_1_trips_latches_cuts_the_heater_and_acknowledges_only_below_its_threshold(clock):
    sim = SimulatedEurotherm(clock)
    exchange(sim, clock, [
        (0, "0103000D0001", "0103020FA0"),  # alarm 1 set point (13) starts at the high SP limit, 400.0 C
        (0, "0103004A0001", "0103020000"),  # fast status byte (74): no alarm, automatic
        (0, "0106000205DC", "0106000205DC"),  # target set point 150.0 C
        (3 * 3600, "0103004A0001", "0103020000"),  # settled at 150 C: still no alarm
        (0, "0106000D03E8", "0106000D03E8"),  # alarm 1 set point <- 100.0 C, below the oven: trips at once
        (0, "0103000D0001", "01030203E8"),  # reads back 100.0 C
        (0, "0103004A0001", "0103020001"),  # bit 0: alarm 1 active
        (1, "010300030001", "0103020000"),  # output 0.0 %: the relay holds the heater off
        (0, "010601120001", "010601120001"),  # acknowledge all alarms (274) ...
        (0, "0103004A0001", "0103020001"),  # ... refused while the oven is above the threshold
        (3 * 3600, "0103004A0001", "0103020001"),  # cooled with the heater cut: still latched
        (0, "010601120001", "010601120001"),  # acknowledged below the threshold ...
        (0, "0103004A0001", "0103020000"),  # ... resets it
        (0, "0106000D2710", "018603"),  # a threshold of 1000.0 C is outside -199.9..999.9: exception 03
    ])  # fmt: skip
    assert sim.oven.air_C < 100.0
    assert sim.oven.settings.target_setpoint_C == 150.0  # the alarm cut the heater, not the set point


def test_the_3200_status_word_carries_the_same_alarm_and_manual_bits(clock):
    sim = SimulatedEurotherm(clock, series="3200")
    exchange(sim, clock, [
        (0, "010601110001", "010601110001"),  # manual (273 <- 1)
        (0, "010600030384", "010600030384"),  # manual output 90.0 %
        (0, "0106000D01F4", "0106000D01F4"),  # alarm 1 at 50.0 C
        (1800, "0103004B0001", "0103020011"),  # status word (75): alarm 1 + manual
        (0, "010300040001", "0103020000"),  # working output 0.0 % while latched
    ])  # fmt: skip
    assert sim.oven.air_C < 51.0


def make_oven(clock: SimClock, sim: SimulatedEurotherm, **kwargs) -> Oven:
    return Oven(EurothermDriver.in_process(sim, name="glass oven"), clock, **kwargs)


def settle(clock: SimClock, status) -> None:
    while not status.done:
        assert clock.advance_to_next(), "nothing scheduled while settling"
    assert status.success


def test_the_limit_is_armed_on_the_controller_before_heating(clock):
    sim = SimulatedEurotherm(clock)
    oven = make_oven(clock, sim, over_temperature_C=150.0)
    assert sim.oven.alarm_high_C == 400.0
    status = oven.set(100.0)
    assert sim.oven.alarm_high_C == 150.0 and oven.armed_limit_C == 150.0
    settle(clock, status)
    oven.over_temperature_C.put(140.0)  # a new limit is not on the controller yet: the watch is not stretched
    assert oven.watch_max_interval_s == oven.watch_interval_s.get()
    oven.set(90.0)
    assert sim.oven.alarm_high_C == 140.0 and oven.watch_max_interval_s == ARMED_WATCH_MAX_S
    unarmed = make_oven(clock, SimulatedEurotherm(clock), instrument_limit=False)
    unarmed.set(90.0)
    assert unarmed.armed_limit_C is None and unarmed.driver.read_high_limit_C() == 400.0


def runaway(sim: SimulatedEurotherm) -> None:
    """A fault behind the host's back: the controller put in manual at 100 % (a stray write)."""
    sim.oven.set_manual(True)
    sim.oven.set_manual_output(100.0)


def hottest_C(sim: SimulatedEurotherm, clock: SimClock, duration_s: float) -> float:
    """Let time pass with nobody polling (the controller alone), second by second; the hottest air."""
    hottest = sim.oven.air_C
    for _ in range(int(duration_s)):
        clock.set_time(clock.now() + 1.0)
        sim.oven.advance()
        hottest = max(hottest, sim.oven.air_C)
    return hottest


def test_a_dead_host_leaves_the_oven_limited_by_the_controller_and_the_next_host_reports_the_trip(clock):
    sim = SimulatedEurotherm(clock)
    oven = make_oven(clock, sim, over_temperature_C=150.0)
    settle(clock, oven.set(100.0))
    # The host dies here (no more polls); then the controller runs away towards 265 C.
    runaway(sim)
    hottest = hottest_C(sim, clock, 6 * 3600)
    assert 150.0 < hottest <= 152.0  # cut at the limit; the heater's stored heat adds under 2 C
    assert sim.oven.air_C < 30.0  # cooled with the heater cut, though the output was left at 100 %
    assert sim.oven.alarm_latched
    # A new host re-attaches and resumes the heating step: a safety fault, nothing heats.
    again = make_oven(clock, sim, over_temperature_C=150.0)
    with pytest.raises(OverTemperatureError) as trip:
        again.set(100.0)
    message = str(trip.value)
    assert "glass oven" in message and "over-temperature limit 150.0 C" in message
    assert "found latched before heating" in message and "safe state" in message
    assert sim.oven.settings.manual and sim.oven.settings.manual_output_pct == 0.0
    assert again.tripped is not None and not again.trigger().success
    again.reset_trip()  # below the limit: the controller's alarm is acknowledged
    assert not sim.oven.alarm_latched
    assert not again.set(60.0).done  # heating again


def test_the_stretched_watch_reports_the_controllers_trip_within_one_interval(clock):
    sim = SimulatedEurotherm(clock)
    oven = make_oven(clock, sim, over_temperature_C=150.0)
    status = oven.set(100.0)
    settle(clock, status)
    clock.advance_by(3600.0)
    polls = oven.polls
    clock.advance_by(3600.0)
    assert oven.polls - polls <= 3600.0 / ARMED_WATCH_MAX_S + 1  # the watch reads the latched alarm, rarely
    runaway(sim)
    while not sim.oven.alarm_latched:  # the controller trips as the oven crosses 150 C ...
        assert oven.tripped is None
        clock.advance_by(1.0)  # the host's watch polls run as they fall due
        sim.oven.advance()
    clock.advance_by(ARMED_WATCH_MAX_S)  # ... and the host's next watch poll reports it
    assert oven.tripped is not None
    assert "controller's own alarm at the over-temperature limit 150.0 C" in str(oven.tripped)
    assert sim.oven.settings.manual and sim.oven.output_pct == 0.0
    clock.advance_by(3600.0)  # cooled below the limit, the heater cut and left off
    oven.reset_trip()
    assert oven.tripped is None and not sim.oven.alarm_latched


def test_a_trip_is_not_acknowledged_while_the_controller_is_above_its_limit(clock):
    sim = SimulatedEurotherm(clock)
    oven = make_oven(clock, sim, over_temperature_C=150.0)
    settle(clock, oven.set(100.0))
    oven.driver.arm_high_limit_C(90.0)  # the controller's threshold below the oven: it trips at once
    with pytest.raises(OverTemperatureError, match=r"glass oven.*still latched \(temperature 10[01]\.\d C\)"):
        oven.reset_trip()
    assert sim.oven.alarm_latched
