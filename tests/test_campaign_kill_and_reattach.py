"""SIGKILL the orchestrator in the middle of a campaign on TCP-served instruments, let the
instruments run on alone, resume it, and find every step that was running re-attached, nothing
repeated, lost or doubled.

The lab (two EmStat4s, two Keithley 2450s) is served in this process on 127.0.0.1 as ``relaxlab
sim serve --stepped`` serves it: its simulated time moves only as the orchestrator (a child
process) waits, so the kill lands at the simulated moment the test holds the lab at, whatever the
machine's load, and every figure below is the same on every run. The harness is the crash drill's
(``benchmarks/drill_random_kills.py``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.drill_random_kills import LIMITS_V, ServedLab, _keys, compare, lab_data, reference
from orchestrator.storage import list_journal_runs, read_journal, read_runs

pytestmark = pytest.mark.tcp
DEAD_S = 600.0  # simulated time the instruments run on with no host
POLL_ES_S = 30.0  # the EmStat4s' poll interval in the drill's lab


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The campaign run without a kill on a fresh served lab: what the results should be."""
    folder = tmp_path_factory.mktemp("reference")
    result, _ = reference(folder)
    assert not result["failed"]
    data = folder / "data"
    state = json.loads((data / "campaigns" / "drill" / "state.json").read_text())
    frames = {cell: read_runs(data, state["cells"][cell]["runs"])[1] for cell in result["cells"]}
    return result, data, frames


def _step_window(frames, step: int) -> tuple[float, float]:
    """When every cell runs protocol step ``step`` (frame step ``step - 1``) in the reference."""
    starts = [f.loc[f["step"] == step - 1, "timestamp_s"].iloc[0] for f in frames.values()]
    ends = [f.loc[f["step"] == step - 1, "timestamp_s"].iloc[-1] for f in frames.values()]
    return max(starts), min(ends)


def _kill_and_resume(tmp_path: Path, uninterrupted, step: int, into_s: float, ends_while_dead: bool = False):
    """Hold the lab ``into_s`` after every cell started protocol step ``step`` (before every cell
    ends it, if negative), kill the orchestrator there, let the instruments run on for DEAD_S,
    resume."""
    ref, ref_data, ref_frames = uninterrupted
    first, last = _step_window(ref_frames, step)
    hold_s = first + into_s if into_s >= 0 else last + into_s
    # the step is still under way when the host comes back (or, if asked, it ended meanwhile)
    assert (hold_s + DEAD_S > last) if ends_while_dead else (hold_s + DEAD_S < last)
    served = ServedLab(tmp_path, lab_data())
    data = tmp_path / "data"
    try:
        how, _ = served.orchestrate(data, resume=False, hold_s=hold_s)
        assert how == "killed"
        state = json.loads((data / "campaigns" / "drill" / "state.json").read_text())
        assert [c["running"]["index"] for c in state["cells"].values()] == [step] * 4
        served.run_alone(DEAD_S)
        how, result = served.orchestrate(data, resume=True, hold_s=None)
    finally:
        served.close()
    return ref, ref_frames, result, data, hold_s, compare(1, data, result, ref, ref_data, killed_at_s=hold_s)


def _common_checks(result, data, outcomes, step: int) -> None:
    assert not result["failed"], result["failed"]
    state = json.loads((data / "campaigns" / "drill" / "state.json").read_text())
    runs = {r["uid"]: r for r in list_journal_runs(data)}
    for outcome in outcomes:
        chain = state["cells"][outcome.cell]["runs"]
        assert [runs[uid]["exit_status"] for uid in chain] == ["abort", "success"]
        first, _ = read_journal(data, chain[0])
        start, frame = read_runs(data, chain)
        # the resumed run re-attached the step the killed one had started, on the same channel
        assert start["resumes"] == chain[0] and start["reattached_step"] is not None
        assert start["channel"] == first["channel"]
        assert list(frame.groupby("step")["step_type"].first()) == ["cc", "rest", "cc"]
        assert outcome.lost == 0  # every point the host read is in the record
        assert outcome.doubled == 0
        # the instruments kept the cells inside their limits while no host was there, and every
        # step stopped at the first point past its cut-off (an EmStat4 sees it at its next sample)
        assert LIMITS_V[0] <= outcome.v_min and outcome.v_max <= LIMITS_V[1]
        assert outcome.past_cut_off == 0
        # what never reached the host is what the campaign reports lost in transit, and no more
        # than the EmStat4 sent between two polls of its host
        assert outcome.counted == outcome.in_transit
        interval = float(frame.loc[frame["step"] == step - 1, "timestamp_s"].diff().median())
        assert outcome.in_transit <= POLL_ES_S / interval
        assert abs(outcome.charge_dev_pct) <= 1.0 and abs(outcome.discharge_dev_pct) <= 1.0


def test_sigkill_mid_rest_then_resume_reattaches_every_running_step(tmp_path: Path, uninterrupted) -> None:
    ref, ref_frames, result, data, killed_at_s, outcomes = _kill_and_resume(tmp_path, uninterrupted, 2, 300.0)
    _common_checks(result, data, outcomes, 2)
    state = json.loads((data / "campaigns" / "drill" / "state.json").read_text())
    for outcome in outcomes:
        _, frame = read_runs(data, state["cells"][outcome.cell]["runs"])
        ref_frame = ref_frames[outcome.cell]
        rest, ref_rest = (f[f["step_type"] == "rest"] for f in (frame, ref_frame))
        before = rest[rest["timestamp_s"] <= killed_at_s]
        assert len(before) >= 1 and len(rest) > len(before)  # points from both sides of the kill
        # the re-attached rest ended when it was due, as it would have without the kill
        assert rest["timestamp_s"].iloc[-1] == ref_rest["timestamp_s"].iloc[-1]
        if outcome.channel.startswith("ch-es"):  # the EmStat4 timed the rest on its own
            assert _keys(rest) <= _keys(ref_rest)
            assert len(rest) + outcome.in_transit == len(ref_rest)
        else:  # the Keithley 2450 held open circuit and kept its readings: no gap, none doubled
            assert len(rest) == len(ref_rest)
            largest_gap = rest["timestamp_s"].diff().max()
            assert largest_gap == pytest.approx(ref_rest["timestamp_s"].diff().max(), abs=1e-3)
            assert largest_gap < DEAD_S


def test_sigkill_mid_discharge_every_cell_stays_within_its_cut_off_and_resumes(
    tmp_path: Path, uninterrupted
) -> None:
    """The orchestrator dies while every cell discharges: the Keithley 2450s hold their cells at
    the cut-off (a voltage source there, the discharge current as its limit) and the EmStat4s run
    their scripts; resumed, no step went on past its cut-off, nothing is doubled or counted twice."""
    ref, ref_frames, result, data, _, outcomes = _kill_and_resume(tmp_path, uninterrupted, 3, 800.0)
    _common_checks(result, data, outcomes, 3)
    for outcome in outcomes:
        # the charge and the rest were over before the kill: the same as without it
        assert outcome.charge_dev_pct == pytest.approx(0.0, abs=1e-9)


def test_sigkill_just_before_the_charge_ends_the_step_that_ended_meanwhile_is_picked_up(
    tmp_path: Path, uninterrupted
) -> None:
    """The charge reaches its cut-off while no host is there: the EmStat4 ended its script and kept
    its output for the next host, the Keithley 2450 held the cell at 4.8 V; resumed, the charge is
    complete (not failed and run again) and the campaign goes on."""
    ref, ref_frames, result, data, _, outcomes = _kill_and_resume(tmp_path, uninterrupted, 1, -60.0, True)
    _common_checks(result, data, outcomes, 1)
    for outcome in outcomes:
        if outcome.channel.startswith("ch-es"):  # every point of its charge is the reference's
            assert outcome.charge_dev_pct == pytest.approx(0.0, abs=1e-9)
