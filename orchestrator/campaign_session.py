"""What a running campaign keeps: its result, its progress display, and its session (RunEngine,
journal, spool, state file), shared by the simulated lab (:mod:`orchestrator.campaign_run`)
and a lab file's channels (:mod:`orchestrator.campaign_lab`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from bluesky import RunEngine

from drivers.clock import SIM_EPOCH_S, Clock
from orchestrator.campaign_file import Campaign
from orchestrator.estimate import campaign_estimator
from orchestrator.interrupt import install as install_ctrl_c
from orchestrator.progress import LinePrinter, Pace, StepTracker, Tenths, as_mode, sim_text, wall_text
from orchestrator.run_router import PerRun
from orchestrator.schedule import plan_campaign
from orchestrator.simtime import run_engine
from orchestrator.storage import (
    Journal,
    Spool,
    read_raw_run,
)
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
    starts, starts a step, ends; and the campaign's line at each tenth of its planned time),
    ``"off"`` (also ``False``)."""

    def __init__(
        self, clock: Any, cells: list[str], enabled: bool | str, planned_end_s: dict[str, float] | None = None,
        stream: Any = None,
    ) -> None:  # fmt: skip
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
        self._tenths = Tenths(self.makespan_s)
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
        if name == "start" and doc.get("job") == "cell":
            cell = doc["cell"]
            self._run_cell[doc["uid"]] = cell
            self._steps[cell] = StepTracker(list(doc.get("step_types", [])))
            self._began[cell] = float(self.clock.now())
            self._ended.pop(cell, None)
            self._set(cell, f"running on {doc.get('channel')}")
        elif name == "event_page":
            cell = self._descriptors.get(doc.get("descriptor", ""))
            data = doc.get("data", {})
            stepped = cell is not None and "step" in data and self._new_steps(cell, data["step"])
            if cell is not None and stepped:
                self._set(cell, self.state[cell])
            if self.mode == "lines":
                self._tenth_line()
            elif self._progress is not None and not stepped:
                self._progress.update(self._tasks["campaign"], status=self.overall())
                for running in (c for c, st in self.state.items() if st.startswith("running")):
                    self._progress.update(self._tasks[running], status=self.line(running))
        elif name == "descriptor" and doc.get("run_start") in self._run_cell:
            self._descriptors[doc["uid"]] = self._run_cell[doc["run_start"]]
        elif name == "stop" and doc["run_start"] in self._run_cell:
            cell = self._run_cell[doc["run_start"]]
            self._ended[cell] = float(self.clock.now())
            self._set(cell, "done" if doc["exit_status"] == "success" else f"FAILED: {doc.get('reason', '')}")

    def _new_steps(self, cell: str, steps: list[Any]) -> bool:
        """Follow every point's step (a page may hold several short steps); True if one began."""
        began = False
        for raw in steps:
            began = self._steps[cell].update(raw) or began
        return began

    def _tenth_line(self) -> None:
        """The campaign's line when another tenth of its planned time has passed (long steps
        are not silent until they end)."""
        now_s = self.clock.now() - self._t0
        if self._tenths.passed(now_s) is not None:
            self._print(self._pace.wall_s(), now_s, f"campaign: {self.overall()}")

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
    #: Each cell's channel in the schedule (``campaign plan``'s: ch01, ch02 ...).
    planned_channels: dict[str, str] = field(default_factory=dict)

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
        """``resources`` = (channels, ovens), for the schedule (``campaign plan``'s, from the same
        cell model) behind the progress ETA and each cell's planned channel."""
        RE, _ = run_engine(clock)
        install_ctrl_c(RE)  # Ctrl-C stops cleanly (cells to open circuit), twice aborts at once
        RE.subscribe(PerRun(lambda start: [Journal(data_dir)]))  # one journal file per run
        frame = plan_campaign(
            campaign, channels=resources[0], ovens=max(resources[1], 1), durations=campaign_estimator(campaign)
        ).frame
        planned = {str(k): float(v) for k, v in frame.groupby("cell")["end_s"].max().items()}
        on_channels = frame[frame["channel"].str.startswith("ch")]
        planned_channels = {str(k): str(v) for k, v in on_channels.groupby("cell")["channel"].first().items()}
        if as_mode(progress) == "off":
            planned = {}
        tracker = CampaignProgress(clock, [c.id for c in campaign.cells], progress, planned)
        RE.subscribe(tracker)
        state_path = cls.state_file(data_dir, campaign.name)
        state_path.parent.mkdir(parents=True, exist_ok=True)
        session = cls(RE, Spool(data_dir, fsync=not clock.simulated), tracker, state_path, state,
                      planned_channels=planned_channels)  # fmt: skip
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
