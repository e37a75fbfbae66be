"""A run that an instrument stops (a safety limit, a fault, a served lab that went away) ends in one
clear error that says where its points are, never an "internal error"."""

from __future__ import annotations

from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.storage import list_journal_runs

# a discharge to a capacity the cell cannot give: it reaches the lab's voltage_min (1 V) first
PROTOCOL = """
name: too-deep
steps:
  - cv: {voltage: 4.9 V, until: {time: 1 h}}
  - cc: {current: -20 mA/g, until: {capacity: 500 mAh/g}}
"""


def test_a_run_stopped_by_a_safety_limit_says_so_and_where_its_points_are(tmp_path) -> None:
    (tmp_path / "p.yaml").write_text(PROTOCOL)
    data = tmp_path / "data"
    result = CliRunner().invoke(app, ["run", str(tmp_path / "p.yaml"), "--lab", "simulated", "--no-tiled",
                                      "--data-dir", str(data), "--out", str(tmp_path / "out")])  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "the run stopped" in result.output and "voltage_min" in result.output
    assert "internal error" not in result.output and "Traceback" not in result.output
    (run,) = list_journal_runs(data)
    assert run["exit_status"] == "fail" and run["points"] > 0
    assert f"relaxlab data export {run['uid'][:8]}" in result.output
