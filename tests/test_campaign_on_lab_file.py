"""A campaign on a lab file's channels, reached over TCP like hardware, with a person (scripted)
answering the operator prompts."""

from __future__ import annotations

import socket

import pytest

from orchestrator.campaign_file import load_campaign
from orchestrator.campaign_run import run_campaign
from orchestrator.lab import parse_lab
from orchestrator.operator_console import ConsoleOperator
from orchestrator.storage import read_journal


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.tcp
def test_charge_end_campaign_on_three_tcp_channels_with_a_console_operator(tmp_path) -> None:
    lab = parse_lab(
        {
            "lab": {"name": "bench-3"},
            "instruments": {
                f"smu{i}": {
                    "driver": "keithley2450",
                    "resource": f"TCPIP0::127.0.0.1::{_port()}::SOCKET",
                    "simulated": True,
                }  # fmt: skip
                for i in range(3)
            },
            "cells": [{"name": f"pos{i}", "instrument": f"smu{i}", "active_mass": "5 mg"} for i in range(3)],
        }
    )
    prompts: list[str] = []
    said: list[str] = []

    def person(prompt: str) -> str:
        prompts.append(prompt)
        return "5.2"  # mg, typed without its unit

    campaign = load_campaign("charge-end")
    result = run_campaign(campaign, tmp_path, lab=lab, responder=ConsoleOperator(ask=person, say=said.append))
    assert not result.failed
    table = result.table()
    assert len(table) == 9 and set(table["channel"]) == {"pos0", "pos1", "pos2"}
    # every cell was mounted by the operator, who entered its mass; the run used it
    assert sum("Mount cell" in line for line in said) == 9
    assert all(p.strip().startswith("active_mass (mg)") for p in prompts)
    by_end = table.groupby("charge_end")["charge_capacity_mAh_g"].mean()
    assert by_end["200 mAh/g"] == pytest.approx(200.0, rel=1e-3)
    assert by_end["4.8 V"] > by_end["200 mAh/g"] > by_end["4.5 V"]
    # 20 mA/g on the mass the operator entered (5.2 mg), not the lab file's 5 mg
    _, frame = read_journal(tmp_path, table["run"].iloc[0])
    charge = frame[frame["current_A"] > 0]
    assert charge["current_A"].iloc[0] == pytest.approx(20e-3 * 5.2e-3, rel=1e-6)


def test_a_heating_campaign_is_refused_before_anything_moves(tmp_path) -> None:
    lab = parse_lab(
        {
            "instruments": {"smu0": {"driver": "keithley2450", "resource": "sim", "simulated": True}},
            "cells": [{"name": "pos0", "instrument": "smu0", "active_mass": "5 mg"}],
        }
    )
    with pytest.raises(ValueError, match="no ovens yet"):
        run_campaign(load_campaign("temperature-24h"), tmp_path, lab=lab, responder=lambda *a: None)
