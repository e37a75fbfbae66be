"""A campaign on a lab file's channels: real instruments, or simulated ones served over TCP.

Every instrument is connected and identified before any cell starts. The campaign's state is
written to ``<data>/campaigns/<name>/state.json`` as each step starts and ends: which step of
which cell runs on which channel, since when, and in which runs its points are. After the
orchestrator is killed, ``resume=True`` closes the interrupted runs (with every point the spool
holds), reconnects without resetting anything, and re-attaches each step that was running: the
instrument went on with it meanwhile (an EmStat4 runs the whole step as a script and buffered
its output; a Keithley 2450 kept sourcing what the step set). Steps that had finished are not
repeated; a cell between two steps is re-mounted by the operator and goes on with the next one.

Heated powder portions share the lab's ovens (``driver = "eurotherm"``): a portion job runs its
operator steps and its heating, and its cells wait for it. A portion interrupted mid-hold is
resumed in the same oven for the time left (the controller held its set-point meanwhile); its
record (what its cells are built from) joins both runs' oven logs and transfers.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from drivers.base import Point, StepProgress
from drivers.clock import Clock, SimClock, WallClock
from drivers.operator import Operator, Timer
from orchestrator.campaign_file import Campaign
from orchestrator.campaign_session import CampaignResult, CampaignSession, _latest_time
from orchestrator.connect import connect_lab
from orchestrator.lab import Lab
from orchestrator.operator_console import ConsoleOperator
from orchestrator.schedule import split_phases
from orchestrator.storage import read_raw_run, read_runs, recover_interrupted_runs
from orchestrator.summary import relaxation_summary
from protocols.campaign import Gate, Pool, cell_job, portion_job


def stored_step_progress(
    data_dir: Path, uids: list[str], step_index: int, started_at_s: float
) -> StepProgress:
    """How far step ``step_index`` got, from the points stored in runs ``uids``."""
    frames = []
    for uid in uids:
        _, frame = read_raw_run(data_dir, uid)
        if not frame.empty:
            frames.append(frame[frame["step"] == step_index])
    rows = [r for f in frames for r in f.itertuples(index=False)]
    rows.sort(key=lambda r: r.timestamp)
    if not rows:
        return StepProgress(step_index, started_at_s, 0)
    last = rows[-1]
    point = Point(float(last.timestamp), float(last.voltage_V), float(last.current_A),
                  float(last.capacity_mAh_g), float(last.temperature_C), int(last.substep))  # fmt: skip
    substep_start = min(float(r.timestamp) for r in rows if int(r.substep) == point.substep)
    return StepProgress(step_index, started_at_s, len(rows), point, substep_start)


def run_on_lab(
    campaign: Campaign,
    data_dir: Path,
    lab: Lab,
    responder: Any = None,
    progress: bool | str = False,
    on_job_done: Any = None,
    resume: bool = False,
    clock: Clock | None = None,
    on_step_done: Any = None,
) -> CampaignResult:
    """Run ``campaign`` on the cells (channels) of ``lab``; see :func:`orchestrator.campaign_run.run_campaign`."""

    heating = sorted({c.id for c in campaign.cells if split_phases(c.protocol.steps)[0]})
    if heating and not lab.ovens:
        raise ValueError(
            f"campaign {campaign.name!r} heats powder portions (e.g. for {heating[0]}), but lab file "
            f'{lab.source} has no oven: add one (an instrument with driver = "eurotherm"), or run '
            "the campaign on the simulated lab (without --lab)"
        )
    data_dir = Path(data_dir)
    wall0 = time.perf_counter()
    state_path = CampaignSession.state_file(data_dir, campaign.name)
    saved = json.loads(state_path.read_text()) if resume and state_path.exists() else None
    state: dict[str, Any] = saved or {"campaign": campaign.name, "lab": lab.lab.name, "jobs": {}, "cells": {}}
    if resume:
        recover_interrupted_runs(data_dir)  # close what the last session left open, points and all
    if clock is None:
        # simulated time resumes from the latest moment stored, never back in time
        clock = SimClock(_latest_time(data_dir, saved)) if lab.simulated else WallClock()
    t_start = clock.now()
    # every instrument identified before anything moves
    connected = connect_lab(lab, clock, reset=not resume, ovens=bool(heating))
    lab_cell = {channel.name: name for name, channel in connected.channels.items()}

    try:
        resources = (len(connected.channels), len(connected.ovens))
        session = CampaignSession.open(clock, data_dir, campaign, state, progress, resources)
        spool, uids, write_state = session.spool, session.uids, session.write_state
        for channel in connected.channels.values():
            channel.spool = spool

        def run_started(name: str, doc: dict[str, Any]) -> None:
            if name == "start":
                if doc.get("job") == "cell":
                    cell_state = state["cells"].setdefault(doc["job_key"], {"steps_done": 0})
                    cell_state.setdefault("runs", []).append(doc["uid"])
                write_state()  # the run is durable in the campaign before its first step

        session.RE.subscribe(run_started)

        def step_started(cell_id: str, index: int, channel: Any) -> None:
            cell_state = state["cells"][cell_id]
            running = cell_state.get("running") or {}
            runs = running.get("runs", []) if running.get("index") == index else []
            cell_state["running"] = {"index": index, "step_index": channel.step_index,
                                     "started_at_s": channel.step_started_s, "channel": lab_cell[channel.name],
                                     "runs": [*runs, uids[cell_id]]}  # fmt: skip
            cell_state["active_mass_mg"] = float(channel.active_mass_g.get()) * 1000.0
            write_state()

        def step_done(cell_id: str, steps_done: int, channel: Any) -> None:
            cell_state = state["cells"][cell_id]
            cell_state.update(steps_done=steps_done, running=None)
            if channel.points_missing:  # durable at once: a later kill must not forget them
                cell_state["points_missing"] = cell_state.get("points_missing", 0) + channel.points_missing
            write_state()
            if on_step_done is not None:
                on_step_done(cell_id, steps_done)

        responder = responder or ConsoleOperator()
        charged_to = campaign.powder.charged_to if campaign.powder else None
        if connected.simulation is not None and charged_to:
            # the simulated operator builds each cell from its portion as the portion's run recorded it
            from orchestrator.run_frames import portion_record as whole_record
            from orchestrator.run_frames import read_oven_record
            from orchestrator.sim_operator import SimulatedBuilder, channel_instruments

            def portion_record(ctx: Any) -> Any:
                uid = state["jobs"].get(ctx["portion"], {}).get("uid") or uids.get(ctx["portion"])
                return whole_record(lambda u: read_oven_record(data_dir, u), uid) if uid else None

            responder = SimulatedBuilder(responder, connected.simulation,
                                         channel_instruments(lab, connected.channels), portion_record)  # fmt: skip
        operator = Operator(clock, responder)
        pool = Pool("channels", list(connected.channels.values()))
        ovens = Pool("ovens", list(connected.ovens.values()))
        timer = Timer(clock)
        jobs: dict[str, Any] = {}
        gates: dict[str, Gate] = {}
        portions = state.setdefault("portions", {})
        masses = {p.id: p.mass_g * 1000.0 for p in campaign.portions}

        def portion_progress(portion: str, info: dict[str, Any]) -> None:
            portions.setdefault(portion, {}).update(info)
            write_state()

        for cell in campaign.cells:
            portion_phase, cell_phase = split_phases(cell.protocol.steps)
            portion = cell.portion or "powder"
            if portion_phase and portion not in gates:
                gates[portion] = Gate()
                if state["jobs"].get(portion, {}).get("status") == "done":
                    gates[portion].open()
                else:
                    before = portions.get(portion, {})
                    hold = None
                    if before.get("hold_started_s") is not None:  # the portion is in that oven
                        hold = (ovens.take(connected.ovens[before["oven"]]), float(before["hold_started_s"]))
                    md = {"campaign": campaign.name, "batch": campaign.batch.id, "portion": portion,
                          "condition": dict(cell.condition), "job_key": portion, "lab": lab.lab.name,
                          "resumes": state["jobs"].get(portion, {}).get("uid")}  # fmt: skip
                    jobs[portion] = portion_job(portion, portion_phase, ovens, operator, timer, gates[portion], md,
                                                {"portion_mass": masses.get(portion, 0.0)},
                                                int(before.get("steps_done", 0)), hold, portion_progress)  # fmt: skip
            if state["jobs"].get(cell.id, {}).get("status") == "done":
                continue
            before = state["cells"].get(cell.id, {})
            done_steps = int(before.get("steps_done", 0))
            reattach = None
            running = before.get("running")
            failed = state["jobs"].get(cell.id, {})
            restart: dict[str, Any] = {}
            if running and failed.get("status") == "failed":
                # The step ended in a fault (the instrument put the cell at open circuit): it is
                # not running any more, so it is run again from the stored state, after the
                # operator re-mounts the cell, and the run says so.
                done_steps = running["index"]
                restart = {"restarted_step": running["index"], "restart_reason": failed.get("reason")}
                before["running"] = running = None
            if running:
                channel = pool.take(connected.channels[running["channel"]])  # the cell is on it
                channel.active_mass_g.put(before["active_mass_mg"] / 1000.0)
                found = stored_step_progress(
                    data_dir, running["runs"], running["step_index"], running["started_at_s"]
                )
                reattach = (channel, found)
                done_steps = running["index"]
            runs_before = before.get("runs") or [None]
            md = {"campaign": campaign.name, "batch": campaign.batch.id, "material": campaign.batch.material,
                  "cell": cell.id, "sample": cell.portion or campaign.batch.id, "replicate": cell.replicate,
                  "condition": dict(cell.condition), "protocol": cell.protocol.name, "job_key": cell.id,
                  "lab": lab.lab.name, "spool": spool.session, "resumes": runs_before[-1], **restart}  # fmt: skip
            built_from = {"portion": cell.portion, "charged_to": charged_to} if cell.portion else None
            jobs[cell.id] = cell_job(cell.id, cell_phase, pool, operator, gates.get(portion), md, built_from,
                                     done_steps=done_steps, on_step=step_done, reattach=reattach,
                                     on_step_started=step_started)  # fmt: skip

        def job_done(key: str, value: Any) -> None:
            done = value if isinstance(value, dict) else {}  # a cell's result, or what a portion recorded
            # points lost in transit over every session of the cell (each counted as its step ended)
            missing = state["cells"].get(key, {}).get("points_missing", done.get("points_missing", 0))
            session.job_ended(key, value, channel=lab_cell.get(done.get("channel", "")),
                              points_missing=missing)  # fmt: skip
            write_state()
            if on_job_done is not None:
                on_job_done(key, value)

        session.run(jobs, job_done)
    finally:
        connected.close()

    out = CampaignResult(campaign.name, failed=session.failures())
    for cell in campaign.cells:
        info = state["jobs"].get(cell.id)
        row: dict[str, Any] = {**dict(cell.condition), "replicate": cell.replicate,
                               "run": info.get("uid") if info else None,
                               "status": info["status"] if info else "not run"}  # fmt: skip
        if info is None:
            out.failed[cell.id] = "not run"
        elif info["status"] == "done":
            row["channel"] = info.get("channel")
            # numbered by the instrument, never stored: in transit when the orchestrator died
            row["points_lost"] = info.get("points_missing", 0)
            _, frame = read_runs(data_dir, state["cells"][cell.id]["runs"])
            summary = relaxation_summary(frame)
            row.update({k: summary.get(k) for k in ("charge_capacity_mAh_g", "discharge_capacity_mAh_g",
                                                    "ni_plateau_mAh_g", "o_plateau_mAh_g")})  # fmt: skip
        out.cells[cell.id] = row
    out.wall_s = time.perf_counter() - wall0
    out.simulated_h = (clock.now() - t_start) / 3600.0
    return out
