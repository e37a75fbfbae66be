"""A campaign across stations: each cell's and portion's steps queued on the station that holds
its channel or oven.

``relaxlab campaign run CAMPAIGN --stations FILE --tiled URI``:

1. the schedule of ``relaxlab campaign plan`` (as many channels and ovens as the stations file
   lists, in file order) gives each cell its channel and its turn on it, and each heated powder
   portion its oven (:mod:`orchestrator.station_schedule`);
2. every station is reached (bluesky-queueserver-api, zmq), its environment opened when it is
   closed, and every channel and oven the file gives it must be one of its devices: otherwise
   one error names what is missing, before anything is queued;
3. the portions of each oven station are queued as one ``campaign_portions`` item (the operator
   weighs each portion: the console asks for its mass; a responder in tests); the station does
   their operator steps and heating, each portion its own run, in the schedule's order;
4. a station's turn of cells is queued (one ``campaign_cells`` item: its cells run at once,
   each its own run) once the portions its cells are built from have finished runs on the
   Tiled server (the operator carries each portion to the cells' station, builds and weighs
   the cells and mounts them: the console asks for each mass); turns of a station follow each
   other in the schedule's order; the stations run in parallel;
5. the campaign state lives in one place, ``<data>/campaigns/<name>/stations.json`` on the PC
   that dispatches: for each portion and cell its station, oven or channel, turn, the queue
   item's uid and status and its run. It is written before each item is started, so a
   dispatcher killed at any moment knows what it queued;
6. results are read from the shared Tiled server (each run's stop document says whether the
   cell or portion finished).

Never resubmit blindly: with ``resume`` a cell or portion whose item is still queued or running
is waited for; one whose item ended (completed, failed, or ``unknown`` after a station's manager
was killed) is looked up in the Tiled server by campaign and job: a finished run (stop
document, ``success``) makes it done, whatever the queue says; only one with no finished run is
queued again (a new run, ``resumes`` naming the interrupted one). A portion that failed fails
its cells (they are not built).

A station killed mid-campaign is waited for (the others carry on); when its manager answers
again its environment is opened (closing the interrupted runs from its spool) and the cells and
portions the kill interrupted are queued again first, each a new run naming the interrupted
one (``resumes``). The station picks a cell up from its own step record
(:mod:`orchestrator.station_startup`): the step the interrupted run had running on the
instruments is re-attached where its stored points end (the instruments ran on meanwhile: served
outside the station, e.g. ``relaxlab sim serve`` or real ones), steps it had finished are not
repeated. A portion interrupted mid-hold in an oven served outside the station is held only
for the rest of its hold (its record joins both runs); else it is heated again from the start.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.campaign_file import Campaign
from orchestrator.campaign_session import CampaignResult
from orchestrator.schedule import split_phases
from orchestrator.station import connect_station, device_name
from orchestrator.station_schedule import (  # noqa: F401  (re-exported)
    Assignment,
    StationPlan,
    assign,
    check_dispatchable,
    step_to_dict,
)
from orchestrator.stations_file import StationsFile


@dataclass
class DispatchState:
    path: Path
    data: dict[str, Any] = field(default_factory=dict)

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, default=str))
        tmp.replace(self.path)


def _finished_runs(client: Any, campaign: str, latest_run: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """``{job: {"uid", "exit_status", "reason"}}`` of the campaign's runs on the server that
    have a stop document (cells and portions; the latest per job, preferring a successful one)."""
    from tiled.queries import Key

    found: dict[str, dict[str, Any]] = {}
    latest: dict[str, tuple[float, str]] = {}
    for uid, run in client.search(Key("start.campaign") == campaign).items():
        md = run.metadata
        stop = md.get("stop")
        job = md.get("start", {}).get("job_key")
        if job is not None and float(md["start"].get("time", 0.0)) >= latest.get(job, (-1.0, ""))[0]:
            latest[job] = (float(md["start"].get("time", 0.0)), uid)
        if not stop or job is None:
            continue
        entry = {"uid": uid, "exit_status": stop.get("exit_status"), "reason": stop.get("reason", "")}
        if found.get(job, {}).get("exit_status") != "success":
            found[job] = entry
    if latest_run is not None:  # the latest run of each job, stopped or not: what a job queued again resumes
        latest_run.update({job: uid for job, (_, uid) in latest.items()})
    return found

#: The stop reason of a run a killed station's recovery closed (orchestrator.storage.recover).
KILLED = "the orchestrator stopped"


def _open_stations(stations: StationsFile, apis: dict[str, Any]) -> None:
    """Reach every station, open its environment, check it holds what the file says."""
    for name, entry in stations.stations.items():  # every station reached and checked first
        try:
            apis[name] = connect_station(entry.control, entry.info, timeout_s=30.0)
        except ConnectionError as exc:
            raise ConnectionError(f"station {name}: {exc}") from exc
    for name, api in apis.items():
        if not api.status()["worker_environment_exists"]:
            try:
                api.environment_open()
            except Exception:  # noqa: S110 (another dispatcher is opening it: wait for that)
                pass
            api.wait_for_idle(timeout=600)
            if not api.status(reload=True)["worker_environment_exists"]:
                raise ConnectionError(f"station {name}: its environment did not open (see its manager.log)")
        devices = set(api.devices_allowed()["devices_allowed"])
        entry = stations.stations[name]
        missing = [x for x in (*entry.channels, *entry.ovens) if device_name(x) not in devices]
        if missing:
            raise ValueError(f"station {name} has no channel or oven {missing[0]!r} (its devices: "
                             f"{', '.join(sorted(devices)) or 'none'}): fix the stations file")  # fmt: skip


def dispatch_campaign(
    campaign: Campaign,
    stations: StationsFile,
    data_dir: Path,
    tiled_uri: str,
    mount: Any = None,
    resume: bool = False,
    rerun: bool = False,
    poll_s: float = 1.0,
    say: Any = print,
    weigh: Any = None,
    patience: int = 30,
) -> CampaignResult:
    """Run ``campaign`` on ``stations`` (see the module text). ``mount(cell, station, channel)``
    returns the mass (mg) of the cell the operator built and put on that channel, ``weigh(portion,
    station, oven)`` the mass (mg) of the portion the operator weighed for that oven (default:
    the campaign's masses, announced through ``say``). A station that stops answering for
    ``patience`` polls, or whose queue stops with our items left, is left (its cells and
    portions are then 'not finished': ``--resume`` picks them up)."""
    from orchestrator.storage import TiledStore, campaign_lock

    check_dispatchable(campaign, stations)
    data_dir = Path(data_dir)
    wall0 = time.perf_counter()
    with campaign_lock(data_dir, campaign.name):
        path = data_dir / "campaigns" / campaign.name / "stations.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() and not resume:
            if not rerun:
                raise ValueError(
                    f"campaign {campaign.name!r} already ran across stations (state: {path}): add --resume "
                    "to continue it, or --rerun to run it again from the start"
                )
            path.replace(path.with_name(f"stations-{time.strftime('%Y%m%dT%H%M%S')}.json"))
        state = DispatchState(path, json.loads(path.read_text()) if resume and path.exists() else {})
        state.data.setdefault("campaign", campaign.name)
        store = TiledStore(data_dir, tiled_uri)
        apis: dict[str, Any] = {}
        try:
            _open_stations(stations, apis)
            run = _Dispatch(campaign, assign(campaign, stations), state, store, apis, mount, weigh, say)
            run.start(resume)
            run.loop(poll_s, patience)
            return run.result(wall0)
        finally:
            for api in apis.values():
                api.close()
            store.close()


class _Dispatch:
    """One dispatch: what is queued where, what waits for what (see the module text)."""

    def __init__(self, campaign: Campaign, plan: StationPlan, state: DispatchState, store: Any,
                 apis: dict[str, Any], mount: Any, weigh: Any, say: Any) -> None:  # fmt: skip
        self.campaign, self.plan, self.state, self.store, self.apis = campaign, plan, state, store, apis
        self.mount, self.weigh, self.say = mount, weigh, say
        self.cells: dict[str, Any] = state.data.setdefault("cells", {})
        self.portions: dict[str, Any] = state.data.setdefault("portions", {})
        self.by_cell = {c.id: c for c in campaign.cells}
        self.turns: dict[str, list[list[Assignment]]] = {}
        self.outstanding: dict[str, set[str]] = {name: set() for name in apis}
        self.finished: dict[str, dict[str, Any]] = {}
        self.given_up: set[str] = set()
        self.latest: dict[str, str] = {}

    def start(self, resume: bool) -> None:
        """Decide what is done, what is still on a station, and queue the portions."""
        self.finished = _finished_runs(self.store.client, self.campaign.name, self.latest) if resume else {}
        pending: set[str] = set()
        if resume:
            for api in self.apis.values():
                queue = api.queue_get()
                pending |= {item["item_uid"] for item in queue["items"]}
                if queue.get("running_item"):
                    pending.add(queue["running_item"].get("item_uid"))
        todo_portions: dict[str, list[str]] = {}
        for name, p in self.plan.portions.items():
            info = self.portions.setdefault(name, {})
            if self._done(name):
                info.update(status="done", run=self.finished[name]["uid"])
            elif info.get("item_uid") in pending:
                info["status"] = "queued"  # still on its station: wait for it, never twice
                self.outstanding[info["station"]].add(info["item_uid"])
            else:
                todo_portions.setdefault(p.station, []).append(name)
        for a in self.plan.cells:
            info = self.cells.setdefault(a.cell, {})
            if self._done(a.cell):
                info.update(status="done", run=self.finished[a.cell]["uid"])
            elif info.get("item_uid") in pending:
                info["status"] = "queued"
                self.outstanding[info["station"]].add(info["item_uid"])
        for station, groups in self.plan.turns().items():
            groups = [[a for a in g if self.cells[a.cell].get("status") not in ("done", "queued")] for g in groups]
            self.turns[station] = [g for g in groups if g]
        self.state.save()
        for station, names in todo_portions.items():
            self._queue_portions(station, names)

    def _done(self, job: str) -> bool:
        return self.finished.get(job, {}).get("exit_status") == "success"

    def _add(self, station: str, item: Any) -> str:
        added = self.apis[station].item_add(item)
        if not added.get("success", True):
            raise RuntimeError(f"station {station} refused the item: {added.get('msg')}")
        return str(added["item"]["item_uid"])

    def _run(self, station: str, uid: str) -> None:
        self.outstanding[station].add(uid)
        self._start_queue(station)

    def _start_queue(self, station: str) -> None:
        """Start the station's queue if it is stopped, opening its environment first if it is
        closed (a manager restarted after a kill: opening it closes the runs it left open)."""
        api = self.apis[station]
        status = api.status(reload=True)
        if not status["worker_environment_exists"]:
            if status["manager_state"] == "idle":
                try:
                    api.environment_open()
                except Exception as exc:  # someone else opened it meanwhile
                    self.say(f"station {station}: environment not opened by the dispatcher ({exc})")
            api.wait_for_idle(timeout=600)
            status = api.status(reload=True)
            if not status["worker_environment_exists"]:  # its startup script failed (a strike in the loop)
                raise RuntimeError(f"station {station}: its environment did not open (its manager.log says why)")
        if status["manager_state"] == "idle" and status["worker_environment_exists"]:
            try:
                api.queue_start()
            except Exception as exc:  # another dispatcher started the queue since the status was read
                if "busy" not in str(exc) and "running" not in str(exc):
                    raise

    def _queue_portions(self, station: str, names: list[str]) -> None:
        from bluesky_queueserver_api import BPlan

        names = sorted(names, key=lambda n: self.plan.portions[n].start_s)
        masses = {p.id: p.mass_g * 1000.0 for p in self.campaign.portions}
        items = []
        for name in names:
            p = self.plan.portions[name]
            cell = self.by_cell[p.cells[0]] if p.cells else next(c for c in self.campaign.cells if c.portion == name)
            mass_mg = self.weigh(name, station, p.oven) if self.weigh else masses.get(name, 0.0)
            if not self.weigh:
                self.say(f"weigh portion {name} ({mass_mg:g} mg) for oven {p.oven} of station {station}")
            steps, _ = split_phases(cell.protocol.steps)
            md = {"campaign": self.campaign.name, "batch": self.campaign.batch.id, "portion": name,
                  "condition": dict(cell.condition), "oven_station": station,
                  "resumes": self.latest.get(name) or self.portions[name].get("run")}  # fmt: skip
            items.append({"portion": name, "steps": [step_to_dict(s) for s in steps],
                          "recorded": {"portion_mass": mass_mg}, "md": md})  # fmt: skip
        ovens = [device_name(o) for o in self.plan_ovens(station)]
        uid = self._add(station, BPlan("campaign_portions", ovens, items))
        for name in names:
            self.portions[name].update(station=station, oven=self.plan.portions[name].oven, item_uid=uid,
                                       status="queued")  # fmt: skip
        self.state.save()  # what was queued is known before it starts
        self._run(station, uid)

    def plan_ovens(self, station: str) -> list[str]:
        return sorted({p.oven for p in self.plan.portions.values() if p.station == station})

    def _ready(self, group: list[Assignment]) -> bool:
        """Every portion the group's cells are built from has a finished run (a failed one
        fails its cells, which are dropped from the group)."""
        for a in list(group):
            if a.portion is None:
                continue
            run = self.finished.get(a.portion)
            if run is None:
                return False
            if run["exit_status"] != "success":
                self.cells[a.cell].update(status="failed", reason=f"its powder portion {a.portion} failed: "
                                          f"{run['reason'] or run['exit_status']}")  # fmt: skip
                group.remove(a)
        return True

    def _queue_cells(self, station: str, group: list[Assignment]) -> None:
        from bluesky_queueserver_api import BPlan

        cells = []
        for a in group:
            cell = self.by_cell[a.cell]
            if a.portion is not None:
                self.say(f"carry portion {a.portion} to station {station}: build cell {a.cell} from it")
            mass_mg = self.mount(a.cell, station, a.channel) if self.mount else cell.mass_g * 1000.0
            if not self.mount:
                self.say(f"mount cell {a.cell} ({mass_mg:g} mg) on {station} channel {a.channel}")
            md = {"campaign": self.campaign.name, "batch": self.campaign.batch.id,
                  "material": self.campaign.batch.material, "cell": a.cell,
                  "charged_to": self.campaign.powder.charged_to if self.campaign.powder else None,
                  "sample": cell.portion or self.campaign.batch.id, "portion": cell.portion,
                  "replicate": cell.replicate, "condition": dict(cell.condition),
                  "protocol": cell.protocol.name, "resumes": self.latest.get(a.cell) or self.cells[a.cell].get("run"),
                  "portion_run": (self.finished.get(a.portion) or {}).get("uid") if a.portion else None}  # fmt: skip
            _, steps = split_phases(cell.protocol.steps)
            cells.append({"cell": a.cell, "steps": [step_to_dict(s) for s in steps],
                          "active_mass_mg": mass_mg, "md": md})  # fmt: skip
        uid = self._add(station, BPlan("campaign_cells", [device_name(a.channel) for a in group], cells))
        for a in group:
            self.cells[a.cell].update(station=station, channel=a.channel, turn=a.turn, item_uid=uid,
                                      status="queued")  # fmt: skip
        self.state.save()  # what was queued is known before it starts
        self._run(station, uid)

    def loop(self, poll_s: float, patience: int) -> None:
        """Queue each station's next turn when its portions are ready; wait until every item
        queued is in its station's history (or its station is left)."""
        strikes = dict.fromkeys(self.apis, 0)
        while True:
            if any(self.turns.values()) and any(a.portion for g in self.turns.values() for x in g for a in x):
                self.finished = _finished_runs(self.store.client, self.campaign.name, self.latest)
            for station, groups in self.turns.items():
                # a station's turns follow each other: the next one is queued when the one
                # before has ended (its channels are free) and its portions are ready
                while groups and station not in self.given_up and not self.outstanding[station]:
                    if not self._ready(groups[0]):
                        break
                    group = groups.pop(0)
                    if group:
                        self._queue_cells(station, group)
                self.state.save()
            for station, items in self.outstanding.items():
                if not items or station in self.given_up:
                    continue
                api = self.apis[station]
                try:
                    ended = items & {item["item_uid"] for item in api.history_get()["items"]}
                    items -= ended
                    if ended:
                        self._interrupted(station, ended)
                    if items and api.status(reload=True)["manager_state"] == "idle":
                        self._start_queue(station)  # back after a kill: our items wait in its queue
                    stuck = False
                except Exception as exc:  # killed, restarting: it may come back
                    stuck, problem = True, f"not answering ({exc})"
                strikes[station] = strikes[station] + 1 if stuck else 0
                if strikes[station] >= patience:
                    self.say(f"station {station}: {problem}; {len(items)} item(s) not finished - "
                             "`relaxlab campaign run ... --stations FILE --resume` continues them")  # fmt: skip
                    self.given_up.add(station)
            running = [s for s, items in self.outstanding.items() if items and s not in self.given_up]
            waiting = [s for s, groups in self.turns.items() if groups and s not in self.given_up]
            if not running:
                if not waiting:
                    return
                # nothing runs: a turn can still start only if its portions finished meanwhile
                self.finished = _finished_runs(self.store.client, self.campaign.name, self.latest)
                if not any(self._ready(self.turns[s][0]) for s in waiting):
                    return
            time.sleep(poll_s)

    def _interrupted(self, station: str, ended: set[str]) -> None:
        """Cells and portions of items that ended without a finished run of theirs, or whose run
        a killed station's recovery closed, go again at the front of the station's turns (a new
        run resuming the interrupted one), at most 3 times each; a run that failed for another
        reason (a fault) stays failed."""
        self.finished = _finished_runs(self.store.client, self.campaign.name, self.latest)
        again = []
        for jobs in (self.cells, self.portions):
            for job, info in jobs.items():
                run = self.finished.get(job)
                if info.get("item_uid") not in ended or (run and not str(run["reason"]).startswith(KILLED)):
                    continue
                info["attempts"] = info.get("attempts", 1) + 1
                if info["attempts"] <= 3:
                    again.append(job)
        portions = [p for p in again if p in self.portions]
        if portions:
            self._queue_portions(station, portions)
        group = [a for a in self.plan.cells if a.cell in again]
        if group:
            self.say(f"station {station}: {len(group)} cell(s) interrupted ({', '.join(a.cell for a in group)}): "
                     "queued again")  # fmt: skip
            self.turns.setdefault(station, []).insert(0, group)

    def result(self, wall0: float) -> CampaignResult:
        from orchestrator.summary import relaxation_summary

        self.finished = _finished_runs(self.store.client, self.campaign.name, self.latest)
        for jobs in (self.portions, self.cells):
            for job, info in jobs.items():
                run = self.finished.get(job)
                if run is not None:
                    info.update(status="done" if run["exit_status"] == "success" else "failed", run=run["uid"],
                                reason=run["reason"] or None)  # fmt: skip
                elif info.get("status") != "failed":
                    info["status"] = "not finished"
        self.state.data["clock"] = time.time()
        self.state.save()
        unfinished = sorted(c for c, info in self.cells.items() if info.get("status") == "not finished")
        if unfinished:
            self.say(f"{len(unfinished)} cell(s) not finished ({', '.join(unfinished)}): "
                     "`relaxlab campaign run ... --stations FILE --resume` continues them")  # fmt: skip
        out = CampaignResult(self.campaign.name)
        for name, info in self.portions.items():
            out.portions[name] = {"station": info.get("station"), "oven": info.get("oven"),
                                  "status": info.get("status"), "run": info.get("run")}  # fmt: skip
        for cell in self.campaign.cells:
            info = self.cells.get(cell.id, {})
            row: dict[str, Any] = {**dict(cell.condition), "replicate": cell.replicate, "portion": cell.portion,
                                   "station": info.get("station"), "channel": info.get("channel"),
                                   "status": info.get("status", "not run"), "run": info.get("run")}  # fmt: skip
            if row["status"] == "done":
                _, frame = self.store.read_run(info["run"])
                summary = relaxation_summary(frame)
                row.update({k: summary.get(k) for k in ("charge_capacity_mAh_g", "discharge_capacity_mAh_g",
                                                        "ni_plateau_mAh_g", "o_plateau_mAh_g", "ocv_V")})  # fmt: skip
            else:
                out.failed[cell.id] = info.get("reason") or row["status"]
            out.cells[cell.id] = row
        out.wall_s = time.perf_counter() - wall0
        return out
