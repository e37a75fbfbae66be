"""Acceptance through the public CLI: for the shipped example protocols, the capacities that
``relaxlab report RUN --json`` gives equal an independent integration of the current that
``relaxlab data export RUN --format csv`` writes (0.5 %), whatever the capacity counter does
(it restarts at every GITT pulse and rest and at every loop sub-step)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from orchestrator.cli import app

runner = CliRunner()


def _invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


#: A current reversal passing less than this share of the largest run's charge (the noise
#: around zero current in a CV sweep, the first reading of a sweep that starts away from the
#: cell's voltage) is no half-cycle of its own (README, "Capacities").
NOISE_SHARE = 0.01


def _half_cycles_by_integration(frame: pd.DataFrame) -> list[tuple[str, float]]:
    """(direction, charge mAh/g) of each half-cycle, by trapezoids of the exported current over time.

    A half-cycle is a run of one current sign; points at zero current (rests, GITT relaxations)
    stay in the half-cycle they interrupt. A reversal that passes less than ``NOISE_SHARE`` of
    the largest run's charge starts no half-cycle: its charge counts against the half-cycle it
    interrupts (net charge in the half-cycle's direction), before the first one for nothing.
    """
    t = frame["time_s"].to_numpy(float)
    i = frame["specific_current_mA_g"].to_numpy(float)  # current_A per gram of active material
    sign = np.sign(np.where(np.abs(i) > 1e-4 * np.abs(i).max(), i, 0.0))
    moving = np.nonzero(sign)[0]
    change = moving[1:][sign[moving[1:]] != sign[moving[:-1]]]
    bounds = [moving[0], *change, len(t)]
    runs = []  # (sign, signed charge mAh/g)
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        seg = slice(a, b)
        runs.append((sign[a], np.trapezoid(i[seg], t[seg]) / 3600.0))
    top = max(abs(q) for _, q in runs)
    halves: list[list[float]] = []  # [sign, net signed charge]
    for s, q in runs:
        if abs(q) >= NOISE_SHARE * top and (not halves or halves[-1][0] != s):
            halves.append([s, q])
        elif halves:
            halves[-1][1] += q
    return [("charge" if s > 0 else "discharge", abs(q)) for s, q in halves]


def _run_and_compare(tmp_path: Path, protocol: str, cycles: int) -> None:
    data = str(tmp_path / "data")
    ran = json.loads(_invoke("run", protocol, "--lab", "simulated", "--json", "--no-tiled",
                             "--data-dir", data, "--out", str(tmp_path / "png")))  # fmt: skip
    uid = ran["run"]
    assert ran["plot"] and Path(ran["plot"]).is_file()
    csv = tmp_path / "run.csv"
    _invoke("data", "export", uid[:8], "--format", "csv", "--out", str(csv), "--data-dir", data)
    report = json.loads(
        _invoke("report", uid[:8], "--json", "--data-dir", data, "--out", str(tmp_path / "r"))
    )
    (summary,) = report["runs"]
    frame = pd.read_csv(csv)
    assert "counter" in summary["capacity_method"]  # the report says how it integrated

    expected = _half_cycles_by_integration(frame)
    got = summary["half_cycles"]
    assert [h["direction"] for h in got] == [d for d, _ in expected]
    for h, (_, q) in zip(got, expected, strict=True):
        assert h["capacity_mAh_g"] == pytest.approx(q, rel=5e-3)
    table = summary["cycles"]
    assert len(table) == cycles
    charges = [q for d, q in expected if d == "charge"]
    discharges = [q for d, q in expected if d == "discharge"]
    for row, qc, qd in zip(table, charges, discharges, strict=True):
        assert row["charge_mAh_g"] == pytest.approx(qc, rel=5e-3)
        assert row["discharge_mAh_g"] == pytest.approx(qd, rel=5e-3)
        assert row["coulombic_efficiency"] == pytest.approx(qd / qc, rel=1e-2)
    if "cv" in set(frame["step_type"]):  # a CV hold belongs to the charge it ends
        assert [h["step_types"] for h in got if h["direction"] == "charge"] == ["cc+cv"] * cycles
    # the export tells charge from discharge and numbers the cycles
    assert set(frame["cycle"]) == set(range(1, cycles + 1))
    assert "loop" not in set(frame["step_type"])
    # no point's current runs against its segment's direction (README, ``direction``); a voltage
    # source holding the cell between its charge and discharge branches reads 0 A
    moving = frame[frame["direction"] != "rest"]
    want = np.where(moving["direction"] == "charge", 1, -1)
    assert (np.sign(moving["current_A"]) != -want).all()
    assert (np.sign(moving["current_A"]) == want).mean() > 0.99


@pytest.mark.parametrize(
    ("protocol", "cycles"),
    [("gitt-8h", 1), ("galvanostatic-cycling", 2), ("window-opening", 6)],
)
def test_report_capacities_equal_the_integrated_exported_current(tmp_path, protocol, cycles):
    _run_and_compare(tmp_path, protocol, cycles)


def test_cc_cv_charges_are_one_half_cycle_and_match_the_integrated_current(tmp_path):
    protocol = tmp_path / "cccv.yaml"
    protocol.write_text(
        "name: cccv\ndescription: CC-CV charge, CC discharge\ndefaults: {record_interval: 10 s}\nsteps:\n"
        "  - loop:\n      count: 1\n      steps:\n"
        "        - charge: {current: 20 mA/g, until: 4.6 V}\n"
        "        - cv: {voltage: 4.6 V, until: {current: 5 mA/g, time: 2 h}}\n"
        "        - discharge: {current: 20 mA/g, until: 2.0 V}\n"
    )
    _run_and_compare(tmp_path, str(protocol), 1)


def test_cv_capacities_equal_the_integrated_exported_current(tmp_path):
    protocol = tmp_path / "cv-short.yaml"
    protocol.write_text(
        "name: cv-short\ndescription: two fast CV cycles\nsteps:\n"
        "  - rest: {duration: 1 h, record_interval: 60 s}\n"
        "  - sweep: {start: 3.2 V, vertices: [4.8 V, 1.5 V], rate: 0.5 mV/s, cycles: 2, record_interval: 5 s}\n"
    )
    _run_and_compare(tmp_path, str(protocol), 2)
