"""Run a campaign: every cell and powder portion as a job, all at once, on one RunEngine.

Each cell's work is its own bluesky run (run key = cell id) with the campaign, sample genealogy
(batch, powder, portion), condition and replicate in its start document; each heated portion is
a run with its oven log. Progress is shown per cell. A cell that faults is stopped safely and
marked failed with its reason; the others carry on; the summary says what failed and why.

A campaign's state (finished jobs, their run uids and, in simulation, the powder states) is
written to ``<data>/campaigns/<name>/state.json`` after every job; ``resume=True`` skips the
jobs that finished and reruns the ones that did not (a new run, linked to the interrupted one
by ``resumes`` in its metadata).

The session, progress and result of a campaign are :mod:`orchestrator.campaign_session`
(re-exported here); a campaign on a lab file's channels runs in :mod:`orchestrator.campaign_lab`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from drivers.clock import Clock, SimClock
from drivers.operator import Operator, Timer
from orchestrator.campaign_file import Campaign
from orchestrator.campaign_lab import run_on_lab
from orchestrator.campaign_session import (  # noqa: F401  (CampaignProgress re-exported)
    CampaignProgress,
    CampaignResult,
    CampaignSession,
    _latest_time,
)
from orchestrator.lab import Lab
from orchestrator.schedule import split_phases
from orchestrator.storage import (
    campaign_lock,
    read_journal,
    recover_interrupted_runs,
)
from protocols.campaign import Gate, Pool, cell_job, portion_job


def run_campaign(
    campaign: Campaign,
    data_dir: Path,
    channels: int = 16,
    ovens: int = 1,
    progress: bool | str = False,
    resume: bool = False,
    noise: bool = True,
    seed: int = 1,
    on_job_done: Any = None,
    on_step_done: Any = None,
    lab: Lab | None = None,
    responder: Any = None,
    clock: Clock | None = None,
    rerun: bool = False,
) -> CampaignResult:
    """Run a campaign on the simulated lab (simulated time), or on the channels of a lab file.

    Without ``lab``: ``channels`` simulated Keithley 2450s, ``ovens`` simulated Eurotherm ovens,
    a simulated operator. With ``noise`` each fresh cell measures with its own seeded noise, so
    replicates differ as real replicates do (deterministically for a given ``seed``).

    With ``lab``: every cell of the lab file is a channel the campaign's cells are mounted on, in
    real time (simulated time when all its instruments are simulated); ``responder`` answers the
    operator steps (default: a person at the console); ``resume`` re-attaches the steps still
    running on the instruments (see :mod:`orchestrator.campaign_lab`); ``clock`` is the clock to
    run on (default: simulated time for a lab of simulated instruments, else the wall clock; a
    :class:`~drivers.clock.ScaledClock` meets a ``relaxlab sim serve`` process). Campaigns that
    heat powder portions need an oven in the lab file.

    One orchestrator per campaign: a second one (run or resume) raises
    :class:`~orchestrator.storage.RunIsLive`. A campaign that already has a state (it ran, or
    was interrupted) is continued with ``resume`` or run again from the start with ``rerun``
    (the earlier state is kept as ``state-<time>.json``, its runs stay in the journal);
    without either it is refused, so nothing is silently replaced.
    """
    with campaign_lock(data_dir, campaign.name):
        state_path = CampaignSession.state_file(data_dir, campaign.name)
        if state_path.exists() and not resume:
            if not rerun:
                raise ValueError(
                    f"campaign {campaign.name!r} already ran in {data_dir} (state: {state_path}): "
                    "add --resume to continue it, or --rerun to run it again from the start (its "
                    "earlier runs stay in the journal)"
                )
            state_path.replace(state_path.with_name(f"state-{time.strftime('%Y%m%dT%H%M%S')}.json"))
        return _run_campaign(campaign, Path(data_dir), channels, ovens, progress, resume, noise, seed,
                             on_job_done, on_step_done, lab, responder, clock)  # fmt: skip


def _run_campaign(
    campaign: Campaign,
    data_dir: Path,
    channels: int,
    ovens: int,
    progress: bool | str,
    resume: bool,
    noise: bool,
    seed: int,
    on_job_done: Any,
    on_step_done: Any,
    lab: Lab | None,
    responder: Any,
    clock: Clock | None,
) -> CampaignResult:
    if lab is not None:
        return run_on_lab(campaign, Path(data_dir), lab, responder, progress, on_job_done, resume, clock,
                          on_step_done)  # fmt: skip
    from orchestrator.simlab import SimulatedCampaignLab

    wall0 = time.perf_counter()
    state_path = CampaignSession.state_file(data_dir, campaign.name)
    saved = json.loads(state_path.read_text()) if resume and state_path.exists() else None
    if resume:
        recover_interrupted_runs(Path(data_dir))  # close what the last session left open
    # A resumed campaign continues on the simulated time line from the latest moment stored:
    # the last save, or a later point of a step that was under way (never back in time, so a
    # step run again does not overlap the points of the one that was interrupted).
    clock = SimClock(_latest_time(Path(data_dir), saved))
    t_start = clock.now()
    sim = SimulatedCampaignLab(
        clock,
        channels=channels,
        ovens=ovens,
        material=campaign.batch.material,
        noise_seed=seed if noise else None,
    )
    state: dict[str, Any] = saved or {"campaign": campaign.name, "jobs": {}, "portions": {}, "cells": {}}
    state.setdefault("cells", {})

    portion_names = [p.id for p in campaign.portions] or ["powder"]
    if resume and state["portions"]:
        for name, saved in state["portions"].items():
            sim.restore_portion(name, saved["state"], clock.now())
    if not all(name in sim.portions for name in portion_names):
        if campaign.powder is not None:
            sim.charge_powder(portion_names, campaign.powder.charged_to)
            state["powder_ready_s"] = clock.now()  # charged, washed, dried: its thermal history starts
        else:  # cells are built from the pristine batch and charged in the cell
            sim.pristine_powder(portion_names)

    session = CampaignSession.open(clock, Path(data_dir), campaign, state, progress, (channels, ovens))
    spool, uids = session.spool, session.uids
    for channel in sim.channels:
        channel.spool = spool

    operator = Operator(clock, sim.respond)
    timer = Timer(clock)
    channel_pool = Pool("channels", sim.channels)
    oven_pool = Pool("ovens", sim.ovens)
    base_md = {"campaign": campaign.name, "batch": campaign.batch.id, "material": campaign.batch.material,
               "spool": spool.session,
               "powder": campaign.powder.id if campaign.powder else None,
               "charged_to": campaign.powder.charged_to if campaign.powder else None,
               "powder_ready_s": state.get("powder_ready_s"), "bench_temperature_C": sim.room_C}  # fmt: skip

    def write_state() -> None:
        state["clock_s"] = clock.now()
        session.write_state()

    def step_done(cell_id: str, steps_done: int, channel: Any) -> None:
        """Persist a cell's progress after each step (and its physics, in simulation)."""
        state["cells"][cell_id] = {"steps_done": steps_done, "run": uids.get(cell_id), "cell_state": sim.cell_state(channel),
                                   "active_mass_mg": float(channel.active_mass_g.get()) * 1000.0}  # fmt: skip
        write_state()
        if on_step_done is not None:
            on_step_done(cell_id, steps_done)

    jobs: dict[str, Any] = {}
    gates: dict[str, Gate] = {}
    portions_by_id = {p.id: p for p in campaign.portions}
    for cell in campaign.cells:
        portion_phase, cell_phase = split_phases(cell.protocol.steps)
        portion = cell.portion or "powder"
        if portion not in gates:
            gates[portion] = Gate()
            done_before = state["jobs"].get(portion, {}).get("status") == "done"
            if portion_phase and not done_before:
                p = portions_by_id.get(portion)
                md = {**base_md, "portion": portion, "condition": dict(cell.condition), "job_key": portion,
                      "resumes": state["jobs"].get(portion, {}).get("uid")}  # fmt: skip
                jobs[portion] = portion_job(
                    portion, portion_phase, oven_pool, operator, timer, gates[portion], md,
                    {"portion_mass": (p.mass_g * 1000.0) if p else 0.0},
                )  # fmt: skip
            else:
                gates[portion].open()
        if state["jobs"].get(cell.id, {}).get("status") == "done":
            continue
        progress_before = state["cells"].get(cell.id, {})
        done_steps = int(progress_before.get("steps_done", 0))
        md = {**base_md, "cell": cell.id, "sample": portion, "portion": portion, "replicate": cell.replicate,
              "condition": dict(cell.condition), **{f"condition_{k}": v for k, v in cell.condition.items()},
              "protocol": cell.protocol.name, "job_key": cell.id,
              "cell_variation": sim.cell_variation(cell.id, cell.mass_g),
              "resumes": state["jobs"].get(cell.id, {}).get("uid") or progress_before.get("run")}  # fmt: skip
        if state["jobs"].get(cell.id, {}).get("status") == "failed":  # a fault ended its step
            md.update(restarted_step=done_steps, restart_reason=state["jobs"][cell.id].get("reason"))
        context = {"portion": portion, "mass_g": cell.mass_g}
        if done_steps:
            context.update(
                cell_state=progress_before["cell_state"], active_mass=progress_before["active_mass_mg"]
            )
        jobs[cell.id] = cell_job(  # on the channel `campaign plan` gives it
            cell.id, cell_phase, channel_pool, operator, gates[portion], md, context, done_steps, step_done,
            channel_name=session.planned_channels.get(cell.id),
        )  # fmt: skip

    def job_done(key: str, value: Any) -> None:
        """Persist that a job ended (and, in simulation, every powder's state) atomically."""
        session.job_ended(key, value)
        for name in sim.portions:
            state["portions"][name] = {"state": sim.portion_state(name)}
        write_state()
        if on_job_done is not None:
            on_job_done(key, value)

    session.run(jobs, job_done)

    out = CampaignResult(campaign.name, failed=session.failures())
    from orchestrator.summary import relaxation_summary

    for cell in campaign.cells:
        info = state["jobs"].get(cell.id)
        row: dict[str, Any] = {**dict(cell.condition), "replicate": cell.replicate, "portion": cell.portion,
                               "status": info["status"] if info else "not run", "run": info.get("uid") if info else None}  # fmt: skip
        if info and info["status"] == "done" and info.get("uid"):
            start, frame = read_journal(Path(data_dir), info["uid"])
            summary = relaxation_summary(frame)
            row.update(
                {
                    k: summary.get(k)
                    for k in ("discharge_capacity_mAh_g", "ni_plateau_mAh_g", "o_plateau_mAh_g")
                }
            )
            row["ocv_V"] = summary.get("ocv_V")  # the one OCV definition (orchestrator.summary)
        out.cells[cell.id] = row
    out.wall_s = time.perf_counter() - wall0
    out.simulated_h = (clock.now() - t_start) / 3600.0
    return out
