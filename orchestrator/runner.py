"""A session: clock, RunEngine, storage and progress for running plans on a lab.

In simulated mode the clock is a :class:`~drivers.clock.SimClock` driven by
:class:`~orchestrator.simtime.SimulatedTime`; in real mode it is the wall clock.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

from event_model import DocumentRouter

from drivers.clock import Clock, SimClock, WallClock
from drivers.techniques import technique_from_dict
from orchestrator.connect import ConnectedLab, connect_lab
from orchestrator.interrupt import install as install_ctrl_c
from orchestrator.lab import Lab
from orchestrator.progress import LinePrinter, Pace, StepTracker, Tenths, as_mode, sim_text, wall_text
from orchestrator.simtime import run_engine
from orchestrator.storage import Journal, Spool, TiledStore, default_data_dir, read_journal


def _count(n: int, noun: str) -> str:
    """``1 step``, ``3 steps``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


class ProgressReporter(DocumentRouter):
    """A run's progress: its current step, simulated and wall time, and the ETA in simulated and
    wall-clock time. ``mode`` (see :mod:`orchestrator.progress`): ``"live"`` a rich bar on the
    terminal, ``"lines"`` one plain line per event (run start, step start, each tenth of the
    planned time, run end) on ``stream``,
    ``"off"``; ``True``/``False`` mean live/off."""

    def __init__(self, clock: Clock, enabled: bool | str = True, stream: Any = None) -> None:
        super().__init__()
        self.clock = clock
        self.mode = as_mode(enabled)
        self.enabled = self.mode != "off"
        self._print = LinePrinter(stream)
        self._progress: Any = None
        self._task: Any = None
        self._t0 = 0.0
        self._steps: list[float] = []
        self._tracker = StepTracker([])
        self._pace = Pace(0.0)
        self._label = "run"
        self._tenths = Tenths(0.0)

    def _sim_s(self) -> float:
        return self.clock.now() - self._t0

    def _left_s(self, point_s: float) -> float:
        """Simulated time left by the steps' estimates: the rest of the current step (at least
        nothing) and every step after it."""
        i = max(self._tracker.index, 0)
        done_before = sum(self._steps[:i])
        in_step = min(max(point_s - done_before, 0.0), self._steps[i] if i < len(self._steps) else 0.0)
        return max(sum(self._steps) - done_before - in_step, 0.0)

    def start(self, doc: dict[str, Any]) -> None:  # type: ignore[override]
        if not self.enabled:
            return
        self._t0 = float(doc.get("clock_start_s", self.clock.now()))
        self._pace = Pace(self._sim_s())  # simulated seconds from the run's start
        from orchestrator.schedule import estimate_step_s  # the campaign modules only when progress shows

        self._steps = [estimate_step_s(technique_from_dict(s)) for s in doc.get("steps", [])]
        self._tracker = StepTracker(list(doc.get("step_types", [])))
        self._label = str(doc.get("cell") or doc.get("plan_name", "run"))
        self._tenths = Tenths(sum(self._steps))
        if self.mode == "lines":
            self._print(0.0, 0.0, f"{self._label}: run {str(doc['uid'])[:8]} started, {_count(len(self._steps), 'step')}, "
                                  f"~{sim_text(sum(self._steps))} simulated planned")  # fmt: skip
            return
        from rich.progress import BarColumn, Progress, TextColumn

        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[status]}"), transient=True
        )
        self._progress.start()
        self._task = self._progress.add_task(self._label, total=max(sum(self._steps), 1.0), status="starting")

    def event_page(self, doc: dict[str, Any]) -> None:  # type: ignore[override]
        if not self.enabled or "step" not in doc.get("data", {}):
            return
        steps, stamps = doc["data"]["step"], doc["timestamps"]["step"]
        # every step that begins in this page and every tenth of the planned time that passes
        # in it (a long step is not silent until it ends), each with the simulated time of its
        # first point (a page may hold several, and comes in after its points were taken)
        said: list[tuple[float, str]] = []
        for raw, at in zip(steps, stamps, strict=True):
            at_s = float(at) - self._t0
            if self._tracker.update(raw):
                said.append((at_s, f"now on {self._tracker.text()}"))
            tenth = self._tenths.passed(at_s)
            if tenth is not None:
                planned = sim_text(self._tenths.planned_s)
                said.append((at_s, f"{10 * tenth} % of ~{planned} planned, on {self._tracker.text()}"))
        point_s = float(stamps[-1]) - self._t0
        sim = self._sim_s()
        left = self._left_s(point_s)
        eta = self._pace.eta(sim, left)
        if self.mode == "lines":
            for at_s, text in said:  # the ETA as it stood then
                at_eta = self._pace.eta(sim, self._left_s(at_s))
                self._print(self._pace.wall_s(), at_s, f"{self._label}: {text}; {at_eta}")
            return
        if self._progress is not None:
            total = max(sum(self._steps), 1.0)
            self._progress.update(
                self._task, completed=min(max(total - left, 0.0), total),
                status=f"{self._tracker.text()}  sim {sim_text(sim)}  wall {wall_text(self._pace.wall_s())}  {eta}",
            )  # fmt: skip

    def stop(self, doc: dict[str, Any]) -> None:  # type: ignore[override]
        if self.mode == "lines":
            self._print(self._pace.wall_s(), self._sim_s(),
                        f"{self._label}: run ended ({doc.get('exit_status')}) after {sim_text(self._sim_s())} "
                        f"simulated, {wall_text(self._pace.wall_s())} wall")  # fmt: skip
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


class Session:
    """Everything needed to run plans on a lab and keep their data."""

    def __init__(
        self,
        lab: Lab,
        data_dir: Path | None = None,
        tiled: bool = True,
        tiled_uri: str | None = None,
        progress: bool | str = False,
        noise: bool = False,
        cells: list[str] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.lab = lab
        self.simulated = (
            all(lab.instruments[c.instrument].simulated for c in (lab.cell(n) for n in cells or []))
            if cells
            else lab.simulated
        )
        # a given clock: e.g. the free-running clock of a `relaxlab sim serve` process
        self.clock: Clock = clock or (SimClock() if self.simulated else WallClock())
        self.data_dir = Path(data_dir or lab.lab.data_dir or default_data_dir())
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.RE, self.simtime = run_engine(self.clock)
        install_ctrl_c(self.RE)  # Ctrl-C stops cleanly (cells to open circuit), twice aborts at once
        self.journal = Journal(self.data_dir)
        self.RE.subscribe(self.journal)
        self.tiled: TiledStore | None = None
        self.tiled_embedded = tiled and tiled_uri is None
        if tiled and tiled_uri is not None:  # a Tiled server: written as the run goes
            self.tiled = TiledStore(self.data_dir, tiled_uri)
            self.RE.subscribe(self.tiled)
        elif tiled:  # the embedded catalog: filled from the journal in the background
            from orchestrator.tiled_fill import FillOnStop

            self.RE.subscribe(FillOnStop(self.data_dir))
        self.progress = ProgressReporter(self.clock, enabled=progress)
        self.RE.subscribe(self.progress)
        self.connected: ConnectedLab = connect_lab(lab, self.clock, cells, noise=noise)
        # Points are spooled the moment they are read (fsynced on the wall clock).
        self.spool = Spool(self.data_dir, fsync=not self.clock.simulated)
        for channel in self.connected.channels.values():
            channel.spool = self.spool

    def channel(self, cell: str | None = None) -> Any:
        """The potentiostat channel (a :class:`drivers.device.PotentiostatChannel`) of ``cell``
        (default: the lab's first cell)."""
        name = self.lab.cell(cell).name
        return self.connected.channels[name]

    def run(self, plan: Generator[Any, Any, Any], **md: Any) -> tuple[str, ...]:
        """Run a plan; returns the uids of the runs it opened."""
        uids: Any = self.RE(
            plan, clock_start_s=self.clock.now(), lab=self.lab.lab.name, spool=self.spool.session, **md
        )
        return tuple(uids)

    def read(self, uid: str, source: str = "journal") -> Any:
        """``(start document, DataFrame)`` of run ``uid`` with the export columns, from the
        journal or (``source="tiled"``) from the Tiled catalog."""
        if source == "tiled":
            if self.tiled is not None:
                return self.tiled.read_run(uid)
            if not self.tiled_embedded:
                raise RuntimeError("this session has no Tiled catalog")
            from orchestrator.tiled_fill import fill

            fill(self.data_dir, [uid])  # waits for the background filler, copies what it lacks
            store = TiledStore(self.data_dir)
            try:
                return store.read_run(uid)
            finally:
                store.close()
        return read_journal(self.data_dir, uid)

    def subscribe(self, callback: Callable[[str, dict[str, Any]], None]) -> int:
        """Have ``callback(name, document)`` called with every document the runs emit."""
        return self.RE.subscribe(callback)

    def close(self) -> None:
        """Close the storage and the connections to the instruments."""
        self.journal.close()
        self.spool.close()
        self.connected.close()
        if self.tiled is not None:
            self.tiled.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
