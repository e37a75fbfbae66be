"""Faults are data (issue 14, deliverable 4): a cell whose instrument faults mid-step is journalled
as failed with the cause, stays resumable (its step run again from the stored state, and the
run says so), and a resumed simulated campaign never goes back in time."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np

from orchestrator.campaign_file import parse_campaign
from orchestrator.campaign_run import run_campaign
from orchestrator.lab import parse_lab
from orchestrator.operator_console import ConsoleOperator
from orchestrator.storage import journal_documents, list_journal_runs, read_runs

CAMPAIGN = {
    "name": "faults-are-data",
    "protocol": "charge-rest-discharge",
    "replicates": 1,
    "cell_prefix": "F",
    "samples": {"batch": {"id": "LTNO-x04-B1", "material": "x04"}, "cell_mass": "5 mg"},
    "matrix": {"charge_end": ["4.5 V"], "rest": ["3 h"], "current": ["100 mA/g"]},
}
LAB = {
    "lab": {"name": "one-smu"},
    "instruments": {
        "smu1": {"driver": "keithley2450", "resource": "sim", "simulated": True, "poll_interval": "10 s"}
    },
    "cells": [{"name": "ch-smu1", "instrument": "smu1", "active_mass": "5 mg"}],
}


def _operator() -> ConsoleOperator:
    return ConsoleOperator(ask=lambda prompt: "5", say=lambda text: None)


def _stop(data, uid):
    return next(doc for name, doc in journal_documents(data / "journal" / f"{uid}.jsonl") if name == "stop")


def test_an_instrument_that_dies_mid_rest_fails_the_cell_with_its_cause_and_the_cell_resumes(
    tmp_path, monkeypatch
) -> None:
    from simulators.keithley2450 import SimulatedKeithley2450

    campaign = parse_campaign(CAMPAIGN)
    lab = parse_lab(LAB)
    receive = SimulatedKeithley2450.receive
    died_at: list[float] = []

    def dies_an_hour_into_the_rest(self, data: bytes) -> None:
        rest_started = self.output_on and self.source_function == "CURR" and self.current_A == 0.0
        if died_at or (rest_started and not hasattr(self, "_rest_t0")):
            self._rest_t0 = getattr(self, "_rest_t0", self.clock.now())
        if hasattr(self, "_rest_t0") and self.clock.now() >= self._rest_t0 + 3600:
            died_at.append(self.clock.now())
            return  # the instrument answers nothing any more
        receive(self, data)

    monkeypatch.setattr(SimulatedKeithley2450, "receive", dies_an_hour_into_the_rest)
    first = run_campaign(campaign, tmp_path, lab=lab, responder=_operator())
    (cell,) = first.failed
    assert "no reply" in first.failed[cell]
    (run,) = list_journal_runs(tmp_path)
    assert run["exit_status"] == "fail"  # not "success"
    assert "no reply" in _stop(tmp_path, run["uid"])["reason"]

    monkeypatch.setattr(SimulatedKeithley2450, "receive", receive)  # the instrument is back
    second = run_campaign(campaign, tmp_path, lab=lab, responder=_operator(), resume=True)
    assert not second.failed and second.cells[cell]["status"] == "done"
    runs = {r["uid"]: r for r in list_journal_runs(tmp_path)}
    new = next(uid for uid in runs if uid != run["uid"])
    start = next(
        doc for name, doc in journal_documents(tmp_path / "journal" / f"{new}.jsonl") if name == "start"
    )
    assert start["restarted_step"] == 2 and "no reply" in start["restart_reason"]  # the rest, again
    assert start["resumes"] == run["uid"]
    _, frame = read_runs(tmp_path, [run["uid"], new])
    assert np.all(np.diff(frame["timestamp_s"].to_numpy()) >= 0)


def test_a_simulated_campaign_resumed_after_a_kill_mid_step_never_goes_back_in_time(tmp_path) -> None:
    script = textwrap.dedent(
        f"""
        import os
        from orchestrator import storage
        from orchestrator.campaign_file import parse_campaign
        from orchestrator.campaign_run import run_campaign
        spool_call = storage.Spool.__call__
        rested = []
        def spool_then_die(self, channel, step, points):
            spool_call(self, channel, step, points)
            if rested and points[-1].time_s > rested[0] + 900:  # mid-discharge (it lasts ~1,700 s)
                os._exit(9)
        storage.Spool.__call__ = spool_then_die
        def step_done(cell, steps_done):
            if steps_done == 3:  # mounted, charged, rested
                rested.append(__import__("json").loads(open({str(tmp_path / "campaigns" / "faults-are-data" / "state.json")!r}).read())["clock_s"])
        run_campaign(parse_campaign({CAMPAIGN!r}), {str(tmp_path)!r}, channels=1, on_step_done=step_done)
        """
    )
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert killed.returncode == 9, killed.stderr
    result = run_campaign(parse_campaign(CAMPAIGN), tmp_path, channels=1, resume=True)
    assert not result.failed
    runs = sorted(list_journal_runs(tmp_path), key=lambda r: r["time"])
    assert [r["exit_status"] for r in runs] == ["abort", "success"]
    _, frame = read_runs(tmp_path, [r["uid"] for r in runs])
    stamps = frame["timestamp_s"].to_numpy()
    assert not frame["timestamp_s"].duplicated().any() or _only_hand_overs(frame)
    assert np.all(np.diff(stamps) >= 0)  # never back in time


def _only_hand_overs(frame) -> bool:
    """Equal stamps only where a step hands over to the next (same instant, next step)."""
    dup = frame[frame["timestamp_s"].duplicated(keep=False)]
    return all(group["step"].nunique() == len(group) for _, group in dup.groupby("timestamp_s"))
