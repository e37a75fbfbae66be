"""Calibration targets T1-T9 from simulated measurements; edited materials are reported faithfully."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulators.calibrate import format_table, results_to_json, run_calibration
from simulators.material import DEFAULT_MATERIAL


@pytest.fixture(scope="module")
def x04() -> list:
    return run_calibration()


def test_all_targets_pass_for_x04(x04: list) -> None:
    assert [r.id for r in x04] == [f"T{i}" for i in range(1, 10)]
    failed = [(r.id, r.simulated) for r in x04 if not r.passed]
    assert failed == []


def test_json_and_table(x04: list) -> None:
    data = json.loads(results_to_json(x04))
    assert data[0]["id"] == "T1" and set(data[0]) >= {"simulated", "target", "tolerance", "passed"}
    assert "9/9 targets passed" in format_table(x04)


def test_edited_material_moves_results(tmp_path: Path, x04: list) -> None:
    text = DEFAULT_MATERIAL.read_text()
    text = text.replace("E_eq_V = 3.74", "E_eq_V = 3.60").replace("Ea_kJ_mol = 65.8", "Ea_kJ_mol = 80")
    p = tmp_path / "edited.toml"
    p.write_text(text)
    res = {r.id: r for r in run_calibration(p)}
    t5 = res["T5"]
    assert not t5.passed
    icpt = float(str(t5.simulated).split("intercept ")[1].split(" V")[0])
    assert icpt == pytest.approx(3.60, abs=0.02)
    base = {r.id: r for r in x04}

    def conv(r) -> list[float]:
        return [float(s.split()[-2]) for s in str(r.simulated).split(", ")]

    # higher activation energy: every conversion below 140 C drops
    assert all(a < b for a, b in zip(conv(res["T4"])[:-1], conv(base["T4"])[:-1], strict=True))
