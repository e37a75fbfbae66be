"""The HTML report draws the figures the data supports, and only those."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from analysis.kinetics import remaining_fraction
from analysis.report import build_report
from analysis.synthetic import cc, rest, standard_cycle, synthetic_run

NI_REF, O_REF = 70.0, 150.0


def relaxed_cell(temperature_C: float, duration_s: float, replicate: int) -> tuple[dict, pd.DataFrame]:
    """Fresh cell after relaxation: OCV rest (OCV linear in Ni fraction), then discharge."""
    u = float(remaining_fraction(duration_s, temperature_C, 3.61e-3, 65.8e3, 6.34))
    u *= 1 + 0.01 * (replicate - 1)
    ni = NI_REF * u
    ocv = 3.74 + 0.5 * u
    parts = [
        rest(900.0, ocv + 0.05, ocv, 200, tau_s=60.0),
        *standard_cycle(ni, O_REF + 0.6 * (NI_REF - ni))[2:],
    ]
    meta = {"cell": f"T{temperature_C:g}-t{duration_s:g}-r{replicate}", "temperature_C": temperature_C,
            "duration_s": duration_s, "replicate": replicate, "active_mass_g": 0.007}  # fmt: skip
    return meta, synthetic_run(parts, seed=replicate)


def campaign_runs() -> list[tuple[dict, pd.DataFrame]]:
    conditions = [(25, 86400), (80, 86400), (140, 86400), (140, 0), (140, 900), (140, 3600)]
    return [relaxed_cell(t, d, r) for t, d in conditions for r in range(3)]


def pngs_in(html: str) -> int:
    return len(re.findall(r'src="data:image/png;base64,', html))


def test_report_for_a_campaign_with_lattice_gitt_and_schedule(tmp_path):
    runs = campaign_runs()
    gitt = []
    for k in range(4):
        gitt += [cc((10 * k, 10 * k + 10), (3.8, 3.9), 20, 30), rest(8 * 3600, 3.9, 3.7, 20)]
    for _ in range(4):
        gitt += [cc((0, 10), (3.3, 3.2), -20, 30), rest(8 * 3600, 3.2, 3.4, 20)]
    cycling = synthetic_run(standard_cycle())
    runs += [({"cell": "cycling"}, cycling), ({"cell": "gitt"}, synthetic_run(gitt))]
    times = np.linspace(0, cycling["time_s"].iloc[-1], 30)
    lattice = pd.DataFrame({"time_s": times, "lattice_A": 4.15 - 0.0001 * np.arange(30)})
    schedule = pd.DataFrame(
        {"cell": ["A", "A", "B"], "start_s": [0, 3600, 0], "end_s": [3600, 90000, 86400],
         "label": ["charge", "relax 140 C", "relax 80 C"]}
    )  # fmt: skip
    index = build_report(tmp_path / "out", runs, lattice=lattice, schedule=schedule)
    html = index.read_text()
    names = {p.name for p in index.parent.glob("*.png")}
    assert names == {
        "cycling.png", "dqdv.png", "discharge_conditions.png", "ocv_fit.png", "kinetics.png",
        "lattice.png", "gitt_20.png", "gantt.png",
    }  # fmt: skip
    assert pngs_in(html) == len(names)  # every figure embedded: the page stands alone
    summary = pd.read_csv(index.parent / "campaign_summary.csv")
    assert len(summary) == 6 and (summary["n"] == 3).all()
    # OCV = 3.74 + 0.5 u by construction; u = Ni plateau / that of the 0 s cells
    m = re.search(r"OCV = ([0-9.]+) \(([0-9.]+)\) V", html)
    assert m is not None
    assert abs(float(m.group(1)) - 3.74) < 0.01
    for part in ("Lattice parameter", "GITT", "Campaign schedule", "Relaxation kinetics"):
        assert part in html


def test_report_with_a_single_cycling_run_draws_only_what_it_supports(tmp_path):
    index = build_report(tmp_path, [({"cell": "c1"}, synthetic_run(standard_cycle()))])
    names = {p.name for p in tmp_path.glob("*.png")}
    assert names == {"cycling.png", "dqdv.png"}
    assert not (tmp_path / "campaign_summary.csv").exists()
    assert pngs_in(index.read_text()) == 2


def test_report_from_a_campaign_table_alone(tmp_path):
    table = pd.DataFrame(
        {
            "temperature_C": [25, 25, 140, 140, 140, 140],
            "duration_s": [86400, 86400, 86400, 86400, 0, 0],
            "replicate": [1, 2, 1, 2, 1, 2],
            "ni_plateau_mAh_g": [60.0, 62.0, 5.0, 6.0, 70.0, 71.0],
            "o_plateau_mAh_g": [150.0, 152.0, 190.0, 192.0, 148.0, 150.0],
            "ocv_V": [4.17, 4.18, 3.78, 3.785, 4.24, 4.245],
        }
    )
    index = build_report(tmp_path, [], campaign_table=table)
    names = {p.name for p in tmp_path.glob("*.png")}
    assert names == {"discharge_conditions.png", "ocv_fit.png"}  # 2 temperatures, 2 times: no kinetics
    assert (tmp_path / "campaign_summary.csv").is_file()
    assert "Campaign summary" in index.read_text()
