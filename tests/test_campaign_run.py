"""Campaigns on the simulated lab: the paper's 24 h temperature series, concurrency, failures,
and resume after the orchestrator dies."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from orchestrator.campaign_file import load_campaign
from orchestrator.campaign_run import run_campaign
from orchestrator.estimate import campaign_estimator
from orchestrator.schedule import plan_campaign
from orchestrator.storage import list_journal_runs, read_journal

SHIPPED = Path(__file__).resolve().parents[1] / "orchestrator" / "campaigns" / "temperature-24h.yaml"


def _shorter_series(folder: Path, name: str, conditions: list[str]) -> Path:
    """The shipped temperature series with only ``conditions`` (as written there, e.g.
    ``140 degC, time: 24 h``): the same powder, protocol and three replicates, fewer cells."""
    lines = SHIPPED.read_text().splitlines()
    kept = [line for line in lines if not line.startswith("  - {temperature:")
            or line.strip() in {f"- {{temperature: {c}}}" for c in conditions}]  # fmt: skip
    assert len(kept) == len(lines) - 6 + len(conditions)
    path = folder / f"{name}.yaml"
    path.write_text("\n".join(kept).replace("name: temperature-24h", f"name: {name}") + "\n")
    return path


@pytest.fixture(scope="module")
def temperature_series(tmp_path_factory):
    data = tmp_path_factory.mktemp("campaign")
    result = run_campaign(load_campaign("temperature-24h"), data, channels=16, ovens=1)
    return data, result


def test_temperature_series_moves_capacity_from_ni_to_o_plateau(temperature_series) -> None:
    _, result = temperature_series
    assert not result.failed
    table = result.table()
    assert len(table) == 18 and set(table["status"]) == {"done"}
    table = table[table["time"] == "24 h"].copy()  # the 0 s portion is the unheated reference
    table["T"] = table["temperature"].str.replace(" degC", "").astype(float)
    means = table.groupby("T")[["ni_plateau_mAh_g", "o_plateau_mAh_g"]].mean()
    stds = table.groupby("T")["ni_plateau_mAh_g"].std()
    temperatures = sorted(means.index)
    assert temperatures == [25.0, 50.0, 80.0, 110.0, 140.0]
    ni = means.loc[temperatures, "ni_plateau_mAh_g"].to_numpy()
    o = means.loc[temperatures, "o_plateau_mAh_g"].to_numpy()
    assert np.all(np.diff(ni) < 0) and np.all(np.diff(o) > 0)  # hotter: more LMCT conversion
    assert ni[-1] < 0.2 * ni[0]  # 140 C for 24 h converts > 85 % (docs/model.md, T4)
    assert (stds > 0).all()  # replicates are separate cells, not copies


def test_each_cell_is_its_own_run_linked_to_campaign_and_sample(temperature_series) -> None:
    data, result = temperature_series
    runs = {r["uid"]: r for r in list_journal_runs(data)}
    cell_runs = [r for r in runs.values() if r["cell"]]
    assert len(cell_runs) == 18
    start, frame = read_journal(data, result.cells["T24h-140C-24h-r2"]["run"])
    assert start["campaign"] == "temperature-24h" and start["replicate"] == 2
    assert start["portion"].endswith("140C-24h") and start["powder"] == "LTNO-x04-B1-c4.5V"
    assert start["condition"]["temperature"] == "140 degC"
    assert list(frame.groupby("step")["step_type"].first()) == ["rest", "cc"]
    # The operator's weighed mass is what the run used.
    assert start["job"] == "cell"


def test_cells_ran_concurrently_on_separate_channels(temperature_series) -> None:
    data, result = temperature_series
    spans = []
    for row in result.cells.values():
        _, frame = read_journal(data, row["run"])
        spans.append((frame["timestamp_s"].iloc[0], frame["timestamp_s"].iloc[-1]))
    # Overlap: at some moment several cells were measuring at once ...
    most = max(sum(a <= t <= b for a, b in spans) for t, _ in spans)
    assert most >= 3
    # ... while the single oven heated the five portions one after another (the first cells
    # start after the first 24 h heating, the last after the fifth).
    assert max(b for _, b in spans) - min(a for a, _ in spans) > 4 * 24 * 3600
    cell_starts = [json.loads((data / "journal" / f"{row['run']}.jsonl").read_text().splitlines()[0])[1]
                   for row in result.cells.values()]  # fmt: skip
    assert len({d["channel"] for d in cell_starts}) >= 3


def test_a_faulting_cell_fails_alone(tmp_path, monkeypatch) -> None:
    import orchestrator.simlab as simlab

    original = simlab.SimulatedCampaignLab.__init__

    def with_a_low_limit(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.channels[0].voltage_min_V.put(3.0)  # channel 1 cannot discharge to 1.85 V

    monkeypatch.setattr(simlab.SimulatedCampaignLab, "__init__", with_a_low_limit)
    # the unheated reference and one heated portion: six cells, one channel each
    series = _shorter_series(tmp_path, "faulting", ["25 degC, time: 0 s", "140 degC, time: 24 h"])
    campaign = load_campaign(series)
    assert len(campaign.cells) == 6
    result = run_campaign(campaign, tmp_path, channels=6, ovens=1)
    # cells run on the channels `campaign plan` gives them: those planned on ch01 fail, no other
    plan = plan_campaign(campaign, channels=6, ovens=1, durations=campaign_estimator(campaign)).frame
    on_ch01 = set(plan.loc[plan["channel"] == "ch01", "cell"]) & {cell.id for cell in campaign.cells}
    failed = {cell for cell, row in result.cells.items() if row["status"] == "failed"}
    assert on_ch01 and failed == on_ch01
    for cell in failed:  # refused at the discharge, before the instrument takes the cell below its voltage_min
        assert "cut-off 1.85 V is outside the cell's limits 3-4.95 V" in result.failed[cell]
    assert sum(row["status"] == "done" for row in result.cells.values()) == len(campaign.cells) - len(failed)


def test_resume_after_the_orchestrator_is_killed(tmp_path) -> None:
    # the unheated reference and two temperatures (nine cells on four channels)
    conditions = ["25 degC, time: 0 s", "80 degC, time: 24 h", "140 degC, time: 24 h"]
    series = _shorter_series(tmp_path, "resumed", conditions)
    data = tmp_path / "data"
    script = textwrap.dedent(
        f"""
        import os
        from orchestrator.campaign_file import load_campaign
        from orchestrator.campaign_run import run_campaign
        steps = []
        def die_mid_campaign(cell, steps_done):
            steps.append(cell)
            if len(steps) == 6:  # the three unheated cells are mounted and rested, not discharged
                os._exit(9)  # no clean-up of any kind, like SIGKILL
        run_campaign(load_campaign({str(series)!r}), {str(data)!r}, channels=4, ovens=1,
                     on_step_done=die_mid_campaign)
        """
    )
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert killed.returncode == 9, killed.stderr
    state = json.loads((data / "campaigns" / "resumed" / "state.json").read_text())
    finished_before = {k for k, v in state["jobs"].items() if v["status"] == "done"}
    assert finished_before == {"LTNO-x04-B1-c4.5V-25C-0s"}  # the unheated reference portion
    assert sorted(info["steps_done"] for info in state["cells"].values()) == [2, 2, 2]
    runs_before = {r["uid"] for r in list_journal_runs(data)}

    result = run_campaign(load_campaign(series), data, channels=4, ovens=1, resume=True)
    assert not result.failed and all(row["status"] == "done" for row in result.cells.values())
    # Finished jobs were not repeated: their runs are the ones from before the kill.
    for key in finished_before & set(result.cells):
        assert result.cells[key]["run"] in runs_before
    # Cells interrupted mid-way went on after their last finished step (their rest was not
    # repeated): the resumed run starts with the discharge.
    partial = {
        cell: info["steps_done"] for cell, info in state["cells"].items() if cell not in finished_before
    }
    for cell, steps_done in partial.items():
        start, frame = read_journal(data, result.cells[cell]["run"])
        assert start["resumed_after_step"] == steps_done
        assert start["resumes"] == state["cells"][cell]["run"]  # linked to the interrupted run
        assert steps_done == 2  # mounted and rested: only the discharge is left
        assert list(frame.groupby("step")["step_type"].first()) == ["cc"]
    # Nothing duplicated: one successful run per cell; the interrupted ones stay "interrupted".
    all_runs = [r for r in list_journal_runs(data) if r["cell"]]
    successes = [r for r in all_runs if r["exit_status"] == "success"]
    assert sorted(r["cell"] for r in successes) == sorted(result.cells)
    # ... and were closed on resume with the points they had read before the kill
    assert sorted(r["cell"] for r in all_runs if r["exit_status"] == "abort") == sorted(partial)
    table = result.table()
    table = table[table["time"] == "24 h"].copy()
    table["T"] = table["temperature"].str.replace(" degC", "").astype(float)
    ni = table.groupby("T")["ni_plateau_mAh_g"].mean().to_numpy()
    assert len(ni) == 2 and np.all(np.diff(ni) < 0)  # 80 C, 140 C


def test_campaign_report_draws_the_papers_histogram(temperature_series, tmp_path) -> None:
    import pandas as pd
    from typer.testing import CliRunner

    from orchestrator.cli import app

    data, _ = temperature_series
    result = CliRunner().invoke(
        app, ["report", "temperature-24h", "--data-dir", str(data), "--out", str(tmp_path), "--json"]
    )
    assert result.exit_code == 0, result.output
    for png in ("discharge_conditions.png", "gantt.png", "cycling.png", "dqdv.png"):
        assert (tmp_path / png).exists(), png
    summary = pd.read_csv(tmp_path / "campaign_summary.csv")
    assert len(summary) == 6 and (summary["n"] == 3).all()
    heated = summary[summary["duration_s"] == 86400].sort_values("temperature_C")
    assert len(heated) == 5 and heated["ni_plateau_mAh_g_mean"].is_monotonic_decreasing
    for png in ("arrhenius.png", "kinetics_log_time.png"):
        assert (tmp_path / png).exists(), png
    fits = json.loads(result.output)
    # the rate law fitted over the recorded temperature histories, with honest intervals
    assert fits["Ea_kJ_mol"] is not None and fits["Ea_kJ_mol_err"] > 0
    lo, hi = fits["Ea_kJ_mol_95"]
    assert lo < fits["Ea_kJ_mol"] < hi and lo < hi
    assert "4.5 V" in fits["kinetics"]["u_equals_1_at"]
    assert len(fits["kinetics"]["runs"]) == 18
    for row in fits["conditions"]:  # which runs went into each condition
        assert row["n"] == 3 and len(row["runs"]) == 3 and row["ni_plateau_mAh_g_std"] > 0


def test_oven_run_records_the_whole_thermal_profile_and_exports_it(temperature_series, tmp_path) -> None:
    from typer.testing import CliRunner

    from orchestrator.cli import app
    from orchestrator.storage import read_oven_record

    data, _ = temperature_series
    state = json.loads((data / "campaigns" / "temperature-24h" / "state.json").read_text())
    uid = state["jobs"]["LTNO-x04-B1-c4.5V-140C-24h"]["uid"]
    start, record = read_oven_record(data, uid)
    log = record[record["stream"] == "oven"]
    moves = record[record["stream"] == "transfers"]
    assert list(moves["portion_location"]) == ["oven1", "bench"]
    t_in, t_out = moves["timestamp_s"]
    assert t_out - t_in == pytest.approx(86400.0, abs=60.0)
    before, during, after = (log[log.timestamp_s < t_in], log[(log.timestamp_s >= t_in) & (log.timestamp_s <= t_out)],
                             log[log.timestamp_s > t_out])  # fmt: skip
    # ramp and settling logged before the portion goes in, the hold while it is in, the cool-down after
    assert before["temperature_C"].iloc[0] < 30 and before["temperature_C"].iloc[-1] == pytest.approx(
        140, abs=1
    )
    assert len(before) > 20 and (during["temperature_C"] - 140).abs().max() < 1.5
    assert after["temperature_C"].iloc[-1] < 30 and len(after) > 20
    assert start["bench_temperature_C"] == 25.0 and start["powder_ready_s"] is not None
    out = tmp_path / "oven.csv"
    result = CliRunner().invoke(
        app, ["data", "export", uid, "--data-dir", str(data), "--out", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["points"] == len(record) > 100


def test_each_cell_run_records_its_own_seeded_variation(temperature_series) -> None:
    data, result = temperature_series
    starts = [read_journal(data, row["run"])[0] for row in result.cells.values()]
    variations = [start["cell_variation"] for start in starts]
    assert all(set(v) >= {"capacity_factor", "mass_error", "r_ohm_ohm"} for v in variations)
    assert len({v["capacity_factor"] for v in variations}) == len(variations)  # every cell its own
