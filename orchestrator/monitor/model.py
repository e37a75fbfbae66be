"""What the monitor knows: runs, cells, channels, campaigns and alarms, built from documents.

:class:`Monitor` folds the documents a :class:`~orchestrator.monitor.source.Source` hands it
into one track per cell (its voltage-time curve, thinned to at most :data:`MAX_POINTS`
points by keeping every 2nd, 4th, ... point once it grows past that), the state of every
channel and oven, each campaign's schedule (planned with ``campaign plan``'s planner and the
cell model, against what ran) and the alarms: safety faults and failed cells (from the runs'
stop documents and the campaign states), aborted runs and damaged journals.

A cell's id is ``<campaign>:<cell>`` for a campaign's cells (its runs, resumed ones included,
make one curve) and ``<cell>@<run uid prefix>`` for a run outside any campaign.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.monitor.source import Source
from orchestrator.storage import POINT_STREAM

#: Most points kept per cell for its curve (older points are thinned, the newest always kept).
MAX_POINTS = 20_000
#: Words in a failure reason that make it a safety fault (the device's SafetyLimitError).
SAFETY_WORDS = ("safety limit",)


@dataclass
class _Track:
    """One cell's curve and where it is."""

    id: str
    cell: str
    campaign: str | None
    station: str
    channel: str | None = None
    runs: list[str] = field(default_factory=list)
    t: list[float] = field(default_factory=list)
    v: list[float] = field(default_factory=list)
    seq: list[int] = field(default_factory=list)
    total: int = 0
    stride: int = 1
    t0: float | None = None
    last: dict[str, float] = field(default_factory=dict)
    last_ts: float | None = None

    def add(self, ts: float, voltage: float, current: float) -> None:
        if self.t0 is None:
            self.t0 = ts
        self.total += 1
        self.last = {"voltage_V": voltage, "current_A": current}
        self.last_ts = ts
        if (self.total - 1) % self.stride == 0:
            self.seq.append(self.total)
            self.t.append(ts - self.t0)
            self.v.append(voltage)
            if len(self.seq) > MAX_POINTS:
                self.seq, self.t, self.v = self.seq[::2], self.t[::2], self.v[::2]
                self.stride *= 2


@dataclass
class _Run:
    uid: str
    start: dict[str, Any]
    track: _Track | None
    job: str | None
    campaign: str | None
    station: str
    points_descriptors: set[str] = field(default_factory=set)
    stream_names: dict[str, str] = field(default_factory=dict)
    step_order: dict[int, int] = field(default_factory=dict)  # channel's step number -> run's step index
    spans: dict[int, list[float]] = field(default_factory=dict)  # run step index -> [first, last] timestamp
    first_ts: float | None = None
    last_ts: float | None = None
    step: int | None = None
    step_started_ts: float | None = None
    stop: dict[str, Any] | None = None
    readings: dict[str, float] = field(default_factory=dict)

    def saw(self, ts: float) -> None:
        self.first_ts = ts if self.first_ts is None else min(self.first_ts, ts)
        self.last_ts = ts if self.last_ts is None else max(self.last_ts, ts)


class Monitor:
    """The monitor's picture of a lab, refreshed from its source at most every ``min_interval_s``."""

    def __init__(
        self, source: Source, campaign_files: dict[str, Path] | None = None, min_interval_s: float = 0.2
    ) -> None:
        self.source = source
        self.campaign_files = dict(campaign_files or {})
        self.min_interval_s = min_interval_s
        self._lock = threading.Lock()
        self._last_refresh = -1e9
        self.runs: dict[str, _Run] = {}
        self.tracks: dict[str, _Track] = {}
        self.states: dict[str, dict[str, Any]] = {}
        self._plans: dict[str, tuple[int, int, Any]] = {}  # campaign -> (channels, ovens, plan or error)
        self._planning: set[str] = set()
        self.polls = 0

    # --- reading ---------------------------------------------------------------------------
    def refresh(self, force: bool = False) -> None:
        """Read what the source has that is new (cheap when nothing changed)."""
        with self._lock:
            now = time.monotonic()
            if not force and now - self._last_refresh < self.min_interval_s:
                return
            for uid, name, doc in self.source.new_documents():
                self._apply(uid, name, doc)
            self.states = self.source.campaign_states()
            self._last_refresh = time.monotonic()

    def _apply(self, uid: str, name: str, doc: dict[str, Any]) -> None:
        if name == "start":
            self._started(uid, doc)
            return
        run = self.runs.get(uid)
        if run is None:
            return  # a journal without its start document (damaged): nothing to draw
        if name == "descriptor":
            run.stream_names[doc["uid"]] = doc.get("name", "")
            if doc.get("name") == POINT_STREAM:
                run.points_descriptors.add(doc["uid"])
        elif name == "event_page":
            self._page(run, doc)
        elif name == "event":
            page = {
                "descriptor": doc["descriptor"],
                "data": {k: [v] for k, v in doc["data"].items()},
                "timestamps": {k: [v] for k, v in doc["timestamps"].items()},
            }
            self._page(run, page)
        elif name == "stop":
            run.stop = doc

    def _started(self, uid: str, start: dict[str, Any]) -> None:
        campaign = start.get("campaign")
        station = str(start.get("station") or self.source.station)
        job = start.get("job")
        track = None
        if job != "portion":
            cell = str(start.get("cell") or start.get("channel") or uid[:8])
            key = f"{campaign}:{cell}" if campaign else f"{cell}@{uid[:8]}"
            track = self.tracks.get(key)
            if track is None:
                track = self.tracks[key] = _Track(key, cell, campaign, station)
            track.runs.append(uid)
            track.channel = start.get("channel") or track.channel
            track.station = station
        self.runs[uid] = _Run(uid, start, track, job, campaign, station)

    def _page(self, run: _Run, page: dict[str, Any]) -> None:
        data, stamps = page.get("data", {}), page.get("timestamps", {})
        if page["descriptor"] not in run.points_descriptors:
            for key, values in data.items():  # an oven log, transfers...: when, and the last reading
                if values and isinstance(values[-1], (int, float)) and not isinstance(values[-1], bool):
                    run.readings[key] = float(values[-1])
            for values in stamps.values():
                if values:
                    run.saw(float(min(values)))
                    run.saw(float(max(values)))
            return
        times = stamps.get("voltage_V") or page.get("time") or []
        volts = data.get("voltage_V", [])
        currents = data.get("current_A") or [float("nan")] * len(volts)
        steps = data.get("step") or [0] * len(volts)
        for ts, volt, amp, raw_step in zip(times, volts, currents, steps, strict=False):
            ts = float(ts)
            index = run.step_order.setdefault(int(raw_step), len(run.step_order))
            if index != run.step:
                run.step, run.step_started_ts = index, ts
            span = run.spans.setdefault(index, [ts, ts])
            span[1] = ts
            run.saw(ts)
            if run.track is not None:
                run.track.add(ts, float(volt), float(amp))

    # --- campaign plans --------------------------------------------------------------------
    def _plan(self, campaign: str, channels: int, ovens: int) -> dict[str, Any] | str | None:
        """``campaign plan``'s schedule of ``campaign`` (``rows``, ``cells``, ``portions``), a
        string saying why there is none, or None while it is being computed. Planning runs the
        cell model (seconds for a large campaign), so it runs in a thread of its own, again when
        the campaign has taken more channels or ovens; meanwhile the last plan is served."""
        cached = self._plans.get(campaign)
        if (cached is None or cached[:2] != (channels, ovens)) and campaign not in self._planning:
            self._planning.add(campaign)
            threading.Thread(target=self._make_plan, args=(campaign, channels, ovens), daemon=True).start()
        return None if cached is None else cached[2]

    def _make_plan(self, campaign: str, channels: int, ovens: int) -> None:
        try:
            from orchestrator.campaign_file import load_campaign
            from orchestrator.estimate import campaign_estimator
            from orchestrator.schedule import plan_campaign

            loaded = load_campaign(self.campaign_files.get(campaign, campaign))
            frame = plan_campaign(loaded, channels=channels, ovens=ovens, durations=campaign_estimator(loaded)).frame
            rows = [{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
                    for row in frame.to_dict("records")]  # fmt: skip
            plan: Any = {"rows": rows, "cells": [c.id for c in loaded.cells],
                         "portions": [p.id for p in loaded.portions]}  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - the page says why there is no plan
            plan = (
                f"no plan: campaign {campaign!r} is not a shipped campaign and no --campaign file "
                f"names it ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
            )
        finally:
            self._planning.discard(campaign)
        self._plans[campaign] = (channels, ovens, plan)

    def plans_ready(self) -> bool:
        """True once every campaign seen has its plan (or the reason it has none) for the
        channels and ovens it uses now."""
        self.status()
        with self._lock:
            return not self._planning

    # --- what the API serves ---------------------------------------------------------------
    def points(self, cell_id: str, since: int = 0) -> dict[str, Any] | None:
        """The points of a cell's curve after point number ``since`` (1-based, as ``seq``):
        ``time_s`` from the cell's first point, ``voltage_V``; None for an unknown cell."""
        return self.points_of({cell_id: since}).get(cell_id)

    def points_of(self, since: dict[str, int]) -> dict[str, dict[str, Any]]:
        """:meth:`points` of several cells at once (``{cell id: since}``); unknown cells left out."""
        self.refresh()
        out = {}
        with self._lock:
            for cell_id, after in since.items():
                track = self.tracks.get(cell_id)
                if track is None:
                    continue
                lo = _bisect_right(track.seq, int(after))
                out[cell_id] = {
                    "id": cell_id,
                    "t0": track.t0,
                    "total": track.total,
                    "stride": track.stride,
                    "last_seq": track.total,
                    "seq": track.seq[lo:],
                    "time_s": track.t[lo:],
                    "voltage_V": track.v[lo:],
                }
        return out

    def status(self) -> dict[str, Any]:
        """Stations (channels, ovens), cells, campaigns (ETA, Gantt) and alarms, as stored now
        (always read afresh; the points a page asks for next are served from this reading)."""
        self.refresh(force=True)
        with self._lock:
            self.polls += 1
            return self._status()

    def _status(self) -> dict[str, Any]:
        campaigns = {name: self._campaign(name) for name in self._campaign_names()}
        cells = [self._cell(track, campaigns.get(track.campaign or "")) for track in self.tracks.values()]
        known = {(c["campaign"], c["cell"]) for c in cells}
        for name, camp in campaigns.items():  # planned cells that have not started yet
            for cell in camp.get("cells", []):
                if (name, cell) not in known:
                    state = self.states.get(name, {}).get("jobs", {}).get(cell, {})
                    status = state.get("status", "waiting")
                    cells.append({"id": f"{name}:{cell}", "cell": cell, "campaign": name,
                                  "station": self.source.station, "channel": None, "status": status,
                                  "step": None, "points": 0, "eta_s": _left(camp, cell)})  # fmt: skip
        cells.sort(key=lambda c: (c["campaign"] or "", c["cell"]))
        for camp in campaigns.values():
            camp.pop("planned_end_s", None)
            camp.pop("plan_by_cell", None)
            etas = [c["eta_s"] for c in cells if c["campaign"] == camp["name"] and c["eta_s"] is not None]
            camp["eta_s"] = max(etas) if etas else None
        return {
            "polls": self.polls,
            "station": self.source.station,
            "stations": self._stations(),
            "cells": cells,
            "campaigns": list(campaigns.values()),
            "alarms": self._alarms(),
        }

    def _campaign_names(self) -> list[str]:
        names = {r.campaign for r in self.runs.values() if r.campaign} | set(self.states)
        return sorted(n for n in names if n)

    def _cell_status(self, track: _Track) -> str:
        job = self.states.get(track.campaign or "", {}).get("jobs", {}).get(track.cell)
        run = self.runs[track.runs[-1]]
        if run.stop is not None and run.stop.get("exit_status") == "fail":
            return "failed"
        if run.stop is None:
            return "running"
        if job is not None:
            return str(job.get("status"))
        return {"success": "done", "abort": "aborted"}.get(str(run.stop.get("exit_status")), "done")

    def _cell(self, track: _Track, camp: dict[str, Any] | None) -> dict[str, Any]:
        run = self.runs[track.runs[-1]]
        status = self._cell_status(track)
        kinds = list(run.start.get("step_types") or [])
        step: dict[str, Any] | None = None
        index, elapsed = 0, 0.0
        if run.step is not None:
            # a resumed cell's run goes on from the steps its earlier runs ran
            index = run.step + sum(len(self.runs[u].spans) for u in track.runs[:-1] if u in self.runs)
            elapsed = (track.last_ts or 0.0) - (run.step_started_ts or 0.0)
            kind = kinds[run.step] if run.step < len(kinds) else None
            step = {"index": index, "kind": kind, "of": len(kinds) or None, "elapsed_s": elapsed, "label": None}
        eta = None
        if camp is not None and camp.get("plan_by_cell") is not None:
            rows = camp["plan_by_cell"].get(track.cell, [])
            current = min(index, len(rows) - 1)
            if rows and step is not None:
                step["label"] = rows[current]["label"]
            if status in ("done", "failed", "aborted"):
                eta = 0.0 if status == "done" else None
            elif rows and step is not None:
                left = max(rows[current]["end_s"] - rows[current]["start_s"] - elapsed, 0.0)
                eta = left + sum(r["end_s"] - r["start_s"] for r in rows[current + 1 :])
            elif rows:
                eta = _left(camp, track.cell)
        return {
            "id": track.id,
            "cell": track.cell,
            "campaign": track.campaign,
            "station": track.station,
            "channel": track.channel,
            "run": run.uid,
            "runs": list(track.runs),
            "status": status,
            "step": step,
            "voltage_V": track.last.get("voltage_V"),
            "current_A": track.last.get("current_A"),
            "points": track.total,
            "clock_s": track.last_ts,
            "eta_s": eta,
        }

    def _campaign(self, name: str) -> dict[str, Any]:
        runs = [r for r in self.runs.values() if r.campaign == name]
        channels = {r.start.get("channel") for r in runs if r.job != "portion" and r.start.get("channel")}
        ovens = {r.start.get("oven") for r in runs if r.job == "portion" and r.start.get("oven")}
        plan = self._plan(name, max(len(channels), 1), max(len(ovens), 1))
        firsts = [r.first_ts for r in runs if r.first_ts is not None]
        lasts = [r.last_ts for r in runs if r.last_ts is not None]
        t0 = min(firsts) if firsts else None
        elapsed = (max(lasts) - t0) if (lasts and t0 is not None) else 0.0
        plan_rows = plan["rows"] if isinstance(plan, dict) else None
        done = []
        for r in runs:
            if t0 is None or r.first_ts is None:
                continue
            row = r.start.get("cell") or r.start.get("portion") or r.uid[:8]
            failed = r.stop is not None and r.stop.get("exit_status") == "fail"
            if r.job == "portion":
                done.append({"cell": row, "resource": r.start.get("oven"), "task": "heat",
                             "start_s": r.first_ts - t0, "end_s": (r.last_ts or r.first_ts) - t0,
                             "state": "failed" if failed else ("done" if r.stop else "running")})  # fmt: skip
                continue
            kinds = list(r.start.get("step_types") or [])
            for index, (a, b) in sorted(r.spans.items()):
                running = r.stop is None and index == r.step
                done.append({"cell": row, "resource": r.start.get("channel"),
                             "task": kinds[index] if index < len(kinds) else "step",
                             "start_s": a - t0, "end_s": b - t0,
                             "state": "running" if running else ("failed" if failed and index == r.step else "done")})  # fmt: skip
        state = self.states.get(name, {})
        jobs = state.get("jobs", {})
        # the campaign's cells, in plan order, and any cell that ran but is not in the plan
        planned_cells = plan["cells"] if isinstance(plan, dict) else []
        cells = list(dict.fromkeys([*planned_cells, *(r.start.get("cell") for r in runs if r.start.get("cell"))]))
        rows = list(dict.fromkeys([*(row["cell"] for row in plan_rows or []), *(b["cell"] for b in done)]))
        planned_end: dict[str, float] = {}
        by_cell: dict[str, list[dict[str, Any]]] = {}
        for row in plan_rows or []:
            by_cell.setdefault(row["cell"], []).append(row)
            planned_end[row["cell"]] = max(planned_end.get(row["cell"], 0.0), float(row["end_s"]))
        makespan = max(planned_end.values(), default=None)
        return {
            "name": name,
            "t0_clock_s": t0,
            "elapsed_s": elapsed,
            "makespan_s": makespan,
            "cells": cells,
            "cells_done": sum(1 for c in cells if jobs.get(c, {}).get("status") == "done"),
            "cells_failed": sum(1 for c in cells if jobs.get(c, {}).get("status") == "failed"),
            "plan_note": plan if isinstance(plan, str) else ("planning..." if plan is None else None),
            "gantt_rows": rows,
            "plan_by_cell": by_cell if plan_rows is not None else None,
            "planned_end_s": planned_end,
            "gantt": {
                "planned": [{k: row[k] for k in ("cell", "channel", "task", "start_s", "end_s", "label")}
                            for row in plan_rows or []],
                "done": done,
            },  # fmt: skip
        }

    def _stations(self) -> list[dict[str, Any]]:
        resources: dict[str, dict[str, dict[str, Any]]] = {}
        for run in self.runs.values():  # in start order: the latest run on a resource wins
            name = run.start.get("oven") if run.job == "portion" else run.start.get("channel")
            if not name:
                continue
            station = resources.setdefault(run.station, {})
            busy = run.stop is None
            entry = station.get(name)
            if entry is not None and entry["busy"] and not busy:
                continue  # a finished run does not hide one still running on the same resource
            temperature = next((v for k, v in run.readings.items() if k.endswith("temperature")), None)
            station[name] = {
                "name": name,
                "kind": "oven" if run.job == "portion" else "channel",
                "busy": busy,
                "cell": run.track.id if run.track else (run.start.get("portion") or None),
                "run": run.uid,
                "status": self._cell_status(run.track) if run.track else ("heating" if busy else "idle"),
                "voltage_V": run.track.last.get("voltage_V") if run.track else None,
                "temperature_C": temperature,
            }
        if not resources:
            resources[self.source.station] = {}
        return [{"name": s, "resources": sorted(r.values(), key=lambda e: (e["kind"], e["name"]))}
                for s, r in sorted(resources.items())]  # fmt: skip

    def _alarms(self) -> list[dict[str, Any]]:
        alarms: list[dict[str, Any]] = []
        seen: set[tuple[str, str]] = set()

        def add(level: str, cell: str | None, message: str, **extra: Any) -> None:
            key = (str(cell), message)
            if key in seen:
                return
            seen.add(key)
            alarms.append({"level": level, "cell": cell, "message": message, **extra})

        for run in self.runs.values():
            if run.stop is None or run.stop.get("exit_status") == "success":
                continue
            reason = str(run.stop.get("reason") or "")
            cell = run.track.id if run.track else (run.start.get("portion") or run.uid[:8])
            where = {"station": run.station, "channel": run.start.get("channel") or run.start.get("oven"),
                     "run": run.uid, "time": run.stop.get("time")}  # fmt: skip
            if run.stop.get("exit_status") == "fail":
                level = "safety" if any(w in reason.lower() for w in SAFETY_WORDS) else "failed"
                add(level, cell, reason or "the run failed", **where)
            else:
                add("warning", cell, f"run {run.uid[:8]} ended: {run.stop.get('exit_status')} {reason}".strip(),
                    **where)  # fmt: skip
        for name, state in self.states.items():
            for key, job in state.get("jobs", {}).items():
                if job.get("status") != "failed":
                    continue
                reason = str(job.get("reason") or "failed")
                level = "safety" if any(w in reason.lower() for w in SAFETY_WORDS) else "failed"
                add(level, f"{name}:{key}", reason, station=self.source.station, run=job.get("uid"))
        for uid, why in self.source.damaged.items():
            add("damaged", uid[:8], why, run=uid)
        order = {"safety": 0, "failed": 1, "damaged": 2, "warning": 3}
        return sorted(alarms, key=lambda a: order.get(a["level"], 9))


def _left(camp: dict[str, Any], cell: str) -> float | None:
    """Time left until a cell that has not begun its steps ends, as planned."""
    end = camp["planned_end_s"].get(cell)
    return None if end is None else max(end - camp["elapsed_s"], 0.0)


def _bisect_right(values: list[int], x: int) -> int:
    lo, hi = 0, len(values)
    while lo < hi:
        mid = (lo + hi) // 2
        if values[mid] <= x:
            lo = mid + 1
        else:
            hi = mid
    return lo
