"""Thermal oven model: dynamics, cost of long holds, and samples relaxing with what they saw."""

from __future__ import annotations

import pytest

from simulators.oven import OvenModel, OvenParams


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def now(self) -> float:
        return self.t


def trace(model: OvenModel, clock: Clock, duration_s: float, every_s: float = 10.0):
    rows = []
    end = clock.t + duration_s
    while clock.t < end:
        clock.t = min(end, clock.t + every_s)
        model.advance()
        rows.append((clock.t, model.air_C, model.sample_C, model.working_setpoint_C))
    return rows


def test_step_heats_to_set_point_with_small_overshoot_and_holds():
    clock = Clock()
    model = OvenModel(clock)
    model.set_target(140.0)
    rows = trace(model, clock, 3 * 3600)
    peak = max(air for _, air, _, _ in rows)
    assert 140.0 < peak < 146.0  # some overshoot, not much
    assert rows[-1][1] == pytest.approx(140.0, abs=0.01)
    assert model.output_pct == pytest.approx(100 * 2.5 * 115 / 600, abs=0.01)  # loss at 140 C


def test_rate_limit_ramps_the_working_set_point():
    clock = Clock()
    model = OvenModel(clock)
    model.set_rate_limit(3.0)
    model.set_target(100.0)
    rows = trace(model, clock, 20 * 60, every_s=60.0)
    wsp = [r[3] for r in rows]
    assert wsp[9] == pytest.approx(25.0 + 3.0 * 10, abs=1e-6)  # 3 C/min for 10 min
    assert max(r[1] for r in rows[:10]) < 60.0  # the air follows the ramp
    assert model.ramping()


def test_sample_lags_the_air():
    clock = Clock()
    model = OvenModel(clock, OvenParams(sample_lag_s=300.0))
    model.set_target(120.0)
    rows = trace(model, clock, 1200)
    assert all(sample <= air + 1e-9 for _, air, sample, _ in rows[:60])
    assert rows[30][1] - rows[30][2] > 5.0


def test_cooling_follows_the_chamber_time_constant():
    clock = Clock()
    model = OvenModel(clock, start_C=140.0)
    model.set_manual(True)
    model.set_manual_output(0.0)
    trace(model, clock, 600.0)
    # two coupled nodes: about (140 - 25) * exp(-1) + 25 = 67 C after one 10 min constant
    assert 55.0 < model.air_C < 80.0


def test_a_settled_24_h_hold_costs_few_substeps():
    clock = Clock()
    model = OvenModel(clock)
    model.set_target(140.0)
    trace(model, clock, 24 * 3600, every_s=10.0)
    assert model.substeps < 6 * 3600  # the settled part is jumped, not stepped
    assert model.air_C == pytest.approx(140.0, abs=1e-3)


def test_identical_inputs_give_identical_temperatures():
    runs = []
    for _ in range(2):
        clock = Clock()
        model = OvenModel(clock)
        model.set_rate_limit(4.0)
        model.set_target(110.0)
        runs.append(trace(model, clock, 3600, every_s=7.0))
    assert runs[0] == runs[1]


class RecordingSample:
    def __init__(self) -> None:
        self.calls: list[tuple[list[float], list[float]]] = []

    def relax_history(self, times_s, temperatures_C) -> None:
        self.calls.append((list(times_s), list(temperatures_C)))


def test_samples_get_their_own_temperature_history_in_batches():
    clock = Clock()
    model = OvenModel(clock)
    sample = RecordingSample()
    model.add_sample(sample)
    start = clock.t
    model.set_target(140.0)
    trace(model, clock, 4 * 3600, every_s=60.0)
    model.flush()
    calls = sample.calls
    assert 10 < len(calls) < 4 * 60 + 1  # batched: at most one call per catch-up
    # contiguous, covering the whole stay, following the sample (not the air)
    assert calls[0][0][0] == start
    for (t_prev, _), (t_next, _) in zip(calls, calls[1:], strict=False):
        assert t_next[0] == t_prev[-1]
    assert calls[-1][0][-1] == clock.t
    temps = [T for _, Ts in calls for T in Ts]
    assert max(temps) < 146.0 and temps[-1] == pytest.approx(140.0, abs=1e-3)
    # the settled hold is merged into very few points
    assert sum(len(ts) for ts, _ in calls) < 4000


def test_removed_sample_stops_relaxing():
    clock = Clock()
    model = OvenModel(clock)
    sample = RecordingSample()
    model.add_sample(sample)
    model.set_target(80.0)
    clock.t += 600
    model.remove_sample(sample)
    n = len(sample.calls)
    clock.t += 600
    model.advance()
    model.flush()
    assert len(sample.calls) == n
    assert sample.calls[-1][0][-1] == clock.t - 600


# --------------------------------------------------------------- with the physics Sample
def charged_sample():
    cell = pytest.importorskip("simulators.cell", reason="physics Sample not available yet")
    material = pytest.importorskip("simulators.material").load_material(None)
    h_ref = material.lmct.H_ref_mAh_g
    return cell.Sample(material, cell.SampleState(h_ni_mAh_g=h_ref)), h_ref


def test_ramp_then_hold_converts_less_than_an_instant_jump():
    sample, h_ref = charged_sample()
    instant = sample.copy()
    clock = Clock()
    model = OvenModel(clock)
    model.set_rate_limit(5.0)
    model.add_sample(sample)
    model.set_target(140.0)
    duration = 2 * 3600
    trace(model, clock, duration, every_s=10.0)
    model.remove_sample(sample)
    instant.relax(duration, 140.0)
    ramped_conversion = 1 - sample.state.h_ni_mAh_g / h_ref
    instant_conversion = 1 - instant.state.h_ni_mAh_g / h_ref
    assert 0 < ramped_conversion < instant_conversion
    # ... but more than the part of the stay spent at 140 C alone (the ramp counts too)
    hold_only = sample.copy()
    hold_only.state.h_ni_mAh_g = h_ref
    hold_only.relax(duration - 30 * 60, 140.0)
    assert ramped_conversion > 0.8 * (1 - hold_only.state.h_ni_mAh_g / h_ref)


def test_sample_in_oven_at_room_temperature_matches_constant_relaxation():
    sample, h_ref = charged_sample()
    reference = sample.copy()
    clock = Clock()
    model = OvenModel(clock)
    model.add_sample(sample)
    clock.t += 24 * 3600
    assert model.samples == [sample]
    reference.relax(24 * 3600, 25.0)
    assert sample.state.h_ni_mAh_g == pytest.approx(reference.state.h_ni_mAh_g, rel=1e-9)
