"""Protocols with heat, XRD and operator steps on the simulated lab (``relaxlab run``).

``relaxlab run`` drives one potentiostat channel for protocols of electrochemical steps only
(:mod:`orchestrator.runner`). A protocol that also heats, scans XRD or asks the operator runs
here, in simulated time, with the pieces the campaigns and the in-situ rig already use:

* the channel, a simulated Eurotherm oven and the simulated operator of
  :class:`orchestrator.simlab.SimulatedCampaignLab` (the operator answers after each manual
  step's duration and does what the request names: load a powder portion into the oven, build
  a fresh cell from it, put the cell into the oven);
* for each ``xrd`` step a scan job of a :class:`simulators.xrd.SimulatedDiffractometer`
  on the cell's sample, started when the step first asks for a scan, read by the real
  folder-watching :class:`drivers.xrd.Diffractometer` (as in :mod:`orchestrator.insitu_lab`);
* the plans :func:`protocols.campaign.portion_job` (a powder-portion prefix: operator steps and
  heating before any electrochemistry, as in the titration) and
  :func:`protocols.mixed.cell_protocol_job` (the cell's steps), run as jobs
  (:func:`protocols.jobs.run_jobs`) on a RunEngine in simulated time whose documents go to the
  journal and the Tiled catalog like every run, points spooled as they are read.

On a lab file of real instruments :func:`check_lab` refuses, before anything is connected, a
protocol that needs an instrument the lab file does not have.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drivers.clock import Clock, SimClock
from drivers.operator import Operator, Timer
from drivers.xrd import Diffractometer, ExportFolderWatcher
from orchestrator.lab import CellConfig, Lab
from orchestrator.schedule import split_phases
from orchestrator.simlab import SimulatedCampaignLab
from orchestrator.simtime import sim_run_engine
from orchestrator.storage import Journal, Spool
from orchestrator.xrd_analysis import pattern_watcher
from protocols.campaign import Gate, Pool, portion_job
from protocols.jobs import run_jobs
from protocols.mixed import cell_protocol_job
from protocols.schema import Heat, Manual, Protocol, Xrd
from simulators.cell import Cell, Sample
from simulators.xrd import SimulatedDiffractometer

#: What each non-electrochemical step kind needs from a lab.
NEEDS = {
    "heat": 'an oven (an instrument with driver = "eurotherm")',
    "xrd": "a diffractometer (lab files cannot declare one yet; XRD steps run on the simulated lab)",
    "manual": "an operator",
}

#: Where a powder portion is charged for a protocol that starts from one (the titration).
POWDER_CHARGED_TO = "4.8 V"


def extra_kinds(protocol: Protocol) -> list[str]:
    """The protocol's step kinds that are not electrochemistry (``heat``, ``xrd``, ``manual``)."""
    return sorted({s.kind for s in protocol.steps if isinstance(s, Heat | Xrd | Manual)})


def in_process_simulated(lab: Lab) -> bool:
    """True when every instrument of the lab is simulated in this process (``resource = "sim"``)."""
    return all(i.simulated and i.resource == "sim" for i in lab.instruments.values())


def check_lab(protocol: Protocol, lab: Lab) -> None:
    """Refuse, naming what is missing, a protocol this lab cannot run (before anything moves).

    Raises
    ------
    ValueError
        When the lab is not the in-process simulated lab and the protocol has steps needing an
        instrument it does not have (or that ``relaxlab run`` cannot drive on real instruments).
    """
    kinds = extra_kinds(protocol)
    if not kinds or in_process_simulated(lab):
        return
    missing = []
    if "xrd" in kinds:
        missing.append(f"xrd steps need {NEEDS['xrd']}")
    if "heat" in kinds and not lab.ovens:
        missing.append(f"heat steps need {NEEDS['heat']}")
    if not missing:
        missing.append(
            f"{', '.join(kinds)} steps on real instruments are run by campaigns "
            "(`relaxlab campaign run CAMPAIGN --lab LAB`), not by `relaxlab run`"
        )
    raise ValueError(
        f"protocol {protocol.name!r} cannot run on lab {lab.lab.name!r} ({lab.source}): "
        + "; ".join(missing)
        + ". Nothing was started. Run it on the simulated lab: `relaxlab run "
        + f"{protocol.name} --lab simulated`"
    )


class CellInOven:
    """The cell on its channel, sitting in a simulated oven: its temperature follows the oven's.

    The oven model hands its sample-temperature history to its samples; the cell is brought up
    to each point at the temperature it had, then takes the new one.
    """

    def __init__(self, instrument: Any) -> None:
        self.instrument = instrument

    def relax_history(self, times_s: Any, temperatures_C: Any) -> None:
        self.instrument.receive(b"*OPC?\n")  # any command brings the simulation up to now
        self.instrument.take_output()
        if len(temperatures_C):
            self.instrument.cell.temperature_C = float(temperatures_C[-1])


class WithoutStreams:
    """Pass documents on to ``callback`` leaving out the named event streams (the Tiled catalog
    takes tables of scalars; the scans' patterns are arrays and stay in the journal)."""

    def __init__(self, callback: Any, streams: tuple[str, ...]) -> None:
        self.callback = callback
        self.streams = streams
        self._dropped: set[str] = set()

    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        if name == "descriptor" and doc.get("name") in self.streams:
            self._dropped.add(doc["uid"])
            return
        if name in ("event", "event_page") and doc.get("descriptor") in self._dropped:
            return
        self.callback(name, doc)


@dataclass
class ExampleResult:
    """What :func:`run_on_simulated_lab` ran: the cell's run (and the powder portion's)."""

    uid: str
    portion_uid: str | None
    simulated_h: float
    wall_s: float
    recorded: dict[str, Any]
    #: One entry per XRD scan read: ``time_h`` since the run started and the fitted ``lattice_A``
    #: (None when the fit failed its quality gate).
    scans: list[dict[str, Any]]


def run_on_simulated_lab(
    protocol: Protocol,
    lab: Lab,
    config: CellConfig,
    data_dir: Path,
    *,
    tiled: bool = True,
    export_dir: Path | None = None,
) -> ExampleResult:
    """Run ``protocol`` on cell ``config`` of the simulated ``lab`` in simulated time; store it.

    Parameters
    ----------
    protocol
        Any protocol (heat, xrd and manual steps included).
    lab, config
        The simulated lab and the cell (its material and active mass).
    data_dir
        Where the runs are stored (journal, Tiled catalog, spool).
    tiled
        Also store the runs in the Tiled catalog.
    export_dir
        Where the simulated diffractometer writes its scan files (default under ``data_dir``).

    Returns
    -------
    ExampleResult
    """
    wall0 = time.perf_counter()
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    clock = SimClock()
    t0 = clock.now()
    portion_phase, cell_phase = split_phases(protocol.steps)
    heats = any(isinstance(s, Heat) for s in protocol.steps)
    sim = SimulatedCampaignLab(clock, channels=1, ovens=1 if heats else 0, material=config.material)
    instrument, channel = sim.instruments[0], sim.channels[0]
    instrument.cell = Cell(
        Sample(sim.material), active_mass_g=config.active_mass, temperature_C=config.temperature
    )
    channel.active_mass_g.put(config.active_mass)
    oven = sim.ovens[0] if sim.ovens else None
    in_oven = CellInOven(instrument)

    def respond(request: Any, done: Any, failed: Any) -> None:
        action = request.context.get("action")
        if action not in ("load_cell", "unload_cell"):
            sim.respond(request, done, failed)
            return

        def act() -> None:
            model = sim.oven_models[request.context["oven"].name]
            if action == "load_cell":
                model.add_sample(in_oven)
            else:
                model.remove_sample(in_oven)
            done({})

        clock.call_later(request.duration_s, act)

    operator = Operator(clock, respond)
    timer = Timer(clock)

    root = Path(export_dir) if export_dir is not None else data_dir / "xrd-exports"
    xrd_steps = {i: s for i, s in enumerate(cell_phase) if isinstance(s, Xrd)}
    diffractometers: dict[int, Any] = {}
    if xrd_steps:
        stamp = f"{protocol.name}-{int(time.time() * 1000)}"
        xrd = ScanJobs(clock, root / stamp, list(xrd_steps.values()), instrument)
        diffractometers = dict.fromkeys(xrd_steps, xrd)

    RE, simtime = sim_run_engine(clock)
    journal = Journal(data_dir, fsync=False)
    RE.subscribe(journal)
    if tiled:  # the embedded catalog is filled from the journal in the background (streams of arrays stay out)
        from orchestrator.tiled_fill import FillOnStop

        RE.subscribe(FillOnStop(data_dir))
    spool = Spool(data_dir, fsync=False)
    channel.spool = spool
    uids: list[str] = []
    RE.subscribe(lambda name, doc: uids.append(doc["uid"]) if name == "start" else None)
    scans: list[dict[str, Any]] = []
    xrd_descriptors: set[str] = set()

    def count_scans(name: str, doc: dict[str, Any]) -> None:
        if name == "descriptor" and doc.get("name") == "xrd":
            xrd_descriptors.add(doc["uid"])
        elif name == "event" and doc["descriptor"] in xrd_descriptors:
            a = doc["data"].get("xrd_lattice_A")
            scans.append({"time_h": round((doc["data"]["xrd_scan_end_s"] - t0) / 3600.0, 3),
                          "lattice_A": None if a is None or a != a else round(float(a), 4)})  # fmt: skip

    RE.subscribe(count_scans)
    base_md = {"cell": config.name, "sample": config.sample, "material": config.material,
               "protocol": protocol.name, "lab": lab.lab.name, "spool": spool.session,
               "simulated_operator": True}  # fmt: skip
    portion_uid = None
    try:
        results: dict[str, Any] = {}
        if portion_phase:
            sim.charge_powder(["portion"], POWDER_CHARGED_TO)
            gate = Gate()
            md = {**base_md, "job": "portion", "portion": "portion", "powder": f"charged to {POWDER_CHARGED_TO}",
                  "condition": dict(protocol.parameters)}  # fmt: skip
            mass_mg = config.active_mass * 1000.0
            job = portion_job("portion", portion_phase, Pool("ovens", sim.ovens), operator, timer, gate, md,
                              {"portion_mass": mass_mg})  # fmt: skip
            RE(run_jobs({"portion": job}, lambda k, v: results.__setitem__(k, v)))
            _raise_failed(results, "portion")
            portion_uid = uids[-1]
        context: dict[str, Any] = {"channel": channel, "mass_g": config.active_mass,
                                   "portion": "portion" if portion_phase else None,
                                   "active_mass": config.active_mass * 1000.0,
                                   "electrode_mass": round(config.active_mass * 1000.0 * 9.0 / 7.0, 3)}  # fmt: skip
        if portion_phase:
            context["action"] = "build_cell"
        md = {**base_md, "job": "cell", "condition": dict(protocol.parameters), "portion_run": portion_uid}
        job = cell_protocol_job(config.name, cell_phase, channel, operator, timer, oven=oven,
                                diffractometers=diffractometers, md=md, operator_context=context)  # fmt: skip
        RE(run_jobs({config.name: job}, lambda k, v: results.__setitem__(k, v)))
        _raise_failed(results, config.name)
    finally:
        journal.close()
        spool.close()
    cell_result = results[config.name]
    return ExampleResult(uids[-1], portion_uid, (clock.now() - t0) / 3600.0, time.perf_counter() - wall0,
                         cell_result.get("recorded", {}), scans)  # fmt: skip


def _raise_failed(results: dict[str, Any], key: str) -> None:
    value = results.get(key)
    if isinstance(value, BaseException):
        raise RuntimeError(f"{key}: {value}") from value


class ScanJobs(Diffractometer):
    """The simulated diffractometer of :func:`run_on_simulated_lab`: each ``xrd`` step starts
    a repeated-scan job (the step's scan time and 2-theta range, on the cell's sample, into its
    own export folder) at the step's first trigger; ``stop()`` ends the job."""

    def __init__(self, clock: SimClock, root: Path, steps: list[Xrd], instrument: Any) -> None:
        self._jobs = [(root / f"xrd{n + 1:02d}", step) for n, step in enumerate(steps)]
        self._instrument = instrument
        self._job: SimulatedDiffractometer | None = None
        first = steps[0]
        super().__init__(self._watcher(clock, *self._jobs[0]), clock, name="xrd",
                         poll_interval_s=min(60.0, first.scan_time_s / 10.0), before_poll=self._catch_up)  # fmt: skip

    @staticmethod
    def _watcher(clock: Clock, folder: Path, step: Xrd) -> ExportFolderWatcher:
        folder.mkdir(parents=True, exist_ok=True)
        return pattern_watcher(folder, clock, scan_time_s=step.scan_time_s, a_guess_A=4.14)

    def _lattice_A(self) -> float:
        return float(self._instrument.cell.sample.lattice_A())

    def trigger(self) -> Any:
        if self._job is None:
            if not self._jobs:
                raise RuntimeError("xrd: more scan jobs asked for than the protocol has xrd steps")
            folder, step = self._jobs.pop(0)
            self.watcher = self._watcher(self.clock, folder, step)
            self.export_dir.put(str(folder))
            self.scan_time_s.put(step.scan_time_s)
            self.timeout_s = 2.0 * step.scan_time_s
            self.poll_interval_s = min(60.0, step.scan_time_s / 10.0)
            self._job = SimulatedDiffractometer(
                self.clock, folder, self._lattice_A, scan_time_s=step.scan_time_s,
                two_theta_start_deg=step.two_theta_deg[0], two_theta_stop_deg=step.two_theta_deg[1],
                step_deg=0.05, start_s=self.clock.now(),
            )  # fmt: skip
        return super().trigger()

    def _catch_up(self) -> None:
        self._instrument.receive(b"*OPC?\n")  # the cell up to now: the lattice follows it
        self._instrument.take_output()
        if self._job is not None:
            self._job.catch_up()

    def stop(self, *, success: bool = False) -> None:
        super().stop(success=success)
        self._job = None
