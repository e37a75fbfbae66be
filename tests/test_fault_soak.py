"""Soak test (issue 14, deliverable 5): a campaign on simulated Keithley 2450s whose links drop,
garble and delay replies and go down for a few exchanges, over a thousand times, ends exactly as
the same campaign on perfect links: no cell failed, no point lost or doubled, every point inside
its cell's limits."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator.campaign_file import parse_campaign
from orchestrator.campaign_run import run_campaign
from orchestrator.lab import parse_lab
from orchestrator.operator_console import ConsoleOperator
from orchestrator.storage import read_journal
from simulators import faults

CAMPAIGN = {
    "name": "soak",
    "protocol": "charge-rest-discharge",
    "replicates": 4,
    "cell_prefix": "S",
    "samples": {"batch": {"id": "LTNO-x04-B1", "material": "x04"}, "cell_mass": "5 mg"},
    "matrix": {"charge_end": ["4.5 V"], "rest": ["12 h"], "current": ["100 mA/g"]},
}


def _lab() -> dict:
    smu = {"driver": "keithley2450", "resource": "sim", "simulated": True, "poll_interval": "2 s"}
    return {
        "lab": {"name": "soak"},
        "instruments": {"smu1": smu, "smu2": dict(smu)},
        "cells": [
            {
                "name": f"ch-{n}",
                "instrument": n,
                "active_mass": "5 mg",
                "voltage_min": "1.5 V",
                "voltage_max": "4.6 V",
            }
            for n in ("smu1", "smu2")
        ],
    }


def _campaign(data, monkeypatch, spec: str):
    monkeypatch.setenv("RELAXLAB_SIM_FAULTS", spec)
    operator = ConsoleOperator(ask=lambda prompt: "5", say=lambda text: None)
    return run_campaign(parse_campaign(CAMPAIGN), data, lab=parse_lab(_lab()), responder=operator)


def test_a_campaign_survives_a_thousand_link_faults_with_nothing_lost_or_doubled(
    tmp_path, monkeypatch
) -> None:
    reference = _campaign(tmp_path / "perfect", monkeypatch, "")
    assert not reference.failed
    faults.INJECTED.clear()
    soaked = _campaign(tmp_path / "faulty", monkeypatch, "rate=0.3,seed=7,kinds=drop+garble+delay+disconnect")
    injected = dict(faults.INJECTED)
    assert sum(injected.values()) >= 1000, injected
    assert all(injected.get(k, 0) > 100 for k in ("drop", "garble", "delay", "disconnect")), injected
    assert not soaked.failed
    for cell, row in soaked.cells.items():
        _, got = read_journal(tmp_path / "faulty", row["run"])
        _, want = read_journal(tmp_path / "perfect", reference.cells[cell]["run"])
        assert len(got) == len(want) > 100  # nothing lost, nothing doubled
        np.testing.assert_array_equal(got["timestamp_s"], want["timestamp_s"])
        np.testing.assert_allclose(got["voltage_V"], want["voltage_V"], rtol=0, atol=1e-12)
        assert got["voltage_V"].between(1.5, 4.6).all()  # every point inside the cell's limits
        assert row["discharge_capacity_mAh_g"] == pytest.approx(
            reference.cells[cell]["discharge_capacity_mAh_g"]
        )
