"""Campaign files: matrix expansion, genealogy, masses, protocols per condition, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from drivers.techniques import ConstantCurrent
from orchestrator.campaign_file import CampaignError, list_campaigns, load_campaign, validate_campaign_file
from protocols.schema import Heat

BASE = {
    "name": "t24",
    "protocol": "titration-portion",
    "samples": {
        "batch": {"id": "B1", "material": "x04"},
        "powder": {"id": "B1-c48", "charged_to": "4.8 V", "mass": "100 mg"},
        "cell_mass": "5 mg",
    },
    "matrix": {"temperature": ["25 degC", "50 degC", "80 degC", "110 degC", "140 degC"], "time": ["24 h"]},
}


def write(tmp_path: Path, data: object, name: str = "campaign.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_five_temperatures_times_three_replicates(tmp_path: Path) -> None:
    campaign = load_campaign(write(tmp_path, BASE))
    assert len(campaign.cells) == 15 and campaign.replicates == 3
    assert len(campaign.portions) == 5
    assert [p.mass_g for p in campaign.portions] == pytest.approx([0.02] * 5)
    assert len({c.id for c in campaign.cells}) == 15
    assert [c.replicate for c in campaign.cells_for(temperature="110 degC")] == [1, 2, 3]


def test_genealogy_links_cell_to_portion_powder_and_batch(tmp_path: Path) -> None:
    campaign = load_campaign(write(tmp_path, BASE))
    portions = {p.id: p for p in campaign.portions}
    assert campaign.powder is not None and campaign.powder.batch == "B1"
    for cell in campaign.cells:
        portion = portions[cell.portion]
        assert portion.condition == cell.condition
        assert portion.powder == cell.powder == "B1-c48"
        assert cell.batch == "B1"
        heat = next(s for s in cell.protocol.steps if isinstance(s, Heat))
        assert heat.temperature_C == float(cell.condition["temperature"].split()[0])
        assert heat.hold_s == 86400.0


def test_cell_masses_override_default(tmp_path: Path) -> None:
    data = {**BASE, "samples": {**BASE["samples"], "cell_masses": {"140C-24h-r2": "4.2 mg"}}}
    campaign = load_campaign(write(tmp_path, data))
    masses = {c.id: c.mass_g for c in campaign.cells}
    assert masses["140C-24h-r2"] == pytest.approx(0.0042)
    assert masses["140C-24h-r1"] == pytest.approx(0.005)


def test_protocol_path_relative_to_campaign_file(tmp_path: Path) -> None:
    (tmp_path / "protocols").mkdir()
    (tmp_path / "protocols" / "mine.yaml").write_text(
        "name: mine\nparameters: {end: 4.8 V}\nsteps:\n  - charge: {current: 20 mA/g, until: $end}\n"
    )
    data = {
        "name": "ends",
        "protocol": "protocols/mine.yaml",
        "replicates": 4,
        "samples": {"batch": {"id": "B2"}},
        "matrix": {"end": ["4.5 V", "200 mAh/g"]},
    }
    campaign = load_campaign(write(tmp_path, data))
    assert len(campaign.cells) == 8 and campaign.portions == ()
    assert all(c.portion is None and c.powder is None for c in campaign.cells)
    first = campaign.cells_for(end="4.5 V")[0].protocol.steps[0]
    last = campaign.cells_for(end="200 mAh/g")[0].protocol.steps[0]
    assert isinstance(first, ConstantCurrent) and first.cutoffs.voltage_V == 4.5
    assert isinstance(last, ConstantCurrent) and last.cutoffs.capacity_mAh_g == 200.0


@pytest.mark.parametrize(
    ("name", "cells", "conditions"),
    [
        ("temperature-24h", 18, 6),
        ("time-140C", 18, 6),
        ("charge-end", 9, 3),
        ("ocv-120C", 18, 6),
        ("temperature-24h-4.8V", 18, 6),
        ("time-140C-4.8V", 18, 6),
        ("time-140C-200mAhg", 18, 6),
        ("ocv-120C-4.8V", 18, 6),
    ],
)
def test_shipped_campaigns(name: str, cells: int, conditions: int) -> None:
    assert validate_campaign_file(name) == []
    campaign = load_campaign(name)
    assert len(campaign.cells) == cells and len(campaign.conditions) == conditions
    assert all(c.replicate in (1, 2, 3) for c in campaign.cells)
    assert set(list_campaigns()) >= {"temperature-24h", "time-140C", "charge-end", "ocv-120C"}


def test_time_series_holds(tmp_path: Path) -> None:
    campaign = load_campaign("time-140C")
    holds = sorted({next(s for s in c.protocol.steps if isinstance(s, Heat)).hold_s for c in campaign.cells})
    assert holds == [0.0, 90.0, 600.0, 3600.0, 14400.0, 86400.0]


def test_every_error_with_location(tmp_path: Path) -> None:
    data = {
        "name": "bad",
        "protocol": "titration-portion",
        "replicates": 0,
        "colour": "red",
        "samples": {"batch": {"id": "B1"}, "cell_mass": "7 kilos!"},
        "matrix": {"temperature": ["25 degC"]},
    }
    issues = validate_campaign_file(write(tmp_path, data))
    assert sorted(i.location for i in issues) == ["colour", "replicates", "samples.cell_mass"]
    assert all(str(i).startswith(str(tmp_path / "campaign.yaml")) for i in issues)


def test_condition_invalid_for_protocol_and_unknown_key(tmp_path: Path) -> None:
    data = {**BASE, "matrix": {"temperature": ["25 degC", "900 degC"], "pressure": ["1 bar"]}}
    issues = validate_campaign_file(write(tmp_path, data))
    messages = [str(i) for i in issues]
    assert any(
        "matrix: protocol titration-portion: parameters: unknown parameter 'pressure'" in m for m in messages
    )
    data = {**BASE, "matrix": {"temperature": ["25 degC", "900 degC"]}}
    issues = validate_campaign_file(write(tmp_path, data))
    assert (
        len(issues) == 1 and "steps[1].heat.temperature" in issues[0].message and "900" in issues[0].location
    )


def test_missing_protocol_and_too_little_powder(tmp_path: Path) -> None:
    with pytest.raises(CampaignError) as info:
        load_campaign(write(tmp_path, {**BASE, "protocol": "nope"}))
    assert [i.location for i in info.value.issues] == ["protocol"]
    data = {**BASE, "samples": {**BASE["samples"], "cell_mass": "9 mg"}}
    issues = validate_campaign_file(write(tmp_path, data))
    assert [i.location for i in issues] == ["samples.cell_mass"]
