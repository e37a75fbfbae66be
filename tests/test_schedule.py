"""Campaign schedules: channel limits, shared oven runs, duration estimates, Gantt chart."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from drivers.techniques import GITT, ConstantCurrent, Cutoffs, Rest, Sweep
from orchestrator.campaign_file import load_campaign
from orchestrator.schedule import estimate_step_s, plan_campaign
from protocols.schema import Heat


def max_concurrent(frame: pd.DataFrame, prefix: str) -> int:
    rows = frame[frame["channel"].str.startswith(prefix)]
    events = sorted(
        [(s, 1) for s in rows.start_s] + [(e, -1) for e in rows.end_s], key=lambda x: (x[0], x[1])
    )
    live = best = 0
    for _, delta in events:
        live += delta
        best = max(best, live)
    return best


def no_overlap_per_resource(frame: pd.DataFrame) -> bool:
    for _, rows in frame.groupby("channel"):
        spans = sorted(zip(rows.start_s, rows.end_s, strict=True))
        if any(b[0] < a[1] - 1e-6 for a, b in zip(spans, spans[1:], strict=False)):
            return False
    return True


def test_step_estimates() -> None:
    assert estimate_step_s(Rest(86400.0)) == 86400.0
    assert estimate_step_s(ConstantCurrent(20.0, Cutoffs(capacity_mAh_g=200.0))) == pytest.approx(36000.0)
    assert estimate_step_s(ConstantCurrent(-20.0, Cutoffs(voltage_V=1.85))) == pytest.approx(14 * 3600)
    assert estimate_step_s(ConstantCurrent(20.0, Cutoffs(voltage_V=4.8, duration_s=3600.0))) == 3600.0
    assert estimate_step_s(Heat(140.0, 3600.0, ramp_C_min=5.0)) == pytest.approx(3600 + 2 * 115 / 5 * 60)
    assert estimate_step_s(Sweep(3.0, 4.8, 1.5, 0.05, cycles=1)) == pytest.approx(6.6 / 0.05e-3)
    # 28 pulses of 10 mAh/g reach 280 mAh/g
    assert estimate_step_s(GITT(20.0, 1800.0, 28800.0, 4.8)) == pytest.approx(28 * 30600)


def test_channels_never_exceeded_and_no_double_booking() -> None:
    campaign = load_campaign("charge-end")
    for channels in (1, 2, 4):
        schedule = plan_campaign(campaign, channels)
        frame = schedule.frame
        assert list(frame.columns) == ["cell", "channel", "task", "start_s", "end_s", "label"]
        assert frame["channel"].str.startswith("ch").all()
        assert max_concurrent(frame, "ch") <= channels
        assert no_overlap_per_resource(frame)
        assert set(frame.cell) == {c.id for c in campaign.cells}


def test_makespan_decreases_with_more_channels() -> None:
    campaign = load_campaign("charge-end")
    spans = [plan_campaign(campaign, n).makespan_s for n in (1, 3, 9)]
    assert spans[0] > spans[1] > spans[2]
    longest_cell = max(plan_campaign(campaign, 9).frame.groupby("cell").end_s.max())
    assert spans[2] == pytest.approx(longest_cell)


def test_one_oven_run_per_condition_shared_by_its_cells() -> None:
    campaign = load_campaign("temperature-24h")
    frame = plan_campaign(campaign, channels=6, ovens=1).frame
    heats = frame[frame.task == "heat"]
    assert len(heats) == 6  # 18 cells, 6 conditions (the unheated reference has a 0 s entry)
    assert no_overlap_per_resource(frame)
    for portion in campaign.portions:
        oven_end = heats[heats.cell == portion.id].end_s.iloc[0]
        cells = [c.id for c in campaign.cells if c.portion == portion.id]
        first_use = frame[frame.cell.isin(cells)].start_s.min()
        assert first_use >= oven_end  # fresh cells are built after their portion left the oven


def test_more_ovens_shorten_a_heating_bound_campaign() -> None:
    campaign = load_campaign("temperature-24h")
    one = plan_campaign(campaign, channels=15, ovens=1).makespan_s
    three = plan_campaign(campaign, channels=15, ovens=3).makespan_s
    assert three < one
    assert max_concurrent(plan_campaign(campaign, channels=15, ovens=3).frame, "oven") == 3


def test_invalid_resources() -> None:
    campaign = load_campaign("temperature-24h")
    with pytest.raises(ValueError, match="channels"):
        plan_campaign(campaign, 0)
    with pytest.raises(ValueError, match="oven"):
        plan_campaign(campaign, 2, ovens=0)


def test_gantt_png(tmp_path: Path) -> None:
    schedule = plan_campaign(load_campaign("time-140C"), channels=4)
    path = schedule.gantt_png(tmp_path / "gantt.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_campaign_progress_counts_down_to_the_planned_end() -> None:
    from drivers.clock import SimClock
    from orchestrator.campaign_file import load_campaign
    from orchestrator.campaign_run import CampaignProgress
    from orchestrator.schedule import plan_campaign

    campaign = load_campaign("charge-end")
    frame = plan_campaign(campaign, channels=3).frame
    planned = {str(k): float(v) for k, v in frame.groupby("cell")["end_s"].max().items()}
    clock = SimClock()
    progress = CampaignProgress(clock, [c.id for c in campaign.cells], False, planned)
    first = campaign.cells[0].id
    assert "ETA in" in progress.overall() and "0/9 cells done" in progress.overall()
    eta_0 = float(progress.overall().split("ETA in ")[1].split(" h")[0])
    progress("start", {"job": "cell", "uid": "u1", "cell": first, "channel": "ch1"})
    clock.set_time(clock.now() + 10 * 3600)
    progress("stop", {"run_start": "u1", "exit_status": "success"})
    eta_10 = float(progress.overall().split("ETA in ")[1].split(" h")[0])
    assert eta_0 - eta_10 == pytest.approx(10.0, abs=0.11)
    assert "1/9 cells done" in progress.overall()
    assert progress.line(first).startswith("done") and "planned end" in progress.line(first)
