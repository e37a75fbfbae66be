"""heated_relaxation through a RunEngine whose time is a SimClock."""

from __future__ import annotations

import pytest
from bluesky import RunEngine
from bluesky.utils import FailedStatus

from drivers.clock import SimClock
from drivers.eurotherm import EurothermDriver
from drivers.oven import Oven, OverTemperatureError
from protocols.heating import heated_relaxation
from simulators.eurotherm import SimulatedEurotherm


def simulated_run_engine(clock: SimClock) -> RunEngine:
    """RunEngine whose sleeps and status waits advance the SimClock (test harness)."""
    RE = RunEngine({}, call_returns_result=True)

    async def sim_sleep(msg):
        clock.advance_by(msg.args[0])

    RE.register_command("sleep", sim_sleep)
    waiting: dict[str, object] = {"statuses": None}

    def step() -> None:
        statuses = waiting["statuses"]
        if not statuses or all(st.done for st in statuses):
            return
        if not clock.advance_to_next():
            raise RuntimeError("RunEngine waits on statuses but nothing is scheduled")
        RE.loop.call_soon(step)

    def hook(statuses) -> None:
        waiting["statuses"] = statuses
        if statuses:
            RE.loop.call_soon(step)

    RE.waiting_hook = hook
    return RE


@pytest.fixture
def lab():
    clock = SimClock()
    sim = SimulatedEurotherm(clock)
    oven = Oven(EurothermDriver.in_process(sim), clock, poll_interval_s=10.0)
    RE = simulated_run_engine(clock)
    docs: list[tuple[str, dict]] = []
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    return RE, oven, sim, clock, docs


def test_one_run_with_metadata_logged_hold_and_cooling(lab):
    RE, oven, sim, clock, docs = lab
    RE(heated_relaxation(oven, 120.0, hold_s=3600.0, cool_to_C=30.0, log_interval_s=600.0))
    names = [n for n, _ in docs]
    assert names.count("start") == 1 and names.count("stop") == 1
    start = docs[0][1]
    assert start["temperature_C"] == 120.0 and start["hold_s"] == 3600.0
    assert start["plan_name"] == "heated_relaxation"
    events = [d for n, d in docs if n == "event"]
    assert len(events) == 1 + 6 + 1  # settled, every 600 s of the hold, after cooling
    temps = [e["data"]["oven_temperature"] for e in events]
    assert all(abs(T - 120.0) <= 1.0 for T in temps[:7])
    assert temps[-1] <= 31.0
    # reading timestamps come from the SimClock (event "time" is the RunEngine's business)
    hold_times = [e["timestamps"]["oven_temperature"] for e in events[:7]]
    assert hold_times[-1] - hold_times[0] == pytest.approx(3600.0)
    assert docs[-1][1]["exit_status"] == "success"
    # safe state at the end
    assert sim.oven.settings.manual and sim.oven.output_pct == 0.0


def test_hold_not_a_multiple_of_the_log_interval_ends_on_time(lab):
    RE, oven, _, _, docs = lab
    RE(heated_relaxation(oven, 60.0, hold_s=150.0, log_interval_s=60.0))
    events = [d for n, d in docs if n == "event"]
    stamps = [e["timestamps"]["oven_temperature"] for e in events[:4]]
    assert [round(t - stamps[0], 6) for t in stamps] == [0, 60, 120, 150]


def test_over_temperature_aborts_the_run_and_leaves_the_oven_safe(lab):
    RE, oven, sim, clock, docs = lab
    oven.over_temperature_C.put(150.0)

    def fault():
        sim.oven.air_C = sim.oven.heater_C = 200.0

    plan = heated_relaxation(oven, 100.0, hold_s=7200.0, log_interval_s=60.0)
    # the fault strikes one hour into the run
    clock.call_later(3600.0, fault)
    with pytest.raises((FailedStatus, OverTemperatureError)):
        RE(plan)
    assert docs[-1][0] == "stop" and docs[-1][1]["exit_status"] == "fail"
    assert sim.oven.settings.manual and sim.oven.output_pct == 0.0
    assert oven.tripped is not None


def test_invalid_arguments_raise_before_the_run(lab):
    _, oven, _, _, _ = lab
    with pytest.raises(ValueError, match="hold_s"):
        heated_relaxation(oven, 100.0, hold_s=-1.0)
    with pytest.raises(ValueError, match="log_interval_s"):
        heated_relaxation(oven, 100.0, hold_s=10.0, log_interval_s=0.0)


def test_a_resumed_portion_holds_only_for_the_time_left(lab) -> None:
    """After a crash the controller kept 140 C; the resumed job waits out the rest of the hold."""
    from bluesky import RunEngine

    from drivers.operator import Operator, Timer
    from orchestrator.simtime import SimulatedTime
    from protocols.campaign import Gate, Pool, portion_job
    from protocols.jobs import run_jobs
    from protocols.schema import Heat

    _, oven, sim, _, _ = lab
    clock = oven._clock
    oven.driver.heat_to(140.0)
    clock.advance_by(3 * 3600.0)  # the old session ramped, settled, and held for a while
    hold_started_s = clock.now() - 1800.0  # its hold began half an hour ago, then it died
    simtime = SimulatedTime(clock)
    RE = RunEngine({}, during_task=simtime)
    simtime.install(RE)
    docs: list[tuple[str, dict]] = []
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    reported: list[dict] = []
    ovens = Pool("ovens", [])  # the oven is not in the pool: the portion is in it
    operator = Operator(clock, lambda request, done, failed: clock.call_later(60.0, lambda: done({})))
    step = Heat(140.0, 2 * 3600.0, log_interval_s=300.0)
    job = portion_job("P1", [step], ovens, operator, Timer(clock), Gate(), {"job_key": "P1"}, None,
                      0, (oven, hold_started_s), lambda portion, info: reported.append(info))  # fmt: skip
    resumed_at = clock.now()
    RE(run_jobs({"P1": job}, lambda key, value: None))
    events = [d for n, d in docs if n == "event"]
    log = [(d["timestamps"]["oven_temperature"], d["data"]["oven_temperature"]) for d in events
           if "oven_temperature" in d["data"]]  # fmt: skip
    hot = [t for t, temperature in log if temperature > 138.0]
    # the hold ends 2 h after it began (plus the minute the oven takes to settle again), not 2 h from now:
    # the last reading of the hold, then the operator (60 s) takes the portion out to the bench
    out = [
        d["timestamps"]["portion_location"] for d in events if d["data"].get("portion_location") == "bench"
    ]
    assert len(out) == 1 and out[0] - hold_started_s == pytest.approx(7200.0 + 60.0, abs=120.0)
    assert max(t for t in hot if t <= out[0]) - hold_started_s == pytest.approx(7200.0, abs=120.0)
    assert out[0] - resumed_at < 1.6 * 3600.0
    assert log[-1][1] < 30.0  # the cool-down is logged to its end
    assert reported[0] == {"steps_done": 0, "oven": oven.name, "hold_started_s": hold_started_s}
    assert reported[-1] == {"steps_done": 1, "oven": None, "hold_started_s": None}
    assert ovens.free == [oven]  # released when the portion is done


def test_a_run_on_an_oven_the_controller_tripped_while_no_host_ran_fails_before_heating(lab):
    """The controller's own limit tripped while the host was dead: the next run is a safety fault."""
    RE, oven, sim, clock, docs = lab
    oven.over_temperature_C.put(150.0)
    oven.set(100.0)  # the limit is armed on the controller; then the host dies (no more polls)
    sim.oven.set_manual(True)  # and the controller runs away at 100 % output
    sim.oven.set_manual_output(100.0)
    clock.set_time(clock.now() + 4 * 3600.0)
    sim.oven.advance()  # the controller alone, four hours
    assert sim.oven.alarm_latched and sim.oven.air_C < 150.0
    host = Oven(EurothermDriver.in_process(sim, name="glass oven"), clock, over_temperature_C=150.0)
    with pytest.raises(OverTemperatureError, match="limit 150.0 C .*found latched before heating"):
        RE(heated_relaxation(host, 100.0, hold_s=3600.0))
    assert docs[-1][0] == "stop" and docs[-1][1]["exit_status"] == "fail"
    assert [d for n, d in docs if n == "event"] == []  # nothing logged: it never heated
    assert sim.oven.settings.manual and sim.oven.output_pct == 0.0
