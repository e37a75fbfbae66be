"""The relaxlab command, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.run_frames import COLUMNS
from orchestrator.summary import relaxation_summary

runner = CliRunner()


def test_demo_reports_plateaus_and_export_recomputes_them(tmp_path) -> None:
    result = runner.invoke(
        app, ["demo", "--json", "--no-tiled", "--data-dir", str(tmp_path / "d"), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert 55 < summary["ni_plateau_mAh_g"] < 72 and 140 < summary["o_plateau_mAh_g"] < 165
    assert (tmp_path / "o").glob("demo-*.png")

    listed = runner.invoke(app, ["data", "list", "--json", "--data-dir", str(tmp_path / "d")])
    (run,) = json.loads(listed.output)
    assert run["uid"] == summary["run"] and run["exit_status"] == "success"

    out = tmp_path / "run.csv"
    exported = runner.invoke(
        app,
        [
            "data",
            "export",
            summary["run"][:8],
            "--format",
            "csv",
            "--out",
            str(out),
            "--data-dir",
            str(tmp_path / "d"),
        ],
    )
    assert exported.exit_code == 0, exported.output
    frame = pd.read_csv(out)
    assert list(frame.columns) == COLUMNS  # the one table schema, in its order
    report = runner.invoke(
        app, ["report", summary["run"][:8], "--out", str(tmp_path / "r"), "--data-dir", str(tmp_path / "d")]
    )
    assert report.exit_code == 0, report.output
    assert (tmp_path / "r" / "index.html").exists() and (tmp_path / "r" / "cycling.png").exists()
    again = relaxation_summary(frame)
    for key in ("charge_capacity_mAh_g", "discharge_capacity_mAh_g", "ni_plateau_mAh_g", "o_plateau_mAh_g"):
        assert again[key] == pytest.approx(summary[key], rel=1e-9)


def test_export_of_an_unknown_run_is_one_clear_error(tmp_path) -> None:
    result = runner.invoke(app, ["data", "export", "nope", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "no run 'nope'" in result.output


def test_sim_calibrate_json_passes_for_the_paper_material() -> None:
    result = runner.invoke(app, ["sim", "calibrate", "--json"])
    assert result.exit_code == 0, result.output
    targets = json.loads(result.output)
    assert {t["id"] for t in targets} == {f"T{i}" for i in range(1, 16)}
    assert all(t["passed"] for t in targets)


def test_sim_calibrate_reports_an_edited_material_faithfully(tmp_path) -> None:
    from simulators.material import DEFAULT_MATERIAL

    text = DEFAULT_MATERIAL.read_text().replace("E_eq_V = 3.74", "E_eq_V = 3.60")
    edited = tmp_path / "edited.toml"
    edited.write_text(text)
    result = runner.invoke(app, ["sim", "calibrate", "--json", "--material", str(edited)])
    assert result.exit_code == 1  # T5 now fails: the intercept moved with E_eq
    t5 = next(t for t in json.loads(result.output) if t["id"] == "T5")
    intercept = float(str(t5["simulated"]).split("intercept ")[1].split(" V")[0])
    assert not t5["passed"] and abs(intercept - 3.60) <= 0.02


def test_relaxlab_is_installed_as_a_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    for command in ("demo", "run", "sim", "data"):
        assert command in result.stdout


def test_campaign_plan_writes_its_gantt_into_a_new_folder(tmp_path) -> None:
    out = tmp_path / "not" / "there" / "yet"
    result = runner.invoke(app, ["campaign", "plan", "charge-end", "--channels", "4", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "charge-end-gantt.png").stat().st_size > 1000
    assert "ETA" in result.output


def test_a_simulated_lab_clock_without_a_lab_file_is_one_clear_error(tmp_path) -> None:
    result = runner.invoke(app, ["campaign", "run", "charge-end", "--sim-clock", str(tmp_path / "c.json")])
    assert result.exit_code != 0
    assert "--sim-clock needs --lab" in result.output


def test_a_missing_simulated_lab_clock_file_says_to_start_sim_serve(tmp_path) -> None:
    result = runner.invoke(
        app, ["campaign", "run", "charge-end", "--lab", "simulated", "--sim-clock", str(tmp_path / "c.json")]
    )
    assert result.exit_code != 0
    assert "is `relaxlab sim serve` running?" in result.output
