"""What a user sees while a run or a campaign goes (issue 15): the step each cell is on, its
simulated time, the wall time and the ETA in simulated and wall-clock time; one plain line per
event when stdout is not a terminal. The output of short simulated runs is captured and read as
a user would read it (no timings are asserted: the wall figures depend on the machine)."""

from __future__ import annotations

import io
import re

import pytest
from typer.testing import CliRunner

from drivers.clock import SimClock
from drivers.techniques import ConstantCurrent, Cutoffs, Rest
from orchestrator.campaign_run import CampaignProgress
from orchestrator.cli import app
from orchestrator.lab import load_lab
from orchestrator.progress import Pace, progress_mode
from orchestrator.runner import Session
from protocols.plans import run_protocol

LINE = re.compile(r"^\[wall +[\d.]+ s(?:| min [\d ]+s| h \d+ min) \| sim +([\d.]+) (s|min|h)\] (.*)$")
UNIT_S = {"s": 1.0, "min": 60.0, "h": 3600.0}


def _lines(text: str) -> list[tuple[float, str]]:
    """(simulated seconds, message) of each progress line; fails on a line of another shape."""
    out = []
    for line in text.splitlines():
        match = LINE.match(line)
        assert match, f"not a progress line: {line!r}"
        out.append((float(match.group(1)) * UNIT_S[match.group(2)], match.group(3)))
    return out


def test_the_mode_follows_the_terminal() -> None:
    assert progress_mode(as_json=True) == "off"
    assert progress_mode(stream=io.StringIO()) == "lines"  # a pipe, a file, CI


def test_a_piped_run_says_each_step_as_it_starts_with_times_and_etas(tmp_path, capsys) -> None:
    steps = [ConstantCurrent(100.0, Cutoffs(capacity_mAh_g=20.0), record_interval_s=60.0),
             Rest(2 * 3600.0, record_interval_s=60.0),
             ConstantCurrent(100.0, Cutoffs(duration_s=1800.0), record_interval_s=60.0)]  # fmt: skip
    with Session(load_lab("simulated"), data_dir=tmp_path, tiled=False, progress="lines") as session:
        (uid,) = session.run(run_protocol(session.channel(), steps, {"cell": "A1"}))
        _, frame = session.read(uid)
    every = _lines(capsys.readouterr().out)
    # besides the events, a line at each tenth of the planned time (a long step is not silent)
    tenths = [(t, m) for t, m in every if re.match(r"A1: \d+ % of ", m)]
    lines = [line for line in every if line not in tenths]
    messages = [m for _, m in lines]
    assert messages[0].startswith(f"A1: run {uid[:8]} started, 3 steps")
    assert [m.split(";")[0] for m in messages[1:4]] == ["A1: now on step 1/3 cc", "A1: now on step 2/3 rest",
                                                        "A1: now on step 3/3 cc"]  # fmt: skip
    assert messages[4].startswith("A1: run ended (success) after ")
    assert len(lines) == 5
    times = [t for t, _ in lines]
    assert times == sorted(times)  # simulated time never goes back
    # a step is announced at the simulated time it began (its first point), to the line's 0.01 h
    for (t, _), step in zip(lines[1:4], range(3), strict=True):
        assert t == pytest.approx(frame.loc[frame["step"] == step, "time_s"].iloc[0], abs=0.005 * 3600)
    # the end line gives the run's simulated length, as the journal has it
    end_h = float(re.search(r"after ([\d.]+) h simulated", messages[4]).group(1))
    assert end_h == pytest.approx(frame["time_s"].iloc[-1] / 3600.0, abs=0.02)
    # ETA in simulated and in wall-clock time, counting down
    etas = [re.search(r"ETA ([\d.]+) (s|min|h) simulated", m) for m in messages[1:4]]
    assert all(etas)
    left = [float(e.group(1)) * UNIT_S[e.group(2)] for e in etas]
    assert left == sorted(left, reverse=True) and left[0] > left[-1]
    assert all(" wall" in m for m in messages[2:4])
    # the tenths: 10 % to 90 % in order, each said once its share of the planned time has passed,
    # with the step the run is on then and an ETA that counts down
    planned_s = float(re.search(r"~([\d.]+) h simulated planned", messages[0]).group(1)) * 3600.0
    percents = [int(re.match(r"A1: (\d+) %", m).group(1)) for _, m in tenths]
    assert percents == list(range(10, 100, 10)), percents
    for (t, m), pct in zip(tenths, percents, strict=True):
        assert pct / 100 * planned_s <= t < (pct + 10) / 100 * planned_s + 60.0, m
        assert f"~{planned_s / 3600:.2f} h planned, on step " in m
    tenth_etas = [re.search(r"ETA ([\d.]+) (s|min|h) simulated", m) for _, m in tenths]
    tenth_left = [float(e.group(1)) * UNIT_S[e.group(2)] for e in tenth_etas]
    assert tenth_left == sorted(tenth_left, reverse=True)


def test_no_wall_clock_eta_is_guessed_from_the_first_moments(monkeypatch) -> None:
    """Start-up makes the first moments slow: a 2807 h GITT showed "~47 s wall" at its start and
    took 7 s. The wall-clock ETA is given once 5 % of the simulated work is done."""
    pace = Pace(0.0)
    monkeypatch.setattr(pace, "wall_s", lambda: 2.0)  # 2 s of wall time so far
    assert pace.wall_left_s(1.0, 99.0) is None  # 1 % done
    assert pace.eta(1.0, 99.0) == "ETA 1.6 min simulated"
    assert pace.wall_left_s(10.0, 90.0) == pytest.approx(18.0)  # 10 % done in 2 s: 18 s to go
    assert pace.eta(10.0, 90.0).endswith(", ~18.0 s wall")


def test_the_run_command_piped_shows_progress_then_the_summary(tmp_path) -> None:
    protocol = tmp_path / "short.yaml"
    protocol.write_text("name: short\ndescription: a short run\nsteps:\n"
                        "  - rest: {duration: 1 h, record_interval: 60 s}\n"
                        "  - discharge: {current: 50 mA/g, until: 2.5 V}\n")  # fmt: skip
    result = CliRunner().invoke(app, ["run", str(protocol), "--lab", "simulated", "--no-tiled",
                                      "--data-dir", str(tmp_path / "d"), "--out", str(tmp_path / "o")])  # fmt: skip
    assert result.exit_code == 0, result.output
    progress = [line for line in result.output.splitlines() if line.startswith("[wall")]
    assert any("now on step 1/2 rest" in line for line in progress)
    assert any("now on step 2/2 cc" in line for line in progress)
    assert "run ended (success)" in progress[-1]
    assert result.output.index("run ended") < result.output.index("export")  # then the summary


def test_a_campaign_says_per_cell_its_step_and_its_own_time_which_stops_when_it_ends() -> None:
    clock = SimClock()
    out = io.StringIO()
    progress = CampaignProgress(clock, ["A1", "A2"], "lines", {"A1": 12 * 3600.0, "A2": 30 * 3600.0}, stream=out)
    t0 = clock.now()

    def page(descriptor: str, step: int) -> dict:
        return {"descriptor": descriptor, "data": {"step": [step]}, "timestamps": {"step": [clock.now()]}}

    for cell, uid in (("A1", "u1"), ("A2", "u2")):
        progress("start", {"job": "cell", "uid": uid, "cell": cell, "channel": f"ch0{uid[-1]}",
                           "step_types": ["cc", "rest"]})  # fmt: skip
        progress("descriptor", {"uid": f"d{uid}", "run_start": uid, "name": "primary"})
        progress("event_page", page(f"d{uid}", 7))
    clock.set_time(t0 + 2 * 3600)
    progress("event_page", page("du1", 8))  # A1 moves to its rest
    clock.set_time(t0 + 11 * 3600)
    progress("stop", {"run_start": "u1", "exit_status": "success"})
    clock.set_time(t0 + 20 * 3600)
    progress("event_page", page("du2", 7))  # A2 still on its charge, two thirds into the campaign
    assert progress.line("A1").startswith("done") and "cell 11.00 h" in progress.line("A1")  # not stale, not 0
    assert "cell 20.00 h" in progress.line("A2") and "step 1/2 cc" in progress.line("A2")
    assert "ETA 10.00 h simulated" in progress.line("A2")  # planned end 30 h, now 20 h
    progress.close()
    lines = _lines(out.getvalue())
    said = [m for _, m in lines]
    assert any(m.startswith("A1: running on ch01, step 1/2 cc") for m in said)
    assert any(m.startswith("A1: running on ch01, step 2/2 rest") for m in said)
    assert any(m.startswith("A1: done") and "cell 11.00 h" in m for m in said)
    assert said[-1].startswith("campaign: t = 20.0 h of ~30.0 h planned (ETA in 10.0 h simulated")
    assert "1/2 cells done" in said[-1]
    # the campaign's line also when another tenth of its planned time has passed (not before:
    # the pages at 0 h and 2 h did not pass one), so a long step is not silent until it ends
    campaign = [(t, m) for t, m in lines if m.startswith("campaign: ")]
    assert [t for t, _ in campaign] == [20 * 3600.0, 20 * 3600.0]


def test_a_campaign_page_holding_several_short_steps_counts_each() -> None:
    """A page may hold a short step's points and the next one's: the cell is on the last."""
    clock = SimClock()
    progress = CampaignProgress(clock, ["A1"], "lines", {"A1": 3600.0}, stream=io.StringIO())
    progress("start", {"job": "cell", "uid": "u1", "cell": "A1", "channel": "ch01",
                       "step_types": ["cc", "rest", "cc"]})  # fmt: skip
    progress("descriptor", {"uid": "d1", "run_start": "u1", "name": "primary"})
    steps = [7, 7, 8, 8, 9]
    progress("event_page", {"descriptor": "d1", "data": {"step": steps}, "timestamps": {"step": [0.0] * 5}})
    assert "step 3/3 cc" in progress.line("A1")
