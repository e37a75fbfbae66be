"""SIGKILL the orchestrator in the middle of a campaign on a free-running simulated lab, resume it,
and find every step that was running re-attached, nothing repeated, lost or doubled.

The simulated lab runs here on a :class:`~drivers.clock.ScaledClock` (2000 simulated seconds per
wall second) and serves two EmStat4s and two Keithley 2450s on 127.0.0.1, as ``relaxlab sim
serve`` does; the orchestrator is the ``relaxlab`` command in a child process, killed while every
cell rests. The instruments go on without it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from drivers.clock import ScaledClock
from orchestrator.campaign_file import load_campaign
from orchestrator.campaign_run import run_campaign
from orchestrator.lab import parse_lab
from orchestrator.operator_console import ConsoleOperator
from orchestrator.simlab import SimulatedLab
from orchestrator.simtime import read_clock_file, write_clock_file
from orchestrator.storage import list_journal_runs, read_journal, read_runs

SPEED = 2000.0
REST_S = 3 * 3600.0
CAMPAIGN = """\
name: kill-and-reattach
protocol: charge-rest-discharge
replicates: 4
cell_prefix: K
samples:
  batch: {id: LTNO-x04-B1, material: x04}
  cell_mass: 5 mg
matrix:
  charge_end: [4.8 V]
  rest: [3 h]
  current: [100 mA/g]
"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _lab(resources: dict[str, str]) -> dict:
    instruments = {name: {"driver": "emstat4" if name.startswith("es") else "keithley2450",
                          "resource": resource, "simulated": True,
                          "poll_interval": "30 s" if name.startswith("es") else "10 s"}
                   for name, resource in resources.items()}  # fmt: skip
    cells = [{"name": f"ch-{name}", "instrument": name, "active_mass": "5 mg"} for name in resources]
    return {"lab": {"name": "free-running"}, "instruments": instruments, "cells": cells}


def _toml(lab: dict) -> str:
    lines = ['[lab]\nname = "free-running"\n']
    for name, inst in lab["instruments"].items():
        lines.append(f"[instruments.{name}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in inst.items()]
        lines.append("")
    for cell in lab["cells"]:
        lines.append("[[cells]]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in cell.items()]
        lines.append("")
    return "\n".join(lines)


def _operator() -> ConsoleOperator:
    return ConsoleOperator(ask=lambda prompt: "5", say=lambda text: None)


def _kill_and_resume(tmp_path: Path, index: int, wait_s: float):
    """Run the campaign in a child process, SIGKILL it once every cell runs protocol step
    ``index`` (and ``wait_s`` more), resume it here. Returns (reference, result, data, state
    path, clock time of the kill)."""
    resources = {"es1": f"socket://127.0.0.1:{_port()}", "es2": f"socket://127.0.0.1:{_port()}",
                 "smu1": f"TCPIP0::127.0.0.1::{_port()}::SOCKET",
                 "smu2": f"TCPIP0::127.0.0.1::{_port()}::SOCKET"}  # fmt: skip
    lab_data = _lab(resources)
    (tmp_path / "lab.toml").write_text(_toml(lab_data))
    (tmp_path / "campaign.yaml").write_text(CAMPAIGN)
    campaign = load_campaign(tmp_path / "campaign.yaml")
    # the same campaign, uninterrupted, in simulated time: what the results should be
    reference = run_campaign(
        campaign,
        tmp_path / "reference",
        lab=parse_lab(_lab(dict.fromkeys(resources, "sim"))),
        responder=_operator(),
    )
    assert not reference.failed

    clock = ScaledClock(SPEED)
    lab_sim = SimulatedLab(parse_lab(lab_data), clock)
    lab_sim.serve_all()
    write_clock_file(clock, tmp_path / "clock.json")
    data = tmp_path / "data"
    state_path = data / "campaigns" / "kill-and-reattach" / "state.json"
    try:
        child = subprocess.Popen(
            [sys.executable, "-m", "orchestrator.cli", "campaign", "run", str(tmp_path / "campaign.yaml"),
             "--lab", str(tmp_path / "lab.toml"), "--sim-clock", str(tmp_path / "clock.json"),
             "--data-dir", str(data), "--out", str(tmp_path / "out"), "--json"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert child.stdin is not None
        child.stdin.write("5\n" * 8)  # the operator weighs each cell: 5 mg
        child.stdin.flush()
        deadline = time.monotonic() + 120
        while True:  # kill it once every cell is resting (protocol step 2, after mount and charge)
            assert child.poll() is None, child.communicate()[1]
            assert time.monotonic() < deadline, "the cells never all reached their rest"
            time.sleep(0.02)
            try:
                state = json.loads(state_path.read_text())
            except (FileNotFoundError, json.JSONDecodeError):
                continue
            running = [c.get("running") for c in state["cells"].values()]
            if len(running) == 4 and all(r and r["index"] == index for r in running):
                break
        time.sleep(wait_s)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        killed_at_s = clock.now()
        result = run_campaign(
            campaign, data, lab=parse_lab(lab_data), resume=True, clock=read_clock_file(tmp_path / "clock.json"),
            responder=_operator(),
        )  # fmt: skip
    finally:
        lab_sim.close()
    return reference, result, data, state_path, killed_at_s


@pytest.mark.tcp
def test_sigkill_mid_rest_then_resume_reattaches_every_running_step(tmp_path: Path) -> None:
    reference, result, data, state_path, killed_at_s = _kill_and_resume(
        tmp_path, 2, 0.15
    )  # 300 s into the rest
    assert not result.failed, result.failed
    state = json.loads(state_path.read_text())
    runs = {r["uid"]: r for r in list_journal_runs(data)}
    for cell, row in result.cells.items():
        chain = state["cells"][cell]["runs"]
        assert [runs[uid]["exit_status"] for uid in chain] == ["abort", "success"]
        first, _ = read_journal(data, chain[0])
        start, frame = read_runs(data, chain)
        # the resumed run re-attached the rest the killed one had started, on the same channel
        assert start["resumes"] == chain[0] and start["reattached_step"] is not None
        assert start["channel"] == first["channel"]
        assert list(frame.groupby("step")["step_type"].first()) == ["cc", "rest", "cc"]
        stamps = frame["timestamp_s"].to_numpy()
        assert np.all(np.diff(stamps) > 0)  # nothing doubled
        rest = frame[frame["step_type"] == "rest"]
        before = rest[rest["timestamp_s"] < killed_at_s]
        assert len(before) >= 1 and len(rest) > len(before)  # points from both sides of the kill
        span = rest["timestamp_s"].iloc[-1] - rest["timestamp_s"].iloc[0]
        ref = reference.cells[cell]
        _, ref_frame = read_journal(tmp_path / "reference", ref["run"])
        ref_rest = ref_frame[ref_frame["step_type"] == "rest"]
        ref_span = ref_rest["timestamp_s"].iloc[-1] - ref_rest["timestamp_s"].iloc[0]
        if row["channel"].startswith("ch-es"):  # EmStat4: the instrument timed the rest on its own
            assert span == pytest.approx(ref_span, abs=1.0)
            # every package is here but those in transit when the host died, and they are counted
            assert len(rest) + row["points_lost"] == len(ref_rest)
            # ... and only those: what the instrument sent after the last point the host stored
            # and before the kill (how many depends on how busy the machine was: it is measured)
            interval = float(np.median(np.diff(ref_rest["timestamp_s"].to_numpy())))
            in_transit = (killed_at_s - before["timestamp_s"].iloc[-1]) / interval
            assert row["points_lost"] <= in_transit + 1
        else:  # Keithley 2450: held at open circuit until a host came back to end the rest
            assert span >= ref_span - 10.0
        # A capacity is integrated from readings: the charge passed in a step's last interval
        # (between the last two readings, when the cut-off was met) is known only to within the
        # current times that interval. On a free-running clock a host polls late when the machine
        # is busy, so the tolerance is derived from the intervals measured, never assumed.
        for step, key, rel in ((0, "charge_capacity_mAh_g", 0.01), (2, "discharge_capacity_mAh_g", 0.02)):
            slack = sum(_last_interval_mAh_g(f, step) for f in (frame, ref_frame))
            assert abs(row[key] - ref[key]) <= rel * abs(ref[key]) + slack, (
                cell,
                key,
                row[key],
                ref[key],
                slack,
            )


def _last_interval_mAh_g(frame, step: int) -> float:
    """What the current passes in the last interval of a cc step: the uncertainty of its end."""
    points = frame[frame["step"] == step]
    stamps = points["timestamp_s"].to_numpy()
    last_s = float(stamps[-1] - stamps[-2]) if len(stamps) > 1 else 0.0
    return float(points["specific_current_mA_g"].abs().max()) * last_s / 3600.0


@pytest.mark.tcp
def test_sigkill_mid_discharge_every_cell_stays_within_its_cut_off_and_resumes(tmp_path: Path) -> None:
    """The orchestrator dies while every cell discharges: the Keithley 2450s hold their cells at
    the cut-off (a voltage source there, the discharge current as its limit) and the EmStat4s run
    their scripts; resumed, nothing is below 1.85 V, doubled, or counted twice."""
    reference, result, data, state_path, _ = _kill_and_resume(tmp_path, 3, 0.4)
    assert not result.failed, result.failed
    state = json.loads(state_path.read_text())
    for cell, row in result.cells.items():
        _, frame = read_runs(data, state["cells"][cell]["runs"])
        assert frame["voltage_V"].min() >= 1.85 - 2e-3 and frame["voltage_V"].max() <= 4.8 + 2e-3
        assert np.all(np.diff(frame["timestamp_s"].to_numpy()) > 0)  # nothing doubled
        _, ref_frame = read_journal(tmp_path / "reference", reference.cells[cell]["run"])
        slack = sum(_last_interval_mAh_g(f, 2) for f in (frame, ref_frame))
        ref = reference.cells[cell]["discharge_capacity_mAh_g"]
        assert abs(row["discharge_capacity_mAh_g"] - ref) <= 0.02 * ref + slack, (cell, row, ref, slack)
