"""`campaign plan` predicts what `campaign run` does: each cell on the same channel, step durations
from the same cell model (issue 15: within 20 %)."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.campaign_file import load_campaign
from orchestrator.campaign_run import run_campaign
from orchestrator.estimate import campaign_estimator
from orchestrator.schedule import plan_campaign
from orchestrator.storage import read_journal

SHIPPED = Path(__file__).resolve().parents[1] / "orchestrator" / "campaigns" / "charge-end.yaml"


@pytest.fixture(scope="module")
def charge_end(tmp_path_factory: pytest.TempPathFactory):
    """The shipped charge-end campaign with two replicates instead of three: six cells on four
    channels (two wait for a free channel), every charge end point."""
    data = tmp_path_factory.mktemp("charge-end")
    text = SHIPPED.read_text()
    assert "replicates: 3\n" in text
    (data / "charge-end.yaml").write_text(text.replace("replicates: 3\n", "replicates: 2\n"))
    campaign = load_campaign(data / "charge-end.yaml")
    assert len(campaign.cells) == 6
    result = run_campaign(campaign, data, channels=4, ovens=1)
    plan = plan_campaign(campaign, channels=4, ovens=1, durations=campaign_estimator(campaign))
    return campaign, data, result, plan.frame


def test_planned_step_durations_are_within_20_percent_of_the_run(charge_end) -> None:
    campaign, data, result, frame = charge_end
    checked = 0
    for cell, row in result.cells.items():
        _, points = read_journal(data, row["run"])
        ran = points.groupby("step")["time_s"].agg(lambda t: t.max() - t.min()).to_numpy()
        planned = frame[(frame.cell == cell) & frame.channel.str.startswith("ch")]
        planned_s = (planned.end_s - planned.start_s).to_numpy()
        assert len(planned_s) == len(ran), cell
        for plan_s, run_s in zip(planned_s, ran, strict=True):
            assert plan_s == pytest.approx(run_s, rel=0.2), (cell, plan_s / 3600, run_s / 3600)
            checked += 1
    assert checked == 3 * len(campaign.cells)  # charge, rest, discharge of every cell


def test_each_cell_runs_on_the_channel_the_plan_gives_it(charge_end) -> None:
    campaign, data, result, frame = charge_end
    planned = frame[frame.channel.str.startswith("ch")].groupby("cell")["channel"].first()
    ran = {cell: read_journal(data, row["run"])[0]["channel"] for cell, row in result.cells.items()}
    assert set(ran) == {cell.id for cell in campaign.cells}
    assert ran == {cell: planned[cell] for cell in ran}
    assert len(set(ran.values())) == 4  # all four channels in use, named as the plan names them


def test_a_charge_to_4p5V_is_planned_from_the_model_not_a_typical_capacity() -> None:
    campaign = load_campaign("charge-end")
    default = plan_campaign(campaign, channels=9).frame
    modelled = plan_campaign(campaign, channels=9, durations=campaign_estimator(campaign)).frame

    def charge_h(frame, end: str) -> float:
        rows = frame[(frame.task == "cc") & frame.label.str.startswith("charge") & frame.label.str.endswith(end)]
        return float((rows.end_s - rows.start_s).iloc[0]) / 3600.0

    # the fixed 280 mAh/g guess makes every voltage-limited charge 14 h long
    assert charge_h(default, "4.5 V") == pytest.approx(charge_h(default, "4.8 V"))
    assert charge_h(modelled, "4.5 V") < charge_h(modelled, "4.8 V")
    assert charge_h(modelled, "200 mAh/g") == pytest.approx(10.0, rel=1e-3)  # 200 mAh/g at 20 mA/g


def test_plan_labels_say_durations_as_people_write_them() -> None:
    frame = plan_campaign(load_campaign("time-140C"), channels=4).frame
    heats = set(frame[frame.task == "heat"].label)
    assert {"heat 140 C for 90 s", "heat 140 C for 10 min", "heat 140 C for 24 h"} <= heats
