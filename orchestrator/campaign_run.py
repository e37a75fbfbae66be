"""Run a campaign: every cell and powder portion as a job, all at once, on one RunEngine.

Each cell's work is its own bluesky run (run key = cell id) with the campaign, sample genealogy
(batch, powder, portion), condition and replicate in its start document; each heated portion is
a run with its oven log. Progress is shown per cell. A cell that faults is stopped safely and
marked failed with its reason; the others carry on; the summary says what failed and why.

A campaign's state (finished jobs, their run uids and, in simulation, the powder states) is
written to ``<data>/campaigns/<name>/state.json`` after every job; ``resume=True`` skips the
jobs that finished and reruns the ones that did not (a new run, linked to the interrupted one
by ``resumes`` in its metadata).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from bluesky import RunEngine
from event_model import RunRouter

from drivers.clock import SIM_EPOCH_S, Clock, SimClock
from drivers.operator import Operator, Timer
from orchestrator.campaign_file import Campaign
from orchestrator.interrupt import install as install_ctrl_c
from orchestrator.lab import Lab
from orchestrator.schedule import split_phases
from orchestrator.simtime import SimulatedTime
from orchestrator.storage import (
    Journal,
    Spool,
    campaign_lock,
    read_journal,
    read_raw_run,
    recover_interrupted_runs,
)
from protocols.campaign import Gate, Pool, cell_job, portion_job
from protocols.jobs import run_jobs


@dataclass
class CampaignResult:
    campaign: str
    cells: dict[str, dict[str, Any]] = field(default_factory=dict)
    portions: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    wall_s: float = 0.0
    simulated_h: float = 0.0

    def table(self) -> pd.DataFrame:
        return pd.DataFrame([{"cell": k, **v} for k, v in self.cells.items()])


class CampaignProgress:
    """One line per cell: its current step, its own simulated time, the campaign time, and when
    the schedule expects it to end; plus the campaign's ETA in simulated time (the same schedule
    as ``relaxlab campaign plan``) and in wall-clock time (at the pace so far). ``enabled``:
    ``"live"`` (rich live table, also ``True``), ``"lines"`` (one plain line per event: a cell
    starts, starts a step, ends), ``"off"`` (also ``False``)."""

    def __init__(
        self, clock: Any, cells: list[str], enabled: bool | str, planned_end_s: dict[str, float] | None = None,
        stream: Any = None,
    ) -> None:  # fmt: skip
        from orchestrator.progress import LinePrinter, Pace, as_mode

        self.clock = clock
        self.mode = as_mode(enabled)
        self.enabled = self.mode != "off"
        self.state = {cell: "waiting" for cell in cells}
        self.planned_end_s = planned_end_s or {}
        self.makespan_s = max(self.planned_end_s.values(), default=0.0)
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}
        self._run_cell: dict[str, str] = {}
        self._steps: dict[str, Any] = {}  # cell -> StepTracker of its current run
        self._began: dict[str, float] = {}  # cell -> clock time its run started
        self._ended: dict[str, float] = {}  # cell -> clock time its run ended
        self._descriptors: dict[str, str] = {}  # descriptor uid -> cell
        self._t0 = clock.now()
        self._pace = Pace(self._t0)
        self._print = LinePrinter(stream)
        if self.mode == "live":
            from rich.progress import Progress, TextColumn

            self._progress = Progress(
                TextColumn("{task.description:>18s}"), TextColumn("{task.fields[status]}")
            )
            self._tasks["campaign"] = self._progress.add_task("campaign", status=self.overall())
            for cell in cells:
                self._tasks[cell] = self._progress.add_task(cell, status=self.line(cell))
            self._progress.start()

    def elapsed_h(self) -> float:
        return (self.clock.now() - self._t0) / 3600.0

    def _left_s(self, end_s: float | None) -> float | None:
        return None if end_s is None else max(end_s - (self.clock.now() - self._t0), 0.0)

    def overall(self) -> str:
        """``t = 3.2 h of ~49.1 h planned (ETA in 45.9 h simulated, ~1 min 05 s wall); 4/33 cells done``"""
        from orchestrator.progress import wall_text

        done = sum(s == "done" for s in self.state.values())
        text = f"t = {self.elapsed_h():.1f} h"
        if self.makespan_s:
            left_s = self._left_s(self.makespan_s) or 0.0
            wall = self._pace.wall_left_s(self.clock.now(), left_s)
            wall_part = f", ~{wall_text(wall)} wall" if wall is not None else ""
            text += f" of ~{self.makespan_s / 3600.0:.1f} h planned (ETA in {left_s / 3600.0:.1f} h simulated{wall_part})"
        return f"{text}; {done}/{len(self.state)} cells done; wall {wall_text(self._pace.wall_s())}"

    def cell_s(self, cell: str) -> float:
        """The cell's own simulated time: since its run started, up to now or to its end."""
        if cell not in self._began:
            return 0.0
        return self._ended.get(cell, self.clock.now()) - self._began[cell]

    def line(self, cell: str) -> str:
        from orchestrator.progress import sim_text

        end = self.planned_end_s.get(cell)
        planned = f"; planned end {end / 3600.0:.1f} h" if end is not None else ""
        status = self.state[cell]
        if cell in self._steps and status.startswith("running"):
            status = f"{status}, {self._steps[cell].text()}"
        own = f", cell {sim_text(self.cell_s(cell))}" if cell in self._began else ""
        eta = ""
        if status.startswith("running") and end is not None:
            eta = f"; {self._pace.eta(self.clock.now(), self._left_s(end))}"
        return f"{status}  (t = {self.elapsed_h():.1f} h{own}{planned}{eta})"

    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        from orchestrator.progress import StepTracker

        if name == "start" and doc.get("job") == "cell":
            cell = doc["cell"]
            self._run_cell[doc["uid"]] = cell
            self._steps[cell] = StepTracker(list(doc.get("step_types", [])))
            self._began[cell] = float(self.clock.now())
            self._ended.pop(cell, None)
            self._set(cell, f"running on {doc.get('channel')}")
        elif name == "event_page":
            cell = self._descriptors.get(doc.get("descriptor", ""))
            if cell is not None and "step" in doc.get("data", {}) and self._steps[cell].update(doc["data"]["step"][-1]):
                self._set(cell, self.state[cell])
            elif self._progress is not None:
                self._progress.update(self._tasks["campaign"], status=self.overall())
                for running in (c for c, st in self.state.items() if st.startswith("running")):
                    self._progress.update(self._tasks[running], status=self.line(running))
        elif name == "descriptor" and doc.get("run_start") in self._run_cell:
            self._descriptors[doc["uid"]] = self._run_cell[doc["run_start"]]
        elif name == "stop" and doc["run_start"] in self._run_cell:
            cell = self._run_cell[doc["run_start"]]
            self._ended[cell] = float(self.clock.now())
            self._set(cell, "done" if doc["exit_status"] == "success" else f"FAILED: {doc.get('reason', '')}")

    def _set(self, cell: str, status: str) -> None:
        self.state[cell] = status
        if self.mode == "lines":
            self._print(self._pace.wall_s(), self.clock.now() - self._t0, f"{cell}: {self.line(cell)}")
        if self._progress is not None:
            self._progress.update(self._tasks[cell], status=self.line(cell))
            self._progress.update(self._tasks["campaign"], status=self.overall())

    def close(self) -> None:
        if self.mode == "lines":
            self._print(self._pace.wall_s(), self.clock.now() - self._t0, f"campaign: {self.overall()}")
        if self._progress is not None:
            self._progress.stop()


@dataclass
class CampaignSession:
    """What both campaign runners share: a RunEngine journalling every document, the spool,
    per-cell progress, the run uid of each job, and the campaign state file."""

    RE: RunEngine
    spool: Spool
    tracker: CampaignProgress
    state_path: Path
    state: dict[str, Any]
    uids: dict[str, str] = field(default_factory=dict)

    @classmethod
    def open(
        cls,
        clock: Clock,
        data_dir: Path,
        campaign: Campaign,
        state: dict[str, Any],
        progress: bool | str,
        resources: tuple[int, int] = (16, 1),
    ) -> CampaignSession:
        """``resources`` = (channels, ovens), for the schedule behind the progress ETA."""
        if isinstance(clock, SimClock):
            simtime = SimulatedTime(clock)
            RE = RunEngine({}, during_task=simtime)
            simtime.install(RE)
        else:
            RE = RunEngine({})
        install_ctrl_c(RE)  # Ctrl-C stops cleanly (cells to open circuit), twice aborts at once
        RE.subscribe(RunRouter([lambda name, doc: ([Journal(data_dir)], [])]))
        from orchestrator.progress import as_mode

        planned: dict[str, float] = {}
        if as_mode(progress) != "off":
            from orchestrator.estimate import campaign_estimator
            from orchestrator.schedule import plan_campaign

            frame = plan_campaign(
                campaign, channels=resources[0], ovens=max(resources[1], 1), durations=campaign_estimator(campaign)
            ).frame
            planned = {str(k): float(v) for k, v in frame.groupby("cell")["end_s"].max().items()}
        tracker = CampaignProgress(clock, [c.id for c in campaign.cells], progress, planned)
        RE.subscribe(tracker)
        state_path = cls.state_file(data_dir, campaign.name)
        state_path.parent.mkdir(parents=True, exist_ok=True)
        session = cls(RE, Spool(data_dir, fsync=not clock.simulated), tracker, state_path, state)
        RE.subscribe(session._started)
        return session

    @staticmethod
    def state_file(data_dir: Path, campaign: str) -> Path:
        """Where a campaign's state is kept: ``<data>/campaigns/<name>/state.json``."""
        return Path(data_dir) / "campaigns" / campaign / "state.json"

    def _started(self, name: str, doc: dict[str, Any]) -> None:
        if name == "start":
            self.uids[doc["job_key"]] = doc["uid"]

    def write_state(self) -> None:
        """Replace the state file atomically (a crash leaves the old or the new one, whole)."""
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=1, default=str))
        tmp.replace(self.state_path)

    def job_ended(self, key: str, value: Any, **extra: Any) -> None:
        failed = isinstance(value, BaseException)
        self.state["jobs"][key] = {"status": "failed" if failed else "done", "uid": self.uids.get(key),
                                   "reason": str(value) if failed else None, **extra}  # fmt: skip

    def run(self, jobs: dict[str, Any], on_done: Any) -> None:
        try:
            self.RE(run_jobs(jobs, on_done))
        finally:
            self.tracker.close()
            self.spool.close()

    def failures(self) -> dict[str, str]:
        return {k: v["reason"] for k, v in self.state["jobs"].items() if v["status"] == "failed"}


def _latest_time(data_dir: Path, saved: dict[str, Any] | None) -> float:
    """The latest clock time a campaign's saved state or any of its runs' points reached (the
    simulated epoch for a campaign that has none)."""
    latest = float(saved.get("clock_s", SIM_EPOCH_S)) if saved else SIM_EPOCH_S
    if not saved:
        return latest
    uids = {info.get("uid") for info in saved.get("jobs", {}).values()}
    for cell in saved.get("cells", {}).values():
        uids |= {cell.get("run"), *(cell.get("runs") or [])}
    for path in (data_dir / "journal").glob("*.jsonl"):  # runs started after the last save too
        try:
            start, frame = read_raw_run(data_dir, path.stem)
        except (KeyError, ValueError):
            continue
        mine = start.get("uid") in uids or start.get("campaign") == saved.get("campaign")
        if mine and not frame.empty:
            latest = max(latest, float(frame["timestamp"].max()))
    return latest


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
        from orchestrator.campaign_lab import run_on_lab

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
        jobs[cell.id] = cell_job(
            cell.id, cell_phase, channel_pool, operator, gates[portion], md, context, done_steps, step_done,
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
