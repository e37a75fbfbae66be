"""Startup script of a relaxlab station's RE Manager (see :mod:`orchestrator.station`).

Run by bluesky-queueserver's worker on every environment open, with the settings in
``RELAXLAB_STATION_*`` environment variables. It defines, in the worker's namespace:

* ``RE``: a RunEngine on the station's lab (in simulated time when the lab is simulated; on
  the served lab's clock when ``RELAXLAB_STATION_SIM_CLOCK`` names the clock file of a
  ``relaxlab sim serve --stepped`` process serving its instruments outside the station),
  writing every document to the local journal first (one file per run)
  and then to the shared Tiled server (``RELAXLAB_STATION_TILED``; when it is down the runs are
  kept in the journal and marked unsynced, see :class:`~orchestrator.tiled_server.RemoteTiled`);
* one device per cell of the lab: its potentiostat channel, named by
  :func:`~orchestrator.station.device_name`;
* the plans ``run_protocol``, ``relaxation_protocol`` and ``rest_at_open_circuit`` (device
  parameters annotated as ``Readable`` so the queueserver passes the device, not its name), and
  ``campaign_cells``: campaign cells at once, each on its channel and in its own run (what
  ``relaxlab campaign run --stations`` queues);
* every document also to the station's live stream on Redis (``RELAXLAB_STATION_REDIS``,
  :class:`~orchestrator.live_bus.LivePublisher`), for the lab's monitor;
* on a station whose lab file has ovens (``driver = "eurotherm"``): one device per oven (named
  by :func:`~orchestrator.station.device_name`) and the plan ``campaign_portions``: heated
  powder portions, each its own run, sharing the station's ovens.

A station killed mid-campaign comes back re-attaching the steps its instruments ran on: each
cell step is recorded as it starts and ends (``<data>/station-steps.json``: the run, the step,
its channel and start, keyed by run uid); after a kill the startup closes the interrupted runs
and connects without resetting the instruments, and a cell queued again naming the interrupted
run (``md.resumes``) picks its running step up where the stored points end (as ``relaxlab
campaign run --resume`` does in one process), or goes on after the steps it had finished.
Simulators served in the station's own process die with it: their cells start again.

No ``from __future__ import annotations`` here: the queueserver reads the plans' annotations.
"""

import json
import os
import typing
from pathlib import Path

from bluesky import preprocessors as bpp
from bluesky.protocols import Readable
from bluesky_queueserver import parameter_annotation_decorator

from drivers.clock import SimClock, WallClock
from drivers.device import PotentiostatChannel
from drivers.operator import Operator, Timer
from drivers.techniques import Rest, technique_from_dict
from orchestrator.campaign_lab import stored_step_progress
from orchestrator.cli_common import _on_served_instruments
from orchestrator.connect import connect_lab
from orchestrator.lab import load_lab
from orchestrator.live_bus import LivePublisher
from orchestrator.run_frames import portion_record, read_oven_record
from orchestrator.run_router import PerRun
from orchestrator.sim_operator import SimulatedBuilder, channel_instruments
from orchestrator.simtime import read_clock_file, run_engine
from orchestrator.station import device_name
from orchestrator.station_schedule import step_from_dict
from orchestrator.storage import Journal, Spool, TiledStore, recover
from orchestrator.tiled_campaign import tiled_oven_record
from orchestrator.tiled_server import RemoteTiled, sync_runs, unsynced_runs
from protocols import plans as _plans
from protocols.campaign import Gate, Pool, cell_job, portion_job
from protocols.jobs import run_jobs

_NAME = os.environ.get("RELAXLAB_STATION_NAME", "station")
_LAB = load_lab(os.environ.get("RELAXLAB_STATION_LAB", "simulated"))
_DATA = Path(os.environ.get("RELAXLAB_STATION_DATA") or ".")
_TILED = os.environ.get("RELAXLAB_STATION_TILED")
_SIM_CLOCK = os.environ.get("RELAXLAB_STATION_SIM_CLOCK")
if _SIM_CLOCK:  # in-process simulated instruments reached where `relaxlab sim serve` serves them
    _LAB = _on_served_instruments(_LAB, [], Path(_SIM_CLOCK))

# A station killed mid-run left its runs open: close them with every point the spool holds
# (runs of a live process are left alone) and give the server its copy of every run it lacks.
_recovered = recover(_DATA, tiled=_TILED is None)
if _TILED:
    try:
        _store = TiledStore(_DATA, _TILED)
        try:
            _synced = sync_runs(_store, _DATA, sorted(set(unsynced_runs(_DATA)) | set(_recovered.recovered)))
            for _uid, _what in _synced.items():
                if _what.startswith("failed"):
                    print(f"station {_NAME}: run {_uid[:8]} not copied to the Tiled server: {_what}")
        finally:
            _store.close()
    except Exception as _exc:  # the server is down: the runs stay listed as unsynced
        print(f"station {_NAME}: Tiled server not reached at start-up ({type(_exc).__name__}: {_exc}); "
              "runs kept in the journal")  # fmt: skip

# The RunEngine, in simulated time on a simulated lab. Cells run concurrently (campaign_cells):
# one journal file per run (PerRun of Journals), as the one-process campaign does.
_clock = read_clock_file(Path(_SIM_CLOCK)) if _SIM_CLOCK else SimClock() if _LAB.simulated else WallClock()
RE, _simtime = run_engine(_clock)
RE.subscribe(PerRun(lambda start: [Journal(_DATA)]))
_RUN_OF: typing.Dict[str, str] = {}  # noqa: UP006 (job -> uid of its current run)
RE.subscribe(lambda name, doc: _RUN_OF.__setitem__(doc["job_key"], doc["uid"]) if doc.get("job_key") else None, "start")
# Embedded catalog when no server is given; with a server, the journal first and the server
# after (a server that is down at start-up is retried at every run).
if _TILED:
    RE.subscribe(RemoteTiled(lambda: TiledStore(_DATA, _TILED), _DATA))
else:
    RE.subscribe(TiledStore(_DATA))
# Every document to the station's live stream on Redis too, for the lab's monitor (`relaxlab
# monitor --redis`): the server takes points in batches, the page needs them within a second.
if os.environ.get("RELAXLAB_STATION_REDIS"):
    _live = LivePublisher(os.environ["RELAXLAB_STATION_REDIS"], _NAME, warn=lambda m: print(f"station {_NAME}: {m}"))
    RE.subscribe(_live)
# After a kill (runs left open) on instruments outside this process (real, or served by `sim
# serve`): no reset, so the steps they ran on meanwhile can be re-attached. Simulators served in
# this process died with it: those cells start their step again.
_in_process = _clock.simulated and not getattr(_clock, "served", False)
_connected = connect_lab(_LAB, _clock, ovens=bool(_LAB.ovens), reset=_in_process or not _recovered.recovered)
# Points are spooled the moment they are read (fsynced on the wall clock).
_spool = Spool(_DATA, fsync=not _clock.simulated)
for _channel_device in _connected.channels.values():
    _channel_device.spool = _spool

_CHANNELS = [device_name(cell.name) for cell in _LAB.cells]
for _cell in _LAB.cells:
    globals()[device_name(_cell.name)] = _connected.channels[_cell.name]
_OVENS = [device_name(name) for name in _LAB.ovens]
for _oven_name in _LAB.ovens:
    globals()[device_name(_oven_name)] = _connected.ovens[_oven_name]

# A plan naming a channel this station does not hold is refused when it is queued.
_on_a_channel = parameter_annotation_decorator(
    {"parameters": {"channel": {"annotation": "Channels", "devices": {"Channels": _CHANNELS}}}}
)
_on_channels = parameter_annotation_decorator(
    {"parameters": {"channels": {"annotation": "typing.List[Channels]", "devices": {"Channels": _CHANNELS}}}}
)


def _channel(device: typing.Any) -> PotentiostatChannel:
    if not isinstance(device, PotentiostatChannel):
        raise TypeError(f"{device!r} is not a potentiostat channel of station {_NAME}")
    return device


def _station_md(plan: typing.Any) -> typing.Any:
    """Stamp each run with the station, the lab, the spool and the clock time it starts at."""
    md = {"clock_start_s": _clock.now(), "lab": _LAB.lab.name, "spool": _spool.session,
          "station": _NAME}  # fmt: skip
    return (yield from bpp.inject_md_wrapper(plan, md))


@_on_a_channel
def run_protocol(
    channel: Readable,
    steps: typing.List[typing.Dict[str, typing.Any]],  # noqa: UP006 (read by the queueserver)
    md: typing.Dict[str, typing.Any] | None = None,  # noqa: UP006, UP007
):
    """A protocol's steps (each a technique as plain data, as in a run's start document)
    on ``channel``, one run."""
    techniques = [technique_from_dict(dict(step)) for step in steps]
    yield from _station_md(_plans.run_protocol(_channel(channel), techniques, md=md))


@_on_a_channel
def relaxation_protocol(
    channel: Readable,
    charge_current_mA_g: float = 20.0,
    charge_voltage_V: float = 4.8,
    rest_s: float = 86400.0,
    discharge_current_mA_g: float = 20.0,
    discharge_voltage_V: float = 1.85,
    record_interval_s: float = 10.0,
    rest_record_interval_s: float = 60.0,
    md: typing.Dict[str, typing.Any] | None = None,  # noqa: UP006, UP007
):
    """Charge, rest at open circuit, discharge (the paper's protocol), one run."""
    yield from _station_md(
        _plans.relaxation_protocol(
            _channel(channel), charge_current_mA_g=charge_current_mA_g, charge_voltage_V=charge_voltage_V, rest_s=rest_s,
            discharge_current_mA_g=discharge_current_mA_g, discharge_voltage_V=discharge_voltage_V,
            record_interval_s=record_interval_s, rest_record_interval_s=rest_record_interval_s, md=md,
        )  # fmt: skip
    )


@_on_a_channel
def rest_at_open_circuit(
    channel: Readable,
    duration_s: float,
    record_interval_s: float = 60.0,
    md: typing.Dict[str, typing.Any] | None = None,  # noqa: UP006, UP007
):
    """An open-circuit rest of ``duration_s`` on ``channel``, one run."""
    rest = Rest(duration_s=duration_s, record_interval_s=record_interval_s)
    yield from _station_md(_plans.run_protocol(_channel(channel), [rest], md=md))


@_on_channels
def campaign_cells(
    channels: typing.List[Readable],  # noqa: UP006
    cells: typing.List[typing.Dict[str, typing.Any]],  # noqa: UP006
):
    """Campaign cells at once, cell ``i`` on ``channels[i]``, each its own run (as in one process).

    Each of ``cells`` is ``{"cell": id, "steps": [step dicts], "active_mass_mg": m,
    "md": {...}}``: the cell was mounted by the operator (who weighed it: ``active_mass_mg``)
    when the dispatcher queued it; the station's operator step records that mass.
    """
    if len(channels) != len(cells):
        raise ValueError(f"{len(channels)} channels for {len(cells)} cells: give one channel per cell")
    values = {str(c["cell"]): {"active_mass": float(c["active_mass_mg"]), **dict(c.get("recorded") or {})}
              for c in cells}  # fmt: skip

    responder = _answers(values, "cell")
    if _connected.simulation is not None:  # the simulated operator builds each cell from its portion's record
        responder = SimulatedBuilder(responder, _connected.simulation,
                                     channel_instruments(_LAB, _connected.channels), _portion_record)  # fmt: skip
    operator = Operator(_clock, responder, name=f"operator of {_NAME}")
    pool = Pool("channels", list(channels))
    jobs = {}
    for channel, cell in zip(channels, cells, strict=True):
        steps = [step_from_dict(dict(step)) for step in cell["steps"]]
        md = {**dict(cell.get("md") or {}), "job_key": str(cell["cell"]), "station": _NAME}
        built_from = {k: md.get(k) for k in ("portion", "portion_run", "charged_to")} if md.get("portion") else None
        done_steps, reattach = _picked_up(str(cell["cell"]), md.get("resumes"), pool, _channel(channel))
        jobs[str(cell["cell"])] = cell_job(str(cell["cell"]), steps, pool, operator, None, md, built_from,
                                           done_steps=done_steps, on_step=_step_done, reattach=reattach,
                                           on_step_started=_step_started, channel_name=channel.name)  # fmt: skip
    # A cell that fails is closed with its reason in its run's stop document; the others go
    # on, and the plan completes (a failed plan would go back to the front of the queue).
    yield from _station_md(run_jobs(jobs))


_STEPS = _DATA / "station-steps.json"


def _steps() -> typing.Dict[str, typing.Any]:  # noqa: UP006
    """Run uid -> ``{"steps_done", "running", "active_mass_mg"}`` of every cell run of this station."""
    return json.loads(_STEPS.read_text()) if _STEPS.exists() else {}


def _record(cell: str, **changes: typing.Any) -> None:
    """Update the step record of ``cell``'s current run, durable before the step goes on."""
    steps = _steps()
    steps.setdefault(_RUN_OF[cell], {}).update(changes)
    tmp = _STEPS.with_suffix(".tmp")
    tmp.write_text(json.dumps(steps))
    tmp.replace(_STEPS)


_CARRIED: typing.Dict[str, typing.Any] = {}  # noqa: UP006 (cell -> the step it re-attaches, as recorded)


def _step_started(cell: str, index: int, channel: PotentiostatChannel) -> None:
    before = _CARRIED.pop(cell, None) or {}
    runs = before.get("runs", []) if before.get("index") == index else []  # a re-attached step: its runs so far
    _record(cell, active_mass_mg=float(channel.active_mass_g.get()) * 1000.0,
            running={"index": index, "step_index": channel.step_index, "started_at_s": channel.step_started_s,
                     "channel": channel.name, "runs": [*runs, _RUN_OF[cell]]})  # fmt: skip


def _step_done(cell: str, steps_done: int, channel: PotentiostatChannel) -> None:
    _record(cell, steps_done=steps_done, running=None)


def _picked_up(cell: str, resumes: typing.Any, pool: Pool, channel: PotentiostatChannel):  # noqa: ANN202
    """``(done_steps, reattach)`` of a cell queued again after its run ``resumes`` was
    interrupted: the step that run had running on ``channel`` is re-attached where its stored
    points end; else the cell goes on after the steps it had finished (re-mounted)."""
    before = _steps().get(str(resumes), {}) if resumes else {}
    running = before.get("running")
    if _connected.simulation is not None:  # the instruments died with the station: start again
        return 0, None
    if running and running["channel"] == channel.name:
        channel.active_mass_g.put(float(before["active_mass_mg"]) / 1000.0)
        progress = stored_step_progress(_DATA, running["runs"], running["step_index"], running["started_at_s"])
        _CARRIED[cell] = running  # the new run's record: the re-attached step with the runs it is in so far
        return int(running["index"]), (pool.take(channel), progress)
    return int(before.get("steps_done", 0)), None


def _hold_picked_up(resumes: typing.Any, pool: Pool):  # noqa: ANN202
    """``(done_steps, hold)`` of a portion queued again after its run ``resumes`` was interrupted
    mid-hold in an oven outside this process (its controller held the set-point meanwhile): only
    the rest of the hold is run (:func:`protocols.campaign.portion_job`). Else it starts again."""
    before = _steps().get(str(resumes), {}) if resumes else {}
    if _connected.simulation is not None or before.get("hold_started_s") is None:
        return 0, None
    oven = next(o for o in pool.free if o.name == before["oven"])
    return int(before["steps_done"]), (pool.take(oven), float(before["hold_started_s"]))


def _portion_record(context):  # noqa: ANN001, ANN202 (a SimulatedBuilder record source)
    """The oven log and transfers of the portion run a cell is built from: the station's own
    journal when it heated the portion, else the shared Tiled server (where every station writes)."""
    uid = context.get("portion_run")
    if not uid:
        return None
    if (_DATA / "journal" / f"{uid}.jsonl").exists():
        return portion_record(lambda u: read_oven_record(_DATA, u), uid)
    if not _TILED:
        raise LookupError(f"portion run {uid} is neither in this station's journal nor on a Tiled server")
    store = TiledStore(_DATA, _TILED)
    try:
        client = store.client
        return portion_record(lambda u: (dict(client[u].metadata["start"]), tiled_oven_record(client, u)), uid)
    finally:
        store.close()


def _answers(values: typing.Dict[str, typing.Dict[str, float]], what: str):  # noqa: ANN202, UP006
    """An operator responder for the jobs of one item: the values the dispatcher collected
    from the operator (who did the step) when it queued the item."""

    def respond(request, done, failed):  # noqa: ANN001 (an Operator responder)
        given = values.get(request.job)
        if given is None:
            failed(f"no {what} {request.job!r} queued on this station")
            return
        missing = [name for name, _ in request.record if name not in given]
        if missing:
            failed(f"{request.instruction!r}: the dispatcher gave no {', '.join(missing)}")
        else:
            done({name: given[name] for name, _ in request.record})

    return respond


if _OVENS:

    @parameter_annotation_decorator(
        {"parameters": {"ovens": {"annotation": "typing.List[Ovens]", "devices": {"Ovens": _OVENS}}}}
    )
    def campaign_portions(
        ovens: typing.List[Readable],  # noqa: UP006
        portions: typing.List[typing.Dict[str, typing.Any]],  # noqa: UP006
    ):
        """Powder portions at once, each its own run (operator steps, heating), sharing ``ovens``
        in the order given (the schedule's).

        Each of ``portions`` is ``{"portion": id, "steps": [step dicts], "recorded": {name:
        value}, "md": {...}}``: the operator's entries for the portion's manual steps (e.g.
        ``portion_mass`` in mg) were collected by the dispatcher when it queued the item.
        """
        values = {str(p["portion"]): {k: float(v) for k, v in dict(p.get("recorded") or {}).items()}
                  for p in portions}  # fmt: skip
        operator = Operator(_clock, _answers(values, "portion"), name=f"operator of {_NAME}")
        pool = Pool("ovens", list(ovens))
        timer = Timer(_clock)
        jobs = {}
        for portion in portions:
            steps = [step_from_dict(dict(step)) for step in portion["steps"]]
            md = {**dict(portion.get("md") or {}), "job_key": str(portion["portion"]), "station": _NAME}
            done_steps, hold = _hold_picked_up(md.get("resumes"), pool)
            jobs[str(portion["portion"])] = portion_job(str(portion["portion"]), steps, pool, operator, timer,
                                                        Gate(), md, values[str(portion["portion"])], done_steps,
                                                        hold, lambda name, info: _record(name, **info))  # fmt: skip
        # a portion that fails is closed with its reason (its cells are not built); the others go on
        yield from _station_md(run_jobs(jobs))
