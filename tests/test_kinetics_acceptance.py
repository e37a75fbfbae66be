"""Acceptance through the public commands (``relaxlab campaign run`` -> ``relaxlab report --json``)
on the simulated lab, with held-out materials: material files written here from the shipped
x04.toml with other E_eq, Ea and beta, given to the campaigns by a path relative to the
campaign file. The report must recover what the file says, within the issue's tolerances,
from the recorded temperature histories (oven log, transfers, bench time).

Kept small (few conditions, two replicates): about a minute per material.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator.cli import app

pytestmark = pytest.mark.acceptance

SHIPPED = Path(__file__).resolve().parents[1] / "simulators" / "materials" / "x04.toml"

SERIES_45 = """\
name: {name}
protocol: titration-portion
replicates: 2
cell_prefix: {prefix}
samples:
  batch: {{id: HELD-B1, material: materials/held-out.toml}}
  powder: {{id: HELD-B1-{prefix}, charged_to: {charge}, mass: 100 mg}}
  cell_mass: 5 mg
conditions:
{conditions}
"""


def _material(folder: Path, e_eq_V: float, ea_kJ_mol: float, beta: float) -> Path:
    text = SHIPPED.read_text()
    for key, value in (("E_eq_V", e_eq_V), ("Ea_kJ_mol", ea_kJ_mol), ("beta", beta)):
        text, n = re.subn(rf"^{key} = [0-9.eE+-]+", f"{key} = {value}", text, count=1, flags=re.M)
        assert n == 1, key
    path = folder / "materials" / "held-out.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _invoke(*args: str) -> dict:
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.mark.parametrize(("e_eq_V", "ea_kJ_mol", "beta"), [(3.85, 55.0, 4.5)])
def test_held_out_material_is_recovered_through_campaign_run_and_report(
    tmp_path: Path, e_eq_V: float, ea_kJ_mol: float, beta: float
) -> None:
    material = _material(tmp_path, e_eq_V, ea_kJ_mol, beta)
    assert _invoke("validate", str(material))[str(material)] == []
    series = {
        # the paper's titration state (4.5 V): time at 140 C, temperature at 24 h, unheated reference
        "held-45": ("4.5 V", "H45", ["25 degC, time: 0 s", "140 degC, time: 90 s", "140 degC, time: 1 h",
                                     "140 degC, time: 24 h", "80 degC, time: 24 h", "110 degC, time: 4 h"]),
        # a 4.8 V powder (u = 1 by definition) anchors beta on the rate law's scale
        "held-48": ("4.8 V", "H48", ["25 degC, time: 0 s", "140 degC, time: 1 h", "80 degC, time: 24 h"]),
    }  # fmt: skip
    data = tmp_path / "data"
    for name, (charge, prefix, conditions) in series.items():
        body = "\n".join(f"  - {{temperature: {c}}}" for c in conditions)
        path = tmp_path / f"{name}.yaml"
        path.write_text(SERIES_45.format(name=name, prefix=prefix, charge=charge, conditions=body))
        assert _invoke("validate", str(path))[str(path)] == []
        run = _invoke("campaign", "run", str(path), "--data-dir", str(data), "--out", str(tmp_path / "out"))
        assert not run["failed"]
    fits = _invoke("report", *series, "--data-dir", str(data), "--out", str(tmp_path / "report"))

    assert abs(fits["E_eq_V"] - e_eq_V) <= 0.02 and fits["E_eq_charge_state"] == "4.5 V"
    assert abs(fits["Ea_kJ_mol"] - ea_kJ_mol) <= 5.0
    lo, hi = fits["Ea_kJ_mol_95"]
    assert lo <= ea_kJ_mol <= hi
    assert abs(fits["beta"] / beta - 1.0) <= 0.2
    assert fits["kinetics"]["u_equals_1_at"] == "end of the charge to 4.8 V"
    assert 0.0 < fits["kinetics"]["u0"]["4.5 V"] < 1.0  # a 4.5 V charge leaves less intermediate
    # every cell is accounted for, by condition and in the fit
    assert sum(row["n"] for row in fits["conditions"]) == 18 == len(fits["kinetics"]["runs"])
    assert all(len(row["runs"]) == row["n"] == 2 for row in fits["conditions"])
    figures = {Path(f).name for f in fits["figures"]}
    assert {"arrhenius.png", "kinetics_log_time.png", "ocv_fit.png"} <= figures


def _material_truth(name: str) -> dict[str, float]:
    import tomllib

    text = (SHIPPED.parent / f"{name}.toml").read_text()
    data = tomllib.loads(text)
    return {
        "E_eq_V": data["ocv"]["E_eq_V"],
        "Ea_kJ_mol": data["lmct"]["Ea_kJ_mol"],
        "beta": data["lmct"]["beta"],
    }


@pytest.mark.skipif(
    os.environ.get("RELAXLAB_SHIPPED_ACCEPTANCE") != "1",
    reason="four whole shipped campaigns (tens of minutes): set RELAXLAB_SHIPPED_ACCEPTANCE=1 to run",
)
def test_shipped_campaigns_give_the_papers_e_eq_and_the_models_kinetics(tmp_path: Path) -> None:
    """Issue 11's acceptance on the shipped 4.5 V campaigns (x04), exactly as a user runs them:
    E_eq from the OCV series, Ea and beta from the temperature and time series (the 4.8 V time
    variant anchors u = 1, the rate law's scale), and the paper's "0->90 s moves as much as
    4 h->24 h" at 140 C in the campaign's own per-condition means."""
    truth = _material_truth("x04")
    data = tmp_path / "data"
    names = ("ocv-120C", "temperature-24h", "time-140C", "time-140C-4.8V")
    for name in names:
        run = _invoke("campaign", "run", name, "--data-dir", str(data), "--out", str(tmp_path / "out"))
        assert not run["failed"]
    fits = _invoke("report", *names, "--data-dir", str(data), "--out", str(tmp_path / "report"))

    assert fits["E_eq_charge_state"] == "4.5 V"
    assert abs(fits["E_eq_V"] - 3.74) <= 0.02  # the paper's 3.74(2) V
    lo, hi = fits["E_eq_V_95"]
    assert lo <= truth["E_eq_V"] <= hi
    assert abs(fits["Ea_kJ_mol"] - truth["Ea_kJ_mol"]) <= 5.0
    lo, hi = fits["Ea_kJ_mol_95"]
    assert lo <= truth["Ea_kJ_mol"] <= hi
    assert abs(fits["beta"] / truth["beta"] - 1.0) <= 0.2
    ni = {row["duration_s"]: row["ni_plateau_mAh_g_mean"] for row in fits["conditions"]
          if row["campaign"] == "time-140C"}  # fmt: skip
    ratio = (ni[0.0] - ni[90.0]) / (ni[4 * 3600.0] - ni[24 * 3600.0])
    assert 0.7 <= ratio <= 1.3, ratio


def test_unknown_material_is_caught_by_validate_before_anything_runs(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(SERIES_45.format(name="bad", prefix="B", charge="4.5 V", conditions="  - {temperature: 25 degC, time: 0 s}")
                    .replace("materials/held-out.toml", "materials/missing.toml"))  # fmt: skip
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 1
    assert "samples.batch.material" in result.output and "x04, x05" in result.output
    result = CliRunner().invoke(app, ["campaign", "run", str(path), "--data-dir", str(tmp_path / "d")])
    assert result.exit_code != 0 and "unknown material" in result.output
    assert not (tmp_path / "d" / "journal").exists()  # nothing ran
