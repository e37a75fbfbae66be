"""A campaign across stations: each cell's steps queued on the station that holds its channel.

``relaxlab campaign run CAMPAIGN --stations FILE --tiled URI``:

1. the schedule of ``relaxlab campaign plan`` (as many channels as the stations file lists, in
   file order: ``ch01`` is the first channel of the first station) gives each cell its channel
   and its turn on it;
2. every station is reached (bluesky-queueserver-api, zmq), its environment opened when it is
   closed, and every channel the file gives it must be one of its devices: otherwise one error
   names what is missing, before anything is queued;
3. the operator mounts each cell (the console asks for its mass; a responder in tests), then
   the cells of each turn of a station are queued as one ``campaign_cells`` item (cells of a
   turn run at once on the station's RunEngine, each its own run) and each station's queue is
   started; the stations run in parallel;
4. the campaign state lives in one place, ``<data>/campaigns/<name>/stations.json`` on the PC
   that dispatches: for each cell its station, channel, turn, the queue item's uid and status
   and its run uids. It is written before each item is started, so a dispatcher killed at any
   moment knows what it queued;
5. results are read from the shared Tiled server (each run's stop document says whether the cell
   finished).

Never resubmit blindly: with ``resume`` a cell whose item is still queued or running is waited
for; one whose item ended (completed, failed, or ``unknown`` after a station's manager was
killed) is looked up in the Tiled server by campaign and cell: a finished run (stop document,
``success``) makes it done, whatever the queue says; only a cell with no finished run is queued
again (a new run, ``resumes`` naming the interrupted one).

Only campaigns whose cell protocols are electrochemical steps (charge, rest, discharge, GITT,
CV, loops) are dispatched across stations for now: ovens, XRD and operator steps between them
are refused, naming the first such step.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drivers.techniques import Loop, Technique
from orchestrator.campaign_file import Campaign
from orchestrator.campaign_session import CampaignResult
from orchestrator.schedule import split_phases
from orchestrator.station import connect_station, device_name
from orchestrator.stations_file import StationsFile
from protocols.plans import technique_to_dict

_TECHNIQUE_TYPES = (*Technique.__args__, Loop)  # type: ignore[attr-defined]


@dataclass
class Assignment:
    cell: str
    station: str
    channel: str
    turn: int
    start_s: float


@dataclass
class DispatchState:
    path: Path
    data: dict[str, Any] = field(default_factory=dict)

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, default=str))
        tmp.replace(self.path)


def check_dispatchable(campaign: Campaign) -> None:
    """Refuse (one clear error) a campaign with steps that dispatching does not run yet."""
    for cell in campaign.cells:
        portion_phase, cell_phase = split_phases(cell.protocol.steps)
        for step in (*portion_phase, *cell_phase):
            if not isinstance(step, _TECHNIQUE_TYPES):
                raise ValueError(
                    f"campaign {campaign.name!r}: cell {cell.id} has a {step.kind} step; campaigns across "
                    "stations run electrochemical steps only for now (charge, rest, discharge, GITT, CV, "
                    "loops): run this one in one process (relaxlab campaign run without --stations)"
                )


def assign(campaign: Campaign, stations: StationsFile) -> list[Assignment]:
    """Each cell's station, channel and turn, from the ``campaign plan`` schedule on the
    stations' channels (``ch01`` = first channel of the file)."""
    from orchestrator.estimate import campaign_estimator
    from orchestrator.schedule import plan_campaign

    channels = stations.channels()
    if not channels:
        raise ValueError("the stations file lists no channel: add channels = [...] to a station")
    frame = plan_campaign(campaign, channels=len(channels), ovens=1, durations=campaign_estimator(campaign)).frame
    first = frame.groupby("cell").agg(channel=("channel", "first"), start_s=("start_s", "min")).reset_index()
    out: list[Assignment] = []
    for slot, rows in first.sort_values("start_s").groupby("channel", sort=False):
        station, channel = channels[int(str(slot).removeprefix("ch")) - 1]
        for turn, row in enumerate(rows.itertuples(index=False)):
            out.append(Assignment(str(row.cell), station, channel, turn, float(row.start_s)))
    return out


def _finished_runs(client: Any, campaign: str) -> dict[str, dict[str, Any]]:
    """``{cell: {"uid", "exit_status", "reason"}}`` of the campaign's runs on the server that
    have a stop document (the latest per cell, preferring a successful one)."""
    from tiled.queries import Key

    found: dict[str, dict[str, Any]] = {}
    for uid, run in client.search(Key("start.campaign") == campaign).items():
        md = run.metadata
        stop = md.get("stop")
        cell = md.get("start", {}).get("job_key")
        if not stop or cell is None:
            continue
        entry = {"uid": uid, "exit_status": stop.get("exit_status"), "reason": stop.get("reason", "")}
        if found.get(cell, {}).get("exit_status") != "success":
            found[cell] = entry
    return found


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
) -> CampaignResult:
    """Run ``campaign`` on ``stations`` (see the module text). ``mount(cell, station, channel)``
    returns the mass (mg) of the cell the operator put on that channel (default: the
    campaign's cell mass, announced through ``say``)."""
    from orchestrator.storage import TiledStore, campaign_lock
    from orchestrator.summary import relaxation_summary

    check_dispatchable(campaign)
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
        cells_state: dict[str, Any] = state.data.setdefault("cells", {})

        store = TiledStore(data_dir, tiled_uri)
        apis: dict[str, Any] = {}
        try:
            for name, entry in stations.stations.items():  # every station reached and checked first
                try:
                    apis[name] = connect_station(entry.control, entry.info, timeout_s=30.0)
                except ConnectionError as exc:
                    raise ConnectionError(f"station {name}: {exc}") from exc
            for name, api in apis.items():
                if not api.status()["worker_environment_exists"]:
                    api.environment_open()
                    api.wait_for_idle(timeout=600)
                devices = set(api.devices_allowed()["devices_allowed"])
                missing = [ch for ch in stations.stations[name].channels if device_name(ch) not in devices]
                if missing:
                    raise ValueError(f"station {name} has no channel {missing[0]!r} (its devices: "
                                     f"{', '.join(sorted(devices)) or 'none'}): fix the stations file")  # fmt: skip

            by_cell = {c.id: c for c in campaign.cells}
            plan = assign(campaign, stations)
            done = _finished_runs(store.client, campaign.name) if resume else {}
            history = {name: api.history_get()["items"] for name, api in apis.items()} if resume else {}
            queued = {name: api.queue_get() for name, api in apis.items()} if resume else {}
            pending_items = {
                item["item_uid"] for q in queued.values() for item in q["items"]
            } | {q["running_item"].get("item_uid") for q in queued.values() if q.get("running_item")}
            del history  # the Tiled server's runs decide; the history only says the item ended

            turns: dict[tuple[str, int], list[Assignment]] = {}
            for a in plan:
                info = cells_state.get(a.cell, {})
                if done.get(a.cell, {}).get("exit_status") == "success":
                    info.update(status="done", run=done[a.cell]["uid"])
                    cells_state[a.cell] = info
                    continue
                if info.get("item_uid") in pending_items:
                    info["status"] = "queued"  # still queued or running on its station: wait for it, never twice
                    continue
                turns.setdefault((a.station, a.turn), []).append(a)
            state.save()

            for (station, _turn), group in sorted(turns.items(), key=lambda kv: (kv[0][1], kv[0][0])):
                from bluesky_queueserver_api import BPlan

                cells = []
                for a in group:
                    cell = by_cell[a.cell]
                    mass_mg = mount(a.cell, station, a.channel) if mount else cell.mass_g * 1000.0
                    if not mount:
                        say(f"mount cell {a.cell} ({mass_mg:g} mg) on {station} channel {a.channel}")
                    previous = cells_state.get(a.cell, {})
                    md = {"campaign": campaign.name, "batch": campaign.batch.id, "material": campaign.batch.material,
                          "cell": a.cell, "sample": cell.portion or campaign.batch.id, "replicate": cell.replicate,
                          "condition": dict(cell.condition), "protocol": cell.protocol.name,
                          "resumes": (done.get(a.cell) or {}).get("uid") or previous.get("run")}  # fmt: skip
                    _, steps = split_phases(cell.protocol.steps)
                    cells.append({"cell": a.cell, "steps": [technique_to_dict(s) for s in steps],  # type: ignore[arg-type]
                                  "active_mass_mg": mass_mg, "md": md})  # fmt: skip
                item = BPlan("campaign_cells", [device_name(a.channel) for a in group], cells)
                added = apis[station].item_add(item)
                for a in group:
                    cells_state[a.cell] = {"station": station, "channel": a.channel, "turn": a.turn,
                                           "item_uid": added["item"]["item_uid"], "status": "queued"}  # fmt: skip
                state.save()  # what was queued is known before it starts
            for api in apis.values():
                if api.queue_get()["items"]:
                    api.queue_start()
            ours: dict[str, set[str]] = {}
            for info in cells_state.values():
                if info.get("status") == "queued":
                    ours.setdefault(info["station"], set()).add(info["item_uid"])
            _wait_for_items(apis, ours, poll_s, say)
            finished = _finished_runs(store.client, campaign.name)
            for cell_id, info in cells_state.items():
                run = finished.get(cell_id)
                if run is None:
                    info["status"] = "not finished"
                else:
                    info.update(status="done" if run["exit_status"] == "success" else "failed", run=run["uid"],
                                reason=run["reason"] or None)  # fmt: skip
            state.data["clock"] = time.time()
            state.save()
            unfinished = sorted(c for c, info in cells_state.items() if info.get("status") == "not finished")
            if unfinished:
                say(f"{len(unfinished)} cell(s) not finished ({', '.join(unfinished)}): "
                    "`relaxlab campaign run ... --stations FILE --resume` continues them")  # fmt: skip

            out = CampaignResult(campaign.name)
            for cell in campaign.cells:
                info = cells_state.get(cell.id, {})
                row: dict[str, Any] = {**dict(cell.condition), "replicate": cell.replicate,
                                       "station": info.get("station"), "channel": info.get("channel"),
                                       "status": info.get("status", "not run"), "run": info.get("run")}  # fmt: skip
                if row["status"] == "done":
                    _, frame = store.read_run(info["run"])
                    summary = relaxation_summary(frame)
                    row.update({k: summary.get(k) for k in ("charge_capacity_mAh_g", "discharge_capacity_mAh_g",
                                                            "ni_plateau_mAh_g", "o_plateau_mAh_g", "ocv_V")})  # fmt: skip
                else:
                    out.failed[cell.id] = info.get("reason") or row["status"]
                out.cells[cell.id] = row
            out.wall_s = time.perf_counter() - wall0
            return out
        finally:
            for api in apis.values():
                api.close()
            store.close()


def _wait_for_items(apis: dict[str, Any], pending: dict[str, set[str]], poll_s: float, say: Any,
                    patience: int = 30) -> None:  # fmt: skip
    """Wait until each station's items are in its history. A station whose queue stopped with
    our items still in it, or that stops answering, is left after ``patience`` polls in a row
    (its cells are then 'not finished': ``--resume`` picks them up)."""
    strikes = dict.fromkeys(pending, 0)
    while any(pending.values()):
        for station, items in pending.items():
            if not items:
                continue
            api = apis[station]
            try:
                items -= {item["item_uid"] for item in api.history_get()["items"]}
                status = api.status(reload=True)
                stuck = bool(items) and status["manager_state"] == "idle"
                problem = "its queue stopped with items left"
            except Exception as exc:  # killed, restarting: it may come back
                stuck, problem = True, f"not answering ({exc})"
            strikes[station] = strikes[station] + 1 if stuck else 0
            if strikes[station] >= patience:
                say(f"station {station}: {problem}; {len(items)} item(s) not finished - "
                    "`relaxlab campaign run ... --stations FILE --resume` continues them")  # fmt: skip
                items.clear()
        time.sleep(poll_s)
