"""``relaxlab --version``, ``relaxlab examples``, "did you mean" for mistyped names, the model docs
and the optional USB/GPIB extras, as a user meets them (issue 16)."""

from __future__ import annotations

import json
import re
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from orchestrator.cli import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


def test_version_is_the_installed_distributions() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"relaxlab {version('relaxlab')}"


def test_examples_lists_every_shipped_protocol_and_campaign_with_its_description() -> None:
    result = runner.invoke(app, ["examples", "--json"])
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    on_disk = {("protocol", p.stem) for p in (ROOT / "protocols" / "examples").glob("*.yaml")}
    on_disk |= {("campaign", p.stem) for p in (ROOT / "orchestrator" / "campaigns").glob("*.yaml")}
    assert {(r["kind"], r["name"]) for r in rows} == on_disk
    for row in rows:
        assert row["description"] == yaml.safe_load(Path(row["file"]).read_text())["description"]
    human = runner.invoke(app, ["examples"]).stdout
    for row in rows:
        assert re.search(rf"^\s+{re.escape(row['name'])}\s+{re.escape(row['description'])}$", human, re.M)


@pytest.mark.parametrize(
    ("args", "suggestion"),
    [
        (["run", "relaxation-4.8V-24", "--lab", "simulated"], "relaxation-4.8V-24h"),
        (["run", "gitt-8", "--lab", "simulated"], "gitt-8h"),
        (["run", "relaxation-4.8V-24h", "--lab", "simulatd"], "simulated"),
        (["run", "relaxation-4.8V-24h", "--lab", "simulated", "--cell", "cell1"], "cell-1"),
        (["campaign", "plan", "temperature-24"], "temperature-24h"),
        (["campaign", "run", "time-140"], "time-140C"),
        (["valdate", "x.yaml"], "validate"),
        (["campaign", "pln", "charge-end"], "plan"),
    ],
)
def test_a_mistyped_name_gets_a_suggestion(args: list[str], suggestion: str, tmp_path: Path) -> None:
    if args[0] == "run":
        args = [*args, "--data-dir", str(tmp_path)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert f"Did you mean '{suggestion}'" in result.output or f"did you mean '{suggestion}'" in result.output
    assert not (tmp_path / "journal").exists()  # refused before anything ran


def test_a_name_with_nothing_close_lists_the_built_in_ones() -> None:
    result = runner.invoke(app, ["campaign", "plan", "zzz"])
    assert result.exit_code == 2
    from orchestrator.campaign_file import list_campaigns

    assert f"built-in: {', '.join(list_campaigns())}" in result.output


def test_model_docs_cover_every_calibration_target_the_simulator_reports() -> None:
    result = runner.invoke(app, ["sim", "calibrate", "--json"])
    ids = {t["id"] for t in json.loads(result.stdout)}
    text = (ROOT / "docs" / "model.md").read_text()
    assert ids and all(re.search(rf"^\| {i} \|", text, re.M) for i in ids)
    # every table of the shipped material file is described
    sections = tomllib.loads((ROOT / "simulators" / "materials" / "x04.toml").read_text())
    assert all(f"[{name}]" in text or f"`[{name}" in text for name in sections if name != "meta")


def test_no_file_points_to_the_science_notes_outside_the_repository() -> None:
    offenders = [
        str(p.relative_to(ROOT))
        for pattern in ("*.py", "*.toml", "*.yaml", "*.md")
        for p in ROOT.rglob(pattern)
        if ".git" not in p.parts
        and "science.md" in p.read_text(errors="ignore")
        and p.name != Path(__file__).name
    ]
    assert offenders == []


def test_usb_and_gpib_backends_are_optional_extras_named_in_the_readme() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(req.startswith("pyusb") for req in extras["usb"])
    assert any(req.startswith("gpib-ctypes") for req in extras["gpib"])
    readme = (ROOT / "README.md").read_text()
    assert "relaxlab[usb]" in readme and "relaxlab[gpib]" in readme
