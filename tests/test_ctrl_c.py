"""Ctrl-C as an operator presses it: a real SIGINT to a ``relaxlab`` child process.

The first Ctrl-C stops cleanly (the cell at open circuit, the run closed with ``exit_status:
abort``, a line saying how to go on), with no bluesky "deferred pause" or ``RE.resume()``
traceback; Ctrl-C at an operator prompt works the same; a second Ctrl-C aborts at once. No
timing is asserted: each test waits for a sign of progress (a stored page, a prompt), then
sends the signal and checks the outcome.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from drivers.clock import ScaledClock
from orchestrator.cli import app
from orchestrator.lab import parse_lab
from orchestrator.simlab import SimulatedLab
from orchestrator.simtime import write_clock_file
from orchestrator.storage import list_journal_runs

FORBIDDEN = ("Traceback", "deferred pause", "RE.resume", "RunEngineInterrupted", "hard pause")
PROTOCOL = """\
name: charge-rest-discharge-fast
steps:
  - charge: {current: 100 mA/g, until: 4.8 V}
  - rest: {duration: 2 h}
  - discharge: {current: 100 mA/g, until: 2 V}
"""
CAMPAIGN = """\
name: ctrl-c
protocol: proto.yaml
replicates: {replicates}
samples:
  batch: {{id: B1, material: x04}}
  cell_mass: 5 mg
"""


class Child:
    """A ``relaxlab`` command in a child process, its standard error collected as it comes."""

    def __init__(self, args: list[str], stdin: str | None = None) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "orchestrator.cli", *args], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        )  # fmt: skip
        assert self.process.stdin is not None
        if stdin:
            self.process.stdin.write(stdin.encode())
            self.process.stdin.flush()
        self._err = bytearray()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        fd = self.process.stderr.fileno()
        while chunk := os.read(fd, 4096):
            self._err += chunk

    @property
    def stderr(self) -> str:
        return self._err.decode(errors="replace")

    def wait_for(self, condition: Any, what: str, limit_s: float = 300.0) -> None:
        """Poll ``condition()`` until true (the limit only stops a hung test; nothing is timed)."""
        deadline = time.monotonic() + limit_s
        while not condition():
            assert self.process.poll() is None, f"exited before {what}:\n{self.stderr}"
            assert time.monotonic() < deadline, f"never saw {what}:\n{self.stderr}"
            time.sleep(0.05)

    def interrupt(self) -> tuple[int, str, str]:
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=300)  # standard input stays open: the operator has not gone away
        assert self.process.stdout is not None
        out = self.process.stdout.read()
        self._reader.join(timeout=10)
        self.process.stdin.close()  # type: ignore[union-attr]
        return self.process.returncode, out.decode(errors="replace"), self.stderr


def _pages(data: Path) -> int:
    journal = data / "journal"
    files = list(journal.glob("*.jsonl")) if journal.exists() else []
    return sum(f.read_text(errors="replace").count('["event_page"') for f in files)


def _clean(stderr: str, stdout: str) -> None:
    for text in FORBIDDEN:
        assert text not in stderr and text not in stdout, f"{text!r} reached the user:\n{stderr}\n{stdout}"


def test_ctrl_c_stops_a_run_cleanly_and_says_how_to_go_on(tmp_path: Path) -> None:
    data = tmp_path / "data"
    child = Child(["demo", "--json", "--no-tiled", "--data-dir", str(data), "--out", str(tmp_path / "out")])
    child.wait_for(lambda: _pages(data) > 0, "a stored page of points")
    code, out, err = child.interrupt()

    assert code == 130, err
    _clean(err, out)
    assert out.strip() == ""  # --json output carries nothing half-done (nor bluesky's own lines)
    (run,) = list_journal_runs(data)
    assert run["exit_status"] == "abort" and run["points"] > 0
    assert "stopped (Ctrl-C)" in err and "open circuit" in err
    assert f"relaxlab data export {run['uid'][:8]}" in err
    # what it printed works: the stored points export
    exported = CliRunner().invoke(app, ["data", "export", run["uid"][:8], "--data-dir", str(data),
                                        "--out", str(tmp_path / "run.csv")])  # fmt: skip
    assert exported.exit_code == 0, exported.output


def test_ctrl_c_stops_a_campaign_and_the_printed_resume_finishes_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (tmp_path / "proto.yaml").write_text(PROTOCOL)
    (tmp_path / "campaign.yaml").write_text(CAMPAIGN.format(replicates=2))
    child = Child(["campaign", "run", str(tmp_path / "campaign.yaml"), "--data-dir", str(data),
                   "--out", str(tmp_path / "out"), "--json"])  # fmt: skip
    child.wait_for(lambda: _pages(data) > 0, "a stored page of points")
    code, out, err = child.interrupt()

    assert code == 130, err
    _clean(err, out)
    runs = list_journal_runs(data)
    assert runs and all(r["exit_status"] == "abort" for r in runs), runs
    resume = next(line for line in err.splitlines() if "--resume" in line).split("resume it:", 1)[1].split()
    assert resume[:3] == ["relaxlab", "campaign", "run"]
    result = CliRunner().invoke(app, [*resume[1:], "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["cells"] == 2 and not summary["failed"]
    assert {row["status"] for row in summary["rows"]} == {"done"}


# --- a campaign on a lab file: instruments served over TCP on a free-running clock ------------


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def free_running_lab(tmp_path: Path):
    """One simulated Keithley 2450 served on 127.0.0.1 (clock at 500 s/s); yields (lab.toml, clock.json, simulator)."""
    resource = f"TCPIP0::127.0.0.1::{_port()}::SOCKET"
    lab = {"lab": {"name": "ctrl-c"},
           "instruments": {"smu1": {"driver": "keithley2450", "resource": resource, "simulated": True,
                                    "poll_interval": "10 s"}},
           "cells": [{"name": "ch1", "instrument": "smu1", "active_mass": "5 mg"}]}  # fmt: skip
    (tmp_path / "lab.toml").write_text(
        '[lab]\nname = "ctrl-c"\n[instruments.smu1]\ndriver = "keithley2450"\n'
        f'resource = "{resource}"\nsimulated = true\npoll_interval = "10 s"\n'
        '[[cells]]\nname = "ch1"\ninstrument = "smu1"\nactive_mass = "5 mg"\n'
    )
    clock = ScaledClock(500.0)
    simulation = SimulatedLab(parse_lab(lab), clock)
    simulation.serve_all()
    write_clock_file(clock, tmp_path / "clock.json")
    (tmp_path / "proto.yaml").write_text(PROTOCOL)
    (tmp_path / "campaign.yaml").write_text(CAMPAIGN.format(replicates=1))
    try:
        yield tmp_path / "lab.toml", tmp_path / "clock.json", simulation.instruments["smu1"]
    finally:
        simulation.close()


def _lab_campaign(tmp_path: Path, lab: Path, clock: Path, stdin: str | None) -> Child:
    return Child(["campaign", "run", str(tmp_path / "campaign.yaml"), "--lab", str(lab), "--sim-clock", str(clock),
                  "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "out")], stdin=stdin)  # fmt: skip


@pytest.mark.tcp
def test_ctrl_c_mid_charge_leaves_the_instrument_at_open_circuit(tmp_path: Path, free_running_lab) -> None:
    lab, clock, keithley = free_running_lab
    child = _lab_campaign(tmp_path, lab, clock, stdin="5\n" * 4)  # the operator weighs: 5 mg
    child.wait_for(lambda: _pages(tmp_path / "data") > 0 and keithley.output_on, "the charge under way")
    code, out, err = child.interrupt()

    assert code == 130, err
    _clean(err, out)
    # the cell is at open circuit: output off, or 0 A sourced
    assert not keithley.output_on or (keithley.source_function == "CURR" and keithley.current_A == 0.0)
    (run,) = list_journal_runs(tmp_path / "data")
    assert run["exit_status"] == "abort"
    assert f"--lab {lab}" in err and "--resume" in err


@pytest.mark.tcp
def test_ctrl_c_at_an_operator_prompt_stops_the_campaign(tmp_path: Path, free_running_lab) -> None:
    lab, clock, keithley = free_running_lab
    child = _lab_campaign(tmp_path, lab, clock, stdin=None)  # nobody answers
    child.wait_for(lambda: child.stderr.rstrip().endswith(":"), "the operator prompt")
    code, out, err = child.interrupt()

    assert code == 130, err
    _clean(err, out)
    assert "stopped (Ctrl-C)" in err and "--resume" in err
    assert not keithley.output_on or keithley.current_A == 0.0


# --- the pieces, without a child process ------------------------------------------------------


class _FakeRE:
    def __init__(self) -> None:
        self.aborted = threading.Event()
        self.reason = ""

    def abort(self, reason: str = "") -> None:
        self.reason = reason
        self.aborted.set()


def test_first_ctrl_c_aborts_with_clean_up_second_aborts_at_once(capsys) -> None:
    from orchestrator.interrupt import CtrlC, install, last_interrupt

    RE = _FakeRE()
    install(RE)  # type: ignore[arg-type]
    assert RE.context_managers == [CtrlC]  # type: ignore[attr-defined]
    previous = signal.getsignal(signal.SIGINT)
    with CtrlC(RE) as handler:
        assert signal.getsignal(signal.SIGINT) == handler._handler
        handler._handler(signal.SIGINT, None)  # the first Ctrl-C
        assert RE.aborted.wait(30)
        assert "Ctrl-C" in RE.reason and last_interrupt() == "stop"
        with pytest.raises(KeyboardInterrupt):
            handler._handler(signal.SIGINT, None)  # the second, right after
        assert last_interrupt() == "abort"
    assert signal.getsignal(signal.SIGINT) == previous
    assert "deferred pause" not in capsys.readouterr().out


def test_the_live_display_is_off_the_terminal_while_the_operator_answers() -> None:
    from drivers.clock import SimClock
    from drivers.operator import OperatorRequest
    from orchestrator.campaign_run import CampaignProgress
    from orchestrator.operator_console import ConsoleOperator

    progress = CampaignProgress(SimClock(), ["A1"], enabled=True)
    live = progress._progress.live
    seen: list[bool] = []
    answered = threading.Event()

    def ask(prompt: str) -> str:
        seen.append(live.is_started)
        return "5"

    try:
        assert live.is_started
        operator = ConsoleOperator(ask=ask, say=lambda text: None)
        request = OperatorRequest("A1", "Weigh the electrode", (("mass", "mg"),))
        operator(request, lambda values: answered.set(), lambda why: answered.set())
        assert answered.wait(30)
        assert seen == [False]  # not drawing while the operator reads and types
        assert live.is_started  # and back afterwards
    finally:
        progress.close()
