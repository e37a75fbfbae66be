"""A campaign on a lab file's channels, reached over TCP like hardware, with a person (scripted)
answering the operator prompts."""

from __future__ import annotations

import socket

import pytest

from orchestrator.campaign_file import load_campaign
from orchestrator.campaign_run import run_campaign
from orchestrator.lab import LabFileError, parse_lab
from orchestrator.operator_console import ConsoleOperator
from orchestrator.storage import journal_documents, list_journal_runs, read_journal


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
    # On a lab file each channel's simulated cell stays in place (README): the channel's first cell
    # is a pristine one, the later ones start where the previous cell's discharge left it.
    runs = {run: read_journal(tmp_path, run) for run in table["run"]}
    table["started"] = [runs[run][0]["time"] for run in table["run"]]
    firsts = []
    for _channel, rows in table.sort_values("started").groupby("channel"):
        frames = [runs[run][1] for run in rows["run"]]
        for before, after in zip(frames, frames[1:], strict=False):
            assert after["voltage_V"].iloc[0] == pytest.approx(before["voltage_V"].iloc[-1], abs=0.1)
        firsts.append(rows.iloc[0])
    # a pristine cell charged to 4.5 V at 20 mA/g passes 200 mAh/g (the material: 200 mAh/g at
    # 4.40 V under 20 mA/g; calibration target T11)
    pristine_45 = [row for row in firsts if row["charge_end"] == "4.5 V"]
    assert pristine_45 and all(row["charge_capacity_mAh_g"] > 200.0 for row in pristine_45)
    # a charge to a voltage ends at that voltage
    for run, end in zip(table["run"], table["charge_end"], strict=True):
        if end.endswith(" V"):
            charge = runs[run][1][runs[run][1]["step"] == 0]
            assert charge["voltage_V"].iloc[-1] == pytest.approx(float(end[:-2]), abs=5e-3)
    # 20 mA/g on the mass the operator entered (5.2 mg), not the lab file's 5 mg
    _, frame = read_journal(tmp_path, table["run"].iloc[0])
    charge = frame[frame["current_A"] > 0]
    assert charge["current_A"].iloc[0] == pytest.approx(20e-3 * 5.2e-3, rel=1e-6)


def test_a_heating_campaign_is_refused_when_the_lab_has_no_oven(tmp_path) -> None:
    lab = parse_lab(
        {
            "instruments": {"smu0": {"driver": "keithley2450", "resource": "sim", "simulated": True}},
            "cells": [{"name": "pos0", "instrument": "smu0", "active_mass": "5 mg"}],
        }
    )
    with pytest.raises(ValueError, match='has no oven: add one .*driver = "eurotherm"'):
        run_campaign(load_campaign("temperature-24h"), tmp_path, lab=lab, responder=lambda *a: None)
    assert not (tmp_path / "journal").exists()  # nothing ran


def test_a_cell_on_an_oven_is_refused() -> None:
    with pytest.raises(LabFileError, match=r"cells\[0\].instrument: 'oven1' is an oven"):
        parse_lab(
            {
                "instruments": {"oven1": {"driver": "eurotherm", "resource": "sim", "simulated": True}},
                "cells": [{"name": "pos0", "instrument": "oven1", "active_mass": "5 mg"}],
            }
        )


def test_heating_campaign_on_a_lab_file_shares_its_oven_and_cells_wait_for_their_portion(tmp_path) -> None:
    lab = parse_lab(
        {
            "instruments": {
                "smu0": {"driver": "keithley2450", "resource": "sim", "simulated": True},
                "smu1": {"driver": "keithley2450", "resource": "sim", "simulated": True},
                "oven1": {"driver": "eurotherm", "resource": "sim", "simulated": True, "address": 3},
            },
            "cells": [{"name": f"pos{i}", "instrument": f"smu{i}", "active_mass": "5 mg"} for i in range(2)],
        }
    )
    # the titration portion, with the discharge also bounded in time: on a lab file the channels'
    # (simulated) cells are whatever sits on them, not the heated powder
    (tmp_path / "portion.yaml").write_text(
        "name: portion\nparameters: {temperature: 140 degC, time: 1 h}\nsteps:\n"
        "  - manual: {instruction: Weigh the portion into a boat and load it into the oven, record: {portion_mass: mg}}\n"
        "  - heat: {temperature: $temperature, hold: $time, cool_to: 25 degC}\n"
        "  - manual: {instruction: Build a fresh cell from the relaxed powder, record: {active_mass: mg}}\n"
        "  - rest: {duration: 15 min, record_interval: 60 s}\n"
        "  - discharge: {current: 20 mA/g, until: {voltage: 1.85 V, time: 1 h}, record_interval: 60 s}\n"
    )
    (tmp_path / "c.yaml").write_text(
        "name: heat-on-lab\nprotocol: portion.yaml\nreplicates: 1\n"
        "samples:\n  batch: {id: B1, material: x04}\n  powder: {id: B1-c4.8V, charged_to: 4.8 V, mass: 20 mg}\n"
        "  cell_mass: 5 mg\nmatrix:\n  temperature: [140 degC]\n  time: [10 min, 1 h]\n"
    )
    said: list[str] = []
    result = run_campaign(
        load_campaign(tmp_path / "c.yaml"), tmp_path, lab=lab,
        responder=ConsoleOperator(ask=lambda prompt: "5", say=said.append),
    )  # fmt: skip
    assert not result.failed and len(result.cells) == 2
    runs = {r["uid"]: r for r in list_journal_runs(tmp_path)}
    portions = {}
    for uid, _run in runs.items():
        docs = list(journal_documents(tmp_path / "journal" / f"{uid}.jsonl"))
        start = docs[0][1]
        if start.get("job") == "portion":
            oven_stream = next(d["uid"] for n, d in docs if n == "descriptor" and d["name"] == "oven")
            pages = [d for n, d in docs if n == "event_page" and d["descriptor"] == oven_stream]
            log = [pair for d in pages
                   for pair in zip(d["timestamps"]["oven1_temperature"], d["data"]["oven1_temperature"], strict=True)]  # fmt: skip
            stop = docs[-1][1]
            portions[start["portion"]] = (start, stop, log)
    assert len(portions) == 2
    for name, (start, stop, log) in portions.items():
        assert start["oven"] == "oven1" and stop["exit_status"] == "success"
        assert max(t for _, t in log) == pytest.approx(140.0, abs=2.0)
        hot = [when for when, t in log if t > 138.0]
        hold_s = 600.0 if name.endswith("10min") else 3600.0
        assert hot[-1] - hot[0] >= hold_s - 1.0
    # one oven, two portions: the second heating began after the first had ended
    (s1, e1, _), (s2, e2, _) = sorted(portions.values(), key=lambda p: p[0]["time"])
    assert s2["time"] >= e1["time"]
    for _cell, row in result.cells.items():
        start, frame = read_journal(tmp_path, row["run"])
        portion_stop = portions[start["sample"]][1]
        assert start["time"] >= portion_stop["time"]  # the cell waited for its portion
        assert list(frame.groupby("step")["step_type"].first()) == ["rest", "cc"]
    # the operator was asked to load and to take out each portion, and to build each cell
    assert sum("load it into the oven" in line for line in said) == 2
    assert sum("out of oven1" in line for line in said) == 2
    assert sum("Build a fresh cell" in line for line in said) == 2
    assert not any("Mount cell" in line for line in said)  # building the cell was the mounting
