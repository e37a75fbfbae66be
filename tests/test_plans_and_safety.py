"""Plans as message sequences (no hardware), and safe state on every way out."""

from __future__ import annotations

import json

import pytest
from bluesky import plan_stubs as bps
from ophyd.status import Status

from drivers.clock import SimClock
from drivers.device import PotentiostatChannel
from drivers.techniques import ConstantCurrent, Cutoffs, Rest
from protocols.plans import relaxation_protocol, run_protocol
from tests.test_journal_survives import crashing_paper_run


class _NoDriver:
    name = "none"
    poll_interval_s = 1.0


def _messages(plan) -> list[str]:
    done = Status()
    done.set_finished()
    commands, reply = [], None
    while True:
        try:
            msg = plan.send(reply)
        except StopIteration:
            return commands
        commands.append(msg.command)
        reply = done if msg.command == "complete" else None


def test_relaxation_protocol_messages() -> None:
    channel = PotentiostatChannel(name="ch", driver=_NoDriver(), clock=SimClock(), active_mass_g=0.007)
    step = ["prepare", "kickoff", "wait", "complete", "trigger", "wait", "collect", "wait"]
    assert _messages(relaxation_protocol(channel)) == (
        ["open_run", "declare_stream"] + step * 3 + ["close_run", "stop"]
    )


def test_open_circuit_even_when_the_plan_fails() -> None:
    channel = PotentiostatChannel(name="ch", driver=_NoDriver(), clock=SimClock(), active_mass_g=0.007)
    plan = run_protocol(channel, [Rest(60)])
    assert next(plan).command == "open_run"
    msg = plan.throw(RuntimeError("power cut"))
    # finalize: the channel is stopped (open circuit) before the error propagates
    assert msg.command == "stop" and msg.obj is channel


def _sim_session(tmp_path, **cell):
    from orchestrator.lab import parse_lab
    from orchestrator.runner import Session

    lab = parse_lab(
        {
            "instruments": {"smu1": {"driver": "keithley2450", "resource": "sim", "simulated": True}},
            "cells": [{"name": "c1", "instrument": "smu1", "active_mass": "7 mg", **cell}],
        }
    )
    return Session(lab, data_dir=tmp_path, tiled=False)


def test_voltage_safety_limit_stops_the_step_and_opens_the_circuit(tmp_path) -> None:
    from drivers.device import SafetyLimitError

    session = _sim_session(tmp_path, voltage_max="4.0 V")
    instrument = session.connected.simulation.instruments["smu1"]
    docs: list = []
    session.subscribe(lambda n, d: docs.append((n, d)))
    charge = ConstantCurrent(20, Cutoffs(capacity_mAh_g=300))  # no voltage cut-off: only the limit
    try:
        with pytest.raises(SafetyLimitError, match="reached its voltage_max of 4 V"):
            session.run(run_protocol(session.channel(), [charge]))
        assert instrument.output_on is False
        stop = docs[-1][1]
        assert stop["exit_status"] == "fail"
        assert "voltage_max" in stop["reason"]
        # The points measured before the trip are in the run; the instrument held the cell at
        # the limit (VLIM), so none is beyond it.
        _, frame = session.read(docs[0][1]["uid"])
        assert len(frame) > 10 and frame["voltage_V"].iloc[-1] == pytest.approx(4.0, abs=2e-3)
        assert frame["voltage_V"].max() <= 4.0 + 2e-3
    finally:
        session.close()


def test_a_cut_off_beyond_the_cells_limits_is_refused_before_anything_moves(tmp_path) -> None:
    session = _sim_session(tmp_path, voltage_max="4.0 V")
    instrument = session.connected.simulation.instruments["smu1"]
    try:
        with pytest.raises(ValueError, match="cut-off 4.8 V is outside the cell's limits 1-4 V"):
            session.run(run_protocol(session.channel(), [ConstantCurrent(20, Cutoffs(voltage_V=4.8))]))
        assert instrument.output_on is False
    finally:
        session.close()


def test_output_off_after_an_error_inside_the_plan(tmp_path) -> None:
    from bluesky import preprocessors as bpp

    from protocols.plans import open_circuit_decorator

    session = _sim_session(tmp_path)
    instrument = session.connected.simulation.instruments["smu1"]
    channel = session.channel()

    @open_circuit_decorator([channel])
    @bpp.run_decorator()
    def failing():
        yield from bps.prepare(channel, ConstantCurrent(20, Cutoffs(duration_s=600)), wait=True)
        yield from bps.kickoff(channel, wait=True)
        assert instrument.output_on
        raise RuntimeError("operator abort")

    try:
        with pytest.raises(RuntimeError, match="operator abort"):
            session.run(failing())
        assert instrument.output_on is False
        channel.stop()  # idempotent
        assert instrument.output_on is False
    finally:
        session.close()


def test_points_handed_to_the_run_survive_a_crash(tmp_path) -> None:
    """The process dies between two pages: the journal holds the pages already handed to the run,
    the spool every point read since, and recovery puts them together with nothing lost or doubled."""
    then = """
        spool = session.spool
        read = []
        def spool_then_die(channel, step, points):
            spool(channel, step, points)
            read.extend(points)
            if len(pages) == 3 and len(read) > sum(pages) + 25:  # mid-way to the 4th page
                print(sum(pages), flush=True)
                os._exit(9)
        session.channel().spool = spool_then_die
        """
    proc = crashing_paper_run(tmp_path, False, then)
    assert proc.returncode == 9, proc.stderr
    handed_out = int(proc.stdout.strip())
    from orchestrator.storage import list_journal_runs, read_journal, recover_interrupted_runs

    (run,) = list_journal_runs(tmp_path)
    assert run["exit_status"] == "interrupted"
    _, frame = read_journal(tmp_path, run["uid"])
    assert len(frame) == handed_out > 0
    assert json.loads(json.dumps(run))  # summaries stay plain data

    # Points read after the last page waited in memory; the spool had them on disk at once.
    (spool_file,) = (tmp_path / "spool").glob("*/cell_1.jsonl")
    spooled = len(spool_file.read_text().splitlines())
    assert spooled > handed_out
    recovered = recover_interrupted_runs(tmp_path)
    assert recovered == {run["uid"]: spooled - handed_out}
    start, frame = read_journal(tmp_path, run["uid"])
    assert len(frame) == spooled  # nothing lost ...
    assert (
        frame["time_s"].is_monotonic_increasing and not frame["time_s"].duplicated().any()
    )  # ... or doubled
    (closed,) = list_journal_runs(tmp_path)
    assert closed["exit_status"] == "abort"
    assert recover_interrupted_runs(tmp_path) == {}  # idempotent
